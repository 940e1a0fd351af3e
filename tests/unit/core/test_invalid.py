"""InvalidTransition for impossibilities; silence for expected-but-irrelevant events."""

from __future__ import annotations

import pytest

from controller.core import (
    Conversation,
    ConversationStarted,
    DigitPressed,
    Direction,
    InvalidTransition,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
    PromptFinished,
    TargetRejected,
    TargetResolved,
    TimerFired,
    TransferRequested,
)

from ._helpers import CLIENT, A, leg_b, press, start, to_ringing

B1 = leg_b(1)


def test_nothing_before_the_conversation_starts():
    conv = Conversation("c9")
    with pytest.raises(InvalidTransition) as info:
        conv.handle(DigitPressed(A, "#"))
    message = str(info.value)
    assert "can't handle event DigitPressed(leg='alice', digit='#') in state NEW" in message
    assert "'c9'" in message
    assert info.value.state == "NEW" and info.value.conversation_id == "c9"
    assert conv.version == 0


def test_started_only_once(direction):
    conv = start(direction)
    with pytest.raises(InvalidTransition, match="in state TALKING"):
        conv.handle(ConversationStarted(Direction.INCOMING, CLIENT, A))


@pytest.mark.parametrize(
    "event",
    [
        LegHungUp("ghost"),
        LegAnswered("ghost"),
        DigitPressed("ghost", "1"),
        PromptFinished("ghost", "beep"),
        TargetResolved("t7", ("201",)),
        TargetRejected("x1"),
        TargetResolved("t0", ()),
    ],
)
def test_unknown_legs_and_unsent_requests(direction, event):
    conv = start(direction)
    with pytest.raises(InvalidTransition):
        conv.handle(event)


@pytest.mark.parametrize("event", [LegRinging(CLIENT), LegAnswered(A), LegFailed(CLIENT, 486)])
def test_established_dialogs_cannot_ring_answer_or_fail(direction, event):
    conv = start(direction)
    with pytest.raises(InvalidTransition, match="is up"):
        conv.handle(event)


def test_no_bye_on_an_early_dialog(direction):
    conv = start(direction)
    to_ringing(conv)
    with pytest.raises(InvalidTransition, match="TRANSFERRING/RINGING"):
        conv.handle(LegHungUp(B1))


def test_a_failed_handle_changes_nothing(direction):
    conv = start(direction)
    to_ringing(conv)
    before = conv.to_dict()
    with pytest.raises(InvalidTransition):
        conv.handle(LegHungUp(B1))
    assert conv.to_dict() == before


def test_not_an_event():
    conv = start()
    with pytest.raises(TypeError):
        conv.handle("LegHungUp")  # type: ignore[arg-type]


def test_expected_but_irrelevant_events_are_silent(direction):
    conv = start(direction)
    to_ringing(conv)
    (timer,) = conv.active_timers
    press(conv, "*")
    version = conv.version
    quiet = [
        TimerFired(timer),  # cancelled timer firing on another replica
        TimerFired("never-started"),
        PromptFinished(A, "transfer_forbidden"),  # nobody waits for it
        DigitPressed(CLIENT, "#"),  # not the transferor
        LegRinging(B1),  # late 180 after our CANCEL
        LegFailed(B1, 487),  # the CANCEL's 487
        LegFailed(B1, 487),  # and a duplicate of it
        TargetResolved("t1", ("201",)),  # a late answer for a finished transfer
    ]
    for event in quiet:
        assert conv.handle(event) == [], event
    assert conv.version == version + len(quiet)


def test_events_after_the_end(direction):
    conv = start(direction)
    conv.handle(LegHungUp(CLIENT))
    assert conv.handle(LegHungUp(A)) == []  # crossing BYE
    assert conv.handle(DigitPressed(A, "#")) == []
    assert conv.handle(TransferRequested("201"))[0].reason == "conversation_ended"
    with pytest.raises(InvalidTransition):
        conv.handle(LegAnswered(A))
