"""B fails: the per-direction fallback rules.

Each test configures the rule for the conversation's direction and a
*different* rule for the other direction, so a mix-up of directions fails.
"""

from __future__ import annotations

import pytest

from controller.core import (
    BlockDtmf,
    BridgeMedia,
    CancelLeg,
    CancelTimer,
    ConversationState,
    Direction,
    EndConversation,
    EndLeg,
    FallbackPolicy,
    FallbackRule,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
    OriginateLeg,
    OutcomeKind,
    PlayHoldMusic,
    PlayPrompt,
    PromptFinished,
    RecordOutcome,
    ResolveOrigin,
    RingTransferor,
    SetDialogTakeover,
    StartRecording,
    StartTimer,
    StopMedia,
    StopRecording,
    TargetKind,
    TargetRejected,
    TargetResolved,
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
    ORIGIN,
    A,
    fire,
    leg_b,
    leg_o,
    leg_r,
    make_settings,
    norm,
    of_type,
    outcome,
    press,
    start,
    timer_names,
    to_resolving,
    to_ringing,
)

C, T = ConversationState, TransferState
B1, R1 = leg_b(1), leg_r(1)
RULE = FallbackRule.RETURN_TO_TRANSFEROR
# Kamailio takes over A's dialog while a transfer runs or once A has left (SetDialogTakeover)
TAKE, FREE = SetDialogTakeover(A), SetDialogTakeover(None)
# rtpengine 10.5: a re-pairing can stop a looped player elsewhere, so the machine plays it again
REPLAY_HOLD = PlayHoldMusic(CLIENT)


def conversation(direction, **policy):
    return start(direction, settings=make_settings(direction, FallbackPolicy(**policy)))


def blind_ringing(direction, **policy):
    """A transferred to 201 and hung up while B rings."""
    conv = conversation(direction, **policy)
    to_ringing(conv)
    conv.handle(LegRinging(B1))
    conv.handle(LegHungUp(A))
    assert conv.effective_state is T.BLIND_RINGING
    return conv


FAILURES = [
    ("timer", None, "no_answer"),
    ("status", 486, "busy"),
    ("status", 600, "busy"),
    ("status", 603, "rejected"),
    ("status", 408, "unreachable"),
    ("status", 480, "unreachable"),
    ("status", 503, "unreachable"),
    ("status", 0, "unreachable"),  # no registration / no response at all
]


def fail_b(conv, how, status):
    if how == "timer":
        return fire(conv, "no_answer")
    return conv.handle(LegFailed(B1, status))


def failed(cause, rule, mode, *, number="201"):
    return RecordOutcome("t1", OutcomeKind.FAILED, number, TransferTrigger.DTMF, cause, rule, mode)


def returned(cause, rule, mode, *, number="201"):
    return RecordOutcome("t1", OutcomeKind.RETURNED, number, TransferTrigger.DTMF, cause, rule, mode)


def recall_caller_id(direction):
    return DID if direction is Direction.INCOMING else COMPANY


# -- return_to_transferor ---------------------------------------------------------------------


@pytest.mark.parametrize(("how", "status", "cause"), FAILURES)
def test_return_to_transferor_rings_a_again(direction, how, status, cause):
    conv = blind_ringing(direction, rule="return_to_transferor")
    actions = fail_b(conv, how, status)
    head = [CancelLeg(B1)] if how == "timer" else [CancelTimer("no_answer")]
    assert norm(actions) == [
        *head,
        RingTransferor(R1, A_NO, recall_caller_id(direction), 20.0),
        StartTimer("recall", 20.0),
    ]  # the client keeps the hold music: no StopMedia
    assert conv.effective_state is T.RINGING_TRANSFEROR
    assert conv.transfer.cause == cause
    assert conv.handle(LegRinging(R1)) == []
    actions = conv.handle(LegAnswered(R1))
    assert norm(actions) == [
        CancelTimer("recall"),
        BlockDtmf(R1),
        StopMedia(CLIENT),
        BridgeMedia(CLIENT, R1),
        returned(cause, RULE, "recalled"),
    ]
    assert conv.state is C.TALKING
    assert conv.transferor_leg == R1
    press(conv, "#", leg=R1)  # the recalled A has the talk options again
    assert conv.effective_state is T.COLLECTING


