"""Admission: at most ``limit`` requests in flight per worker, each holding one :class:`Slot`."""

from __future__ import annotations

from agentship.server.core.errors import HttpError


class Slot:
    """One admitted request's place under the limit; released exactly once."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._held = True

    def transfer(self) -> Slot:
        """The same place, now held by whoever takes the returned slot (work that outlives its
        request); releasing this one does nothing."""
        slot = Slot(self._admission)
        slot._held, self._held = self._held, False
        return slot

    def release(self) -> None:
        if self._held:
            self._held = False
            self._admission.in_flight -= 1


class Admission:
    def __init__(self, limit: int, retry_after_s: int) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.in_flight = 0

    def admit(self) -> Slot:
        """A slot, taken before the first await (so concurrent arrivals cannot all slip in);
        :class:`HttpError` 429 with ``Retry-After`` when the limit is reached."""
        if self.in_flight >= self.limit:
            raise HttpError(
                429,
                "rate_limit_error",
                f"the server is at its limit of {self.limit} requests in flight; retry later",
                code="server_busy",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        self.in_flight += 1
        return Slot(self)
