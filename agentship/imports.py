"""Resolve ``package.module:attribute`` references from model configs."""

from __future__ import annotations

import importlib
from typing import Any

from agentship.errors import ConfigError


def import_object(reference: str) -> Any:
    """Import ``"pkg.mod:attr"`` (or ``"pkg.mod.attr"``) and return the attribute."""
    module_name, sep, attr = reference.partition(":")
    if not sep:
        module_name, _, attr = reference.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"invalid import path {reference!r}: expected 'package.module:name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r} for {reference!r}: {exc}") from exc
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError as exc:
        raise ConfigError(f"module {module_name!r} has no attribute {attr!r}") from exc
    return obj
