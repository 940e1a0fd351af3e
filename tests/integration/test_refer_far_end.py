"""An outside transfer handed to the client's own trunk (issue 14 item 5), through the real stack.

The carrier trunk is marked `refer: true` and tenant acme hands its outside transfers to it
(`outside_transfers: refer`). The client is a SIPp caller on that trunk that accepts the PBX's REFER and
reports its own call to the target in NOTIFYs; A presses `#` and an outside number. What each party
hears is measured by the RTP parties.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controller.devstack.phone import Phone, wait_until
from tests.integration.calls import (
    CLIENT,
    DID,
    A,
    assert_talking,
    eventually,
    on_hold,
    person,
    sip_call_id,
)
from tests.integration.conftest import CLIENT_NUMBER, PHONES_IP, TRUNK_IP, Stack, make_test_config, start_stack

pytestmark = pytest.mark.integration

OUTSIDE = "89035556677"  # dialled by A; E.164 +79035556677


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    data = make_test_config()
    data["trunks"]["carrier"]["refer"] = True
    data["tenants"]["acme"]["outside_transfers"] = "refer"
    local = start_stack("far-end", data)
    try:
        yield Stack(local)
    finally:
        local.stop()


def call_with_a(stack: Stack, people: list[Phone], scenario: str, *, keys: dict[str, str] | None = None,
                talk_ms: int = 0) -> tuple[Phone, Phone]:
    """The client (on the REFER-accepting trunk) calls the DID; A answers and waits for the PBX's BYE."""
    a = person(stack, "anna", "employee_answer.xml", A, ip=PHONES_IP, port=stack.contact_port("100"))
    client = person(stack, "client", scenario, CLIENT, ip=TRUNK_IP, remote=True, service=DID, caller=CLIENT_NUMBER,
                    pause_ms=talk_ms, keys=keys)
    people += [a, client]
    wait_until(lambda: "ACK" in a.sipp.received_requests(), what="A to answer")
    eventually(lambda: assert_talking(client, a, CLIENT, A))
    return client, a


def dial_outside(stack: Stack, client: Phone, a: Phone) -> None:
    a.voice.send_dtmf(a.rtpengine(), "#" + OUTSIDE, gap_s=0.1)
    wait_until(lambda: "REFER" in client.sipp.received_requests(), timeout=10, what="the REFER to the trunk")
    trunk_ip, trunk_port = stack.trunk
    assert client.sipp.received_header("REFER", "Refer-To") == [f"<sip:+79035556677@{trunk_ip}:{trunk_port}>"]
    # the caller ID of the policy ("did"), never the client's own number to an outside number
    domain = stack.local.config.tenants["acme"].domain
    assert client.sipp.received_header("REFER", "Referred-By") == [f"<sip:{DID}@{domain}>"]


def test_the_trunk_calls_b_itself_and_the_pbx_lets_go(stack: Stack, people: list[Phone]) -> None:
    client, a = call_with_a(stack, people, "client_call_refer_succeeds.xml")
    dial_outside(stack, client, a)
    # the trunk calls B; the PBX's own media goes on meanwhile: the client's stream gets the hold
    # music and nothing of A, who hears ringback
    on_hold(client, a)
    # the trunk's NOTIFYs (100, 180, 200) were all answered 200, and after the 200 the PBX ended its
    # dialog: both the client's side and A got a BYE
    assert client.sipp.wait() == 0, client.sipp.describe_failure()
    assert client.sipp.sent_replies("REFER") == [202]
    assert client.sipp.received_statuses().count(200) >= 4  # the INVITE's and the three NOTIFYs'
    assert a.sipp.wait() == 0, a.sipp.describe_failure()
    assert "BYE" in a.sipp.received_requests() and "REFER" not in a.sipp.received_requests()
    call_id = sip_call_id(client)
    done = stack.wait_event(call_id, "transfer.completed")
    assert done["data"]["mode"] == "far_end"
    stack.wait_for(lambda: call_id not in stack.rtpengine_calls(), what="rtpengine to forget the call")


@pytest.mark.parametrize(("final", "state", "cause"), [
    ("486 Busy Here", "terminated;reason=noresource", "busy"),  # the trunk's call failed
    ("180 Ringing", "active;expires=60", "no_answer"),  # no final answer within the no-answer time (4 s)
])
def test_when_the_trunk_cannot_reach_b_the_client_is_back_with_a(stack: Stack, people: list[Phone], final: str,
                                                                 state: str, cause: str) -> None:
    client, a = call_with_a(stack, people, "client_call_refer_fails.xml", talk_ms=9000,
                            keys={"final": final, "final_state": state})
    dial_outside(stack, client, a)
    call_id = sip_call_id(client)
    returned = stack.wait_event(call_id, "transfer.returned")
    assert returned["data"]["cause"] == cause
    # the client's dialog never left the PBX: the client and A hear each other again, nobody else
    eventually(lambda: assert_talking(client, a, CLIENT, A))
    assert "BYE" not in client.sipp.received_requests()
    assert client.sipp.wait() == 0, client.sipp.describe_failure()  # the client hangs up on A
    assert a.sipp.wait() == 0 and "BYE" in a.sipp.received_requests()
