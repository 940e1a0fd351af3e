"""The tenant settings the machine needs, as a frozen snapshot.

The service maps the project's configuration onto :class:`Settings` when a
conversation starts (prompts and hold music as
:class:`~controller.core.prompts.PromptRef`); the snapshot is stored inside
the conversation (encoded by :mod:`controller.core.snapshot`) so that a
configuration change never alters a call that is already running, and a
restarted controller continues with exactly the settings the call began with.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from .prompts import DEFAULT_MUSIC, PromptRef, as_prompt
from .types import CallerIdPolicy, Direction, FallbackRule

__all__ = ["DTMF_ALPHABET", "FallbackPolicy", "Prompts", "Settings", "TalkOptions"]

#: Every symbol a telephone keypad can send (RFC 4733 events 0-15).
DTMF_ALPHABET = frozenset("0123456789*#ABCD")
#: Talk-option keys must start with one of these so they never collide with a dialled number.
_KEY_START = frozenset("*#ABCD")


@dataclass(frozen=True)
class TalkOptions:
    """Key sequences A can press during a call.

    A key is a short DTMF string (``"#"``, ``"*2"``...) starting with ``*``, ``#``
    or ``A``-``D``.  ``back`` and ``conference`` are both active while A consults
    B, so neither may be a prefix of the other.  ``conference`` (``#`` again after B
    answered) may be ``None``: a tenant without a conference key; its digits are
    then ordinary digits (passed on per ``Settings.pass_other_digits``).
    """

    transfer: str = "#"
    back: str = "*"
    conference: str | None = "#"

    def __post_init__(self) -> None:
        for name in ("transfer", "back", "conference"):
            key = getattr(self, name)
            if key is None and name == "conference":
                continue
            if (not isinstance(key, str) or not key or len(key) > 4 or not set(key) <= DTMF_ALPHABET
                    or key[0] not in _KEY_START):
                raise ValueError(f"talk option {name}={key!r}: 1-4 DTMF symbols starting with *, # or A-D")
        if self.conference is not None and (
            self.back.startswith(self.conference) or self.conference.startswith(self.back)
        ):
            raise ValueError("talk options 'back' and 'conference' must not be prefixes of each other")


@dataclass(frozen=True)
class FallbackPolicy:
    """What to do when B fails, for one conversation direction.

    ``rule`` applies once A has left (blind transfer); while A is still on the
    line A is always reconnected (A is in control and may try again).
    """

    rule: FallbackRule = FallbackRule.RETURN_TO_TRANSFEROR
    #: ``return_to_transferor`` only: if A does not answer either, route the client to ``origin``.
    return_to_origin: bool = False
    #: Optional prompts played before A and the client are reconnected after a failure.
    warn_transferor_prompt: PromptRef | None = None
    warn_client_prompt: PromptRef | None = None
    #: How long A is rung again.
    transferor_ring_timeout_s: float = 20.0
    #: Longest voicemail message.
    voicemail_max_s: float = 120.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "rule", FallbackRule(self.rule))
        for name in ("warn_transferor_prompt", "warn_client_prompt"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, as_prompt(getattr(self, name)))
        if self.transferor_ring_timeout_s <= 0 or self.voicemail_max_s <= 0:
            raise ValueError("fallback timeouts must be positive")


# today's system prompts (PromptRef is frozen: one shared default each)
_UNKNOWN_NUMBER = PromptRef.system("transfer_unknown_number")
_FORBIDDEN = PromptRef.system("transfer_forbidden")
_TRANSFER_ERROR = PromptRef.system("transfer_error")
_APOLOGY = PromptRef.system("transfer_apology")
_VOICEMAIL_GREETING = PromptRef.system("voicemail_greeting")
_BEEP = PromptRef.system("beep")


@dataclass(frozen=True)
class Prompts:
    """The announcements; a plain string is taken as a system prompt's name."""

    unknown_number: PromptRef = _UNKNOWN_NUMBER
    forbidden: PromptRef = _FORBIDDEN
    transfer_error: PromptRef = _TRANSFER_ERROR
    apology: PromptRef = _APOLOGY
    voicemail_greeting: PromptRef = _VOICEMAIL_GREETING
    beep: PromptRef = _BEEP

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, as_prompt(getattr(self, f.name)))


@dataclass(frozen=True)
class Settings:
    """Per-tenant settings snapshot used by :class:`~controller.core.conversation.Conversation`."""

    talk_options: TalkOptions = field(default_factory=TalkOptions)
    #: Time A has to press the first digit after the transfer key.
    first_digit_timeout_s: float = 10.0
    #: Inter-digit timeout that ends the dialled number (the configuration's default, 2,500 ms).
    interdigit_timeout_s: float = 2.5
    #: Guard on the service's answer to ``ResolveTarget``.
    resolve_timeout_s: float = 5.0
    #: How long B rings before the transfer fails with ``no_answer``.
    no_answer_timeout_s: float = 20.0
    #: Guard on ``PromptFinished`` so a lost notification never strands a caller.
    prompt_guard_s: float = 60.0
    caller_id_policy: CallerIdPolicy = CallerIdPolicy.DID
    company_number: str = ""
    fallback_incoming: FallbackPolicy = field(default_factory=FallbackPolicy)
    fallback_outgoing: FallbackPolicy = field(default_factory=FallbackPolicy)
    #: Extension numbers for the "number ends as soon as it is unambiguous" rule.
    known_extensions: frozenset[str] = frozenset()
    hold_music: PromptRef = DEFAULT_MUSIC
    prompts: Prompts = field(default_factory=Prompts)
    #: Longest number collected after the transfer key; further digits are ignored.
    max_number_length: int = 32
    #: Digits the transferor presses that are no talk option reach their partner (``PassDigit``);
    #: False: every digit stays with the PBX.
    pass_other_digits: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "caller_id_policy", CallerIdPolicy(self.caller_id_policy))
        object.__setattr__(self, "known_extensions", frozenset(self.known_extensions))
        object.__setattr__(self, "hold_music", as_prompt(self.hold_music))
        for name in (
            "first_digit_timeout_s",
            "interdigit_timeout_s",
            "resolve_timeout_s",
            "no_answer_timeout_s",
            "prompt_guard_s",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_number_length < 1:
            raise ValueError("max_number_length must be positive")

    def fallback_for(self, direction: Direction) -> FallbackPolicy:
        return self.fallback_incoming if Direction(direction) is Direction.INCOMING else self.fallback_outgoing

    def number_is_complete(self, digits: str) -> bool:
        """True when ``digits`` is a known extension and no longer known extension starts with it."""
        if digits not in self.known_extensions:
            return False
        return not any(ext != digits and ext.startswith(digits) for ext in self.known_extensions)
