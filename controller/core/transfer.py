"""The transfer sub-machine: from the transfer key (or request) to the moment B is reached or not.

:class:`Transfer` is data only (part of the conversation's snapshot).  The
handlers below are plain functions of a :class:`~controller.core.context.Step`:
they read the conversation's facts, change things through its effects, and
return nothing or a declared follow-up stimulus.  The parallel legs towards B
are :mod:`controller.core.branches`; what happens after B failed is
:mod:`controller.core.fallback`.

Stages: COLLECTING (digits after the transfer key) -> RESOLVING (the client on
hold, the service resolves the number) -> RINGING (one leg per dial string,
A hears ringback or B's early media; BLIND_RINGING once A hung up) ->
CONSULTING (A talks to B) -> completed when A hangs up, or a conference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import branches, fallback
from .actions import ReferFarEnd, ResolveTarget, TransferRefused
from .events import FarEndNotified, LegFailed, LegRinging, TargetRejected, TargetResolved, TransferRequested
from .outcome import finish
from .prompts import PromptRef
from .sip import aggregate_cause, failure_cause, is_global_failure
from .states import Stimulus, TransferState
from .types import (
    Cause,
    EndReason,
    FailureCause,
    FallbackRule,
    OutcomeCause,
    OutcomeKind,
    OutcomeMode,
    RefusalReason,
    RejectReason,
    TargetKind,
    TimerPurpose,
    TransferTrigger,
)

if TYPE_CHECKING:
    from .context import Facts, Step

__all__ = ["Transfer", "finish"]

_S = Stimulus
_TP = TimerPurpose


@dataclass
class Transfer:
    """One transfer attempt, from the transfer key (or request) to its outcome."""

    id: str
    trigger: TransferTrigger
    state: TransferState = TransferState.COLLECTING
    number: str | None = None
    digits: str = ""
    #: More digits came than the tenant's longest number: refused when the number ends.
    too_long: bool = False
    target_kind: TargetKind | None = None
    #: Originated legs towards B, in order (several for a department).
    branches: list[str] = field(default_factory=list)
    #: Failure cause per failed branch.
    failures: dict[str, FailureCause] = field(default_factory=dict)
    answered: str | None = None
    #: The branch whose early media A hears, if any.
    early_leg: str | None = None
    recall_leg: str | None = None
    cause: Cause | None = None
    rule: FallbackRule | None = None
    #: How the client gets back to A: on the line or recalled.
    return_mode: OutcomeMode = OutcomeMode.TRANSFEROR_ON_LINE
    #: Prompts being played whose ``PromptFinished`` we wait for.
    awaiting: list[tuple[str, PromptRef]] = field(default_factory=list)
    #: An attended REFER's Replaces: B is invited with it, and its dialog with A ends once B joined.
    replaces: str | None = None
    #: Prompts to play after those (voicemail beep).
    queue: list[tuple[str, PromptRef]] = field(default_factory=list)
    finished: bool = False


# -- shared -------------------------------------------------------------------------------


def release(s: Step, reason: EndReason) -> None:
    """Cancel this transfer's timers and legs (everything but the client and A)."""
    t, fx = s.t, s.fx
    fx.cancel_all_timers()
    for leg in t.branches:
        fx.release_leg(leg, reason)
    if t.recall_leg is not None:
        fx.release_leg(t.recall_leg, reason)
        t.recall_leg = None
    fx.media.stop_recording()
    t.awaiting.clear()
    t.queue.clear()


def begin_decision(facts: Facts, number: str) -> Stimulus:
    """A complete number while A is on the line: refused if it is A's own or the client's."""
    return _S.SELF_TARGET if facts.is_self_target(number) else _S.NUMBER_KNOWN


def begin(s: Step, number: str) -> None:
    """Resolve the number: the client on hold means on hold (music, and nobody hears the client)."""
    t, fx, a, client = s.t, s.fx, s.facts.a, s.facts.client_leg
    t.number = number
    fx.cancel_timer(_TP.INTERDIGIT)
    fx.media.play_hold(client)
    fx.media.block(a, client)
    fx.media.block(client, a)
    fx.media.block_dtmf(a)
    fx.emit(ResolveTarget(t.id, number))
    fx.start_timer(_TP.RESOLVE, s.facts.settings.resolve_timeout_s)


def refuse_self(s: Step, number: str) -> None:
    """A dialled or asked for their own number or the client's: a short prompt, nothing else."""
    t, fx = s.t, s.fx
    t.number = number
    fx.cancel_timer(_TP.INTERDIGIT)
    fx.media.play_prompt(s.facts.a, s.facts.settings.prompts.forbidden)
    t.cause = OutcomeCause.SELF_TARGET
    finish(s, OutcomeKind.REFUSED, cause=t.cause)


