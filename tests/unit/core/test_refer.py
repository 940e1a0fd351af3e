"""A REFER from A's phone (the phone's own transfer button): the same transfer as `#`, handed over
blind once B rings, and the phone told its progress in NOTIFYs (core/refer.py)."""

from __future__ import annotations

import pytest

from controller.core import (
    BridgeMedia,
    ConversationState,
    EndConversation,
    EndLeg,
    FallbackPolicy,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
    LegState,
    NotifyReferrer,
    OriginateLeg,
    PlayPrompt,
    PlayRingback,
    RecordOutcome,
    SetDialogTakeover,
    TargetKind,
    TargetRejected,
    TargetResolved,
    TransferRefused,
    TransferRequested,
    TransferState,
    TransferTrigger,
)
from controller.core.refer import final_status, refusal_status
from controller.core.types import FailureCause, OutcomeCause, OutcomeKind, RefusalReason, RejectReason

from ._helpers import CLIENT, A, fire, leg_b, make_settings, press, start

C, T = ConversationState, TransferState
B1, B2 = leg_b(1), leg_b(2)
REFER = TransferTrigger.REFER


def notes(actions) -> list[tuple[int, bool]]:
    return [(a.code, a.final) for a in actions if isinstance(a, NotifyReferrer)]


def refer(conv, number="201", leg=A):
    return conv.handle(TransferRequested(number, REFER, leg=leg))


def test_refer_is_the_hotkey_transfer_with_progress_in_notifies(direction):
    conv = start(direction)
    actions = refer(conv)
    assert notes(actions) == [(100, False)]
    assert conv.effective_state is T.RESOLVING and conv.transfer.trigger is REFER
    assert conv.legs[A].state is LegState.UP  # until B rings, a refusal leaves the client with A
    actions = conv.handle(TargetResolved("t1", ("201",), TargetKind.EXTENSION))
    # handed over: a blind transfer from now on, without a BYE (A's phone hangs up itself)
    assert conv.effective_state is T.BLIND_RINGING and conv.legs[A].state is LegState.ENDED
    assert [a for a in actions if isinstance(a, OriginateLeg)] and not [a for a in actions if isinstance(a, EndLeg)]
    assert notes(actions) == []
    actions = conv.handle(LegRinging(B1))
    assert notes(actions) == [(180, False)] and not [a for a in actions if isinstance(a, PlayRingback)]
    assert notes(conv.handle(LegRinging(B1))) == []  # a second 180 is not told again
    actions = conv.handle(LegAnswered(B1))
    assert BridgeMedia(CLIENT, B1) in actions
    assert notes(actions) == [(200, True)] and actions[-1] == NotifyReferrer(200, "OK", final=True)
    (done,) = [a for a in actions if isinstance(a, RecordOutcome)]
    assert done.kind is OutcomeKind.COMPLETED and done.trigger is REFER
    assert conv.state is C.TALKING and conv.transferor_leg == B1
    # A's own BYE, absorbed by Kamailio, comes later and changes nothing
    assert conv.handle(LegHungUp(A)) == []
    assert conv.state is C.TALKING


@pytest.mark.parametrize(("status", "code"), [(486, 486), (603, 603), (404, 480), (0, 480)])
def test_b_failing_is_told_and_the_directions_rule_applies(direction, status, code):
    policy = FallbackPolicy(rule="apologize")
    conv = start(direction, settings=make_settings(direction, policy))
    refer(conv)
    conv.handle(TargetResolved("t1", ("201",), TargetKind.EXTENSION))
    actions = conv.handle(LegFailed(B1, status))
    assert notes(actions) == [(code, True)]
    assert conv.effective_state is T.APOLOGIZING  # the tenant's rule for this direction, A being gone
    later = fire(conv, "prompt")
    assert notes(later) == []  # the subscription ended with the failure


def test_no_answer_is_told_as_a_timeout(direction):
    conv = start(direction, settings=make_settings(direction, FallbackPolicy(rule="apologize")))
    refer(conv)
    conv.handle(TargetResolved("t1", ("201",), TargetKind.EXTENSION))
    conv.handle(LegRinging(B1))
    assert notes(fire(conv, "no_answer")) == [(408, True)]


