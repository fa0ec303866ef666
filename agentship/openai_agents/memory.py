"""Conversation memory for the OpenAI Agents SDK agent: the SDK's own ``SQLAlchemySession``,
over the state store's database.

With a ``conversation_id``, a run reads the conversation's history from its session, and the
SDK adds the turn's items as it goes (the input before the first model call); the session holds
them, and writes them in one statement as the turn is kept. Turns of one
conversation run one at a time, across replicas (a lease in the store), and a turn is all or
nothing (:mod:`agentship.state.turns`): one that fails, is cancelled, trips a guardrail or loses
its lease is taken back before the conversation is let go, and one that a SIGKILL or an outage
cut short is taken back by the next turn. So a retry records the turn once, and a blocked input
is never sent to the model again. The session's writes check the lease in their own
transaction: a turn whose lease was taken over can no longer write. A kept turn stands:
trimming the session to the store's item limit afterwards is best effort.

A conversation of OpenAI's Conversations API (``/v1/conversations``) is this same session: its
items are the session's, written by turns and by the API alike under the same lease
(:mod:`agentship.state.openai_conversations`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession
from agents.items import TResponseInputItem
from agents.memory import SessionSettings
from sqlalchemy.exc import SQLAlchemyError

from agentship.errors import StateError
from agentship.events import AgentEvent, ItemDone, TextDelta
from agentship.inputs import new_turn
from agentship.state import StateStore, conversation_key
from agentship.state.engine import settled
from agentship.state.locks import LOST, Lease, LeaseLostError
from agentship.state.turn_io import TurnStart, append_items, start_turn
from agentship.state.turns import keep_turn, kept_after_all, undo_turn

_logger = logging.getLogger(__name__)


def turn_input(session: TurnSession | None, items: list[TResponseInputItem]) -> list[TResponseInputItem]:
    """What a run hands the SDK as its input: when its session already holds the conversation,
    of what the client sent only the trailing new turn (a client that resends the whole history
    duplicates nothing); a new session is seeded with everything the client sent.

    The SDK then puts the session's history before it itself, with no ``session_input_callback``:
    a callback costs a deep copy of the history and a reference map of it on every turn.
    """
    return new_turn(items) if session is not None and session.holds_history else items  # type: ignore[arg-type,return-value]


class TurnSession(SQLAlchemySession):
    """A conversation's SDK session for one turn, whose writes check the turn's lease."""

    def __init__(self, key: str, store: StateStore, start: TurnStart, template: SQLAlchemySession) -> None:
        # The SDK's own state for a session over this engine, copied from ``template`` (built
        # once): its __init__ builds its tables' metadata anew, a cost on every turn.
        self.__dict__.update(template.__dict__)
        self.session_id = key
        self.store = store
        self.kept = False
        """The turn ended, and was kept (committed)."""
        self._writes: set[asyncio.Task[None]] = set()
        self._pending: list[str] = []
        """The items the turn added and has not written yet, as the SDK serializes them."""
        self._over = False
        self.last_item = 0
        """The id of the last item this turn wrote (0: none yet)."""
        self.written = 0
        """How many items this turn wrote."""
        self._history: list[str] | None = start.history
        self.holds_history = bool(start.history)
        """The session held items when the turn began."""
        self._unfinished: dict[str, str] = {}
        """The text of each message the turn is saying, until it is done (an interrupted turn
        keeps it)."""

    def follow(self, event: AgentEvent) -> None:
        """Follow the turn's output: an unfinished message's text is kept if it is interrupted."""
        if isinstance(event, TextDelta):
            self._unfinished[event.item_id] = self._unfinished.get(event.item_id, "") + event.delta
        elif isinstance(event, ItemDone) and event.item.get("type") == "message":
            self._unfinished.pop(str(event.item.get("id")), None)

    def partial(self) -> list[TResponseInputItem]:
        """The unfinished messages, as ``incomplete`` assistant messages."""
        return [
            {  # type: ignore[misc]
                "type": "message",
                "id": item_id,
                "role": "assistant",
                "status": "incomplete",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
            for item_id, text in self._unfinished.items()
            if text
        ]

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The SDK's read of the session, its database failures a :class:`StateError` (a 503),
        as every other store operation's are. The turn's first read is the history read when
        its lease was taken (:func:`~agentship.state.turns.start_turn`): no round trip. A later
        read writes the items the turn holds first, so it reads them too."""
        history, self._history = self._history, None
        if (
            history is not None
            and not (self.written or self._pending)
            and limit in (None, self.store.settings.max_items)
        ):
            return [item for raw in history if (item := await self._decoded(raw)) is not None]
        await self._flush()
        try:
            return await super().get_items(limit)
        except (SQLAlchemyError, OSError) as exc:
            _logger.warning("state store failed: %s: %s", type(exc).__name__, str(exc).splitlines()[0][:300])
            raise StateError("the state store is unavailable; retry later") from exc

    async def pop_item(self) -> TResponseInputItem | None:
        await self._flush()
        return await super().pop_item()

    async def _decoded(self, raw: str) -> TResponseInputItem | None:
        try:
            return await self._deserialize_item(raw)
        except json.JSONDecodeError:  # skipped, as the SDK's own read skips it
            return None

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """The turn's items, held until the turn is kept (:meth:`close`): written then in one
        statement, however many steps the run took; a turn that fails leaves nothing behind."""
        if not items:
            return
        if self._over:
            raise LeaseLostError("the turn is over; its session takes no more items")
        self._pending += [await self._serialize_item(item) for item in items]

    async def _flush(self) -> None:
        """Write the items the turn holds (never cut off half-way by the turn's cancellation)."""
        data, self._pending = self._pending, []
        if not data:
            return
        write = asyncio.ensure_future(self._insert(data))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        await settled(write)

    async def _insert(self, data: list[str]) -> None:
        """The items, if the lease is still this turn's (the session's row was made, or touched,
        when the turn took its lease)."""
        ids = await append_items(self.store.locks, self.session_id, data)
        self.last_item = max(self.last_item, *ids)
        self.written += len(ids)

    async def close(self, keep: bool) -> None:
        """The turn is over: no more items, and the writes in flight have landed. With ``keep``,
        the items it holds are written (:class:`LeaseLostError` if the lease is no longer this
        turn's); without, they are dropped."""
        self._over = True
        if self._writes:
            await asyncio.wait(set(self._writes))
        if keep:
            await self._flush()
        self._pending = []


