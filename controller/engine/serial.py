"""One event at a time per conversation, and no memory kept for conversations that are idle.

Events of one conversation (a digit, Kamailio's notifications, a timer) must be handled in order, one at
a time: each loads the machine's snapshot, decides and saves. A lock per conversation does that; its
entry lives only while somebody holds or waits for it, so ordinary calls that never need the machine
leave nothing behind (a table that only grew was a leak under carrier load). The cluster issue can later
replace this with a lease across replicas behind the same `hold()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["KeyedLocks"]


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    def __len__(self) -> int:
        """How many keys have a lock right now (held or waited for)."""
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            # the last holder or waiter frees the entry, also when it was cancelled while waiting
            self._users[key] -= 1
            if self._users[key] == 0:
                del self._users[key]
                del self._locks[key]
