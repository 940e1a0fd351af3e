"""The routing decision for a new INVITE, branch by branch, on config/example.yaml."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from controller.config import Config, load_config, parse_config
from controller.routing.compiler import compile_routes, encoded
from controller.routing.decision import (
    REFUSED_NUMBER,
    UNKNOWN_NUMBER,
    InviteFacts,
    NumberTargets,
    RouteDecision,
    RouteRejection,
    Target,
    decide_route,
    targets_for_number,
    targets_for_origin,
)
from controller.routing.numbering import Refusal, check_outside
from controller.routing.table import RoutingTable

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
CONFIG = load_config(EXAMPLE)

ANNA = Target("sip:100@127.0.0.3:5080", lookup=False, extension="100")  # static contacts
BORIS = Target("sip:101@127.0.0.3:5081", lookup=False, extension="101")
VERA = Target("sip:102@acme.test", lookup=True, extension="102")  # registers
COMPANY = "+74950000000"


def routes(config: Config) -> RoutingTable:
    """The routing table of `config` exactly as Kamailio loads it: compiled, encoded, published, decoded."""
    return RoutingTable.from_json_data(json.loads(encoded(compile_routes(config))))


TABLE = routes(CONFIG)


def decide(config: Config, facts: InviteFacts) -> RouteDecision | RouteRejection:
    return decide_route(routes(config), facts)


def from_trunk(ruri_user: str, *, port: int = 5060, from_user: str = "+79161112233") -> InviteFacts:
    return InviteFacts(
        call_id="call-1",
        source_ip="127.0.0.2",
        source_port=port,
        from_user=from_user,
        from_domain="127.0.0.2",
        ruri_user=ruri_user,
        ruri_domain="127.0.0.1",
        conversation_id="conv-1",
        peer="trunk",  # Kamailio matched the source address against the trunks
    )


def from_phone(caller: str, ruri_user: str, *, domain: str = "acme.test", from_user: str | None = None) -> InviteFacts:
    """A phone's INVITE that Kamailio authenticated as `caller` (From may say anything)."""
    return InviteFacts(
        call_id="call-2",
        source_ip="127.0.0.3",
        source_port=5080,
        from_user=caller if from_user is None else from_user,
        from_domain=domain,
        ruri_user=ruri_user,
        ruri_domain=domain,
        conversation_id="conv-2",
        peer="phone",
        auth_user=caller,
    )


def variant(**trunk_changes: Any) -> Config:
    """The example with the carrier trunk changed."""
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["trunks"]["carrier"].update(trunk_changes)
    return parse_config(data)


# ---------------------------------------------------------------------------------------------
# incoming


@pytest.mark.parametrize("dialled", ["+74951110000", "74951110000"])
def test_incoming_did_to_extension(dialled: str) -> None:
    assert decide(CONFIG, from_trunk(dialled)) == RouteDecision(
        conversation_id="conv-1",
        tenant_id="acme",
        direction="incoming",
        client_number="+79161112233",
        employee="100",
        did="+74951110000",  # as configured, whatever the carrier sent
        targets=(ANNA,),
        from_user=None,
        origin="did:+74951110000->extension:100",
        trunk="carrier",  # the client's trunk: the call came in through it
    )


@pytest.mark.parametrize("dialled", ["+74951110001", "74951110001"])
def test_incoming_did_to_department_rings_all_members(dialled: str) -> None:
    assert decide(CONFIG, from_trunk(dialled)) == RouteDecision(
        conversation_id="conv-1",
        tenant_id="acme",
        direction="incoming",
        client_number="+79161112233",
        employee=None,
        did="+74951110001",
        targets=(BORIS, VERA),
        from_user=None,
        origin="did:+74951110001->department:sales",
        trunk="carrier",
    )


def test_incoming_anonymous_client_has_no_number() -> None:
    decision = decide(CONFIG, from_trunk("+74951110000", from_user=""))
    assert isinstance(decision, RouteDecision) and decision.client_number is None


