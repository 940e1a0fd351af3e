"""Talk-option recognition in A's DTMF stream.

A tiny longest-prefix tokenizer: digits are appended to a buffer; when the
buffer equals an active key sequence the key fires; while it is a proper
prefix of one it waits; otherwise its first symbol is released as a plain
digit and the rest is re-examined.  Keys active together must be prefix-free
(``TalkOptions`` checks it), so the first match is the only match.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["KeyToken", "match_digits"]


@dataclass(frozen=True)
class KeyToken:
    """One recognised item: ``key`` is a talk-option name, or None for a plain ``digit``."""

    key: str | None = None
    digit: str | None = None


def match_digits(buffer: str, digit: str, keys: Mapping[str, str]) -> tuple[list[KeyToken], str]:
    """Feed one digit; return the recognised tokens and the new pending buffer."""
    pending = buffer + digit
    tokens: list[KeyToken] = []
    while pending:
        for name, sequence in keys.items():
            if pending == sequence:
                tokens.append(KeyToken(key=name))
                return tokens, ""
        if any(sequence.startswith(pending) for sequence in keys.values()):
            return tokens, pending
        tokens.append(KeyToken(digit=pending[0]))
        pending = pending[1:]
    return tokens, ""
