"""The transfer engine: feeds facts into a conversation's state machine and carries out its actions.

One event at a time per conversation (an asyncio lock; events from DTMF, Kamailio's notifications and
timers queue behind it). For each event the machine's snapshot is loaded from Redis, the event is
handled (pure), the new snapshot is saved, and then the actions run in order. A failed media action
becomes a MediaFailed event and a resolved number a TargetResolved event, fed back the same way, so
the machine always decides what happens next.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from redis.exceptions import RedisError

from controller.adapters.kamailio_sip import SipExecutor
from controller.adapters.prompts import PromptError
from controller.adapters.redis_limits import OutsideTransferLimits
from controller.adapters.redis_store import ConversationStore, now_ms
from controller.adapters.redis_timers import TimerStore
from controller.adapters.rtpengine_media import MediaExecutor, PromptStarted, leg_media
from controller.adapters.voicemail import VoicemailBox, new_voicemail
from controller.config import Config, Tenant
from controller.core import (
    Action,
    BridgeMedia,
    CancelLeg,
    CancelTimer,
    Conversation,
    ConversationStarted,
    DigitPressed,
    EndConversation,
    EndLeg,
    Event,
    InvalidTransition,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
    MediaFailed,
    OriginateLeg,
    PlayHoldMusic,
    PlayPrompt,
    PlayRingback,
    PromptFinished,
    RecordOutcome,
    ResolveOrigin,
    ResolveTarget,
    RingTransferor,
    StartRecording,
    StartTimer,
    StopMedia,
    StopRecording,
    TargetRejected,
    TargetResolved,
    TimerFired,
    TransferRefused,
)
from controller.core.states import State, TransferState
from controller.core.types import LegState, OutcomeKind, RejectReason, TargetKind
from controller.errors import ControllerError
from controller.logs import call_logger
from controller.metrics import Metrics
from controller.routing import NumberTargets, targets_for_number, targets_for_origin
from controller.tenant_settings import settings_for

log = logging.getLogger(__name__)

PROMPT_TIMER = "prompt"  # timers named "prompt|<leg>|<prompt>" report PromptFinished, not TimerFired
LOOKUP_PREFIX = "lookup:"  # dial strings of targets Kamailio resolves through its registrar
RINGBACK = "ringback"


@dataclass
class ConversationIO:
    """What the I/O side knows about a conversation, beside the machine's snapshot."""

    conversation_id: str
    tenant_id: str
    direction: str
    ng_call_id: str  # the client dialog's SIP Call-ID, also its rtpengine call-id
    client_tag: str
    transferor_tag: str
    client_from_tag: str  # the client dialog's From/To tags, for one-sided BYEs
    client_to_tag: str
    started_ms: int = 0
    legs: dict[str, dict[str, str]] = field(default_factory=dict)  # leg id -> call_id, from_tag, to_tag
    transfer_started_ms: dict[str, int] = field(default_factory=dict)
    takeover: bool = False
    # legs hearing looped media (leg -> music name, or "ringback"): a re-pairing in rtpengine 10.5 can
    # stop a player on the re-paired party's former partner, so these are restarted after each bridge
    loops: dict[str, str] = field(default_factory=dict)
    # a transfer touched this call (Kamailio flags, extra rtpengine tags): its end needs a clean-up
    touched: bool = False
    # how long the running transfer has spent in each of its states (resolving, ringing, ...), for its outcome
    steps_ms: dict[str, int] = field(default_factory=dict)
    step_since_ms: int = 0
    # why the engine refused a transfer's number (transfer id -> "denied_prefix", "limit"...): the
    # machine only knows unknown/forbidden, the transfer's event names the rule
    refusals: dict[str, str] = field(default_factory=dict)
    # the outside-transfer slots (limits.py) this conversation holds, released when each is over
    outside_slots: list[str] = field(default_factory=list)

    def side_of(self, tag: str) -> str:
        return "caller" if tag == self.client_from_tag else "callee"

    def leg_for_call(self, call_id: str) -> str | None:
        return next((leg for leg, info in self.legs.items() if info.get("call_id") == call_id), None)


