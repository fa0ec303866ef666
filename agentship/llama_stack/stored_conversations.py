"""The conversation map in the state store: any replica, or the same one after a restart,
continues any conversation (its server session or conversation, or the history the server does
not keep). Turns of one conversation run one at a time across replicas (a lease in the store).

A turn's state is written only while the conversation's lease is still this replica's (a turn
whose lease was taken over writes nothing). Unlike the per-process map, it does not delete a
server's session when a conversation expires:
the server's own retention does; and closing a model leaves every conversation to continue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from agentship.llama_stack.conversations import ConversationState
from agentship.state import StateStore, trim_history


class StoredConversationMap:
    def __init__(self, store: StateStore, backend: str = "llama-stack") -> None:
        self.store = store
        self._map = store.conversations(backend)

    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        return self._held(key)

    @asynccontextmanager
    async def _held(self, key: str) -> AsyncIterator[None]:
        async with self.store.locks.hold(key):
            yield

    async def get(self, key: str) -> ConversationState | None:
        state = await self._map.get(key)
        if state is None:
            return None
        return ConversationState(server_id=state.get("server_id"), history=list(state.get("history") or []))

    async def set(self, key: str, state: ConversationState) -> None:
        history = trim_history(list(state.history), self.store.settings.max_items)
        await self._map.put(key, {"server_id": state.server_id, "history": history}, leases=self.store.locks)

    async def forget(self, key: str) -> None:
        await self._map.forget(key)

    async def aclose(self) -> None:
        await self.store.aclose()
