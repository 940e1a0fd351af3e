"""A new INVITE's facts checked, decided and turned into what Kamailio applies and what is recorded (pure).

What Kamailio hands over is untrusted text (a From user, a Request-URI): every value is checked strictly
(bounded strings, an IP address, a port number) and cut short before it reaches a log line or Redis.
The answer has the layout the script reads (`action`, `targets`, ...), the same as the JSON-RPC
route.invite result it replaced, so kamailio.cfg applies a decision however it was made.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from controller.codecs.jsonrpc import int_param, invalid_param, str_param
from controller.errors import JsonRpcError
from controller.routing.decision import InviteFacts, RouteDecision, RouteRejection, decide_route
from controller.routing.table import RoutingTable, normalize_ip

__all__ = ["MAX_CALL_ID", "MAX_TEXT", "ROUTE_PARAMS", "Invite", "InviteParams", "clip", "decide_invite"]

ROUTE_PARAMS = ("call_id", "source_ip", "source_port", "from_user", "from_domain", "ruri_user", "ruri_domain")

# SIP sets no bounds, but nothing longer is a call we route, and every value ends up in logs or Redis.
MAX_CALL_ID = 256
MAX_TEXT = 128


def clip(value: str, limit: int = MAX_TEXT) -> str:
    """``value`` cut to ``limit`` characters: what a peer sends must not grow a log line or a Redis entry."""
    return value[:limit]


@dataclass(frozen=True, slots=True)
class InviteParams:
    """A new INVITE's facts, checked: bounded strings, an IP address, a port number. The routing facts
    are `facts` (its conversation id is given when the call is routed); the rest is bookkeeping."""

    facts: InviteFacts
    from_tag: str
    xfer_leg: str  # "" unless the INVITE is of a leg the controller originated

    @classmethod
    def parse(cls, params: dict[str, Any]) -> InviteParams:
        """Raises INVALID_PARAMS naming the first bad parameter."""
        missing = [name for name in ROUTE_PARAMS if name not in params]
        if missing:
            raise JsonRpcError(JsonRpcError.INVALID_PARAMS, f"missing params: {', '.join(missing)}")
        text = partial(str_param, params, max_len=MAX_TEXT)
        call_id = str_param(params, "call_id", max_len=MAX_CALL_ID)
        source_ip = text("source_ip")
        if normalize_ip(source_ip) is None:
            raise invalid_param("source_ip", "must be an IP address")
        facts = InviteFacts(
            call_id=call_id, source_ip=source_ip, source_port=int_param(params, "source_port", low=0, high=65535),
            from_user=text("from_user"), from_domain=text("from_domain"),
            ruri_user=text("ruri_user"), ruri_domain=text("ruri_domain"), conversation_id="",
            # who Kamailio says sent it: "trunk", "phone" (authenticated as auth_user) or "node"
            peer=text("peer", default=""), auth_user=text("auth_user", default=""),
        )
        return cls(facts, from_tag=text("from_tag", default=""), xfer_leg=text("xfer_leg", default=""))


@dataclass(frozen=True, slots=True)
class Invite:
    """What to do with a new call: the script's answer, and the record it leaves (a routed call's
    conversation fields, or a rejection's event fields)."""

    result: dict[str, Any]
    conversation: dict[str, Any] | None = None
    rejection: dict[str, Any] | None = None


def decide_invite(table: RoutingTable, invite: InviteParams, conversation_id: str, now_ms: int) -> Invite:
    """The decision for an ordinary new call (not a leg the controller originated), and its record."""
    facts = replace(invite.facts, conversation_id=conversation_id)
    call_id, from_user, ruri_user = clip(facts.call_id, MAX_CALL_ID), clip(facts.from_user), clip(facts.ruri_user)
    decision = decide_route(table, facts)
    if isinstance(decision, RouteRejection):
        return Invite(decision.to_jsonrpc_result(), rejection={
            "call_id": call_id, "code": decision.code, "reason": decision.reason, "cause": decision.cause,
            "from": from_user, "to": ruri_user, "source": f"{clip(facts.source_ip)}:{facts.source_port}"})
    return Invite(decision.to_jsonrpc_result(), conversation=conversation_fields(decision, invite, now_ms))


def conversation_fields(decision: RouteDecision, invite: InviteParams, now_ms: int) -> dict[str, Any]:
    """The conversation's record as a routed call starts it (the transfer engine starts from these)."""
    facts = invite.facts
    return {
        "tenant": decision.tenant_id, "direction": decision.direction,
        # the caller's number (from_user) or none: stored as "" either way
        "client_number": clip(decision.client_number or ""),
        "employee": decision.employee, "did": decision.did, "origin": decision.origin,
        "trunk": decision.trunk,
        "from_tag": clip(invite.from_tag), "from": clip(facts.from_user), "to": clip(facts.ruri_user),
        "targets": [t.uri for t in decision.targets], "created_ms": now_ms,
    }


def leg_result(leg: dict[str, Any] | None, leg_id: str, call_id: str) -> dict[str, Any]:
    """The INVITE of a leg the controller originated (through Kamailio): its targets were resolved when the
    transfer was requested and stored with the leg, so this is a lookup, not a decision."""
    if leg is None or leg.get("call_id") != call_id:
        return RouteRejection(404, "Not Found", "unknown_transfer_leg").to_jsonrpc_result()
    return {"action": "route", "conversation": leg["conversation"], "tenant": "", "direction": "transfer",
            "targets": leg["targets"], "from_user": "", "origin": f"transfer-leg:{leg_id}",
            "ring_timeout_ms": int(leg.get("ring_timeout_ms") or 0), "ng_flags": leg.get("ng_flags") or ""}
