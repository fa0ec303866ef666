"""A model config's reference, rendered from its pydantic models. Pure.

Each field's row is its name, type, default, bounds and description, all read from the model.
A field the code leaves undescribed may get a note from the docs (:data:`Section.notes`); a note
for a field that has a description of its own, or for no field at all, is an error, so the notes
cannot drift from the code.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from docs_ref.md import cell, code, from_rst, table


@dataclass(frozen=True)
class Section:
    """One model's table: its heading and anchor, text before it, and notes for the fields the
    code leaves undescribed (by field name)."""

    model: type[BaseModel]
    title: str
    anchor: str
    intro: str = ""
    notes: Mapping[str, str] = field(default_factory=dict)


class StaleNote(ValueError):
    """A docs note names a field that is gone or that now has a description of its own."""


def check_notes(section: Section) -> None:
    fields = section.model.model_fields
    for name in section.notes:
        if name not in fields:
            raise StaleNote(f"{section.model.__name__} has no field {name!r}: remove its note")
        if fields[name].description:
            raise StaleNote(f"{section.model.__name__}.{name} is described in the code now: remove its note")


def type_text(annotation: Any, links: Mapping[type, str]) -> str:
    """A field's type in words: ``list of str``, a link for a nested model, literals listed."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if annotation is type(None):
        return "null"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        name = annotation.__name__
        return f"[{name}]({links[annotation]})" if annotation in links else code(name)
    if origin is Literal:
        return " | ".join(code(str(a)) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(type_text(a, links) for a in args)
    if origin is list:
        return f"list of {type_text(args[0], links)}"
    if origin is dict:
        if args[1] is Any:
            return "mapping"
        return f"mapping of {type_text(args[0], links)} to {type_text(args[1], links)}"
    if isinstance(annotation, type):
        return code(annotation.__name__)
    return code(str(annotation))


def value_text(value: Any, links: Mapping[type, str]) -> str:
    """A default as it would be written in the YAML config."""
    if isinstance(value, BaseModel):
        return f"see [{type(value).__name__}]({links[type(value)]})" if type(value) in links else ""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return code("true" if value else "false")
    if isinstance(value, str):
        return code(value) if value else code('""')
    return code(repr(value))


def default_text(info: FieldInfo, links: Mapping[type, str]) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        return value_text(info.default_factory(), links)  # type: ignore[call-arg]
    return value_text(info.default, links)


_BOUNDS = ((Ge, "ge", "≥"), (Gt, "gt", ">"), (Le, "le", "≤"), (Lt, "lt", "<"))


def bounds_text(info: FieldInfo) -> str:
    """The field's numeric bounds and length limits, e.g. ``≥ 1, ≤ 100``."""
    out: list[str] = []
    for item in info.metadata:
        for kind, attribute, sign in _BOUNDS:
            if isinstance(item, kind):
                out.append(f"{sign} {getattr(item, attribute)}")
        if isinstance(item, MinLen):
            out.append(f"length ≥ {item.min_length}")
        if isinstance(item, MaxLen):
            out.append(f"length ≤ {item.max_length}")
    return ", ".join(out)


def render(section: Section, links: Mapping[type, str], level: int = 3) -> str:
    """The section: heading (with its anchor), intro, and one row per field."""
    check_notes(section)
    rows: list[Sequence[str]] = []
    for name, info in section.model.model_fields.items():
        meaning = from_rst(info.description or section.notes.get(name, ""))
        rows.append(
            [
                code(name),
                cell(type_text(info.annotation, links)),
                cell(default_text(info, links)),
                cell(bounds_text(info)),
                cell(meaning),
            ]
        )
    head = f"{'#' * level} {section.title} {{ #{section.anchor} }}\n"
    intro = f"{section.intro.strip()}\n" if section.intro else ""
    return "\n".join(
        p for p in (head, intro, table(["Field", "Type", "Default", "Bounds", "Meaning"], rows)) if p
    )
