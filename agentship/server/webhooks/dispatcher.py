"""The dispatcher every replica runs: it delivers the outbox's notifications, at least once.

It claims due rows by lease (:meth:`~agentship.state.outbox.Outbox.claim`), when a run on this
replica wrote one and every :data:`POLL_S` otherwise (a row another replica wrote, or one due
again), and posts each to its URL with a bounded timeout, signed (:func:`.settings.signature`).
A 2xx marks it delivered; anything else (another status, a timeout, a refused connection) makes
it due again after a doubling wait, honouring the receiver's ``Retry-After``, until its last
attempt. A replica that dies mid-delivery leaves its rows to the others once their lease is over:
a receiver may so see an event twice, with the same ``webhook-id``.

Logs name the destination (``webhook-0``, an A2A config id), never its URL or what it answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable

import httpx
from prometheus_client import Counter

from agentship.errors import StateError
from agentship.server.webhooks.settings import MAX_WAIT_S, WebhookSettings, signature
from agentship.state.outbox import Notice, Outbox

_logger = logging.getLogger("agentship.server")

POLL_S = 1.0
"""How often a dispatcher looks for rows it was not told of."""
BATCH = 16
"""Rows one dispatcher delivers at once."""

DELIVERIES = Counter(
    "agentship_webhook_deliveries",
    "Webhook and push-notification delivery attempts, by kind (response, a2a) and outcome "
    "(delivered, retried, given_up, dropped).",
    ["kind", "outcome"],
)

Headers = Callable[[Notice], Awaitable[dict[str, str] | None]]
"""A kind's own headers for a delivery (None: do not deliver it; its destination is gone)."""


def _retry_after(reply: httpx.Response) -> float:
    try:
        return min(float(reply.headers.get("retry-after", "0")), MAX_WAIT_S)
    except ValueError:
        return 0.0


class Dispatcher:
    def __init__(
        self,
        outbox: Outbox,
        settings: WebhookSettings,
        headers: dict[str, Headers] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = outbox
        self.settings = settings
        self.headers = headers or {}
        self.clock = clock
        self.lease_s = 2 * settings.timeout_s + 5.0
        """A claim outlives an attempt (its timeout) and settling it: then another replica retries."""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http = httpx.AsyncClient(timeout=settings.timeout_s, follow_redirects=False, trust_env=False)

    def start(self) -> None:
        self.outbox.written = self._wake.set
        self._task = asyncio.create_task(self._run(), name="agentship-webhooks")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._http.aclose()

    async def _run(self) -> None:
        while True:
            try:
                batch = await self.outbox.claim(BATCH, self.lease_s, self.settings.max_attempts)
            except StateError:
                batch = []
            except Exception:
                _logger.exception("webhooks: claiming notifications failed")
                batch = []
            if batch:
                await asyncio.gather(*(self._deliver(n) for n in batch))
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_S)

    async def _deliver(self, notice: Notice) -> None:
        try:
            status, wait_s = await self._post(notice)
        except Exception:
            _logger.exception("webhooks: delivering %s to %s failed", notice.event_id, notice.destination)
            status, wait_s = 0, 0.0
        try:
            await self._settle(notice, status, wait_s)
        except StateError:
            pass  # the lease runs out and the row is claimed again: a duplicate, never a loss

    async def _post(self, notice: Notice) -> tuple[int, float]:
        """(the receiver's status, 0 if none; the wait it asked for) of one attempt; -1: dropped."""
        own = self.headers.get(notice.kind)
        extra = await own(notice) if own is not None else {}
        if extra is None:
            return -1, 0.0
        body = json.dumps(notice.payload, separators=(",", ":")).encode()
        stamp = int(self.clock())
        headers = {
            "content-type": "application/json",
            "user-agent": "agentship-webhooks",
            "webhook-id": notice.event_id,
            "webhook-timestamp": str(stamp),
            **extra,
        }
        if self.settings.keys:
            headers["webhook-signature"] = signature(self.settings.keys, notice.event_id, stamp, body)
        try:
            reply = await self._http.post(notice.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            _logger.warning(
                "webhooks: %s to %s, attempt %d: %s",
                notice.event_id,
                notice.destination,
                notice.attempt,
                type(exc).__name__,
            )
            return 0, 0.0
        return reply.status_code, _retry_after(reply)

    async def _settle(self, notice: Notice, status: int, wait_s: float) -> None:
        if status == -1:
            await self.outbox.retry(notice, 0, 0.0, give_up=True)
            DELIVERIES.labels(notice.kind, "dropped").inc()
            return
        if 200 <= status < 300:
            await self.outbox.delivered(notice, status)
            DELIVERIES.labels(notice.kind, "delivered").inc()
            return
        give_up = notice.attempt >= self.settings.max_attempts
        wait_s = max(wait_s, self.settings.wait_s(notice.attempt))
        await self.outbox.retry(notice, status, wait_s, give_up=give_up)
        DELIVERIES.labels(notice.kind, "given_up" if give_up else "retried").inc()
        _logger.warning(
            "webhooks: %s to %s, attempt %d of %d: %s; %s",
            notice.event_id,
            notice.destination,
            notice.attempt,
            self.settings.max_attempts,
            f"status {status}" if status else "no answer",
            "given up" if give_up else f"again in {wait_s:g}s",
        )
