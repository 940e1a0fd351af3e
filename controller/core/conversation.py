"""The conversation: events in, actions out (the public facade of :mod:`controller.core`).

Theory of operation
===================

``controller.core`` is the whole call-transfer logic and nothing else.  Like
h11 and wsproto it never performs I/O, never awaits, never reads a clock and
never generates randomness (and imports nothing but the standard library):
:meth:`Conversation.handle` takes one *event* (a fact: "A pressed ``#``", "B
answered", "timer X fired") and returns a list of *actions* (commands: "play
hold music to the client", "INVITE 201", "start timer Y").  An asyncio service
owns the sockets, rtpengine, Kamailio and Redis; it feeds events in and
executes the actions in order.  Every path can be tested by feeding events and
comparing action lists.

Composition (one job per module)
--------------------------------
* ``conversation.py`` (here): one client call.  It owns the data
  (:class:`~controller.core.context.CallData`: the legs and their tiny
  per-dialog machine, who the client and the transferor are, the timers, the
  active transfer), classifies each event into a *stimulus* (with the tables
  of ``stimuli.py``), runs the table, and computes the Kamailio dialog
  takeover once per event.
* ``states.py``: the states and THE table, one target per (state, stimulus),
  plus the declared guards and follow-ups; ``handlers.py``: the handler and
  guard function of every cell; ``diagram.py`` draws the table.
* ``transfer.py``: the transfer sub-machine (collecting, resolving, ringing,
  consulting) and its data; ``branches.py``: the parallel legs towards B (the
  first answer wins); ``fallback.py``: what happens after B failed, as pure
  decisions plus the handlers of the states they lead to; ``outcome.py``: the
  one ``RecordOutcome`` per transfer.
* ``media.py``: who hears whom, emitting only the media commands needed;
  ``context.py``: the read-only facts and the effects object a handler gets
  (no handler holds a reference to the conversation); ``snapshot.py``: the one
  codec of every snapshot; ``prompts.py``: what to play (``PromptRef``).
* Room for more sub-machines: ``refer.py`` (the REFER subscription, RFC 3515:
  its NOTIFYs from the transfer's progress) and ``conference.py`` (a three-way
  mixer; today ``TalkOptions.conference`` is off by default and CONFERENCE is a
  plain state of the conversation) plug in the same way as ``transfer.py``:
  their states and cells in ``states.py``, their handlers and guards in
  ``handlers.py``, their data as a field of ``CallData`` next to ``transfer``
  (the snapshot codec and the diagram follow by themselves), and, for REFER,
  a classification of its events in ``stimuli.py``.

Tables as data
--------------
An event becomes a :class:`~controller.core.states.Stimulus` according to who
sent it (the client's BYE is ``CLIENT_HUNG_UP``, A's ``TRANSFEROR_HUNG_UP``)
and which talk options are active.  Then, in a loop: a guard declared for
(state, stimulus) may refine the stimulus; the table names the one target;
the cell's handler runs (it never names a state) and may return a declared
follow-up stimulus, which is looked up in the target's row.  A missing cell
raises :class:`~controller.core.errors.InvalidTransition`; an undeclared
refinement or follow-up is a bug (``TransitionTableError``).  Events that are
expected but irrelevant never reach the table: digits from anybody but the
current transferor, stale timers and prompt notifications, late answers to a
resolution that was abandoned, late responses on legs we already released.

``handle`` is atomic: if it raises, the conversation is restored to the
snapshot taken before the event, ``version`` included.

Talk options
------------
Only digits pressed by the current transferor count.  ``#`` while talking
starts digit collection; the number ends after the inter-digit timeout or as
soon as it equals a known extension that no longer extension starts with.  A
complete number is handled like a ``TransferRequested`` event, which is also
what a REFER (RFC 3515) or the Call API produce: the client hears hold music
and nothing else, and the service is asked to resolve the number.  While a
transfer is in progress the transfer key is not active (a second ``#`` is
ignored), whereas a second *TransferRequested* gets a ``TransferRefused``.
``*`` returns to the client from any point before completion; the conference
key (off by default, no mixer yet) starts a three-way conference after B
answered.  The talk options never reach the other side: the transferor's
DTMF is blocked in rtpengine, and a digit that is no talk option is passed on
(``PassDigit``) while A talks to a person, unless the tenant absorbs every
digit.  A transfer to A's own number or to the client's is refused, and a
department never rings A.

After the transfer
------------------
Once the client is connected to B, B is the client's party.  An internal B
becomes the transferor and can transfer again; an outside party reached over
the trunk gets no talk options at all (``BRIDGED``: no toll fraud).

Dialog takeover
---------------
While a transfer runs, or once the conversation's first transferor has left,
Kamailio must absorb that leg's BYE and answer the client's in-dialog requests
itself; the conversation emits ``SetDialogTakeover(<first transferor leg>)``
when this becomes wanted and ``SetDialogTakeover(None)`` when it stops (right
before ``EndConversation`` at the end), computed in one place after each event.

Failures
--------
Any action the service could not execute comes back as ``ActionFailed``.  A
failed origination is an unreachable target (``LegFailed(leg, 0)``); a failed
CANCEL ends the leg; failed bookkeeping changes nothing; anything else is a
media failure, never ignored because it may have left somebody in silence:
during a transfer the transfer is abandoned and the plain client-A call is
re-asserted in full; in a stable state the current pairing is re-asserted; a
second failure, or one while A is gone, ends the conversation cleanly.  When
the client hangs up, every other leg is released.

Conventions
-----------
Within one action list: media and signalling first, then the single
``RecordOutcome`` of the transfer, then the conversation's own teardown
(timers, recording, legs, ``SetDialogTakeover(None)``, ``EndConversation``).
Transfers are ``t1``, ``t2``...; originated legs
``<conversation>.<transfer>.b<n>`` (``.r1`` for A rung again, ``.o<n>`` for
the origin's members); timers ``<conversation>/<purpose>/<n>``, never reused.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from . import refer
from .actions import Action, EndConversation, EndLeg, PassDigit, SetDialogTakeover
from .context import CallData, DataView, Effects, Facts, Step
from .dtmf import match_digits
from .errors import InvalidTransition, TransitionTableError
from .events import (
    ActionFailed,
    ConversationStarted,
    DigitPressed,
    Event,
    FarEndNotified,
    LegEvent,
    LegFailed,
    MediaRestored,
    PhoneHeld,
    PromptFinished,
    TargetRejected,
    TargetResolved,
    TimerFired,
    TransferRequested,
)
from .handlers import GUARD_FUNCTIONS, HANDLERS
from .legs import Leg
from .media import Overlay
from .settings import Settings
from .snapshot import decode, encode
from .states import (
    FOLLOW_UPS,
    GUARDS,
    LEG_TRANSITIONS,
    ConversationState,
    LegDisposition,
    State,
    Stimulus,
    TransferState,
    accepts,
    transitions_for,
)
from .stimuli import (
    ACTIVE_KEYS,
    AWAITING_RESOLUTION,
    BOOKKEEPING,
    KEY_STIMULUS,
    NUMBER_DIGITS,
    ORIGINATIONS,
    PASSES_DIGITS,
    ROLE_STIMULUS,
    SIGNAL_OF,
    TIMER_STIMULUS,
    TRANSFER_ID,
    far_end_stimulus,
)
from .transfer import Transfer
from .types import EndReason, LegState, TimerPurpose

__all__ = ["SCHEMA_VERSION", "TIMER_STIMULUS", "Conversation"]

#: Layout version of :meth:`Conversation.to_dict`.
SCHEMA_VERSION = 2

_C, _T, _S = ConversationState, TransferState, Stimulus

class Conversation:
    """One client call: legs, media model, timers and the active transfer.

    Create it with the conversation id and the tenant's settings snapshot, then
    feed it :class:`~controller.core.events.ConversationStarted` and whatever
    follows.  Serialise with :meth:`to_dict` after every :meth:`handle`.
    """

    def __init__(self, conversation_id: str, settings: Settings | None = None) -> None:
        self._d = CallData(conversation_id, settings if settings is not None else Settings())
        self._out: list[Action] = []
        #: The (state, stimulus, target) cells the last :meth:`handle` went through.
        self.last_steps: list[tuple[State, Stimulus, State]] = []

    # -- read-only views ---------------------------------------------------------------

    id = DataView[str]()
    settings = DataView[Settings]()
    version = DataView[int]()
    state = DataView[ConversationState]()
    transfer = DataView[Transfer | None]()
    client_leg = DataView[str]()
    transferor_leg = DataView[str | None]()
    peer_leg = DataView[str | None]()
    client_number = DataView[str | None]()
    transferor_number = DataView[str | None]()
    did = DataView[str | None]()
    degraded = DataView[bool]()
    #: A's phone holds the call (its own hold key).
    phone_held = DataView[bool]()
    end_reason = DataView[EndReason | None]()
    #: The transferor leg whose dialog Kamailio takes over (the last ``SetDialogTakeover``).
    takeover = DataView[str | None]()

    @property
    def effective_state(self) -> State:
        """The conversation state, or the transfer's state while transferring."""
        d = self._d
        if d.state is _C.TRANSFERRING and d.transfer is not None:
            return d.transfer.state
        return d.state

    @property
    def legs(self) -> Mapping[str, Leg]:
        return MappingProxyType(self._d.legs)

    @property
    def active_timers(self) -> dict[str, TimerPurpose]:
        """Active timer names mapped to their purpose."""
        return dict(self._d.timers)

    @property
    def transferor_up(self) -> bool:
        return Facts(self._d).transferor_up

    def partner_of(self, leg: str) -> str | None:
        return self._d.media.partner.get(leg)

    def overlay_of(self, leg: str) -> Overlay | None:
        return self._d.media.overlay.get(leg)

    def __repr__(self) -> str:
        return f"<Conversation {self.id!r} v{self.version} {self._state_label()}>"

    def _state_label(self) -> str:
        d = self._d
        if d.state is _C.TRANSFERRING and d.transfer is not None:
            return f"TRANSFERRING/{d.transfer.state.name}"
        return d.state.name

    # -- the entry point ---------------------------------------------------------------

    def handle(self, event: Event) -> list[Action]:
        """Apply one event; return the actions to execute, in order.

        Raises :class:`~controller.core.errors.InvalidTransition` (and leaves the
        conversation untouched) when the event is impossible in the current state.
        """
        if not isinstance(event, Event):
            raise TypeError(f"not an event: {event!r}")
        snapshot = self.to_dict()
        self._out, self.last_steps = [], []
        try:
            self._dispatch(event)
            self._update_takeover()
            self._notify_referrer()
        except BaseException:
            self._load(snapshot)
            self._out = []
            raise
        actions, self._out = self._out, []
        self._d.version += 1
        return actions

    def _invalid(self, event: Event, detail: str = "") -> InvalidTransition:
        return InvalidTransition(event, self._state_label(), self.id, detail)

    def _dispatch(self, event: Event) -> None:
        d = self._d
        if d.state is _C.NEW:
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
            purpose = d.timers.pop(event.name, None)
            if purpose is not None:
                self._fire(TIMER_STIMULUS[purpose], event)
        elif isinstance(event, PromptFinished):
            self._on_prompt_finished(event)
        elif isinstance(event, ActionFailed):
            self._on_action_failed(event)
        elif isinstance(event, MediaRestored):
            self._fire(_S.MEDIA_RESTORED, event)
        elif isinstance(event, FarEndNotified):
            # only the running transfer's trunk, while it calls B: a late NOTIFY after the PBX took the
            # call back, or of an older transfer, changes nothing
            t = d.transfer
            stimulus = far_end_stimulus(event.status)
            if t is not None and t.id == event.transfer_id and t.state is _T.FAR_END_CALLING and stimulus:
                self._fire(stimulus, event)
        elif isinstance(event, PhoneHeld):
            # only the hold of the phone in the client's own dialog, while it is the one on the line
            leg = d.legs.get(event.leg)
            if event.leg == d.transferor_leg == d.first_transferor_leg and leg is not None \
                    and leg.state is LegState.UP:
                self._fire(_S.PHONE_HOLD if event.held else _S.PHONE_RESUME, event)
        else:
            raise self._invalid(event, "unknown event type")

    def _fire(self, stimulus: Stimulus, event: Event, arg: Any = None) -> None:
        d = self._d
        step = Step(Facts(d), Effects(d, self._out), event, arg)
        first = True
        while True:
            state = self.effective_state
            refinements = GUARDS.get((state, stimulus))
            if refinements is not None:
                refined = GUARD_FUNCTIONS[state, stimulus](step)
                if refined not in refinements:
                    raise TransitionTableError(f"guard of {state.name}/{stimulus.name} gave {refined.name}")
                stimulus = refined
            target = transitions_for(state).get(stimulus)
            if target is None:
                if first:
                    raise self._invalid(event, f"no transition for {stimulus.name}")
                raise TransitionTableError(f"follow-up {stimulus.name} has no cell in {state.name}")
            follow_up = HANDLERS[state, stimulus](step)
            if follow_up is not None and follow_up not in FOLLOW_UPS.get((state, stimulus), ()):
                raise TransitionTableError(f"{state.name}/{stimulus.name} returned {follow_up.name}")
            self.last_steps.append((state, stimulus, target))
            self._enter(target)
            if follow_up is None:
                return
            stimulus, first = follow_up, False

    def _enter(self, target: State) -> None:
        d = self._d
        previous = self.effective_state
        if isinstance(target, TransferState):
            assert d.transfer is not None
            for purpose in d.timers.values():
                if not accepts(target, TIMER_STIMULUS[purpose]):
                    raise TransitionTableError(f"a {purpose} timer cannot fire in {target.name}")
            d.state = _C.TRANSFERRING
            d.transfer.state = target
        else:
            if d.transfer is not None:
                if not d.transfer.finished:
                    raise TransitionTableError(f"transfer {d.transfer.id} left without an outcome")
                if d.timers:
                    raise TransitionTableError(f"transfer {d.transfer.id} left timers {d.timers}")
                d.transfer = None
            d.state = target
        if target is not previous:
            d.dtmf_buffer = ""

    def _update_takeover(self) -> None:
        """The one place that decides whether Kamailio takes over the first transferor's dialog."""
        d = self._d
        first = d.first_transferor_leg
        # in a conference too: A's BYE must stop at the PBX (the client and the third party talk on)
        wanted = (d.state not in (_C.NEW, _C.ENDED) and first is not None
                  and (d.transfer is not None or d.state is _C.CONFERENCE or d.legs[first].state is not LegState.UP))
        value = first if wanted else None
        if value == d.takeover:
            return
        d.takeover = value
        action = SetDialogTakeover(value)
        for index, existing in enumerate(self._out):
            if isinstance(existing, EndConversation):
                self._out.insert(index, action)
                return
        self._out.append(action)

    def _notify_referrer(self) -> None:
        """The one place that decides what the phone that sent a REFER is told (core/refer.py)."""
        d = self._d
        transfer = d.transfer
        notes = refer.progress(d.referral, transfer.id if transfer else None, transfer.cause if transfer else None,
                               self.last_steps, self._out)
        for index, existing in enumerate(self._out):
            if notes and (isinstance(existing, EndConversation) or existing == SetDialogTakeover(None)):
                # told while Kamailio still holds the dialog, before the conversation's legs are ended
                self._out[index:index] = notes
                return
        self._out.extend(notes)

    # -- event classification ----------------------------------------------------------

    def _on_leg_event(self, event: LegEvent) -> None:
        d = self._d
        leg = d.legs.get(event.leg)
        if leg is None:
            raise self._invalid(event, f"unknown leg {event.leg!r}")
        signal = SIGNAL_OF[type(event)]
        entry = LEG_TRANSITIONS[leg.state].get(signal)
        if entry is None:
            raise self._invalid(event, f"leg {leg.id!r} is {leg.state.value}")
        new_state, disposition = entry
        leg.state = new_state
        if new_state is LegState.ENDED:
            d.media.forget(leg.id)
        if disposition is LegDisposition.IGNORE:
            return
        if disposition is LegDisposition.RELEASE:
            self._out.append(EndLeg(leg.id, EndReason.CANCELLED))
            return
        stimulus = ROLE_STIMULUS.get((leg.role, signal))
        if stimulus is None:
            raise self._invalid(event, f"{leg.role.value} leg cannot {signal.value}")
        self._fire(stimulus, event)

    def _on_digit(self, event: DigitPressed) -> None:
        d = self._d
        leg = d.legs.get(event.leg)
        if leg is None:
            raise self._invalid(event, f"unknown leg {event.leg!r}")
        if event.leg != d.transferor_leg or leg.state is not LegState.UP:
            return  # only the transferor's digits count; the rest pass through in the media
        options = d.settings.talk_options
        keys = {name: key for name in ACTIVE_KEYS.get(self.effective_state, ())
                if (key := getattr(options, name)) is not None}
        tokens, d.dtmf_buffer = match_digits(d.dtmf_buffer, event.digit, keys)
        for token in tokens:
            state = self.effective_state
            if token.key is not None:
                self._fire(KEY_STIMULUS[token.key], event)
            elif state is _T.COLLECTING and token.digit in NUMBER_DIGITS:
                self._fire(_S.NUMBER_DIGIT, event, token.digit)
            elif state in PASSES_DIGITS and d.settings.pass_other_digits \
                    and not (state is _C.TALKING and d.media.overlay.get(d.client_leg) is Overlay.HOLD):
                # (never to a client who hears the music while A's phone holds the call)
                # rtpengine absorbed it with the rest of A's DTMF: the person A talks to still gets it
                assert token.digit is not None
                self._out.append(PassDigit(event.leg, token.digit))

    def _on_resolution(self, event: TargetResolved | TargetRejected) -> None:
        match = TRANSFER_ID.fullmatch(event.transfer_id)
        if match is None or int(match.group(1)) > self._d.transfer_seq:
            raise self._invalid(event, f"no ResolveTarget was sent for {event.transfer_id!r}")
        transfer = self._d.transfer
        if transfer is None or transfer.id != event.transfer_id or transfer.state not in AWAITING_RESOLUTION:
            return  # the transfer moved on (cancelled, or a duplicate answer)
        self._fire(_S.TARGET_RESOLVED if isinstance(event, TargetResolved) else _S.TARGET_REJECTED, event)

    def _on_prompt_finished(self, event: PromptFinished) -> None:
        d = self._d
        if event.leg not in d.legs:
            raise self._invalid(event, f"unknown leg {event.leg!r}")
        transfer = d.transfer
        key = (event.leg, event.prompt)
        if transfer is None or key not in transfer.awaiting:
            return  # a prompt nobody waits for (error prompt, or cut short)
        transfer.awaiting.remove(key)
        if d.media.overlay.get(event.leg) is Overlay.PROMPT:
            del d.media.overlay[event.leg]
        self._fire(_S.PROMPT_FINISHED, event)

    def _on_action_failed(self, event: ActionFailed) -> None:
        d = self._d
        leg = d.legs.get(event.leg) if event.leg is not None else None
        if event.leg is not None and leg is None:
            raise self._invalid(event, f"unknown leg {event.leg!r}")
        if event.action in BOOKKEEPING:
            return  # nothing to retry, nothing changed
        if event.action == "CancelLeg":
            if leg is not None and leg.state is LegState.CANCELLING:
                leg.state = LegState.ENDED  # the request was ours; never CANCELLING forever
                d.media.forget(leg.id)
            return
        if event.action in ORIGINATIONS and leg is not None:
            if leg.state in (LegState.TRYING, LegState.RINGING, LegState.CANCELLING):
                # as if Kamailio had answered with no response at all: the leg is unreachable
                self._on_leg_event(LegFailed(leg.id, 0))
            return
        if event.action == "ReferFarEnd":
            # the REFER never left: the trunk cannot call B, as if it had said so
            if d.transfer is not None and d.transfer.state is _T.FAR_END_CALLING:
                self._fire(_S.TARGET_FAILED, event)
            return
        if d.state is not _C.ENDED:
            self._fire(_S.MEDIA_FAILED, event)

    # -- serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe snapshot (only dicts, lists, str, int, float, bool, None)."""
        return {"schema": SCHEMA_VERSION, **encode(self._d)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Conversation:
        """Rebuild a conversation from :meth:`to_dict` output (e.g. after a restart)."""
        conversation = cls.__new__(cls)
        conversation._load(d)
        conversation.last_steps = []
        return conversation

    def _load(self, d: Mapping[str, Any]) -> None:
        if d.get("schema") != SCHEMA_VERSION:
            raise ValueError(f"unsupported conversation snapshot schema {d.get('schema')!r}")
        self._d = decode(CallData, {k: v for k, v in d.items() if k != "schema"})
        self._out = []