def test_recall_shows_the_client_number_to_an_internal_a(direction):
    settings = make_settings(direction, FallbackPolicy(), caller_id_policy="client")
    conv = start(direction, settings=settings)
    to_ringing(conv)
    conv.handle(LegHungUp(A))
    actions = conv.handle(LegFailed(B1, 486))
    assert RingTransferor(R1, A_NO, CLIENT_NO, 20.0) in actions


def test_recall_with_warning_prompts(direction):
    conv = blind_ringing(direction, warn_transferor_prompt="warn_a", warn_client_prompt="warn_c")
    conv.handle(LegFailed(B1, 486))
    actions = conv.handle(LegAnswered(R1))
    assert norm(actions) == [
        CancelTimer("recall"),
        BlockDtmf(R1),  # A, rung again, is the transferor: their talk options stay the PBX's keys
        BridgeMedia(CLIENT, R1, muted=(CLIENT, R1)),  # each hears their warning and nothing else
        REPLAY_HOLD,  # until the client's warning starts
        PlayPrompt(R1, "warn_a"),
        StopMedia(CLIENT),
        PlayPrompt(CLIENT, "warn_c"),
        StartTimer("prompt", 60.0),
    ]
    assert conv.effective_state is T.RECONNECTING
    assert conv.handle(PromptFinished(CLIENT, "warn_c")) == []
    assert conv.handle(PromptFinished(CLIENT, "warn_c")) == []  # duplicate: stale
    actions = conv.handle(PromptFinished(R1, "warn_a"))
    assert norm(actions) == [CancelTimer("prompt"), UnblockMedia(R1, CLIENT), UnblockMedia(CLIENT, R1),
                             returned("busy", RULE, "recalled")]
    assert conv.state is C.TALKING


def test_recalled_a_hangs_up_during_the_warning(direction):
    conv = blind_ringing(direction, warn_transferor_prompt="warn_a")
    conv.handle(LegFailed(B1, 486))
    conv.handle(LegAnswered(R1))
    actions = conv.handle(LegHungUp(R1))
    assert norm(actions) == [CancelTimer("prompt"), StopMedia(CLIENT), PlayPrompt(CLIENT, "transfer_apology"),
                             StartTimer("prompt", 60.0)]
    assert conv.effective_state is T.APOLOGIZING


@pytest.mark.parametrize("how", ["rejects", "no_answer"])
def test_a_does_not_answer_either_apology(direction, how):
    conv = blind_ringing(direction)
    conv.handle(LegFailed(B1, 486))
    if how == "rejects":
        actions = conv.handle(LegFailed(R1, 603))
        head = [CancelTimer("recall")]
    else:
        actions = fire(conv, "recall")
        head = [CancelLeg(R1)]
    assert norm(actions) == [*head, StopMedia(CLIENT), PlayPrompt(CLIENT, "transfer_apology"),
                             StartTimer("prompt", 60.0)]
    actions = conv.handle(PromptFinished(CLIENT, "transfer_apology"))
    assert norm(actions) == [
        CancelTimer("prompt"),
        failed("busy", RULE, "apology"),
        EndLeg(CLIENT, "transfer_failed"),
        FREE,
        EndConversation("transfer_failed"),
    ]
    assert conv.state is C.ENDED


O1, O2 = leg_o(1), leg_o(2)


def routing_to_origin(direction, **policy):
    """B did not answer a blind transfer, and A did not answer the recall either."""
    conv = blind_ringing(direction, return_to_origin=True, **policy)
    fire(conv, "no_answer")
    conv.handle(LegFailed(R1, 480))
    assert conv.effective_state is T.ROUTING_TO_ORIGIN
    return conv


def ringing_origin(direction, **policy):
    """The origin (a department of A, 101 and 103) rings its members but A."""
    conv = routing_to_origin(direction, **policy)
    conv.handle(TargetResolved("t1", ("101", A_NO, "103"), TargetKind.DEPARTMENT))
    assert conv.effective_state is T.RINGING_ORIGIN
    return conv


