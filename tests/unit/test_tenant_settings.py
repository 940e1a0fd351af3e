"""A tenant's configuration mapped onto the state machine's settings snapshot."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.config import Config, Prompt, Tenant, load_config, parse_config
from controller.core import FallbackPolicy, FallbackRule, PromptRef, Prompts, Settings, TalkOptions
from controller.core.types import CallerIdPolicy, Direction
from controller.tenant_settings import prompt_ref, settings_for

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"


@pytest.fixture(scope="module")
def config():
    return load_config(EXAMPLE)


def test_incoming_and_outgoing_get_their_own_rule(config) -> None:
    acme = config.tenants["acme"]
    incoming, outgoing = settings_for(config, acme, "incoming"), settings_for(config, acme, "outgoing")
    assert incoming.fallback_incoming.rule is FallbackRule.RETURN_TO_TRANSFEROR
    assert outgoing.fallback_outgoing.rule is FallbackRule.APOLOGIZE
    # the example turns both warnings on for incoming calls
    assert incoming.fallback_incoming.warn_transferor_prompt == PromptRef.system("transfer_failed_warn_transferor")
    assert incoming.fallback_incoming.warn_client_prompt == PromptRef.system("transfer_failed_warn_client")
    # the apology of the conversation's own direction is the tenant's text
    assert outgoing.prompts.apology == PromptRef.tts("transfer_apology", "Sorry, the transfer failed. Goodbye.", "en")
    assert incoming.prompts.apology == PromptRef.system("transfer_apology")


def test_talk_options_caller_id_and_extensions(config) -> None:
    acme = config.tenants["acme"]
    s = settings_for(config, acme, "incoming")
    # the example has no conference key: the core's own "off" (its default)
    assert (s.talk_options.transfer, s.talk_options.back, s.talk_options.conference) == (
        "#", "*", TalkOptions().conference)
    assert s.interdigit_timeout_s == acme.talk_options.interdigit_timeout_ms / 1000
    assert s.caller_id_policy.value == acme.caller_id.policy and s.company_number == acme.company_number
    assert s.known_extensions == frozenset(acme.extensions)
    assert s.hold_music == PromptRef.system("default")


@pytest.mark.parametrize(("prompt", "expected"), [
    (Prompt(source="system"), PromptRef.system("fallback")),
    (Prompt(source="tts", text="Добрый день: ждите", voice="ru"),
     PromptRef.tts("fallback", "Добрый день: ждите", "ru")),
])
def test_prompt_settings_become_prompt_refs(prompt: Prompt, expected: PromptRef) -> None:
    assert prompt_ref(prompt, "fallback") == expected


def test_a_file_prompt_keeps_its_path_and_the_fallback(tmp_path: Path) -> None:
    audio = tmp_path / "hello: world.wav"
    audio.write_bytes(b"RIFF")
    assert prompt_ref(Prompt(source="file", file=audio), "x") == PromptRef.file("x", str(audio))


# -- every Settings field is mapped from the configuration ---------------------------------------

def _everything_set(tmp_path: Path) -> tuple[Config, Tenant]:
    """A tenant in which every setting differs from the core's default."""
    music = tmp_path / "music.wav"
    music.write_bytes(b"RIFF")
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    acme = data["tenants"]["acme"]
    acme["caller_id"] = {"policy": "company"}
    acme["hold_music"] = str(music)
    acme["talk_options"] = {"transfer": "*9", "return": "#1", "conference": "A", "first_digit_timeout_ms": 7000,
                            "interdigit_timeout_ms": 3100, "resolve_timeout_ms": 2200, "max_digits": 17,
                            "other_digits": "absorb"}
    acme["transfer_rules"] = {
        "incoming": {"no_answer_timeout_s": 33, "on_failure": "return_to_transferor", "return_to_origin": True,
                     "warn_transferor": True, "warn_client": True, "prompt_guard_ms": 45000, "voicemail_max_s": 99,
                     "apology": {"source": "tts", "text": "in", "voice": "ru"}},
        "outgoing": {"no_answer_timeout_s": 44, "on_failure": "voicemail", "prompt_guard_ms": 55000,
                     "voicemail_max_s": 77, "voicemail_greeting": {"source": "tts", "text": "out"}},
    }
    config = parse_config(data, base_dir=EXAMPLE.parent)
    return config, config.tenants["acme"]


def _fallback(rule: Any) -> FallbackPolicy:
    returns = rule.on_failure is FallbackRule.RETURN_TO_TRANSFEROR
    return FallbackPolicy(
        rule=rule.on_failure, return_to_origin=rule.return_to_origin,
        warn_transferor_prompt="system:transfer_failed_warn_transferor" if returns and rule.warn_transferor else None,
        warn_client_prompt="system:transfer_failed_warn_client" if returns and rule.warn_client else None,
        transferor_ring_timeout_s=rule.no_answer_timeout_s, voicemail_max_s=rule.voicemail_max_s)


