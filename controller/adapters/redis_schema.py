"""How records are laid out in Redis, shared by the controller's async store and Kamailio's sync writer
(controller/proxy/records.py): one layout, whichever process writes it. Pure, stdlib only."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from controller.wire import CALL_KEY, CONV_KEY, EVENTS_STREAM

__all__ = ["EVENTS_LENGTH_TRIM_EVERY", "EventLog", "event_entry", "events_minid", "flat", "flat_fields", "leg_record",
           "queue_ended", "queue_started", "text"]

EVENTS_LENGTH_TRIM_EVERY = 256  # writes between two trims of the event log by length (per writer)


def flat(value: Any) -> str | int | float:
    """A value as a Redis hash field holds it (None as "", bools as 0/1, anything else as JSON)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | str):
        return value
    return json.dumps(value, default=str)


def flat_fields(fields: dict[str, Any]) -> dict[str, str | int | float]:
    return {k: flat(v) for k, v in fields.items()}


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def event_entry(event: str, conversation_id: str, fields: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """One entry of the event log (xfer:events)."""
    return {"event": event, "conversation": conversation_id, "ts_ms": now_ms,
            "data": json.dumps(fields, default=str, sort_keys=True)}


def events_minid(now_ms: int, retention_s: int) -> int:
    """The oldest entry id the event log keeps (entry ids are milliseconds): trimmed by age on every write."""
    return now_ms - retention_s * 1000


class EventLog:
    """Queues event-log entries on a pipeline (redis-py's sync and asyncio pipelines take the same calls):
    trimmed by age on every write, and by length every EVENTS_LENGTH_TRIM_EVERY writes of this writer
    (Redis applies one trimming strategy per XADD)."""

    def __init__(self, retention_s: int, maxlen: int, clock: Callable[[], int]):
        self.retention_s = retention_s
        self.maxlen = maxlen
        self.clock = clock
        self._written = 0

    def queue(self, pipe: Any, event: str, conversation_id: str, fields: dict[str, Any]) -> None:
        now = self.clock()
        pipe.xadd(EVENTS_STREAM, event_entry(event, conversation_id, fields, now),
                  minid=events_minid(now, self.retention_s), approximate=True)
        self._written += 1
        if self._written % EVENTS_LENGTH_TRIM_EVERY == 0:
            pipe.xtrim(EVENTS_STREAM, maxlen=self.maxlen, approximate=True)


def queue_started(pipe: Any, log: EventLog, conversation_id: str, call_id: str, fields: dict[str, Any],
                  max_call_s: int) -> None:
    """A routed call: its conversation, indexed by Call-ID, and call.started."""
    mapping = flat_fields(fields) | {"call_id": call_id, "state": "routing"}
    pipe.hset(CONV_KEY.format(conversation_id), mapping=mapping)
    pipe.expire(CONV_KEY.format(conversation_id), max_call_s)
    pipe.set(CALL_KEY.format(call_id), conversation_id, ex=max_call_s)
    log.queue(pipe, "call.started", conversation_id, mapping)


def queue_ended(pipe: Any, log: EventLog, event: str, conversation_id: str, call_id: str, fields: dict[str, Any],
                ttl_after_end_s: int) -> None:
    """The conversation is over: marked ended, its outcome logged, its keys expire soon."""
    key = CONV_KEY.format(conversation_id)
    pipe.hset(key, mapping=flat_fields(fields) | {"state": "ended"})
    pipe.expire(key, ttl_after_end_s)
    pipe.expire(CALL_KEY.format(call_id), ttl_after_end_s)
    log.queue(pipe, event, conversation_id, fields)


def leg_record(raw: dict[Any, Any]) -> dict[str, Any] | None:
    """A leg's hash (xfer:leg:<leg>) as read back, its targets decoded; None when there is none."""
    if not raw:
        return None
    leg = {text(k): text(v) for k, v in raw.items()}
    leg["targets"] = json.loads(leg.get("targets", "[]"))
    return leg
