"""Generic promises checked in every reachable state.

* the client hanging up ends the conversation and releases everything;
* a media failure leads to a defined state (plain call once, then the end);
* a second transfer request is refused without changing anything;
* a restarted rtpengine (MediaRestored) gets the blocks and the looped players back, and nothing else
  changes.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controller.core import (
    ActionFailed,
    BlockDtmf,
    BlockMedia,
    CancelLeg,
    Conversation,
    ConversationState,
    EndConversation,
    FallbackPolicy,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
    LegState,
    MediaRestored,
    NotifyReferrer,
    PlayHoldMusic,
    PlayRingback,
    PromptFinished,
    RecordOutcome,
    StopRecording,
    TargetKind,
    TargetResolved,
    TransferRefused,
    TransferRequested,
    TransferState,
    TransferTrigger,
)

from ._helpers import CLIENT, A, leg_b, leg_r, make_settings, press, start, to_consulting, to_resolving, to_ringing

C, T = ConversationState, TransferState
B1 = leg_b(1)


def _blind(conv):
    to_ringing(conv)
    conv.handle(LegHungUp(A))


def _failed_blind(conv):
    _blind(conv)
    conv.handle(LegFailed(B1, 486))


def _bridged(conv):
    to_resolving(conv, "0301")
    conv.handle(TargetResolved("t1", ("+49301",), TargetKind.TRUNK))
    conv.handle(LegAnswered(B1))
    conv.handle(LegHungUp(A))


def _routing_to_origin(conv):
    _failed_blind(conv)
    conv.handle(LegFailed(leg_r(1), 480))  # A does not answer the recall either


def _ringing_origin(conv):
    _routing_to_origin(conv)
    conv.handle(TargetResolved("t1", ("101", "103"), TargetKind.DEPARTMENT))


def _voicemail_recording(conv):
    _failed_blind(conv)
    conv.handle(PromptFinished(CLIENT, "voicemail_greeting"))
    conv.handle(PromptFinished(CLIENT, "beep"))


# state -> (fallback policy, builder); policies choose which fallback state is reached
STATES: dict[object, tuple[FallbackPolicy, Callable[[Conversation], object]]] = {
    C.TALKING: (FallbackPolicy(), lambda conv: None),
    T.COLLECTING: (FallbackPolicy(), lambda conv: press(conv, "#2")),
    T.RESOLVING: (FallbackPolicy(), to_resolving),
    T.RINGING: (FallbackPolicy(), to_ringing),
    T.BLIND_RINGING: (FallbackPolicy(), _blind),
    T.CONSULTING: (FallbackPolicy(), to_consulting),
    T.RECONNECTING: (
        FallbackPolicy(warn_transferor_prompt="warn_a"),
        lambda conv: (to_ringing(conv), conv.handle(LegFailed(B1, 486))),
    ),
    T.RINGING_TRANSFEROR: (FallbackPolicy(), _failed_blind),
    T.ROUTING_TO_ORIGIN: (FallbackPolicy(return_to_origin=True), _routing_to_origin),
    T.RINGING_ORIGIN: (FallbackPolicy(return_to_origin=True), _ringing_origin),
    T.APOLOGIZING: (FallbackPolicy(rule="apologize"), _failed_blind),
    T.VOICEMAIL_GREETING: (FallbackPolicy(rule="voicemail"), _failed_blind),
    T.VOICEMAIL_RECORDING: (FallbackPolicy(rule="voicemail"), _voicemail_recording),
    C.CONFERENCE: (FallbackPolicy(), lambda conv: (to_consulting(conv), press(conv, "#"))),
    C.BRIDGED: (FallbackPolicy(), _bridged),
}
#: States in which A is on the line, so a media failure can fall back to the plain call.
A_PRESENT = {C.TALKING, T.COLLECTING, T.RESOLVING, T.RINGING, T.CONSULTING, T.RECONNECTING, C.CONFERENCE}


def reach(direction, state, *, degraded=False) -> Conversation:
    policy, build = STATES[state]
    conv = start(direction, settings=make_settings(direction, policy))
    if degraded:
        conv.handle(ActionFailed("BridgeMedia"))
        assert conv.degraded and conv.state is C.TALKING
    build(conv)
    assert conv.effective_state is state
    return conv


def assert_ended(conv, actions):
    assert conv.state is C.ENDED
    assert actions[-1] == EndConversation(actions[-1].reason)
    assert not conv.active_timers
    assert all(leg.state in (LegState.ENDED, LegState.CANCELLING)
               for leg in conv.legs.values())


@pytest.mark.parametrize("state", list(STATES), ids=lambda s: s.name)
def test_client_hangs_up(direction, state):
    conv = reach(direction, state)
    had_transfer = conv.transfer is not None
    recording = state is T.VOICEMAIL_RECORDING
    actions = conv.handle(LegHungUp(CLIENT))
    assert_ended(conv, actions)
    assert actions[-1].reason == "client_hung_up"
    assert len([a for a in actions if isinstance(a, RecordOutcome)]) == int(had_transfer)
    assert (StopRecording(CLIENT) in actions) == recording
    for leg in conv.legs.values():
        if leg.role.value in ("target", "recall") and leg.state is LegState.CANCELLING:
            assert CancelLeg(leg.id) in actions


@pytest.mark.parametrize("degraded", [False, True], ids=["first", "second"])
@pytest.mark.parametrize("state", list(STATES), ids=lambda s: s.name)
def test_media_failure(direction, state, degraded):
    conv = reach(direction, state, degraded=degraded)
    had_transfer = conv.transfer is not None
    actions = conv.handle(ActionFailed("PlayPrompt", CLIENT, "error"))
    if degraded or state not in A_PRESENT | {C.BRIDGED}:
        assert_ended(conv, actions)
        assert actions[-1].reason == "media_failure"
    elif state is C.BRIDGED:
        assert conv.state is C.BRIDGED
    else:
        assert conv.state is C.TALKING and conv.transferor_leg == A
    assert len([a for a in actions if isinstance(a, RecordOutcome)]) == int(had_transfer)


@pytest.mark.parametrize("state", [s for s in STATES if s is not C.TALKING], ids=lambda s: s.name)
def test_transfer_request_is_refused(direction, state):
    conv = reach(direction, state)
    before = {k: v for k, v in conv.to_dict().items() if k != "version"}
    actions = conv.handle(TransferRequested("202", TransferTrigger.REFER, leg=conv.transferor_leg))
    # refused, and the phone that sent the REFER is told so in the subscription's one NOTIFY
    assert [type(a) for a in actions] == [TransferRefused, NotifyReferrer]
    assert actions[1].final and actions[1].code in (403, 481, 491)
    assert {k: v for k, v in conv.to_dict().items() if k != "version"} == before
    api = conv.handle(TransferRequested("202", TransferTrigger.API))
    assert [type(a) for a in api] == [TransferRefused]  # an API request is answered by the API, not NOTIFY


@pytest.mark.parametrize("state", list(STATES), ids=lambda s: s.name)
def test_media_restored_blocks_and_plays_again_what_the_model_says(direction, state):
    conv = reach(direction, state)
    before = {k: v for k, v in conv.to_dict().items() if k != "version"}
    actions = conv.handle(MediaRestored())
    assert {k: v for k, v in conv.to_dict().items() if k != "version"} == before
    media = conv.to_dict()["media"]
    blocks = [a for a in actions if isinstance(a, BlockMedia)]
    assert {(a.from_leg, a.to_leg) for a in blocks} == {tuple(pair) for pair in media["blocked"]}
    assert {a.leg for a in actions if isinstance(a, BlockDtmf)} == set(media["dtmf_blocked"])
    overlays = media["overlay"]
    assert {a.leg for a in actions if isinstance(a, PlayHoldMusic)} == {k for k, v in overlays.items() if v == "hold"}
    assert {a.leg for a in actions if isinstance(a, PlayRingback)} == {
        k for k, v in overlays.items() if v == "ringback"}
    # blocks before players: a party on hold never hears a word between the two
    kinds = [type(a) for a in actions]
    players = [i for i, k in enumerate(kinds) if k in (PlayHoldMusic, PlayRingback)]
    assert all(i < min(players, default=len(kinds)) for i, k in enumerate(kinds) if k is BlockMedia)
    assert set(kinds) <= {BlockMedia, BlockDtmf, PlayHoldMusic, PlayRingback}


def test_media_restored_while_b_rings_puts_the_client_back_on_hold_and_a_on_ringback(direction):
    conv = reach(direction, T.RINGING)
    conv.handle(LegRinging(B1))  # a 180 without early media: A hears our ringback
    actions = conv.handle(MediaRestored())
    assert [a.leg for a in actions if isinstance(a, PlayHoldMusic)] == [CLIENT]
    assert [a.leg for a in actions if isinstance(a, PlayRingback)] == [A]
    assert [(a.from_leg, a.to_leg) for a in actions if isinstance(a, BlockMedia)] == [(A, CLIENT), (CLIENT, A)]
    assert conv.effective_state is T.RINGING


def test_media_restored_after_the_end_does_nothing(direction):
    conv = reach(direction, C.TALKING)
    conv.handle(LegHungUp(CLIENT))
    assert conv.handle(MediaRestored()) == []
