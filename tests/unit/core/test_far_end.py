"""A transfer to an outside number handed to the client's own trunk (a REFER to it, issue 14 item 5):
the PBX follows the trunk's NOTIFYs and keeps the no-answer time, the back key and the fallback rules."""

from __future__ import annotations

from controller.core import (
    ActionFailed,
    CallerIdPolicy,
    ConversationState,
    EndConversation,
    EndLeg,
    FallbackPolicy,
    FarEndNotified,
    LegHungUp,
    LegState,
    NotifyReferrer,
    OriginateLeg,
    PlayHoldMusic,
    PlayRingback,
    ReferFarEnd,
    RingTransferor,
    TargetKind,
    TargetResolved,
    TransferRequested,
    TransferState,
    TransferTrigger,
)
from controller.core.types import EndReason, FailureCause, OutcomeKind, OutcomeMode

from ._helpers import CLIENT, COMPANY, A, fire, leg_r, make_settings, of_type, outcome, press, start, to_resolving

C, T = ConversationState, TransferState
OUTSIDE = "89161112233"
DIAL = "sip:+79161112233@trunk.example:5060"


def handed_over(conv, targets=(DIAL,)) -> list:
    actions = to_resolving(conv, OUTSIDE)
    return actions + conv.handle(TargetResolved(conv.transfer.id, targets, TargetKind.TRUNK, far_end=True))


def test_the_trunk_is_asked_to_call_b_with_the_policys_caller_id(direction):
    conv = start(direction)
    before = to_resolving(conv, OUTSIDE)
    assert of_type(before, PlayHoldMusic)  # on hold means on hold, as for any transfer
    actions = conv.handle(TargetResolved("t1", (DIAL,), TargetKind.TRUNK, far_end=True))
    assert conv.effective_state is T.FAR_END_CALLING
    # an outside number never sees the client's number: the company's (or the DID's) is Referred-By
    (refer,) = of_type(actions, ReferFarEnd)
    assert refer.target == DIAL and refer.transfer_id == "t1" and refer.caller_id != "+4930111222"
    assert not of_type(actions, OriginateLeg)  # the PBX places no call of its own
    assert of_type(actions, PlayRingback) == [PlayRingback(A)]  # A waits hearing ringback
    assert "no_answer" in {p for p in conv.active_timers.values()}


def test_the_trunks_success_ends_the_pbxs_part(direction):
    conv = start(direction)
    handed_over(conv)
    assert conv.handle(FarEndNotified("t1", 100)) == []  # accepted: nothing changes
    assert conv.handle(FarEndNotified("t1", 180)) == []  # B rings: A hears our ringback already
    actions = conv.handle(FarEndNotified("t1", 200))
    got = outcome(actions)
    assert (got.kind, got.mode) == (OutcomeKind.COMPLETED, OutcomeMode.FAR_END)
    # RFC 5589: the transferor ends its dialog with the transferee once the transfer succeeded
    # one BYE exchange for both halves of the client's dialog (it cannot be ended twice)
    assert of_type(actions, EndLeg) == [EndLeg(CLIENT, EndReason.TRANSFERRED, also=A)]
    assert of_type(actions, EndConversation) == [EndConversation(EndReason.TRANSFERRED)]
    assert conv.state is C.ENDED


def test_the_trunks_failure_returns_the_client_to_a_on_the_line(direction):
    conv = start(direction)
    handed_over(conv)
    actions = conv.handle(FarEndNotified("t1", 486))
    got = outcome(actions)
    assert (got.kind, got.cause, got.mode) == (OutcomeKind.RETURNED, FailureCause.BUSY, OutcomeMode.TRANSFEROR_ON_LINE)
    assert conv.state is C.TALKING and conv.partner_of(CLIENT) == A and conv.partner_of(A) == CLIENT
    assert conv.overlay_of(CLIENT) is None and conv.overlay_of(A) is None  # no music, no ringback left
    # a late NOTIFY of the finished transfer changes nothing
    assert conv.handle(FarEndNotified("t1", 200)) == []
    assert conv.state is C.TALKING


def test_no_final_notify_in_time_takes_the_call_back_by_the_directions_rule(direction):
    conv = start(direction, settings=make_settings(direction, FallbackPolicy(rule="return_to_transferor")))
    handed_over(conv)
    conv.handle(FarEndNotified("t1", 180))
    conv.handle(LegHungUp(A))  # A left right after dialling: the trunk goes on trying, blind
    assert conv.effective_state is T.FAR_END_CALLING
    actions = fire(conv, "no_answer")
    # A is rung again (the rule), the client keeps the music meanwhile
    assert [a.leg for a in of_type(actions, RingTransferor)] == [leg_r()]
    assert conv.effective_state is T.RINGING_TRANSFEROR
    assert conv.overlay_of(CLIENT) is not None
    assert conv.handle(FarEndNotified("t1", 200)) == []  # too late: the PBX has the call back


def test_the_far_ends_408_is_no_answer(direction):
    conv = start(direction)
    handed_over(conv)
    assert outcome(conv.handle(FarEndNotified("t1", 408))).cause is FailureCause.NO_ANSWER


def test_the_back_key_takes_the_client_back(direction):
    conv = start(direction)
    handed_over(conv)
    actions = press(conv, "*")
    assert outcome(actions).kind is OutcomeKind.CANCELLED
    assert conv.state is C.TALKING and conv.partner_of(CLIENT) == A


def test_a_refer_that_never_left_is_a_failure_the_fallback_handles(direction):
    conv = start(direction)
    handed_over(conv)
    actions = conv.handle(ActionFailed("ReferFarEnd", None, "Kamailio away"))
    assert outcome(actions).kind is OutcomeKind.RETURNED
    assert conv.state is C.TALKING


def test_a_department_is_never_handed_to_the_trunk(direction):
    conv = start(direction)
    to_resolving(conv, OUTSIDE)
    actions = conv.handle(TargetResolved("t1", (DIAL, "sip:+79160000000@trunk"), TargetKind.TRUNK, far_end=True))
    assert not of_type(actions, ReferFarEnd) and len(of_type(actions, OriginateLeg)) == 2
    assert conv.effective_state is T.RINGING


def test_notifies_of_a_transfer_not_with_the_trunk_change_nothing(direction):
    conv = start(direction)
    assert conv.handle(FarEndNotified("t1", 200)) == []
    to_resolving(conv, OUTSIDE)
    assert conv.handle(FarEndNotified("t1", 486)) == []
    assert conv.effective_state is T.RESOLVING


def test_a_phones_refer_handed_to_the_trunk_tells_the_phone_the_trunks_progress(direction):
    conv = start(direction)
    first = conv.handle(TransferRequested(OUTSIDE, TransferTrigger.REFER, leg=A))
    first += conv.handle(TargetResolved("t1", (DIAL,), TargetKind.TRUNK, far_end=True))
    ringing = conv.handle(FarEndNotified("t1", 180))
    done = conv.handle(FarEndNotified("t1", 200))
    assert [(n.code, n.final) for n in of_type(first + ringing + done, NotifyReferrer)] == [
        (100, False), (180, False), (200, True)]
    # the final NOTIFY goes before the dialogs end
    kinds = [type(a) for a in done]
    assert kinds.index(NotifyReferrer) < kinds.index(EndConversation)
    assert all(leg.state is LegState.ENDED for leg in conv.legs.values())


def test_referred_by_is_the_company_number_under_the_company_policy(direction):
    conv = start(direction, settings=make_settings(caller_id_policy=CallerIdPolicy.COMPANY))
    (refer,) = of_type(handed_over(conv), ReferFarEnd)
    assert refer.caller_id == COMPANY