@pytest.mark.parametrize("dialled", ["+74951119999", "100", "200", "300", "", "++74951110000"])
def test_incoming_unknown_did(dialled: str) -> None:
    # Clients reach employees only through DIDs, never by short numbers.
    assert decide(CONFIG, from_trunk(dialled)) == RouteRejection(404, "Not Found", "unknown_did")


@pytest.mark.parametrize(
    ("config", "port", "direction_or_cause"),
    [
        (CONFIG, 5060, "incoming"),
        (CONFIG, 41234, "incoming"),  # match_port: false accepts any source port
        (variant(match_port=True), 5060, "incoming"),
        (variant(match_port=True), 41234, "unknown_caller"),  # not the trunk: must be an employee
    ],
    ids=["any-port-5060", "any-port-other", "match-port-5060", "match-port-other"],
)
def test_trunk_match(config: Config, port: int, direction_or_cause: str) -> None:
    result = decide(config, from_trunk("+74951110000", port=port))
    got = result.direction if isinstance(result, RouteDecision) else result.cause
    assert got == direction_or_cause


def test_source_ip_not_a_trunk_is_not_incoming() -> None:
    facts = dataclasses.replace(from_trunk("+74951110000"), source_ip="127.0.0.9")
    assert decide(CONFIG, facts) == RouteRejection(403, "Forbidden", "unknown_caller")


# ---------------------------------------------------------------------------------------------
# from an employee


@pytest.mark.parametrize(
    ("caller", "dialled", "targets", "origin"),
    [
        ("100", "101", (BORIS,), "extension:101"),
        ("100", "102", (VERA,), "extension:102"),
        ("102", "100", (ANNA,), "extension:100"),
        ("100", "200", (BORIS, VERA), "department:sales"),
        ("101", "200", (VERA,), "department:sales"),  # the caller does not ring himself
    ],
)
def test_internal_calls(caller: str, dialled: str, targets: tuple[Target, ...], origin: str) -> None:
    assert decide(CONFIG, from_phone(caller, dialled)) == RouteDecision(
        conversation_id="conv-2",
        tenant_id="acme",
        direction="internal",
        client_number=None,
        employee=caller,
        did=None,
        targets=targets,
        from_user=None,
        origin=origin,
    )


def test_alias_is_outgoing_to_the_sip_uri() -> None:
    assert decide(CONFIG, from_phone("101", "300")) == RouteDecision(
        conversation_id="conv-2",
        tenant_id="acme",
        direction="outgoing",
        client_number="300",
        employee="101",
        did=None,
        targets=(Target("sip:reception@127.0.0.4:5060", lookup=False),),
        from_user=COMPANY,
        origin="alias:300",
    )


@pytest.mark.parametrize(("dialled", "sent"), [
    ("+79161234567", "+79161234567"),
    ("89161234567", "+79161234567"),  # the carrier gets the E.164 form, however it was dialled
    ("79161234567", "+79161234567"),
    ("9161234567", "+79161234567"),
    ("74951110000", "+74951110000"),  # an employee may call the tenant's own DID (a transfer may not)
    ("112", "112"),  # an outside short number goes out as dialled
])
def test_phone_number_is_outgoing_through_the_trunk(dialled: str, sent: str) -> None:
    assert decide(CONFIG, from_phone("100", dialled)) == RouteDecision(
        conversation_id="conv-2",
        tenant_id="acme",
        direction="outgoing",
        client_number=dialled,
        employee="100",
        did=None,
        targets=(Target(f"sip:{sent}@127.0.0.2:5060", lookup=False),),
        from_user=COMPANY,
        origin="trunk:carrier",
        trunk="carrier",  # the call goes out through it
    )


