"""Facts from Kamailio and rtpengine turned into the machine's events (pure).

Which party of a call is the client and which the employee follows from its direction; whether a call
can have a machine at all (a transfer needs a client and a known tenant); what a notification about one
of the conversation's dialogs means.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.config import Config
from controller.core import (
    ConversationStarted,
    Event,
    FarEndNotified,
    LegAnswered,
    LegFailed,
    LegHungUp,
    LegRinging,
    PhoneHeld,
)

from .context import ConversationIO

__all__ = ["client_dialog_event", "conversation_start", "leg_event", "replaced_dialog", "replaced_dialog_refusal"]

#: The record states in which a call has both parties (a digit can arrive before "answered" is applied).
_TALKING_RECORDS = ("answered", "routing")


def conversation_start(config: Config, conversation_id: str, record: Mapping[str, str], media_tags: tuple[str, ...],
                       now_ms: int) -> tuple[ConversationIO, ConversationStarted] | None:
    """The I/O context and the first event of a machine for the call recorded as `record`, or None
    when it cannot have one (an internal call has no client to transfer; an ended call no talk).

    `media_tags` (from a DTMF event) name both parties when Kamailio's "answered" notification is still
    queued: a digit from the call proves it was answered, so it is never dropped for lag."""
    direction, to_tag = record.get("direction", ""), record.get("to_tag", "")
    if not to_tag and record.get("state") == "routing":
        to_tag = next((t for t in media_tags if t and t != record.get("from_tag")), "")
    tenant = config.tenants.get(record.get("tenant", ""))
    if direction not in ("incoming", "outgoing") or tenant is None or not to_tag \
            or record.get("state") not in _TALKING_RECORDS:
        return None
    from_tag = record.get("from_tag", "")
    client, transferor = (from_tag, to_tag) if direction == "incoming" else (to_tag, from_tag)
    io = ConversationIO(conversation_id, record["tenant"], direction, record["call_id"], client, transferor,
                        from_tag, to_tag, started_ms=now_ms, client_trunk=record.get("trunk", ""))
    # a call routed to a department learns its employee when one of them answers
    employee = record.get("employee") if record.get("employee") in tenant.extensions else None
    started = ConversationStarted(
        direction=direction, client_leg=client, transferor_leg=transferor,
        client_number=record.get("client_number") or None, transferor_number=employee,
        did=record.get("did") or None, origin=record.get("origin") or None)
    return io, started


def leg_event(leg: str, method: str, params: Mapping[str, Any]) -> Event | None:
    """A notification about a leg the controller originated."""
    if method == "leg.ringing":
        return LegRinging(leg)
    if method == "call.answered":
        return LegAnswered(leg)
    if method in ("call.failed", "call.rejected"):
        code = int(params.get("code") or 0)
        return LegFailed(leg, code if 300 <= code <= 699 else 0)
    if method == "call.ended":
        return LegHungUp(leg)
    return None


def client_dialog_event(io: ConversationIO, method: str, params: Mapping[str, Any]) -> Event | None:
    """A notification about the client's own dialog (client and first transferor)."""
    if method == "leg.hungup":
        return LegHungUp(io.transferor_tag)  # Kamailio absorbed the transferor's BYE
    if method in ("leg.held", "leg.resumed"):
        return PhoneHeld(str(params.get("by_tag") or ""), method == "leg.held")
    if method == "transfer.far_end":
        status = params.get("status")
        return FarEndNotified(str(params.get("transfer_id") or ""), status if isinstance(status, int) else 0)
    if method == "call.ended":
        by = str(params.get("by_tag") or "")
        return LegHungUp(by if by in (io.client_tag, io.transferor_tag) else io.client_tag)
    return None


def replaced_dialog(replaces: str) -> tuple[str, str, str]:
    """(Call-ID, from-tag, to-tag) of a normalised Replaces value (controller/proxy/refer.py)."""
    call_id, *params = replaces.split(";")
    tags = dict(param.partition("=")[::2] for param in params)
    return call_id, tags.get("from-tag", ""), tags.get("to-tag", "")


def replaced_dialog_refusal(replaces: str, record: Mapping[str, str], io: ConversationIO,
                            transferor: str | None) -> tuple[int, str] | None:
    """Why an attended REFER's Replaces cannot be honoured (the final NOTIFY's status), or None.

    The dialog it names must be A's own internal call, answered, of the same tenant, with both tags as
    Kamailio recorded them: nobody can make the PBX take over somebody else's call by naming it."""
    call_id, from_tag, to_tag = replaced_dialog(replaces)
    if not record or record.get("call_id") != call_id or record.get("state") != "answered":
        return 481, "Call/Transaction Does Not Exist"
    if record.get("from_tag") != from_tag or record.get("to_tag") != to_tag:
        return 481, "Call/Transaction Does Not Exist"
    if record.get("tenant") != io.tenant_id or record.get("direction") != "internal" \
            or not transferor or record.get("from") != transferor:
        return 403, "Forbidden"
    return None
