"""A leg: one SIP dialog of the conversation (its own little machine is ``LEG_TRANSITIONS``)."""

from __future__ import annotations

from dataclasses import dataclass

from .types import LegRole, LegState, TargetKind

__all__ = ["Leg"]


@dataclass
class Leg:
    """One SIP dialog of the conversation."""

    id: str
    role: LegRole
    state: LegState
    #: The number / dial string of the party on this leg, if known.
    number: str | None = None
    kind: TargetKind | None = None