@pytest.mark.parametrize(("dialled", "cause"), [
    ("+12125551234", "number_not_allowed"),  # another country: acme's plan allows Russia only
    ("81012125551234", "number_not_allowed"),  # the same, with the international prefix
    ("88091234567", "number_denied"),  # premium rate
    ("+78031234567", "number_denied"),
    ("87771234567", "number_denied"),  # Kazakhstan shares +7 but is charged as international
    ("+8816123456789", "number_denied"),  # satellite: denied before "not allowed"
    ("1040", "number_wrong_length"),  # no national number has 4 digits
    ("891612345678", "number_wrong_length"),
    ("+7916123456", "number_wrong_length"),
    ("8" * 16, "number_too_long"),  # more than E.164's 15 digits: refused, never cut short
    ("+" + "7" * 16, "number_too_long"),
    ("810" + "1" * 16, "number_too_long"),
    ("7" * 40, "number_too_long"),
])
def test_outside_numbers_the_plan_refuses(dialled: str, cause: str) -> None:
    result = decide(CONFIG, from_phone("100", dialled))
    code = 484 if cause in ("number_wrong_length", "number_too_long") else 403
    assert isinstance(result, RouteRejection) and (result.code, result.cause) == (code, cause)
    found = targets_for_number(TABLE, TABLE.tenants["acme"], dialled)
    assert found is not None and found.kind == "trunk" and found.targets == () and found.refusal is not None


def test_every_refusal_has_a_route_rejection() -> None:
    assert set(REFUSED_NUMBER) == set(Refusal)
    assert len({rejection.cause for rejection in REFUSED_NUMBER.values()}) == len(Refusal)


@pytest.mark.parametrize(
    ("changes", "uri"),
    [
        ({"transport": "tcp"}, "sip:+79161234567@127.0.0.2:5060;transport=tcp"),
        ({"port": 5070}, "sip:+79161234567@127.0.0.2:5070"),
        ({"address": "2001:db8::2"}, "sip:+79161234567@[2001:db8::2]:5060"),
    ],
    ids=["tcp", "port", "ipv6"],
)
def test_outgoing_uri_follows_the_trunk(changes: dict[str, Any], uri: str) -> None:
    decision = decide(variant(**changes), from_phone("100", "+79161234567"))
    assert isinstance(decision, RouteDecision)
    assert decision.targets == (Target(uri, lookup=False),)


def test_domain_is_case_insensitive() -> None:
    decision = decide(CONFIG, from_phone("100", "101", domain="ACME.Test"))
    assert isinstance(decision, RouteDecision) and decision.tenant_id == "acme"


@pytest.mark.parametrize(
    ("facts", "rejection"),
    [
        (from_phone("100", "100"), RouteRejection(403, "Forbidden", "self_call")),
        (from_phone("100", "101", domain="other.test"), RouteRejection(403, "Forbidden", "unknown_caller")),
        (from_phone("999", "101"), RouteRejection(403, "Forbidden", "unknown_caller")),
        (from_phone("", "101"), RouteRejection(403, "Forbidden", "unknown_caller")),
        (from_phone("100", "reception"), RouteRejection(404, "Not Found", "unknown_number")),
        (
            from_phone("100", "12"),
            RouteRejection(404, "Not Found", "unknown_number"),
        ),  # too short for a phone
        (from_phone("100", ""), RouteRejection(404, "Not Found", "unknown_number")),
        (from_phone("100", "+7 916"), RouteRejection(404, "Not Found", "unknown_number")),
    ],
    ids=["self", "other-domain", "unknown-extension", "no-user", "letters", "too-short", "empty", "space"],
)
def test_rejections(facts: InviteFacts, rejection: RouteRejection) -> None:
    assert decide(CONFIG, facts) == rejection


def test_calling_a_department_of_which_you_are_the_only_member() -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["tenants"]["acme"]["departments"]["sales"]["members"] = ["101"]
    config = parse_config(data)
    assert decide(config, from_phone("101", "200")) == RouteRejection(403, "Forbidden", "self_call")
    decision = decide(config, from_phone("100", "200"))
    assert isinstance(decision, RouteDecision) and decision.targets == (BORIS,)


# ---------------------------------------------------------------------------------------------
# JSON-RPC shapes


