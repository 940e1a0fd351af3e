"""The caller-ID policy table, every cell (``caller_id_for_target``)."""

from __future__ import annotations

import pytest

from controller.core import CallerIdPolicy, TargetKind, caller_id_for_target

CLIENT_NO, DID, COMPANY = "+4930111222", "+4930999000", "+4930000000"
INTERNAL = ["extension", "department", "sip_uri"]

# (policy, kind) -> expected, with client number and DID both known.
TABLE = {
    ("did", "extension"): DID,
    ("did", "department"): DID,
    ("did", "sip_uri"): DID,
    ("did", "trunk"): DID,
    ("client", "extension"): CLIENT_NO,
    ("client", "department"): CLIENT_NO,
    ("client", "sip_uri"): CLIENT_NO,
    ("client", "trunk"): DID,  # the law: never the client's number to an outside number
    ("company", "extension"): COMPANY,
    ("company", "department"): COMPANY,
    ("company", "sip_uri"): COMPANY,
    ("company", "trunk"): COMPANY,
}


def test_table_is_complete():
    assert set(TABLE) == {(p.value, k.value) for p in CallerIdPolicy for k in TargetKind}


@pytest.mark.parametrize(("policy", "kind"), sorted(TABLE))
def test_with_client_number_and_did(policy, kind):
    assert caller_id_for_target(policy, kind, CLIENT_NO, DID, COMPANY) == TABLE[policy, kind]


# Without a DID (e.g. an outgoing conversation), everything that would show the DID
# shows the company number instead.
NO_DID = {key: (COMPANY if value == DID else value) for key, value in TABLE.items()}


@pytest.mark.parametrize(("policy", "kind"), sorted(NO_DID))
def test_without_did(policy, kind):
    assert caller_id_for_target(policy, kind, CLIENT_NO, None, COMPANY) == NO_DID[policy, kind]


@pytest.mark.parametrize("kind", INTERNAL)
@pytest.mark.parametrize("client_number", [None, ""])
def test_anonymous_client_falls_back_to_did_then_company(kind, client_number):
    assert caller_id_for_target("client", kind, client_number, DID, COMPANY) == DID
    assert caller_id_for_target("client", kind, client_number, None, COMPANY) == COMPANY


@pytest.mark.parametrize("client_number", [CLIENT_NO, None])
@pytest.mark.parametrize("did", [DID, None])
def test_client_number_never_reaches_the_trunk(client_number, did):
    for policy in CallerIdPolicy:
        assert caller_id_for_target(policy, TargetKind.TRUNK, client_number, did, COMPANY) != CLIENT_NO


def test_accepts_enums_and_rejects_unknown_values():
    assert caller_id_for_target(CallerIdPolicy.CLIENT, TargetKind.SIP_URI, CLIENT_NO, DID, COMPANY) == CLIENT_NO
    with pytest.raises(ValueError):
        caller_id_for_target("caller", "extension", CLIENT_NO, DID, COMPANY)
    with pytest.raises(ValueError):
        caller_id_for_target("did", "mobile", CLIENT_NO, DID, COMPANY)
