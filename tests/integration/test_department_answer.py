"""Who answered a department call, when the phone that answered registered a Contact that is not its
extension (baresip registers `102-0x...`, Linphone a random string).

The sales department (DID +74951110001) rings Boris (101, a static contact) and Vera (102, who
registers). Kamailio tags each branch with the member it rings, so the answer names the employee
whatever the Contact says: the event shows it, Vera cannot transfer the client to herself, and a
failed blind transfer comes back to Vera's phone, not to another member's.
"""

from __future__ import annotations

import pytest

from controller.devstack.phone import Phone, wait_until
from controller.devstack.stack import free_port
from tests.integration.calls import CLIENT, A, B, assert_talking, eventually, gone, person, sip_call_id, target
from tests.integration.conftest import CLIENT_NUMBER, PHONES_IP, TRUNK_IP, Stack

pytestmark = pytest.mark.integration

SALES_DID = "+74951110001"


def register_vera(stack: Stack) -> int:
    """Vera's phone registers extension 102 with the Contact user "102-0x7f3a"; returns its port."""
    port = free_port(address=PHONES_IP)
    reg = stack.party("vera-register", "employee_register_as.xml", PHONES_IP, port, remote=stack.local.sip_hostport,
                      service="102", keys={"domain": "acme.test", "contact_user": "102-0x7f3a"},
                      auth=stack.credentials("102")).start()
    assert reg.wait() == 0, reg.describe_failure()
    return port


def vera_answers(stack: Stack, people: list[Phone], scenario: str, pause_ms: int = 0) -> tuple[Phone, Phone]:
    """The client calls the sales department; Boris's phone rings on, Vera's answers."""
    port = register_vera(stack)
    boris = target(stack, people, "boris", "101", "employee_ring_until_cancel.xml", B)
    vera = person(stack, "vera", scenario, A, ip=PHONES_IP, port=port, pause_ms=pause_ms)
    people.append(vera)
    client = person(stack, "client", "client_call_signalling.xml", CLIENT, ip=TRUNK_IP, remote=True,
                    pause_ms=15_000, service=SALES_DID, caller=CLIENT_NUMBER)
    people.append(client)
    wait_until(lambda: "ACK" in vera.sipp.received_requests(), what="Vera to answer")
    wait_until(lambda: "CANCEL" in boris.sipp.received_requests(), what="Boris's phone to be cancelled")
    return client, vera


def test_the_answering_member_is_known_and_cannot_transfer_to_herself(stack: Stack, people: list[Phone]) -> None:
    client, vera = vera_answers(stack, people, "employee_answer.xml")
    call_id = sip_call_id(client)
    answered = stack.wait_event(call_id, "call.answered")
    assert answered["data"].get("employee") == "102", answered["data"]
    eventually(lambda: assert_talking(client, vera, CLIENT, A))

    vera.press("#102")
    refused = stack.wait_event(call_id, "transfer.refused")
    assert refused["data"]["cause"] == "self_target", refused["data"]
    heard, prompt = vera.hears(1.0)
    assert prompt > 10, f"Vera heard no refusal prompt: {heard}, other={prompt}"
    eventually(lambda: assert_talking(client, vera, CLIENT, A))
    assert vera.sipp.received_requests().count("INVITE") == 1, "Vera's own phone was rung for the transfer"


def test_a_failed_blind_transfer_rings_the_member_who_answered(stack: Stack, people: list[Phone]) -> None:
    """Vera transfers to Anna (100) and hangs up; Anna does not answer within 4 s: the incoming rule
    rings Vera's phone again, not Boris's."""
    client, vera = vera_answers(stack, people, "employee_answer_then_hangup.xml", pause_ms=3500)
    anna = target(stack, people, "anna", "100", "employee_ring_until_cancel.xml", 0x55)
    vera.press("#100")
    wait_until(lambda: "INVITE" in anna.sipp.received_requests(), what="Anna's INVITE")
    wait_until(lambda: gone(vera), timeout=10, what="Vera to hang up")
    assert "ACK" not in anna.sipp.received_requests()

    # the phones free again: Vera's takes the recall; Boris's must stay silent
    vera_port = vera.sipp.local[1]
    vera_again = person(stack, "vera-again", "employee_answer.xml", A, ip=PHONES_IP, port=vera_port, pause_ms=300)
    boris_again = target(stack, people, "boris-again", "101", "employee_ring_until_cancel.xml", B)
    people.append(vera_again)
    wait_until(lambda: "CANCEL" in anna.sipp.received_requests(), timeout=8, what="Anna's CANCEL")
    wait_until(lambda: "ACK" in vera_again.sipp.received_requests(), timeout=8, what="the recall to Vera")
    eventually(lambda: assert_talking(client, vera_again, CLIENT, A), timeout=8)
    assert boris_again.sipp.received_requests() == [], "another member's phone was rung for the recall"
    event = stack.wait_event(sip_call_id(client), "transfer.returned")
    assert (event["data"]["cause"], event["data"]["mode"]) == ("no_answer", "recalled"), event["data"]