#: Settings field -> what it must be, from the tenant and the conversation's direction.
EXPECTED: dict[str, Callable[[Tenant, Direction], Any]] = {
    "talk_options": lambda t, d: TalkOptions(transfer=t.talk_options.transfer, back=t.talk_options.return_,
                                             conference=t.talk_options.conference),
    "first_digit_timeout_s": lambda t, d: t.talk_options.first_digit_timeout_ms / 1000,
    "interdigit_timeout_s": lambda t, d: t.talk_options.interdigit_timeout_ms / 1000,
    "resolve_timeout_s": lambda t, d: t.talk_options.resolve_timeout_ms / 1000,
    "no_answer_timeout_s": lambda t, d: t.transfer_rules.for_direction(d).no_answer_timeout_s,
    "prompt_guard_s": lambda t, d: t.transfer_rules.for_direction(d).prompt_guard_ms / 1000,
    "caller_id_policy": lambda t, d: t.caller_id.policy,
    "company_number": lambda t, d: t.company_number,
    "fallback_incoming": lambda t, d: _fallback(t.transfer_rules.incoming),
    "fallback_outgoing": lambda t, d: _fallback(t.transfer_rules.outgoing),
    "known_extensions": lambda t, d: frozenset(t.extensions),
    "hold_music": lambda t, d: PromptRef.file("default", str(t.hold_music)),
    "prompts": lambda t, d: Prompts(
        unknown_number=PromptRef.system("transfer_unknown_number"), forbidden=PromptRef.system("transfer_forbidden"),
        transfer_error=PromptRef.system("transfer_error"),
        apology=prompt_ref(t.transfer_rules.for_direction(d).apology, "transfer_apology"),
        voicemail_greeting=prompt_ref(t.transfer_rules.for_direction(d).voicemail_greeting, "voicemail_greeting"),
        beep=PromptRef.system("beep")),
    "max_number_length": lambda t, d: t.talk_options.max_digits,
    "pass_other_digits": lambda t, d: t.talk_options.other_digits == "pass",
}


#: Announcements a tenant cannot replace (short error prompts and the beep).
SYSTEM_ONLY_PROMPTS = {"unknown_number", "forbidden", "transfer_error", "beep"}


def test_every_core_settings_field_has_a_mapping() -> None:
    """A new field in controller.core.settings.Settings fails here until settings_for maps it."""
    assert {f.name for f in dataclasses.fields(Settings)} == set(EXPECTED)


@pytest.mark.parametrize("direction", list(Direction))
def test_settings_for_maps_every_field(tmp_path: Path, direction: Direction) -> None:
    config, tenant = _everything_set(tmp_path)
    got, default = settings_for(config, tenant, direction), Settings()
    for name, expected in EXPECTED.items():
        assert getattr(got, name) == expected(tenant, direction), name
        # every value comes from the configuration, none is the core's default left in place
        assert getattr(got, name) != getattr(default, name), name
    assert got.caller_id_policy is CallerIdPolicy.COMPANY


@pytest.mark.parametrize("cls", [TalkOptions, FallbackPolicy, Prompts])
def test_every_field_of_the_nested_settings_differs_from_its_default(tmp_path: Path, cls: type) -> None:
    config, tenant = _everything_set(tmp_path)
    got = settings_for(config, tenant, Direction.INCOMING)
    parts = {TalkOptions: [got.talk_options], FallbackPolicy: [got.fallback_incoming, got.fallback_outgoing],
             # each direction has its own apology and greeting: the two conversations' prompts together
             Prompts: [got.prompts, settings_for(config, tenant, Direction.OUTGOING).prompts]}[cls]
    for field in dataclasses.fields(cls):
        if cls is Prompts and field.name in SYSTEM_ONLY_PROMPTS:
            # no setting for these: every tenant hears the system's own
            assert all(getattr(part, field.name) == getattr(cls(), field.name) for part in parts), field.name
            continue
        assert any(getattr(part, field.name) != getattr(cls(), field.name) for part in parts), field.name


def test_the_defaults_map_onto_the_core_defaults() -> None:
    """A tenant that sets nothing runs with the core's defaults (apart from names the mapping encodes)."""
    config = parse_config({"trunks": {"t": {"address": "10.0.0.1"}},
                           "tenants": {"x": {"domain": "x.test", "company_number": "123", "outbound_trunk": "t"}}})
    got, default = settings_for(config, config.tenants["x"], "incoming"), Settings()
    encoded = {"company_number", "known_extensions", "hold_music", "prompts"}
    for field in dataclasses.fields(Settings):
        if field.name not in encoded:
            assert getattr(got, field.name) == getattr(default, field.name), field.name