def refuse(s: Step, cause: Cause, prompt: PromptRef) -> None:
    """Unknown / forbidden / self / error: A hears a short prompt and stays with the client."""
    s.fx.cancel_timer(_TP.RESOLVE)
    s.fx.media.reconnect(s.facts.a, s.facts.client_leg)
    s.fx.media.play_prompt(s.facts.a, prompt)
    s.t.cause = cause
    finish(s, OutcomeKind.REFUSED, cause=cause)


def fail(s: Step, cause: FailureCause) -> Stimulus:
    """B cannot be reached: A decides if on the line, otherwise the direction's rule."""
    t = s.t
    t.cause = cause
    t.early_leg = None
    if s.facts.transferor_up:
        t.return_mode = OutcomeMode.TRANSFEROR_ON_LINE
        return fallback.on_line(s.facts)
    t.rule = s.facts.policy.rule
    return fallback.after_transferor_left(s.facts)


# -- guards -------------------------------------------------------------------------------


def guard_digit_timeout(s: Step) -> Stimulus:
    t = s.t
    if not t.digits:
        return _S.NO_NUMBER
    if t.too_long:
        return _S.NUMBER_TOO_LONG
    return begin_decision(s.facts, t.digits)


def guard_resolved(s: Step) -> Stimulus:
    targets, allowed = branches.allowed_targets(s)
    a_up = s.facts.transferor_up
    if targets and not allowed:
        return _S.SELF_TARGET if a_up else _S.TARGET_INVALID
    if not allowed:
        return _S.NOBODY_TO_RING
    if s.event.far_end and len(allowed) == 1:  # type: ignore[attr-defined]
        return _S.RESOLVED_FOR_FAR_END  # whether A waits on the line or has left
    return _S.TARGET_RESOLVED if a_up else _S.RESOLVED_BLIND


def guard_refusal(s: Step, stimulus: Stimulus) -> Stimulus:
    """A rejection or a timeout is A's to hear; once A has left it is a failed (blind) transfer."""
    return stimulus if s.facts.transferor_up else _S.TARGET_INVALID


def guard_answered(s: Step) -> Stimulus:
    return _S.OUTSIDE_ANSWERED if s.facts.is_outside(s.event.leg) else _S.TARGET_ANSWERED  # type: ignore[attr-defined]


def guard_a_left(s: Step) -> Stimulus:
    outside = s.facts.is_outside(s.t.answered)
    return _S.TRANSFEROR_HUNG_UP_OUTSIDE if outside else _S.TRANSFEROR_HUNG_UP


# -- collecting ---------------------------------------------------------------------------


def on_number_digit(s: Step) -> Stimulus | None:
    t, fx, settings = s.t, s.fx, s.facts.settings
    fx.cancel_timer(_TP.INTERDIGIT)
    if len(t.digits) >= settings.max_number_length:
        # an over-long number is refused when it ends, never cut short and dialled; its digits
        # are still absorbed meanwhile
        t.too_long = True
    else:
        t.digits += s.arg
        if settings.number_is_complete(t.digits):
            return begin_decision(s.facts, t.digits)
    fx.start_timer(_TP.INTERDIGIT, settings.interdigit_timeout_s)
    return None


def on_number_known(s: Step) -> None:
    begin(s, s.t.digits)


def on_self_dialled(s: Step) -> None:
    refuse_self(s, s.t.digits)


def on_no_number(s: Step) -> None:
    finish(s, OutcomeKind.CANCELLED, cause=OutcomeCause.NO_NUMBER)


def on_number_too_long(s: Step) -> None:
    refuse(s, OutcomeCause.TOO_LONG, s.facts.settings.prompts.unknown_number)


# -- resolving ----------------------------------------------------------------------------


def on_target_resolved(s: Step) -> None:
    event = s.event
    assert isinstance(event, TargetResolved)
    s.t.target_kind = event.target_kind
    branches.ring(s, "b", s.facts.caller_id_for(event.target_kind))


def on_resolved_to_self(s: Step) -> None:
    assert isinstance(s.event, TargetResolved)
    s.t.target_kind = s.event.target_kind
    refuse(s, OutcomeCause.SELF_TARGET, s.facts.settings.prompts.forbidden)


def on_target_rejected(s: Step) -> None:
    event = s.event
    assert isinstance(event, TargetRejected)
    prompts = s.facts.settings.prompts
    unknown = event.reason is RejectReason.UNKNOWN_NUMBER
    refuse(s, event.reason, prompts.unknown_number if unknown else prompts.forbidden)


