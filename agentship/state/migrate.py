"""Schema versions, managed with alembic (as MLflow manages its own).

:func:`ensure_schema` brings a store to the newest revision this agentship knows, and refuses
one that is newer, since an older server could corrupt what a newer one wrote. Replicas that
start together serialise on a PostgreSQL advisory lock; on SQLite a lost race is retried.

A store already at :data:`HEAD` is recognised with one read, without importing alembic (a tenth
of the server's start-up otherwise); alembic is imported only to create or upgrade a schema.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from agentship.errors import SchemaTooNewError, StateError
from agentship.state.engine import transaction

if TYPE_CHECKING:
    from alembic.config import Config

_logger = logging.getLogger(__name__)

HEAD = "0011"
"""The newest revision of ``migrations/versions`` (``tests/state/test_store.py`` checks that
alembic agrees)."""

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK = 0x61676E74  # pg_advisory_xact_lock key: "agnt"


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision, as alembic reads it from the scripts."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> str:
    from alembic import command
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    config = _config(connection)
    current = current_revision(connection)
    if current is not None:
        try:
            ScriptDirectory.from_config(config).get_revision(current)
        except CommandError as exc:
            raise SchemaTooNewError(
                f"the state store's schema is at revision {current!r}, newer than this agentship knows "
                f"(newest: {head_revision()!r}); upgrade agentship, or point it at another store"
            ) from exc
    if current != head_revision():
        if current is None:  # a new store: routine, not news
            _logger.info("state store: creating its schema (%s)", head_revision())
        else:
            _logger.warning("state store: upgrading schema from %s to %s", current, head_revision())
        command.upgrade(config, "head")
    return head_revision()


_process_lock = threading.Lock()
"""Alembic's environment is process-global: one migration at a time per process, on any loop."""


async def ensure_schema(engine: AsyncEngine, attempts: int = 3) -> str:
    """Upgrade the store to the head revision (idempotent); return the revision."""
    if await _at_head(engine):
        return HEAD
    await asyncio.to_thread(_process_lock.acquire)
    try:
        return await _ensure(engine, attempts)
    finally:
        _process_lock.release()


async def _at_head(engine: AsyncEngine) -> bool:
    """Whether the store's schema is at :data:`HEAD`, read without alembic; False when it cannot
    be read (a new store, or a failure :func:`_ensure` will report)."""
    try:
        async with engine.connect() as connection:
            found = (
                (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
            )
    except (SQLAlchemyError, OSError):
        return False
    return found == [HEAD]


async def _ensure(engine: AsyncEngine, attempts: int) -> str:
    for attempt in range(1, attempts + 1):
        try:
            async with transaction(engine) as connection:
                if engine.dialect.name == "postgresql":
                    await connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                    )
                return await connection.run_sync(_upgrade)
        except SchemaTooNewError:
            raise
        except StateError:
            if attempt == attempts:
                raise
            await asyncio.sleep(0.5 * attempt)  # another replica may be creating the tables
    raise AssertionError("unreachable")
