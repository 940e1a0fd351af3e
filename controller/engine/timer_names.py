"""The names of the deadlines the engine keeps in the timer store, and what each means when it fires.

Two kinds share the store: the machine's own timers (``StartTimer``: their names are the machine's, and
firing one is ``TimerFired``) and the end of a prompt the engine started (the media port says how long
it plays; firing it is ``PromptFinished``). One codec writes and reads both, so a name never has to be
taken apart by hand elsewhere.
"""

from __future__ import annotations

import enum
import json

from controller.core import Event, PromptFinished, PromptRef, TimerFired
from controller.core.snapshot import decode, encode

__all__ = ["TimerKind", "prompt_end", "timer_event"]


class TimerKind(enum.StrEnum):
    PROMPT_END = "prompt-end"


_SEPARATOR = "|"


def prompt_end(leg: str, prompt: PromptRef) -> str:
    """The name of the deadline at which `prompt`, played to `leg`, has finished."""
    payload = json.dumps({"leg": leg, "prompt": encode(prompt)}, separators=(",", ":"), sort_keys=True)
    return f"{TimerKind.PROMPT_END}{_SEPARATOR}{payload}"


def timer_event(name: str) -> Event:
    """What a fired deadline means to the machine (a name it does not know is a stale TimerFired)."""
    kind, separator, payload = name.partition(_SEPARATOR)
    if separator and kind == TimerKind.PROMPT_END:
        data = json.loads(payload)
        return PromptFinished(str(data["leg"]), decode(PromptRef, data["prompt"]))
    return TimerFired(name)
