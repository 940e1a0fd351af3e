"""Settings snapshot, SIP status mapping and event validation."""

from __future__ import annotations

import json
import re

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
    PlayPrompt,
    PromptFinished,
    PromptKind,
    PromptRef,
    Prompts,
    RecordOutcome,
    Settings,
    TalkOptions,
    TargetResolved,
    TransferRequested,
    failure_cause,
)
from controller.core.sip import aggregate_cause, is_global_failure
from controller.core.snapshot import decode, encode
from controller.core.types import OutcomeCause, OutcomeKind, OutcomeMode, TimerPurpose, TransferTrigger


def test_defaults():
    s = Settings()
    # no mixer yet: the conference key is off
    assert (s.talk_options.transfer, s.talk_options.back, s.talk_options.conference) == ("#", "*", "#")
    assert s.no_answer_timeout_s == 20
    assert s.interdigit_timeout_s == 2.5  # the configuration's default, 2,500 ms
    assert s.hold_music == PromptRef.system("default")
    assert s.prompts.beep == PromptRef(PromptKind.SYSTEM, "beep")
    assert s.prompts.apology.name == "transfer_apology"
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


@pytest.mark.parametrize(("field", "key"), [("transfer", "5"), ("back", "*x"), ("conference", "")])
def test_talk_option_errors_name_the_field(field, key):
    with pytest.raises(ValueError, match=re.escape(f"talk option {field}={key!r}: ")):
        TalkOptions(**{field: key})


def test_prompt_refs():
    assert PromptRef.system("beep") == PromptRef.parse("beep") == PromptRef.parse("system:beep")
    file = PromptRef.parse("file:transfer_apology:/srv/sorry.wav")
    assert (file.kind, file.name, file.path) == (PromptKind.FILE, "transfer_apology", "/srv/sorry.wav")
    assert str(file) == "file:transfer_apology:/srv/sorry.wav"
    tts = PromptRef.tts("beep", "Bitte warten", voice="de-1")
    assert (tts.kind, tts.text, tts.voice) == (PromptKind.TTS, "Bitte warten", "de-1")
    with pytest.raises(ValueError):
        PromptRef(PromptKind.FILE, "beep")  # no path
    with pytest.raises(ValueError):
        PromptRef.system("")
    # plain strings are system prompts' names wherever a PromptRef is expected
    assert FallbackPolicy(warn_client_prompt="w").warn_client_prompt == PromptRef.system("w")
    assert Settings(hold_music="file:default:/srv/hold.wav").hold_music.path == "/srv/hold.wav"
    assert PlayPrompt("a", "beep").prompt == PromptRef.system("beep")
    assert PromptFinished("a", "beep") == PromptFinished("a", PromptRef.system("beep"))


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
    d = json.loads(json.dumps(encode(s)))
    assert decode(Settings, d) == s
    assert d["prompts"]["apology"] == {"kind": "system", "name": "sorry", "voice": None, "text": None, "path": None}
    assert d["known_extensions"] == ["1", "2"]  # sets are written sorted
    assert decode(Settings, encode(Settings())) == Settings()
    assert decode(TalkOptions, {"transfer": "#"}) == TalkOptions()  # a field left out takes its default


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
        "t1", OutcomeKind.FAILED, "201", TransferTrigger.REFER, FailureCause.BUSY, FallbackRule.VOICEMAIL,
        OutcomeMode.VOICEMAIL,
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


def test_enums_keep_the_strings_of_the_event_log():
    assert str(OutcomeCause.TOO_LONG) == "too_long" and OutcomeCause.SELF_TARGET == "self_target"
    assert {m.value for m in OutcomeMode} == {"attended", "blind", "transferor_on_line", "recalled", "apology",
                                              "voicemail", "origin", "client_hung_up", "far_end"}
    assert {m.value for m in TimerPurpose} == {"interdigit", "resolve", "no_answer", "recall", "prompt", "recording"}
