"""The routing table: everything routing needs of the configuration, as plain data (stdlib only).

The controller compiles it from the one validated configuration (controller.routing.compiler) and
publishes it to Redis under a version; Kamailio's Python (kamailio/xfer_routing.py) loads the version a
call starts with and decides the call with the same functions the controller uses for transfers
(controller.routing.decision). Nothing here imports pydantic or the configuration, so Kamailio's
interpreter (the system python3) can load it; every index is precomputed data, so the table is encoded
and decoded by the core's one snapshot codec without any code of its own.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from controller.core.snapshot import decode, encode
from controller.routing.numbering import PlanRules

__all__ = ["DepartmentRoutes", "DidEntry", "ExtensionRoutes", "RoutingTable", "TenantRoutes", "TrunkRoutes",
           "did_key", "normalize_ip"]

#: Layout of an encoded table; a table of another layout is refused, never half-read.
TABLE_SCHEMA = 1


def normalize_ip(value: str) -> str | None:
    """Canonical text of an IP address (brackets and IPv4-mapped IPv6 undone), None if invalid."""
    try:
        ip = ipaddress.ip_address(value.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def did_key(number: str) -> str:
    """'+' is optional on the wire (carriers differ): DIDs are indexed by their digits."""
    return number.removeprefix("+")


@dataclass(frozen=True, slots=True)
class TrunkRoutes:
    name: str
    address: str  # normalised IP
    port: int
    match_port: bool
    transport: str  # udp | tcp

    @property
    def hostport(self) -> str:
        """``host:port`` for a SIP URI (IPv6 in brackets)."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ExtensionRoutes:
    contact: str | None = None  # a static contact; None: the phone registers


@dataclass(frozen=True, slots=True)
class DepartmentRoutes:
    number: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TenantRoutes:
    id: str
    domain: str
    company_number: str
    outbound_trunk: str
    numbering_plan: PlanRules
    extensions: dict[str, ExtensionRoutes] = field(default_factory=dict)
    departments: dict[str, DepartmentRoutes] = field(default_factory=dict)
    sip_aliases: dict[str, str] = field(default_factory=dict)
    outside_short_numbers: tuple[str, ...] = ()
    #: The DIDs as configured (a transfer never goes out to one: it would loop back into the PBX).
    dids: tuple[str, ...] = ()
    # indexes
    department_numbers: dict[str, str] = field(default_factory=dict)  # short number -> department id
    internal_lengths: frozenset[int] = frozenset()  # lengths of the tenant's own short numbers

    def department_by_number(self, number: str) -> tuple[str, DepartmentRoutes] | None:
        dept_id = self.department_numbers.get(number)
        return None if dept_id is None else (dept_id, self.departments[dept_id])

    def is_unassigned_internal(self, number: str) -> bool:
        """All digits, as long as the tenant's own short numbers, and none of them: an unknown
        number, never an outside one (`#104` with no extension 104 is a mistake, not a call out)."""
        return number.isdigit() and len(number) in self.internal_lengths and not (
            number in self.extensions or number in self.department_numbers or number in self.sip_aliases
            or number in self.outside_short_numbers)


@dataclass(frozen=True, slots=True)
class DidEntry:
    did: str  # as configured
    tenant_id: str
    extension: str | None = None
    department: str | None = None


@dataclass(frozen=True, slots=True)
class RoutingTable:
    trunks: dict[str, TrunkRoutes] = field(default_factory=dict)
    tenants: dict[str, TenantRoutes] = field(default_factory=dict)
    # indexes
    dids: dict[str, DidEntry] = field(default_factory=dict)  # did_key -> entry
    domains: dict[str, str] = field(default_factory=dict)  # domain -> tenant id
    trunks_by_ip: dict[str, tuple[str, ...]] = field(default_factory=dict)  # address -> trunk names
    schema: int = TABLE_SCHEMA

    def lookup_did(self, number: str) -> DidEntry | None:
        """The DID ``number`` (with or without its leading '+')."""
        return self.dids.get(did_key(number))

    def trunk_for_source(self, ip: str, port: int) -> TrunkRoutes | None:
        """The trunk a request received from ``ip:port`` came from, if any."""
        address = normalize_ip(ip)
        if address is None:
            return None
        for name in self.trunks_by_ip.get(address, ()):
            trunk = self.trunks[name]
            if not trunk.match_port or trunk.port == port:
                return trunk
        return None

    def tenant_for_domain(self, domain: str) -> TenantRoutes | None:
        tenant_id = self.domains.get(domain.lower().removesuffix("."))
        return None if tenant_id is None else self.tenants[tenant_id]

    def to_json_data(self) -> dict:
        return encode(self)

    @classmethod
    def from_json_data(cls, data: dict) -> RoutingTable:
        schema = data.get("schema") if isinstance(data, dict) else data
        if schema != TABLE_SCHEMA:
            raise ValueError(f"unsupported routing table schema {schema!r}")
        return decode(cls, data)
