"""Which installed agentship may serve a model logged with another one. Pure.

A logged model records the agentship version that logged it (``agentship_version`` in its
MLmodel ``metadata``). ``python -m serving`` runs such a model with the agentship *installed* in
the serving process (the copy in the model's ``code/`` directory is shadowed by the one the
server has already imported), so the two must agree on the model config and the agent classes.
The rule is semantic versioning's:

* the same version: fine;
* a different major version, or, before 1.0, a different minor version (``0.1.x`` and ``0.2.x``):
  **incompatible**, the server refuses to load the model;
* any other difference (a patch, or a minor version from 1.0 on): compatible, with a warning;
* no version recorded (a model logged before agentship recorded it) or one that does not parse:
  a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from packaging.version import InvalidVersion, Version

VERSION_KEY = "agentship_version"
"""The key of the logging agentship's version in a model's MLmodel ``metadata``."""


@dataclass(frozen=True)
class Verdict:
    level: Literal["ok", "warn", "fail"]
    message: str = ""


def _release(version: Version) -> tuple[int, int]:
    major, minor = (*version.release, 0, 0)[:2]
    return major, minor


def check_model_version(recorded: str | None, installed: str) -> Verdict:
    """Whether the installed agentship (``installed``) may serve a model logged with ``recorded``."""
    if not recorded:
        return Verdict("warn", f"the model records no agentship version; serving it with {installed}")
    try:
        logged, here = Version(recorded), Version(installed)
    except InvalidVersion:
        return Verdict("warn", f"cannot compare agentship versions {recorded!r} and {installed!r}")
    if logged == here:
        return Verdict("ok")
    (logged_major, logged_minor), (major, minor) = _release(logged), _release(here)
    if logged_major != major or (major == 0 and logged_minor != minor):
        series = f"{logged_major}.x" if logged_major else f"0.{logged_minor}.x"
        return Verdict(
            "fail",
            f"the model was logged with agentship {recorded}, which is incompatible with the installed "
            f"{installed} (a different {'major' if logged_major != major else 'minor'} version): serve it "
            f"with agentship {series}, or log it again with {installed}",
        )
    return Verdict("warn", f"the model was logged with agentship {recorded}; serving it with {installed}")
