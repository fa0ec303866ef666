"""Work that stops when something else happens first: a client leaves, a lease is lost."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextlib import suppress


class Stopped(Exception):
    """What :func:`unless` waited on happened before the work finished (the work was cancelled)."""


async def unless[T](work: Awaitable[T], stop: Awaitable[object]) -> T:
    """``work``'s result; if ``stop`` finishes first, ``work`` is cancelled and awaited, and
    :class:`Stopped` is raised. ``work``'s own error is raised as it is."""
    task, stopper = asyncio.ensure_future(work), asyncio.ensure_future(stop)
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise Stopped
    return task.result()
