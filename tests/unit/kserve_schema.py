"""KServe's InferenceService schema, as its Python SDK generates it from KServe's OpenAPI spec:
each ``kserve/models/*.py`` model's ``openapi_types`` (field -> type) and ``attribute_map``
(field -> JSON key), read from the wheel without importing it (``scripts/kserve_schema.sh``).

:func:`problems` walks a manifest against it: unknown keys and wrong primitive types are
problems; the Kubernetes types KServe embeds (the predictor's pod fields, its containers, the
metadata) are collected for kubernetes-validate, wrapped in a Pod. Pure apart from reading the wheel.
"""

from __future__ import annotations

import ast
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "bool": (bool,),
    "float": (int, float),
    "object": (object,),
    "datetime": (str,),
}


@dataclass(frozen=True)
class Model:
    types: dict[str, str]
    """JSON key -> the SDK's type string."""


def load(wheel: Path) -> dict[str, Model]:
    """Every model class of the wheel, by class name."""
    models: dict[str, Model] = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not (name.startswith("kserve/models/") and name.endswith(".py")):
                continue
            tree = ast.parse(archive.read(name))
            for node in tree.body:
                if isinstance(node, ast.ClassDef):
                    found = _dicts(node)
                    if "openapi_types" in found and "attribute_map" in found:
                        keys = found["attribute_map"]
                        models[node.name] = Model({keys[a]: t for a, t in found["openapi_types"].items()})
    return models


def _dicts(node: ast.ClassDef) -> dict[str, dict[str, str]]:
    out = {}
    for item in node.body:
        if isinstance(item, ast.Assign) and isinstance(item.targets[0], ast.Name):
            try:
                out[item.targets[0].id] = ast.literal_eval(item.value)
            except ValueError:
                continue
    return out


@dataclass
class Walk:
    models: dict[str, Model]
    problems: list[str] = field(default_factory=list)
    kubernetes: list[tuple[str, str, str, Any]] = field(default_factory=list)
    """(path, the model holding it, JSON key, value) of every Kubernetes-typed field."""

    def check(self, value: Any, kind: str, path: str, holder: str = "", key: str = "") -> None:
        if (m := re.fullmatch(r"list\[(.+)\]", kind)) is not None:
            if not isinstance(value, list):
                self.problems.append(f"{path}: expected a list")
                return
            if m.group(1) not in self.models and m.group(1) not in _PRIMITIVES:
                self.kubernetes.append((path, holder, key, value))
                return
            for i, item in enumerate(value):
                self.check(item, m.group(1), f"{path}[{i}]", holder, key)
        elif (m := re.fullmatch(r"dict\((.+), (.+)\)", kind)) is not None:
            if not isinstance(value, dict):
                self.problems.append(f"{path}: expected a mapping")
                return
            for k, v in value.items():
                self.check(v, m.group(2), f"{path}.{k}", holder, key)
        elif kind in _PRIMITIVES:
            if not isinstance(value, _PRIMITIVES[kind]) or (kind == "int" and isinstance(value, bool)):
                self.problems.append(f"{path}: expected {kind}, got {type(value).__name__}")
        elif kind in self.models:
            self.object(value, kind, path)
        else:
            self.kubernetes.append((path, holder, key, value))

    def object(self, value: Any, kind: str, path: str) -> None:
        if not isinstance(value, dict):
            self.problems.append(f"{path}: expected a {kind} object")
            return
        types = self.models[kind].types
        for key, item in value.items():
            if key not in types:
                self.problems.append(f"{path}.{key}: not a field of {kind}")
            else:
                self.check(item, types[key], f"{path}.{key}", kind, key)


def problems(manifest: dict[str, Any], models: dict[str, Model]) -> tuple[list[str], Walk]:
    walk = Walk(models)
    walk.object(manifest, "V1beta1InferenceService", "InferenceService")
    return walk.problems, walk
