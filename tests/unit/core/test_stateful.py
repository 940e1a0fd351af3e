"""Property tests: arbitrary event sequences against an independent model of the actions.

The model below knows nothing about the machine's internals: it replays the
*actions* (and the events the test fed) to track timers, originated legs,
media overlays and pairings, then checks the promises of the design:

* ``InvalidTransition`` is raised exactly for protocol impossibilities (an
  independent oracle says which), never any other exception, and leaves the
  snapshot untouched;
* timers: the model's open timers equal the machine's; every StartTimer ends in
  a CancelTimer or an accepted TimerFired by the time the conversation ends;
* every OriginateLeg / RingTransferor is answered, cancelled or failed by then;
* in TALKING / BRIDGED / CONFERENCE the media is exactly the plain call (no hold
  music, no blocks, right pairing); the client is never left in silence;
* on hold means on hold: a client hearing hold music is heard by nobody, and a
  live party without a partner (whose stale pairing rtpengine keeps) is blocked;
* the transferor's DTMF is always blocked in rtpengine, and a digit is passed on
  only from a transferor towards the person they talk to;
* every leg is ended or cancelled once the conversation ends;
* exactly one RecordOutcome per transfer;
* the Kamailio dialog takeover (``SetDialogTakeover``) is announced exactly
  when it changes, agrees with an independent statement of when it is wanted,
  and is lifted right before ``EndConversation``;
* every ``BridgeMedia`` is followed at once by the replay of every looped
  overlay the model still knows (hold music, ringback), sorted by leg;
* an ``ActionFailed`` for any action just emitted (the walk feeds them) keeps
  all of the above: a failed origination settles its leg, nothing is left
  half-open;
* ``to_dict`` / ``from_dict`` round-trips through JSON at every step, and the
  run continues on the restored copy.

Hypothesis draws the settings (fallback rule and options per direction, known
numbers, origin) and the seed of a weighted random walk over plausible and
garbage events.  A run (about 6 s) exercises most of the 145 edges of the
transition tables; the deterministic unit tests cover all of them.
"""

from __future__ import annotations

import json
import random
import re

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from controller.core import (
    ActionFailed,
    BlockDtmf,
    BlockMedia,
    BridgeMedia,
    CancelLeg,
    CancelTimer,
    Conversation,
    ConversationStarted,
    ConversationState,
    DigitPressed,
    Direction,
    EndConversation,
    EndLeg,
    Event,
    FallbackPolicy,
    FallbackRule,
    FarEndNotified,
    InvalidTransition,
    LegAnswered,
    LegEvent,
    LegFailed,
    LegHungUp,
    LegRinging,
    LegState,
    NotifyReferrer,
    OriginateLeg,
    PassDigit,
    PhoneHeld,
    PlayHoldMusic,
    PlayPrompt,
    PlayRingback,
    PromptFinished,
    PromptRef,
    RecordOutcome,
    RejectReason,
    RingTransferor,
    SetDialogTakeover,
    Settings,
    StartConference,
    StartRecording,
    StartTimer,
    StopConference,
    StopMedia,
    StopRecording,
    TargetKind,
    TargetRejected,
    TargetResolved,
    TimerFired,
    TransferRefused,
    TransferRequested,
    TransferState,
    TransferTrigger,
    UnblockMedia,
)
from controller.core.states import TRANSITIONS

CLIENT, A = "client", "alice"
GHOST = "ghost"
NUMBERS = ["201", "202", "999", "100", "+4930111", "300"]
MEDIA_ACTIONS = ["PlayHoldMusic", "PlayPrompt", "BridgeMedia", "BlockMedia", "StartTimer", "ResolveTarget", "Bogus"]
HOLD_MUSIC = PromptRef.system("default")
STATUSES = [486, 600, 603, 408, 480, 503, 487, 404, 0]

