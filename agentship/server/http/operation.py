"""What a route says of itself, for ``/openapi.json``: its body, its answer, its parameters.

Every route of the server is an :class:`ApiRoute`, a Starlette route that carries its
:class:`Operation`. The types an operation names are the ones the route reads and answers
with (pydantic models, openai-python's types), so the document is generated from them
(:mod:`.openapi`), never written by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from starlette.routing import Route

JSON = "application/json"
SSE = "text/event-stream"
TEXT = "text/plain"


@dataclass(frozen=True)
class Param:
    """A query parameter or a header (path parameters come from the path itself)."""

    name: str
    description: str
    schema: dict[str, Any]
    """Its JSON Schema."""
    many: bool = False
    """It may repeat (``include=a&include=b``)."""


@dataclass(frozen=True)
class Operation:
    id: str
    """Its ``operationId``."""
    summary: str
    tag: str
    body: Any = None
    """The JSON request body's type (None: no body)."""
    reply: Any = None
    """The success answer's JSON body's type (None: not JSON, see ``media``)."""
    status: int = 200
    media: tuple[str, ...] = (JSON,)
    """The success answer's media types: ``text/event-stream`` when it can stream."""
    events: Any = None
    """The type of each streamed event's ``data`` (JSON), when ``media`` has ``text/event-stream``."""
    query: tuple[Param, ...] = ()
    open: bool = False
    """Whether it is served without a bearer key when keys are on."""
    description: str = ""
    body_required: bool = True
    headers: tuple[Param, ...] = ()
    """The request headers it reads (beyond authentication)."""
    reply_headers: tuple[Param, ...] = ()
    """The headers its success answer may carry."""


class Documented(Protocol):
    """A route as the document sees it."""

    @property
    def path(self) -> str: ...

    @property
    def method(self) -> str: ...

    @property
    def operation(self) -> Operation: ...


Method = Literal["GET", "POST", "DELETE"]


class ApiRoute(Route):
    """A route and what ``/openapi.json`` says of it."""

    def __init__(self, path: str, endpoint: Any, *, method: Method, operation: Operation) -> None:
        super().__init__(path, endpoint, methods=[method])
        self.method: str = method
        self.operation = operation
