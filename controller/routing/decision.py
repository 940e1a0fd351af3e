"""Where a new call (INVITE) goes: the answer to Kamailio's one routing question per call.

Pure and stdlib only: no I/O, no clock, no randomness (the conversation id comes in with the facts), so
every decision is reproducible from the routing table (compiled from the configuration) and the request
alone. Kamailio's Python runs these functions for every new call (kamailio/xfer_routing.py); the
controller runs the same ones for a transfer's number.

``RouteDecision.origin`` names the routing step that delivered the call, so that a failed transfer
can send the call back to it:

    did:<did>->extension:<ext>      incoming call to a DID routed to an extension
    did:<did>->department:<id>      incoming call to a DID routed to a department
    extension:<ext>                 internal call to an extension
    department:<id>                 internal call to a department
    alias:<number>                  outgoing call to a SIP alias
    trunk:<name>                    outgoing call to a phone number through a trunk

A number that would leave through the trunk is judged by the tenant's numbering plan
(``controller/routing/numbering.py``) and sent in its E.164 form; a refused one resolves to a
``NumberTargets`` with no targets and its ``refusal``, so that callers tell "forbidden" from
"unknown" (None).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

from controller.routing.numbering import DIALLED_RE, Refusal, check_outside, is_own_number
from controller.routing.table import RoutingTable, TenantRoutes, TrunkRoutes

Direction = Literal["incoming", "outgoing", "internal"]


@dataclass(frozen=True, slots=True)
class InviteFacts:
    """What Kamailio tells us about a new INVITE.

    ``peer`` is who Kamailio established sent it: ``trunk`` (by source address), ``phone`` (digest
    authentication succeeded for ``auth_user`` in the From domain, the tenant's realm) or ``node``. The
    From header proves nothing: an employee's identity is ``auth_user`` alone."""

    call_id: str
    source_ip: str
    source_port: int
    from_user: str
    from_domain: str
    ruri_user: str
    ruri_domain: str
    conversation_id: str
    peer: str = ""
    auth_user: str = ""


@dataclass(frozen=True, slots=True)
class Target:
    """One destination to ring; ``lookup`` asks Kamailio to resolve the AOR in its location table.
    ``extension``: the employee it rings, so that Kamailio can say who answered a department call."""

    uri: str
    lookup: bool
    extension: str | None = None


@dataclass(frozen=True, slots=True)
class RouteDecision:
    conversation_id: str
    tenant_id: str
    direction: Direction
    client_number: str | None
    employee: str | None  # the employee's extension on this call (None: a department rings)
    did: str | None  # the DID as configured (incoming calls only)
    targets: tuple[Target, ...]  # rung in parallel; the first to answer wins
    from_user: str | None  # caller id towards the callee; None leaves From/PAI unchanged
    origin: str
    trunk: str | None = None  # the trunk the client is on (the call came in through it, or goes out)

    @property
    def employee_side(self) -> str:
        """The SIP side the employee is on, whose DTMF rtpengine blocks from the answer on: the talk
        options never reach the client. Internal calls have no client and keep their digits."""
        return {"incoming": "callee", "outgoing": "caller"}.get(self.direction, "")

    def to_jsonrpc_result(self) -> dict[str, Any]:
        # Ints and "" instead of bools and null: Kamailio's jansson_get reads them more easily.
        return {
            "action": "route",
            "conversation": self.conversation_id,
            "tenant": self.tenant_id,
            "direction": self.direction,
            "targets": [{"uri": target.uri, "lookup": int(target.lookup), "ext": target.extension or ""}
                        for target in self.targets],
            "from_user": self.from_user or "",
            "origin": self.origin,
            "dtmf_block": self.employee_side,
        }


@dataclass(frozen=True, slots=True)
class RouteRejection:
    code: int  # SIP status code
    reason: str  # SIP reason phrase
    cause: str  # machine-readable, for logs and metrics

    def to_jsonrpc_result(self) -> dict[str, Any]:
        return {"action": "reject", "code": self.code, "reason": self.reason, "cause": self.cause}


UNKNOWN_DID = RouteRejection(404, "Not Found", "unknown_did")
UNKNOWN_CALLER = RouteRejection(403, "Forbidden", "unknown_caller")
SELF_CALL = RouteRejection(403, "Forbidden", "self_call")
UNKNOWN_NUMBER = RouteRejection(404, "Not Found", "unknown_number")
# RFC 3398 maps ISUP cause 28 (invalid number format) to 484, and refusals by policy to 403.
REFUSED_NUMBER = {
    Refusal.TOO_LONG: RouteRejection(484, "Address Incomplete", "number_too_long"),
    Refusal.WRONG_LENGTH: RouteRejection(484, "Address Incomplete", "number_wrong_length"),
    Refusal.DENIED: RouteRejection(403, "Forbidden", "number_denied"),
    Refusal.NOT_ALLOWED: RouteRejection(403, "Forbidden", "number_not_allowed"),
    Refusal.OWN_NUMBER: RouteRejection(403, "Forbidden", "own_number"),
}


def extension_target(tenant: TenantRoutes, extension: str) -> Target:
    """A static contact is rung directly; otherwise the phone's registration is looked up."""
    contact = tenant.extensions[extension].contact
    if contact is not None:
        return Target(contact, lookup=False, extension=extension)
    return Target(f"sip:{extension}@{tenant.domain}", lookup=True, extension=extension)


@dataclass(frozen=True)
class NumberTargets:
    """What a number dialled by an employee (to call, or to transfer to) rings. A number that may not be
    dialled has no targets and says why (`refusal`)."""

    kind: Literal["extension", "department", "sip_uri", "trunk"]
    targets: tuple[Target, ...]
    origin: str
    refusal: Refusal | None = None


def targets_for_number(table: RoutingTable, tenant: TenantRoutes, dialled: str, *, exclude: str | None = None,
                       own_numbers: Iterable[str] = ()) -> NumberTargets | None:
    """Resolve a number within a tenant; None when it is unknown. `exclude` (the caller's own
    extension) is never rung, so calling or transferring to yourself yields no targets. A number
    leaving the tenant (trunk, SIP alias) that is one of `own_numbers` (a transfer's conversation
    parties and the tenant's DIDs), in whatever form it is written, is refused: it would loop."""
    found = _targets_for_number(table, tenant, dialled, exclude)
    if found is None or found.refusal is not None or found.kind not in ("trunk", "sip_uri"):
        return found
    if is_own_number(tenant.numbering_plan, dialled, own_numbers):
        return replace(found, targets=(), refusal=Refusal.OWN_NUMBER)
    return found


def _targets_for_number(table: RoutingTable, tenant: TenantRoutes, dialled: str,
                        exclude: str | None) -> NumberTargets | None:
    # Config validation keeps extension, department and alias numbers disjoint, so order only
    # matters against phone numbers: a configured short number wins.
    if dialled in tenant.extensions:
        targets = () if dialled == exclude else (extension_target(tenant, dialled),)
        return NumberTargets("extension", targets, f"extension:{dialled}")
    department = tenant.department_by_number(dialled)
    if department is not None:
        return _department_targets(tenant, department[0], exclude)
    if dialled in tenant.sip_aliases:
        return NumberTargets("sip_uri", (Target(tenant.sip_aliases[dialled], lookup=False),), f"alias:{dialled}")
    if tenant.is_unassigned_internal(dialled):
        return None
    if dialled in tenant.outside_short_numbers:
        return _trunk_targets(table, tenant, dialled)  # emergency and service numbers: as dialled, always
    if not DIALLED_RE.fullmatch(dialled):
        return None
    verdict = check_outside(tenant.numbering_plan, dialled)
    if verdict is None:
        return None
    if verdict.refusal is not None:
        return NumberTargets("trunk", (), f"trunk:{tenant.outbound_trunk}", verdict.refusal)
    assert verdict.number is not None  # an allowed number has its E.164 form
    return _trunk_targets(table, tenant, verdict.number)  # E.164, however it was dialled


def _trunk_targets(table: RoutingTable, tenant: TenantRoutes, number: str) -> NumberTargets:
    trunk = table.trunks[tenant.outbound_trunk]
    uri = f"sip:{number}@{trunk.hostport}" + (";transport=tcp" if trunk.transport == "tcp" else "")
    return NumberTargets("trunk", (Target(uri, lookup=False),), f"trunk:{tenant.outbound_trunk}")


def _department_targets(tenant: TenantRoutes, dept_id: str, exclude: str | None) -> NumberTargets:
    members = tenant.departments[dept_id].members
    targets = tuple(extension_target(tenant, m) for m in members if m != exclude)
    return NumberTargets("department", targets, f"department:{dept_id}")


def targets_for_origin(tenant: TenantRoutes, origin: str, *, exclude: str | None = None) -> NumberTargets | None:
    """Who the routing step `origin` (a `RouteDecision.origin`) rings now, `exclude` (the transferor who did
    not answer) left out. None when the step rings nobody of the tenant: an outgoing call's origin is the
    employee's own dial-out, and a step the configuration no longer has is gone."""
    step = origin.rsplit("->", 1)[-1]  # "did:<did>->department:<id>": the DID only led to the department
    kind, _, name = step.partition(":")
    if kind == "extension" and name in tenant.extensions:
        targets = () if name == exclude else (extension_target(tenant, name),)
        return NumberTargets("extension", targets, step)
    if kind == "department" and name in tenant.departments:
        return _department_targets(tenant, name, exclude)
    return None


def decide_route(table: RoutingTable, facts: InviteFacts) -> RouteDecision | RouteRejection:
    source = table.trunk_for_source(facts.source_ip, facts.source_port) if facts.peer == "trunk" else None
    if source is not None:
        return _incoming(table, facts, source)
    if facts.peer == "phone" and facts.auth_user:
        return _from_employee(table, facts)
    return UNKNOWN_CALLER  # Kamailio vouches for nobody else (an unauthenticated phone never gets here)


def _incoming(table: RoutingTable, facts: InviteFacts, source: TrunkRoutes) -> RouteDecision | RouteRejection:
    """A client called a DID through a trunk."""
    match = table.lookup_did(facts.ruri_user)
    if match is None:
        return UNKNOWN_DID
    tenant = table.tenants[match.tenant_id]
    if match.extension is not None:
        targets: tuple[Target, ...] = (extension_target(tenant, match.extension),)
        employee: str | None = match.extension
        origin = f"did:{match.did}->extension:{match.extension}"
    else:
        assert match.department is not None  # guaranteed by config validation
        members = tenant.departments[match.department].members
        targets = tuple(extension_target(tenant, member) for member in members)
        employee = None
        origin = f"did:{match.did}->department:{match.department}"
    return RouteDecision(
        conversation_id=facts.conversation_id,
        tenant_id=match.tenant_id,
        direction="incoming",
        client_number=facts.from_user or None,
        employee=employee,
        did=match.did,
        targets=targets,
        from_user=None,  # the employee sees the client's own number
        origin=origin,
        trunk=source.name,
    )


def _from_employee(table: RoutingTable, facts: InviteFacts) -> RouteDecision | RouteRejection:
    """An authenticated employee's call: the extension is the one that authenticated, whatever From says."""
    tenant = table.tenant_for_domain(facts.from_domain)
    if tenant is None or facts.auth_user not in tenant.extensions:
        return UNKNOWN_CALLER
    tenant_id = tenant.id
    caller, dialled = facts.auth_user, facts.ruri_user
    found_targets = targets_for_number(table, tenant, dialled, exclude=caller)
    if found_targets is None:
        return UNKNOWN_NUMBER
    if found_targets.refusal is not None:
        return REFUSED_NUMBER[found_targets.refusal]
    if not found_targets.targets:
        return SELF_CALL  # the caller dialled themself (or is their department's only member)
    targets, origin = found_targets.targets, found_targets.origin
    if found_targets.kind in ("extension", "department"):
        direction: Direction = "internal"
        client: str | None = None
        from_user: str | None = None
    else:
        # an employee calling out shows the company number
        direction, client, from_user = "outgoing", dialled, tenant.company_number
    return RouteDecision(
        conversation_id=facts.conversation_id,
        tenant_id=tenant_id,
        direction=direction,
        client_number=client,
        employee=caller,
        did=None,
        targets=targets,
        from_user=from_user,
        origin=origin,
        trunk=tenant.outbound_trunk if found_targets.kind == "trunk" else None,
    )
