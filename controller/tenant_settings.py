"""Map a tenant's configuration onto the state machine's settings snapshot (pure).

Audio is named by the core's PromptRef: a system prompt, or the tenant's text (spoken by espeak-ng) or
file, each with the system prompt played instead when the tenant's audio cannot be produced.
"""

from __future__ import annotations

from controller.config import Config, Prompt, Tenant, TransferRule
from controller.core import FallbackPolicy, FallbackRule, PromptRef, Prompts, Settings
from controller.core.prompts import DEFAULT_MUSIC
from controller.core.types import Direction


def prompt_ref(prompt: Prompt, system_name: str) -> PromptRef:
    """A tenant's prompt setting; the system prompt `system_name` when it has no audio of its own."""
    if prompt.source == "file" and prompt.file is not None:
        return PromptRef.file(system_name, str(prompt.file))
    if prompt.source == "tts" and prompt.text:
        return PromptRef.tts(system_name, prompt.text, prompt.voice)
    return PromptRef.system(system_name)


def _fallback(rule: TransferRule) -> FallbackPolicy:
    warn = rule.on_failure is FallbackRule.RETURN_TO_TRANSFEROR
    return FallbackPolicy(
        rule=rule.on_failure,
        return_to_origin=rule.return_to_origin,
        warn_transferor_prompt=PromptRef.system("transfer_failed_warn_transferor") if warn and rule.warn_transferor
        else None,
        warn_client_prompt=PromptRef.system("transfer_failed_warn_client") if warn and rule.warn_client else None,
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
        hold_music=PromptRef.file("default", str(tenant.hold_music)) if tenant.hold_music else DEFAULT_MUSIC,
        prompts=Prompts(
            unknown_number=PromptRef.system("transfer_unknown_number"),
            forbidden=PromptRef.system("transfer_forbidden"),
            transfer_error=PromptRef.system("transfer_error"),
            apology=prompt_ref(current.apology, "transfer_apology"),
            voicemail_greeting=prompt_ref(current.voicemail_greeting, "voicemail_greeting"),
            beep=PromptRef.system("beep"),
        ),
        max_number_length=talk.max_digits,
    )
