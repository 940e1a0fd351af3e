"""A REFER from A's phone (the phone's own transfer button): the same transfer as `#` with A waiting on
the line, B's answer connecting the client to B at once, and the phone told its progress in NOTIFYs
(core/refer.py)."""

from __future__ import annotations

import pytest

from controller.core import (
    BlockMedia,
    BridgeMedia,
    ConversationState,
    EndConversation,
    EndLeg,
    EndReplacedDialog,
    FallbackPolicy,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
    LegState,
    NotifyReferrer,
    OriginateLeg,
    PhoneHeld,
    PlayHoldMusic,
    PlayPrompt,
    PlayRingback,
    RecordOutcome,
    SetDialogTakeover,
    StopMedia,
    TargetKind,
    TargetRejected,
    TargetResolved,
    TransferRefused,
    TransferRequested,
    TransferState,
    TransferTrigger,
    UnblockMedia,
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
    assert conv.legs[A].state is LegState.UP  # A waits on the line, as after `#`
    actions = conv.handle(TargetResolved("t1", ("201",), TargetKind.EXTENSION))
    assert conv.effective_state is T.RINGING and conv.legs[A].state is LegState.UP
    assert [a for a in actions if isinstance(a, OriginateLeg)] and notes(actions) == []
    actions = conv.handle(LegRinging(B1))
    assert notes(actions) == [(180, False)] and PlayRingback(A) in actions  # A hears the ringback
    assert notes(conv.handle(LegRinging(B1))) == []  # a second 180 is not told again
    actions = conv.handle(LegAnswered(B1))
    # the client reaches B at once (no consultation); A's phone hands the call over without a BYE
    assert BridgeMedia(CLIENT, B1) in actions and not [a for a in actions if isinstance(a, EndLeg)]
    assert conv.legs[A].state is LegState.ENDED
    assert notes(actions) == [(200, True)] and actions[-1] == NotifyReferrer(200, "OK", final=True)
    (done,) = [a for a in actions if isinstance(a, RecordOutcome)]
    assert (done.kind, done.mode, done.trigger) == (OutcomeKind.COMPLETED, "blind", REFER)
    assert conv.state is C.TALKING and conv.transferor_leg == B1
    # A's own BYE, absorbed by Kamailio, comes later and changes nothing
    assert conv.handle(LegHungUp(A)) == []
    assert conv.state is C.TALKING


@pytest.mark.parametrize(("status", "code"), [(486, 486), (603, 603), (404, 480), (0, 480)])
def test_b_failing_is_told_and_a_on_the_line_takes_the_client_back(direction, status, code):
    conv = start(direction, settings=make_settings(direction, FallbackPolicy(rule="apologize")))
    refer(conv)
    conv.handle(TargetResolved("t1", ("201",), TargetKind.EXTENSION))
    actions = conv.handle(LegFailed(B1, status))
    assert notes(actions) == [(code, True)]
    # as after `#`: A is on the line, so the client goes back to A (a phone resumes the call after a
    # failed NOTIFY); the direction's rule is for a transfer A has left
    assert conv.state is C.TALKING and conv.transferor_leg == A
    assert UnblockMedia(A, CLIENT) in actions and UnblockMedia(CLIENT, A) in actions


@pytest.mark.parametrize("status", [486, 0])
def test_a_phone_that_hung_up_after_the_202_leaves_a_blind_transfer_to_the_rule(direction, status):
    policy = FallbackPolicy(rule="apologize")
    conv = start(direction, settings=make_settings(direction, policy))
    refer(conv)
    conv.handle(TargetResolved("t1", ("201",), TargetKind.EXTENSION))
    assert notes(conv.handle(LegHungUp(A))) == []  # Kamailio absorbed the BYE; the transfer goes on blind
    assert conv.effective_state is T.BLIND_RINGING
    actions = conv.handle(LegFailed(B1, status))
    assert notes(actions) == [(486 if status else 480, True)]  # (Kamailio drops it: the phone is gone)
    assert conv.effective_state is T.APOLOGIZING  # the tenant's rule for this direction
    assert notes(fire(conv, "prompt")) == []  # the subscription ended with the failure


def test_no_answer_is_told_as_a_timeout(direction):
    conv = start(direction, settings=make_settings(direction, FallbackPolicy(rule="apologize")))
    refer(conv)
    conv.handle(TargetResolved("t1", ("201",), TargetKind.EXTENSION))
    conv.handle(LegRinging(B1))
    assert notes(fire(conv, "no_answer")) == [(408, True)]


def test_the_back_key_still_takes_the_client_back(direction):
    conv = start(direction)
    refer(conv)
    conv.handle(TargetResolved("t1", ("201",), TargetKind.EXTENSION))
    actions = press(conv, "*")
    assert notes(actions) == [(487, True)] and conv.state is C.TALKING and conv.transferor_leg == A


def test_a_refer_to_an_outside_number_completes_bridged(direction):
    conv = start(direction)
    refer(conv, "+4917000")
    conv.handle(TargetResolved("t1", ("+4917000",), TargetKind.TRUNK))
    actions = conv.handle(LegAnswered(B1))
    assert notes(actions) == [(200, True)] and conv.state is C.BRIDGED and conv.peer_leg == B1


@pytest.mark.parametrize(("reason", "code"), [(RejectReason.UNKNOWN_NUMBER, 404), (RejectReason.FORBIDDEN, 403)])
def test_a_refused_number_leaves_the_client_with_a(direction, reason, code):
    conv = start(direction)
    refer(conv, "999")
    actions = conv.handle(TargetRejected("t1", reason))
    assert notes(actions) == [(code, True)]
    assert conv.state is C.TALKING and conv.transferor_leg == A and conv.legs[A].state is LegState.UP
    assert UnblockMedia(A, CLIENT) in actions and any(isinstance(a, PlayPrompt) for a in actions)


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
    assert conv.state is C.TALKING and conv.transferor_leg == B1
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


# -- attended: Refer-To with Replaces (RFC 3891) ------------------------------------------------------

REPLACES = "d2@pbx;to-tag=b2;from-tag=a2"


def test_an_attended_refer_invites_b_with_replaces_and_ends_the_replaced_dialog(direction):
    conv = start(direction)
    conv.handle(TransferRequested("201", REFER, leg=A, replaces=REPLACES))
    actions = conv.handle(TargetResolved("t1", ("201",), TargetKind.EXTENSION))
    (originate,) = [a for a in actions if isinstance(a, OriginateLeg)]
    assert originate.replaces == REPLACES
    actions = conv.handle(LegAnswered(B1))
    assert BridgeMedia(CLIENT, B1) in actions and EndReplacedDialog(REPLACES) in actions
    assert notes(actions) == [(200, True)]


def test_replaces_is_for_b_alone_never_for_the_origin_after_a_failure(direction):
    policy = FallbackPolicy(return_to_origin=True)
    conv = start(direction, settings=make_settings(direction, policy))
    conv.handle(TransferRequested("201", REFER, leg=A, replaces=REPLACES))
    conv.handle(TargetResolved("t1", ("201",), TargetKind.EXTENSION))
    conv.handle(LegHungUp(A))  # the phone left after the 202: blind from here
    actions = conv.handle(LegFailed(B1, 481))  # B's phone did not know the dialog any more
    actions += fire(conv, "no_answer") if "no_answer" in str(conv.active_timers) else []
    assert all(a.replaces is None for a in actions if isinstance(a, OriginateLeg) and a.leg != B1)


# -- the phone's own hold key (a re-INVITE sendonly/inactive, kept from the client by Kamailio) --------


def test_the_phones_hold_plays_the_tenants_music_to_the_client(direction):
    conv = start(direction)
    assert conv.handle(PhoneHeld(A, True)) == [PlayHoldMusic(CLIENT), BlockMedia(A, CLIENT), BlockMedia(CLIENT, A)]
    assert conv.handle(PhoneHeld(A, True)) == []  # a second hold re-INVITE
    assert conv.handle(PhoneHeld(A, False)) == [StopMedia(CLIENT), UnblockMedia(A, CLIENT), UnblockMedia(CLIENT, A)]
    assert conv.handle(PhoneHeld(A, False)) == []


def test_hold_then_refer_is_the_same_transfer_and_b_reaches_the_client(direction):
    conv = start(direction)
    conv.handle(PhoneHeld(A, True))
    actions = refer(conv)
    assert notes(actions) == [(100, False)]
    conv.handle(TargetResolved("t1", ("201",), TargetKind.EXTENSION))
    actions = conv.handle(LegAnswered(B1))
    assert StopMedia(CLIENT) in actions and BridgeMedia(CLIENT, B1) in actions


def test_only_the_transferor_on_the_line_holds(direction):
    conv = start(direction)
    assert conv.handle(PhoneHeld(CLIENT, True)) == []  # the client's own hold is the client's business
    assert conv.handle(PhoneHeld("stranger", True)) == []
    refer(conv)
    assert conv.handle(PhoneHeld(A, True)) == []  # the client has the music already