_BAD = {
    LegState.UP: (LegRinging, LegAnswered, LegFailed),
    LegState.TRYING: (LegHungUp,),
    LegState.RINGING: (LegHungUp,),
    LegState.CANCELLING: (LegHungUp,),
    LegState.ENDED: (LegRinging, LegAnswered),
}
_GONE = {LegState.ENDED, LegState.CANCELLING}
_A_LEAVES = {
    TransferState.RESOLVING,
    TransferState.RINGING,
    TransferState.CONSULTING,
    TransferState.RECONNECTING,
    ConversationState.CONFERENCE,
}


def expect_invalid(conv: Conversation, event: Event) -> bool:
    """Independent statement of which events are protocol impossibilities."""
    if isinstance(event, ConversationStarted):
        return True
    legs = conv.legs
    if isinstance(event, LegEvent):
        leg = legs.get(event.leg)
        return leg is None or isinstance(event, _BAD[leg.state])
    if isinstance(event, DigitPressed | PromptFinished):
        return event.leg not in legs
    if isinstance(event, ActionFailed):
        return event.leg is not None and event.leg not in legs
    if isinstance(event, TargetResolved | TargetRejected):
        m = re.fullmatch(r"t([1-9][0-9]*)", event.transfer_id)
        return m is None or int(m.group(1)) > conv.to_dict()["transfer_seq"]
    return False


