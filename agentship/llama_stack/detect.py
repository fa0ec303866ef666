"""Find out what a server offers, and pick the mode to talk to it in."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from agentship.errors import BackendStatusError, ConfigError
from agentship.llama_stack.config import ApiMode
from agentship.llama_stack.http import ServerHTTP

_logger = logging.getLogger(__name__)

ModeKind = Literal["agents", "responses", "chat_completions"]


@dataclass(frozen=True)
class Detected:
    kind: ModeKind
    prefix: str
    version: str | None


def choose(routes: set[str], forced: ApiMode) -> Detected | None:
    """The best mode the routes allow (or the forced one); pure."""
    options: list[Detected] = []
    if "/v1alpha/agents" in routes:  # 0.3.x; its /v1/agents is a deprecated alias
        options.append(Detected("agents", "/v1alpha", None))
    if "/v1/agents" in routes:
        options.append(Detected("agents", "/v1", None))
    if "/v1/responses" in routes and "/v1/conversations" in routes:
        options.append(Detected("responses", "/v1", None))
    if "/v1/chat/completions" in routes:
        options.append(Detected("chat_completions", "/v1", None))
    if "/v1/openai/v1/chat/completions" in routes:
        options.append(Detected("chat_completions", "/v1/openai/v1", None))
    for option in options:
        if forced in ("auto", option.kind):
            return option
    return None


async def detect(http: ServerHTTP, forced: ApiMode) -> Detected:
    """Ask the server for its routes; a plain OpenAI-compatible server gets chat completions."""
    try:
        listing = await http.get("/v1/inspect/routes")
        routes = {str(r.get("route")) for r in listing.get("data", []) if isinstance(r, dict)}
    except BackendStatusError as exc:
        if exc.status not in (404, 405):
            raise
        routes = set()
        if await http.probe("/v1/models") == 200:
            routes = {"/v1/chat/completions"}
    version = None
    if routes and "/v1/version" in routes:
        try:
            version = str((await http.get("/v1/version")).get("version"))
        except BackendStatusError:
            version = None
    found = choose(routes, forced)
    if found is None:
        offered = sorted(r for r in routes if "agents" in r or "responses" in r or "chat" in r)[:8]
        raise ConfigError(
            f"the server at {http.base_url} offers no {'usable' if forced == 'auto' else forced} API "
            f"(routes seen: {offered or 'none'})"
        )
    return Detected(found.kind, found.prefix, version)


async def resolve_model(http: ServerHTTP, wanted: str | None) -> str:
    """Check that the model exists on the server; the error lists the ones that do."""
    if not wanted:
        raise ConfigError("no model: set LLAMASTACK_MODEL (or 'model' in the model config)")
    try:
        listing = await http.get("/v1/models")
    except BackendStatusError:
        _logger.warning("cannot list models at %s; using %r unchecked", http.base_url, wanted)
        return wanted
    ids = [str(m.get("identifier") or m.get("id")) for m in listing.get("data", []) if isinstance(m, dict)]
    if wanted in ids:
        return wanted
    by_suffix = [i for i in ids if i.split("/", 1)[-1] == wanted]
    if len(by_suffix) == 1:  # "scripted-model" for the server's "vllm/scripted-model"
        _logger.info("model %r resolved to %r", wanted, by_suffix[0])
        return by_suffix[0]
    raise ConfigError(
        f"model {wanted!r} is not served by {http.base_url}; available: {', '.join(ids[:10]) or 'none'}"
    )
