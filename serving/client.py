"""``python serving/client.py {served,local,a2a} TARGET QUESTION``: the clients' command
(``agentship client`` from an install; :mod:`agentship.client`).

    python serving/client.py served http://127.0.0.1:8000 "What is the weather in Paris?" [--stream]
    python serving/client.py local models:/openai-agents-assistant/1 "What is the weather in Paris?"
    python serving/client.py a2a http://127.0.0.1:8000 "What is the weather in Paris?" [--stream]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable, not serving/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from agentship.client import ExchangeLogger, LocalAgent, ServedAgent, answer_text
from agentship.client.cli import main

__all__ = ["ExchangeLogger", "LocalAgent", "ServedAgent", "answer_text", "main"]

if __name__ == "__main__":
    sys.exit(main(prog="python serving/client.py"))
