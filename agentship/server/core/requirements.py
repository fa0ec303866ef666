"""The logged model's requirements against the serving environment: MLflow's warning, for less.

``mlflow.pyfunc.load_model`` warns when this environment does not satisfy the model's
``requirements.txt``, or runs another Python than the model was logged with. Before its first
check it maps every installed distribution to its modules
(``importlib.metadata.packages_distributions()``), reading each one's file list: about 0.5 s of
a server's start on this project's environment, for a map the verdict rarely needs. Here each
requirement is checked against its own distribution's version, the same verdict, in
milliseconds; the server loads the model with ``suppress_warnings=True`` and calls
:func:`warn_mismatches`.

One difference: a package importable without installed metadata (MLflow then reads its module's
``__version__``) counts as not installed here.
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
from collections.abc import Callable, Iterable
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

_logger = logging.getLogger("agentship.server")

IGNORED = frozenset({"databricks-feature-lookup", "databricks-agents"})
"""Packages MLflow's own check leaves out (installed by Databricks' serving, not by pip)."""


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def requirement_lines(text: str) -> list[str]:
    """The requirement lines of a ``requirements.txt`` (no comments, options or includes)."""
    lines = (line.split(" #", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith(("#", "-"))]


def mismatches(requirements: Iterable[str], installed: Callable[[str], str | None] = _installed) -> list[str]:
    """Each requirement this environment does not satisfy, as MLflow words it:
    ``name (current: version or uninstalled, required: requirement)``. A line that is not a
    requirement (a path, a URL) or whose marker excludes this environment is skipped, as MLflow
    skips it; so is a development release of ``mlflow``."""
    found = []
    for line in requirements:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if (req.marker and not req.marker.evaluate()) or _normalized(req.name) in IGNORED:
            continue
        version = installed(req.name)
        if version is None:
            found.append(f"{req.name} (current: uninstalled, required: {line})")
            continue
        try:
            if _normalized(req.name) == "mlflow" and Version(version).is_devrelease:
                continue
        except InvalidVersion:
            pass
        if req.specifier and not req.specifier.contains(version):
            found.append(f"{req.name} (current: {version}, required: {line})")
    return found


def python_mismatch(logged: str | None, running: str = platform.python_version()) -> str | None:
    """The warning for a model logged with another Python (major.minor), or with none recorded."""
    if logged is None:
        return f"The model does not record the Python it was logged with; this is Python {running}."
    if logged.split(".")[:2] != running.split(".")[:2]:
        return f"The model was logged with Python {logged}; this is Python {running}. It may not load or run the same."
    return None


def warn_mismatches(model_dir: str | Path, logged_python: str | None) -> list[str]:
    """Log, as one warning each, the model's unmet requirements and a Python mismatch; returns
    the warnings."""
    path = Path(model_dir) / "requirements.txt"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        text = ""
    warnings = []
    unmet = mismatches(requirement_lines(text))
    if unmet:
        warnings.append(
            "the model's requirements are not met by this environment:\n - "
            + "\n - ".join(unmet)
            + "\nmlflow.pyfunc.get_model_dependencies(model_uri) writes the model's environment to install."
        )
    python = python_mismatch(logged_python)
    if python is not None:
        warnings.append(python)
    for warning in warnings:
        _logger.warning("%s", warning)
    return warnings
