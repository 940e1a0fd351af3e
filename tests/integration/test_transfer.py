"""Hotkey transfers through the real stack, as the people on the phone experience them.

SIPp parties do the signalling (one per person); each person's audio comes from a Python RTP party
whose packets carry a byte naming the speaker, so "who hears whom" is measured, not assumed. The
client is on the carrier trunk, A is extension 100, B is extension 101 (static contacts).
"""

from __future__ import annotations

import pytest

from controller.devstack.phone import Phone, wait_until
from tests.integration.calls import (
    CLIENT,
    DID,
    A,
    B,
    assert_talking,
    connect,
    eventually,
    gone,
    hangs_up,
    hears_only,
    no_digits,
    on_hold,
    person,
    sip_call_id,
    target,
    waits_for_b,
)
from tests.integration.conftest import BETA_DID, BETA_HOLD_MARKER, CLIENT_NUMBER, Stack

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
def test_attended_transfer(stack: Stack, people: list[Phone], direction: str) -> None:
    # A leaves 5 s after the call is up; then the client and B talk, and one of them hangs up
    incoming = direction == "incoming"
    client, a = connect(stack, people, direction, a_leaves_ms=5000, client_leaves_ms=9000 if incoming else None)
    # incoming: B rings 1 s, answers, and waits for the client's BYE; outgoing: B answers at once and
    # hangs up 7 s later (the client, called by A, waits for a BYE)
    b = target(stack, people, "boris", "101", hangs_up(None if incoming else 7000), pause_ms=1000 if incoming else 7000)

    # A presses # 1 0 1: the client hears hold music and nothing else, and A no longer hears the client
    # (what A hears while B rings: test_star_while_b_rings_brings_a_back)
    a.press("#101")
    wait_until(lambda: "INVITE" in b.sipp.received_requests(), what="B's INVITE")
    # who B sees calling (tenant acme's policy "did"): the DID the client called, or, on A's outgoing
    # call, which came in on no DID, the company number, the same the client saw A's call come from
    company = stack.acme.company_number
    shown = DID if incoming else company
    for header in ("From", "P-Asserted-Identity"):
        seen = b.sipp.received_header("INVITE", header)
        assert seen and f"sip:{shown}@" in seen[0], f"B saw {header}: {seen}"
    if not incoming:
        seen = client.sipp.received_header("INVITE", "From")
        assert seen and f"sip:{company}@" in seen[0], f"the client saw A's call come from {seen}"
    on_hold(client, a)

    # B answers: A and B hear each other and nobody else (consultation); the client, still on hold,
    # hears neither and is heard by neither
    wait_until(lambda: "ACK" in b.sipp.received_requests(), what="B to answer")
    eventually(lambda: assert_talking(a, b, A, B, client))
    hears_only(client, audio=True, what="on hold during the consultation")
    on_hold(client, a, b)

    # A hangs up: the client and B hear each other and nobody else, the music stops, the client's
    # dialog lives on
    wait_until(lambda: gone(a), timeout=10, what="A to hang up")
    eventually(lambda: assert_talking(client, b, CLIENT, B))
    # in both directions A's hang-up leaves the client's dialog up (the client gets a BYE only at the
    # end, from B or, incoming, by hanging up itself)
    assert "BYE" not in client.sipp.received_requests(), "the client's dialog was torn down"
    # A's `#`, 1, 0, 1 were the PBX's keys: none reached the client
    no_digits(client)

    # one of them hangs up; the other gets the BYE, rtpengine forgets the call
    assert client.sipp.wait() == 0, client.sipp.describe_failure()
    assert b.sipp.wait() == 0, b.sipp.describe_failure()
    assert "BYE" in (b if incoming else client).sipp.received_requests()
    call_id = sip_call_id(client)
    stack.wait_for(lambda: call_id not in stack.rtpengine_calls(), what="rtpengine to forget the call")
    done = stack.wait_event(call_id, "transfer.completed")
    assert done["data"]["mode"] == "attended" and done["data"]["direction"] == direction

    # every key of the conversation, B's leg included, expires after the call (2 s in the test config)
    conversation, b_call_id = done["conversation"], sip_call_id(b)
    keys = (f"xfer:conv:{conversation}", f"xfer:call:{call_id}", f"xfer:call:{b_call_id}",
            f"xfer:leg:{conversation}.t1.b1")
    stack.wait_for(lambda: stack.redis.exists(*keys) == 0, timeout=6, what="every key of the call to expire")
    timers = stack.redis.zrangebyscore("xfer:timers", "-inf", "+inf")
    assert not [t for t in timers if t.startswith(conversation)], "a deadline of the call was left behind"


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
def test_blind_transfer_when_a_hangs_up_while_b_rings(stack: Stack, people: list[Phone], direction: str) -> None:
    client, a = connect(stack, people, direction, a_leaves_ms=3000, client_leaves_ms=9000)
    b = target(stack, people, "boris", "101", "employee_answer.xml", pause_ms=3500)
    a.press("#101")
    wait_until(lambda: "INVITE" in b.sipp.received_requests(), what="B's INVITE")
    wait_until(lambda: gone(a), timeout=10, what="A to leave")
    assert "ACK" not in b.sipp.received_requests(), "B answered too early for a blind transfer"
    on_hold(client, b)  # B still rings (and sends RTP): the client keeps the music, and nothing else
    wait_until(lambda: "ACK" in b.sipp.received_requests(), timeout=10, what="B to answer")
    eventually(lambda: assert_talking(client, b, CLIENT, B))
    no_digits(client)
    assert client.sipp.wait() == 0, client.sipp.describe_failure()
    assert b.sipp.wait() == 0 and "BYE" in b.sipp.received_requests()
    assert stack.wait_event(sip_call_id(client), "transfer.completed")["data"]["mode"] == "blind"


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
def test_star_while_b_rings_brings_a_back(stack: Stack, people: list[Phone], direction: str) -> None:
    client, a = connect(stack, people, direction, a_leaves_ms=None, client_leaves_ms=8000)
    b = target(stack, people, "boris", "101", "employee_ring_until_cancel.xml")
    a.press("#101")
    wait_until(lambda: "INVITE" in b.sipp.received_requests(), what="B's INVITE")
    on_hold(client, a)
    eventually(lambda: waits_for_b(a, client))
    a.press("*")
    wait_until(lambda: "CANCEL" in b.sipp.received_requests(), what="B's CANCEL")
    # A and the client hear each other and nothing else: no music, no ringback
    eventually(lambda: assert_talking(client, a, CLIENT, A))
    no_digits(client)
    assert b.sipp.wait() == 0, b.sipp.describe_failure()
    assert client.sipp.wait() == 0, client.sipp.describe_failure()
    assert stack.wait_event(sip_call_id(client), "transfer.cancelled")


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
def test_star_after_b_answered_hangs_b_up_and_brings_a_back(stack: Stack, people: list[Phone], direction: str) -> None:
    client, a = connect(stack, people, direction, a_leaves_ms=None, client_leaves_ms=9000)
    b = target(stack, people, "boris", "101", "employee_answer.xml", pause_ms=300)
    a.press("#101")
    wait_until(lambda: "ACK" in b.sipp.received_requests(), what="B to answer")
    eventually(lambda: assert_talking(a, b, A, B, client))
    hears_only(client, audio=True, what="on hold during the consultation")
    a.press("*")
    wait_until(lambda: "BYE" in b.sipp.received_requests(), what="B's BYE")
    eventually(lambda: assert_talking(client, a, CLIENT, A))
    # neither the transfer's digits nor the `*` reached the client or B
    no_digits(client)
    no_digits(b)
    assert b.sipp.wait() == 0, b.sipp.describe_failure()
    assert client.sipp.wait() == 0, client.sipp.describe_failure()
    assert "BYE" in a.sipp.received_requests()  # A got the client's hang-up at the end, as usual
    assert stack.wait_event(sip_call_id(client), "transfer.cancelled")


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
def test_department_first_to_answer_gets_the_call(stack: Stack, people: list[Phone], direction: str) -> None:
    client, a = connect(stack, people, direction, a_leaves_ms=6500, client_leaves_ms=11000)
    boris = target(stack, people, "boris", "101", "employee_answer.xml", pause_ms=800)
    gleb = target(stack, people, "gleb", "103", "employee_ring_until_cancel.xml", marker=0x44)
    a.press("#201")  # the support department: no extension starts with 201, so the number ends on the timeout
    wait_until(lambda: "INVITE" in gleb.sipp.received_requests(), what="the department ringing")
    wait_until(lambda: "ACK" in boris.sipp.received_requests(), what="Boris to answer")
    wait_until(lambda: "CANCEL" in gleb.sipp.received_requests(), what="Gleb's phone to be cancelled")
    wait_until(lambda: gone(a), timeout=10, what="A to leave")
    eventually(lambda: assert_talking(client, boris, CLIENT, B))
    assert client.sipp.wait() == 0 and boris.sipp.wait() == 0
    assert gleb.sipp.wait() == 0, gleb.sipp.describe_failure()


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
def test_unknown_number_gets_an_error_prompt(stack: Stack, people: list[Phone], direction: str) -> None:
    client, a = connect(stack, people, direction, a_leaves_ms=None, client_leaves_ms=8000)
    a.press("#55")  # neither an extension, a department, an alias nor a phone number
    # the inter-digit timeout ends the number, and the controller refuses it
    event = stack.wait_event(sip_call_id(client), "transfer.refused")
    assert event["data"]["cause"] == "unknown_number"
    heard, prompt = a.hears(1.2)
    assert prompt > 10, f"A heard no error prompt: {heard}, other={prompt}"
    eventually(lambda: assert_talking(client, a, CLIENT, A))
    assert client.sipp.wait() == 0, client.sipp.describe_failure()
    assert stack.events_for_call(sip_call_id(client)).count("transfer.refused") == 1
    no_digits(client)


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
def test_an_unassigned_short_number_is_unknown_not_dialled_out(stack: Stack, people: list[Phone],
                                                               direction: str) -> None:
    """`#104`: as long as the tenant's extensions and none of them. A hears the error prompt and stays
    with the client; nothing reaches the trunk (a SIPp phone listens there and must get no INVITE)."""
    client, a = connect(stack, people, direction, a_leaves_ms=None, client_leaves_ms=9000)
    trunk_ip, trunk_port = stack.trunk
    outside = None
    if direction == "incoming":  # on an outgoing call the client itself is the trunk's phone
        outside = person(stack, "outside", "employee_ring_until_cancel.xml", B, ip=trunk_ip, port=trunk_port)
        people.append(outside)
    invites = client.sipp.received_requests().count("INVITE")
    a.press("#104")
    event = stack.wait_event(sip_call_id(client), "transfer.refused")
    assert event["data"]["cause"] == "unknown_number"
    heard, prompt = a.hears(1.0)
    assert prompt > 10, f"A heard no error prompt: {heard}, other={prompt}"
    eventually(lambda: assert_talking(client, a, CLIENT, A))
    if outside is not None:
        assert outside.sipp.received_requests() == [], "the unassigned number was dialled out"
    assert client.sipp.received_requests().count("INVITE") == invites
    no_digits(client)


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
def test_a_digit_that_is_no_talk_option_still_reaches_the_client(stack: Stack, people: list[Phone],
                                                                direction: str) -> None:
    """A presses 5 while talking (an IVR on the client's side asks for it): the client's phone gets one
    5, exactly once; the talk options pressed afterwards still never reach it."""
    client, a = connect(stack, people, direction, a_leaves_ms=None, client_leaves_ms=9000)
    b = target(stack, people, "boris", "101", "employee_ring_until_cancel.xml")
    a.press("5")
    wait_until(lambda: client.voice.digits, timeout=5, what="the 5 to reach the client")
    a.press("#101")
    wait_until(lambda: "INVITE" in b.sipp.received_requests(), what="B's INVITE")
    a.press("*")
    wait_until(lambda: "CANCEL" in b.sipp.received_requests(), what="B's CANCEL")
    eventually(lambda: assert_talking(client, a, CLIENT, A))
    assert client.voice.digits == ["5"], f"the client received {client.voice.digits}"
    assert client.sipp.wait() == 0, client.sipp.describe_failure()


