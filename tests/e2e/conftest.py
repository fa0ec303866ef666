"""Fixtures of the end-to-end tests that look at pages in a real browser."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentship.testing.mlflow_ui import find_ui_tools


@pytest.fixture(scope="session")
def ui_tools() -> Path:
    """playwright-core's directory (Debian's headless chromium drives the pages): skipped when it
    cannot be installed here, a failure under CI."""
    tools = find_ui_tools()
    if tools is None:
        message = "no headless browser: run scripts/ui_tools.sh (scripts/test.sh does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return tools
