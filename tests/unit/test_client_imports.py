"""The client package stands apart from the server: importing every client module, its command
included, loads no module of ``agentship.server`` (nor ``serving``, the checkout's entry)."""

from __future__ import annotations

import json
import subprocess
import sys

CLIENT_MODULES = (
    "agentship.client",
    "agentship.client.a2a",
    "agentship.client.base",
    "agentship.client.cli",
    "agentship.client.exchange_log",
    "agentship.client.local",
    "agentship.client.served",
)

PROBE = f"""
import importlib, json, sys
for name in {CLIENT_MODULES!r}:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m == "serving" or m.startswith(("agentship.server", "serving.")))))
"""


def test_importing_every_client_module_loads_nothing_of_the_server() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout.strip().splitlines()[-1]) == []
