"""The one ``RecordOutcome`` of a transfer (exactly one per transfer, at the moment its fate is decided)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .actions import RecordOutcome
from .errors import TransitionTableError
from .types import Cause, FallbackRule, OutcomeKind, OutcomeMode

if TYPE_CHECKING:
    from .context import Step

__all__ = ["finish"]


def finish(s: Step, kind: OutcomeKind, *, cause: Cause | None = None, rule: FallbackRule | None = None,
           mode: OutcomeMode | None = None) -> None:
    """Record the transfer's outcome; a second one is a bug in core."""
    t = s.t
    if t.finished:
        raise TransitionTableError(f"transfer {t.id} recorded two outcomes")
    t.finished = True
    number = t.number if t.number is not None else (t.digits or None)
    s.fx.emit(RecordOutcome(t.id, kind, number, t.trigger, cause, rule, mode))
