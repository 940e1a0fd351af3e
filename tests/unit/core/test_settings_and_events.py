"""Settings snapshot, SIP status mapping and event validation."""

from __future__ import annotations

import json

import pytest

from controller.core import (
    CallerIdPolicy,
    ConversationStarted,
    DigitPressed,
    Direction,
    FailureCause,
    FallbackPolicy,
    FallbackRule,
    LegFailed,
    Prompts,
    RecordOutcome,
    Settings,
    TalkOptions,
    TargetResolved,
    TransferRequested,
    failure_cause,
)
from controller.core.sip import aggregate_cause, is_global_failure
from controller.core.types import OutcomeKind, TransferTrigger


def test_defaults():
    s = Settings()
    assert (s.talk_options.transfer, s.talk_options.back, s.talk_options.conference) == ("#", "*", "#")
    assert s.no_answer_timeout_s == 20
    assert s.caller_id_policy is CallerIdPolicy.DID
    assert s.fallback_incoming.rule is FallbackRule.RETURN_TO_TRANSFEROR
    assert s.fallback_outgoing.rule is FallbackRule.RETURN_TO_TRANSFEROR


@pytest.mark.parametrize(
    "kwargs",
    [
        {"transfer": ""},
        {"transfer": "1"},  # would swallow dialled digits
        {"back": "*x"},
        {"conference": "#####"},
        {"back": "*", "conference": "*1"},  # prefix of each other while consulting
        {"back": "#1", "conference": "#"},
    ],
)
def test_talk_option_validation(kwargs):
    with pytest.raises(ValueError):
        TalkOptions(**kwargs)


def test_multi_symbol_keys_allowed():
    TalkOptions(transfer="*2", back="##", conference="*3")


@pytest.mark.parametrize(
    "kwargs",
    [{"no_answer_timeout_s": 0}, {"interdigit_timeout_s": -1}, {"max_number_length": 0}],
)
def test_settings_validation(kwargs):
    with pytest.raises(ValueError):
        Settings(**kwargs)


def test_fallback_policy_validation_and_coercion():
    assert FallbackPolicy(rule="voicemail").rule is FallbackRule.VOICEMAIL
    with pytest.raises(ValueError):
        FallbackPolicy(rule="shrug")
    with pytest.raises(ValueError):
        FallbackPolicy(voicemail_max_s=0)


def test_fallback_is_per_direction():
    s = Settings(fallback_incoming=FallbackPolicy(rule="apologize"), fallback_outgoing=FallbackPolicy(rule="voicemail"))
    assert s.fallback_for(Direction.INCOMING).rule is FallbackRule.APOLOGIZE
    assert s.fallback_for("outgoing").rule is FallbackRule.VOICEMAIL


def test_number_is_complete():
    s = Settings(known_extensions=frozenset({"201", "300", "3001", "42"}))
    assert s.number_is_complete("201")
    assert s.number_is_complete("42")
    assert not s.number_is_complete("300")  # 3001 starts with it
    assert s.number_is_complete("3001")
    assert not s.number_is_complete("20")
    assert not s.number_is_complete("2011")


def test_settings_round_trip_is_json_safe():
    s = Settings(
        talk_options=TalkOptions(transfer="*2", back="##", conference="*3"),
        caller_id_policy="client",
        company_number="+4930",
        fallback_incoming=FallbackPolicy(rule="voicemail", voicemail_max_s=30),
        fallback_outgoing=FallbackPolicy(return_to_origin=True, warn_transferor_prompt="w1", warn_client_prompt="w2"),
        known_extensions=frozenset({"2", "1"}),
        prompts=Prompts(apology="sorry"),
    )
    d = json.loads(json.dumps(s.to_dict()))
    assert Settings.from_dict(d) == s


@pytest.mark.parametrize(
    ("status", "cause"),
    [
        (486, FailureCause.BUSY),
        (600, FailureCause.BUSY),
        (603, FailureCause.REJECTED),
        (607, FailureCause.REJECTED),
        (408, FailureCause.UNREACHABLE),
        (480, FailureCause.UNREACHABLE),
        (503, FailureCause.UNREACHABLE),
        (404, FailureCause.UNREACHABLE),
        (487, FailureCause.UNREACHABLE),
        (0, FailureCause.UNREACHABLE),
    ],
)
def test_failure_cause(status, cause):
    assert failure_cause(status) is cause


def test_global_failure_and_aggregation():
    assert is_global_failure(600) and is_global_failure(603)
    assert not is_global_failure(486)
    B, R, U = FailureCause.BUSY, FailureCause.REJECTED, FailureCause.UNREACHABLE
    assert aggregate_cause([U, B]) is B
    assert aggregate_cause([B, R, U]) is R
    assert aggregate_cause([U]) is U
    assert aggregate_cause([]) is U


def test_event_validation():
    with pytest.raises(ValueError):
        DigitPressed("a", "x")
    with pytest.raises(ValueError):
        DigitPressed("a", "12")
    with pytest.raises(ValueError):
        TransferRequested("")
    with pytest.raises(ValueError):
        LegFailed("b", 200)
    with pytest.raises(ValueError):
        ConversationStarted("incoming", "same", "same")
    with pytest.raises(ValueError):
        ConversationStarted("sideways", "a", "b")
    assert TargetResolved("t1", ["201"]).targets == ("201",)
    assert TransferRequested("201", "refer").trigger is TransferTrigger.REFER


def test_record_outcome_fields_are_json_safe():
    entry = RecordOutcome(
        "t1", OutcomeKind.FAILED, "201", TransferTrigger.REFER, "busy", FallbackRule.VOICEMAIL, "voicemail"
    )
    assert json.loads(json.dumps(entry.fields())) == {
        "transfer_id": "t1",
        "kind": "failed",
        "number": "201",
        "trigger": "refer",
        "cause": "busy",
        "rule": "voicemail",
        "mode": "voicemail",
    }