@pytest.mark.parametrize(("reason", "code"), [(RejectReason.UNKNOWN_NUMBER, 404), (RejectReason.FORBIDDEN, 403)])
def test_a_refused_number_leaves_the_client_with_a(direction, reason, code):
    conv = start(direction)
    refer(conv, "999")
    actions = conv.handle(TargetRejected("t1", reason))
    assert notes(actions) == [(code, True)]
    assert conv.state is C.TALKING and conv.transferor_leg == A and conv.legs[A].state is LegState.UP
    assert BridgeMedia(A, CLIENT) in actions or any(isinstance(a, PlayPrompt) for a in actions)


def test_nobody_to_ring_is_told_and_a_keeps_the_client(direction):
    conv = start(direction)
    refer(conv)
    actions = conv.handle(TargetResolved("t1", (), TargetKind.EXTENSION))
    assert notes(actions) == [(480, True)]
    assert conv.effective_state in (C.TALKING, T.RECONNECTING) and conv.legs[A].state is LegState.UP


def test_resolution_timeout_is_a_server_error(direction):
    conv = start(direction)
    refer(conv)
    assert notes(fire(conv, "resolve")) == [(500, True)]
    assert conv.state is C.TALKING


@pytest.mark.parametrize("who", [CLIENT, "stranger", None])
def test_only_the_transferor_may_refer(direction, who):
    conv = start(direction)
    before = conv.to_dict()
    actions = refer(conv, leg=who)
    assert actions == [TransferRefused("201", REFER, RefusalReason.NO_TRANSFEROR),
                       NotifyReferrer(403, "Forbidden", True)]
    assert {k: v for k, v in conv.to_dict().items() if k != "version"} == {
        k: v for k, v in before.items() if k != "version"}


def test_a_refer_while_a_hotkey_transfer_runs_is_refused_and_the_transfer_goes_on(direction):
    conv = start(direction)
    press(conv, "#201")
    actions = refer(conv, "202")
    assert notes(actions) == [(491, True)]
    assert conv.effective_state is T.RESOLVING and conv.transfer.trigger is TransferTrigger.DTMF


def test_digits_and_the_api_never_notify(direction):
    conv = start(direction)
    actions = press(conv, "#201")
    actions += conv.handle(TargetResolved("t1", ("201",), TargetKind.EXTENSION))
    actions += conv.handle(LegRinging(B1)) + conv.handle(LegAnswered(B1)) + conv.handle(LegHungUp(A))
    assert notes(actions) == []


def test_the_client_hanging_up_ends_the_subscription_before_the_conversation(direction):
    conv = start(direction)
    refer(conv)
    conv.handle(TargetResolved("t1", ("201",), TargetKind.EXTENSION))
    actions = conv.handle(LegHungUp(CLIENT))
    assert notes(actions) == [(487, True)]
    told = actions.index(NotifyReferrer(487, "Request Terminated", True))
    assert told < actions.index(SetDialogTakeover(None)) < len(actions) - 1
    assert isinstance(actions[-1], EndConversation)


def test_a_second_refer_after_the_first_completed_is_refused(direction):
    conv = start(direction)
    refer(conv)
    conv.handle(TargetResolved("t1", ("201",), TargetKind.EXTENSION))
    conv.handle(LegAnswered(B1))
    # A's phone, handed over, can no longer transfer B (B is the transferor now)
    assert notes(refer(conv, "202")) == [(403, True)]


def test_status_lines():
    assert final_status(OutcomeKind.COMPLETED, None) == (200, "OK")
    assert final_status(OutcomeKind.FAILED, FailureCause.BUSY) == (486, "Busy Here")
    assert final_status(OutcomeKind.REFUSED, OutcomeCause.SELF_TARGET) == (403, "Forbidden")
    assert final_status(OutcomeKind.REFUSED, OutcomeCause.RESOLVE_TIMEOUT) == (500, "Server Internal Error")
    assert final_status(OutcomeKind.CANCELLED, None) == (500, "Server Internal Error")
    assert refusal_status(RefusalReason.CONVERSATION_ENDED)[0] == 481
    for cause in [*FailureCause, *RejectReason, *OutcomeCause, *RefusalReason]:
        code, reason = refusal_status(cause)
        assert 400 <= code <= 699 and reason