@pytest.mark.parametrize(("number", "expected"), [("301", CLIENT_NUMBER), ("79169999999", BETA_DID)])
def test_caller_id_b_sees_follows_the_policy(stack: Stack, people: list[Phone], number: str, expected: str) -> None:
    """Tenant beta shows B the client's number, but never to an outside number (the law): there B
    sees the DID the call came in on."""
    client, a = connect(stack, people, "incoming", a_leaves_ms=None, client_leaves_ms=12000, tenant="beta",
                        a_ext="300", did=BETA_DID)
    if number == "301":
        b = target(stack, people, "b301", "301", "employee_ring_until_cancel.xml", tenant="beta")
    else:
        trunk_ip, trunk_port = stack.trunk
        b = person(stack, "outside", "employee_ring_until_cancel.xml", B, ip=trunk_ip, port=trunk_port)
        people.append(b)
    a.voice.send_dtmf(a.rtpengine(), "#" + number, gap_s=0.1)
    wait_until(lambda: "INVITE" in b.sipp.received_requests(), timeout=8, what="B's INVITE")
    for header in ("From", "P-Asserted-Identity"):
        seen = b.sipp.received_header("INVITE", header)
        assert seen and f"sip:{expected}@" in seen[0], f"B saw {header}: {seen}"
        assert number == "301" or CLIENT_NUMBER not in seen[0], f"the client's number went outside: {seen}"
    a.press("*")
    wait_until(lambda: "CANCEL" in b.sipp.received_requests(), what="B's CANCEL")
    assert client.sipp.wait() == 0, client.sipp.describe_failure()


def test_the_client_on_hold_hears_the_tenants_own_music(stack: Stack, people: list[Phone]) -> None:
    """Tenant beta set its own hold music (a constant signal the client's phone recognises): the client
    hears that file, not the system melody, for as long as B rings."""
    client, a = connect(stack, people, "incoming", a_leaves_ms=None, client_leaves_ms=12000, tenant="beta",
                        a_ext="300", did=BETA_DID)
    b = target(stack, people, "b301", "301", "employee_ring_until_cancel.xml", tenant="beta")
    a.press("#301")
    wait_until(lambda: "INVITE" in b.sipp.received_requests(), timeout=8, what="B's INVITE")
    on_hold(client, a, music_marker=BETA_HOLD_MARKER)
    a.press("*")
    wait_until(lambda: "CANCEL" in b.sipp.received_requests(), what="B's CANCEL")
    eventually(lambda: assert_talking(client, a, CLIENT, A))
    assert client.sipp.wait() == 0, client.sipp.describe_failure()
