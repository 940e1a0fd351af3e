"""Small in-memory ports for the engine tests: each records what it was asked and can be told to fail."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.core import Action


@dataclass
class Failing:
    """Which port method raises what: {"media.execute": LookupError("..."), ...}; `when` narrows it down."""

    plan: dict[str, BaseException] = field(default_factory=dict)
    when: Callable[[str, tuple[Any, ...]], bool] = lambda name, args: True

    def check(self, name: str, *args: Any) -> None:
        exc = self.plan.get(name)
        if exc is not None and self.when(name, args):
            raise exc


class Records:
    def __init__(self, failing: Failing) -> None:
        self.conversations: dict[str, dict[str, str]] = {}
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.saves: list[tuple[bool, bool]] = []  # (machine written, io written) per snapshot save
        self.failing = failing

    async def get_conversation(self, conversation_id: str) -> dict[str, str]:
        return dict(self.conversations.get(conversation_id, {}))

    async def conversation_for_call(self, call_id: str) -> str | None:
        return next((cid for cid, record in self.conversations.items() if record.get("call_id") == call_id), None)

    async def get_snapshot(self, conversation_id: str) -> tuple[str | None, str | None]:
        record = self.conversations.get(conversation_id, {})
        return record.get("machine"), record.get("io")

    async def save_snapshot(self, conversation_id: str, machine: str | None, io: str | None) -> None:
        self.failing.check("records.save_snapshot", conversation_id)
        self.saves.append((machine is not None, io is not None))
        record = self.conversations.setdefault(conversation_id, {})
        record.update({k: v for k, v in (("machine", machine), ("io", io)) if v is not None})

    async def update_conversation(self, conversation_id: str, fields: dict[str, Any], *, event: str | None = None,
                                  event_fields: dict[str, Any] | None = None) -> None:
        record = self.conversations.setdefault(conversation_id, {})
        record.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()})
        if event:
            self.events.append((event, conversation_id, event_fields or fields))

    async def append_event(self, event: str, conversation_id: str, fields: dict[str, Any]) -> None:
        self.failing.check("records.append_event", event)
        self.events.append((event, conversation_id, fields))

    async def end_legs(self, legs: dict[str, str]) -> None:
        pass


class Media:
    def __init__(self, failing: Failing) -> None:
        self.done: list[Action] = []
        self.deleted: list[str] = []
        self.injecting: list[tuple[str, str]] = []  # (leg, partner) re-paired with `inject DTMF`
        self.failing = failing

    async def execute(self, call_id: str, action: Action) -> None:
        self.failing.check("media.execute", action)
        self.done.append(action)

    async def enable_injection(self, call_id: str, leg: str, partner: str) -> None:
        self.failing.check("media.enable_injection", leg)
        self.injecting.append((leg, partner))

    async def endpoint_sdp(self, call_id: str, tag: str) -> str:
        self.failing.check("media.endpoint_sdp", tag)
        return "v=0\r\n"

    async def delete_call(self, call_id: str) -> None:
        self.deleted.append(call_id)


class Sip:
    def __init__(self, failing: Failing) -> None:
        self.originated: list[str] = []
        self.cancelled: list[str] = []
        self.byes: list[tuple[str, str]] = []
        self.transferor: dict[str, str | None] = {}
        self.features: set[str] = set()  # calls marked for Kamailio's notifications
        self.far_refers: list[tuple[str, str, str, str, str]] = []
        self.notified: list[tuple[str, str, int, bool]] = []  # REFER NOTIFYs: call, side, code, final
        self.failing = failing

    async def originate(self, *, conversation_id: str, leg_id: str, **_: Any) -> str:
        self.failing.check("sip.originate", leg_id)
        self.originated.append(leg_id)
        return f"sip-{leg_id}"

    async def cancel(self, call_id: str) -> None:
        self.failing.check("sip.cancel", call_id)
        self.cancelled.append(call_id)

    async def bye(self, call_id: str, from_tag: str, to_tag: str, side: str) -> None:
        self.failing.check("sip.bye", call_id)
        self.byes.append((call_id, side))

    async def set_transferor(self, call_id: str, tag: str | None) -> None:
        self.failing.check("sip.set_transferor", tag)
        self.transferor[call_id] = tag

    async def mark_feature(self, call_id: str) -> None:
        self.features.add(call_id)

    async def forget_call(self, call_id: str, leg_call_ids: list[str]) -> None:
        self.features.discard(call_id)

    async def end_dialog(self, call_id: str, from_tag: str, to_tag: str) -> None:
        self.failing.check("sip.end_dialog", call_id)
        self.byes.append((call_id, "both"))

    async def notify_referrer(self, call_id: str, from_tag: str, to_tag: str, side: str, code: int, reason: str,
                              final: bool) -> None:
        self.failing.check("sip.notify_referrer", call_id)
        self.notified.append((call_id, side, code, final))

    async def refer_far_end(self, call_id: str, from_tag: str, to_tag: str, side: str, refer_to: str,
                            referred_by: str, transfer_id: str) -> None:
        self.failing.check("sip.refer_far_end", call_id)
        self.far_refers.append((call_id, side, refer_to, referred_by, transfer_id))


class Timers:
    def __init__(self, failing: Failing) -> None:
        self.active: dict[tuple[str, str], float] = {}
        self.failing = failing

    async def start(self, conversation: str, name: str, seconds: float) -> None:
        self.failing.check("timers.start", name)
        self.active[(conversation, name)] = seconds

    async def cancel(self, conversation: str, name: str) -> None:
        self.active.pop((conversation, name), None)

    async def cancel_all(self, conversation: str, names: list[str]) -> None:
        for name in names:
            self.active.pop((conversation, name), None)

    def named(self, conversation: str, purpose: str) -> list[str]:
        return [name for (conv, name) in self.active if conv == conversation and f"/{purpose}/" in name]


class Limits:
    async def acquire(self, tenant: str, slot: str, plan: Any) -> str | None:
        return None

    async def release(self, tenant: str, *slots: str) -> None:
        pass
