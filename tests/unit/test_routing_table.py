"""The routing table compiled from the configuration: its lookups, its encoding, and that a decision made
from it as Kamailio loads it (compiled, encoded, decoded) is the decision made from the configuration's
own compiled table, for every example request and for generated ones."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.config import Config, load_config, parse_config
from controller.routing.compiler import compile_routes, encoded, version_of
from controller.routing.decision import InviteFacts, decide_route, targets_for_number
from controller.routing.table import TABLE_SCHEMA, RoutingTable

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
CONFIG = load_config(EXAMPLE)


def example_data() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def loaded(config: Config) -> RoutingTable:
    """What Kamailio decides with: the published text, decoded."""
    return RoutingTable.from_json_data(json.loads(encoded(compile_routes(config))))


def test_the_encoded_table_decodes_to_the_compiled_one_and_its_version_is_its_content() -> None:
    table = compile_routes(CONFIG)
    assert loaded(CONFIG) == table
    assert version_of(encoded(table)) == version_of(encoded(compile_routes(load_config(EXAMPLE))))
    data = example_data()
    data["tenants"]["acme"]["dids"]["+74951110000"] = {"extension": "101"}
    assert version_of(encoded(compile_routes(parse_config(data)))) != version_of(encoded(table))


def test_a_table_of_another_schema_is_refused() -> None:
    data = json.loads(encoded(compile_routes(CONFIG)))
    with pytest.raises(ValueError, match="schema"):
        RoutingTable.from_json_data(data | {"schema": TABLE_SCHEMA + 1})
    with pytest.raises(ValueError, match="schema"):
        RoutingTable.from_json_data([])  # type: ignore[arg-type]


def test_dids_with_or_without_the_plus() -> None:
    table = loaded(CONFIG)
    for number in ("+74951110000", "74951110000"):
        found = table.lookup_did(number)
        assert found is not None and (found.tenant_id, found.extension, found.department) == ("acme", "100", None)
    assert table.lookup_did("74951110001").department == "sales"  # type: ignore[union-attr]
    assert table.lookup_did("+74951119999") is None and table.lookup_did("") is None


def test_trunk_for_source() -> None:
    table = loaded(CONFIG)
    assert table.trunk_for_source("127.0.0.2", 5060).name == "carrier"  # type: ignore[union-attr]
    assert table.trunk_for_source("127.0.0.2", 40000) is not None  # match_port: false
    assert table.trunk_for_source("::ffff:127.0.0.2", 5060) is not None  # IPv4-mapped IPv6
    assert table.trunk_for_source("127.0.0.3", 5060) is None
    assert table.trunk_for_source("not-an-ip", 5060) is None


def test_trunk_for_source_with_match_port() -> None:
    data = example_data()
    data["trunks"]["carrier"]["match_port"] = True
    data["trunks"]["backup"] = {"address": "127.0.0.2", "port": 5062, "match_port": True}
    data["trunks"]["v6"] = {"address": "2001:db8::1"}
    table = loaded(parse_config(data))
    assert table.trunk_for_source("127.0.0.2", 5060).name == "carrier"  # type: ignore[union-attr]
    assert table.trunk_for_source("127.0.0.2", 5062).name == "backup"  # type: ignore[union-attr]
    assert table.trunk_for_source("127.0.0.2", 5061) is None
    assert table.trunk_for_source("[2001:DB8::1]", 1).name == "v6"  # type: ignore[union-attr]
    assert table.trunks["v6"].hostport == "[2001:db8::1]:5060"


def test_tenant_for_domain_and_department_numbers() -> None:
    table = loaded(CONFIG)
    assert table.tenant_for_domain("acme.test").id == "acme"  # type: ignore[union-attr]
    assert table.tenant_for_domain("ACME.Test.").id == "acme"  # type: ignore[union-attr]
    assert table.tenant_for_domain("other.test") is None
    acme = table.tenants["acme"]
    assert acme.department_by_number("200") == ("sales", acme.departments["sales"])
    assert acme.department_by_number("100") is None
    assert acme.is_unassigned_internal("104") and not acme.is_unassigned_internal("100")
    assert not acme.is_unassigned_internal("112")  # an outside short number


# -- the compiled table decides as the configuration does -------------------------------------

PEERS = st.sampled_from(["trunk", "phone", "node", ""])
NUMBERS = st.one_of(
    st.sampled_from(["100", "101", "102", "200", "300", "104", "112", "+74951110000", "74951110001",
                     "89161234567", "+79161234567", "+12125551234", "810441234567890", "1040", ""]),
    st.from_regex(r"\+?[0-9]{1,18}", fullmatch=True),
    st.text(max_size=12),
)


@st.composite
def invites(draw: st.DrawFn) -> InviteFacts:
    peer = draw(PEERS)
    return InviteFacts(
        call_id="c", source_ip=draw(st.sampled_from(["127.0.0.2", "127.0.0.3", "::ffff:127.0.0.2", "x"])),
        source_port=draw(st.sampled_from([5060, 5080, 40000])), from_user=draw(NUMBERS),
        from_domain=draw(st.sampled_from(["acme.test", "ACME.test.", "other.test", "127.0.0.2"])),
        ruri_user=draw(NUMBERS), ruri_domain="127.0.0.1", conversation_id="conv",
        peer=peer, auth_user=draw(st.sampled_from(["", "100", "101", "102", "999"])) if peer == "phone" else "")


@settings(max_examples=2000, deadline=None)
@given(facts=invites())
def test_kamailio_decides_every_request_as_the_controller_does(facts: InviteFacts) -> None:
    assert decide_route(loaded(CONFIG), facts) == decide_route(compile_routes(CONFIG), facts)


@settings(max_examples=500, deadline=None)
@given(number=NUMBERS, exclude=st.sampled_from([None, "100", "101"]))
def test_a_transfer_number_resolves_as_kamailio_would_route_it(number: str, exclude: str | None) -> None:
    table, published = compile_routes(CONFIG), loaded(CONFIG)
    assert targets_for_number(published, published.tenants["acme"], number, exclude=exclude) == \
        targets_for_number(table, table.tenants["acme"], number, exclude=exclude)


def test_every_configured_number_is_in_the_table() -> None:
    table = compile_routes(CONFIG)
    for tenant_id, tenant in CONFIG.tenants.items():
        routes = table.tenants[tenant_id]
        assert set(routes.extensions) == set(tenant.extensions)
        assert {d.number for d in routes.departments.values()} == {d.number for d in tenant.departments.values()}
        assert routes.sip_aliases == dict(tenant.sip_aliases)
        assert set(routes.dids) == set(tenant.dids)
        assert routes.numbering_plan == tenant.numbering_plan.rules()
        assert dataclasses.replace(routes.numbering_plan) == routes.numbering_plan