@pytest.mark.parametrize("how", ["rejects", "no_answer"])
def test_a_does_not_answer_either_asks_for_the_origin(direction, how):
    conv = blind_ringing(direction, return_to_origin=True)
    fire(conv, "no_answer")
    if how == "rejects":
        actions = conv.handle(LegFailed(R1, 480))
        head = [CancelTimer("recall")]
    else:
        actions = fire(conv, "recall")
        head = [CancelLeg(R1)]
    # the client keeps the hold music while the routing step is looked up again
    assert norm(actions) == [*head, ResolveOrigin("t1", ORIGIN), StartTimer("resolve", 5.0)]
    assert conv.effective_state is T.ROUTING_TO_ORIGIN
    assert conv.overlay_of(CLIENT) == "hold"


def test_the_origin_rings_its_members_but_a_showing_the_client(direction):
    conv = routing_to_origin(direction)
    actions = conv.handle(TargetResolved("t1", ("101", A_NO, "103"), TargetKind.DEPARTMENT))
    # the routing step first showed the client's own number; a department is internal, so the law allows it
    assert norm(actions) == [
        CancelTimer("resolve"),
        OriginateLeg(O1, "101", TargetKind.DEPARTMENT, CLIENT_NO, 20.0),
        OriginateLeg(O2, "103", TargetKind.DEPARTMENT, CLIENT_NO, 20.0),
        StartTimer("no_answer", 20.0),
    ]
    assert conv.handle(LegRinging(O1, early_media=True)) == []  # the client keeps the music


def test_the_first_member_to_answer_takes_the_client_and_the_talk_options(direction):
    conv = ringing_origin(direction)
    actions = conv.handle(LegAnswered(O2))
    assert norm(actions) == [
        CancelTimer("no_answer"),
        CancelLeg(O1),
        StopMedia(CLIENT),
        BridgeMedia(CLIENT, O2),
        BlockDtmf(O2),
        failed("no_answer", RULE, "origin"),
    ]
    assert conv.state is C.TALKING
    assert (conv.transferor_leg, conv.transferor_number) == (O2, "103")
    # the member may transfer the client again
    press(conv, "#201", O2)
    assert conv.effective_state is T.RESOLVING and conv.transfer.id == "t2"


def test_an_origin_reached_over_the_trunk_gets_no_talk_options(direction):
    conv = routing_to_origin(direction)
    (originate,) = of_type(conv.handle(TargetResolved("t1", ("+4930555",), TargetKind.TRUNK)), OriginateLeg)
    # the law: never the client's number to an outside destination
    assert originate.caller_id == (DID if direction is Direction.INCOMING else COMPANY)
    conv.handle(LegAnswered(O1))
    assert conv.state is C.BRIDGED and conv.transferor_leg is None


def test_nobody_at_the_origin_answers_the_client_hears_the_apology(direction):
    conv = ringing_origin(direction)
    assert conv.handle(LegFailed(O1, 603)) == []  # a 6xx of one member does not end the others
    actions = fire(conv, "no_answer")
    assert norm(actions) == [CancelLeg(O2), StopMedia(CLIENT), PlayPrompt(CLIENT, "transfer_apology"),
                             StartTimer("prompt", 60.0)]
    assert conv.effective_state is T.APOLOGIZING
    actions = conv.handle(PromptFinished(CLIENT, "transfer_apology"))
    assert failed("no_answer", RULE, "apology") in actions
    assert conv.state is C.ENDED


def test_every_origin_member_fails_the_client_hears_the_apology(direction):
    conv = ringing_origin(direction)
    conv.handle(LegFailed(O1, 486))
    actions = conv.handle(LegFailed(O2, 480))
    assert norm(actions)[:2] == [CancelTimer("no_answer"), StopMedia(CLIENT)]
    assert conv.effective_state is T.APOLOGIZING
    assert conv.transfer.cause == "no_answer"  # B's failure stays the cause


@pytest.mark.parametrize("answer", ["rejected", "nobody", "only_a", "timeout"])
def test_an_origin_with_nobody_to_ring_apologises(direction, answer):
    conv = routing_to_origin(direction)
    if answer == "rejected":
        actions = conv.handle(TargetRejected("t1", "unknown_number"))
    elif answer == "nobody":
        actions = conv.handle(TargetResolved("t1", ()))
    elif answer == "only_a":
        actions = conv.handle(TargetResolved("t1", (A_NO,), TargetKind.EXTENSION))
    else:
        actions = fire(conv, "resolve")
    assert PlayPrompt(CLIENT, "transfer_apology") in actions
    assert not of_type(actions, OriginateLeg)
    assert conv.effective_state is T.APOLOGIZING and not timer_names(conv, "resolve")


