"""Stored responses, and the background runs among them.

Consistency, per operation (every one is a single transaction):

* :meth:`ResponseStore.save` writes a response and its output items at once: a reader sees the
  whole response or none of it, on any replica, as soon as ``save`` returns.
* :meth:`ResponseStore.get`, :meth:`~ResponseStore.items` and :meth:`~ResponseStore.delete`
  only ever see the caller's own user's records.
* :meth:`ResponseStore.delete` checks the user first: another user's id deletes nothing.
* A conversation's history is kept once: a response continuing another (``parent_id``) stores
  only its own items, and :meth:`ResponseStore.continued` reads the rest back up the chain, in one
  statement, as far as ``max_items`` needs. A parent is never deleted before its children hold
  their whole history: :meth:`~ResponseStore.delete` and the purge write it into them first, in
  the same transaction, and the foreign key on ``parent_id`` refuses a child saved onto a parent
  deleted meanwhile (:meth:`~ResponseStore.save` then stores its whole history itself).
* A background run is owned by one replica at a time: :meth:`RunStore.claim` is a
  compare-and-swap on its lease, and every write of the owner is guarded by it, so a replica
  whose lease was taken over can no longer write. Leases are written and compared on the
  database's clock (:func:`~agentship.state.engine.db_now`), never a replica's own.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import (
    Integer,
    Text,
    bindparam,
    column,
    delete,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agentship.errors import StateConflictError
from agentship.state.chains import TIP_COLUMNS, anchor_children, assemble, chain_query, inherited
from agentship.state.engine import autocommit, db_now, transaction
from agentship.state.outbox import Outbox, response_rows
from agentship.state.records import (
    TERMINAL,
    RunControl,
    StoredResponse,
    anchored,
    trim_history,
)
from agentship.state.schema import response_events, response_items, responses
from agentship.state.settings import StateSettings

_COLUMNS = (
    "id user_id conversation_id previous_response_id status background request input history output response "
    "created_at expires_at attempt released cancel_requested owner lease_until parent_id"
).split()
_WRITTEN_ONCE = frozenset({"id", "history", "parent_id"})
"""Columns a response's first save sets for good (a later save, of a retry or a run's end, keeps
them: its parent may have been deleted since, and its whole history written in its place)."""


def _record(row: Any) -> StoredResponse:
    return StoredResponse(**{name: getattr(row, name) for name in _COLUMNS})


def _values(rec: StoredResponse, now: float) -> dict[str, Any]:
    values = {name: getattr(rec, name) for name in _COLUMNS}
    values["updated_at"] = now
    return values


@functools.cache
def _upsert(dialect: str, prefix: str = "") -> Any:
    """A response's insert-or-replace, built once, its values bound to parameters named as the
    columns, with ``prefix`` (SQLAlchemy otherwise builds and keys the statement on every save)."""
    insert_ = (pg_insert if dialect == "postgresql" else sqlite_insert)(responses)
    names = [*_COLUMNS, "updated_at"]
    statement = insert_.values(
        {name: bindparam(prefix + name, type_=responses.c[name].type) for name in names}
    )
    replaced = {name: statement.excluded[name] for name in names if name not in _WRITTEN_ONCE}
    return statement.on_conflict_do_update(index_elements=[responses.c.id], set_=replaced)


@functools.cache
def _pg_save() -> Any:
    """A response never saved before and its output items, in one statement (PostgreSQL): the
    response's upsert, and its items from one JSON parameter (``item_rows``), so one round trip
    with no BEGIN and COMMIT. The statement is the transaction: a reader sees both or neither.
    Its parameters are the columns' names prefixed ``saved_`` (an INSERT given a parameter named
    as one of its columns sets that column)."""
    saved = _upsert("postgresql", "saved_").returning(responses.c.id, responses.c.user_id).cte("saved")
    rows = (
        func.jsonb_to_recordset(bindparam("item_rows", type_=JSONB))
        .table_valued(column("position", Integer), column("item_id", Text), column("item", JSONB))
        .render_derived(name="item_rows", with_types=True)
    )
    chosen = select(saved.c.id, rows.c.position, rows.c.item_id, saved.c.user_id, rows.c.item).join_from(
        saved, rows, true()
    )
    return insert(response_items).from_select(
        ["response_id", "position", "item_id", "user_id", "item"], chosen
    )


def _item_rows(rec: StoredResponse) -> list[dict[str, Any]]:
    """The rows of ``rec``'s output items that have ids, at their positions in the output."""
    output = (rec.response or {}).get("output") or []
    return [
        {"position": i, "item_id": str(item["id"]), "item": item}
        for i, item in enumerate(output)
        if item.get("id")
    ]