def on_resolve_timeout(s: Step) -> None:
    refuse(s, OutcomeCause.RESOLVE_TIMEOUT, s.facts.settings.prompts.transfer_error)


def on_nobody_to_ring(s: Step) -> Stimulus:
    s.fx.cancel_timer(_TP.RESOLVE)
    if isinstance(s.event, TargetResolved):
        s.t.target_kind = s.event.target_kind
    return fail(s, FailureCause.UNREACHABLE)


def on_target_invalid(s: Step) -> Stimulus:
    s.fx.cancel_timer(_TP.RESOLVE)
    if isinstance(s.event, TargetResolved):
        s.t.target_kind = s.event.target_kind
    return fail(s, FailureCause.INVALID_TARGET)


# -- ringing ------------------------------------------------------------------------------


def on_target_ringing(s: Step) -> None:
    """A hears B's early media (announcements, real ringback) rather than ours, or our ringback."""
    event, t, media, a = s.event, s.t, s.fx.media, s.facts.a
    assert isinstance(event, LegRinging)
    if event.early_media and t.early_leg is None:
        media.stop(a)
        media.bridge(a, event.leg)
        t.early_leg = event.leg
    elif t.early_leg is None and media.overlay_of(a) is None:
        media.play_ringback(a)


def ignore(s: Step) -> None:
    """Accepted, and nothing to do (B's ringing that only A would hear, a stale prompt...)."""


def on_target_answered(s: Step) -> Stimulus | None:
    """A talks to B; the client keeps the music. A REFER asked for the client to reach B: A's phone
    hands the call over now, as if A had hung up (its own BYE, which Kamailio absorbs, comes later)."""
    if s.t.trigger is TransferTrigger.REFER:
        branches.take_answer(s)
        # A's ringback (or B's early media) ends with A's part: no looped player is left on a phone that
        # has handed the call over, nor played again after the client's re-pairing. A stays blocked
        # until its phone hangs up (rtpengine 10.5 keeps a stale pairing until it is cut)
        s.fx.media.stop(s.facts.a)
        s.fx.hand_over(s.facts.a)
        return _S.TRANSFEROR_HUNG_UP
    winner, a, media = branches.take_answer(s), s.facts.a, s.fx.media
    media.stop(a)
    if media.partner_of(a) != winner:
        media.bridge(a, winner)
    s.t.early_leg = None
    return None


def on_blind_answered(s: Step) -> None:
    branches.take_answer(s)
    branches.connect_client(s, OutcomeKind.COMPLETED, mode=OutcomeMode.BLIND)


def on_target_failed(s: Step) -> Stimulus | None:
    event, t, fx = s.event, s.t, s.fx
    assert isinstance(event, LegFailed)
    cause = failure_cause(event.sip_status)
    t.failures[event.leg] = cause
    alive = branches.alive(s)
    # a 6xx ends every branch of one callee, but not across a department's members
    global_failure = is_global_failure(event.sip_status) and t.target_kind is not TargetKind.DEPARTMENT
    if alive and not global_failure:
        if t.early_leg == event.leg:
            t.early_leg = None
            fx.media.play_ringback(s.facts.a)
        return None
    for leg in alive:
        fx.release_leg(leg, EndReason.TARGET_FAILED)
    fx.cancel_timer(_TP.NO_ANSWER)
    return fail(s, cause if global_failure else aggregate_cause(t.failures.values()))


def on_no_answer(s: Step) -> Stimulus:
    for leg in branches.alive(s):
        s.fx.release_leg(leg, EndReason.NO_ANSWER)
    return fail(s, FailureCause.NO_ANSWER)


def on_a_left_ringing(s: Step) -> None:
    """A hung up while B rings: a blind transfer (the client keeps the music)."""
    s.t.early_leg = None


# -- the client's trunk calls B (a REFER to it) -----------------------------------------------


def on_pass_to_far_end(s: Step) -> None:
    """The client's own trunk calls the outside number: it gets a REFER sent as A's side, with the
    policy's caller ID as Referred-By, under the same no-answer time. A hears ringback meanwhile; the
    client keeps the music until the trunk moves it to B (it may hold the PBX's dialog meanwhile)."""
    event, t, fx = s.event, s.t, s.fx
    assert isinstance(event, TargetResolved)
    t.target_kind = event.target_kind
    fx.cancel_timer(_TP.RESOLVE)
    fx.emit(ReferFarEnd(t.id, branches.allowed_targets(s)[1][0], s.facts.caller_id_for(event.target_kind)))
    if s.facts.transferor_up:
        fx.media.play_ringback(s.facts.a)
    fx.start_timer(_TP.NO_ANSWER, s.facts.settings.no_answer_timeout_s)


