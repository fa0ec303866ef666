"""The async-to-sync bridge: items arrive as they exist, errors and cancellation cross over."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from agentship.bridge import AsyncBridge

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


@pytest.fixture
def bridge() -> Iterator[AsyncBridge]:
    b = AsyncBridge()
    yield b
    b.close()


def test_each_item_arrives_before_the_producer_finishes(bridge: AsyncBridge) -> None:
    release = threading.Event()

    async def produce() -> AsyncIterator[int]:
        yield 1
        while not release.is_set():  # the producer only finishes once the consumer saw item 1
            await asyncio.sleep(0.01)
        yield 2

    stream = bridge.iterate(produce)
    assert next(stream) == 1
    release.set()
    assert list(stream) == [2]


def test_errors_reach_the_caller_with_their_type(bridge: AsyncBridge) -> None:
    async def produce() -> AsyncIterator[int]:
        yield 1
        raise KeyError("boom")

    stream = bridge.iterate(produce)
    assert next(stream) == 1
    with pytest.raises(KeyError, match="boom"):
        next(stream)


def test_closing_the_generator_cancels_the_task(bridge: AsyncBridge) -> None:
    cancelled = threading.Event()

    async def produce() -> AsyncIterator[int]:
        try:
            yield 1
            await asyncio.sleep(60)
            yield 2
        except asyncio.CancelledError:
            cancelled.set()
            raise

    stream = bridge.iterate(produce)
    assert next(stream) == 1
    stream.close()
    assert cancelled.wait(5), "the backend task kept running after the consumer went away"


def test_context_variables_are_copied_into_the_task(bridge: AsyncBridge) -> None:
    async def produce() -> AsyncIterator[str]:
        yield REQUEST_ID.get()

    token = REQUEST_ID.set("req-42")
    try:
        assert bridge.run(produce) == ["req-42"]
    finally:
        REQUEST_ID.reset(token)


def test_concurrent_callers_run_interleaved_on_one_loop(bridge: AsyncBridge) -> None:
    async def slow(tag: str) -> AsyncIterator[str]:
        await asyncio.sleep(0.3)
        yield tag

    results: list[str] = []
    started = time.monotonic()
    threads = [
        threading.Thread(target=lambda t=str(i): results.extend(bridge.run(lambda: slow(t))))
        for i in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(str(i) for i in range(20))
    # 20 sleeps of 0.3 s ran concurrently, not one after another (6 s).
    assert time.monotonic() - started < 3


def test_aiterate_hands_items_to_another_loop_as_they_exist(bridge: AsyncBridge) -> None:
    release = threading.Event()

    async def produce() -> AsyncIterator[str]:
        yield REQUEST_ID.get()
        while not release.is_set():
            await asyncio.sleep(0.01)
        yield "second"

    async def consume() -> list[str]:
        token = REQUEST_ID.set("req-7")
        try:
            stream = bridge.aiterate(produce)
            first = await anext(stream)  # arrives while the producer still waits
            release.set()
            return [first] + [item async for item in stream]
        finally:
            REQUEST_ID.reset(token)

    assert asyncio.run(consume()) == ["req-7", "second"]


def test_aiterate_errors_and_cancellation_cross_loops(bridge: AsyncBridge) -> None:
    cancelled = threading.Event()

    async def failing() -> AsyncIterator[int]:
        yield 1
        raise ValueError("backend broke")

    async def endless() -> AsyncIterator[int]:
        try:
            while True:
                yield 1
                await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def scenario() -> None:
        with pytest.raises(ValueError, match="backend broke"):
            async for _ in bridge.aiterate(failing):
                pass
        stream = bridge.aiterate(endless)
        assert await anext(stream) == 1
        await stream.aclose()

    asyncio.run(scenario())
    assert cancelled.wait(5), "the work on the bridge loop was not cancelled"