class TransferEngine:
    def __init__(self, config: Config, store: ConversationStore, media: MediaExecutor, sip: SipExecutor,
                 timers: TimerStore, metrics: Metrics, voicemail: VoicemailBox | None = None,
                 limits: OutsideTransferLimits | None = None):
        self.voicemail = voicemail
        self.limits = limits or OutsideTransferLimits(store.redis, slot_lifetime_s=config.node.max_call_duration_s)
        self.config = config
        self.store = store
        self.media = media
        self.sip = sip
        self.timers = timers
        self.metrics = metrics
        self._locks: dict[str, asyncio.Lock] = {}
        self._digit_at: dict[str, float] = {}  # when the last digit arrived, for the DTMF-to-INVITE latency

    # -- intake ------------------------------------------------------------------------------------
    async def _ensure_started(self, conversation_id: str, media_tags: tuple[str, ...] = ()) -> bool:
        """Create the conversation's state machine on first use (a digit, a REFER, an API request).

        An ordinary call never needs one, so answering and ending it costs the engine nothing. The
        machine starts from the facts recorded when the call was routed and answered; creating it and
        handling ConversationStarted happen under the conversation's lock, so no event can overtake it.
        `media_tags` (from a DTMF event) name both parties when Kamailio's "answered" notification is
        still queued: a digit from the call proves it was answered, so it is never dropped for lag.
        """
        async with self._lock(conversation_id):
            if await self._load(conversation_id) is not None:
                return True
            fields = await self.store.get_conversation(conversation_id)
            direction, to_tag = fields.get("direction", ""), fields.get("to_tag", "")
            if not to_tag and fields.get("state") == "routing":
                to_tag = next((t for t in media_tags if t and t != fields.get("from_tag")), "")
            tenant = self.config.tenants.get(fields.get("tenant", ""))
            if direction not in ("incoming", "outgoing") or tenant is None or not to_tag \
                    or fields.get("state") not in ("answered", "routing"):
                return False  # internal calls have no client to transfer; ended calls no talk
            from_tag = fields.get("from_tag", "")
            client, transferor = (from_tag, to_tag) if direction == "incoming" else (to_tag, from_tag)
            io = ConversationIO(conversation_id, fields["tenant"], direction, fields["call_id"], client, transferor,
                                from_tag, to_tag, started_ms=now_ms())
            await self._save(Conversation(conversation_id, settings_for(self.config, tenant, direction)), io)
            # a call routed to a department learns its employee when one of them answers
            employee = fields.get("employee") if fields.get("employee") in tenant.extensions else None
            await self._feed_locked(conversation_id, [ConversationStarted(
                direction=direction, client_leg=client, transferor_leg=transferor,
                client_number=fields.get("client_number") or None, transferor_number=employee,
                did=fields.get("did") or None, origin=fields.get("origin") or None)])
            return True

    async def on_digit(self, conversation_id: str, source_tag: str, digit: str,
                       media_tags: tuple[str, ...] = ()) -> None:
        self._digit_at[conversation_id] = time.perf_counter()
        if await self._ensure_started(conversation_id, media_tags):
            await self.feed(conversation_id, DigitPressed(source_tag, digit))

    async def on_notification(self, conversation_id: str, method: str, params: dict[str, Any]) -> None:
        """A Kamailio notification about a dialog of this conversation."""
        async with self._lock(conversation_id):
            loaded = await self._load(conversation_id)
            if loaded is None:
                return
            machine, io = loaded
            call_id = str(params.get("call_id", ""))
            leg = io.leg_for_call(call_id)
            if leg is not None:
                if method == "call.answered":
                    # the dialog's tags: what a BYE to this leg needs later
                    io.legs[leg].update(from_tag=str(params.get("from_tag", "")), to_tag=str(params.get("to_tag", "")))
                    await self._save(machine, io)
                event = self._leg_event(leg, method, params)
            elif call_id == io.ng_call_id:
                event = self._client_dialog_event(io, method, params)
            else:
                event = None
        if event is not None:
            await self.feed(conversation_id, event)

    async def on_timer(self, conversation_id: str, name: str) -> None:
        kind, _, rest = name.partition("|")
        if kind == PROMPT_TIMER:
            leg, _, prompt = rest.partition("|")
            await self.feed(conversation_id, PromptFinished(leg, prompt))
        else:
            await self.feed(conversation_id, TimerFired(name))

    # -- the loop ------------------------------------------------------------------------------------
    async def feed(self, conversation_id: str, event: Event) -> None:
        async with self._lock(conversation_id):
            await self._feed_locked(conversation_id, [event])

    async def _feed_locked(self, conversation_id: str, pending: list[Event]) -> None:
        """Handle `pending` and the events its actions give rise to; the conversation's lock is held."""
        loaded = await self._load(conversation_id)
        if loaded is None:
            return
        machine, io = loaded
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
                continue
            _time_steps(io, before, machine.effective_state)
            await self._save(machine, io)
            if not actions:
                continue  # e.g. an ordinary call starting: nothing else to do or to save
            for action in actions:
                clog.info("action %s", action)
                follow_up = await self._execute(machine, io, action, clog)
                if follow_up is not None:
                    pending.append(follow_up)
            await self._sync_takeover(machine, io)
            await self._save(machine, io)

    async def _execute(self, machine: Conversation, io: ConversationIO, action: Action,
                       clog: logging.LoggerAdapter) -> Event | None:
        try:
            return await self._dispatch(machine, io, action)
        except (ControllerError, PromptError, OSError, RuntimeError) as exc:
            self.metrics.errors.labels(type(action).__name__).inc()
            clog.error("%s failed: %s", type(action).__name__, exc)
            leg = getattr(action, "leg", None) or getattr(action, "leg_a", None)
            return MediaFailed(leg=leg, operation=type(action).__name__, detail=str(exc)[:200])

    async def _dispatch(self, machine: Conversation, io: ConversationIO, action: Action) -> Event | None:
        cid = machine.id
        if not isinstance(action, StartTimer | CancelTimer | EndConversation | RecordOutcome):
            io.touched = True
        match action:
            case StartTimer(name=name, seconds=seconds):
                await self.timers.start(cid, name, seconds)
            case CancelTimer(name=name):
                await self.timers.cancel(cid, name)
            case ResolveTarget(transfer_id=transfer_id, number=number):
                io.transfer_started_ms[transfer_id] = now_ms()
                self.metrics.transfers_started.inc()
                return await self._resolve(machine, io, transfer_id, number)
            case ResolveOrigin(transfer_id=transfer_id, origin=origin):
                tenant = self.config.tenants[io.tenant_id]
                found = targets_for_origin(tenant, origin, exclude=machine.transferor_number)
                await self.store.append_event("transfer.origin", cid, {
                    "transfer_id": transfer_id, "origin": origin, "call_id": io.ng_call_id,
                    "targets": len(found.targets) if found else 0})
                return _resolution(transfer_id, found)
            case OriginateLeg(leg=leg, target=target, target_kind=kind, caller_id=caller_id, timeout_s=timeout):
                await self._originate(machine, io, leg, [target], kind, caller_id, timeout)
            case RingTransferor(leg=leg, number=number, caller_id=caller_id, timeout_s=timeout):
                found = targets_for_number(self.config, self.config.tenants[io.tenant_id], number)
                if found is None or not found.targets:
                    return LegFailed(leg, 0)
                dial = [_dial_string(t.uri, t.lookup) for t in found.targets]
                await self._originate(machine, io, leg, dial, TargetKind.EXTENSION, caller_id, timeout)
            case CancelLeg(leg=leg):
                if leg in io.legs:
                    await self.sip.cancel(io.legs[leg]["call_id"])
            case EndLeg(leg=leg):
                await self._end_leg(io, leg)
            case EndConversation(reason=reason):
                await self._end_conversation(machine, io, reason)
            case RecordOutcome():
                await self._record_outcome(io, action)
            case TransferRefused(number=number, trigger=trigger, reason=reason):
                await self.store.append_event("transfer.refused", cid, {
                    "number": number, "trigger": str(trigger), "reason": reason, "call_id": io.ng_call_id})
            case StartRecording(leg=leg, mailbox=mailbox):
                if self.voicemail is None:
                    raise ControllerError("voicemail is not configured on this controller")
                await self.voicemail.start(call_id=io.ng_call_id, leg=leg, message=new_voicemail(
                    tenant=io.tenant_id, mailbox=mailbox, client_number=machine.client_number or "",
                    conversation=cid, transfer=machine.transfer.id if machine.transfer else ""))
            case StopRecording(leg=leg):
                if self.voicemail is not None:
                    message = await self.voicemail.stop(cid, leg)
                    if message is not None:
                        await self.voicemail.save(message)
                        await self.store.append_event("voicemail.recorded", cid, asdict(message) | {
                            "call_id": io.ng_call_id})
            case _:
                started = await self.media.execute(io.ng_call_id, action)
                if isinstance(started, PromptStarted):
                    await self.timers.start(cid, f"{PROMPT_TIMER}|{started.leg}|{started.prompt}", started.seconds)
                await self._track_loops(io, action)
        return None

    async def _track_loops(self, io: ConversationIO, action: Action) -> None:
        match action:
            case PlayHoldMusic(leg=leg, music=music):
                io.loops[leg] = music
            case PlayRingback(leg=leg):
                io.loops[leg] = RINGBACK
            case StopMedia(leg=leg) | PlayPrompt(leg=leg):
                io.loops.pop(leg, None)
            case BridgeMedia():
                for leg, what in io.loops.items():
                    restart = PlayRingback(leg) if what == RINGBACK else PlayHoldMusic(leg, what)
                    await self.media.execute(io.ng_call_id, restart)

    # -- actions that need the conversation's I/O context --------------------------------------------
    async def _resolve(self, machine: Conversation, io: ConversationIO, transfer_id: str, number: str) -> Event:
        tenant = self.config.tenants[io.tenant_id]
        found = targets_for_number(self.config, tenant, number, exclude=_number_of(machine.transferor_number),
                                   own_numbers=_own_numbers(machine, tenant))
        if found is not None and found.refusal is not None:
            io.refusals[transfer_id] = str(found.refusal)
        elif found is not None and found.kind == "trunk" and found.targets:
            slot = f"{machine.id}.{transfer_id}"
            exceeded: str | None
            try:
                exceeded = await self.limits.acquire(io.tenant_id, slot, tenant.numbering_plan)
            except RedisError as exc:
                # toll fraud is what the limits are for: a transfer they cannot count does not go out
                self.metrics.errors.labels("redis").inc()
                exceeded = f"uncounted ({exc})"
            if exceeded is not None:
                call_logger(log, machine.id, transfer_id).warning(
                    "outside transfer to %s refused: tenant %s, limit %s", number, io.tenant_id, exceeded)
                io.refusals[transfer_id] = "limit"
                return TargetRejected(transfer_id, RejectReason.FORBIDDEN)
            io.outside_slots.append(slot)
        return _resolution(transfer_id, found)

    async def _release_outside(self, io: ConversationIO, slots: list[str]) -> None:
        held = [slot for slot in slots if slot in io.outside_slots]
        if held:
            await self.limits.release(io.tenant_id, *held)
            io.outside_slots = [slot for slot in io.outside_slots if slot not in held]

    async def _originate(self, machine: Conversation, io: ConversationIO, leg: str, dial: list[str],
                         kind: TargetKind, caller_id: str, ring_timeout_s: float) -> None:
        # B's leg is offered from a placeholder tag of its own, not from A: pairing A with a B that has
        # no media yet makes rtpengine drop A's packets, and with them A's `*` while B rings. The
        # placeholder's SDP is the endpoint of whoever B will talk to first, so B's early media reaches
        # them; the machine's BridgeMedia re-pairs B properly when B answers.
        anchor = io.transferor_tag if machine.transferor_up else io.client_tag
        media = leg_media(await self.media.ng.query(io.ng_call_id), anchor)
        targets = [{"uri": d.removeprefix(LOOKUP_PREFIX), "lookup": int(d.startswith(LOOKUP_PREFIX))} for d in dial]
        tenant = self.config.tenants[io.tenant_id]
        target_user = _number_of(dial[0]) or ""
        call_id = await self.sip.originate(
            conversation_id=io.conversation_id, leg_id=leg, targets=targets, target_user=target_user,
            domain=tenant.domain, caller_id=caller_id, sdp=media.sdp(),
            ng_flags=_leg_ng_flags(io.ng_call_id, leg, tenant.talk_options.other_digits == "pass"),
            ring_timeout_s=ring_timeout_s)
        io.legs[leg] = {"call_id": call_id, "from_tag": "", "to_tag": "", "kind": str(kind)}
        started = self._digit_at.pop(io.conversation_id, None)
        if started is not None:
            self.metrics.dtmf_to_invite.observe(time.perf_counter() - started)

    async def _end_leg(self, io: ConversationIO, leg: str) -> None:
        if leg in io.legs:
            info = io.legs[leg]
            if info.get("to_tag"):
                await self.sip.bye(info["call_id"], info["from_tag"], info["to_tag"], "callee")
            return
        if leg in (io.client_tag, io.transferor_tag):
            await self.sip.bye(io.ng_call_id, io.client_from_tag, io.client_to_tag, io.side_of(leg))

    async def _end_conversation(self, machine: Conversation, io: ConversationIO, reason: str) -> None:
        await self.timers.cancel_all(machine.id, list(machine.active_timers))
        await self._release_outside(io, list(io.outside_slots))
        if not io.touched:
            return  # an ordinary call: Kamailio's dialog:end has cleaned up everything
        await self.sip.set_transferor(io.ng_call_id, None)
        io.takeover = False
        for info in io.legs.values():
            await self.sip.forget_leg(info["call_id"])
        await self.store.end_legs({leg: info["call_id"] for leg, info in io.legs.items()})
        try:
            await self.media.ng.delete(io.ng_call_id)
        except ControllerError:
            pass  # Kamailio's dialog:end usually got there first
        await self.store.update_conversation(machine.id, {"machine_end_reason": reason})

    async def _record_outcome(self, io: ConversationIO, outcome: RecordOutcome) -> None:
        started = io.transfer_started_ms.pop(outcome.transfer_id, None)
        fields = {k: (str(v) if v is not None else None) for k, v in asdict(outcome).items()}
        fields.update(call_id=io.ng_call_id, direction=io.direction, tenant=io.tenant_id)
        if started:
            fields["duration_ms"] = now_ms() - started
        fields["steps_ms"], io.steps_ms = io.steps_ms, {}
        refusal = io.refusals.pop(outcome.transfer_id, None)
        if refusal is not None:
            fields["refusal"] = refusal
            if outcome.kind is OutcomeKind.REFUSED:
                fields["cause"] = refusal  # "limit", "denied_prefix"... rather than the machine's "forbidden"
        if outcome.kind not in (OutcomeKind.COMPLETED, OutcomeKind.CONFERENCED):
            # B's leg is over: an outside transfer that completed holds its slot until the call ends
            await self._release_outside(io, [f"{io.conversation_id}.{outcome.transfer_id}"])
        kind = str(outcome.kind)
        self.metrics.transfers.labels(kind).inc()
        await self.store.append_event(f"transfer.{kind}", io.conversation_id, fields)

    async def _sync_takeover(self, machine: Conversation, io: ConversationIO) -> None:
        """Kamailio absorbs A's BYE while a transfer runs, and answers the client's in-dialog requests
        once A (the other side of the client's SIP dialog) has left a call that goes on."""
        live = machine.state.value not in ("ended", "new")
        original_a = machine.legs.get(io.transferor_tag)
        a_left = original_a is not None and original_a.state.value != "up"
        want = live and (machine.transfer is not None or a_left)
        if want != io.takeover:
            await self.sip.set_transferor(io.ng_call_id, io.transferor_tag if want else None)
            io.takeover = want

    # -- notifications -> events -----------------------------------------------------------------
    @staticmethod
    def _leg_event(leg: str, method: str, params: dict[str, Any]) -> Event | None:
        if method == "leg.ringing":
            return LegRinging(leg)
        if method == "call.answered":
            return LegAnswered(leg)
        if method in ("call.failed", "call.rejected"):
            code = int(params.get("code") or 0)
            return LegFailed(leg, code if 300 <= code <= 699 else 0)
        if method == "call.ended":
            return LegHungUp(leg)
        return None

    @staticmethod
    def _client_dialog_event(io: ConversationIO, method: str, params: dict[str, Any]) -> Event | None:
        if method == "leg.hungup":
            return LegHungUp(io.transferor_tag)
        if method == "call.ended":
            by = str(params.get("by_tag") or "")
            return LegHungUp(by if by in (io.client_tag, io.transferor_tag) else io.client_tag)
        return None

    # -- persistence -------------------------------------------------------------------------------
    def _lock(self, conversation_id: str) -> asyncio.Lock:
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = self._locks[conversation_id] = asyncio.Lock()
        return lock

    async def _load(self, conversation_id: str) -> tuple[Conversation, ConversationIO] | None:
        fields = await self.store.get_conversation(conversation_id)
        if not fields.get("machine") or not fields.get("io"):
            return None
        io = ConversationIO(**json.loads(fields["io"]))
        return Conversation.from_dict(json.loads(fields["machine"])), io

    async def _save(self, machine: Conversation, io: ConversationIO) -> None:
        await self.store.update_conversation(machine.id, {
            "machine": json.dumps(machine.to_dict()), "io": json.dumps(asdict(io))})
        if machine.state.value == "ended":
            self._locks.pop(machine.id, None)