class ActionModel:
    """What the service would know from the actions alone."""

    def __init__(self) -> None:
        self.open_timers: set[str] = set()
        self.closed_timers: set[str] = set()
        self.originated: set[str] = set()
        self.settled: set[str] = set()  # answered, cancelled or failed
        self.partner: dict[str, str] = {CLIENT: A, A: CLIENT}
        self.mixing = False  # between StartConference and StopConference
        self.overlay: dict[str, str] = {}
        # rtpengine 10.5 semantics: a block drops everything a tag sends; a re-pairing lifts it
        self.blocked: set[str] = set()
        self.dtmf_blocked: set[str] = {A}  # Kamailio blocks A's DTMF when A's side answers
        self.recording: set[str] = set()
        self.gone: set[str] = set()
        self.answered: set[str] = set()
        self.outcomes: dict[str, int] = {}
        self.ended = False
        self.takeover: str | None = None
        self.refer_sent: int | None = None  # the last status a REFER's phone was sent, None: none running

    def _leg_gone(self, leg: str) -> None:
        self.gone.add(leg)
        self.overlay.pop(leg, None)

    def observe(self, event: Event, actions: list, leg_before: LegState | None = None) -> None:
        if self.ended:  # only a BYE for a 200 that crossed our CANCEL, or a refusal (and its NOTIFY)
            assert all(isinstance(a, EndLeg | TransferRefused | NotifyReferrer) for a in actions), actions
        self._check_notifies(event, actions)
        if (isinstance(event, ActionFailed) and event.action in ("OriginateLeg", "RingTransferor")
                and event.leg in self.originated and leg_before in (LegState.TRYING, LegState.RINGING)):
            self.settled.add(event.leg)  # as if it had failed with no SIP response at all
            self._leg_gone(event.leg)
        if isinstance(event, TimerFired) and event.name in self.open_timers:
            self.open_timers.remove(event.name)
            self.closed_timers.add(event.name)
        if isinstance(event, LegAnswered | LegFailed) and event.leg in self.originated:
            self.settled.add(event.leg)
        if isinstance(event, LegAnswered) and event.leg in self.originated:
            self.answered.add(event.leg)
        if isinstance(event, LegFailed | LegHungUp):
            self._leg_gone(event.leg)
        if isinstance(event, PromptFinished) and self.overlay.get(event.leg) == f"prompt:{event.prompt}":
            del self.overlay[event.leg]
        takeovers = [index for index, a in enumerate(actions) if isinstance(a, SetDialogTakeover)]
        assert len(takeovers) <= 1, actions
        for index in takeovers:
            assert actions[index].transferor_leg != self.takeover, "a takeover announced twice"
            if any(isinstance(a, EndConversation) for a in actions):
                assert actions[index] == SetDialogTakeover(None)
                assert isinstance(actions[index + 1], EndConversation), actions
        for index, action in enumerate(actions):
            self._apply(action)
            if isinstance(action, BridgeMedia):
                # rtpengine 10.5: a re-pairing can stop a looped player elsewhere: it is played again at once
                replay = [PlayHoldMusic(leg, HOLD_MUSIC) if kind == "hold" else PlayRingback(leg)
                          for leg, kind in sorted(self.overlay.items()) if kind in ("hold", "ringback")]
                assert actions[index + 1: index + 1 + len(replay)] == replay, (actions, self.overlay)

    def _check_notifies(self, event: Event, actions: list) -> None:
        """A REFER's phone is told 100, then 180 at most once, then one final status, in that order,
        and nothing after the final; a refused REFER gets exactly one final NOTIFY; nothing else
        (digits, API requests) ever causes a NOTIFY."""
        notes = [a for a in actions if isinstance(a, NotifyReferrer)]
        refused = [a for a in actions if isinstance(a, TransferRefused) and a.trigger is TransferTrigger.REFER]
        if refused:
            assert len(notes) == 1 and notes[0].final and notes[0].code >= 400, actions
            return
        started = isinstance(event, TransferRequested) and event.trigger is TransferTrigger.REFER
        if started:
            self.refer_sent = 0
        for note in notes:
            assert self.refer_sent is not None, f"a NOTIFY without a REFER: {actions}"
            assert note.code > self.refer_sent or note.final, (self.refer_sent, actions)
            self.refer_sent = note.code
            if note.final:
                assert note.code >= 200 and note is notes[-1], actions
                self.refer_sent = None
            else:
                assert note.code in (100, 180), actions
        if started and self.refer_sent is not None:
            assert notes and notes[0].code == 100, actions  # a REFER taken is answered 100 Trying first

    def _apply(self, action) -> None:
        if isinstance(action, StartTimer):
            assert action.name not in self.open_timers | self.closed_timers, "timer name reused"
            self.open_timers.add(action.name)
        elif isinstance(action, CancelTimer):
            assert action.name in self.open_timers, f"cancel of unknown timer {action.name}"
            self.open_timers.remove(action.name)
            self.closed_timers.add(action.name)
        elif isinstance(action, OriginateLeg | RingTransferor):
            assert action.leg not in self.originated
            self.originated.add(action.leg)
        elif isinstance(action, CancelLeg):
            assert action.leg in self.originated and action.leg not in self.settled
            self.settled.add(action.leg)
            self.overlay.pop(action.leg, None)
        elif isinstance(action, EndLeg):
            for leg in (action.leg, action.also):  # `also`: the other half of the client's dialog, in one BYE
                if leg is not None:
                    assert leg not in self.gone, f"BYE on a leg that is gone: {leg}"
                    self._leg_gone(leg)
        elif isinstance(action, PlayHoldMusic):
            self.overlay[action.leg] = "hold"
        elif isinstance(action, PlayRingback):
            self.overlay[action.leg] = "ringback"
        elif isinstance(action, PlayPrompt):
            self.overlay[action.leg] = f"prompt:{action.prompt}"
        elif isinstance(action, StopMedia):
            self.overlay.pop(action.leg, None)
        elif isinstance(action, BridgeMedia):
            for leg in (action.leg_a, action.leg_b):
                old = self.partner.pop(leg, None)
                if old not in (None, "conference") and self.partner.get(old) == leg:
                    del self.partner[old]
            self.partner[action.leg_a] = action.leg_b
            self.partner[action.leg_b] = action.leg_a
            self.blocked -= {action.leg_a, action.leg_b} - set(action.muted)
            self.blocked |= set(action.muted)
        elif isinstance(action, StartConference):
            assert not self.mixing and len(action.legs) >= 3, action
            self.mixing = True
            for leg in action.legs:
                self.partner[leg] = "conference"
        elif isinstance(action, StopConference):
            # the mixer leaves only once nobody is paired with it any more (re-paired or released first)
            live = [leg for leg, partner in self.partner.items() if partner == "conference" and leg not in self.gone]
            assert self.mixing and not live, self.partner
            self.mixing = False
        elif isinstance(action, BlockMedia):
            self.blocked.add(action.from_leg)
        elif isinstance(action, UnblockMedia):
            self.blocked.discard(action.from_leg)
        elif isinstance(action, BlockDtmf):
            self.dtmf_blocked.add(action.leg)
        elif isinstance(action, PassDigit):
            # only a blocked transferor's digit is re-played (anything else would reach the peer twice),
            # and only towards a party they are paired with
            assert action.leg in self.dtmf_blocked, action
            partner = self.partner.get(action.leg)
            assert partner not in (None, "conference"), (action, self.partner)
            # never to a client on hold, and never while A only hears B's ringing
            assert self.overlay.get(partner) != "hold" and self.overlay.get(action.leg) != "ringback", (
                action, self.overlay)
        elif isinstance(action, StartRecording):
            self.recording.add(action.leg)
        elif isinstance(action, StopRecording):
            self.recording.discard(action.leg)
        elif isinstance(action, RecordOutcome):
            self.outcomes[action.transfer_id] = self.outcomes.get(action.transfer_id, 0) + 1
            assert self.outcomes[action.transfer_id] == 1, f"two outcomes for {action.transfer_id}"
        elif isinstance(action, EndConversation):
            assert self.takeover is None, "the conversation ended with Kamailio still holding a dialog"
            self.ended = True
        elif isinstance(action, SetDialogTakeover):
            self.takeover = action.transferor_leg