def test_the_client_hangs_up_while_the_origin_rings(direction):
    conv = ringing_origin(direction)
    actions = conv.handle(LegHungUp(CLIENT))
    assert norm(actions) == [
        failed("no_answer", RULE, "client_hung_up"),
        CancelTimer("no_answer"),
        CancelLeg(O1),
        CancelLeg(O2),
        FREE,
        EndConversation("client_hung_up"),
    ]


def test_a_late_answer_from_b_while_routing_to_origin_is_released(direction):
    conv = routing_to_origin(direction)
    assert conv.handle(LegAnswered(B1)) == [EndLeg(B1, "cancelled")]
    assert conv.effective_state is T.ROUTING_TO_ORIGIN


def test_return_to_origin_without_origin_apologises(direction):
    conv = conversation(direction, return_to_origin=True)
    conv = start(direction, settings=conv.settings, origin=None)
    to_ringing(conv)
    conv.handle(LegHungUp(A))
    conv.handle(LegFailed(B1, 486))
    actions = conv.handle(LegFailed(R1, 486))
    assert PlayPrompt(CLIENT, "transfer_apology") in actions


def test_unknown_transferor_number_skips_the_recall(direction):
    conv = start(direction, settings=make_settings(direction, FallbackPolicy(return_to_origin=True)),
                 transferor_number=None)
    to_ringing(conv)
    conv.handle(LegHungUp(A))
    actions = conv.handle(LegFailed(B1, 486))
    assert ResolveOrigin("t1", ORIGIN) in actions
    assert not [a for a in actions if isinstance(a, RingTransferor)]


# -- apologize ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("how", "status", "cause"), FAILURES)
def test_apologize(direction, how, status, cause):
    conv = blind_ringing(direction, rule="apologize")
    actions = fail_b(conv, how, status)
    head = [CancelLeg(B1)] if how == "timer" else [CancelTimer("no_answer")]
    assert norm(actions) == [*head, StopMedia(CLIENT), PlayPrompt(CLIENT, "transfer_apology"),
                             StartTimer("prompt", 60.0)]
    actions = conv.handle(PromptFinished(CLIENT, "transfer_apology"))
    assert outcome(actions) == failed(cause, FallbackRule.APOLOGIZE, "apology")
    assert actions[-3:] == [EndLeg(CLIENT, "transfer_failed"), FREE, EndConversation("transfer_failed")]


def test_apology_guard_timer_ends_the_call_if_the_prompt_never_reports(direction):
    conv = blind_ringing(direction, rule="apologize")
    conv.handle(LegFailed(B1, 486))
    actions = fire(conv, "prompt")
    assert actions[-3:] == [EndLeg(CLIENT, "transfer_failed"), FREE, EndConversation("transfer_failed")]


def test_client_hangs_up_during_the_apology(direction):
    conv = blind_ringing(direction, rule="apologize")
    conv.handle(LegFailed(B1, 486))
    actions = conv.handle(LegHungUp(CLIENT))
    assert norm(actions) == [
        failed("busy", FallbackRule.APOLOGIZE, "client_hung_up"),
        CancelTimer("prompt"),
        FREE,
        EndConversation("client_hung_up"),
    ]


