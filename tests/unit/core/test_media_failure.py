"""rtpengine errors (``ActionFailed`` for a media action) always lead to a defined state, never a silent call."""

from __future__ import annotations

import pytest

from controller.core import (
    ActionFailed,
    BlockDtmf,
    BridgeMedia,
    CancelLeg,
    CancelTimer,
    ConversationState,
    EndConversation,
    EndLeg,
    FallbackPolicy,
    InvalidTransition,
    LegAnswered,
    LegFailed,
    LegHungUp,
    OutcomeKind,
    PromptFinished,
    SetDialogTakeover,
    StopConference,
    StopMedia,
    StopRecording,
    TargetKind,
    TargetResolved,
    UnblockMedia,
)

from ._helpers import (
    CLIENT,
    A,
    leg_b,
    make_settings,
    norm,
    outcome,
    press,
    start,
    to_consulting,
    to_resolving,
    to_ringing,
)

C = ConversationState
B1 = leg_b(1)
FAIL = ActionFailed("PlayPrompt", CLIENT, "no such call")
FREE = SetDialogTakeover(None)
FORCED = [StopMedia(A), StopMedia(CLIENT), BridgeMedia(CLIENT, A), UnblockMedia(A, CLIENT), UnblockMedia(CLIENT, A),
          BlockDtmf(A)]


def test_first_failure_while_talking_reasserts_the_call(direction):
    conv = start(direction)
    assert conv.handle(FAIL) == FORCED
    assert conv.state is C.TALKING and conv.degraded


def test_second_failure_ends_the_conversation(direction):
    conv = start(direction)
    conv.handle(FAIL)
    # both halves of the client's dialog in one BYE exchange: a dialog ended once cannot be ended again
    assert conv.handle(ActionFailed("StopMedia")) == [
        EndLeg(CLIENT, "media_failure", also=A),
        EndConversation("media_failure"),
    ]
    assert conv.state is C.ENDED


@pytest.mark.parametrize("stage", ["collecting", "resolving", "ringing", "consulting"])
def test_failure_during_a_transfer_abandons_it(direction, stage):
    conv = start(direction)
    release = []
    if stage == "collecting":
        press(conv, "#2")
        timer = "interdigit"
    elif stage == "resolving":
        to_resolving(conv)
        timer = "resolve"
    elif stage == "ringing":
        to_ringing(conv)
        timer, release = "no_answer", [CancelLeg(B1)]
    else:
        to_consulting(conv)
        timer, release = None, [EndLeg(B1, "media_failure")]
    actions = conv.handle(FAIL)
    cancels = [CancelTimer(timer)] if timer else []
    entry = outcome(actions)
    assert norm(actions) == [*cancels, *release, *FORCED, entry, FREE]
    assert (entry.kind, entry.cause) == (OutcomeKind.CANCELLED, "media_failure")
    assert conv.state is C.TALKING


def test_failure_while_blind_ringing_ends_the_call(direction):
    conv = start(direction)
    to_ringing(conv)
    conv.handle(LegHungUp(A))
    actions = conv.handle(FAIL)
    assert norm(actions) == [
        CancelTimer("no_answer"),
        CancelLeg(B1),
        outcome(actions),
        EndLeg(CLIENT, "media_failure"),
        FREE,
        EndConversation("media_failure"),
    ]
    assert outcome(actions).kind is OutcomeKind.FAILED


def test_failure_while_recording_voicemail(direction):
    conv = start(direction, settings=make_settings(direction, FallbackPolicy(rule="voicemail")))
    to_ringing(conv)
    conv.handle(LegHungUp(A))
    conv.handle(LegFailed(B1, 486))
    conv.handle(PromptFinished(CLIENT, "voicemail_greeting"))
    conv.handle(PromptFinished(CLIENT, "beep"))
    actions = conv.handle(FAIL)
    assert StopRecording(CLIENT) in actions
    assert actions[-3:] == [EndLeg(CLIENT, "media_failure"), FREE, EndConversation("media_failure")]


def test_failure_in_a_bridged_call(direction):
    conv = start(direction)
    to_resolving(conv, "0301")
    conv.handle(TargetResolved("t1", ("+49301",), TargetKind.TRUNK))
    conv.handle(LegAnswered(B1))
    conv.handle(LegHungUp(A))
    assert conv.handle(FAIL) == [StopMedia(CLIENT), BridgeMedia(CLIENT, B1)]
    assert conv.state is C.BRIDGED
    assert conv.handle(FAIL)[-1] == EndConversation("media_failure")


def test_failure_in_a_conference_falls_back_to_the_plain_call(direction):
    conv = start(direction)
    to_consulting(conv)
    press(conv, "#")
    assert conv.handle(FAIL) == [EndLeg(B1, "media_failure"), *FORCED, StopConference(), FREE]
    assert conv.state is C.TALKING


def test_failure_after_the_end_is_ignored_but_unknown_legs_are_not(direction):
    conv = start(direction)
    conv.handle(LegHungUp(CLIENT))
    assert conv.handle(FAIL) == []
    with pytest.raises(InvalidTransition):
        conv.handle(ActionFailed("PlayPrompt", "ghost"))
