"""Map a tenant's configuration onto the state machine's settings snapshot (pure).

Prompt and music names the machine passes around are opaque strings; we encode where the audio comes
from in them, and `prompt_source()` decodes them when the service plays one:
  system:<name>                  a system tone or announcement (controller.adapters.prompts)
  tts:<fallback>:<voice>:<text>  the tenant's text, spoken by espeak-ng
  file:<fallback>:<path>         the tenant's own audio file
<fallback> is the system prompt played instead when the tenant's audio cannot be produced.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.config import Config, Prompt, Tenant, TransferRule
from controller.core import FallbackPolicy, FallbackRule, Prompts, Settings
from controller.core.types import Direction


@dataclass(frozen=True)
class PromptSource:
    kind: str  # system | tts | file
    detail: str  # the system name, the text, or the path
    voice: str = ""
    fallback: str = ""  # system prompt to play when the tenant's audio cannot be produced


def prompt_name(prompt: Prompt, system_name: str) -> str:
    if prompt.source == "file" and prompt.file is not None:
        return f"file:{system_name}:{prompt.file}"
    if prompt.source == "tts" and prompt.text:
        return f"tts:{system_name}:{prompt.voice}:{prompt.text}"
    return f"system:{system_name}"


def prompt_source(name: str) -> PromptSource:
    kind, _, rest = name.partition(":")
    if kind == "tts":
        fallback, voice, text = rest.split(":", 2)
        return PromptSource("tts", text, voice, fallback)
    if kind == "file":
        fallback, _, path = rest.partition(":")
        return PromptSource("file", path, fallback=fallback)
    if kind == "system":
        return PromptSource("system", rest)
    return PromptSource("system", name)  # a bare name from the machine's defaults


def _fallback(rule: TransferRule) -> FallbackPolicy:
    warn = rule.on_failure is FallbackRule.RETURN_TO_TRANSFEROR
    return FallbackPolicy(
        rule=rule.on_failure,
        return_to_origin=rule.return_to_origin,
        warn_transferor_prompt="system:transfer_failed_warn_transferor" if warn and rule.warn_transferor else None,
        warn_client_prompt="system:transfer_failed_warn_client" if warn and rule.warn_client else None,
        transferor_ring_timeout_s=float(rule.no_answer_timeout_s),
        voicemail_max_s=float(rule.voicemail_max_s),
    )


def settings_for(config: Config, tenant: Tenant, direction: Direction | str) -> Settings:
    """The snapshot a new conversation of `tenant` in `direction` runs with: the one place where the
    configuration's types become the state machine's (tests/unit/test_tenant_settings.py checks that
    every Settings field is mapped)."""
    rules = tenant.transfer_rules
    current = rules.for_direction(direction)
    talk = tenant.talk_options
    return Settings(
        talk_options=talk.core(),
        first_digit_timeout_s=talk.first_digit_timeout_ms / 1000,
        interdigit_timeout_s=talk.interdigit_timeout_ms / 1000,
        resolve_timeout_s=talk.resolve_timeout_ms / 1000,
        no_answer_timeout_s=float(current.no_answer_timeout_s),
        prompt_guard_s=current.prompt_guard_ms / 1000,
        caller_id_policy=tenant.caller_id.policy,
        company_number=tenant.company_number,
        fallback_incoming=_fallback(rules.incoming),
        fallback_outgoing=_fallback(rules.outgoing),
        known_extensions=frozenset(tenant.extensions),
        pass_other_digits=talk.other_digits == "pass",
        hold_music=f"file:default:{tenant.hold_music}" if tenant.hold_music else "system:default",
        prompts=Prompts(
            unknown_number="system:transfer_unknown_number",
            forbidden="system:transfer_forbidden",
            transfer_error="system:transfer_error",
            apology=prompt_name(current.apology, "transfer_apology"),
            voicemail_greeting=prompt_name(current.voicemail_greeting, "voicemail_greeting"),
            beep="system:beep",
        ),
        max_number_length=talk.max_digits,
    )
