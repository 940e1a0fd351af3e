"""Carry out one of the machine's actions through the ports; a result that is a fact comes back as an event.

Every action of the machine maps to one branch below. A resolved number comes back as TargetResolved or
TargetRejected, a prompt that started is reported as finished later (a deadline), a target that cannot
be rung as LegFailed. Whatever an action raises is the engine's business: it becomes an ActionFailed
event and the machine decides (controller.engine.engine).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from typing import Any

from redis.exceptions import RedisError

from controller.adapters.voicemail import new_voicemail
from controller.config import Config, Tenant
from controller.core import (
    Action,
    CancelLeg,
    CancelTimer,
    Conversation,
    ConversationState,
    EndConversation,
    EndLeg,
    EndReplacedDialog,
    Event,
    LegFailed,
    NotifyReferrer,
    OriginateLeg,
    PassDigit,
    RecordOutcome,
    ReferFarEnd,
    ResolveOrigin,
    ResolveTarget,
    RingTransferor,
    SetDialogTakeover,
    StartRecording,
    StartTimer,
    StopRecording,
    TargetRejected,
    TargetResolved,
    TransferRefused,
)
from controller.core.types import OutcomeKind, RejectReason, TargetKind, TransferTrigger
from controller.errors import ControllerError
from controller.logs import call_logger
from controller.metrics import Metrics
from controller.routing.compiler import compile_routes
from controller.routing.decision import targets_for_number, targets_for_origin

from .context import ConversationIO
from .dialing import LOOKUP_PREFIX, dial_string, leg_ng_flags, number_of, own_numbers, resolution
from .intake import replaced_dialog
from .ports import Clock, Limits, MediaPort, Records, SipPort, Timers, VoicemailPort
from .timer_names import prompt_end

log = logging.getLogger(__name__)



class ActionExecutor:
    def __init__(self, config: Config, records: Records, media: MediaPort, sip: SipPort, timers: Timers,
                 limits: Limits, metrics: Metrics, clock: Clock, voicemail: VoicemailPort | None = None):
        self.config = config
        self.routes = compile_routes(config)  # the table Kamailio routes calls with: one set of rules
        self.records = records
        self.media = media
        self.sip = sip
        self.timers = timers
        self.limits = limits
        self.metrics = metrics
        self.clock = clock
        self.voicemail = voicemail
        self.digit_at: dict[str, float] = {}  # when the last digit arrived, for the DTMF-to-INVITE latency

    async def run(self, machine: Conversation, io: ConversationIO, action: Action) -> Event | None:
        cid = machine.id
        if not isinstance(action, StartTimer | CancelTimer | EndConversation | RecordOutcome):
            io.touched = True
        match action:
            case StartTimer(name=name, seconds=seconds):
                await self.timers.start(cid, name, seconds)
            case CancelTimer(name=name):
                await self.timers.cancel(cid, name)
            case ResolveTarget(transfer_id=transfer_id, number=number):
                io.transfer_started_ms[transfer_id] = self.clock()
                self.metrics.transfers_started.inc()
                trigger = machine.transfer.trigger if machine.transfer is not None else None
                if trigger is not None and trigger is not TransferTrigger.REFER:
                    # (a REFER's is written when it arrives, with its Referred-By: TransferEngine.on_refer);
                    # an event log away must not hold the transfer up
                    try:
                        await self.records.append_event("transfer.requested", cid, {
                            "trigger": str(trigger), "number": number, "call_id": io.ng_call_id})
                    except Exception as exc:
                        self.metrics.errors.labels("event_log").inc()
                        log.warning("transfer.requested of %s not logged: %s", cid, exc)
                return await self._resolve(machine, io, transfer_id, number)
            case ResolveOrigin(transfer_id=transfer_id, origin=origin):
                found = targets_for_origin(self.routes.tenants[io.tenant_id], origin,
                                           exclude=machine.transferor_number)
                await self.records.append_event("transfer.origin", cid, {
                    "transfer_id": transfer_id, "origin": origin, "call_id": io.ng_call_id,
                    "targets": len(found.targets) if found else 0})
                return resolution(transfer_id, found)
            case OriginateLeg(leg=leg, target=target, target_kind=kind, caller_id=caller_id, timeout_s=timeout,
                              replaces=replaces):
                await self._originate(machine, io, leg, [target], kind, caller_id, timeout, replaces)
            case EndReplacedDialog(replaces=replaces):
                await self.sip.end_dialog(*replaced_dialog(replaces))
            case RingTransferor(leg=leg, number=number, caller_id=caller_id, timeout_s=timeout):
                found = targets_for_number(self.routes, self.routes.tenants[io.tenant_id], number)
                if found is None or not found.targets:
                    return LegFailed(leg, 0)
                dial = [dial_string(t.uri, t.lookup) for t in found.targets]
                await self._originate(machine, io, leg, dial, TargetKind.EXTENSION, caller_id, timeout)
            case CancelLeg(leg=leg):
                if leg in io.legs:
                    await self.sip.cancel(io.legs[leg]["call_id"])
            case EndLeg(leg=leg, also=None):
                await self._end_leg(io, leg)
            case EndLeg():  # both halves of the client's dialog
                await self.sip.bye(io.ng_call_id, io.client_from_tag, io.client_to_tag, "both")
            case SetDialogTakeover(transferor_leg=tag):
                # the takeover's end right before the conversation's: forget_call removes its keys too
                if tag is not None or machine.state is not ConversationState.ENDED:
                    await self.sip.set_transferor(io.ng_call_id, tag)
            case EndConversation(reason=reason):
                await self._end_conversation(machine, io, reason)
            case RecordOutcome():
                await self._record_outcome(io, action)
            case NotifyReferrer(code=code, reason=reason, final=final):
                # the REFER came from the client dialog's employee side (Kamailio checked)
                await self.notify_referrer(io.ng_call_id, io.client_from_tag, io.client_to_tag,
                                           io.side_of(io.transferor_tag), code, reason, final)
            case ReferFarEnd(transfer_id=transfer_id, target=target, caller_id=caller_id):
                # as the employee's side, to the client's side (its trunk calls B itself)
                referred_by = f"sip:{caller_id}@{self.config.tenants[io.tenant_id].domain}"
                self.metrics.far_end_refers.inc()
                await self.sip.refer_far_end(io.ng_call_id, io.client_from_tag, io.client_to_tag,
                                             io.side_of(io.client_tag), target, referred_by, transfer_id)
            case TransferRefused(number=number, trigger=trigger, reason=reason):
                await self.records.append_event("transfer.refused", cid, {
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
                        await self.records.append_event("voicemail.recorded", cid, asdict(message) | {
                            "call_id": io.ng_call_id})
            case PassDigit(leg=leg):
                partner = machine.partner_of(leg)
                if partner is not None and partner not in io.injecting:
                    await self.media.enable_injection(io.ng_call_id, leg, partner)
                    io.injecting += [tag for tag in (leg, partner) if tag not in io.injecting]
                await self.media.execute(io.ng_call_id, action)
            case _:
                started = await self.media.execute(io.ng_call_id, action)
                if started is not None:
                    await self.timers.start(cid, prompt_end(started.leg, started.prompt), started.seconds)
        return None

    # -- actions that need the conversation's I/O context --------------------------------------------
    async def _resolve(self, machine: Conversation, io: ConversationIO, transfer_id: str, number: str) -> Event:
        tenant, routes = self.config.tenants[io.tenant_id], self.routes.tenants[io.tenant_id]
        found = targets_for_number(self.routes, routes, number, exclude=number_of(machine.transferor_number),
                                   own_numbers=own_numbers(machine, routes))
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
        resolved = resolution(transfer_id, found)
        if isinstance(resolved, TargetResolved) and self._far_end_calls(io, tenant) and len(resolved.targets) == 1:
            return replace(resolved, far_end=True)
        return resolved

    def _far_end_calls(self, io: ConversationIO, tenant: Tenant) -> bool:
        """Whether an outside transfer of this conversation is handed to the client's own trunk: the tenant
        chose it and that trunk accepts REFER (the flag is the carrier's word; nothing else is sent one)."""
        trunk = self.config.trunks.get(io.client_trunk)
        return tenant.outside_transfers == "refer" and trunk is not None and trunk.refer

    async def notify_referrer(self, call_id: str, from_tag: str, to_tag: str, side: str, code: int, reason: str,
                              final: bool) -> None:
        """A NOTIFY of a REFER's subscription; a final one is counted by its status code."""
        if final:
            self.metrics.refer_results.labels(str(code)).inc()
        await self.sip.notify_referrer(call_id, from_tag, to_tag, side, code, reason, final)

    async def _release_outside(self, io: ConversationIO, slots: list[str]) -> None:
        held = [slot for slot in slots if slot in io.outside_slots]
        if held:
            await self.limits.release(io.tenant_id, *held)
            io.outside_slots = [slot for slot in io.outside_slots if slot not in held]

    async def _originate(self, machine: Conversation, io: ConversationIO, leg: str, dial: list[str],
                         kind: TargetKind, caller_id: str, ring_timeout_s: float, replaces: str | None = None) -> None:
        # B's leg is offered from a placeholder tag of its own, not from A: pairing A with a B that has
        # no media yet makes rtpengine drop A's packets, and with them A's `*` while B rings. The
        # placeholder's SDP is the endpoint of the transferor on the line, so B's early media reaches
        # them; with nobody on the line, that of the first transferor, who has left (or handed the call
        # over with a REFER): the client on hold hears the music and nothing else, not B's early media.
        # The machine's BridgeMedia re-pairs B properly when B answers.
        current = machine.transferor_leg
        anchor = current if machine.transferor_up and current else io.transferor_tag
        sdp = await self.media.endpoint_sdp(io.ng_call_id, anchor)
        targets = [{"uri": d.removeprefix(LOOKUP_PREFIX), "lookup": int(d.startswith(LOOKUP_PREFIX))} for d in dial]
        tenant = self.config.tenants[io.tenant_id]
        call_id = await self.sip.originate(
            conversation_id=io.conversation_id, leg_id=leg, targets=targets, target_user=number_of(dial[0]) or "",
            domain=tenant.domain, caller_id=caller_id, sdp=sdp,
            ng_flags=leg_ng_flags(io.ng_call_id, leg, tenant.talk_options.other_digits == "pass"),
            ring_timeout_s=ring_timeout_s, replaces=replaces)
        io.legs[leg] = {"call_id": call_id, "from_tag": "", "to_tag": "", "kind": str(kind)}
        if tenant.talk_options.other_digits == "pass":
            io.injecting.append(leg)  # offered with `inject DTMF` (leg_ng_flags)
        started = self.digit_at.pop(io.conversation_id, None)
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
        await self.sip.forget_call(io.ng_call_id, [info["call_id"] for info in io.legs.values()])
        if not io.touched:
            return  # an ordinary call: Kamailio's dialog:end has cleaned up everything
        await self.records.end_legs({leg: info["call_id"] for leg, info in io.legs.items()})
        try:
            await self.media.delete_call(io.ng_call_id)
        except ControllerError:
            pass  # Kamailio's dialog:end usually got there first
        await self.records.update_conversation(machine.id, {"machine_end_reason": reason})

    async def _record_outcome(self, io: ConversationIO, outcome: RecordOutcome) -> None:
        started = io.transfer_started_ms.pop(outcome.transfer_id, None)
        fields: dict[str, Any] = {k: (str(v) if v is not None else None) for k, v in asdict(outcome).items()}
        fields.update(call_id=io.ng_call_id, direction=io.direction, tenant=io.tenant_id)
        if started:
            fields["duration_ms"] = self.clock() - started
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
        await self.records.append_event(f"transfer.{kind}", io.conversation_id, fields)
