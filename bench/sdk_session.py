"""CPU the Agents SDK spends per conversation turn around its session, outside the model call.

    .venv/bin/python bench/sdk_session.py [--calls 300]

Three costs a `conversation` turn paid, and what agentship does now:

* ``prepare_input_with_session`` (the SDK merging the session's history with the turn's input),
  with a ``session_input_callback`` as agentship passed one, and without (agentship cuts the new
  turn from the input itself): the callback makes the SDK deep-copy the history and build
  reference maps of it. The history is an agent's: a user message, a tool call, its output and a
  200-word answer per turn.
* ``SQLAlchemySession(...)``: its constructor builds its two tables' metadata, once per turn when
  a session is made per turn; a copy of a template's state instead.
* The agent identity map the SDK builds twice per run, for the default agent (not changed here;
  [Upstream issues](../docs/upstream.md)).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agents._run_state_agent_identity import _build_agent_identity_keys_by_id  # noqa: E402
from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession  # noqa: E402
from agents.memory import SessionSettings  # noqa: E402
from agents.run_internal.session_persistence import prepare_input_with_session  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from agentship.inputs import new_turn  # noqa: E402
from agentship.model_logging import DEFAULT_CONFIGS, load_config  # noqa: E402
from agentship.openai_agents import OpenAIAgentsBackend, parse_config  # noqa: E402

ANSWER = " ".join(f"word{i}" for i in range(200))


def turn(i: int) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": f"What is the weather in Paris? (turn {i})"},
        {"arguments": '{"city": "Paris"}', "call_id": f"call_{i}", "name": "get_weather",
         "type": "function_call", "id": "__fake_id__"},
        {"call_id": f"call_{i}", "output": "The weather in Paris is 18°C and sunny.",
         "type": "function_call_output"},
        {"id": "__fake_id__", "role": "assistant", "status": "completed", "type": "message",
         "content": [{"annotations": [], "text": ANSWER, "type": "output_text"}]},
    ]  # fmt: skip


class Stored:
    """A session whose reads decode stored JSON, as the SQL session's do."""

    session_settings = SessionSettings(limit=1000)

    def __init__(self, history: list[dict[str, Any]]) -> None:
        self.rows = [json.dumps(item) for item in history]

    async def get_items(self, limit: int | None = None) -> list[Any]:
        return [json.loads(row) for row in self.rows]


def keep_new_turn(history: list[Any], new_items: list[Any]) -> list[Any]:
    """The callback agentship passed before."""
    return [*history, *(new_turn(new_items) if history else new_items)]


async def per_call_ms(calls: int, step: Any) -> float:
    await step()
    started = time.process_time()
    for _ in range(calls):
        await step()
    return (time.process_time() - started) / calls * 1000


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=300)
    calls = parser.parse_args().calls
    new = [{"role": "user", "content": "And tomorrow?"}]
    print("prepare_input_with_session, CPU ms per turn (callback → none)")
    for turns in (2, 5, 10):
        session = Stored([item for i in range(turns) for item in turn(i)])
        before = await per_call_ms(calls, lambda: prepare_input_with_session(new, session, keep_new_turn))  # noqa: B023
        after = await per_call_ms(calls, lambda: prepare_input_with_session(new, session, None))  # noqa: B023
        print(f"  {turns:2d} turns of history: {before:.3f} → {after:.3f}")

    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    template = SQLAlchemySession("template", engine=engine, create_tables=False)

    async def construct() -> None:
        SQLAlchemySession("turn", engine=engine, create_tables=False)

    async def copy() -> None:
        session = SQLAlchemySession.__new__(SQLAlchemySession)
        session.__dict__.update(template.__dict__)
        session.session_id = "turn"

    print(f"a turn's session: constructed {await per_call_ms(calls, construct):.3f} ms → "
          f"copied from a template {await per_call_ms(calls, copy):.3f} ms")  # fmt: skip
    await engine.dispose()

    config = parse_config(dict(load_config(DEFAULT_CONFIGS["openai-agents"])))
    backend = OpenAIAgentsBackend(
        config, {"OPENAI_API_KEY": "unused", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    )
    await backend.start()
    try:
        agent = backend._agent()

        async def identity() -> None:
            _build_agent_identity_keys_by_id(agent)

        print(f"the agent identity map (the default agent, built twice per run): "
              f"{await per_call_ms(calls, identity):.3f} ms each")  # fmt: skip
    finally:
        await backend.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
