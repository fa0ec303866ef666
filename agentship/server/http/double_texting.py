"""A request's double-texting policy (:mod:`agentship.state.double_texting`): the
``Agentship-Double-Texting`` header, else the ``agentship_double_texting`` key of the body's
``metadata`` (``/responses``), else the server's ``--double-texting``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from agentship.server.core.errors import invalid
from agentship.state.double_texting import Policy, policy

HEADER = "Agentship-Double-Texting"
METADATA_KEY = "agentship_double_texting"


def requested_policy(request: Request, body: dict[str, Any]) -> Policy | None:
    """The policy the request asks for (None: the server's); a 400 naming where, if it is not one."""
    raw: Any = request.headers.get(HEADER)
    where = HEADER
    metadata = body.get("metadata")
    if raw is None and isinstance(metadata, dict) and METADATA_KEY in metadata:
        raw, where = metadata[METADATA_KEY], f"metadata.{METADATA_KEY}"
    if raw is None:
        return None
    try:
        return policy(str(raw).strip().lower())
    except ValueError as exc:
        raise invalid(f"{where} {exc}", param=where) from exc
