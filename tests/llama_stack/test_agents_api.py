"""Agents API specifics on real Llama Stack 0.2.24 (``/v1``) and 0.3.5 (``/v1alpha``): agent
lifecycle and session hygiene."""

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


def prefix_of(agent: Any) -> str:
    return str(agent._backend._mode.prefix)


def agents(target: Target, prefix: str) -> set[str]:
    return {a["agent_id"] for a in httpx.get(f"{target.base_url}{prefix}/agents").json()["data"]}


def sessions(target: Target, agent: Any) -> list[str]:
    url = f"{target.base_url}{prefix_of(agent)}/agents/{agent_id_of(agent)}/sessions"
    return [s["session_id"] for s in httpx.get(url).json()["data"]]


def agent_id_of(agent: Any) -> str:
    return str(agent._backend._mode.agent_id)


IN_PROCESS = {"AGENTSHIP_STATE_URL": "none"}


def test_one_agent_is_created_at_load_and_reused(agents_target: Target, load: Any) -> None:
    agent = load(agents_target)
    before = agents(agents_target, prefix_of(agent)) - {agent_id_of(agent)}
    ask(agent, "one")
    ask(agent, "two")
    assert agents(agents_target, prefix_of(agent)) - before == {agent_id_of(agent)}


def test_requests_without_a_conversation_leave_no_session_behind(agents_target: Target, load: Any) -> None:
    agent = load(agents_target)
    for i in range(3):
        assert last_text(ask(agent, f"stateless {i}")) == f"You said: stateless {i}"
    assert sessions(agents_target, agent) == []


def test_one_session_per_conversation(agents_target: Target, load: Any) -> None:
    agent = load(agents_target)
    first = ask(agent, "hello", "conv-1").custom_outputs["llama_stack_conversation"]
    again = ask(agent, "again", "conv-1").custom_outputs["llama_stack_conversation"]
    other = ask(agent, "hello", "conv-2").custom_outputs["llama_stack_conversation"]
    assert first == again != other
    assert sorted(sessions(agents_target, agent)) == sorted({first, other})


def test_the_session_cache_is_bounded(agents_target: Target, load: Any) -> None:
    # Without a state store, the process keeps conversations in a bounded cache.
    agent = load(agents_target, session={"max_sessions": 2, "ttl_s": 3600}, environ=IN_PROCESS)
    for name in ("a", "b", "c"):
        ask(agent, f"hi {name}", f"lru-{name}")
    # "lru-a" was evicted and its session deleted on the server.
    assert len(sessions(agents_target, agent)) == 2


def test_an_existing_agent_is_used_by_id(agents_target: Target, load: Any) -> None:
    owner = load(agents_target)
    existing = agent_id_of(owner)
    user = load(agents_target, environ={"LLAMASTACK_AGENT_ID": existing})
    assert agent_id_of(user) == existing
    assert last_text(ask(user, "via existing agent")) == "You said: via existing agent"


def test_a_missing_agent_id_is_a_clear_error(agents_target: Target, load: Any) -> None:
    expected = f"LLAMASTACK_AGENT_ID='agent-does-not-exist': no such agent on {agents_target.base_url}"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load(agents_target, environ={"LLAMASTACK_AGENT_ID": "agent-does-not-exist"})


def test_closing_the_model_deletes_the_agent_it_created(agents_target: Target, load: Any) -> None:
    agent = load(agents_target, environ=IN_PROCESS)  # no state store: the agent is this process's
    created = agent_id_of(agent)
    prefix = prefix_of(agent)
    agent.close()
    assert httpx.get(f"{agents_target.base_url}{prefix}/agents/{created}").status_code in (400, 404)


def test_replicas_over_one_store_share_one_agent(agents_target: Target, load: Any) -> None:
    first, second = load(agents_target), load(agents_target)
    assert agent_id_of(first) == agent_id_of(second)
    shared, prefix = agent_id_of(first), prefix_of(first)
    first.close()  # a replica that stops leaves it to the others
    assert httpx.get(f"{agents_target.base_url}{prefix}/agents/{shared}").status_code == 200
    assert agent_id_of(load(agents_target)) == shared


def test_a_stream_abandoned_midway_leaves_no_session(agents_target: Target, load: Any) -> None:
    agent = load(agents_target)
    stream = agent.predict_stream(
        {"input": [{"role": "user", "content": "long one [[latency=5 chunks=20]]"}]}
    )
    next(stream)  # the client reads one event, then goes away
    assert len(sessions(agents_target, agent)) == 1  # the turn's session is live
    stream.close()
    deadline = time.monotonic() + 10
    while sessions(agents_target, agent):
        assert time.monotonic() < deadline, "the session of the abandoned request was not deleted"
        time.sleep(0.2)


def test_eviction_spares_a_conversation_whose_turn_is_running(agents_target: Target, load: Any) -> None:
    agent = load(agents_target, session={"max_sessions": 1, "ttl_s": 3600}, environ=IN_PROCESS)
    stream = agent.predict_stream(
        {
            "input": [{"role": "user", "content": "a slow turn [[latency=3 chunks=10]]"}],
            "context": {"conversation_id": "evict-running"},
        }
    )
    next(stream)  # the turn of "evict-running" is under way ...
    other = ask(agent, "meanwhile", "evict-other")  # ... when another conversation needs the slot
    events = [e.model_dump(exclude_none=True) for e in stream]
    assert events[-1]["type"] == "response.completed"
    running = events[-1]["custom_outputs"]["llama_stack_conversation"]
    # Before the fix the running turn's session was deleted; now the idle one goes, once it ends.
    assert sessions(agents_target, agent) == [running]
    assert other.custom_outputs["llama_stack_conversation"] != running
    follow_up = ask(agent, "still there?", "evict-running")
    assert follow_up.custom_outputs["llama_stack_conversation"] == running
