"""Dial strings and the numbers a transfer must not go out to (pure)."""

from __future__ import annotations

from controller.core import Conversation, Event, TargetRejected, TargetResolved
from controller.core.types import LegState, RejectReason, TargetKind
from controller.routing.decision import NumberTargets
from controller.routing.table import TenantRoutes

__all__ = ["LOOKUP_PREFIX", "dial_string", "leg_ng_flags", "number_of", "own_numbers", "resolution"]

LOOKUP_PREFIX = "lookup:"  # dial strings of targets Kamailio resolves through its registrar


def dial_string(uri: str, lookup: bool) -> str:
    return f"{LOOKUP_PREFIX}{uri}" if lookup else uri


def number_of(party: str | None) -> str | None:
    """The number in a party's dial string ("lookup:sip:102@acme.test" -> "102"); a number as it is."""
    if not party:
        return None
    scheme, colon, rest = party.removeprefix(LOOKUP_PREFIX).partition(":")
    if colon and scheme in ("sip", "sips", "tel"):
        return rest.split("@", 1)[0].split(";", 1)[0] or None
    return party


def own_numbers(machine: Conversation, tenant: TenantRoutes) -> tuple[str, ...]:
    """Numbers a transfer of this conversation must not go out to: its client, its DID, its transferor,
    every party still on a leg, and the tenant's own DIDs (each a loop back into the conversation or
    the PBX). Legs that ended may be tried again."""
    parties = [machine.client_number, machine.did, machine.transferor_number,
               *(leg.number for leg in machine.legs.values() if leg.state is not LegState.ENDED)]
    numbers = (number_of(party) for party in parties)
    return tuple(dict.fromkeys([*(n for n in numbers if n), *tenant.dids]))


def resolution(transfer_id: str, found: NumberTargets | None) -> Event:
    """The machine's answer to a ResolveTarget / ResolveOrigin."""
    if found is None:
        return TargetRejected(transfer_id, RejectReason.UNKNOWN_NUMBER)
    if found.refusal is not None:
        # a mistyped number gets the "unknown number" prompt; one the plan forbids, "forbidden"
        reason = RejectReason.UNKNOWN_NUMBER if found.refusal.malformed else RejectReason.FORBIDDEN
        return TargetRejected(transfer_id, reason)
    if not found.targets:
        return TargetRejected(transfer_id, RejectReason.FORBIDDEN)  # only A (their own extension) was left
    dial = tuple(dial_string(t.uri, t.lookup) for t in found.targets)
    return TargetResolved(transfer_id, dial, TargetKind(found.kind))


def leg_ng_flags(ng_call_id: str, leg: str, inject_dtmf: bool) -> str:
    """How Kamailio offers an originated leg: into the conversation's rtpengine call, from a placeholder
    tag; with DTMF injection when the tenant passes digits on (the leg may become the transferor, whose
    other digits are re-played; rtpengine 10.5 only injects into a call offered with the flag)."""
    flags = f"call-id={ng_call_id} from-tag={leg}~origin to-tag={leg}"
    return flags + " inject-DTMF" if inject_dtmf else flags
