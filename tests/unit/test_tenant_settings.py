"""A tenant's configuration mapped onto the state machine's settings snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import Prompt, load_config
from controller.core import FallbackRule
from controller.tenant_settings import PromptSource, prompt_name, prompt_source, settings_for

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
    assert incoming.fallback_incoming.warn_transferor_prompt == "system:transfer_failed_warn_transferor"
    assert incoming.fallback_incoming.warn_client_prompt == "system:transfer_failed_warn_client"
    # the apology of the conversation's own direction is the tenant's text
    assert prompt_source(outgoing.prompts.apology) == PromptSource("tts", "Sorry, the transfer failed. Goodbye.", "en",
                                                                   "transfer_apology")
    assert incoming.prompts.apology == "system:transfer_apology"


def test_talk_options_caller_id_and_extensions(config) -> None:
    acme = config.tenants["acme"]
    s = settings_for(config, acme, "incoming")
    assert (s.talk_options.transfer, s.talk_options.back, s.talk_options.conference) == ("#", "*", "#")
    assert s.interdigit_timeout_s == acme.talk_options.interdigit_timeout_ms / 1000
    assert s.caller_id_policy.value == acme.caller_id.policy and s.company_number == acme.company_number
    assert s.known_extensions == frozenset(acme.extensions)
    assert s.hold_music == "system:default"


@pytest.mark.parametrize(("prompt", "expected"), [
    (Prompt(source="system"), PromptSource("system", "fallback")),
    (Prompt(source="tts", text="Добрый день: ждите", voice="ru"),
     PromptSource("tts", "Добрый день: ждите", "ru", "fallback")),
])
def test_prompt_names_round_trip(prompt: Prompt, expected: PromptSource) -> None:
    assert prompt_source(prompt_name(prompt, "fallback")) == expected


def test_file_prompt_name_keeps_the_path_and_the_fallback(tmp_path: Path) -> None:
    audio = tmp_path / "hello: world.wav"
    audio.write_bytes(b"RIFF")
    assert prompt_source(prompt_name(Prompt(source="file", file=audio), "x")) == PromptSource("file", str(audio),
                                                                                               fallback="x")


def test_a_bare_machine_prompt_name_is_a_system_prompt() -> None:
    assert prompt_source("beep") == PromptSource("system", "beep")
