"""The conversation state machine: events in, actions out.

Theory of operation
===================

This module is the whole call-transfer logic and nothing else.  Like h11 and
wsproto it never performs I/O, never awaits, never reads a clock and never
generates randomness: :meth:`Conversation.handle` takes one *event* (a fact:
"A pressed ``#``", "B answered", "timer X fired") and returns a list of
*actions* (commands: "play hold music to the client", "INVITE 201", "start
timer Y").  An asyncio service owns the sockets, rtpengine, Kamailio and Redis;
it feeds events in and executes the actions in order.  Because nothing here
has side effects, every path can be tested by feeding events and comparing
action lists.

Composition
-----------
A :class:`Conversation` is one client call.  It owns

* the *legs* (SIP dialogs) and a tiny per-dialog machine
  (:data:`~controller.core.states.LEG_TRANSITIONS`) that filters what SIP can
  and cannot say: a BYE on an early dialog is impossible (RFC 3261 §15: the
  callee "MUST NOT send a BYE on early dialogs"), a 200 OK that crosses our
  CANCEL is not (RFC 3261 §9: "CANCEL has no effect on a request to which a
  UAS has already given a final response") and is answered with a BYE;
* a *media model*: who is paired with whom in the rtpengine call, who hears
  an overlay (hold music, ringback, a prompt), which directions and DTMF are
  blocked.  Media actions are emitted through it, so the machine only asks
  for changes that are needed and can always compute how to restore the plain
  client-A call;
* the *timers* it started (by unique name; a ``TimerFired`` for a name that
  is no longer active is stale and ignored, so a timer that fires on one
  replica while another cancels it is harmless);
* at most one :class:`Transfer`, the sub-machine that runs a transfer from
  the first digit to its outcome, including the fallback after a failure.

Tables as data
--------------
Each event is first turned into a :class:`~controller.core.states.Stimulus`
according to who sent it (the client's BYE is ``CLIENT_HUNG_UP``, A's is
``TRANSFEROR_HUNG_UP``) and which talk options are active.  The stimulus is
looked up in the transition tables of :mod:`controller.core.states`; a missing
entry raises :class:`~controller.core.errors.InvalidTransition`, and the
handler's resulting state is checked against the table, so the tables (and the
diagrams generated from them) cannot drift from the code.  Events that are
expected but irrelevant never reach the tables: digits from anybody but the
current transferor, stale timers and prompt notifications, late answers to a
resolution that was abandoned, late responses on legs we already released.

``handle`` is atomic: if it raises, the conversation is restored to the
snapshot taken before the event, ``version`` included.

Talk options
------------
Only digits pressed by the current transferor count.  ``#`` while talking
starts digit collection; the number ends after the inter-digit timeout or as
soon as it equals a known extension that no longer extension starts with.  A
complete number is handled exactly like a ``TransferRequested`` event, which is
also what a REFER (RFC 3515) or the Call API produce: the client hears hold
music and nothing else (neither side hears the other), and the service is
asked to resolve the number.  While a transfer is in progress the transfer
key is not active: a second ``#`` is silently ignored (key mashing is common
and harmless), whereas a second *TransferRequested* gets a
``TransferRefused`` action because a REFER or an API call must be answered.
``*`` returns to the client from any point before completion (cancelling or
hanging up B); ``#`` after B answered starts a three-way conference.

The talk options are the PBX's own keys and never reach the other side: the
transferor's RFC 4733 events are blocked in rtpengine for the whole call (Kamailio
blocks A's at answer; the machine blocks every later transferor's when it takes
over), and rtpengine still reports them.  A digit that is no talk option is
passed on by the machine (``PassDigit``: rtpengine re-plays it from the
transferor towards their partner) while A talks to a person, unless the tenant
absorbs every digit.  A transfer to A's own number or to the client's is
refused like a forbidden target, and a department never rings A.

After the transfer
------------------
Once the client is connected to B, B is the client's party.  An internal B
(extension, department member, SIP URI) becomes the transferor and can transfer
again; an outside party reached over the trunk gets no talk options at all
(``BRIDGED``), so nobody outside the company can make the controller dial out.

Conventions
-----------
Within one action list: media and signalling first, then the single
``RecordOutcome`` of the transfer (at the moment its fate is decided), then the
conversation's own teardown (timers, recording, legs, ``EndConversation``).
Transfers are ``t1``, ``t2``...; originated legs ``<conversation>.<transfer>.b<n>``
(``.r1`` for A rung again, ``.o<n>`` for the origin's members); timers
``<conversation>/<purpose>/<n>``, never reused.

REFER
-----
RFC 3515 §2.4.4: "If a REFER request is accepted (that is, a 2xx class
response is returned), the recipient MUST create a subscription and send
notifications of the status of the refer".  The machine does not speak SIP,
but gives the service what it needs for that: a refusal comes back at once as
``TransferRefused`` (an error response instead of 202), and every transfer
ends with exactly one ``RecordOutcome`` carrying the trigger and the cause, from
which the service builds the final NOTIFY ("The body of a NOTIFY MUST begin
with a SIP Response Status-Line", §2.4.5).

Parallel targets
----------------
A department resolves to several dial strings; each becomes its own leg so
that the machine decides, testably, that the first answer wins and the other
branches are cancelled (what a forking proxy does per RFC 3261 §16.7), and so
that a second 200 that raced the CANCEL is BYEd.  A 6xx on one branch ends
every branch when the branches are contacts of one callee (RFC 3261 §16.7: a
proxy receiving a 6xx "SHOULD cancel all client pending transactions"), but
not across department members, who are different users.

Failures and fallback
---------------------
B fails by no answer (the machine's own timer), busy (486/600), rejection
(603/607) or unreachability (408/480/503/anything else, 0 for no
registration).  While A is still on the line, A is reconnected (after the
optional warning prompts) and stays in control.  Once A has left, the
direction's rule applies: ``return_to_transferor`` rings A again while the
client keeps hold music, ``apologize`` plays the apology and ends the call,
``voicemail`` plays greeting and beep and records the client.

If A does not answer the recall either and the policy says
``return_to_origin``, the routing step that first delivered the call (say the
department behind the DID the client dialled) is looked up again
(``ResolveOrigin``) and its members ring for the client, A excluded, while the
client keeps the music.  The first to answer gets the client and becomes the
transferor, exactly as after a blind transfer; the transfer's outcome is
``failed`` with mode ``origin``.  If nobody there answers either, or the origin
has nobody to ring (an outgoing call's origin is A's own dial-out), the client
hears the apology: the call is never silently dropped and never loops.

An rtpengine failure (``MediaFailed``) is never ignored, because it may have
left somebody in silence: during a transfer the transfer is abandoned and the
plain client-A call is re-asserted in full (every media command re-issued); in
a stable state the current pairing is re-asserted; a second failure in the
same conversation, or a failure while A is gone, ends the conversation
cleanly.

When the client hangs up, the conversation ends and every other leg is
released: the controller does not keep A and B talking on its own account.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .actions import (
    Action,
    BlockDtmf,
    BlockMedia,
    BridgeMedia,
    CancelLeg,
    CancelTimer,
    EndConversation,
    EndLeg,
    OriginateLeg,
    PassDigit,
    PlayHoldMusic,
    PlayPrompt,
    PlayRingback,
    RecordOutcome,
    ResolveOrigin,
    ResolveTarget,
    RingTransferor,
    StartConference,
    StartRecording,
    StartTimer,
    StopMedia,
    StopRecording,
    TransferRefused,
    UnblockMedia,
)
from .callerid import caller_id_for_target
from .dtmf import match_digits
from .errors import InvalidTransition, TransitionTableError
from .events import (
    ConversationStarted,
    DigitPressed,
    Event,
    LegAnswered,
    LegEvent,
    LegFailed,
    LegHungUp,
    LegRinging,
    MediaFailed,
    PromptFinished,
    TargetRejected,
    TargetResolved,
    TimerFired,
    TransferRequested,
)
from .settings import FallbackPolicy, Settings
from .sip import aggregate_cause, failure_cause, is_global_failure
from .states import (
    LEG_TRANSITIONS,
    ConversationState,
    LegDisposition,
    LegSignal,
    State,
    Stimulus,
    TransferState,
    transitions_for,
)
from .types import (
    CallerIdPolicy,
    Direction,
    FailureCause,
    FallbackRule,
    LegRole,
    LegState,
    OutcomeKind,
    RejectReason,
    TargetKind,
    TransferTrigger,
)

__all__ = ["SCHEMA_VERSION", "Conversation", "Leg", "Transfer"]

#: Layout version of :meth:`Conversation.to_dict`.
SCHEMA_VERSION = 1

_C = ConversationState
_T = TransferState
_S = Stimulus

_LIVE = frozenset({LegState.TRYING, LegState.RINGING})
#: States in which the service's answer to a resolution (``TargetResolved`` / ``TargetRejected``) counts.
_AWAITING_RESOLUTION = frozenset({TransferState.RESOLVING, TransferState.ROUTING_TO_ORIGIN})
_NUMBER_DIGITS = frozenset("0123456789")

#: Which talk options are active in which effective state.
_ACTIVE_KEYS: Mapping[State, tuple[str, ...]] = {
    _C.TALKING: ("transfer",),
    _T.COLLECTING: ("back",),
    _T.RESOLVING: ("back",),
    _T.RINGING: ("back",),
    _T.CONSULTING: ("back", "conference"),
    _C.CONFERENCE: ("back",),
}
_KEY_STIMULUS = {"transfer": _S.TRANSFER_KEY, "back": _S.BACK_KEY, "conference": _S.CONFERENCE_KEY}
#: States in which the transferor talks to a person, who should get the digits that are no talk option.
_PASSES_DIGITS = frozenset({_C.TALKING, _T.CONSULTING})

# Timer purposes.
_INTERDIGIT = "interdigit"
_RESOLVE = "resolve"
_NO_ANSWER = "no_answer"
_RECALL = "recall"
_PROMPT = "prompt"
_RECORDING = "recording"
_TIMER_STIMULUS = {
    _INTERDIGIT: _S.DIGIT_TIMEOUT,
    _RESOLVE: _S.RESOLVE_TIMEOUT,
    _NO_ANSWER: _S.NO_ANSWER_TIMEOUT,
    _RECALL: _S.RECALL_TIMEOUT,
    _PROMPT: _S.PROMPT_TIMEOUT,
    _RECORDING: _S.RECORDING_TIMEOUT,
}

_SIGNAL_OF: Mapping[type[LegEvent], LegSignal] = {
    LegRinging: LegSignal.RINGING,
    LegAnswered: LegSignal.ANSWERED,
    LegFailed: LegSignal.FAILED,
    LegHungUp: LegSignal.HUNG_UP,
}
_ROLE_STIMULUS: Mapping[tuple[LegRole, LegSignal], Stimulus] = {
    (LegRole.CLIENT, LegSignal.HUNG_UP): _S.CLIENT_HUNG_UP,
    (LegRole.TRANSFEROR, LegSignal.HUNG_UP): _S.TRANSFEROR_HUNG_UP,
    (LegRole.PEER, LegSignal.HUNG_UP): _S.PEER_HUNG_UP,
    (LegRole.TARGET, LegSignal.RINGING): _S.TARGET_RINGING,
    (LegRole.TARGET, LegSignal.ANSWERED): _S.TARGET_ANSWERED,
    (LegRole.TARGET, LegSignal.FAILED): _S.TARGET_FAILED,
    (LegRole.TARGET, LegSignal.HUNG_UP): _S.TARGET_HUNG_UP,
    (LegRole.RECALL, LegSignal.RINGING): _S.RECALL_RINGING,
    (LegRole.RECALL, LegSignal.ANSWERED): _S.RECALL_ANSWERED,
    (LegRole.RECALL, LegSignal.FAILED): _S.RECALL_FAILED,
}

_TRANSFER_ID = re.compile(r"t([1-9][0-9]*)")

# Overlay kinds in the media model.
_HOLD = "hold"
_RINGBACK = "ringback"
_PROMPT_OVERLAY = "prompt"
_CONFERENCE = "conference"


def _opt(value: Any) -> Any:
    return None if value is None else str(value)


# =====================================================================================
# Legs
# =====================================================================================


@dataclass
class Leg:
    """One SIP dialog of the conversation."""

    id: str
    role: LegRole
    state: LegState
    #: The number / dial string of the party on this leg, if known.
    number: str | None = None
    kind: TargetKind | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role.value,
            "state": self.state.value,
            "number": self.number,
            "kind": _opt(self.kind),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Leg:
        return cls(
            id=d["id"],
            role=LegRole(d["role"]),
            state=LegState(d["state"]),
            number=d["number"],
            kind=None if d["kind"] is None else TargetKind(d["kind"]),
        )


# =====================================================================================
# The transfer sub-machine
# =====================================================================================


@dataclass
class Transfer:
    """One transfer attempt, from the transfer key (or request) to its outcome.

    Handlers are named ``on_<stimulus>``; each returns the next effective state,
    which must be listed in :data:`~controller.core.states.TRANSFER_TRANSITIONS`.
    The conversation is the context: it owns legs, media, timers and the action
    list.
    """

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
    failures: dict[str, str] = field(default_factory=dict)
    answered: str | None = None
    #: The branch whose early media A hears, if any.
    early_leg: str | None = None
    recall_leg: str | None = None
    cause: str | None = None
    rule: FallbackRule | None = None
    #: How the client gets back to A: ``transferor_on_line`` or ``recalled``.
    return_mode: str = "transferor_on_line"
    #: Prompts being played whose ``PromptFinished`` we wait for.
    awaiting: list[tuple[str, str]] = field(default_factory=list)
    #: Prompts to play after those (voicemail beep).
    queue: list[tuple[str, str]] = field(default_factory=list)
    finished: bool = False
    _conv: Conversation | None = field(default=None, repr=False, compare=False)

    # -- context -----------------------------------------------------------------------

    @property
    def conv(self) -> Conversation:
        assert self._conv is not None
        return self._conv

    @property
    def _a(self) -> str:
        leg = self.conv.transferor_leg
        assert leg is not None
        return leg

    @property
    def _client(self) -> str:
        return self.conv.client_leg

    # -- collecting --------------------------------------------------------------------

    def start_collecting(self) -> None:
        self.conv.start_timer(_INTERDIGIT, self.conv.settings.first_digit_timeout_s)

    def on_number_digit(self, event: Event, digit: str) -> State:
        conv = self.conv
        conv.cancel_timer(_INTERDIGIT)
        if len(self.digits) >= conv.settings.max_number_length:
            # an over-long number is refused when it ends, never cut short and dialled; its digits
            # are still absorbed meanwhile
            self.too_long = True
        else:
            self.digits += digit
            if conv.settings.number_is_complete(self.digits):
                return self.begin(self.digits)
        conv.start_timer(_INTERDIGIT, conv.settings.interdigit_timeout_s)
        return _T.COLLECTING

    def on_digit_timeout(self, event: Event, _: Any) -> State:
        if not self.digits:
            self.finish(OutcomeKind.CANCELLED, cause="no_number")
            return _C.TALKING
        if self.too_long:
            return self._refuse("too_long", self.conv.settings.prompts.unknown_number)
        return self.begin(self.digits)

    def begin(self, number: str) -> State:
        """The number is known (dialled, REFERred or from the API) and A is on the line."""
        conv = self.conv
        self.number = number
        conv.cancel_timer(_INTERDIGIT)
        if conv.is_self_target(number):
            conv.play_prompt(self._a, conv.settings.prompts.forbidden)
            self.cause = "self_target"
            self.finish(OutcomeKind.REFUSED, cause=self.cause)
            return _C.TALKING
        # on hold means on hold: the client hears the music and nobody hears the client
        conv.play_hold(self._client)
        conv.block(self._a, self._client)
        conv.block(self._client, self._a)
        conv.block_dtmf(self._a)
        conv.emit(ResolveTarget(self.id, number))
        conv.start_timer(_RESOLVE, conv.settings.resolve_timeout_s)
        return _T.RESOLVING

    # -- resolving ---------------------------------------------------------------------

    def on_target_resolved(self, event: Event, _: Any) -> State:
        assert isinstance(event, TargetResolved)
        conv = self.conv
        conv.cancel_timer(_RESOLVE)
        targets = list(dict.fromkeys(t for t in event.targets if t))
        # A department may contain A (or the client's own number): never ring them for this transfer.
        allowed = [t for t in targets if not conv.is_self_target(t)]
        if self.state is _T.ROUTING_TO_ORIGIN:
            if not allowed:
                return self._apologize()
            self._ring(allowed, event.target_kind, "o", conv.origin_caller_id(event.target_kind))
            return _T.RINGING_ORIGIN
        self.target_kind = event.target_kind
        if targets and not allowed:
            return self._refuse("self_target", conv.settings.prompts.forbidden)
        if not allowed:
            return self._fail(FailureCause.UNREACHABLE)
        self._ring(allowed, event.target_kind, "b", conv.caller_id_for(event.target_kind))
        return _T.RINGING if conv.transferor_up else _T.BLIND_RINGING

    def _ring(self, targets: list[str], kind: TargetKind, prefix: str, caller_id: str) -> None:
        """Originate one leg per target (``<conversation>.<transfer>.<prefix><n>``) under one no-answer timer."""
        conv = self.conv
        timeout = conv.settings.no_answer_timeout_s
        for index, target in enumerate(targets, start=1):
            leg_id = f"{conv.id}.{self.id}.{prefix}{index}"
            conv.add_leg(Leg(leg_id, LegRole.TARGET, LegState.TRYING, target, kind))
            self.branches.append(leg_id)
            conv.emit(OriginateLeg(leg_id, target, kind, caller_id, timeout))
        conv.start_timer(_NO_ANSWER, timeout)

    def on_target_rejected(self, event: Event, _: Any) -> State:
        assert isinstance(event, TargetRejected)
        if self.state is _T.ROUTING_TO_ORIGIN:
            self.conv.cancel_timer(_RESOLVE)
            return self._apologize()
        prompts = self.conv.settings.prompts
        prompt = prompts.unknown_number if event.reason is RejectReason.UNKNOWN_NUMBER else prompts.forbidden
        return self._refuse(str(event.reason), prompt)

    def on_resolve_timeout(self, event: Event, _: Any) -> State:
        if self.state is _T.ROUTING_TO_ORIGIN:
            return self._apologize()
        return self._refuse("resolve_timeout", self.conv.settings.prompts.transfer_error)

    def _refuse(self, cause: str, prompt: str) -> State:
        """Unknown / forbidden / self: A hears a short prompt and stays with the client."""
        conv = self.conv
        conv.cancel_timer(_RESOLVE)
        if not conv.transferor_up:
            # A left while we were resolving: nobody to hear the prompt, so this
            # is a failed (blind) transfer and the fallback rule applies.
            return self._fail(FailureCause.INVALID_TARGET)
        conv.reconnect_transferor()
        conv.play_prompt(self._a, prompt)
        self.cause = cause
        self.finish(OutcomeKind.REFUSED, cause=cause)
        return _C.TALKING

    # -- ringing -----------------------------------------------------------------------

    def _alive_branches(self) -> list[str]:
        return [leg for leg in self.branches if self.conv.legs[leg].state in _LIVE]

    def on_target_ringing(self, event: Event, _: Any) -> State:
        assert isinstance(event, LegRinging)
        conv = self.conv
        if self.state is not _T.RINGING:
            return self.state  # nobody hears B's ringing but A: the client keeps the music
        a = self._a
        if event.early_media and self.early_leg is None:
            # A hears B's early media (announcements, real ringback) rather than ours.
            conv.stop_media(a)
            conv.bridge(a, event.leg)
            self.early_leg = event.leg
        elif self.early_leg is None and conv.overlay_of(a) is None:
            conv.play_ringback(a)
        return _T.RINGING

    def on_target_answered(self, event: Event, _: Any) -> State:
        assert isinstance(event, LegAnswered)
        conv = self.conv
        winner = event.leg
        conv.cancel_timer(_NO_ANSWER)
        self.answered = winner
        for leg in self.branches:
            if leg != winner:
                conv.release_leg(leg, "answered_elsewhere")
        if self.state is _T.BLIND_RINGING:
            return self._connect_client(OutcomeKind.COMPLETED, mode="blind")
        if self.state is _T.RINGING_ORIGIN:
            return self._connect_client(OutcomeKind.FAILED, cause=self.cause, rule=self.rule, mode="origin")
        a = self._a
        conv.stop_media(a)
        if conv.partner_of(a) != winner:
            conv.bridge(a, winner)
        self.early_leg = None
        return _T.CONSULTING

    def on_target_failed(self, event: Event, _: Any) -> State:
        assert isinstance(event, LegFailed)
        conv = self.conv
        cause = failure_cause(event.sip_status)
        self.failures[event.leg] = str(cause)
        alive = self._alive_branches()
        # a 6xx ends every branch of one callee, but not across a department's members (the origin's too)
        global_failure = (is_global_failure(event.sip_status) and self.target_kind is not TargetKind.DEPARTMENT
                          and self.state is not _T.RINGING_ORIGIN)
        if alive and not global_failure:
            if self.early_leg == event.leg:
                self.early_leg = None
                if self.state is _T.RINGING:
                    conv.play_ringback(self._a)
            return self.state
        for leg in alive:
            conv.release_leg(leg, "target_failed")
        conv.cancel_timer(_NO_ANSWER)
        if self.state is _T.RINGING_ORIGIN:
            return self._apologize()  # B's failure stays the cause
        if global_failure:
            return self._fail(cause)
        return self._fail(aggregate_cause(FailureCause(c) for c in self.failures.values()))

    def on_no_answer_timeout(self, event: Event, _: Any) -> State:
        for leg in self._alive_branches():
            self.conv.release_leg(leg, "no_answer")
        if self.state is _T.RINGING_ORIGIN:
            return self._apologize()
        return self._fail(FailureCause.NO_ANSWER)

    # -- consulting --------------------------------------------------------------------

    def on_target_hung_up(self, event: Event, _: Any) -> State:
        self.answered = None
        self.conv.reconnect_transferor()
        self.finish(OutcomeKind.RETURNED, cause="target_hung_up", mode="transferor_on_line")
        return _C.TALKING

    def on_conference_key(self, event: Event, _: Any) -> State:
        conv = self.conv
        a, client, b = self._a, self._client, self.answered
        assert b is not None
        conv.stop_media(client)
        conv.unblock(a, client)
        conv.unblock(client, a)
        # A's DTMF stays blocked: A may still press the back key.
        conv.start_conference((client, a, b))
        conv.legs[b].role = LegRole.PEER
        conv.peer_leg = b
        self.finish(OutcomeKind.CONFERENCED)
        return _C.CONFERENCE

    def _connect_client(self, kind: OutcomeKind, **outcome: Any) -> State:
        """A has left and the answered leg is up: connect the client to it, who takes over from A."""
        conv = self.conv
        b = self.answered
        assert b is not None
        conv.stop_media(self._client)
        conv.bridge(self._client, b)
        state = conv.promote(b)  # media first, then the outcome (the action-list convention)
        self.finish(kind, **outcome)
        return state

    # -- back key, hang-ups, requests, media ---------------------------------------------

    def on_back_key(self, event: Event, _: Any) -> State:
        self._release("transferor_returned")
        self.conv.reconnect_transferor()
        self.finish(OutcomeKind.CANCELLED, cause="transferor_returned")
        return _C.TALKING

    def on_transferor_hung_up(self, event: Event, _: Any) -> State:
        conv = self.conv
        if self.state is _T.COLLECTING:
            self.finish(OutcomeKind.CANCELLED, cause="transferor_hung_up")
            return conv.end("transferor_hung_up")
        if self.state is _T.RESOLVING:
            return _T.RESOLVING  # continue as a blind transfer once resolved
        if self.state is _T.RINGING:
            self.early_leg = None
            return _T.BLIND_RINGING
        if self.state is _T.CONSULTING:
            return self._connect_client(OutcomeKind.COMPLETED, mode="attended")
        # RECONNECTING: A left instead of taking the client back.
        self.awaiting.clear()
        conv.cancel_timer(_PROMPT)
        self.rule = conv.policy.rule
        if self.rule is FallbackRule.RETURN_TO_TRANSFEROR:
            return self._after_recall_failed()
        return self._apply_rule()

    def on_client_hung_up(self, event: Event, _: Any) -> State:
        if self.state is _T.VOICEMAIL_RECORDING:
            self.finish(OutcomeKind.FAILED, cause=self.cause, rule=self.rule, mode="voicemail")
        elif self.cause is not None:
            self.finish(OutcomeKind.FAILED, cause=self.cause, rule=self.rule, mode="client_hung_up")
        else:
            self.finish(OutcomeKind.CANCELLED, cause="client_hung_up")
        return self.conv.end("client_hung_up")

    def on_transfer_requested(self, event: Event, _: Any) -> State:
        assert isinstance(event, TransferRequested)
        self.conv.emit(TransferRefused(event.number, event.trigger, "transfer_in_progress"))
        return self.state

    def on_media_failed(self, event: Event, _: Any) -> State:
        conv = self.conv
        self._release("media_failure")
        if conv.transferor_up and not conv.degraded:
            conv.degraded = True
            conv.reconnect_transferor(force=True)
            self.finish(OutcomeKind.CANCELLED, cause="media_failure")
            return _C.TALKING
        self.finish(OutcomeKind.FAILED, cause="media_failure", rule=self.rule)
        return conv.end("media_failure")

    def _release(self, reason: str) -> None:
        """Cancel this transfer's timers and legs (everything but the client and A)."""
        conv = self.conv
        conv.cancel_all_timers()
        for leg in self.branches:
            conv.release_leg(leg, reason)
        if self.recall_leg is not None:
            conv.release_leg(self.recall_leg, reason)
            self.recall_leg = None
        conv.stop_recording()
        self.awaiting.clear()
        self.queue.clear()

    # -- failure and fallback ------------------------------------------------------------

    def _fail(self, cause: FailureCause) -> State:
        """B cannot be reached: A decides if on the line, otherwise the direction's rule."""
        self.cause = str(cause)
        self.early_leg = None
        if self.conv.transferor_up:
            return self._return_to_transferor("transferor_on_line")
        return self._apply_rule()

    def _return_to_transferor(self, mode: str) -> State:
        conv = self.conv
        policy = conv.policy
        self.return_mode = mode
        warn_a, warn_client = policy.warn_transferor_prompt, policy.warn_client_prompt
        if not (warn_a or warn_client):
            return self._reconnected()
        a, client = self._a, self._client
        # Nobody waits in silence while the warnings play: A is paired with the
        # client again (each still blocked towards the other, so both hear their
        # warning and nothing else) and the prompts play on top.
        conv.stop_media(a)
        if conv.partner_of(a) != client or conv.partner_of(client) != a:
            conv.bridge(client, a, muted=(client, a))
        conv.block(a, client)
        conv.block(client, a)
        if warn_a:
            self._play_awaited(a, warn_a)
        if warn_client:
            conv.stop_media(client)  # the hold music
            self._play_awaited(client, warn_client)
        conv.start_timer(_PROMPT, conv.settings.prompt_guard_s)
        return _T.RECONNECTING

    def _reconnected(self) -> State:
        self.conv.reconnect_transferor()
        self.finish(OutcomeKind.RETURNED, cause=self.cause, rule=self.rule, mode=self.return_mode)
        return _C.TALKING

    def _apply_rule(self) -> State:
        self.rule = self.conv.policy.rule
        if self.rule is FallbackRule.RETURN_TO_TRANSFEROR:
            return self._recall()
        if self.rule is FallbackRule.APOLOGIZE:
            return self._apologize()
        return self._voicemail()

    def _recall(self) -> State:
        conv = self.conv
        number = conv.transferor_number
        if not number:
            return self._after_recall_failed()
        policy = conv.policy
        leg_id = f"{conv.id}.{self.id}.r1"
        conv.add_leg(Leg(leg_id, LegRole.RECALL, LegState.TRYING, number, conv.transferor_kind))
        self.recall_leg = leg_id
        caller_id = conv.caller_id_for(conv.transferor_kind)
        conv.emit(RingTransferor(leg_id, number, caller_id, policy.transferor_ring_timeout_s))
        conv.start_timer(_RECALL, policy.transferor_ring_timeout_s)
        return _T.RINGING_TRANSFEROR

    def on_recall_ringing(self, event: Event, _: Any) -> State:
        return _T.RINGING_TRANSFEROR

    def on_recall_answered(self, event: Event, _: Any) -> State:
        conv = self.conv
        conv.cancel_timer(_RECALL)
        assert isinstance(event, LegAnswered) and self.recall_leg == event.leg
        conv.adopt_transferor(self.recall_leg)
        self.recall_leg = None
        return self._return_to_transferor("recalled")

    def on_recall_failed(self, event: Event, _: Any) -> State:
        self.conv.cancel_timer(_RECALL)
        self.recall_leg = None
        return self._after_recall_failed()

    def on_recall_timeout(self, event: Event, _: Any) -> State:
        if self.recall_leg is not None:
            self.conv.release_leg(self.recall_leg, "no_answer")
            self.recall_leg = None
        return self._after_recall_failed()

    def _after_recall_failed(self) -> State:
        conv = self.conv
        if conv.policy.return_to_origin and conv.origin:
            client = self._client
            if conv.overlay_of(client) != _HOLD:  # a warning prompt was playing to the client
                conv.stop_media(client)
                conv.play_hold(client)
            conv.emit(ResolveOrigin(self.id, conv.origin))
            conv.start_timer(_RESOLVE, conv.settings.resolve_timeout_s)
            return _T.ROUTING_TO_ORIGIN
        return self._apologize()

    def _apologize(self) -> State:
        conv = self.conv
        conv.stop_media(self._client)
        self._play_awaited(self._client, conv.settings.prompts.apology)
        conv.start_timer(_PROMPT, conv.settings.prompt_guard_s)
        return _T.APOLOGIZING

    def _voicemail(self) -> State:
        conv = self.conv
        prompts = conv.settings.prompts
        conv.stop_media(self._client)
        self._play_awaited(self._client, prompts.voicemail_greeting)
        self.queue.append((self._client, prompts.beep))
        conv.start_timer(_PROMPT, conv.settings.prompt_guard_s)
        return _T.VOICEMAIL_GREETING

    def _play_awaited(self, leg: str, prompt: str) -> None:
        self.conv.play_prompt(leg, prompt, awaited=True)
        self.awaiting.append((leg, prompt))

    def on_prompt_finished(self, event: Event, _: Any) -> State:
        conv = self.conv
        if self.awaiting:
            return self.state
        conv.cancel_timer(_PROMPT)
        if self.state is _T.RECONNECTING:
            return self._reconnected()
        if self.state is _T.APOLOGIZING:
            return self._end_after_apology()
        if self.queue:
            leg, prompt = self.queue.pop(0)
            self._play_awaited(leg, prompt)
            conv.start_timer(_PROMPT, conv.settings.prompt_guard_s)
            return _T.VOICEMAIL_GREETING
        return self._start_recording()

    def on_prompt_timeout(self, event: Event, _: Any) -> State:
        self.awaiting.clear()
        self.queue.clear()
        if self.state is _T.RECONNECTING:
            return self._reconnected()
        if self.state is _T.APOLOGIZING:
            return self._end_after_apology()
        self.conv.stop_media(self._client)
        return self._start_recording()

    def _end_after_apology(self) -> State:
        self.finish(OutcomeKind.FAILED, cause=self.cause, rule=self.rule, mode="apology")
        return self.conv.end("transfer_failed")

    def _start_recording(self) -> State:
        conv = self.conv
        assert self.number is not None
        conv.unmute(self._client)  # rtpengine's block would keep the client's voice from the recorder too
        conv.start_recording(self._client, self.number)
        conv.start_timer(_RECORDING, conv.policy.voicemail_max_s)
        return _T.VOICEMAIL_RECORDING

    def on_recording_timeout(self, event: Event, _: Any) -> State:
        self.finish(OutcomeKind.FAILED, cause=self.cause, rule=self.rule, mode="voicemail")
        return self.conv.end("voicemail_max_length")

    # -- outcome -----------------------------------------------------------------------

    def finish(
        self,
        kind: OutcomeKind,
        *,
        cause: str | None = None,
        rule: FallbackRule | None = None,
        mode: str | None = None,
    ) -> None:
        if self.finished:
            raise TransitionTableError(f"transfer {self.id} recorded two outcomes")
        self.finished = True
        number = self.number if self.number is not None else (self.digits or None)
        self.conv.emit(RecordOutcome(self.id, kind, number, self.trigger, cause, rule, mode))

    # -- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "trigger": self.trigger.value,
            "state": self.state.value,
            "number": self.number,
            "digits": self.digits,
            "too_long": self.too_long,
            "target_kind": _opt(self.target_kind),
            "branches": list(self.branches),
            "failures": dict(self.failures),
            "answered": self.answered,
            "early_leg": self.early_leg,
            "recall_leg": self.recall_leg,
            "cause": self.cause,
            "rule": _opt(self.rule),
            "return_mode": self.return_mode,
            "awaiting": [list(p) for p in self.awaiting],
            "queue": [list(p) for p in self.queue],
            "finished": self.finished,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Transfer:
        return cls(
            id=d["id"],
            trigger=TransferTrigger(d["trigger"]),
            state=TransferState(d["state"]),
            number=d["number"],
            digits=d["digits"],
            too_long=d.get("too_long", False),  # snapshots from before the flag
            target_kind=None if d["target_kind"] is None else TargetKind(d["target_kind"]),
            branches=list(d["branches"]),
            failures=dict(d["failures"]),
            answered=d["answered"],
            early_leg=d["early_leg"],
            recall_leg=d["recall_leg"],
            cause=d["cause"],
            rule=None if d["rule"] is None else FallbackRule(d["rule"]),
            return_mode=d["return_mode"],
            awaiting=[(leg, prompt) for leg, prompt in d["awaiting"]],
            queue=[(leg, prompt) for leg, prompt in d["queue"]],
            finished=d["finished"],
        )