# -- voicemail -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("how", "status", "cause"), FAILURES)
def test_voicemail(direction, how, status, cause):
    conv = blind_ringing(direction, rule="voicemail", voicemail_max_s=90)
    actions = fail_b(conv, how, status)
    assert norm(actions)[-3:] == [StopMedia(CLIENT), PlayPrompt(CLIENT, "voicemail_greeting"),
                                  StartTimer("prompt", 60.0)]
    assert conv.effective_state is T.VOICEMAIL_GREETING
    actions = conv.handle(PromptFinished(CLIENT, "voicemail_greeting"))
    assert norm(actions) == [CancelTimer("prompt"), PlayPrompt(CLIENT, "beep"), StartTimer("prompt", 60.0)]
    actions = conv.handle(PromptFinished(CLIENT, "beep"))
    # the client, blocked while on hold, must be heard by the recorder
    assert norm(actions) == [CancelTimer("prompt"), UnblockMedia(CLIENT, A), StartRecording(CLIENT, "201"),
                             StartTimer("recording", 90)]
    assert conv.effective_state is T.VOICEMAIL_RECORDING
    actions = conv.handle(LegHungUp(CLIENT))
    assert norm(actions) == [
        failed(cause, FallbackRule.VOICEMAIL, "voicemail"),
        CancelTimer("recording"),
        StopRecording(CLIENT),
        FREE,
        EndConversation("client_hung_up"),
    ]


def test_voicemail_max_length(direction):
    conv = blind_ringing(direction, rule="voicemail")
    conv.handle(LegFailed(B1, 486))
    conv.handle(PromptFinished(CLIENT, "voicemail_greeting"))
    conv.handle(PromptFinished(CLIENT, "beep"))
    actions = fire(conv, "recording")
    assert actions == [
        failed("busy", FallbackRule.VOICEMAIL, "voicemail"),
        StopRecording(CLIENT),
        EndLeg(CLIENT, "voicemail_max_length"),
        FREE,
        EndConversation("voicemail_max_length"),
    ]


def test_voicemail_greeting_guard_starts_recording(direction):
    conv = blind_ringing(direction, rule="voicemail")
    conv.handle(LegFailed(B1, 486))
    actions = fire(conv, "prompt")
    assert norm(actions) == [StopMedia(CLIENT), UnblockMedia(CLIENT, A), StartRecording(CLIENT, "201"),
                             StartTimer("recording", 120.0)]


# -- A still on the line: always reconnected ----------------------------------------------------------


@pytest.mark.parametrize("rule", list(FallbackRule))
def test_rule_does_not_apply_while_a_is_on_the_line(direction, rule):
    conv = conversation(direction, rule=rule)
    to_ringing(conv)
    actions = conv.handle(LegFailed(B1, 486))
    assert outcome(actions).kind is OutcomeKind.RETURNED
    assert outcome(actions).rule is None
    assert conv.state is C.TALKING and conv.transferor_leg == A


def test_warning_prompts_while_a_is_on_the_line(direction):
    conv = conversation(direction, warn_transferor_prompt="warn_a", warn_client_prompt="warn_c")
    to_ringing(conv)
    conv.handle(LegRinging(B1))
    actions = conv.handle(LegFailed(B1, 486))
    assert norm(actions) == [
        CancelTimer("no_answer"),
        StopMedia(A),
        PlayPrompt(A, "warn_a"),
        StopMedia(CLIENT),
        PlayPrompt(CLIENT, "warn_c"),
        StartTimer("prompt", 60.0),
    ]
    assert conv.effective_state is T.RECONNECTING
    assert conv.handle(PromptFinished(A, "warn_a")) == []
    actions = conv.handle(PromptFinished(CLIENT, "warn_c"))
    assert norm(actions) == [
        CancelTimer("prompt"),
        UnblockMedia(A, CLIENT),
        UnblockMedia(CLIENT, A),
        returned("busy", None, "transferor_on_line"),
        FREE,
    ]


def test_warning_prompt_guard_reconnects(direction):
    conv = conversation(direction, warn_client_prompt="warn_c")
    to_ringing(conv)
    conv.handle(LegFailed(B1, 486))
    actions = fire(conv, "prompt")
    assert actions == [StopMedia(CLIENT), UnblockMedia(A, CLIENT), UnblockMedia(CLIENT, A),
                       returned("busy", None, "transferor_on_line"), FREE]


@pytest.mark.parametrize(
    ("rule", "expected_state"),
    [("return_to_transferor", T.APOLOGIZING), ("apologize", T.APOLOGIZING), ("voicemail", T.VOICEMAIL_GREETING)],
)
def test_a_leaves_during_the_warning_then_the_rule_applies(direction, rule, expected_state):
    conv = conversation(direction, rule=rule, warn_transferor_prompt="warn_a")
    to_ringing(conv)
    conv.handle(LegFailed(B1, 486))
    conv.handle(LegHungUp(A))
    assert conv.effective_state is expected_state


