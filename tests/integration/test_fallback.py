"""When the transfer fails after A has left: the tenant's per-direction fallback rule, as callers hear it.

The test config (tenant acme) gives B 4 s to answer. Incoming calls return to A with warning prompts;
outgoing calls apologise with the tenant's text (espeak-ng) and hang up.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.devstack.phone import Phone, exchange, wait_until
from controller.devstack.stack import StackOptions
from tests.integration.calls import (
    CLIENT,
    A,
    assert_talking,
    connect,
    eventually,
    gone,
    hears_only,
    on_hold,
    sip_call_id,
    target,
)
from tests.integration.conftest import BETA_DID, CLIENT_NUMBER, PHONES_IP, SUPPORT_DID, Stack, start_stack

GLEB = 0x44  # the support department's other member

pytestmark = pytest.mark.integration


def test_no_answer_on_an_incoming_call_returns_to_a_with_warnings(stack: Stack, people: list[Phone]) -> None:
    client, a = connect(stack, people, "incoming", a_leaves_ms=2500, client_leaves_ms=20000)
    b = target(stack, people, "boris", "101", "employee_ring_until_cancel.xml")
    a.press("#101")
    wait_until(lambda: "INVITE" in b.sipp.received_requests(), what="B's INVITE")
    wait_until(lambda: gone(a), timeout=10, what="A to leave")

    # A's phone is free again and will take the call back
    a_again = Phone.start("anna-again", "employee_answer.xml", A, stack.sipp_dir, ip=PHONES_IP,
                          port=stack.contact_port("100"), pause_ms=300)
    people.append(a_again)
    on_hold(client)  # B rings alone: the client hears the music and nothing else

    # B does not answer within 4 s: B's phone is cancelled and A's phone rings again
    wait_until(lambda: "CANCEL" in b.sipp.received_requests(), timeout=8, what="B's CANCEL")
    wait_until(lambda: "ACK" in a_again.sipp.received_requests(), timeout=8, what="A to answer again")
    # the warnings: A hears that the transfer failed, the client that it could not be made; each hears
    # their warning and nothing else, though both talk
    exchange(client, a_again, packets=50)
    hears_only(a_again, audio=True, what="the transferor's warning")
    hears_only(client, audio=True, what="the client's warning")
    # the warnings end (about 3 s) and A and the client hear each other, and nothing else
    eventually(lambda: assert_talking(client, a_again, CLIENT, A), timeout=8)
    event = stack.wait_event(sip_call_id(client), "transfer.returned")
    assert event["data"]["cause"] == "no_answer" and event["data"]["rule"] == "return_to_transferor"
    # how long each step took: B rang its 4 s (with A, then alone), A's phone rang, the warnings played
    steps = event["data"]["steps_ms"]
    assert 3500 <= steps["ringing"] + steps["blind_ringing"] <= 5500, steps
    assert steps["ringing_transferor"] > 0 and 2000 <= steps["reconnecting"] <= 5000, steps


def test_a_does_not_answer_either_the_department_the_call_came_through_gets_it(
        stack: Stack, people: list[Phone]) -> None:
    """The client called the support department (Boris 101 and Gleb 103); Boris answered, transferred
    blind to Anna (100), who does not answer; Boris's phone does not answer the recall either. The
    incoming rule says "return to A, then to the origin": the department rings again without Boris,
    and Gleb gets the client."""
    gleb = target(stack, people, "gleb", "103", "employee_ring_until_cancel.xml", GLEB)
    client, boris = connect(stack, people, "incoming", a_leaves_ms=2500, client_leaves_ms=18000, a_ext="101",
                            did=SUPPORT_DID)
    wait_until(lambda: gone(gleb), what="Gleb's phone to be cancelled when Boris answered")
    anna = target(stack, people, "anna", "100", "employee_ring_until_cancel.xml")
    boris.press("#100")
    wait_until(lambda: "INVITE" in anna.sipp.received_requests(), what="Anna's INVITE")
    wait_until(lambda: gone(boris), timeout=10, what="Boris to leave")
    boris_again = target(stack, people, "boris-again", "101", "employee_ring_until_cancel.xml", A)
    gleb_again = target(stack, people, "gleb-again", "103", "employee_answer.xml", GLEB, pause_ms=300)
    on_hold(client)

    # Anna gives up after 4 s, then Boris's phone rings 4 s unanswered (the client keeps the music)
    wait_until(lambda: "CANCEL" in anna.sipp.received_requests(), timeout=8, what="Anna's CANCEL")
    wait_until(lambda: "INVITE" in boris_again.sipp.received_requests(), timeout=5, what="the recall to Boris")
    on_hold(client)
    wait_until(lambda: "CANCEL" in boris_again.sipp.received_requests(), timeout=8, what="the recall's CANCEL")
    # the department again, without Boris: Gleb's phone rings, showing the client's number as the first time
    wait_until(lambda: "ACK" in gleb_again.sipp.received_requests(), timeout=8, what="Gleb to answer")
    seen = gleb_again.sipp.received_header("INVITE", "From")
    assert seen and f"sip:{CLIENT_NUMBER}@" in seen[0], f"Gleb saw From: {seen}"
    eventually(lambda: assert_talking(client, gleb_again, CLIENT, GLEB))

    event = stack.wait_event(sip_call_id(client), "transfer.failed")
    assert (event["data"]["cause"], event["data"]["rule"], event["data"]["mode"]) == (
        "no_answer", "return_to_transferor", "origin")
    steps = event["data"]["steps_ms"]
    assert 3500 <= steps["ringing_transferor"] <= 5500, f"A's phone did not ring its 4 s: {steps}"
    assert steps["routing_to_origin"] < 1000 and 0 < steps["ringing_origin"] < 3000, steps
    origin = stack.wait_event(sip_call_id(client), "transfer.origin")["data"]
    assert (origin["origin"], origin["targets"]) == (f"did:{SUPPORT_DID}->department:support", 1)
    # the client hangs up on Gleb in the end: Gleb gets the BYE; every phone's scenario ran to its end
    for phone in (anna, boris_again, client, gleb_again):
        assert phone.sipp.wait() == 0, phone.sipp.describe_failure()


def test_busy_on_an_outgoing_call_apologises_and_hangs_up(stack: Stack, people: list[Phone]) -> None:
    client, a = connect(stack, people, "outgoing", a_leaves_ms=2800, client_leaves_ms=None)
    b = target(stack, people, "boris", "101", "employee_busy.xml", pause_ms=2500)
    a.press("#101")
    wait_until(lambda: gone(a), timeout=10, what="A to leave")
    wait_until(lambda: gone(b), timeout=10, what="B to answer busy (its phone sent 486)")
    # the apology (the tenant's text, spoken by espeak-ng, about 2 s), then the BYE
    started = time.monotonic()
    client.voice.reset()
    wait_until(lambda: "BYE" in client.sipp.received_requests(), timeout=10, what="the client's BYE")
    lasted = time.monotonic() - started
    _, prompt = client.voice.snapshot()
    assert prompt >= 50, f"the client heard no apology ({prompt} packets)"
    assert 1.0 < lasted < 6.0, f"the BYE came {lasted:.1f} s after B was busy"
    assert client.sipp.wait() == 0, client.sipp.describe_failure()
    event = stack.wait_event(sip_call_id(client), "transfer.failed")
    assert event["data"]["cause"] == "busy" and event["data"]["rule"] == "apologize"


def test_controller_restart_while_b_rings_still_applies_the_fallback(stack: Stack, people: list[Phone]) -> None:
    client, a = connect(stack, people, "outgoing", a_leaves_ms=2800, client_leaves_ms=None)
    b = target(stack, people, "boris", "101", "employee_ring_until_cancel.xml")
    a.press("#101")
    wait_until(lambda: "INVITE" in b.sipp.received_requests(), what="B's INVITE")
    wait_until(lambda: gone(a), timeout=10, what="A to leave")
    # the controller dies while B rings, and comes back; the no-answer deadline lives in Redis
    stack.local.restart_controller()
    wait_until(lambda: "CANCEL" in b.sipp.received_requests(), timeout=10, what="B's CANCEL after the restart")
    wait_until(lambda: "BYE" in client.sipp.received_requests(), timeout=10, what="the apology and BYE")
    assert client.voice.snapshot()[1] > 50, "the client heard no apology"
    assert client.sipp.wait() == 0, client.sipp.describe_failure()
    assert stack.wait_event(sip_call_id(client), "transfer.failed")["data"]["cause"] == "no_answer"


def test_decline_with_the_voicemail_rule_records_the_client(stack: Stack, people: list[Phone]) -> None:
    client, a = connect(stack, people, "incoming", a_leaves_ms=2500, client_leaves_ms=11000, tenant="beta",
                        a_ext="300", did=BETA_DID)
    b = target(stack, people, "b301", "301", "employee_decline.xml", tenant="beta", pause_ms=2000)
    a.press("#301")
    wait_until(lambda: gone(a), timeout=10, what="A to leave")
    wait_until(lambda: gone(b), timeout=10, what="B to decline")
    # the greeting (espeak-ng) and the beep, then the client's voice is forked to the recorder
    heard, greeting = client.hears(1.5)
    assert greeting > 20, f"the client heard no greeting: {heard}, {greeting}"
    voicemail_dir = stack.local.run_dir / "voicemail"
    wait_until(lambda: any(voicemail_dir.glob("*.raw")), timeout=8, what="the recording to start")
    client.talk(100)  # two seconds of the client's message
    assert client.sipp.wait() == 0, client.sipp.describe_failure()

    event = stack.wait_event(sip_call_id(client), "voicemail.recorded")
    message = event["data"]
    assert (message["tenant"], message["mailbox"], message["client_number"]) == ("beta", "301", CLIENT_NUMBER)
    wav = Path(message["file"])
    assert wav.exists() and wav.parent == voicemail_dir
    assert 1.5 <= message["seconds"] <= 4.0, f"implausible message length {message['seconds']} s"
    with wave.open(str(wav)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        # what the client said (A-law byte 0x11, a loud sample) is in the recording, not silence
        samples = [abs(int.from_bytes(w.readframes(1), "little", signed=True)) for _ in range(400)]
    assert max(samples) > 1000
    assert (voicemail_dir / f"{message['id']}.json").exists()

    listing = subprocess.run([sys.executable, "-m", "controller.cli", "voicemails", "--json",
                              "--config", str(stack.local.config_path)], capture_output=True, text=True, check=True)
    assert message["id"] in [m["id"] for m in json.loads(listing.stdout)]


@pytest.fixture
def short_ring_stack() -> Iterator[Stack]:
    """Kamailio gives an ordinary call only 3 s to be answered, less than the tenant's 4 s no-answer time."""
    local = start_stack("short-ring", options=StackOptions(ring_timeout_ms=3000))
    try:
        yield Stack(local)
    finally:
        local.stop()