# =====================================================================================
# The conversation
# =====================================================================================


class Conversation:
    """One client call: legs, media model, timers and the active :class:`Transfer`.

    Create it with the conversation id and the tenant's settings snapshot, then
    feed it :class:`~controller.core.events.ConversationStarted` and whatever
    follows.  Serialise with :meth:`to_dict` after every :meth:`handle`.
    """

    def __init__(self, conversation_id: str, settings: Settings | None = None) -> None:
        self.id = conversation_id
        self.settings = settings if settings is not None else Settings()
        self.version = 0
        self._state = ConversationState.NEW
        self.direction: Direction | None = None
        self.origin: str | None = None
        self.client_number: str | None = None
        self.transferor_number: str | None = None
        self.transferor_kind = TargetKind.EXTENSION
        self.did: str | None = None
        self.client_leg = ""
        self.transferor_leg: str | None = None
        self.peer_leg: str | None = None
        self._legs: dict[str, Leg] = {}
        self._transfer: Transfer | None = None
        # media model
        self._partner: dict[str, str] = {}
        self._overlay: dict[str, str] = {}
        self._blocked: set[tuple[str, str]] = set()
        self._dtmf_blocked: set[str] = set()
        self._recording: str | None = None
        self.degraded = False
        self._dtmf_buffer = ""
        self._timers: dict[str, str] = {}
        self._transfer_seq = 0
        self._timer_seq = 0
        self.end_reason: str | None = None
        self._actions: list[Action] = []

    # -- read-only views ---------------------------------------------------------------

    @property
    def state(self) -> ConversationState:
        return self._state

    @property
    def transfer(self) -> Transfer | None:
        return self._transfer

    @property
    def effective_state(self) -> State:
        """The conversation state, or the transfer's state while transferring."""
        if self._state is _C.TRANSFERRING and self._transfer is not None:
            return self._transfer.state
        return self._state

    @property
    def legs(self) -> Mapping[str, Leg]:
        return MappingProxyType(self._legs)

    @property
    def active_timers(self) -> dict[str, str]:
        """Active timer names mapped to their purpose."""
        return dict(self._timers)

    @property
    def transferor_up(self) -> bool:
        leg = self.transferor_leg
        return leg is not None and self._legs[leg].state is LegState.UP

    @property
    def policy(self) -> FallbackPolicy:
        assert self.direction is not None
        return self.settings.fallback_for(self.direction)

    def partner_of(self, leg: str) -> str | None:
        return self._partner.get(leg)

    def overlay_of(self, leg: str) -> str | None:
        return self._overlay.get(leg)

    def __repr__(self) -> str:
        return f"<Conversation {self.id!r} v{self.version} {self._state_label()}>"

    def _state_label(self) -> str:
        if self._state is _C.TRANSFERRING and self._transfer is not None:
            return f"TRANSFERRING/{self._transfer.state.name}"
        return self._state.name

    # -- the entry point ---------------------------------------------------------------

    def handle(self, event: Event) -> list[Action]:
        """Apply one event; return the actions to execute, in order.

        Raises :class:`~controller.core.errors.InvalidTransition` (and leaves the
        conversation untouched) when the event is impossible in the current state.
        """
        if not isinstance(event, Event):
            raise TypeError(f"not an event: {event!r}")
        snapshot = self.to_dict()
        self._actions = []
        try:
            self._dispatch(event)
        except BaseException:
            self._load(snapshot)
            self._actions = []
            raise
        actions, self._actions = self._actions, []
        self.version += 1
        return actions

    def _invalid(self, event: Event, detail: str = "") -> InvalidTransition:
        return InvalidTransition(event, self._state_label(), self.id, detail)

    def _dispatch(self, event: Event) -> None:
        if self._state is _C.NEW:
            if isinstance(event, ConversationStarted):
                self._fire(_S.STARTED, event)
                return
            raise self._invalid(event, "conversation not started")
        if isinstance(event, ConversationStarted):
            raise self._invalid(event, "conversation already started")
        if isinstance(event, LegEvent):
            self._on_leg_event(event)
        elif isinstance(event, DigitPressed):
            self._on_digit(event)
        elif isinstance(event, TransferRequested):
            self._fire(_S.TRANSFER_REQUESTED, event)
        elif isinstance(event, TargetResolved | TargetRejected):
            self._on_resolution(event)
        elif isinstance(event, TimerFired):
            purpose = self._timers.pop(event.name, None)
            if purpose is not None:
                self._fire(_TIMER_STIMULUS[purpose], event)
        elif isinstance(event, PromptFinished):
            self._on_prompt_finished(event)
        elif isinstance(event, MediaFailed):
            if event.leg is not None and event.leg not in self._legs:
                raise self._invalid(event, f"unknown leg {event.leg!r}")
            if self._state is not _C.ENDED:
                self._fire(_S.MEDIA_FAILED, event)
        else:
            raise self._invalid(event, "unknown event type")

    def _fire(self, stimulus: Stimulus, event: Event, arg: Any = None) -> None:
        state = self.effective_state
        allowed = transitions_for(state).get(stimulus)
        if allowed is None:
            raise self._invalid(event, f"no transition for {stimulus.name}")
        if isinstance(state, TransferState):
            assert self._transfer is not None
            handler = getattr(self._transfer, f"on_{stimulus.value}")
        else:
            handler = getattr(self, f"_on_{stimulus.value}")
        target = handler(event, arg)
        if target not in allowed:
            raise TransitionTableError(f"{state} --{stimulus.name}--> {target} is not in the table")
        self._enter(target)

    def _enter(self, target: State) -> None:
        previous = self.effective_state
        if isinstance(target, TransferState):
            assert self._transfer is not None
            row = transitions_for(target)
            for purpose in self._timers.values():
                if _TIMER_STIMULUS[purpose] not in row:
                    raise TransitionTableError(f"a {purpose} timer cannot fire in {target.name}")
            self._state = _C.TRANSFERRING
            self._transfer.state = target
        else:
            if self._transfer is not None:
                if not self._transfer.finished:
                    raise TransitionTableError(f"transfer {self._transfer.id} left without an outcome")
                if self._timers:
                    raise TransitionTableError(f"transfer {self._transfer.id} left timers {self._timers}")
                self._transfer = None
            self._state = target
        if target is not previous:
            self._dtmf_buffer = ""

    # -- event classification ----------------------------------------------------------

    def _on_leg_event(self, event: LegEvent) -> None:
        leg = self._legs.get(event.leg)
        if leg is None:
            raise self._invalid(event, f"unknown leg {event.leg!r}")
        signal = _SIGNAL_OF[type(event)]
        entry = LEG_TRANSITIONS[leg.state].get(signal)
        if entry is None:
            raise self._invalid(event, f"leg {leg.id!r} is {leg.state.value}")
        new_state, disposition = entry
        leg.state = new_state
        if new_state is LegState.ENDED:
            self._forget_media(leg.id)
        if disposition is LegDisposition.IGNORE:
            return
        if disposition is LegDisposition.RELEASE:
            self.emit(EndLeg(leg.id, "cancelled"))
            return
        stimulus = _ROLE_STIMULUS.get((leg.role, signal))
        if stimulus is None:
            raise self._invalid(event, f"{leg.role.value} leg cannot {signal.value}")
        self._fire(stimulus, event)

    def _on_digit(self, event: DigitPressed) -> None:
        leg = self._legs.get(event.leg)
        if leg is None:
            raise self._invalid(event, f"unknown leg {event.leg!r}")
        if event.leg != self.transferor_leg or leg.state is not LegState.UP:
            return  # only the transferor's digits count; the rest pass through in the media
        options = self.settings.talk_options
        keys = {name: getattr(options, name) for name in _ACTIVE_KEYS.get(self.effective_state, ())}
        tokens, self._dtmf_buffer = match_digits(self._dtmf_buffer, event.digit, keys)
        for token in tokens:
            state = self.effective_state
            if token.key is not None:
                self._fire(_KEY_STIMULUS[token.key], event)
            elif state is _T.COLLECTING and token.digit in _NUMBER_DIGITS:
                self._fire(_S.NUMBER_DIGIT, event, token.digit)
            elif state in _PASSES_DIGITS and self.settings.pass_other_digits:
                # rtpengine absorbed it with the rest of A's DTMF: the person A talks to still gets it
                assert token.digit is not None
                self.emit(PassDigit(event.leg, token.digit))

    def _on_resolution(self, event: TargetResolved | TargetRejected) -> None:
        match = _TRANSFER_ID.fullmatch(event.transfer_id)
        if match is None or int(match.group(1)) > self._transfer_seq:
            raise self._invalid(event, f"no ResolveTarget was sent for {event.transfer_id!r}")
        transfer = self._transfer
        if transfer is None or transfer.id != event.transfer_id or transfer.state not in _AWAITING_RESOLUTION:
            return  # the transfer moved on (cancelled, or a duplicate answer)
        stimulus = _S.TARGET_RESOLVED if isinstance(event, TargetResolved) else _S.TARGET_REJECTED
        self._fire(stimulus, event)

    def _on_prompt_finished(self, event: PromptFinished) -> None:
        if event.leg not in self._legs:
            raise self._invalid(event, f"unknown leg {event.leg!r}")
        transfer = self._transfer
        key = (event.leg, event.prompt)
        if transfer is None or key not in transfer.awaiting:
            return  # a prompt nobody waits for (error prompt, or cut short)
        transfer.awaiting.remove(key)
        if self._overlay.get(event.leg) == _PROMPT_OVERLAY:
            del self._overlay[event.leg]
        self._fire(_S.PROMPT_FINISHED, event)

    # -- conversation-level handlers ---------------------------------------------------

    def _on_started(self, event: Event, _: Any) -> State:
        assert isinstance(event, ConversationStarted)
        self.direction = event.direction
        self.origin = event.origin
        self.client_number = event.client_number
        self.transferor_number = event.transferor_number
        self.transferor_kind = event.transferor_kind
        self.did = event.did
        self.client_leg = event.client_leg
        self.transferor_leg = event.transferor_leg
        self.add_leg(Leg(event.client_leg, LegRole.CLIENT, LegState.UP, event.client_number))
        self.add_leg(
            Leg(
                event.transferor_leg,
                LegRole.TRANSFEROR,
                LegState.UP,
                event.transferor_number,
                event.transferor_kind,
            )
        )
        # The service sets the call up with client and A paired, and A's DTMF blocked in rtpengine
        # (Kamailio does it when A's side answers): the talk options never reach the client.
        self._partner[event.client_leg] = event.transferor_leg
        self._partner[event.transferor_leg] = event.client_leg
        self._dtmf_blocked.add(event.transferor_leg)
        return _C.TALKING

    def _new_transfer(self, trigger: TransferTrigger) -> Transfer:
        self._transfer_seq += 1
        transfer = Transfer(id=f"t{self._transfer_seq}", trigger=trigger)
        transfer._conv = self
        self._transfer = transfer
        return transfer

    def _on_transfer_key(self, event: Event, _: Any) -> State:
        self._new_transfer(TransferTrigger.DTMF).start_collecting()
        return _T.COLLECTING

    def _on_transfer_requested(self, event: Event, _: Any) -> State:
        assert isinstance(event, TransferRequested)
        if self._state is _C.TALKING:
            transfer = self._new_transfer(event.trigger)
            target = transfer.begin(event.number)
            if target is _C.TALKING:
                self.emit(TransferRefused(event.number, event.trigger, transfer.cause or "refused"))
            return target
        reason = {
            _C.CONFERENCE: "conference_active",
            _C.BRIDGED: "no_transferor",
            _C.ENDED: "conversation_ended",
        }[self._state]
        self.emit(TransferRefused(event.number, event.trigger, reason))
        return self._state

    def _on_client_hung_up(self, event: Event, _: Any) -> State:
        return self.end("client_hung_up")

    def _on_transferor_hung_up(self, event: Event, _: Any) -> State:
        if self._state is _C.TALKING:
            return self.end("transferor_hung_up")
        # CONFERENCE: the client and the third party stay together.
        peer = self.peer_leg
        assert peer is not None
        self.bridge(self.client_leg, peer)
        return self.promote(peer)

    def _on_peer_hung_up(self, event: Event, _: Any) -> State:
        if self._state is _C.BRIDGED:
            return self.end("peer_hung_up")
        self.peer_leg = None
        self.reconnect_transferor()
        return _C.TALKING

    def _on_back_key(self, event: Event, _: Any) -> State:
        # CONFERENCE: A takes the client back and releases the third party.
        assert self.peer_leg is not None
        self.release_leg(self.peer_leg, "transferor_returned")
        self.peer_leg = None
        self.reconnect_transferor()
        return _C.TALKING

    def _on_media_failed(self, event: Event, _: Any) -> State:
        if self.degraded:
            return self.end("media_failure")
        self.degraded = True
        if self._state is _C.BRIDGED:
            assert self.peer_leg is not None
            self.emit(StopMedia(self.client_leg))
            self._overlay.pop(self.client_leg, None)
            self.bridge(self.client_leg, self.peer_leg)
            return _C.BRIDGED
        if self._state is _C.CONFERENCE:
            assert self.peer_leg is not None
            self.release_leg(self.peer_leg, "media_failure")
            self.peer_leg = None
        self.reconnect_transferor(force=True)
        return _C.TALKING

    # -- context helpers used by the transfer -------------------------------------------

    def emit(self, action: Action) -> None:
        self._actions.append(action)

    def add_leg(self, leg: Leg) -> None:
        self._legs[leg.id] = leg

    def is_self_target(self, number: str) -> bool:
        """A transfer to the current transferor or to the client is refused."""
        own = {self.transferor_number, self.client_number} - {None, ""}
        return number.strip() in own

    def caller_id_for(self, kind: TargetKind) -> str:
        return caller_id_for_target(
            self.settings.caller_id_policy, kind, self.client_number, self.did, self.settings.company_number
        )

    def origin_caller_id(self, kind: TargetKind) -> str:
        """The origin's members see the call as its routing step first showed it: the client's own
        number (where the law allows it), not the transfer's caller-ID policy."""
        return caller_id_for_target(
            CallerIdPolicy.CLIENT, kind, self.client_number, self.did, self.settings.company_number
        )

    def start_timer(self, purpose: str, seconds: float) -> str:
        self._timer_seq += 1
        name = f"{self.id}/{purpose}/{self._timer_seq}"
        self._timers[name] = purpose
        self.emit(StartTimer(name, seconds))
        return name

    def cancel_timer(self, purpose: str) -> None:
        for name, timer_purpose in list(self._timers.items()):
            if timer_purpose == purpose:
                del self._timers[name]
                self.emit(CancelTimer(name))

    def cancel_all_timers(self) -> None:
        for name in list(self._timers):
            self.emit(CancelTimer(name))
        self._timers.clear()

    def release_leg(self, leg_id: str, reason: str) -> None:
        """CANCEL a leg that has not answered, BYE one that has; nothing if already gone."""
        leg = self._legs[leg_id]
        if leg.state in _LIVE:
            self.emit(CancelLeg(leg_id))
            leg.state = LegState.CANCELLING
        elif leg.state is LegState.UP:
            self.emit(EndLeg(leg_id, reason))
            leg.state = LegState.ENDED
        else:
            return
        self._forget_media(leg_id)

    def adopt_transferor(self, leg_id: str) -> None:
        """A answered the recall: the new leg is the transferor from now on."""
        self._legs[leg_id].role = LegRole.TRANSFEROR
        self.transferor_leg = leg_id
        self.block_dtmf(leg_id)

    def promote(self, leg_id: str) -> State:
        """B is now the client's party: with talk options if internal, without if outside."""
        leg = self._legs[leg_id]
        if leg.kind is TargetKind.TRUNK:
            # An outside party must not be able to start transfers (toll fraud).
            leg.role = LegRole.PEER
            self.peer_leg = leg_id
            self.transferor_leg = None
            return _C.BRIDGED
        leg.role = LegRole.TRANSFEROR
        self.transferor_leg = leg_id
        self.block_dtmf(leg_id)  # their talk options are the PBX's keys too
        self.transferor_number = leg.number
        self.transferor_kind = leg.kind or TargetKind.EXTENSION
        self.peer_leg = None
        return _C.TALKING

    def end(self, reason: str) -> State:
        """Release everything that is still ours and end the conversation."""
        self.cancel_all_timers()
        self.stop_recording()
        for leg in list(self._legs):
            self.release_leg(leg, reason)
        self.end_reason = reason
        self.emit(EndConversation(reason))
        return _C.ENDED

    # -- media model ---------------------------------------------------------------------

    def play_hold(self, leg: str) -> None:
        self.emit(PlayHoldMusic(leg, self.settings.hold_music))
        self._overlay[leg] = _HOLD

    def play_ringback(self, leg: str) -> None:
        self.emit(PlayRingback(leg))
        self._overlay[leg] = _RINGBACK

    def play_prompt(self, leg: str, prompt: str, *, awaited: bool = False) -> None:
        """Play a prompt; only awaited prompts are tracked (short error prompts are not)."""
        self.emit(PlayPrompt(leg, prompt))
        if awaited:
            self._overlay[leg] = _PROMPT_OVERLAY

    def stop_media(self, leg: str) -> None:
        if leg in self._overlay:
            del self._overlay[leg]
            self.emit(StopMedia(leg))

    def bridge(self, leg_a: str, leg_b: str, *, muted: tuple[str, ...] = ()) -> None:
        """Re-pair two legs; those in ``muted`` stay blocked towards the other (see BridgeMedia)."""
        for leg in (leg_a, leg_b):
            old = self._partner.pop(leg, None)
            if old is not None and old != _CONFERENCE and self._partner.get(old) == leg:
                del self._partner[old]
        self._partner[leg_a] = leg_b
        self._partner[leg_b] = leg_a
        # a re-pairing lifts rtpengine's blocks on both tags (see BridgeMedia), but for the muted ones
        self._blocked = {pair for pair in self._blocked if pair[0] not in (leg_a, leg_b)}
        self._blocked |= {(leg, leg_b if leg == leg_a else leg_a) for leg in muted}
        self.emit(BridgeMedia(leg_a, leg_b, muted))

    def start_conference(self, legs: tuple[str, ...]) -> None:
        for leg in legs:
            self._partner[leg] = _CONFERENCE
        self.emit(StartConference(legs))

    def block(self, from_leg: str, to_leg: str) -> None:
        if (from_leg, to_leg) not in self._blocked:
            self._blocked.add((from_leg, to_leg))
            self.emit(BlockMedia(from_leg, to_leg))

    def unblock(self, from_leg: str, to_leg: str) -> None:
        if (from_leg, to_leg) in self._blocked:
            self._blocked.discard((from_leg, to_leg))
            self.emit(UnblockMedia(from_leg, to_leg))

    def unmute(self, leg: str) -> None:
        """Lift every block on what ``leg`` says (rtpengine 10.5 blocks a tag towards everybody)."""
        for from_leg, to_leg in sorted(self._blocked):
            if from_leg == leg:
                self.unblock(from_leg, to_leg)

    def block_dtmf(self, leg: str) -> None:
        if leg not in self._dtmf_blocked:
            self._dtmf_blocked.add(leg)
            self.emit(BlockDtmf(leg))

    def start_recording(self, leg: str, mailbox: str) -> None:
        self._recording = leg
        self.emit(StartRecording(leg, mailbox))

    def stop_recording(self) -> None:
        if self._recording is not None:
            self.emit(StopRecording(self._recording))
            self._recording = None

    def reconnect_transferor(self, *, force: bool = False) -> None:
        """Restore the plain client-A call; with ``force`` re-issue every command."""
        a, client = self.transferor_leg, self.client_leg
        assert a is not None
        for leg in (a, client):
            if force:
                self._overlay.pop(leg, None)
                self.emit(StopMedia(leg))
            else:
                self.stop_media(leg)
        if force or self._partner.get(client) != a or self._partner.get(a) != client:
            self.bridge(client, a)
        # A's DTMF stays blocked: the talk options remain the PBX's own keys
        if force:
            self._blocked -= {(a, client), (client, a)}
            self._dtmf_blocked.add(a)
            self.emit(UnblockMedia(a, client))
            self.emit(UnblockMedia(client, a))
            self.emit(BlockDtmf(a))
        else:
            self.unblock(a, client)
            self.unblock(client, a)
            self.block_dtmf(a)

    def _forget_media(self, leg: str) -> None:
        """A leg is gone: drop its own media state (others may still point at it)."""
        self._overlay.pop(leg, None)
        self._partner.pop(leg, None)
        self._dtmf_blocked.discard(leg)
        # its own blocks go with it; a block on a party who still talks stays in rtpengine
        self._blocked = {pair for pair in self._blocked if pair[0] != leg}

    # -- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe snapshot (only dicts, lists, str, int, float, bool, None)."""
        return {
            "schema": SCHEMA_VERSION,
            "id": self.id,
            "version": self.version,
            "state": self._state.value,
            "settings": self.settings.to_dict(),
            "direction": _opt(self.direction),
            "origin": self.origin,
            "client_number": self.client_number,
            "transferor_number": self.transferor_number,
            "transferor_kind": self.transferor_kind.value,
            "did": self.did,
            "client_leg": self.client_leg,
            "transferor_leg": self.transferor_leg,
            "peer_leg": self.peer_leg,
            "legs": [leg.to_dict() for leg in self._legs.values()],
            "transfer": None if self._transfer is None else self._transfer.to_dict(),
            "media": {
                "partner": dict(self._partner),
                "overlay": dict(self._overlay),
                "blocked": sorted([list(pair) for pair in self._blocked]),
                "dtmf_blocked": sorted(self._dtmf_blocked),
                "recording": self._recording,
            },
            "degraded": self.degraded,
            "dtmf_buffer": self._dtmf_buffer,
            "timers": dict(self._timers),
            "transfer_seq": self._transfer_seq,
            "timer_seq": self._timer_seq,
            "end_reason": self.end_reason,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Conversation:
        """Rebuild a conversation from :meth:`to_dict` output (e.g. after a restart)."""
        conversation = cls.__new__(cls)
        conversation._load(d)
        return conversation

    def _load(self, d: Mapping[str, Any]) -> None:
        if d.get("schema") != SCHEMA_VERSION:
            raise ValueError(f"unsupported conversation snapshot schema {d.get('schema')!r}")
        self.id = d["id"]
        self.settings = Settings.from_dict(d["settings"])
        self.version = d["version"]
        self._state = ConversationState(d["state"])
        self.direction = None if d["direction"] is None else Direction(d["direction"])
        self.origin = d["origin"]
        self.client_number = d["client_number"]
        self.transferor_number = d["transferor_number"]
        self.transferor_kind = TargetKind(d["transferor_kind"])
        self.did = d["did"]
        self.client_leg = d["client_leg"]
        self.transferor_leg = d["transferor_leg"]
        self.peer_leg = d["peer_leg"]
        self._legs = {}
        for leg in d["legs"]:
            self._legs[leg["id"]] = Leg.from_dict(leg)
        self._transfer = None
        if d["transfer"] is not None:
            self._transfer = Transfer.from_dict(d["transfer"])
            self._transfer._conv = self
        media = d["media"]
        self._partner = dict(media["partner"])
        self._overlay = dict(media["overlay"])
        self._blocked = {(a, b) for a, b in media["blocked"]}
        self._dtmf_blocked = set(media["dtmf_blocked"])
        self._recording = media["recording"]
        self.degraded = d["degraded"]
        self._dtmf_buffer = d["dtmf_buffer"]
        self._timers = dict(d["timers"])
        self._transfer_seq = d["transfer_seq"]
        self._timer_seq = d["timer_seq"]
        self.end_reason = d["end_reason"]
        self._actions = []
