"""One state store for conversations, stored responses and background runs.

SQLAlchemy (async) over SQLite by default and PostgreSQL in production; schema versions are
alembic migrations. See :mod:`agentship.state.settings` for the URL and retention settings and
:mod:`agentship.state.responses` for the consistency each operation gives.
"""

from agentship.state.records import (
    ReplayState,
    RunControl,
    StoredResponse,
    conversation_key,
    replay_state,
    trim_history,
)
from agentship.state.settings import StateSettings
from agentship.state.store import StateStore, replica_id

__all__ = [
    "ReplayState",
    "RunControl",
    "StateSettings",
    "StateStore",
    "StoredResponse",
    "conversation_key",
    "replay_state",
    "replica_id",
    "trim_history",
]