def test_b_rings_the_tenants_time_even_beyond_kamailios_default(short_ring_stack: Stack,
                                                                 people: list[Phone]) -> None:
    """A tenant may let B ring longer than Kamailio's ring time for ordinary calls: the leg the controller
    originates carries its own timer, so B rings the full 4 s and the failure is a no-answer, not a 408."""
    stack = short_ring_stack
    client, a = connect(stack, people, "incoming", a_leaves_ms=None, client_leaves_ms=14000)
    b = target(stack, people, "boris", "101", "employee_ring_until_cancel.xml")
    a.press("#101")
    wait_until(lambda: "INVITE" in b.sipp.received_requests(), what="B's INVITE")
    rang_from = time.monotonic()
    wait_until(lambda: "CANCEL" in b.sipp.received_requests(), timeout=10, what="B's CANCEL")
    assert time.monotonic() - rang_from >= 3.5, "B was given up on before the tenant's 4 s"
    event = stack.wait_event(sip_call_id(client), "transfer.returned")
    assert (event["data"]["cause"], event["data"]["mode"]) == ("no_answer", "transferor_on_line"), event["data"]
    eventually(lambda: assert_talking(client, a, CLIENT, A))
    assert client.sipp.wait() == 0, client.sipp.describe_failure()


def test_an_ordinary_call_still_rings_only_kamailios_time(short_ring_stack: Stack, people: list[Phone]) -> None:
    """The other half: a call nobody transfers keeps the node's ring time (3 s here), then a 408."""
    stack = short_ring_stack
    anna = target(stack, people, "anna", "100", "employee_ring_until_cancel.xml", A)
    client = stack.client_call("+74951110000", scenario="client_rejected.xml")
    wait_until(lambda: "INVITE" in anna.sipp.received_requests(), what="Anna's INVITE")
    rang_from = time.monotonic()
    assert client.wait(15) == 0, client.describe_failure()
    assert 2.0 <= time.monotonic() - rang_from <= 4.5
    assert 408 in client.received_statuses() and "CANCEL" in anna.sipp.received_requests()