def test_decision_jsonrpc_result() -> None:
    decision = decide(CONFIG, from_trunk("74951110001"))
    result = decision.to_jsonrpc_result()
    assert result == {
        "action": "route",
        "conversation": "conv-1",
        "tenant": "acme",
        "direction": "incoming",
        "targets": [{"uri": BORIS.uri, "lookup": 0, "ext": "101"}, {"uri": VERA.uri, "lookup": 1, "ext": "102"}],
        "from_user": "",
        "origin": "did:+74951110001->department:sales",
        "dtmf_block": "callee",  # the employee's side: the talk options never reach the client
    }
    # never offered with rtpengine's DTMF injection: the controller enables it at the first digit it passes on
    assert "dtmf_inject" not in result
    # ints, not bools: jansson tells them apart
    assert all(type(target["lookup"]) is int for target in result["targets"])


def test_outgoing_decision_jsonrpc_result_has_the_caller_id() -> None:
    result = decide(CONFIG, from_phone("100", "+79161234567")).to_jsonrpc_result()
    assert (result["direction"], result["from_user"], result["origin"]) == (
        "outgoing",
        COMPANY,
        "trunk:carrier",
    )
    assert result["targets"] == [{"uri": "sip:+79161234567@127.0.0.2:5060", "lookup": 0, "ext": ""}]


def test_rejection_jsonrpc_result() -> None:
    result = decide(CONFIG, from_trunk("+1000")).to_jsonrpc_result()
    assert result == {"action": "reject", "code": 404, "reason": "Not Found", "cause": "unknown_did"}


