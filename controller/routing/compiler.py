"""The configuration compiled into the routing table Kamailio applies (the controller's side).

One function turns the validated configuration into :class:`~controller.routing.table.RoutingTable`:
every fact routing reads, with its indexes. tests/unit/test_routing_table.py proves that a decision
made from the compiled table, encoded and decoded as Kamailio loads it, is the decision made from the
configuration's own table, on every example of the configuration and on generated requests.
"""

from __future__ import annotations

import hashlib
import json

from controller.config import Config, Tenant
from controller.routing.table import (
    DepartmentRoutes,
    DidEntry,
    ExtensionRoutes,
    RoutingTable,
    TenantRoutes,
    TrunkRoutes,
    did_key,
)

__all__ = ["compile_routes", "encoded", "version_of"]


def _tenant(tenant_id: str, tenant: Tenant) -> TenantRoutes:
    departments = {key: DepartmentRoutes(dept.number, tuple(dept.members)) for key, dept in tenant.departments.items()}
    numbers = {dept.number: key for key, dept in tenant.departments.items()}
    own = [*tenant.extensions, *numbers, *tenant.sip_aliases]
    return TenantRoutes(
        id=tenant_id, domain=tenant.domain, company_number=tenant.company_number,
        outbound_trunk=tenant.outbound_trunk, numbering_plan=tenant.numbering_plan.rules(),
        extensions={number: ExtensionRoutes(ext.contact) for number, ext in tenant.extensions.items()},
        departments=departments, sip_aliases=dict(tenant.sip_aliases),
        outside_short_numbers=tuple(tenant.outside_short_numbers), dids=tuple(tenant.dids),
        department_numbers=numbers, internal_lengths=frozenset(len(number) for number in own))


def compile_routes(config: Config) -> RoutingTable:
    """The routing table of `config` (validated: DIDs unique, references resolved)."""
    trunks = {name: TrunkRoutes(name, trunk.address, trunk.port, trunk.match_port, trunk.transport)
              for name, trunk in config.trunks.items()}
    by_ip: dict[str, list[str]] = {}
    for name, trunk in trunks.items():
        by_ip.setdefault(trunk.address, []).append(name)
    dids = {did_key(did): DidEntry(did, tenant_id, route.extension, route.department)
            for tenant_id, tenant in config.tenants.items() for did, route in tenant.dids.items()}
    return RoutingTable(
        trunks=trunks, tenants={tenant_id: _tenant(tenant_id, t) for tenant_id, t in config.tenants.items()},
        dids=dids, domains={t.domain: tenant_id for tenant_id, t in config.tenants.items()},
        trunks_by_ip={address: tuple(names) for address, names in by_ip.items()})


def encoded(table: RoutingTable) -> str:
    """The table as Kamailio loads it: canonical JSON (equal tables encode equally)."""
    return json.dumps(table.to_json_data(), sort_keys=True, separators=(",", ":"))


def version_of(text: str) -> str:
    """A table's version: its content's hash, so publishing the same table twice changes nothing."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]
