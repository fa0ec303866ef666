"""Who a request acts for: one rule, in one function, applied by every route.

:func:`identify` decides it, in this order:

1. the identity the server authenticated: the name of the caller's bearer key
   (:mod:`~agentship.server.http.auth`), or the user claim of its identity provider's token
   (:mod:`~agentship.server.http.oidc`); nothing the client sends can change it;
2. else the trusted gateway's header, ``x-user-id`` (set it in the gateway that authenticates
   callers, and let no client reach the server around it);
3. else the request's own claim: the body's ``user`` on ``/responses``, ``context.user_id`` on
   ``/invocations``, the ``user`` query parameter on the routes without a body;
4. else anonymous (``""``).

The user keys everything the server keeps (conversations, stored responses, paused runs,
background runs, A2A tasks) and names the traces: a request reaches only its own user's data,
on every route, and another user's ids simply do not exist for it. Ids are checked here, at the
edge, before anything runs: at most :data:`MAX_ID` characters, no control characters, and a
header in ASCII.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from starlette.types import Scope

from agentship.server.core.errors import invalid

USER_HEADER = "x-user-id"
"""The header a trusted gateway names the user in."""
AUTH_IDENTITY = "agentship.identity"
"""The ASGI scope key of the identity the bearer-key check authenticated."""
AUTH_TIER = "agentship.tier"
"""The ASGI scope key of the authenticated caller's limits tier (a key's, or its token's claim)."""
AUTH_QUOTA = "agentship.quota"
"""The ASGI scope key of the authenticated key's own limits."""
IDENTITY = "agentship.user"
"""The ASGI scope key of the request's :class:`Identity` (for the A2A side, which reads the scope)."""
MAX_ID = 255
"""The longest user, conversation or response id accepted."""

Source = Literal["key", "gateway", "request", "anonymous"]


@dataclass(frozen=True)
class Identity:
    user: str
    """The user id ("" for anonymous)."""
    source: Source
    """How it was decided: the rule's step."""


ANONYMOUS = Identity("", "anonymous")


def checked_id(value: str, what: str, param: str | None = None) -> str:
    """``value`` if it can be an id; a 400 naming ``what`` if it cannot."""
    if not value or len(value) > MAX_ID:
        raise invalid(f"{what} must be 1 to {MAX_ID} characters long, not {len(value)}", param=param)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise invalid(f"{what} must not contain control characters", param=param)
    return value


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            try:
                return str(value.decode("ascii"))
            except UnicodeDecodeError as exc:
                raise invalid(
                    f"the {name.decode()} header must be ASCII (percent-encode other characters)"
                ) from exc
    return None


def identify(scope: Scope, claimed: str | None = None) -> Identity:
    """The request's user, by the rule above. ``claimed`` is what the request itself says (its
    body's user, or the ``user`` query parameter)."""
    authenticated = scope.get(AUTH_IDENTITY)
    if authenticated is not None:
        return Identity(str(authenticated), "key")
    if header := _header(scope, USER_HEADER.encode()):
        return Identity(checked_id(header, "the x-user-id header"), "gateway")
    if claimed:
        return Identity(checked_id(claimed, "the request's user", param="user"), "request")
    return ANONYMOUS
