"""References to the audio the machine asks the service to play.

A :class:`PromptRef` names what to play, never how: a *system* prompt by its
name (the service ships those), a tenant's *tts* text or a tenant's audio
*file*.  For tts and file the ``name`` is the system prompt the service plays
instead when the tenant's audio cannot be produced (no TTS engine, a missing
file), so a caller never waits in silence.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["DEFAULT_MUSIC", "PromptKind", "PromptRef", "as_prompt"]


class PromptKind(enum.StrEnum):
    SYSTEM = "system"
    TTS = "tts"
    FILE = "file"


@dataclass(frozen=True)
class PromptRef:
    """What to play: ``PromptRef.system("beep")``, ``.tts(...)``, ``.file(...)``."""

    kind: PromptKind
    #: The system prompt (for tts / file: the one played when the tenant's audio cannot be produced).
    name: str
    voice: str | None = None
    text: str | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", PromptKind(self.kind))
        if not self.name:
            raise ValueError("a prompt needs the name of a system prompt")
        if self.kind is PromptKind.TTS and not self.text:
            raise ValueError(f"tts prompt {self.name!r} needs a text")
        if self.kind is PromptKind.FILE and not self.path:
            raise ValueError(f"file prompt {self.name!r} needs a path")

    @classmethod
    def system(cls, name: str) -> PromptRef:
        return cls(PromptKind.SYSTEM, name)

    @classmethod
    def tts(cls, name: str, text: str, voice: str | None = None) -> PromptRef:
        return cls(PromptKind.TTS, name, voice=voice, text=text)

    @classmethod
    def file(cls, name: str, path: str) -> PromptRef:
        return cls(PromptKind.FILE, name, path=path)

    @classmethod
    def parse(cls, text: str) -> PromptRef:
        """``"beep"`` / ``"system:beep"``, ``"file:<fallback>:<path>"``, ``"tts:<fallback>:<text>"``."""
        kind, _, rest = text.partition(":")
        if not rest:
            return cls.system(text)
        if kind == PromptKind.SYSTEM:
            return cls.system(rest)
        name, _, tail = rest.partition(":")
        if kind == PromptKind.FILE:
            return cls.file(name, tail)
        if kind == PromptKind.TTS:
            return cls.tts(name, tail)
        raise ValueError(f"not a prompt reference: {text!r}")

    def __str__(self) -> str:
        if self.kind is PromptKind.SYSTEM:
            return f"system:{self.name}"
        return f"{self.kind}:{self.name}:{self.path if self.kind is PromptKind.FILE else self.text}"


#: The system's hold music.
DEFAULT_MUSIC = PromptRef.system("default")


def as_prompt(value: PromptRef | str) -> PromptRef:
    """Coerce a plain string (a system prompt's name, or :meth:`PromptRef.parse` syntax)."""
    if isinstance(value, PromptRef):
        return value
    if isinstance(value, str):
        return PromptRef.parse(value)
    raise TypeError(f"not a prompt reference: {value!r}")
