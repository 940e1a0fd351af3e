"""Redis store: conversations, the call-id index, the event log and the registrar directory.

Key schema (every per-call key expires; see docs/ARCHITECTURE.md):
  xfer:conv:{conversation}   hash   one conversation's facts          TTL max call length, then ttl_after_end
  xfer:call:{sip call-id}    string conversation id of a SIP dialog    same TTLs as its conversation
  xfer:events                stream the record of every call outcome   trimmed by length, never per call
  xfer:kamailio              stream notifications from Kamailio        consumer group "controllers"
  xfer:registrar             hash   user@domain -> digest password     replaced whole at start-up
  xfer:leg:{leg}             hash   a leg the controller originates     TTL max call length
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from controller.adapters.redis_schema import (
    EventLog,
    flat,
    leg_record,
    queue_ended,
    queue_started,
    text,
)
from controller.wire import CALL_KEY, CONV_KEY, EVENTS_STREAM, INBOUND_GROUP, INBOUND_STREAM, LEG_KEY, REGISTRAR_KEY

__all__ = ["CALL_KEY", "CONV_KEY", "EVENTS_STREAM", "INBOUND_GROUP", "INBOUND_STREAM", "LEG_KEY", "REGISTRAR_KEY",
           "ConversationStore", "now_ms"]


CALL_INDEX_CACHE = 20_000  # Call-IDs whose conversation the store remembers (least recently used dropped)


def now_ms() -> int:
    return int(time.time() * 1000)




class ConversationStore:
    """Thin async adapter over Redis; knows the key schema and nothing about call logic."""

    def __init__(self, redis: Redis, *, max_call_s: int, ttl_after_end_s: int, events_maxlen: int = 1_000_000,
                 events_retention_s: int = 7 * 86400, clock: Callable[[], int] = now_ms):
        self.redis = redis
        self.clock = clock  # wall-clock ms: event timestamps and the event log's age limit
        self.max_call_s = max_call_s
        self.ttl_after_end_s = ttl_after_end_s
        self.events = EventLog(events_retention_s, events_maxlen, clock)
        self._call_index: OrderedDict[str, str] = OrderedDict()

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def create_conversation(self, conversation_id: str, call_id: str, fields: dict[str, Any]) -> None:
        """Record a new conversation, index it by SIP call-id, and log call.started, in one round trip
        (the layout Kamailio's own writer uses for every routed call: redis_schema.queue_started)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            queue_started(pipe, self.events, conversation_id, call_id, fields, self.max_call_s)
            await pipe.execute()

    async def save_leg(self, leg_id: str, conversation_id: str, call_id: str, targets: list[dict[str, Any]],
                       ring_timeout_ms: int = 0, ng_flags: str = "") -> None:
        """A leg about to be originated: Kamailio's callback for its INVITE reads the targets back, and
        the flags its media is offered with into the conversation's rtpengine call."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(LEG_KEY.format(leg_id), mapping={"conversation": conversation_id, "call_id": call_id,
                                                       "targets": json.dumps(targets),
                                                       "ring_timeout_ms": ring_timeout_ms, "ng_flags": ng_flags})
            pipe.expire(LEG_KEY.format(leg_id), self.max_call_s)
            pipe.set(CALL_KEY.format(call_id), conversation_id, ex=self.max_call_s)
            await pipe.execute()

    async def end_legs(self, legs: dict[str, str]) -> None:
        """Originated legs (leg id -> SIP Call-ID) of an ended conversation expire with it."""
        if legs:
            async with self.redis.pipeline(transaction=False) as pipe:
                for leg_id, call_id in legs.items():
                    pipe.expire(LEG_KEY.format(leg_id), self.ttl_after_end_s)
                    pipe.expire(CALL_KEY.format(call_id), self.ttl_after_end_s)
                await pipe.execute()

    async def get_leg(self, leg_id: str) -> dict[str, Any] | None:
        return leg_record(await self.redis.hgetall(LEG_KEY.format(leg_id)))

    async def conversation_for_call(self, call_id: str) -> str | None:
        """The conversation of a SIP Call-ID. A call's conversation never changes, so what Redis said is
        remembered (the last CALL_INDEX_CACHE calls): each further digit of a call costs no round trip."""
        known = self._call_index.get(call_id)
        if known is not None:
            self._call_index.move_to_end(call_id)
            return known
        value = await self.redis.get(CALL_KEY.format(call_id))
        conversation = value.decode() if isinstance(value, bytes) else value
        if conversation:
            self._call_index[call_id] = conversation
            if len(self._call_index) > CALL_INDEX_CACHE:
                self._call_index.popitem(last=False)
        return conversation

    async def conversations_for_calls(self, call_ids: list[str]) -> list[str | None]:
        """conversation_for_call for many calls in one round trip."""
        if not call_ids:
            return []
        values = await self.redis.mget([CALL_KEY.format(call_id) for call_id in call_ids])
        return [v.decode() if isinstance(v, bytes) else v for v in values]

    async def get_conversation(self, conversation_id: str) -> dict[str, str]:
        raw = await self.redis.hgetall(CONV_KEY.format(conversation_id))
        return {text(k): text(v) for k, v in raw.items()}

    async def get_snapshot(self, conversation_id: str) -> tuple[str | None, str | None]:
        """The state machine's snapshot and the I/O record (JSON), or None where there is none: only the
        two fields the engine needs, not the whole record, once per event."""
        machine, io = await self.redis.hmget(CONV_KEY.format(conversation_id), "machine", "io")
        return (None if machine is None else text(machine)), (None if io is None else text(io))

    async def save_snapshot(self, conversation_id: str, machine: str | None, io: str | None) -> None:
        """Write whichever of the two is given, in one HSET (the record's lifetime is left as it is)."""
        mapping = {name: value for name, value in (("machine", machine), ("io", io)) if value is not None}
        if mapping:
            await self.redis.hset(CONV_KEY.format(conversation_id), mapping=mapping)

    async def update_conversation(self, conversation_id: str, fields: dict[str, Any], *,
                                  event: str | None = None, event_fields: dict[str, Any] | None = None) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(CONV_KEY.format(conversation_id), mapping={k: flat(v) for k, v in fields.items()})
            if event:
                self._xadd(pipe, event, conversation_id, event_fields or fields)
            await pipe.execute()

    async def end_conversation(self, conversation_id: str, call_id: str, fields: dict[str, Any], *,
                               event: str) -> None:
        """Mark the conversation ended, log the outcome, and let its keys expire soon."""
        async with self.redis.pipeline(transaction=False) as pipe:
            queue_ended(pipe, self.events, event, conversation_id, call_id, fields, self.ttl_after_end_s)
            await pipe.execute()

    async def append_event(self, event: str, conversation_id: str, fields: dict[str, Any]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            self._xadd(pipe, event, conversation_id, fields)
            await pipe.execute()

    def _xadd(self, pipe: Any, event: str, conversation_id: str, fields: dict[str, Any]) -> None:
        self.events.queue(pipe, event, conversation_id, fields)

    async def read_events(self, count: int = 1000) -> list[dict[str, Any]]:
        """The most recent event-log entries, oldest first (for the CLI, the demo and tests)."""
        rows = await self.redis.xrevrange(EVENTS_STREAM, count=count)
        out = []
        for entry_id, raw in reversed(rows):
            item = {text(k): text(v) for k, v in raw.items()}
            item["id"] = text(entry_id)
            item["data"] = json.loads(item.get("data", "{}"))
            out.append(item)
        return out

    # -- inbound notifications from Kamailio -----------------------------------------------------
    async def ensure_inbound_group(self) -> None:
        try:
            # from "0": notifications appended while no controller ever ran are processed too
            await self.redis.xgroup_create(INBOUND_STREAM, INBOUND_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read_inbound(self, consumer: str, *, pending: bool, count: int = 200, block_ms: int = 1000,
                           after: str = "0") -> list[tuple[str, bytes]]:
        """Our own unacknowledged notifications (pending=True; those with an id above `after`) or new ones."""
        reply = await self.redis.xreadgroup(INBOUND_GROUP, consumer, {INBOUND_STREAM: after if pending else ">"},
                                            count=count, block=None if pending else block_ms)
        out = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                out.append((text(entry_id), fields.get(b"m", b"")))
        return out

    async def claim_abandoned(self, consumer: str, min_idle_ms: int = 30_000) -> list[tuple[str, bytes]]:
        """Take over notifications a dead replica read but never acknowledged."""
        _next, entries, *_ = await self.redis.xautoclaim(INBOUND_STREAM, INBOUND_GROUP, consumer,
                                                         min_idle_time=min_idle_ms, count=200)
        return [(text(i), f.get(b"m", b"")) for i, f in entries if f]

    async def ack_inbound(self, entry_ids: list[str]) -> None:
        if entry_ids:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xack(INBOUND_STREAM, INBOUND_GROUP, *entry_ids)
                # acknowledged notifications have been applied to the conversation: drop them
                pipe.xdel(INBOUND_STREAM, *entry_ids)
                await pipe.execute()
