"""The one bridge from the async core to MLflow's sync ``predict`` / ``predict_stream``.

An :class:`AsyncBridge` owns one event loop on one daemon thread, started once (at model load).
:meth:`AsyncBridge.iterate` runs an async iterator on that loop and hands each item to the
calling thread through a queue as soon as it exists. The caller's context variables (MLflow's
active span among them) are copied into the task, so spans opened by the core nest under the
span of the sync call. Closing the sync generator early (a client went away) cancels the task.

The hand-over is bounded: the producer may run at most :data:`INBOX` items ahead of its
consumer, then waits for it (a slow client slows its own run, it does not fill the memory).
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

_ITEM, _ERROR, _DONE = 0, 1, 2
INBOX = 64
"""Items a producer may hand over before its consumer has taken them."""
TASK_NAME = "agentship-bridged"
"""The name of every task the bridge runs for a caller (a leak shows up under it)."""


async def _pump[T](
    factory: Callable[[], AsyncIterator[T]],
    deliver: Callable[[int, object], None],
    credits: asyncio.Semaphore,
) -> None:
    """Run ``factory()`` and hand every outcome to ``deliver``: items (each once the consumer has
    room for it: a credit), then done or the error."""
    try:
        async for item in factory():
            await credits.acquire()
            deliver(_ITEM, item)
    except asyncio.CancelledError:
        deliver(_DONE, None)
        raise
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer
        deliver(_ERROR, exc)
    else:
        deliver(_DONE, None)


def _unpack(kind: int, value: object) -> tuple[bool, object]:
    """(finished, item) for one delivery; raises the producer's error."""
    if kind == _ERROR:
        raise value  # type: ignore[misc]
    return kind == _DONE, value


class AsyncBridge:
    """An event loop on a background thread, shared by every request of one loaded model."""

    def __init__(self, name: str = "agentship-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def iterate[T](self, factory: Callable[[], AsyncIterator[T]]) -> Iterator[T]:
        """Run ``factory()`` on the loop and yield its items in the calling thread."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("AsyncBridge.iterate() called from its own loop thread")
        inbox: queue.SimpleQueue[tuple[int, object]] = queue.SimpleQueue()
        context = contextvars.copy_context()
        tasks: list[asyncio.Task[None]] = []
        credits = asyncio.Semaphore(INBOX)  # used on the loop only

        def start() -> None:
            task = self.loop.create_task(
                _pump(factory, lambda k, v: inbox.put((k, v)), credits), context=context, name=TASK_NAME
            )
            tasks.append(task)

        self.loop.call_soon_threadsafe(start)
        finished = False
        try:
            while not finished:
                kind, value = inbox.get()
                self.loop.call_soon_threadsafe(credits.release)
                finished = kind != _ITEM
                done, item = _unpack(kind, value)
                if not done:
                    yield item  # type: ignore[misc]
        finally:
            if not finished:
                self.loop.call_soon_threadsafe(lambda: [t.cancel() for t in tasks])

    async def aiterate[T](self, factory: Callable[[], AsyncIterator[T]]) -> AsyncGenerator[T, None]:
        """Run ``factory()`` on this bridge's loop and yield its items on the *calling* loop.

        For async servers: the model's clients stay on the loop they were built on, and the
        caller's loop only waits on a queue. Cancelling the caller cancels the task.
        """
        caller = asyncio.get_running_loop()
        if caller is self.loop:
            async for item in factory():
                yield item
            return
        inbox: asyncio.Queue[tuple[int, object]] = asyncio.Queue()  # never more than INBOX + 1
        context = contextvars.copy_context()
        credits = asyncio.Semaphore(INBOX)  # used on the bridge's loop only

        def deliver(kind: int, value: object) -> None:
            caller.call_soon_threadsafe(inbox.put_nowait, (kind, value))

        future = asyncio.run_coroutine_threadsafe(
            _in_context(lambda: _pump(factory, deliver, credits), context), self.loop
        )
        finished = False
        try:
            while not finished:
                kind, value = await inbox.get()
                self.loop.call_soon_threadsafe(credits.release)
                finished = kind != _ITEM
                done, received = _unpack(kind, value)
                if not done:
                    yield received  # type: ignore[misc]
        finally:
            if not finished:
                future.cancel()

    def run[T](self, factory: Callable[[], AsyncIterator[T]]) -> list[T]:
        """Drain ``factory()`` on the loop; return every item."""
        return list(self.iterate(factory))

    def call[R](self, coro_factory: Callable[[], Coroutine[Any, Any, R]]) -> R:
        """Run one coroutine on the loop and return its result (used at load time)."""
        future = asyncio.run_coroutine_threadsafe(coro_factory(), self.loop)
        return future.result()

    async def atask_names(self) -> list[str]:
        """The names of the tasks on the bridge's loop, awaited from another loop (a diagnostic)."""

        async def names() -> list[str]:
            me = asyncio.current_task()
            return sorted(t.get_name() for t in asyncio.all_tasks() if t is not me)

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(names(), self.loop))

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)


async def _in_context(factory: Callable[[], Coroutine[Any, Any, None]], context: contextvars.Context) -> None:
    """Await ``factory()`` as a task that runs in ``context`` (the caller's context variables)."""
    await asyncio.get_running_loop().create_task(factory(), context=context, name=TASK_NAME)
