"""The environment variables the code reads, found in its source, and their page.

:func:`scan` reads the Python source of ``agentship/`` and ``serving/`` (every string constant
that is a variable's whole name: ``"AGENTSHIP_STATE_URL"``, ``"OTEL_EXPORTER_OTLP_ENDPOINT"``, …)
and the shell scripts (``$AGENTSHIP_…``); the ``SERVING_*`` names are the server settings'
fields (``SERVING_`` + the field's name, as ``ServerSettings.from_env`` reads them). The page is
built from :mod:`.env_catalog` only when the two agree (:func:`check`).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docs_ref.env_catalog import CATALOG, GROUPS, EnvVar
from docs_ref.md import cell, code, from_rst, table

PYTHON_NAME = re.compile(r"^(AGENTSHIP|SERVING|OTEL|LLAMASTACK|OPENAI|MLFLOW|PROMETHEUS)_[A-Z0-9_]+$")
SHELL_NAME = re.compile(r"\bAGENTSHIP_[A-Z0-9_]+\b")
TESTING = "agentship/testing/"
"""The test harness: only its ``AGENTSHIP_*`` names are the project's (it sets others for the
processes it starts)."""


def names_in_python(source: str) -> set[str]:
    """The string constants of ``source`` that are whole variable names. Pure."""
    return {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and PYTHON_NAME.match(node.value)
    }


SETTINGS_FILE = "agentship/server/settings.py"


def scan(repo: Path, serving_fields: Iterable[str] = ()) -> dict[str, set[str]]:
    """Every variable name the code reads, with the files (relative to ``repo``) it is read in;
    ``serving_fields`` are the server settings' fields, read as ``SERVING_<FIELD>``."""
    found: dict[str, set[str]] = {f"SERVING_{f.upper()}": {SETTINGS_FILE} for f in serving_fields}
    for path in sorted([*repo.glob("agentship/**/*.py"), *repo.glob("serving/**/*.py")]):
        where = path.relative_to(repo).as_posix()
        names = names_in_python(path.read_text(encoding="utf-8"))
        if where.startswith(TESTING):
            names = {n for n in names if n.startswith("AGENTSHIP_")}
        for name in names:
            found.setdefault(name, set()).add(where)
    for path in sorted(repo.glob("scripts/*.sh")):
        for name in SHELL_NAME.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, set()).add(path.relative_to(repo).as_posix())
    return found


def attribute_docs(cls: type) -> dict[str, str]:
    """A class's attribute docstrings (the string right after ``name: type = …``), by name."""
    body = ast.parse(inspect.getsource(cls)).body[0]
    assert isinstance(body, ast.ClassDef)
    docs: dict[str, str] = {}
    for statement, following in zip(body.body, body.body[1:], strict=False):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = inspect.cleandoc(following.value.value)
    return docs


def flags_for(cli_source: str, options: Mapping[str, str]) -> dict[str, str]:
    """Which command-line option sets which variable: in ``cli_source``, each ``(\"NAME\", args.x)``
    pair and ``os.environ[\"NAME\"] = args.x``, with ``x``'s option from ``options`` (dest to flag)."""
    found: dict[str, str] = {}

    def dest(node: ast.expr) -> str | None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "args":
                return sub.attr
        return None

    for node in ast.walk(ast.parse(cli_source)):
        pair: tuple[ast.expr, ast.expr] | None = None
        if isinstance(node, ast.Tuple) and len(node.elts) == 2:
            pair = (node.elts[0], node.elts[1])
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript):
            pair = (node.targets[0].slice, node.value)
        if pair is None or not isinstance(pair[0], ast.Constant) or not isinstance(pair[0].value, str):
            continue
        name, attr = pair[0].value, dest(pair[1])
        if attr is not None and attr in options:
            found[name] = options[attr]
    return found


def serving_vars(
    settings_cls: type, flags: Mapping[str, str], notes: Mapping[str, str], extra: Mapping[str, str]
) -> list[EnvVar]:
    """One ``SERVING_*`` entry per settings field: its default, docstring (else a note), what
    ``extra`` adds, and the flag that sets it."""
    docs = attribute_docs(settings_cls)
    names = {f.name for f in dataclasses.fields(settings_cls)}
    for name in notes:
        if name in docs or name not in names:
            raise ValueError(f"ServerSettings.{name}: remove its note (a docstring now, or no field)")
    if unknown := sorted(set(extra) - names):
        raise ValueError(f"ServerSettings has no fields {unknown}: remove their notes")
    out: list[EnvVar] = []
    for f in dataclasses.fields(settings_cls):
        name = f"SERVING_{f.name.upper()}"
        default = _default(f.default)
        parts = [from_rst(docs.get(f.name) or notes.get(f.name, "")), extra.get(f.name, "")]
        if flag := flags.get(name):
            parts.append(f"Set by {code(flag)}.")
        out.append(EnvVar(name, "serving", default, " ".join(p for p in parts if p)))
    return out


def _default(value: Any) -> str:
    if value is dataclasses.MISSING:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return code(str(value).lower())
    return code(f"{value:g}" if isinstance(value, float) else str(value))


@dataclass(frozen=True)
class Drift:
    undocumented: list[str]
    """Read by the code, with no entry."""
    stale: list[str]
    """With an entry (not external), read nowhere."""

    def __bool__(self) -> bool:
        return bool(self.undocumented or self.stale)

    def describe(self) -> str:
        parts = []
        if self.undocumented:
            parts.append(f"read in the code but not in scripts/docs_ref/env_catalog.py: {self.undocumented}")
        if self.stale:
            parts.append(f"in scripts/docs_ref/env_catalog.py but read nowhere: {self.stale}")
        return "; ".join(parts)


def check(entries: Iterable[EnvVar], found: Mapping[str, set[str]]) -> Drift:
    """Compare the entries with the names the code reads. Pure."""
    listed = {e.name: e for e in entries}
    return Drift(
        undocumented=sorted(set(found) - set(listed)),
        stale=sorted(n for n, e in listed.items() if not e.external and n not in found),
    )


def all_entries(serving: Iterable[EnvVar]) -> list[EnvVar]:
    return [*serving, *CATALOG]


def render(entries: Iterable[EnvVar], found: Mapping[str, set[str]]) -> str:
    """The sections of the page, one table per group; raises on drift."""
    entries = list(entries)
    if drift := check(entries, found):
        raise ValueError(drift.describe())
    parts: list[str] = []
    for group, heading in GROUPS.items():
        rows = [
            [
                code(e.name),
                cell(e.default),
                cell(e.meaning),
                cell(", ".join(code(w) for w in sorted(found.get(e.name, ()))) or "MLflow or OpenTelemetry"),
            ]
            for e in entries
            if e.group == group
        ]
        if rows:
            parts.append(f"## {heading}\n\n" + table(["Variable", "Default", "Meaning", "Read in"], rows))
    return "\n".join(parts)
