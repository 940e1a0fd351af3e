"""ActionFailed for every action type, wherever the machine emits it: the model stays consistent.

The scenarios below together emit every :class:`~controller.core.Action`
subclass (checked: a new action type that no scenario emits fails the
coverage test).  After every step of every scenario, and for every action
that step emitted, a copy of the conversation is told that this action failed;
then the copy must be consistent (no leg half-open, no timer a state cannot
take, at most one outcome per transfer), and once the client hangs up every
leg must be released and every transfer must have had exactly one outcome.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from controller.core import (
    Action,
    ActionFailed,
    CancelLeg,
    Conversation,
    ConversationState,
    DigitPressed,
    Direction,
    EndConversation,
    Event,
    FallbackPolicy,
    FarEndNotified,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
    LegState,
    PromptFinished,
    RecordOutcome,
    TargetKind,
    TargetResolved,
    TimerFired,
    TransferRequested,
    TransferTrigger,
)
from controller.core.actions import leg_of
from controller.core.conversation import TIMER_STIMULUS
from controller.core.states import accepts

from ._helpers import A_NO, CLIENT, A, leg_b, leg_o, leg_r, make_settings, start

B1, B2, R1, O1, O2 = leg_b(1), leg_b(2), leg_r(1), leg_o(1), leg_o(2)
FAR = ("sip:+79161112233@trunk",)
Step = Event | tuple[str, str]  # an event, or ("timer", purpose): that timer fires


def digits(leg: str, keys: str) -> list[Step]:
    return [DigitPressed(leg, d) for d in keys]


SCENARIOS: dict[str, tuple[FallbackPolicy, list[Step]]] = {
    "consult_conference": (FallbackPolicy(), [
        *digits(A, "5#201"), TargetResolved("t1", ("201",)), LegRinging(B1), LegAnswered(B1),
        TransferRequested("202", TransferTrigger.REFER), *digits(A, "#"), LegHungUp(A),
        *digits(B1, "#300"), ("timer", "interdigit"), LegHungUp(CLIENT),
    ]),
    "department_back_key": (FallbackPolicy(), [
        TransferRequested("55", TransferTrigger.API), TargetResolved("t1", ("201", "202"), TargetKind.DEPARTMENT),
        LegRinging(B1, early_media=True), LegFailed(B1, 486), *digits(A, "*"), LegAnswered(B2),
        TransferRequested(A_NO),
    ]),
    "blind_voicemail": (FallbackPolicy(rule="voicemail"), [
        *digits(A, "#201"), TargetResolved("t1", ("201",)), LegHungUp(A), LegFailed(B1, 486),
        PromptFinished(CLIENT, "voicemail_greeting"), PromptFinished(CLIENT, "beep"), ("timer", "recording"),
    ]),
    "recall_and_origin": (FallbackPolicy(return_to_origin=True, warn_client_prompt="warn_c"), [
        *digits(A, "#201"), TargetResolved("t1", ("201",)), LegHungUp(A), ("timer", "no_answer"),
        LegFailed(R1, 480), TargetResolved("t1", ("101", "103"), TargetKind.DEPARTMENT), LegRinging(O1),
        LegAnswered(O2),
    ]),
    "recall_answered_with_warnings": (FallbackPolicy(warn_transferor_prompt="warn_a", warn_client_prompt="warn_c"), [
        *digits(A, "#201"), TargetResolved("t1", ("201",)), LegHungUp(A), LegFailed(B1, 603), LegAnswered(R1),
        PromptFinished(R1, "warn_a"), PromptFinished(CLIENT, "warn_c"),
    ]),
    "attended_refer": (FallbackPolicy(), [
        TransferRequested("201", TransferTrigger.REFER, leg=A, replaces="d2@pbx;to-tag=b2;from-tag=a2"),
        TargetResolved("t1", ("201",)), LegRinging(B1), LegAnswered(B1), LegHungUp(A),
    ]),
    "far_end_fails_then_connects": (FallbackPolicy(), [  # the client's trunk calls B itself (a REFER)
        *digits(A, "#89161112233"), ("timer", "interdigit"), TargetResolved("t1", FAR, TargetKind.TRUNK, far_end=True),
        FarEndNotified("t1", 180), FarEndNotified("t1", 486),
        *digits(A, "#89161112233"), ("timer", "interdigit"), TargetResolved("t2", FAR, TargetKind.TRUNK, far_end=True),
        FarEndNotified("t2", 200),
    ]),
    "apology": (FallbackPolicy(rule="apologize"), [
        *digits(A, "#201"), TargetResolved("t1", ("201",)), LegRinging(B1), LegHungUp(A), ("timer", "no_answer"),
        ("timer", "prompt"),
    ]),
}


def action_leg(action: Action) -> str | None:
    return leg_of(action)


def resolve(conv: Conversation, step: Step) -> Event:
    if isinstance(step, Event):
        return step
    (name,) = [n for n, purpose in conv.active_timers.items() if purpose == step[1]]
    return TimerFired(name)


def copy(conv: Conversation) -> Conversation:
    return Conversation.from_dict(json.loads(json.dumps(conv.to_dict())))


def runs() -> list[tuple[str, int, Conversation, list[Action], Action]]:
    """(scenario, step, conversation after it, every action so far, one action of that step)."""
    out = []
    for name, (policy, steps) in SCENARIOS.items():
        conv = start(Direction.INCOMING, settings=make_settings(Direction.INCOMING, policy))
        history: list[Action] = []
        for index, step in enumerate(steps):
            actions = conv.handle(resolve(conv, step))
            history += actions
            for action in actions:
                out.append((name, index, copy(conv), list(history), action))
    return out


RUNS = runs()


def all_action_types(cls: type = Action) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | all_action_types(sub)
    return found


def test_the_scenarios_emit_every_action_type():
    emitted = {type(action) for *_, action in RUNS}
    assert all_action_types() - emitted == set()


def assert_consistent(conv: Conversation, history: list[Action]) -> None:
    cancelled = {a.leg for a in history if isinstance(a, CancelLeg)}
    timers = conv.active_timers
    for leg in conv.legs.values():
        if leg.state is LegState.UP:  # hears a party, or hold music / ringback / a prompt
            assert conv.partner_of(leg.id) is not None or conv.overlay_of(leg.id) is not None, (conv, leg)
        elif leg.state is LegState.CANCELLING:
            assert leg.id in cancelled, (conv, leg)  # the CANCEL is out: its 487 (or 200) will come
        elif leg.state in (LegState.TRYING, LegState.RINGING):
            # still ringing: a timer of the state guards it
            assert conv.transfer is not None and any(p in ("no_answer", "recall") for p in timers.values()), conv
    for purpose in timers.values():
        assert accepts(conv.effective_state, TIMER_STIMULUS[purpose]), (conv, purpose)
    outcomes = Counter(a.transfer_id for a in history if isinstance(a, RecordOutcome))
    assert all(n == 1 for n in outcomes.values()), outcomes
    if conv.state is ConversationState.ENDED:
        assert conv.takeover is None
        assert sum(isinstance(a, EndConversation) for a in history) == 1


@pytest.mark.parametrize(("scenario", "index", "conv", "history", "action"), RUNS,
                         ids=[f"{s}-{i}-{type(a).__name__}" for s, i, _, _, a in RUNS])
def test_a_failed_action_leaves_the_model_consistent(scenario, index, conv, history, action):
    failed = ActionFailed(type(action).__name__, action_leg(action), "boom")
    history = history + conv.handle(failed)
    assert_consistent(conv, history)
    if conv.state is not ConversationState.ENDED:
        history += conv.handle(LegHungUp(CLIENT))
    assert conv.state is ConversationState.ENDED
    assert_consistent(conv, history)
    assert not conv.active_timers
    assert all(leg.state in (LegState.ENDED, LegState.CANCELLING) for leg in conv.legs.values()), conv.legs
    seq = conv.to_dict()["transfer_seq"]
    assert Counter(a.transfer_id for a in history if isinstance(a, RecordOutcome)) == {
        f"t{n}": 1 for n in range(1, seq + 1)}



# -- what each kind of failure means ------------------------------------------------------------


def ringing(direction) -> Conversation:
    conv = start(direction)
    for step in [*digits(A, "#201"), TargetResolved("t1", ("201",))]:
        conv.handle(step)
    return conv


@pytest.mark.parametrize("action", ["OriginateLeg", "RingTransferor"])
def test_a_failed_origination_is_an_unreachable_target(direction, action):
    conv, twin = ringing(direction), ringing(direction)
    assert conv.handle(ActionFailed(action, B1, "no route")) == twin.handle(LegFailed(B1, 0))
    assert conv.to_dict() == twin.to_dict() and conv.legs[B1].state is LegState.ENDED


def test_a_failed_cancel_ends_the_leg(direction):
    conv = ringing(direction)
    conv.handle(DigitPressed(A, "*"))
    assert conv.legs[B1].state is LegState.CANCELLING
    assert conv.handle(ActionFailed("CancelLeg", B1)) == []
    assert conv.legs[B1].state is LegState.ENDED
    assert conv.handle(LegFailed(B1, 487)) == []  # a late 487 all the same


@pytest.mark.parametrize("action", ["RecordOutcome", "TransferRefused", "CancelTimer", "EndConversation", "EndLeg",
                                    "SetDialogTakeover"])
def test_failed_bookkeeping_changes_nothing(direction, action):
    conv = ringing(direction)
    before = {k: v for k, v in conv.to_dict().items() if k != "version"}
    assert conv.handle(ActionFailed(action, A)) == []
    assert {k: v for k, v in conv.to_dict().items() if k != "version"} == before


@pytest.mark.parametrize("action", ["StartTimer", "PlayRingback", "ResolveTarget", "ResolveOrigin", "Teleport"])
def test_anything_else_is_a_media_failure(direction, action):
    conv, twin = ringing(direction), ringing(direction)
    assert conv.handle(ActionFailed(action)) == twin.handle(ActionFailed("BridgeMedia"))
    assert conv.state is ConversationState.TALKING and conv.degraded


def test_unknown_legs_raise_and_the_end_is_quiet(direction):
    from controller.core import InvalidTransition

    conv = ringing(direction)
    with pytest.raises(InvalidTransition):
        conv.handle(ActionFailed("OriginateLeg", "ghost"))
    conv.handle(LegHungUp(CLIENT))
    assert conv.handle(ActionFailed("OriginateLeg", B1)) == []
    assert conv.handle(ActionFailed("PlayPrompt", CLIENT)) == []
    assert conv.legs[B1].state is LegState.ENDED  # its CANCEL's fate no longer matters
