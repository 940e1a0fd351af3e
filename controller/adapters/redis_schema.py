"""How records are laid out in Redis, shared by the controller's async store and Kamailio's sync writer
(controller/proxy/records.py): one layout, whichever process writes it. Pure, stdlib only."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["EVENTS_LENGTH_TRIM_EVERY", "event_entry", "events_minid", "flat", "flat_fields", "text"]

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