def on_far_end_connected(s: Step) -> None:
    """The trunk connected the client to B itself: the PBX's part is over. Its dialog with the client
    ends (RFC 5589: the transferor ends it once the transfer succeeded), A's with it."""
    finish(s, OutcomeKind.COMPLETED, mode=OutcomeMode.FAR_END)
    s.fx.end(EndReason.TRANSFERRED)


def on_far_end_failed(s: Step) -> Stimulus:
    """The trunk could not reach B (its final NOTIFY, or a REFER that never left): as if B had failed. The
    client's dialog never left the PBX, so A (on the line) or the direction's rule gets it back."""
    event = s.event
    status = event.status if isinstance(event, FarEndNotified) else 0
    s.fx.cancel_timer(_TP.NO_ANSWER)
    # the far end's 408: B did not answer in its time
    return fail(s, FailureCause.NO_ANSWER if status == 408 else failure_cause(status))


def on_far_end_no_answer(s: Step) -> Stimulus:
    """No final NOTIFY within the tenant's no-answer time: the PBX takes the call back (a trunk still
    trying is not told: RFC 3515 has no way to withdraw a REFER; a late success ends the client's dialog)."""
    return fail(s, FailureCause.NO_ANSWER)


# -- consulting ---------------------------------------------------------------------------


def on_target_hung_up(s: Step) -> None:
    s.t.answered = None
    s.fx.media.reconnect(s.facts.a, s.facts.client_leg)
    finish(s, OutcomeKind.RETURNED, cause=OutcomeCause.TARGET_HUNG_UP, mode=OutcomeMode.TRANSFEROR_ON_LINE)


def on_conference_key(s: Step) -> None:
    a, client, b, media = s.facts.a, s.facts.client_leg, s.t.answered, s.fx.media
    assert b is not None
    media.stop(client)
    media.unblock(a, client)
    media.unblock(client, a)
    # A's DTMF stays blocked: A may still press the back key.
    media.start_conference((client, a, b))
    s.fx.make_peer(b)
    finish(s, OutcomeKind.CONFERENCED)


def on_attended(s: Step) -> None:
    # a REFER's transfer never consulted: the phone asked for the client to reach B
    blind = s.t.trigger is TransferTrigger.REFER
    branches.connect_client(s, OutcomeKind.COMPLETED, mode=OutcomeMode.BLIND if blind else OutcomeMode.ATTENDED)


# -- the back key, hang-ups, requests, media ------------------------------------------------


def on_back_key(s: Step) -> None:
    release(s, EndReason.TRANSFEROR_RETURNED)
    s.fx.media.reconnect(s.facts.a, s.facts.client_leg)
    finish(s, OutcomeKind.CANCELLED, cause=OutcomeCause.TRANSFEROR_RETURNED)


def on_a_left_dialling(s: Step) -> None:
    finish(s, OutcomeKind.CANCELLED, cause=OutcomeCause.TRANSFEROR_HUNG_UP)
    s.fx.end(EndReason.TRANSFEROR_HUNG_UP)


def on_client_hung_up(s: Step) -> None:
    t = s.t
    if t.cause is not None:
        finish(s, OutcomeKind.FAILED, cause=t.cause, rule=t.rule, mode=OutcomeMode.CLIENT_HUNG_UP)
    else:
        finish(s, OutcomeKind.CANCELLED, cause=OutcomeCause.CLIENT_HUNG_UP)
    s.fx.end(EndReason.CLIENT_HUNG_UP)


def on_transfer_requested(s: Step) -> None:
    event = s.event
    assert isinstance(event, TransferRequested)
    s.fx.emit(TransferRefused(event.number, event.trigger, RefusalReason.TRANSFER_IN_PROGRESS))


def on_media_failed(s: Step) -> None:
    """The first failure while A is on the line: abandon the transfer, re-assert the plain call."""
    release(s, EndReason.MEDIA_FAILURE)
    s.fx.set_degraded()
    s.fx.media.reconnect(s.facts.a, s.facts.client_leg, force=True)
    finish(s, OutcomeKind.CANCELLED, cause=OutcomeCause.MEDIA_FAILURE)


def on_media_lost(s: Step) -> None:
    release(s, EndReason.MEDIA_FAILURE)
    finish(s, OutcomeKind.FAILED, cause=OutcomeCause.MEDIA_FAILURE, rule=s.t.rule)
    s.fx.end(EndReason.MEDIA_FAILURE)
