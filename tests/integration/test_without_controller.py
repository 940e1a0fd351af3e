"""Ordinary calls never depend on the controller: Kamailio routes them from the published routing table
and records them itself. With the controller stopped, a DID call reaches its employee, a department
rings all its members, an employee calls out through the trunk, all with media anchored; a `#` does
nothing harmful; and once the controller is back, a new call's transfer works. A configuration change
reaches Kamailio by publication, whole, without restarting it."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import yaml

from controller.adapters.dtmf import QUEUED_DIGIT_MAX_AGE_S
from controller.config import parse_config
from controller.devstack.phone import Phone, exchange, wait_until
from tests.integration.calls import (
    CLIENT,
    A,
    B,
    assert_talking,
    connect,
    eventually,
    gone,
    observe_for,
    person,
    sip_call_id,
    target,
)
from tests.integration.conftest import CLIENT_NUMBER, PHONES_IP, TRUNK_IP, Stack
from tests.integration.test_department_answer import SALES_DID, register_vera

pytestmark = pytest.mark.integration

V = 0x44  # Vera's voice


def stop_controller(stack: Stack) -> None:
    stack.local.processes["controller"].stop()
    assert not stack.local.processes["controller"].alive()


def test_calls_connect_while_the_controller_is_down(own_stack: Stack, people: list[Phone]) -> None:
    stack = own_stack
    stop_controller(stack)

    # a client calls a DID: Anna answers and they hear each other, media anchored as always
    client, anna = connect(stack, people, "incoming", a_leaves_ms=None, client_leaves_ms=None)
    call_id = sip_call_id(client)
    assert call_id in stack.rtpengine_calls()
    answered = stack.wait_event(call_id, "call.answered")  # Kamailio keeps the event log itself
    assert answered["conversation"]

    # Anna presses # and a number: nothing happens to anybody (no controller to act on it), and the
    # call goes on, both still hearing each other
    boris = target(stack, people, "boris", "101", "employee_answer.xml")
    anna.press("#101")
    pressed = time.time()
    observe_for(3.0, lambda: _not_rung(boris), what="nobody is rung for a # while the controller is down")
    eventually(lambda: assert_talking(client, anna, CLIENT, A))
    client.close()
    anna.close()
    boris.close()

    # a client calls the sales department: both members ring, Vera answers, Boris's phone is cancelled
    vera_port = register_vera(stack)
    boris = target(stack, people, "boris2", "101", "employee_ring_until_cancel.xml", B)
    vera = person(stack, "vera", "employee_answer.xml", V, ip=PHONES_IP, port=vera_port)
    people.append(vera)
    client = person(stack, "client2", "client_call_signalling.xml", CLIENT, ip=TRUNK_IP, remote=True,
                    pause_ms=15_000, service=SALES_DID, caller=CLIENT_NUMBER)
    people.append(client)
    wait_until(lambda: "INVITE" in boris.sipp.received_requests(), what="Boris's phone to ring")
    wait_until(lambda: "ACK" in vera.sipp.received_requests(), what="Vera to answer")
    wait_until(lambda: "CANCEL" in boris.sipp.received_requests(), what="Boris's phone to be cancelled")
    exchange(client, vera)
    eventually(lambda: assert_talking(client, vera, CLIENT, V))
    assert stack.wait_event(sip_call_id(client), "call.answered")["data"]["employee"] == "102"
    client.close()
    vera.close()

    # Anna calls a client's number: the call goes out through the trunk with the company's number
    client, anna = connect(stack, people, "outgoing", a_leaves_ms=None, client_leaves_ms=None)
    assert stack.acme.company_number in client.sipp.received_header("INVITE", "From")[0]
    client.close()
    anna.close()

    # the controller comes back after a long outage: the digits pressed meanwhile are too old to act on
    # (counted and dropped: no late transfer), and the next call's transfer works
    # (rtpengine stamps a digit in whole seconds when it reports it, which a loaded box delays: a margin)
    wait_until(lambda: time.time() > pressed + QUEUED_DIGIT_MAX_AGE_S + 3,
               what="the digits pressed while the controller was down to be stale")
    stack.local.start_controller()
    assert any(f"(4 older than {QUEUED_DIGIT_MAX_AGE_S} s dropped)" in m for m in stack.controller_log())
    client, anna = connect(stack, people, "incoming", a_leaves_ms=4000, client_leaves_ms=None)
    boris = target(stack, people, "boris3", "101", "employee_answer.xml", pause_ms=500)
    anna.press("#101")
    wait_until(lambda: "ACK" in boris.sipp.received_requests(), what="Boris to answer the transfer")
    wait_until(lambda: gone(anna), timeout=10, what="Anna to hang up (the transfer completes)")
    eventually(lambda: assert_talking(client, boris, CLIENT, B), timeout=8)
    assert stack.wait_event(sip_call_id(client), "transfer.completed")["data"]["mode"] == "attended"


def _not_rung(phone: Phone) -> None:
    assert "INVITE" not in phone.sipp.received_requests(), "a phone was rung"


def _config_with_did(stack: Stack, extension: str) -> Any:
    data = yaml.safe_load(stack.local.config_path.read_text())
    data["tenants"]["acme"]["dids"]["+74951110000"] = {"extension": extension}
    return parse_config(data)


def test_a_moved_did_routes_the_next_call_without_restarting_kamailio(own_stack: Stack) -> None:
    stack = own_stack
    kamailio = stack.local.processes["kamailio"].pid
    anna, boris = stack.employee("100"), stack.employee("101")

    stack.local.publish(_config_with_did(stack, "101"))  # the DID that rang Anna rings Boris now
    client = stack.client_call("+74951110000", talk_ms=300)
    assert client.wait() == 0, client.describe_failure()
    assert boris.wait() == 0 and boris.received_requests() == ["INVITE", "ACK", "BYE"]
    anna.stop()
    assert "INVITE" not in anna.received_requests()
    assert stack.local.processes["kamailio"].pid == kamailio  # the same Kamailio, never restarted

    # publication after publication while calls arrive: every call goes to one of the two, never to neither
    calls = 12
    anna = stack.party("anna-many", "employee_answer.xml", PHONES_IP, stack.contact_port("100"), pause_ms=100,
                       calls=calls).start()
    boris = stack.party("boris-many", "employee_answer.xml", PHONES_IP, stack.contact_port("101"), pause_ms=100,
                        calls=calls).start()
    anna.wait_bound()
    boris.wait_bound()
    configs = [_config_with_did(stack, "100"), _config_with_did(stack, "101")]
    flipping = threading.Event()

    def flip() -> None:
        n = 0
        while not flipping.is_set():
            stack.local.publish(configs[n % 2])
            n += 1

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        for n in range(calls):
            client = stack.client_call("+74951110000", talk_ms=100)
            assert client.wait() == 0, f"call {n} was not answered: {client.describe_failure()}"
    finally:
        flipping.set()
        flipper.join()
    answered = {p.name: p.received_requests().count("ACK") for p in (anna, boris)}
    assert sum(answered.values()) == calls, answered
    anna.stop()
    boris.stop()