class ConversationMemory:
    def __init__(self, store: StateStore) -> None:
        self.store = store
        # Every turn's session starts as a copy of this one. Made now, it also lets the SDK add
        # its SQLite "connect" listener to the engine once: added while another connection is
        # being opened (its listeners iterated across an await), it breaks that connection.
        self._template = SQLAlchemySession(
            "agentship-template",
            engine=store.engine,
            create_tables=False,  # the store's migrations own the schema
            session_settings=SessionSettings(limit=store.settings.max_items),
            ensure_ascii=False,
        )

    @asynccontextmanager
    async def turn(self, user_id: str, conversation_id: str) -> AsyncIterator[TurnSession]:
        """The conversation's session, held for one turn: kept if the block ends normally (then
        trimmed to the limit), taken back if it raises, is cancelled or loses the lease."""
        key = conversation_key(user_id, conversation_id)
        leases = self.store.locks
        limit = self.store.settings.max_items

        async def take() -> TurnStart | None:
            return await start_turn(leases, key, limit)

        async with leases.hold(key, take, turn=True) as lease:
            start: TurnStart = lease.begun
            mark = start.mark
            session = TurnSession(key, self.store, start, self._template)
            try:
                yield session
            except BaseException:
                if lease.interrupted == "interrupt" and not lease.lost:
                    await self._keep_partial(session, lease)
                else:
                    await self._undo(session, lease, mark)
                raise
            lease.stop_keeping()  # the turn is done: from here on nothing cancels it
            if lease.lost:  # (its cancellation was swallowed on the way)
                await self._undo(session, lease, mark)
                raise LeaseLostError(LOST)
            await self._keep(session, lease)
        if start.count is None or start.count + session.written > limit:
            await self.store.trim_session(key)

    @staticmethod
    async def _keep(session: TurnSession, lease: Lease) -> None:
        try:
            await settled(_closed_then(session, lambda: _commit(session, lease), keep=True))
        except StateError:
            lease.unclean = True  # its mark stays: the next turn takes this one back
            raise
        lease.released = session.kept = True

    @classmethod
    async def _keep_partial(cls, session: TurnSession, lease: Lease) -> None:
        """A newer message interrupted the turn: keep what it had said (its unfinished message,
        ``incomplete``) after what the SDK added, so the next turn reads it."""
        await session.add_items(session.partial())
        try:
            await cls._keep(session, lease)
        except StateError:  # its mark stays: the next turn takes this one back
            _logger.warning("could not keep an interrupted turn; the conversation's next turn takes it back")

    @staticmethod
    async def _undo(session: TurnSession, lease: Lease, mark: int) -> None:
        try:
            undone = await settled(
                _closed_then(session, lambda: undo_turn(session.store.locks, lease.key, mark), keep=False)
            )
        except StateError:
            lease.unclean = True  # its mark stays: the conversation's next turn takes it back
            _logger.warning("could not take a failed turn back now; the conversation's next turn will")
        else:
            lease.released = True
            _logger.info("took back %d session items of a failed turn", undone)


async def _closed_then[T](session: TurnSession, ending: Callable[[], Awaitable[T]], *, keep: bool) -> T:
    """Close ``session`` (writing what it holds if ``keep``), then end the turn: ``ending`` is
    called only once the close has succeeded."""
    await session.close(keep)
    return await ending()


async def _commit(session: TurnSession, lease: Lease) -> None:
    """:func:`keep_turn`, settled when the store goes away during it. A commit whose answer is
    lost may have landed: the store is asked which (for as long as the lease would have lasted),
    and the commit tried again only if it did not. Told "failed", a client sends the turn again;
    so a turn is reported failed only if it is not kept."""
    leases = session.store.locks
    expires_at = time.time() + session.store.settings.ttl_s  # a Conversations API conversation's
    try:
        await keep_turn(leases, lease.key, expires_at)
        return
    except LeaseLostError:
        raise
    except StateError as lost:
        failure: StateError = lost
    deadline = asyncio.get_running_loop().time() + leases.lease_s
    pause = 0.2
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(pause)
        pause = min(pause * 2, 2.0)
        try:
            kept = await kept_after_all(leases, lease.key, session.last_item)
            if kept is None:
                await keep_turn(leases, lease.key, expires_at)
                kept = True
        except LeaseLostError:
            raise
        except StateError as again:
            failure = again
            continue
        if kept:
            _logger.info("the store went away while keeping a turn; the turn was kept")
            return
        raise LeaseLostError(LOST) from failure
    raise failure
