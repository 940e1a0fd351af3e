"""Kamailio's own writes to Redis (sync, redis-py): the routing table it reads, the conversation records
and the event log it keeps, and the notifications it hands to the controller for calls with a feature.

The layout is the controller's (controller/adapters/redis_schema.py, controller/wire.py): a
conversation Kamailio starts is one the transfer engine can pick up when its first `#` arrives.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller.adapters.redis_schema import EventLog, flat_fields, leg_record, queue_ended, queue_started, text
from controller.routing.table import RoutingTable
from controller.wire import CONV_KEY, INBOUND_STREAM, LEG_KEY, ROUTES_CURRENT_KEY, ROUTES_KEY

__all__ = ["ProxyRecords", "RecordLimits", "TableCache"]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class RecordLimits:
    max_call_s: int
    ttl_after_end_s: int
    events_maxlen: int = 1_000_000
    events_retention_s: int = 7 * 86400
    #: Kamailio's notification stream for the controller is capped: a controller away for long loses
    #: the oldest, never the proxy's memory.
    inbound_maxlen: int = 1_000_000


class TableCache:
    """The routing table of the version new calls use: read once per version, kept in this process.

    Every call reads the version (one GET); the table itself only when the version changed. A call
    decides with one whole table, the old or the new, never a mix. When Redis has no table (yet), the
    last one this process loaded is used; with none at all the call is refused (503), never guessed."""

    def __init__(self) -> None:
        self.version: str | None = None
        self.table: RoutingTable | None = None

    def current(self, redis: Any) -> RoutingTable | None:
        version = redis.get(ROUTES_CURRENT_KEY)
        if version is None:
            return self.table
        version = text(version)
        if version != self.version:
            raw = redis.get(ROUTES_KEY.format(version))
            if raw is None:
                return self.table  # a version whose table is gone: keep deciding with the last one
            self.table = RoutingTable.from_json_data(json.loads(raw))
            self.version = version
        return self.table


class ProxyRecords:
    """Each call event is one pipelined round trip. Not a MULTI: nothing reads a record half-written
    (the engine reads a conversation when its first `#` arrives, long after), and MULTI/EXEC would cost
    Redis two more commands per write on every ordinary call."""

    def __init__(self, redis: Any, limits: RecordLimits, clock: Callable[[], int] = now_ms):
        self.redis = redis
        self.limits = limits
        self.clock = clock
        self.events = EventLog(limits.events_retention_s, limits.events_maxlen, clock)

    def leg(self, leg_id: str) -> dict[str, Any] | None:
        """A leg the controller originates (its INVITE is routed from what the engine stored)."""
        return leg_record(self.redis.hgetall(LEG_KEY.format(leg_id)))

    def conversation_facts(self, conversation_id: str, names: tuple[str, ...]) -> dict[str, str]:
        """Some fields of a conversation's record (not the machine's snapshot beside them)."""
        values = self.redis.hmget(CONV_KEY.format(conversation_id), list(names))
        return {name: text(value) for name, value in zip(names, values, strict=True) if value is not None}

    def started(self, conversation_id: str, call_id: str, fields: dict[str, Any]) -> None:
        """A routed call: its conversation, indexed by Call-ID, and call.started."""
        pipe = self.redis.pipeline(transaction=False)
        queue_started(pipe, self.events, conversation_id, call_id, fields, self.limits.max_call_s)
        pipe.execute()

    def event(self, event: str, conversation_id: str, fields: dict[str, Any]) -> None:
        """An event-log entry only (a call refused before it had a conversation)."""
        pipe = self.redis.pipeline(transaction=False)
        self.events.queue(pipe, event, conversation_id, fields)
        pipe.execute()

    def answered(self, conversation_id: str, fields: dict[str, Any], record: dict[str, Any]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(CONV_KEY.format(conversation_id), mapping=flat_fields(record))
        self.events.queue(pipe, "call.answered", conversation_id, fields)
        pipe.execute()

    def ended(self, event: str, conversation_id: str, call_id: str, fields: dict[str, Any]) -> None:
        """The conversation is over: marked ended, its outcome logged, its keys expire soon."""
        pipe = self.redis.pipeline(transaction=False)
        queue_ended(pipe, self.events, event, conversation_id, call_id, fields, self.limits.ttl_after_end_s)
        pipe.execute()

    def notify_controller(self, message: dict[str, Any]) -> None:
        """A JSON-RPC 2.0 notification for the transfer engine (calls whose state machine runs)."""
        self.redis.xadd(INBOUND_STREAM, {"m": json.dumps(message, separators=(",", ":"))},
                        maxlen=self.limits.inbound_maxlen, approximate=True)
