"""The async engine for a state URL, the one place database failures become errors, and the
database's clock (leases compare against it, never against a replica's own)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Float, cast, event, func
from sqlalchemy.exc import DisconnectionError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.sql.elements import ColumnElement

from agentship.errors import StateConflictError, StateError
from agentship.state.settings import StateSettings

_logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_POOL_WAIT_S = 60.0
"""How long a transaction waits for the SQLite engine's one connection before it fails."""


POOL_TIMEOUT_S = 10.0
"""How long an operation waits for a free connection of a full pool before it fails (503)."""


def create_engine(settings: StateSettings) -> AsyncEngine:
    """An engine for the current event loop (asyncpg connections belong to the loop that made them),
    with a pool of ``settings.pool_size`` connections and ``settings.pool_overflow`` more (on
    PostgreSQL; SQLite's engine has one connection, see below)."""
    pool: dict[str, Any] = {
        "pool_size": settings.pool_size,
        "max_overflow": settings.pool_overflow,
        "pool_timeout": POOL_TIMEOUT_S,
    }
    if settings.is_sqlite:
        # SQLite has one writer at a time, and every transaction here takes the write lock (see
        # _begin): one connection per engine queues this process's transactions fairly, in the
        # pool, instead of leaving them to race in SQLite's busy handler, where a burst of a few
        # hundred conversations starved some of them past the busy timeout.
        engine = create_async_engine(
            settings.url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            poolclass=AsyncAdaptedQueuePool,  # SQLAlchemy before 2.0.38 gives aiosqlite a NullPool
            pool_size=1,
            max_overflow=0,
            pool_timeout=SQLITE_POOL_WAIT_S,
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _: Any) -> None:
            dbapi_connection.isolation_level = None  # the driver's own BEGIN off: see _begin
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
                cursor.execute("PRAGMA foreign_keys = ON")
            finally:
                cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(connection: Any) -> None:
            # Every transaction takes the write lock when it begins. A deferred one that reads,
            # then writes, fails at once with "database is locked" when another process wrote
            # in between (WAL cannot upgrade a stale read snapshot); the busy timeout never
            # applies to it. IMMEDIATE waits its turn instead.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    engine = create_async_engine(
        settings.url, **pool, pool_recycle=1800, connect_args={"timeout": 5, "command_timeout": 30}
    )

    @event.listens_for(engine.sync_engine, "checkout")
    def _alive(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        # A connection the server closed (a restart, an idle timeout) is replaced, not used,
        # without a round trip: asyncpg has seen the socket close. SQLAlchemy's pre-ping would
        # cost three (BEGIN, an empty query, ROLLBACK) before every transaction. A connection
        # that dies unseen fails its first statement; the pool then drops every connection
        # older than it, so one operation fails (a 503) and the next reconnects.
        raw = getattr(dbapi_connection, "_connection", None)
        if raw is not None and raw.is_closed():
            raise DisconnectionError("the state store closed this connection")

    return engine


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One transaction; a database failure becomes :class:`StateError` (its detail is logged)."""
    try:
        async with engine.begin() as connection:
            yield connection
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(exc) from exc


def _unavailable(exc: BaseException) -> StateError:
    if isinstance(exc, IntegrityError):  # the caller decides whether this is a failure
        _logger.info("state store refused a write: %s", str(exc).splitlines()[0][:300])
        return StateConflictError("the state store refused a conflicting write; retry later")
    _logger.warning("state store failed: %s: %s", type(exc).__name__, str(exc).splitlines()[0][:300])
    return StateError("the state store is unavailable; retry later")


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose every statement is a transaction of its own on PostgreSQL: one round
    trip each, with no BEGIN and COMMIT around it. For reads of committed rows, and for writes
    made in one statement. On SQLite, where a transaction costs no round trip, it is
    :func:`transaction`."""
    if engine.dialect.name != "postgresql":
        async with transaction(engine) as conn:
            yield conn
        return
    try:
        async with engine.connect() as connection:
            yield await connection.execution_options(isolation_level="AUTOCOMMIT")
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(exc) from exc


def db_now(engine: AsyncEngine) -> ColumnElement[float]:
    """The database's clock, as epoch seconds: what every lease is written and compared with.

    Replicas' clocks drift apart; a lease compared against each one's own clock could be taken
    over while its holder still runs (a clock ahead) or kept long after its holder died.
    """
    return clock_sql(engine.dialect.name)


def clock_sql(dialect: str) -> ColumnElement[float]:
    """:func:`db_now` for a dialect's name."""
    if dialect == "postgresql":
        return cast(func.extract("epoch", func.clock_timestamp()), Float)
    return (func.julianday("now") - 2440587.5) * 86400.0  # SQLite: days since the epoch of Julian days


async def settled[T](operation: Awaitable[T]) -> T:
    """Await ``operation`` to its end even if the caller is cancelled meanwhile (then re-raise the
    cancellation): a rollback or a restore that is cut off half-way would leave half a state."""
    task = asyncio.ensure_future(operation)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as exc:
            cancelled = cancelled or exc
    if cancelled is not None:
        if not task.cancelled():
            task.exception()  # retrieved, so never logged as "never retrieved"
        raise cancelled
    return task.result()
