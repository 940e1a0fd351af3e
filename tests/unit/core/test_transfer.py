"""The transfer flows of the domain description, with exact action lists."""

from __future__ import annotations

import pytest

from controller.core import (
    BlockDtmf,
    BlockMedia,
    BridgeMedia,
    CancelLeg,
    CancelTimer,
    ConversationState,
    Direction,
    EndConversation,
    EndLeg,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
    LegRole,
    LegState,
    NotifyReferrer,
    OriginateLeg,
    OutcomeKind,
    PlayHoldMusic,
    PlayPrompt,
    PlayRingback,
    RecordOutcome,
    ResolveTarget,
    SetDialogTakeover,
    StartConference,
    StartTimer,
    StopConference,
    StopMedia,
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

from ._helpers import (
    A_NO,
    CLIENT,
    CLIENT_NO,
    COMPANY,
    DID,
    A,
    fire,
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

C, T = ConversationState, TransferState
B1, B2 = leg_b(1), leg_b(2)
DTMF = TransferTrigger.DTMF


def expected_caller_id(direction: Direction) -> str:
    # policy "did": the DID for incoming calls; outgoing calls have none -> company number
    return DID if direction is Direction.INCOMING else COMPANY


def done(kind, cause=None, *, number="201", trigger=DTMF, rule=None, mode=None, transfer="t1"):
    return RecordOutcome(transfer, kind, number, trigger, cause, rule, mode)


# on hold means on hold: neither hears the other (A's DTMF is blocked from the start of the call)
HOLD = [PlayHoldMusic(CLIENT), BlockMedia(A, CLIENT), BlockMedia(CLIENT, A)]
RECONNECT = [StopMedia(CLIENT), UnblockMedia(A, CLIENT), UnblockMedia(CLIENT, A)]
# Kamailio takes over A's dialog while a transfer runs or once A has left (SetDialogTakeover)
TAKE, FREE = SetDialogTakeover(A), SetDialogTakeover(None)
# rtpengine 10.5: a re-pairing can stop a looped player elsewhere, so the machine plays it again
REPLAY_HOLD = PlayHoldMusic(CLIENT)


# -- starting a transfer ----------------------------------------------------------------


def test_hash_and_number_puts_the_client_on_hold_and_resolves(direction):
    conv = start(direction)
    press(conv, "#2055")
    actions = fire(conv, "interdigit")
    assert norm(actions) == [*HOLD, ResolveTarget("t1", "2055"), StartTimer("resolve", 5.0)]
    assert conv.effective_state is T.RESOLVING


@pytest.mark.parametrize("trigger", list(TransferTrigger))
def test_every_trigger_is_the_same_transfer(direction, trigger):
    conv = start(direction)
    refer = trigger is TransferTrigger.REFER
    actions = conv.handle(TransferRequested("201", trigger, leg=A if refer else None))
    # a REFER's phone hears of it in its subscription (core/refer.py): 100 Trying first
    notify = [NotifyReferrer(100, "Trying", final=False)] if refer else []
    assert norm(actions) == [*HOLD, ResolveTarget("t1", "201"), StartTimer("resolve", 5.0), TAKE, *notify]
    assert conv.transfer.trigger is trigger


def test_resolution_originates_b_with_the_caller_id_policy(direction):
    conv = start(direction)
    to_resolving(conv)
    actions = conv.handle(TargetResolved("t1", ("201",), TargetKind.EXTENSION))
    assert norm(actions) == [
        CancelTimer("resolve"),
        OriginateLeg(B1, "201", TargetKind.EXTENSION, expected_caller_id(direction), 20.0),
        StartTimer("no_answer", 20.0),
    ]
    assert conv.effective_state is T.RINGING
    assert conv.legs[B1].state is LegState.TRYING


def test_client_number_is_shown_internally_but_never_on_the_trunk(direction):
    conv = start(direction, settings=make_settings(caller_id_policy="client"))
    to_resolving(conv, "0301234")
    actions = conv.handle(TargetResolved("t1", ("+49301234",), TargetKind.TRUNK))
    (originate,) = [a for a in actions if isinstance(a, OriginateLeg)]
    assert originate.caller_id == expected_caller_id(direction)
    conv2 = start(direction, settings=make_settings(caller_id_policy="client"))
    to_resolving(conv2)
    actions = conv2.handle(TargetResolved("t1", ("201",), TargetKind.EXTENSION))
    (originate,) = [a for a in actions if isinstance(a, OriginateLeg)]
    assert originate.caller_id == CLIENT_NO


# -- ringing ------------------------------------------------------------------------------


def test_a_hears_ringback_then_b(direction):
    conv = start(direction)
    to_ringing(conv)
    assert conv.handle(LegRinging(B1)) == [PlayRingback(A)]
    assert conv.handle(LegRinging(B1)) == []  # a second 180
    actions = conv.handle(LegAnswered(B1))
    assert norm(actions) == [CancelTimer("no_answer"), StopMedia(A), BridgeMedia(A, B1), REPLAY_HOLD]
    assert conv.effective_state is T.CONSULTING


def test_a_hears_early_media_from_b(direction):
    conv = start(direction)
    to_ringing(conv)
    assert conv.handle(LegRinging(B1)) == [PlayRingback(A)]
    assert conv.handle(LegRinging(B1, early_media=True)) == [StopMedia(A), BridgeMedia(A, B1), REPLAY_HOLD]
    # already paired: answering only stops the no-answer timer
    assert norm(conv.handle(LegAnswered(B1))) == [CancelTimer("no_answer")]


def test_answer_without_ringing(direction):
    conv = start(direction)
    to_ringing(conv)
    assert norm(conv.handle(LegAnswered(B1))) == [CancelTimer("no_answer"), BridgeMedia(A, B1), REPLAY_HOLD]


def test_second_hash_while_ringing_is_ignored_and_a_second_request_refused(direction):
    conv = start(direction)
    to_ringing(conv)
    version = conv.version
    assert press(conv, "#") == []
    assert conv.version == version + 1
    assert conv.handle(TransferRequested("202", TransferTrigger.REFER, leg=A)) == [
        TransferRefused("202", TransferTrigger.REFER, "transfer_in_progress"),
        NotifyReferrer(491, "Request Pending", final=True),
    ]
    assert conv.effective_state is T.RINGING
    assert conv.transfer.number == "201"


@pytest.mark.parametrize("stage", ["collecting", "resolving", "consulting"])
def test_second_request_refused_at_every_stage(direction, stage):
    conv = start(direction)
    if stage == "collecting":
        press(conv, "#2")
    elif stage == "resolving":
        to_resolving(conv)
    else:
        to_consulting(conv)
    state = conv.effective_state
    assert conv.handle(TransferRequested("202", TransferTrigger.API)) == [
        TransferRefused("202", TransferTrigger.API, "transfer_in_progress")
    ]
    assert conv.effective_state is state


# -- attended transfer -----------------------------------------------------------------------


def test_attended_transfer_completes_when_a_hangs_up(direction):
    conv = start(direction)
    to_consulting(conv)
    actions = conv.handle(LegHungUp(A))
    # B is the transferor now: their talk options are the PBX's keys too
    assert actions == [StopMedia(CLIENT), BridgeMedia(CLIENT, B1), BlockDtmf(B1),
                       done(OutcomeKind.COMPLETED, mode="attended")]
    assert conv.state is C.TALKING
    assert conv.transfer is None
    # B is an extension: B now has the talk options (chained transfers)
    assert conv.transferor_leg == B1
    assert conv.legs[B1].role is LegRole.TRANSFEROR
    assert press(conv, "#") == []  # A's leg is gone
    assert norm(press(conv, "#", leg=B1)) == [StartTimer("interdigit", 10.0)]
    assert conv.effective_state is T.COLLECTING


def test_chained_transfer_from_b(direction):
    conv = start(direction)
    to_consulting(conv)
    conv.handle(LegHungUp(A))
    # B (201) is now the transferor: a transfer to 201 is a self-transfer, to 100 (A) is not
    assert PlayPrompt(B1, "transfer_forbidden") in conv.handle(TransferRequested("201", TransferTrigger.API))
    press(conv, "#202", leg=B1)
    assert conv.effective_state is T.RESOLVING
    assert conv.transfer.id == "t3"
    actions = conv.handle(TargetResolved("t3", ("202",), TargetKind.EXTENSION))
    assert OriginateLeg(leg_b(1, 3), "202", TargetKind.EXTENSION, expected_caller_id(direction), 20.0) in actions


def test_completed_to_an_outside_number_has_no_talk_options(direction):
    conv = start(direction)
    to_resolving(conv, "0301234")
    conv.handle(TargetResolved("t1", ("+49301234",), TargetKind.TRUNK))
    conv.handle(LegAnswered(B1))
    actions = conv.handle(LegHungUp(A))
    assert actions[:2] == [StopMedia(CLIENT), BridgeMedia(CLIENT, B1)]
    assert conv.state is C.BRIDGED
    assert conv.transferor_leg is None and conv.peer_leg == B1
    assert press(conv, "#0900", leg=B1) == []  # no toll fraud by the outside party
    assert conv.handle(TransferRequested("201", TransferTrigger.API)) == [
        TransferRefused("201", TransferTrigger.API, "no_transferor")
    ]
    assert conv.handle(LegHungUp(B1)) == [EndLeg(CLIENT, "peer_hung_up"), FREE, EndConversation("peer_hung_up")]
    assert conv.state is C.ENDED


def test_client_hangs_up_in_bridged_call(direction):
    conv = start(direction)
    to_resolving(conv, "0301234")
    conv.handle(TargetResolved("t1", ("+49301234",), TargetKind.TRUNK))
    conv.handle(LegAnswered(B1))
    conv.handle(LegHungUp(A))
    assert conv.handle(LegHungUp(CLIENT)) == [EndLeg(B1, "client_hung_up"), FREE, EndConversation("client_hung_up")]


# -- blind transfer --------------------------------------------------------------------------


def test_blind_transfer_when_a_hangs_up_before_b_answers(direction):
    conv = start(direction)
    to_ringing(conv)
    conv.handle(LegRinging(B1))
    assert conv.handle(LegHungUp(A)) == []  # keep ringing B, client keeps the hold music
    assert conv.effective_state is T.BLIND_RINGING
    assert conv.handle(LegRinging(B1)) == []
    actions = conv.handle(LegAnswered(B1))
    assert norm(actions) == [
        CancelTimer("no_answer"),
        StopMedia(CLIENT),
        BridgeMedia(CLIENT, B1),
        BlockDtmf(B1),
        done(OutcomeKind.COMPLETED, mode="blind"),
    ]
    assert conv.state is C.TALKING and conv.transferor_leg == B1


def test_blind_transfer_when_a_hangs_up_while_resolving(direction):
    conv = start(direction)
    to_resolving(conv)
    assert conv.handle(LegHungUp(A)) == []
    assert conv.effective_state is T.RESOLVING
    conv.handle(TargetResolved("t1", ("201",)))
    assert conv.effective_state is T.BLIND_RINGING
    conv.handle(LegAnswered(B1))
    assert conv.state is C.TALKING


def test_blind_transfer_to_trunk_ends_bridged(direction):
    conv = start(direction)
    to_resolving(conv, "0301234")
    conv.handle(TargetResolved("t1", ("+49301234",), TargetKind.TRUNK))
    conv.handle(LegHungUp(A))
    conv.handle(LegAnswered(B1))
    assert conv.state is C.BRIDGED


def test_a_hanging_up_while_dialling_ends_the_call(direction):
    conv = start(direction)
    press(conv, "#20")
    actions = conv.handle(LegHungUp(A))
    assert norm(actions) == [
        done(OutcomeKind.CANCELLED, "transferor_hung_up", number="20"),
        CancelTimer("interdigit"),
        EndLeg(CLIENT, "transferor_hung_up"),
        FREE,
        EndConversation("transferor_hung_up"),
    ]


# -- back to the client ------------------------------------------------------------------------


def test_back_key_while_b_rings_cancels_b(direction):
    conv = start(direction)
    to_ringing(conv)
    conv.handle(LegRinging(B1))
    actions = press(conv, "*")
    assert norm(actions) == [
        CancelTimer("no_answer"),
        CancelLeg(B1),
        StopMedia(A),
        *RECONNECT,
        done(OutcomeKind.CANCELLED, "transferor_returned"),
        FREE,
    ]
    assert conv.state is C.TALKING
    # B's 487 arrives later, or B's 200 crossed the CANCEL and must be BYEd
    assert conv.handle(LegFailed(B1, 487)) == []


def test_crossing_200_after_cancel_is_byed(direction):
    conv = start(direction)
    to_ringing(conv)
    press(conv, "*")
    assert conv.handle(LegAnswered(B1)) == [EndLeg(B1, "cancelled")]
    assert conv.legs[B1].state is LegState.ENDED


def test_back_key_after_early_media_re_pairs_a_with_the_client(direction):
    conv = start(direction)
    to_ringing(conv)
    conv.handle(LegRinging(B1, early_media=True))
    actions = press(conv, "*")
    assert norm(actions) == [
        CancelTimer("no_answer"),
        CancelLeg(B1),
        StopMedia(CLIENT),
        BridgeMedia(CLIENT, A),  # a re-pairing lifts both blocks
        done(OutcomeKind.CANCELLED, "transferor_returned"),
        FREE,
    ]


def test_back_key_after_b_answered_hangs_up_b(direction):
    conv = start(direction)
    to_consulting(conv)
    actions = press(conv, "*")
    assert actions == [
        EndLeg(B1, "transferor_returned"),
        StopMedia(CLIENT),
        BridgeMedia(CLIENT, A),  # a re-pairing lifts both blocks
        done(OutcomeKind.CANCELLED, "transferor_returned"),
        FREE,
    ]
    assert conv.state is C.TALKING and conv.transferor_leg == A


def test_back_key_while_resolving_and_the_late_answer_is_ignored(direction):
    conv = start(direction)
    to_resolving(conv)
    actions = press(conv, "*")
    assert norm(actions) == [CancelTimer("resolve"), *RECONNECT, done(OutcomeKind.CANCELLED, "transferor_returned"),
                             FREE]
    assert conv.handle(TargetResolved("t1", ("201",))) == []
    assert conv.handle(TargetRejected("t1")) == []
    assert conv.state is C.TALKING


def test_b_hangs_up_during_consultation(direction):
    conv = start(direction)
    to_consulting(conv)
    actions = conv.handle(LegHungUp(B1))
    assert actions == [
        StopMedia(CLIENT),
        BridgeMedia(CLIENT, A),
        done(OutcomeKind.RETURNED, "target_hung_up", mode="transferor_on_line"),
        FREE,
    ]
    assert conv.state is C.TALKING


# -- conference ----------------------------------------------------------------------------------


def to_conference(direction):
    conv = start(direction)
    to_consulting(conv)
    actions = press(conv, "#")
    return conv, actions


def test_hash_after_answer_starts_a_conference(direction):
    conv, actions = to_conference(direction)
    assert actions == [
        StopMedia(CLIENT),
        UnblockMedia(CLIENT, A),  # A's own block went with A's re-pairing to B
        StartConference((CLIENT, A, B1)),
        done(OutcomeKind.CONFERENCED),  # Kamailio keeps A's half: A's BYE must stop at the PBX
    ]
    assert conv.state is C.CONFERENCE
    assert press(conv, "#") == []  # no nested transfer
    assert conv.handle(TransferRequested("202", TransferTrigger.REFER, leg=A)) == [
        TransferRefused("202", TransferTrigger.REFER, "conference_active"),
        NotifyReferrer(491, "Request Pending", final=True),
    ]


def test_back_key_leaves_the_conference(direction):
    conv, _ = to_conference(direction)
    assert press(conv, "*") == [EndLeg(B1, "transferor_returned"), BridgeMedia(CLIENT, A), StopConference(), FREE]
    assert conv.state is C.TALKING


def test_third_party_leaves_the_conference(direction):
    conv, _ = to_conference(direction)
    assert conv.handle(LegHungUp(B1)) == [BridgeMedia(CLIENT, A), StopConference(), FREE]  # two need no mixer
    assert conv.state is C.TALKING


def test_a_leaves_the_conference(direction):
    conv, _ = to_conference(direction)
    assert conv.handle(LegHungUp(A)) == [BridgeMedia(CLIENT, B1), StopConference(), BlockDtmf(B1)]
    assert conv.state is C.TALKING and conv.transferor_leg == B1


def test_a_leaves_a_conference_with_an_outside_party(direction):
    conv = start(direction)
    to_resolving(conv, "0301234")
    conv.handle(TargetResolved("t1", ("+49301234",), TargetKind.TRUNK))
    conv.handle(LegAnswered(B1))
    press(conv, "#")
    # an outside party has no talk options: their digits pass as they are
    assert conv.handle(LegHungUp(A)) == [BridgeMedia(CLIENT, B1), StopConference()]
    assert conv.state is C.BRIDGED


def test_client_leaves_the_conference(direction):
    conv, _ = to_conference(direction)
    assert conv.handle(LegHungUp(CLIENT)) == [
        EndLeg(A, "client_hung_up"),
        EndLeg(B1, "client_hung_up"),
        StopConference(),
        FREE,
        EndConversation("client_hung_up"),
    ]


# -- refused targets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "prompt"),
    [("unknown_number", "transfer_unknown_number"), ("forbidden", "transfer_forbidden")],
)
def test_unknown_or_forbidden_target(direction, reason, prompt):
    conv = start(direction)
    to_resolving(conv, "999")
    actions = conv.handle(TargetRejected("t1", reason))
    assert norm(actions) == [
        CancelTimer("resolve"),
        *RECONNECT,
        PlayPrompt(A, prompt),
        done(OutcomeKind.REFUSED, reason, number="999"),
        FREE,
    ]
    assert conv.state is C.TALKING


def test_resolution_timeout_is_an_error_prompt(direction):
    conv = start(direction)
    to_resolving(conv)
    actions = fire(conv, "resolve")
    assert actions == [*RECONNECT, PlayPrompt(A, "transfer_error"), done(OutcomeKind.REFUSED, "resolve_timeout"), FREE]


def test_transfer_to_a_themself_is_refused(direction):
    conv = start(direction)
    actions = press(conv, "#" + A_NO)  # 100 is a known extension: ends at once
    assert norm(actions)[-4:] == [
        CancelTimer("interdigit"),
        PlayPrompt(A, "transfer_forbidden"),
        done(OutcomeKind.REFUSED, "self_target", number=A_NO),
        FREE,
    ]
    assert conv.state is C.TALKING


@pytest.mark.parametrize("number", [A_NO, CLIENT_NO])
def test_refer_to_a_or_the_client_is_refused(direction, number):
    conv = start(direction)
    actions = conv.handle(TransferRequested(number, TransferTrigger.REFER, leg=A))
    assert actions == [
        PlayPrompt(A, "transfer_forbidden"),
        done(OutcomeKind.REFUSED, "self_target", number=number, trigger=TransferTrigger.REFER),
        TransferRefused(number, TransferTrigger.REFER, "self_target"),
        NotifyReferrer(403, "Forbidden", final=True),  # one final NOTIFY, not one per record
    ]
    assert conv.state is C.TALKING


def test_resolution_to_a_themself_is_refused(direction):
    conv = start(direction)
    to_resolving(conv, "55")
    actions = conv.handle(TargetResolved("t1", (A_NO,), TargetKind.EXTENSION))
    assert norm(actions) == [
        CancelTimer("resolve"),
        *RECONNECT,
        PlayPrompt(A, "transfer_forbidden"),
        done(OutcomeKind.REFUSED, "self_target", number="55"),
        FREE,
    ]


# -- departments (parallel targets) -------------------------------------------------------------------


def test_department_rings_everybody_but_a(direction):
    conv = start(direction)
    to_resolving(conv, "55")
    actions = conv.handle(TargetResolved("t1", ("201", A_NO, "202", "201"), TargetKind.DEPARTMENT))
    caller_id = expected_caller_id(direction)
    assert norm(actions) == [
        CancelTimer("resolve"),
        OriginateLeg(B1, "201", TargetKind.DEPARTMENT, caller_id, 20.0),
        OriginateLeg(B2, "202", TargetKind.DEPARTMENT, caller_id, 20.0),
        StartTimer("no_answer", 20.0),
    ]


def test_first_to_answer_wins(direction):
    conv = start(direction)
    to_ringing(conv, ("201", "202"), TargetKind.DEPARTMENT, number="55")
    conv.handle(LegRinging(B1))
    actions = conv.handle(LegAnswered(B2))
    assert norm(actions) == [CancelTimer("no_answer"), CancelLeg(B1), StopMedia(A), BridgeMedia(A, B2), REPLAY_HOLD]
    assert conv.transfer.answered == B2
    # B1 answered at the same time: its 200 crossed our CANCEL
    assert conv.handle(LegAnswered(B1)) == [EndLeg(B1, "cancelled")]
    conv.handle(LegHungUp(A))
    assert conv.transferor_leg == B2
    assert conv.transferor_number == "202"


def test_one_busy_member_does_not_fail_the_department(direction):
    conv = start(direction)
    to_ringing(conv, ("201", "202"), TargetKind.DEPARTMENT, number="55")
    assert conv.handle(LegFailed(B1, 486)) == []
    assert conv.handle(LegFailed(B2, 603)) != []  # a member's 603 is not global for a department
    assert conv.state is C.TALKING


def test_a_6xx_from_one_contact_ends_every_branch(direction):
    conv = start(direction)
    to_ringing(conv, ("sip:201@a", "sip:201@b"), TargetKind.EXTENSION)
    actions = conv.handle(LegFailed(B1, 603))
    assert norm(actions)[:2] == [CancelLeg(B2), CancelTimer("no_answer")]
    assert outcome(actions).cause == "rejected"


def test_early_media_branch_fails_back_to_ringback(direction):
    conv = start(direction)
    to_ringing(conv, ("201", "202"), TargetKind.DEPARTMENT, number="55")
    conv.handle(LegRinging(B1, early_media=True))
    conv.handle(LegRinging(B2, early_media=True))  # only one branch feeds A
    assert conv.handle(LegFailed(B1, 480)) == [PlayRingback(A)]
    assert norm(conv.handle(LegAnswered(B2))) == [CancelTimer("no_answer"), StopMedia(A), BridgeMedia(A, B2),
                                                  REPLAY_HOLD]


# -- B fails while A is on the line --------------------------------------------------------------------


@pytest.mark.parametrize(("status", "cause"), [(486, "busy"), (600, "busy"), (603, "rejected"), (480, "unreachable")])
def test_b_fails_while_a_waits(direction, status, cause):
    conv = start(direction)
    to_ringing(conv)
    conv.handle(LegRinging(B1))
    actions = conv.handle(LegFailed(B1, status))
    assert norm(actions) == [
        CancelTimer("no_answer"),
        StopMedia(A),
        *RECONNECT,
        done(OutcomeKind.RETURNED, cause, mode="transferor_on_line"),
        FREE,
    ]
    assert conv.state is C.TALKING


def test_b_does_not_answer_while_a_waits(direction):
    conv = start(direction)
    to_ringing(conv)
    conv.handle(LegRinging(B1))
    actions = fire(conv, "no_answer")
    assert actions == [
        CancelLeg(B1),
        StopMedia(A),
        *RECONNECT,
        done(OutcomeKind.RETURNED, "no_answer", mode="transferor_on_line"),
        FREE,
    ]


def test_all_branches_fail_with_the_most_specific_cause(direction):
    conv = start(direction)
    to_ringing(conv, ("201", "202"), TargetKind.DEPARTMENT, number="55")
    conv.handle(LegFailed(B1, 480))
    actions = conv.handle(LegFailed(B2, 486))
    assert outcome(actions).cause == "busy"


def test_nobody_to_ring(direction):
    conv = start(direction)
    to_resolving(conv, "55")
    actions = conv.handle(TargetResolved("t1", (), TargetKind.DEPARTMENT))
    assert norm(actions) == [
        CancelTimer("resolve"),
        *RECONNECT,
        done(OutcomeKind.RETURNED, "unreachable", number="55", mode="transferor_on_line"),
        FREE,
    ]


def test_stale_no_answer_timer_after_answer_is_ignored(direction):
    conv = start(direction)
    to_ringing(conv)
    (name,) = conv.active_timers
    conv.handle(LegAnswered(B1))
    assert conv.handle(TimerFired(name)) == []
    assert conv.effective_state is T.CONSULTING


# -- hang-ups ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["talking", "collecting", "resolving", "ringing", "consulting", "blind"])
def test_client_hangs_up_at_any_stage(direction, stage):
    conv = start(direction)
    if stage == "collecting":
        press(conv, "#2")
    elif stage == "resolving":
        to_resolving(conv)
    elif stage in ("ringing", "blind"):
        to_ringing(conv)
        conv.handle(LegRinging(B1))
        if stage == "blind":
            conv.handle(LegHungUp(A))
    elif stage == "consulting":
        to_consulting(conv)
    timers = sorted(conv.active_timers)
    actions = conv.handle(LegHungUp(CLIENT))
    assert conv.state is C.ENDED
    assert actions[-1] == EndConversation("client_hung_up")
    assert [a.name for a in actions if isinstance(a, CancelTimer)] == timers
    assert not conv.active_timers
    if stage != "talking":
        assert outcome(actions).kind is OutcomeKind.CANCELLED
    assert all(leg.state in (LegState.ENDED, LegState.CANCELLING) for leg in conv.legs.values())
    if stage in ("ringing", "blind"):
        assert CancelLeg(B1) in actions
    if stage == "consulting":
        assert EndLeg(B1, "client_hung_up") in actions
    if stage not in ("blind",):
        assert EndLeg(A, "client_hung_up") in actions


def test_a_hangs_up_the_plain_call(direction):
    conv = start(direction)
    assert conv.handle(LegHungUp(A)) == [EndLeg(CLIENT, "transferor_hung_up"), EndConversation("transferor_hung_up")]
    assert conv.end_reason == "transferor_hung_up"


def test_client_hangs_up_the_plain_call(direction):
    conv = start(direction)
    assert conv.handle(LegHungUp(CLIENT)) == [EndLeg(A, "client_hung_up"), EndConversation("client_hung_up")]
    assert conv.handle(TransferRequested("201", TransferTrigger.API)) == [
        TransferRefused("201", TransferTrigger.API, "conversation_ended")
    ]