def _time_steps(io: ConversationIO, before: State, after: State) -> None:
    """Add the time spent in `before` to the transfer's step times when the machine leaves it."""
    if before is after:
        return
    now = now_ms()
    if isinstance(before, TransferState):
        io.steps_ms[before.value] = io.steps_ms.get(before.value, 0) + now - io.step_since_ms
    io.step_since_ms = now


def _resolution(transfer_id: str, found: NumberTargets | None) -> Event:
    """The machine's answer to a ResolveTarget / ResolveOrigin."""
    if found is None:
        return TargetRejected(transfer_id, RejectReason.UNKNOWN_NUMBER)
    if found.refusal is not None:
        # a mistyped number gets the "unknown number" prompt; one the plan forbids, "forbidden"
        reason = RejectReason.UNKNOWN_NUMBER if found.refusal.malformed else RejectReason.FORBIDDEN
        return TargetRejected(transfer_id, reason)
    if not found.targets:
        return TargetRejected(transfer_id, RejectReason.FORBIDDEN)  # only A (their own extension) was left
    dial = tuple(_dial_string(t.uri, t.lookup) for t in found.targets)
    return TargetResolved(transfer_id, dial, TargetKind(found.kind))


def _number_of(party: str | None) -> str | None:
    """The number in a party's dial string ("lookup:sip:102@acme.test" -> "102"); a number as it is."""
    if not party:
        return None
    scheme, colon, rest = party.removeprefix(LOOKUP_PREFIX).partition(":")
    if colon and scheme in ("sip", "sips", "tel"):
        return rest.split("@", 1)[0].split(";", 1)[0] or None
    return party