def test_a_leaves_during_the_warning_with_return_to_origin(direction):
    conv = conversation(direction, return_to_origin=True, warn_transferor_prompt="warn_a",
                        warn_client_prompt="warn_c")
    to_ringing(conv)
    conv.handle(LegFailed(B1, 486))
    actions = conv.handle(LegHungUp(A))
    # the client was reconnected to A for the warning: the music comes back while the origin is tried
    assert norm(actions)[-3:] == [PlayHoldMusic(CLIENT, "default"), ResolveOrigin("t1", ORIGIN),
                                  StartTimer("resolve", 5.0)]
    assert conv.effective_state is T.ROUTING_TO_ORIGIN


# -- resolution failures after A left -------------------------------------------------------------------


RULE_LANDINGS = [
    ({"rule": "return_to_transferor"}, A_NO, T.RINGING_TRANSFEROR),
    ({"rule": "apologize"}, A_NO, T.APOLOGIZING),
    ({"rule": "voicemail"}, A_NO, T.VOICEMAIL_GREETING),
    ({"rule": "return_to_transferor", "return_to_origin": True}, None, T.ROUTING_TO_ORIGIN),  # nobody to recall
]


@pytest.mark.parametrize(("policy", "a_number", "landing"), RULE_LANDINGS)
@pytest.mark.parametrize("answer", ["rejected", "timeout", "self", "empty"])
def test_resolution_failure_after_a_left_uses_the_rule(direction, answer, policy, a_number, landing):
    conv = start(direction, settings=make_settings(direction, FallbackPolicy(**policy)), transferor_number=a_number)
    to_resolving(conv, "55")
    conv.handle(LegHungUp(A))
    if answer == "rejected":
        actions = conv.handle(TargetRejected("t1", "unknown_number"))
    elif answer == "timeout":
        actions = fire(conv, "resolve")
    elif answer == "self":
        actions = conv.handle(TargetResolved("t1", (CLIENT_NO,)))
    else:
        actions = conv.handle(TargetResolved("t1", ()))
    assert conv.effective_state is landing
    cause = "unreachable" if answer == "empty" else "invalid_target"
    if landing is T.ROUTING_TO_ORIGIN:
        assert ResolveOrigin("t1", ORIGIN) in actions
    assert conv.transfer.cause == cause


def test_nobody_to_ring_while_a_waits_with_warnings(direction):
    conv = conversation(direction, warn_transferor_prompt="warn_a")
    to_resolving(conv, "55")
    actions = conv.handle(TargetResolved("t1", ()))
    assert PlayPrompt(A, "warn_a") in actions
    assert conv.effective_state is T.RECONNECTING


def test_no_answer_while_a_waits_with_warnings(direction):
    conv = conversation(direction, warn_client_prompt="warn_c")
    to_ringing(conv)
    actions = fire(conv, "no_answer")
    assert norm(actions) == [
        CancelLeg(B1),
        StopMedia(CLIENT),
        PlayPrompt(CLIENT, "warn_c"),
        StartTimer("prompt", 60.0),
    ]
    assert conv.effective_state is T.RECONNECTING


def test_blind_no_answer_without_anyone_to_recall_goes_to_origin(direction):
    settings = make_settings(direction, FallbackPolicy(return_to_origin=True))
    conv = start(direction, settings=settings, transferor_number=None)
    to_ringing(conv)
    conv.handle(LegHungUp(A))
    actions = fire(conv, "no_answer")
    assert norm(actions) == [CancelLeg(B1), ResolveOrigin("t1", ORIGIN), StartTimer("resolve", 5.0)]


def test_blind_department_keeps_ringing_the_others(direction):
    conv = conversation(direction)
    to_ringing(conv, ("201", "202"), TargetKind.DEPARTMENT, number="55")
    conv.handle(LegHungUp(A))
    assert conv.handle(LegFailed(B1, 486)) == []
    assert conv.effective_state is T.BLIND_RINGING
    conv.handle(LegAnswered(leg_b(2)))
    assert conv.state is C.TALKING and conv.transferor_leg == leg_b(2)