def test_results_are_immutable() -> None:
    decision = decide(CONFIG, from_trunk("+74951110000"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.targets = ()  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# properties

_text = st.text(max_size=40)


@given(
    source_ip=st.one_of(st.sampled_from(["127.0.0.2", "127.0.0.3", "::1", ""]), _text),
    source_port=st.integers(min_value=0, max_value=65535),
    from_user=st.one_of(st.sampled_from(["100", "101", "102"]), _text),
    from_domain=st.one_of(st.just("acme.test"), _text),
    ruri_user=_text,
    peer=st.sampled_from(["trunk", "phone", "node", "", "stranger"]),
    auth_user=st.one_of(st.sampled_from(["100", "101", ""]), _text),
)
def test_any_invite_gets_a_decision_or_a_rejection(
    source_ip: str, source_port: int, from_user: str, from_domain: str, ruri_user: str, peer: str, auth_user: str
) -> None:
    facts = InviteFacts("c", source_ip, source_port, from_user, from_domain, ruri_user, "x", "conv", peer, auth_user)
    result = decide(CONFIG, facts)
    assert isinstance(result, RouteDecision | RouteRejection)
    assert result == decide(CONFIG, facts)  # deterministic
    json.dumps(result.to_jsonrpc_result())  # always serialisable for Kamailio
    if isinstance(result, RouteDecision):
        assert result.targets and result.conversation_id == "conv"
        assert all(target.uri.startswith("sip:") for target in result.targets)


@given(number=st.from_regex(r"\+?[0-9]{3,24}", fullmatch=True))
def test_dialled_phone_numbers_leave_through_the_trunk_only_as_the_plan_allows(number: str) -> None:
    result = decide(CONFIG, from_phone("100", number))
    verdict = check_outside(CONFIG.tenants["acme"].numbering_plan, number)
    if number in {"100", "101", "102", "200", "300"}:
        assert isinstance(result, RouteDecision | RouteRejection)
        assert getattr(result, "direction", "internal") != "outgoing" or number == "300"
    elif len(number) == 3 and number != "112":
        assert result == UNKNOWN_NUMBER  # as long as acme's own numbers, and none of them
    elif number == "112":
        assert isinstance(result, RouteDecision) and result.targets == (Target("sip:112@127.0.0.2:5060", lookup=False),)
    elif verdict is None:
        assert result == UNKNOWN_NUMBER  # e.g. +0...: no country code starts with 0
    elif verdict.refusal is not None:
        assert result == REFUSED_NUMBER[verdict.refusal]
    else:
        assert verdict.number is not None
        assert isinstance(result, RouteDecision)
        assert result.direction == "outgoing" and result.origin == "trunk:carrier"
        assert result.targets == (Target(f"sip:{verdict.number}@127.0.0.2:5060", lookup=False),)
        # what goes out is E.164, at most 15 digits, in the tenant's own country, never a denied range
        assert verdict.number.startswith("+7") and len(verdict.number) <= 16
        assert not verdict.number.startswith(("+7803", "+7809", "+76", "+77"))


# ---------------------------------------------------------------------------------------------
# sending a call back to the routing step it came through (a failed transfer, A gone)


@pytest.mark.parametrize(
    ("origin", "exclude", "expected"),
    [
        # the department behind the DID rings again, without the transferor who did not answer
        ("did:+74951110001->department:sales", "101", NumberTargets("department", (VERA,), "department:sales")),
        ("did:+74951110001->department:sales", None, NumberTargets("department", (BORIS, VERA), "department:sales")),
        ("department:sales", "102", NumberTargets("department", (BORIS,), "department:sales")),
        # a DID to one extension: that extension is the transferor, so nobody is left to ring
        ("did:+74951110000->extension:100", "100", NumberTargets("extension", (), "extension:100")),
        ("extension:101", "100", NumberTargets("extension", (BORIS,), "extension:101")),
        # an outgoing call's routing step is the employee's own dial-out: nothing to go back to
        ("trunk:carrier", "100", None),
        ("alias:300", "100", None),
        # steps the configuration no longer has, and garbage
        ("did:+74951110001->department:gone", None, None),
        ("extension:999", None, None),
        ("", None, None),
        ("->", None, None),
    ],
)
def test_targets_for_origin(origin: str, exclude: str | None, expected: NumberTargets | None) -> None:
    assert targets_for_origin(TABLE.tenants["acme"], origin, exclude=exclude) == expected


def test_every_route_decision_origin_resolves_back_to_its_targets() -> None:
    for did in CONFIG.tenants["acme"].dids:
        decision = decide(CONFIG, from_trunk(did))
        assert isinstance(decision, RouteDecision)
        found = targets_for_origin(TABLE.tenants["acme"], decision.origin)
        assert found is not None and found.targets == decision.targets


def test_every_target_names_the_employee_it_rings() -> None:
    """Kamailio tags each branch of a department call with its member, so it can say who answered
    whatever the phone put in its Contact."""
    decision = decide(CONFIG, from_trunk("+74951110001"))
    assert isinstance(decision, RouteDecision)
    members = CONFIG.tenants["acme"].departments["sales"].members
    assert [t.extension for t in decision.targets] == list(members)
    assert [t["ext"] for t in decision.to_jsonrpc_result()["targets"]] == list(members)


@pytest.mark.parametrize(("facts", "side"), [("incoming", "callee"), ("outgoing", "caller"), ("internal", "")])
def test_the_employees_side_has_its_dtmf_blocked(facts: str, side: str) -> None:
    decision = decide(CONFIG, {
        "incoming": lambda: from_trunk("+74951110000"),
        "outgoing": lambda: from_phone("100", "79161234567"),
        "internal": lambda: from_phone("100", "101"),
    }[facts]())
    assert isinstance(decision, RouteDecision) and decision.direction == facts
    result = decision.to_jsonrpc_result()
    assert result["dtmf_block"] == side


@pytest.mark.parametrize("number", ["104", "109", "999"])
def test_an_unassigned_number_of_extension_length_is_unknown_never_dialled_out(number: str) -> None:
    assert targets_for_number(TABLE, TABLE.tenants["acme"], number) is None
    assert decide(CONFIG, from_phone("100", number)) == UNKNOWN_NUMBER


@pytest.mark.parametrize("number", ["79161234567", "+79161234567", "89161234567"])
def test_numbers_of_other_lengths_still_go_out(number: str) -> None:
    found = targets_for_number(TABLE, TABLE.tenants["acme"], number)
    assert found is not None and found.kind == "trunk" and found.refusal is None
    assert found.targets == (Target("sip:+79161234567@127.0.0.2:5060", lookup=False),)


def test_a_short_number_of_another_length_goes_out_only_when_listed() -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert targets_for_number(TABLE, TABLE.tenants["acme"], "1040") == NumberTargets(
        "trunk", (), "trunk:carrier", Refusal.WRONG_LENGTH)
    data["tenants"]["acme"]["outside_short_numbers"] = ["112", "1040"]
    config = parse_config(data)
    found = targets_for_number(routes(config), routes(config).tenants["acme"], "1040")
    assert found == NumberTargets("trunk", (Target("sip:1040@127.0.0.2:5060", lookup=False),), "trunk:carrier")


# ---------------------------------------------------------------------------------------------
# a transfer never loops back: the conversation's own numbers, in any written form

OWN = ("+79161112233", "+74951110000", "100")  # the client, the DID it called, the transferor


@pytest.mark.parametrize("dialled", [
    "+79161112233", "79161112233", "89161112233", "9161112233", "8107" + "9161112233",  # the client
    "74951110000", "84951110000", "4951110000",  # the DID
    "+74951110001",  # another DID of the tenant, passed in by the engine
])
def test_a_transfer_to_an_own_number_is_refused_in_any_form(dialled: str) -> None:
    found = targets_for_number(TABLE, TABLE.tenants["acme"], dialled, exclude="100",
                               own_numbers=(*OWN, "+74951110001"))
    assert found == NumberTargets("trunk", (), "trunk:carrier", Refusal.OWN_NUMBER)
    assert decide(CONFIG, from_phone("100", dialled)).direction == "outgoing"  # an employee's own call may


def test_own_numbers_do_not_hide_other_refusals_or_other_numbers() -> None:
    found = targets_for_number(TABLE, TABLE.tenants["acme"], "+12125551234", own_numbers=("+12125551234",))
    assert found is not None and found.refusal is Refusal.NOT_ALLOWED  # the plan's refusal comes first
    found = targets_for_number(TABLE, TABLE.tenants["acme"], "89161112234", own_numbers=OWN)
    assert found is not None and found.refusal is None and found.targets


def test_own_numbers_and_aliases_and_extensions() -> None:
    # an outgoing call to alias 300 has "300" as its client: transferring it to 300 would loop
    assert targets_for_number(TABLE, TABLE.tenants["acme"], "300", own_numbers=("300",)) == NumberTargets(
        "sip_uri", (), "alias:300", Refusal.OWN_NUMBER)
    # extensions are the engine's `exclude`: a client whose caller id happens to be 101 does not hide Boris
    found = targets_for_number(TABLE, TABLE.tenants["acme"], "101", exclude="100", own_numbers=("101",))
    assert found == NumberTargets("extension", (BORIS,), "extension:101")
    assert targets_for_number(TABLE, TABLE.tenants["acme"], "100", exclude="100", own_numbers=OWN) == NumberTargets(
        "extension", (), "extension:100")
    assert targets_for_number(TABLE, TABLE.tenants["acme"], "reception", own_numbers=OWN) is None


def test_identity_is_the_authenticated_user_never_from() -> None:
    """Anna (100) authenticated, but her From says Boris (101): the call is Anna's."""
    decision = decide(CONFIG, from_phone("100", "+79161234567", from_user="101"))
    assert isinstance(decision, RouteDecision) and decision.employee == "100"


@pytest.mark.parametrize("peer", ["", "node", "stranger"])
def test_nobody_kamailio_does_not_vouch_for_is_routed(peer: str) -> None:
    facts = dataclasses.replace(from_phone("100", "+79161234567"), peer=peer)
    assert decide(CONFIG, facts) == RouteRejection(403, "Forbidden", "unknown_caller")
    unauthenticated = dataclasses.replace(from_phone("100", "+79161234567"), auth_user="")
    assert decide(CONFIG, unauthenticated) == RouteRejection(403, "Forbidden", "unknown_caller")


def test_a_trunk_claim_from_a_non_trunk_address_is_not_an_incoming_call() -> None:
    facts = dataclasses.replace(from_trunk("+74951110000"), source_ip="127.0.0.9")
    assert isinstance(decide(CONFIG, facts), RouteRejection)