@st.composite
def fallback_policies(draw):
    warn = draw(st.booleans())
    return FallbackPolicy(
        rule=draw(st.sampled_from(FallbackRule)),
        return_to_origin=draw(st.booleans()),
        warn_transferor_prompt="warn_a" if warn and draw(st.booleans()) else None,
        warn_client_prompt="warn_c" if warn else None,
    )


class ConversationMachine(RuleBasedStateMachine):
    conv: Conversation
    model: ActionModel

    @initialize(data=st.data())
    def begin(self, data):
        settings_ = Settings(
            company_number="+4930000",
            known_extensions=frozenset({"201", "202", "2021", "100"}),
            fallback_incoming=data.draw(fallback_policies()),
            fallback_outgoing=data.draw(fallback_policies()),
        )
        self.rnd = random.Random(data.draw(st.integers(0, 2**32 - 1), label="walk seed"))
        self.conv = Conversation("c", settings_)
        self.model = ActionModel()
        self.stale_timers: set[str] = set()
        self.last_actions: list = []
        self.apply(
            ConversationStarted(
                data.draw(st.sampled_from(Direction)),
                CLIENT,
                A,
                client_number="+4930111",
                transferor_number=data.draw(st.sampled_from(["100", None])),
                did=data.draw(st.sampled_from(["+4930999", None])),
                origin=data.draw(st.sampled_from(["ivr", None])),
            )
        )

    # -- driving ---------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        conv = self.conv
        invalid = self.conv.state is not ConversationState.NEW and expect_invalid(conv, event)
        before = conv.to_dict()
        leg = conv.legs.get(getattr(event, "leg", None) or "")
        leg_before = None if leg is None else leg.state
        self.stale_timers |= set(conv.active_timers)
        try:
            actions = conv.handle(event)
        except InvalidTransition:
            assert invalid, f"unexpected InvalidTransition for {event!r} in {conv!r}"
            assert conv.to_dict() == before, "a failed handle() changed the conversation"
            return
        assert not invalid, f"{event!r} should have been refused in {conv!r}"
        assert conv.version == before["version"] + 1
        self.model.observe(event, actions, leg_before)
        self.last_actions = actions
        # every step was a cell of the table, and the steps chain
        steps = conv.last_steps
        for (state, stimulus, target), following in zip(steps, [*steps[1:], None][: len(steps)], strict=True):
            assert TRANSITIONS[state][stimulus] is target
            assert following is None or following[0] is target
        assert not steps or conv.effective_state is steps[-1][2]
        snapshot = json.loads(json.dumps(conv.to_dict()))
        restored = Conversation.from_dict(snapshot)
        assert restored.to_dict() == snapshot
        self.conv = restored  # carry on with the restored copy, as a restarted controller would

    def _legs_in(self, *states: LegState) -> list[str]:
        return [leg for leg, info in self.conv.legs.items() if info.state in states]

    # The walk: mostly a plausible next event for the current state, sometimes noise.
    # Choices come from a Random seeded by hypothesis: hypothesis' own draws favour
    # "simple" values (first/last list items, zero), which ends most conversations
    # with an early hang-up and leaves the deep fallback states unexplored.

    def _options(self) -> list[tuple[int, object]]:
        """Plausible next events, as (weight, maker) pairs; hang-ups are rarer than progress."""
        conv, rnd = self.conv, self.rnd
        options: list = [(1, lambda: [TransferRequested(rnd.choice(NUMBERS), rnd.choice(list(TransferTrigger)))])]
        a = conv.transferor_leg
        if conv.transferor_up:
            if conv.state is ConversationState.TALKING:
                options.append((4, lambda: [DigitPressed(a, d) for d in "#" + rnd.choice(NUMBERS).lstrip("+")]))
                # the phone's own transfer button: a REFER from A (Kamailio checked it is A's side)
                options.append((3, lambda: [TransferRequested(
                    rnd.choice(NUMBERS), TransferTrigger.REFER, leg=a,
                    replaces=rnd.choice([None, "d2@pbx;to-tag=b2;from-tag=a2"]))]))  # blind or attended
            options += [
                (1, lambda: [PhoneHeld(a, rnd.random() < 0.6)]),  # A's own hold key, at any time
                (1, lambda: [DigitPressed(a, "*")]),
                (2, lambda: [DigitPressed(a, "#")]),
                (1, lambda: [DigitPressed(a, rnd.choice("0123456789"))]),
            ]
        if conv.effective_state in (TransferState.RESOLVING, TransferState.ROUTING_TO_ORIGIN):
            tid = conv.transfer.id
            dial_strings = ["201", "202", "100", "+4930111", "+4917000"]
            options += [
                (3, lambda: [TargetResolved(tid, tuple(rnd.sample(dial_strings, rnd.randrange(4))),
                                            rnd.choice(list(TargetKind)))]),
                (2, lambda: [TargetResolved(tid, ("201", "202"), TargetKind.DEPARTMENT)]),
                # an outside number the client's own trunk is asked (REFER) to call
                (2, lambda: [TargetResolved(tid, ("+4917000",), TargetKind.TRUNK, far_end=True)]),
                (1, lambda: [TargetRejected(tid, rnd.choice(list(RejectReason)))]),
            ]
        if conv.effective_state is TransferState.FAR_END_CALLING:
            tid = conv.transfer.id  # the trunk's NOTIFYs: progress, success, or why it failed
            options.append((5, lambda: [FarEndNotified(tid, rnd.choice([100, 180, 183, 200, 0, *STATUSES]))]))
        for leg in self._legs_in(LegState.TRYING, LegState.RINGING):
            options += [
                (2, lambda leg=leg: [LegRinging(leg, early_media=rnd.random() < 0.5)]),
                (2, lambda leg=leg: [LegAnswered(leg)]),
                (2, lambda leg=leg: [LegFailed(leg, rnd.choice(STATUSES))]),
            ]
        options = [(8 * weight, make) for weight, make in options]
        late = conv.effective_state in _A_LEAVES
        for leg in self._legs_in(LegState.UP):
            if leg == conv.client_leg:
                weight = 1
            elif leg == a:
                weight = 24 if late else 2  # A leaving mid-transfer is the interesting case
            else:
                weight = 6
            options.append((weight, lambda leg=leg: [LegHungUp(leg)]))
        options.append((3, lambda: [ActionFailed(rnd.choice(MEDIA_ACTIONS), rnd.choice([None, conv.client_leg]))]))
        if self.last_actions:
            # any action just emitted may fail in the service
            options.append((4, lambda: [self._failure_of(rnd.choice(self.last_actions))]))
        for name in sorted(conv.active_timers):
            options.append((12, lambda name=name: [TimerFired(name)]))
        if conv.transfer is not None:
            for leg, prompt in conv.transfer.awaiting:
                options.append((24, lambda leg=leg, prompt=prompt: [PromptFinished(leg, prompt)]))
        return options

    @rule()
    def step(self):
        rnd = self.rnd
        if rnd.random() < 0.125 or self.conv.state is ConversationState.ENDED:
            events = self._noise()
        else:
            options = self._options()
            (make,) = rnd.choices([make for _, make in options], weights=[w for w, _ in options])
            events = make()
        for event in events:
            self.apply(event)

    def _noise(self) -> list[Event]:
        """Late, duplicate, garbled and impossible events, and media failures."""
        rnd = self.rnd
        legs = [*self.conv.legs, GHOST]
        kind = rnd.randrange(8)
        if kind == 0:
            leg = rnd.choice(legs)
            return [DigitPressed(leg, rnd.choice("0123456789*#")) for _ in range(rnd.randint(1, 4))]
        if kind == 1:
            return [TimerFired(rnd.choice([*sorted(self.stale_timers), "bogus"]))]
        if kind == 2:
            return [PromptFinished(rnd.choice(legs), rnd.choice(["warn_a", "warn_c", "transfer_forbidden", "beep"]))]
        if kind == 3:
            event_kind = rnd.choice(["ringing", "early", "answered", "failed", "hung_up"])
            return [self._leg_event(event_kind, rnd.choice(legs), rnd.choice(STATUSES))]
        if kind == 4:
            transfer_id = rnd.choice(["t1", "t2", "t3", "t9", "x", "t0"])
            if rnd.random() < 0.5:
                return [TargetResolved(transfer_id, ("201",))]
            return [TargetRejected(transfer_id)]
        if kind == 5:
            if rnd.random() < 0.3:  # a far end's NOTIFY of any transfer, at any time
                return [FarEndNotified(rnd.choice(["t1", "t2", "t9", "x"]), rnd.choice([100, 180, 200, 486, 0]))]
            return [ActionFailed(rnd.choice(MEDIA_ACTIONS), rnd.choice([None, CLIENT, A, GHOST]), "boom")]
        if kind == 6:
            leg = rnd.choice([None, *legs])  # a REFER from anyone, at any time
            return [TransferRequested(rnd.choice(NUMBERS), rnd.choice(list(TransferTrigger)), leg=leg)]
        return [ConversationStarted(Direction.INCOMING, CLIENT, A)]

    @staticmethod
    def _failure_of(action) -> ActionFailed:
        leg = getattr(action, "leg", None) or getattr(action, "leg_a", None) or getattr(action, "from_leg", None)
        if isinstance(action, SetDialogTakeover):
            leg = action.transferor_leg
        return ActionFailed(type(action).__name__, leg, "boom")

    @staticmethod
    def _leg_event(kind: str, leg: str, status: int) -> Event:
        return {
            "ringing": LegRinging(leg),
            "early": LegRinging(leg, early_media=True),
            "answered": LegAnswered(leg),
            "failed": LegFailed(leg, status),
            "hung_up": LegHungUp(leg),
        }[kind]

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def timers_agree(self):
        assert set(self.conv.active_timers) == self.model.open_timers

    @invariant()
    def takeover_is_wanted_exactly_while_a_transfer_or_conference_runs_or_the_first_transferor_is_gone(self):
        conv = self.conv
        running = conv.state not in (ConversationState.NEW, ConversationState.ENDED)
        wanted = running and (conv.transfer is not None or conv.state is ConversationState.CONFERENCE
                              or conv.legs[A].state is not LegState.UP)
        assert self.model.takeover == (A if wanted else None), (conv, self.model.takeover)

    @invariant()
    def media_is_sane(self):
        conv, model = self.conv, self.model
        state = conv.state
        legs = conv.legs
        if state is ConversationState.ENDED:
            assert model.ended
            assert all(leg.state in _GONE for leg in legs.values()), legs
            assert not model.open_timers
            assert model.originated <= model.settled
            # No half-open dialog: whatever answered was BYEd or hung up.
            assert model.answered <= model.gone, model.answered - model.gone
            assert not model.recording
            assert conv.transfer is None
            return
        assert not model.ended
        client = conv.client_leg
        if state in (ConversationState.TALKING, ConversationState.BRIDGED, ConversationState.CONFERENCE):
            assert conv.transfer is None
            # the client hears nothing but its party, or the music while A's phone holds the call
            held = state is ConversationState.TALKING and conv.phone_held
            assert model.overlay.get(client) in ((None, "hold") if held else (None,)), model.overlay
            assert not model.recording
        if state is ConversationState.TALKING:
            a = conv.transferor_leg
            assert legs[a].state is LegState.UP
            assert model.partner.get(client) == a and model.partner.get(a) == client
            # A's phone holding the call: the client hears the music, and nobody hears the client
            on_phone_hold = model.overlay.get(client) == "hold"
            assert (a in model.blocked) == on_phone_hold and (client in model.blocked) == on_phone_hold, model.blocked
            assert a in model.dtmf_blocked
            assert model.overlay.get(a, "prompt").startswith("prompt")
        elif state is ConversationState.BRIDGED:
            peer = conv.peer_leg
            assert legs[peer].state is LegState.UP
            assert model.partner.get(client) == peer and model.partner.get(peer) == client
        # the mixer serves a conference of three, and nothing else: never fewer parties, never left running
        assert model.mixing == (state is ConversationState.CONFERENCE), (state, model.mixing)
        if state is ConversationState.CONFERENCE:
            a, peer = conv.transferor_leg, conv.peer_leg
            for leg in (client, a, peer):
                assert legs[leg].state is LegState.UP
                assert model.partner.get(leg) == "conference"
            assert a not in model.blocked and client not in model.blocked, model.blocked
        # On hold means on hold: nobody hears a client who hears the hold music, and a live party whose
        # partner moved on (rtpengine still forwards to the old pairing) is blocked, unless recorded.
        if model.overlay.get(client) == "hold":
            assert client in model.blocked, (conv, model.blocked)
        for leg_id, leg in legs.items():
            if leg.state is LegState.UP and leg_id not in model.partner and leg_id not in model.recording:
                assert leg_id in model.blocked, (conv, leg_id, model.partner, model.blocked)
        if conv.transferor_leg is not None and legs[conv.transferor_leg].state is LegState.UP:
            assert conv.transferor_leg in model.dtmf_blocked
        # The client always hears something while the conversation lasts.
        partner = model.partner.get(client)
        hears_party = partner == "conference" or (
            partner in legs and legs[partner].state in (LegState.UP, LegState.RINGING)
        )
        assert hears_party or client in model.overlay or client in model.recording, (conv, model.partner)

    def teardown(self):
        if not hasattr(self, "conv"):
            return
        if self.conv.state is not ConversationState.ENDED:
            self.apply(LegHungUp(self.conv.client_leg))
        assert self.conv.state is ConversationState.ENDED
        self.media_is_sane()
        seq = self.conv.to_dict()["transfer_seq"]
        assert self.model.outcomes == {f"t{n}": 1 for n in range(1, seq + 1)}


ConversationMachine.TestCase.settings = settings(
    max_examples=400,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestConversationMachine = ConversationMachine.TestCase