class ResponseStore:
    def __init__(
        self, engine: AsyncEngine, settings: StateSettings, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock

    def new_record(self, **fields: Any) -> StoredResponse:
        now = self.clock()
        return StoredResponse(**fields, created_at=now, expires_at=now + self.settings.ttl_s)

    async def save(
        self, rec: StoredResponse, events: list[dict[str, Any]] | None = None, *, fresh: bool = False
    ) -> None:
        """Insert or replace ``rec`` with its output items, and (a background run's first) events.
        Replacing keeps what hangs off the record (a background run's event log). ``fresh``: the
        record was never saved before (a new id's first attempt), so it has no items to replace.

        A lease in ``rec`` (``lease_until``, on this replica's clock) is written as the same time
        left on the database's clock. A record whose parent is deleted as it is first saved is
        saved with its whole history instead (from ``rec.inherited``), and kept so.
        """
        try:
            await self._save(rec, events, fresh)
        except StateConflictError:
            if rec.parent_id is None or rec.inherited is None:
                raise
            whole = anchored(rec, rec.inherited, self.settings.max_items)
            await self._save(whole, events, fresh)
            rec.history, rec.parent_id, rec.inherited = whole.history, None, None

    async def _save(self, rec: StoredResponse, events: list[dict[str, Any]] | None, fresh: bool) -> None:
        now = self.clock()
        values = _values(rec, now)
        dialect = self.engine.dialect.name
        if rec.owner is not None and rec.lease_until:  # an expression: the statement is built for it
            values["lease_until"] = db_now(self.engine) + max(0.0, rec.lease_until - now)
            upsert = (pg_insert if dialect == "postgresql" else sqlite_insert)(responses)
            replaced = {k: v for k, v in values.items() if k not in _WRITTEN_ONCE}
            statement, params = (
                upsert.values(**values).on_conflict_do_update(index_elements=[responses.c.id], set_=replaced),
                {},
            )
        elif dialect == "postgresql" and fresh and not events:
            async with autocommit(self.engine) as conn:
                params = {f"saved_{name}": value for name, value in values.items()}
                await conn.execute(_pg_save(), {**params, "item_rows": _item_rows(rec)})
            return
        else:
            statement, params = _upsert(dialect), values
        async with transaction(self.engine) as conn:
            await conn.execute(statement, params)
            await self._write_items(conn, rec, replace=not fresh)
            if events:
                rows = [{"response_id": rec.id, "seq": int(e["sequence_number"]), "event": e} for e in events]
                await conn.execute(insert(response_events), rows)

    @staticmethod
    async def _write_items(conn: AsyncConnection, rec: StoredResponse, replace: bool = True) -> None:
        if replace:
            await conn.execute(delete(response_items).where(response_items.c.response_id == rec.id))
        rows = [{"response_id": rec.id, "user_id": rec.user_id, **row} for row in _item_rows(rec)]
        if rows:
            await conn.execute(insert(response_items), rows)

    async def get(self, user_id: str, response_id: str) -> StoredResponse | None:
        async with autocommit(self.engine) as conn:
            row = (
                await conn.execute(
                    select(responses).where(
                        responses.c.id == response_id,
                        responses.c.user_id == user_id,
                        responses.c.expires_at > self.clock(),
                    )
                )
            ).first()
        return None if row is None else _record(row)

    async def get_any(self, response_id: str) -> StoredResponse | None:
        """A response whoever it belongs to (for the server's own bookkeeping, never a client)."""
        async with autocommit(self.engine) as conn:
            row = (await conn.execute(select(responses).where(responses.c.id == response_id))).first()
        return None if row is None else _record(row)

    async def continued(
        self, user_id: str, response_id: str
    ) -> tuple[StoredResponse, list[dict[str, Any]]] | None:
        """The user's unexpired response, and the context a response continuing it starts from
        (its whole history, then its output), in one statement; None if the user has none such."""
        params = {
            "start": response_id,
            "user": user_id,
            "now": self.clock(),
            "seen": 0,
            "max_items": self.settings.max_items,
        }
        async with autocommit(self.engine) as conn:
            rows = (await conn.execute(chain_query(self.engine.dialect.name, tip=True), params)).all()
        if not rows:
            return None
        tip = rows[-1]
        fields = {name: getattr(tip, name) for name in TIP_COLUMNS}
        rec = StoredResponse(**fields, history=tip.history, output=tip.output, parent_id=tip.parent_id)
        return rec, assemble(rows)

    async def history(self, rec: StoredResponse) -> list[dict[str, Any]]:
        """Every item ``rec``'s agent was given as input (its own after its parent's context)."""
        if rec.parent_id is None:
            return rec.history
        async with autocommit(self.engine) as conn:
            before = await inherited(
                conn, rec.user_id, rec.parent_id, len(rec.history), self.settings.max_items
            )
        return trim_history([*before, *rec.history], self.settings.max_items)

    async def delete(self, user_id: str, response_id: str) -> bool:
        """Delete the user's response with its items and events; False (nothing deleted) if the
        user has no response of that id. Its children keep their whole history: it is written
        into them first."""
        async with transaction(self.engine) as conn:
            owned = await conn.execute(
                select(responses.c.id)
                .where(responses.c.id == response_id, responses.c.user_id == user_id)
                .with_for_update()
            )
            if owned.first() is None:
                return False
            await anchor_children(conn, [response_id], self.settings.max_items, live_after=None)
            await conn.execute(delete(response_events).where(response_events.c.response_id == response_id))
            await conn.execute(delete(response_items).where(response_items.c.response_id == response_id))
            await conn.execute(delete(responses).where(responses.c.id == response_id))
        return True

    async def items(self, user_id: str, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The user's stored output items with these ids (the newest, if an id repeats)."""
        if not item_ids:
            return {}
        query = (
            select(response_items.c.item_id, response_items.c.item)
            .join(responses, responses.c.id == response_items.c.response_id)
            .where(
                response_items.c.user_id == user_id,
                response_items.c.item_id.in_(list(item_ids)),
                responses.c.expires_at > self.clock(),
            )
            .order_by(responses.c.created_at)
        )
        async with autocommit(self.engine) as conn:
            return {row.item_id: dict(row.item) for row in await conn.execute(query)}


class RunStore(ResponseStore):
    """Background runs: leases, their event log, cancellation, and the webhooks announcing their
    end (written with it, into :attr:`outbox`, for each of :attr:`webhook_urls`)."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: StateSettings,
        outbox: Outbox,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(engine, settings, clock)
        self.outbox = outbox
        self.webhook_urls: tuple[str, ...] = ()

    async def claim(self, response_id: str, owner: str, lease_s: float) -> StoredResponse | None:
        """Take the run if it is unfinished and unowned (or its owner's lease ran out)."""
        now = db_now(self.engine)
        async with transaction(self.engine) as conn:
            taken = await conn.execute(
                update(responses)
                .where(
                    responses.c.id == response_id,
                    responses.c.status.in_(("queued", "in_progress")),
                    (responses.c.lease_until.is_(None)) | (responses.c.lease_until < now),
                )
                .values(
                    owner=owner,
                    lease_until=now + lease_s,
                    attempt=responses.c.attempt + 1,
                    updated_at=self.clock(),
                )
            )
            if not taken.rowcount:
                return None
            row = (await conn.execute(select(responses).where(responses.c.id == response_id))).first()
        return None if row is None else _record(row)

    async def heartbeat(self, response_id: str, owner: str, lease_s: float) -> RunControl:
        async with transaction(self.engine) as conn:
            kept = await conn.execute(
                update(responses)
                .where(responses.c.id == response_id, responses.c.owner == owner)
                .values(lease_until=db_now(self.engine) + lease_s)
            )
            cancel = (
                await conn.execute(select(responses.c.cancel_requested).where(responses.c.id == response_id))
            ).scalar()
        return RunControl(still_owner=bool(kept.rowcount), cancel_requested=bool(cancel))

    async def start(self, response_id: str, owner: str) -> bool:
        """Mark a queued run ``in_progress``: its owner has started it. False if it was not queued."""
        async with transaction(self.engine) as conn:
            started = await conn.execute(
                update(responses)
                .where(
                    responses.c.id == response_id, responses.c.owner == owner, responses.c.status == "queued"
                )
                .values(status="in_progress", updated_at=self.clock())
            )
        return bool(started.rowcount)

    async def append(
        self, response_id: str, owner: str, first_seq: int, events: list[dict[str, Any]]
    ) -> bool:
        """Append events ``first_seq…``; False (nothing written) if ``owner`` lost the run."""
        if not events:
            return True
        async with transaction(self.engine) as conn:
            if not await self._owns(conn, response_id, owner):
                return False
            rows = [
                {"response_id": response_id, "seq": first_seq + i, "event": e} for i, e in enumerate(events)
            ]
            await conn.execute(insert(response_events), rows)
        return True

    async def _owns(self, conn: AsyncConnection, response_id: str, owner: str) -> bool:
        found = await conn.execute(
            select(responses.c.id)
            .where(responses.c.id == response_id, responses.c.owner == owner)
            .with_for_update()
        )
        return found.first() is not None

    async def events_after(self, response_id: str, after_seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        query = (
            select(response_events.c.event)
            .where(response_events.c.response_id == response_id, response_events.c.seq > after_seq)
            .order_by(response_events.c.seq)
            .limit(limit)
        )
        async with autocommit(self.engine) as conn:
            return [dict(row.event) for row in await conn.execute(query)]

    async def finish(
        self, rec: StoredResponse, owner: str, first_seq: int, events: list[dict[str, Any]]
    ) -> bool:
        """Write the run's last events and its final state at once, if ``owner`` still holds it,
        with the webhooks announcing its end."""
        notices = response_rows(rec, self.webhook_urls, self.clock(), self.settings.ttl_s)
        async with transaction(self.engine) as conn:
            if not await self._owns(conn, rec.id, owner):
                return False
            if events:
                rows = [
                    {"response_id": rec.id, "seq": first_seq + i, "event": e} for i, e in enumerate(events)
                ]
                await conn.execute(insert(response_events), rows)
            values = _values(replace(rec, owner=None, lease_until=None), self.clock())
            kept = {name: value for name, value in values.items() if name not in _WRITTEN_ONCE}
            await conn.execute(update(responses).where(responses.c.id == rec.id).values(**kept))
            await self._write_items(conn, rec)
            await Outbox.write(conn, notices)
        if notices:
            self.outbox.written()
        return True

    async def release(self, response_id: str, owner: str) -> None:
        """Give a run up (this replica is stopping): another replica takes it over at once. The
        run's ``released`` count goes up, so an attempt given up does not count as one that
        died (the cap on attempts is on those)."""
        async with transaction(self.engine) as conn:
            await conn.execute(
                update(responses)
                .where(responses.c.id == response_id, responses.c.owner == owner)
                .values(lease_until=0.0, released=responses.c.released + 1)
            )

    async def request_cancel(self, user_id: str, response_id: str) -> StoredResponse | None:
        async with transaction(self.engine) as conn:
            await conn.execute(
                update(responses)
                .where(
                    responses.c.id == response_id,
                    responses.c.user_id == user_id,
                    responses.c.status.notin_(tuple(TERMINAL)),
                )
                .values(cancel_requested=True)
            )
        return await self.get(user_id, response_id)

    async def orphans(self, limit: int = 20) -> list[str]:
        """Unfinished background runs whose owner's lease ran out."""
        now = db_now(self.engine)
        query = (
            select(responses.c.id)
            .where(
                responses.c.background.is_(True),
                responses.c.status.in_(("queued", "in_progress")),
                responses.c.lease_until < now,
            )
            .limit(limit)
        )
        async with autocommit(self.engine) as conn:
            return [row.id for row in await conn.execute(query)]
