"""The transfer engine: load → handle → save → execute, one event at a time per conversation.

For each event the machine's snapshot is loaded from Redis, the event is handled (pure), the new
snapshot is saved, and then the actions run in order through the ports. Whatever an action raises
becomes an ActionFailed event, and the facts an action returns (a resolved number, a target that cannot
be rung) come back as events; both are fed to the machine in the same turn, so the machine always
decides what happens next and no action of the list is skipped because an earlier one failed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from controller.adapters.redis_store import now_ms
from controller.config import Config
from controller.core import (
    ActionFailed,
    Conversation,
    DigitPressed,
    Event,
    InvalidTransition,
    LegHungUp,
    MediaRestored,
    PhoneHeld,
    TransferRequested,
    TransferTrigger,
)
from controller.core.actions import leg_of
from controller.logs import call_logger
from controller.metrics import Metrics
from controller.tenant_settings import settings_for

from .context import ConversationIO, time_steps
from .executor import ActionExecutor
from .intake import client_dialog_event, conversation_start, leg_event, replaced_dialog, replaced_dialog_refusal
from .ports import Clock, Limits, MediaPort, Records, SipPort, Timers, VoicemailPort
from .serial import KeyedLocks
from .timer_names import timer_event

log = logging.getLogger(__name__)

__all__ = ["REFER_MAX_AGE_MS", "ConversationIO", "TransferEngine"]

#: A REFER read later than this (the controller was down) is not acted on: its phone has waited for a
#: NOTIFY that long (RFC 3261's transaction timeout is 32 s), and whoever pressed Transfer has moved on.
REFER_MAX_AGE_MS = 32_000


class TransferEngine:
    def __init__(self, config: Config, records: Records, media: MediaPort, sip: SipPort, timers: Timers,
                 metrics: Metrics, limits: Limits, voicemail: VoicemailPort | None = None, clock: Clock = now_ms):
        self.config = config
        self.records = records
        self.timers = timers
        self.metrics = metrics
        self.clock = clock
        self.locks = KeyedLocks()
        self.executor = ActionExecutor(config, records, media, sip, timers, limits, metrics, clock, voicemail)

    # -- intake ------------------------------------------------------------------------------------
    async def _started_locked(self, conversation_id: str, media_tags: tuple[str, ...] = ()) -> Loaded | None:
        """The conversation's state machine, created on first use (a digit, a REFER, an API request);
        the conversation's lock is held.

        An ordinary call never needs one, so answering and ending it costs the engine nothing. Creating
        it and handling ConversationStarted happen under the conversation's lock, so no event can
        overtake it."""
        loaded = await self._load(conversation_id)
        if loaded is not None:
            return loaded
        record = await self.records.get_conversation(conversation_id)
        start = conversation_start(self.config, conversation_id, record, media_tags, self.clock())
        if start is None:
            return None
        io, started = start
        tenant = self.config.tenants[io.tenant_id]
        machine = Conversation(conversation_id, settings_for(self.config, tenant, io.direction))
        loaded = await self._feed_locked(conversation_id, [started], Loaded(machine, io, io_json=""))
        # Kamailio tells the controller of this call's dialog events from now on. It writes an event
        # into the call's record before it looks for the mark, so one that came before the mark is
        # in the record read after it: a call that ended meanwhile ends its machine too
        await self.executor.sip.mark_feature(io.ng_call_id)
        if (await self.records.get_conversation(conversation_id)).get("state") == "ended":
            await self._feed_locked(conversation_id, [LegHungUp(io.client_tag)], loaded)
            return None
        return loaded

    async def on_digit(self, conversation_id: str, source_tag: str, digit: str,
                       media_tags: tuple[str, ...] = ()) -> None:
        self.executor.digit_at[conversation_id] = time.perf_counter()
        async with self.locks.hold(conversation_id):
            loaded = await self._started_locked(conversation_id, media_tags)
            if loaded is None:
                self.executor.digit_at.pop(conversation_id, None)
                return
            await self._feed_locked(conversation_id, [DigitPressed(source_tag, digit)], loaded)

    async def on_refer(self, conversation_id: str, params: dict[str, Any]) -> None:
        """A REFER Kamailio accepted (202) from the employee's side of the client's dialog: the same
        transfer as `#`; the phone hears of its progress in NOTIFYs (core/refer.py). One that waited
        longer than REFER_MAX_AGE_MS (the controller was down), or whose call has no conversation to
        transfer any more, is answered with a final NOTIFY and changes nothing."""
        text = {name: str(params.get(name) or "") for name in ("call_id", "from_tag", "to_tag", "by_tag", "number")}
        replaces = str(params.get("replaces") or "")
        side = "caller" if text["by_tag"] == text["from_tag"] else "callee"
        async with self.locks.hold(conversation_id):
            fresh = self.clock() - int(params.get("at_ms") or 0) <= REFER_MAX_AGE_MS
            loaded = None
            if fresh and text["number"]:
                loaded = await self._started_locked(conversation_id, (text["from_tag"], text["to_tag"]))
            refusal: tuple[int, str] | None = None
            if loaded is None:
                refusal = (503, "Service Unavailable") if not fresh else (481, "Call/Transaction Does Not Exist")
            elif text["by_tag"] != loaded.io.transferor_tag:
                refusal = (403, "Forbidden")  # Kamailio lets only the employee's side through; never act on another
            elif replaces:
                refusal = await self._replaced_dialog_refusal(replaces, loaded)
            if refusal is not None:
                code, reason = refusal
                log.info("REFER in %s not taken: %d %s", text["call_id"], code, reason)
                try:
                    await self.executor.notify_referrer(text["call_id"], text["from_tag"], text["to_tag"], side,
                                                        code, reason, True)
                except Exception as exc:  # the phone gives up on its own; nothing else changes
                    log.warning("final NOTIFY in %s not sent: %s", text["call_id"], exc)
                return
            assert loaded is not None
            await self.records.append_event("transfer.requested", conversation_id, {
                "trigger": "refer", "number": text["number"], "call_id": text["call_id"],
                "referred_by": str(params.get("referred_by") or "")[:256], "attended": bool(replaces)})
            event = TransferRequested(text["number"], TransferTrigger.REFER, leg=text["by_tag"],
                                      replaces=replaces or None)
            await self._feed_locked(conversation_id, [event], loaded)

    async def on_phone_held(self, conversation_id: str, params: dict[str, Any]) -> None:
        """The employee's phone put the client on hold (Kamailio kept the client's stream up): the
        client hears the tenant's music. A call without a machine gets one, as with a first digit."""
        async with self.locks.hold(conversation_id):
            tags = (str(params.get("from_tag") or ""), str(params.get("to_tag") or ""))
            loaded = await self._started_locked(conversation_id, tags)
            if loaded is not None:
                await self._feed_locked(conversation_id, [PhoneHeld(str(params.get("by_tag") or ""), True)], loaded)

    async def _replaced_dialog_refusal(self, replaces: str, loaded: Loaded) -> tuple[int, str] | None:
        call_id = replaced_dialog(replaces)[0]
        other = await self.records.conversation_for_call(call_id)
        record = await self.records.get_conversation(other) if other else {}
        return replaced_dialog_refusal(replaces, record, loaded.io, loaded.machine.transferor_number)

    async def on_notification(self, conversation_id: str, method: str, params: dict[str, Any]) -> None:
        """A Kamailio notification about a dialog of this conversation."""
        async with self.locks.hold(conversation_id):
            loaded = await self._load(conversation_id)
            if loaded is None:
                return
            io = loaded.io
            call_id = str(params.get("call_id", ""))
            leg = io.leg_for_call(call_id)
            if leg is not None:
                if method == "call.answered":
                    # the dialog's tags: what a BYE to this leg needs later (saved with the event's state)
                    io.legs[leg].update(from_tag=str(params.get("from_tag", "")), to_tag=str(params.get("to_tag", "")))
                event = leg_event(leg, method, params)
            elif call_id == io.ng_call_id:
                event = client_dialog_event(io, method, params)
            else:
                event = None
            if event is not None:
                await self._feed_locked(conversation_id, [event], loaded)
            elif (now_io := _io_json(io)) != loaded.io_json:
                await self.records.save_snapshot(conversation_id, None, now_io)

    async def on_media_restored(self, conversation_id: str) -> None:
        """rtpengine restarted and restored this conversation's call (without players and blocks)."""
        async with self.locks.hold(conversation_id):
            loaded = await self._load(conversation_id)
            if loaded is None:
                return
            # nor DTMF injection: the next digit passed on enables it again
            loaded.io.injecting = []
            await self._feed_locked(conversation_id, [MediaRestored()], loaded)

    async def on_timer(self, conversation_id: str, name: str) -> None:
        await self.feed(conversation_id, timer_event(name))

    # -- the loop ------------------------------------------------------------------------------------
    async def feed(self, conversation_id: str, event: Event) -> None:
        async with self.locks.hold(conversation_id):
            await self._feed_locked(conversation_id, [event])

    async def _feed_locked(self, conversation_id: str, pending: list[Event],
                           loaded: Loaded | None = None) -> Loaded | None:
        """Handle `pending` and the events its actions give rise to; the conversation's lock is held.
        `loaded`: the conversation as the caller already read it (one load per event, not two), perhaps
        with its I/O record changed since. Returns the conversation after."""
        if loaded is None:
            loaded = await self._load(conversation_id)
            if loaded is None:
                return None
        machine, io, saved_io = loaded.machine, loaded.io, loaded.io_json
        while pending:
            clog = call_logger(log, conversation_id, machine.transfer.id if machine.transfer else None)
            event = pending.pop(0)
            clog.info("event %s", event)
            before = machine.effective_state
            try:
                actions = machine.handle(event)
            except InvalidTransition as exc:
                self.metrics.errors.labels("invalid_transition").inc()
                clog.warning("%s", exc)
                # the machine is unchanged; what the caller learnt (a leg's tags) is still kept
                if (now_io := _io_json(io)) != saved_io:
                    await self.records.save_snapshot(conversation_id, None, now_io)
                    saved_io = now_io
                continue
            time_steps(io, before, machine.effective_state, self.clock())
            # the decision is saved before its actions run: a controller that dies half-way resumes from it
            saved_io = await self._save(machine, io, saved_io)
            if not actions:
                continue  # e.g. an ordinary call starting: nothing else to do or to save
            for action in actions:
                # the events (INFO, above) are the machine's whole input: it is deterministic, so they
                # reproduce every action; each action's line is DEBUG (half the log's CPU in a transfer)
                clog.debug("action %s", action)
                try:
                    follow_up = await self.executor.run(machine, io, action)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # any failure of any action is a fact the machine decides on
                    follow_up = self._failed(action, exc, clog)
                if follow_up is not None:
                    pending.append(follow_up)
            # what the actions learnt (a leg's Call-ID, injection...): the machine itself is as saved
            now_io = _io_json(io)
            if now_io != saved_io:
                await self.records.save_snapshot(conversation_id, None, now_io)
                saved_io = now_io
        return Loaded(machine, io, saved_io)

    def _failed(self, action: Any, exc: Exception, clog: logging.LoggerAdapter) -> Event:
        name = type(action).__name__
        self.metrics.errors.labels(name).inc()
        clog.error("%s failed: %s: %s", name, type(exc).__name__, exc)
        return ActionFailed(name, leg=leg_of(action), detail=f"{type(exc).__name__}: {exc}"[:200])

    # -- persistence -------------------------------------------------------------------------------
    async def _load(self, conversation_id: str) -> Loaded | None:
        machine, io = await self.records.get_snapshot(conversation_id)
        if not machine or not io:
            return None
        return Loaded(Conversation.from_dict(json.loads(machine)), ConversationIO(**json.loads(io)), io)

    async def _save(self, machine: Conversation, io: ConversationIO, saved_io: str) -> str:
        """Write the machine, and the I/O record if it changed since `saved_io`; returns it as written."""
        now_io = _io_json(io)
        await self.records.save_snapshot(machine.id, json.dumps(machine.to_dict()),
                                         None if now_io == saved_io else now_io)
        return now_io


@dataclass
class Loaded:
    """A conversation as loaded: its state machine, its I/O record, and that record as Redis has it (so
    that an unchanged record is not written again)."""

    machine: Conversation
    io: ConversationIO
    io_json: str


def _io_json(io: ConversationIO) -> str:
    return json.dumps(asdict(io))
