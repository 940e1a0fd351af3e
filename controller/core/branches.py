"""Originated legs towards B: one per dial string, rung in parallel; the first answer wins.

A department resolves to several dial strings; each becomes its own leg so
that the machine decides, testably, that the first answer wins and the other
branches are cancelled (what a forking proxy does per RFC 3261 §16.7), and so
that a second 200 that raced the CANCEL is BYEd.  Used for the transfer's
target and for the origin's members after a failed recall.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .actions import EndReplacedDialog, OriginateLeg
from .events import TargetResolved
from .legs import Leg
from .outcome import finish
from .types import EndReason, LegRole, LegState, OutcomeKind, TimerPurpose

if TYPE_CHECKING:
    from .context import Step

__all__ = ["alive", "allowed_targets", "connect_client", "ring", "take_answer"]


def allowed_targets(s: Step) -> tuple[list[str], list[str]]:
    """(distinct targets, those that may be rung): never A or the client for their own transfer."""
    event = s.event
    assert isinstance(event, TargetResolved)
    targets = list(dict.fromkeys(t for t in event.targets if t))
    return targets, [t for t in targets if not s.facts.is_self_target(t)]


def ring(s: Step, prefix: str, caller_id: str) -> None:
    """Originate one leg per target (``<conversation>.<transfer>.<prefix><n>``) under one no-answer timer."""
    t, fx, event = s.t, s.fx, s.event
    assert isinstance(event, TargetResolved)
    fx.cancel_timer(TimerPurpose.RESOLVE)
    timeout = s.facts.settings.no_answer_timeout_s
    for index, target in enumerate(allowed_targets(s)[1], start=1):
        leg_id = f"{s.facts.id}.{t.id}.{prefix}{index}"
        fx.add_leg(Leg(leg_id, LegRole.TARGET, LegState.TRYING, target, event.target_kind))
        t.branches.append(leg_id)
        # an attended REFER's Replaces is for B alone, never for the origin's members after a failure
        replaces = t.replaces if prefix == "b" else None
        fx.emit(OriginateLeg(leg_id, target, event.target_kind, caller_id, timeout, replaces=replaces))
    fx.start_timer(TimerPurpose.NO_ANSWER, timeout)


def alive(s: Step) -> list[str]:
    return [leg for leg in s.t.branches if s.facts.is_live(leg)]


def connect_client(s: Step, kind: OutcomeKind, **outcome: object) -> None:
    """A has left and the answered leg is up: connect the client to it, who takes over from A."""
    b = s.t.answered
    assert b is not None
    s.fx.media.stop(s.facts.client_leg)
    s.fx.media.bridge(s.facts.client_leg, b)
    s.fx.promote(b)  # media first, then the outcome (the action-list convention)
    finish(s, kind, **outcome)  # type: ignore[arg-type]
    if s.t.replaces is not None:
        s.fx.emit(EndReplacedDialog(s.t.replaces))


def take_answer(s: Step) -> str:
    """The first answer wins: the other branches are released."""
    t, winner = s.t, s.event.leg  # type: ignore[attr-defined]
    s.fx.cancel_timer(TimerPurpose.NO_ANSWER)
    t.answered = winner
    for leg in t.branches:
        if leg != winner:
            s.fx.release_leg(leg, EndReason.ANSWERED_ELSEWHERE)
    return winner
