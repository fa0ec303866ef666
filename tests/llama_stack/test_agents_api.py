"""Agents API specifics on a real Llama Stack 0.2.24: agent lifecycle and session hygiene."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from agentship.errors import ConfigError
from tests.llama_stack.conftest import Target
from tests.llama_stack.test_behaviour import ask, last_text

pytestmark = pytest.mark.llamastack


def sessions(target: Target, agent_id: str) -> list[str]:
    listing = httpx.get(f"{target.base_url}/v1/agents/{agent_id}/sessions").json()
    return [s["session_id"] for s in listing["data"]]


def agent_id_of(agent: Any) -> str:
    return str(agent._backend._mode.agent_id)


def test_one_agent_is_created_at_load_and_reused(target_agents_02: Target, load: Any) -> None:
    before = {a["agent_id"] for a in httpx.get(f"{target_agents_02.base_url}/v1/agents").json()["data"]}
    agent = load(target_agents_02)
    ask(agent, "one")
    ask(agent, "two")
    after = {a["agent_id"] for a in httpx.get(f"{target_agents_02.base_url}/v1/agents").json()["data"]}
    assert after - before == {agent_id_of(agent)}


def test_requests_without_a_conversation_leave_no_session_behind(target_agents_02: Target, load: Any) -> None:
    agent = load(target_agents_02)
    for i in range(3):
        assert last_text(ask(agent, f"stateless {i}")) == f"You said: stateless {i}"
    assert sessions(target_agents_02, agent_id_of(agent)) == []


def test_one_session_per_conversation(target_agents_02: Target, load: Any) -> None:
    agent = load(target_agents_02)
    first = ask(agent, "hello", "conv-1").custom_outputs["llama_stack_conversation"]
    again = ask(agent, "again", "conv-1").custom_outputs["llama_stack_conversation"]
    other = ask(agent, "hello", "conv-2").custom_outputs["llama_stack_conversation"]
    assert first == again != other
    assert sorted(sessions(target_agents_02, agent_id_of(agent))) == sorted({first, other})


def test_the_session_cache_is_bounded(target_agents_02: Target, load: Any) -> None:
    agent = load(target_agents_02, session={"max_sessions": 2, "ttl_s": 3600})
    for name in ("a", "b", "c"):
        ask(agent, f"hi {name}", f"lru-{name}")
    # "lru-a" was evicted and its session deleted on the server.
    assert len(sessions(target_agents_02, agent_id_of(agent))) == 2


def test_an_existing_agent_is_used_by_id(target_agents_02: Target, load: Any) -> None:
    owner = load(target_agents_02)
    existing = agent_id_of(owner)
    user = load(target_agents_02, environ={"LLAMASTACK_AGENT_ID": existing})
    assert agent_id_of(user) == existing
    assert last_text(ask(user, "via existing agent")) == "You said: via existing agent"


def test_a_missing_agent_id_is_a_clear_error(target_agents_02: Target, load: Any) -> None:
    expected = f"LLAMASTACK_AGENT_ID='agent-does-not-exist': no such agent on {target_agents_02.base_url}"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load(target_agents_02, environ={"LLAMASTACK_AGENT_ID": "agent-does-not-exist"})


def test_closing_the_model_deletes_the_agent_it_created(target_agents_02: Target, load: Any) -> None:
    agent = load(target_agents_02)
    created = agent_id_of(agent)
    agent.close()
    assert httpx.get(f"{target_agents_02.base_url}/v1/agents/{created}").status_code in (400, 404)


def test_a_stream_abandoned_midway_leaves_no_session(target_agents_02: Target, load: Any) -> None:
    agent = load(target_agents_02)
    stream = agent.predict_stream(
        {"input": [{"role": "user", "content": "long one [[latency=5 chunks=20]]"}]}
    )
    next(stream)  # the client reads one event, then goes away
    assert len(sessions(target_agents_02, agent_id_of(agent))) == 1  # the turn's session is live
    stream.close()
    deadline = time.monotonic() + 10
    while sessions(target_agents_02, agent_id_of(agent)):
        assert time.monotonic() < deadline, "the session of the abandoned request was not deleted"
        time.sleep(0.2)