def _own_numbers(machine: Conversation, tenant: Tenant) -> tuple[str, ...]:
    """Numbers a transfer of this conversation must not go out to: its client, its DID, its transferor,
    every party still on a leg, and the tenant's own DIDs (each a loop back into the conversation or
    the PBX). Legs that ended may be tried again."""
    parties = [machine.client_number, machine.did, machine.transferor_number,
               *(leg.number for leg in machine.legs.values() if leg.state is not LegState.ENDED)]
    numbers = (_number_of(party) for party in parties)
    return tuple(dict.fromkeys([*(n for n in numbers if n), *tenant.dids]))


def _leg_ng_flags(ng_call_id: str, leg: str, inject_dtmf: bool) -> str:
    """How Kamailio offers an originated leg: into the conversation's rtpengine call, from a placeholder
    tag; with DTMF injection when the tenant passes digits on (the leg may become the transferor, whose
    other digits are re-played; rtpengine 10.5 only injects into a call offered with the flag)."""
    flags = f"call-id={ng_call_id} from-tag={leg}~origin to-tag={leg}"
    return flags + " inject-DTMF" if inject_dtmf else flags


def _dial_string(uri: str, lookup: bool) -> str:
    return f"{LOOKUP_PREFIX}{uri}" if lookup else uri
