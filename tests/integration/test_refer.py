"""The phone's own Transfer button (SIP REFER) through the real stack, as the people on the phone notice it.

A's phone (a SIPp scenario) sends a blind REFER in the client's dialog; the client is on the carrier
trunk, B is extension 101. What each party hears is measured by the RTP parties; which SIP messages
each got is read from SIPp's message log.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from controller.devstack.phone import Phone, wait_until
from tests.integration.calls import (
    CLIENT,
    DID,
    A,
    B,
    assert_talking,
    eventually,
    gone,
    on_hold,
    person,
    sip_call_id,
    target,
)
from tests.integration.conftest import CLIENT_NUMBER, PHONES_IP, TRUNK_IP, Stack

pytestmark = pytest.mark.integration


def notifies(phone: Phone) -> list[tuple[int, str, str]]:
    """Every NOTIFY the phone got: (CSeq number, Subscription-State, sipfrag status line)."""
    found = []
    for lines in phone.sipp.received_messages("NOTIFY "):
        text = "\n".join(lines)
        cseq = int(re.search(r"^CSeq:\s*(\d+)\s+NOTIFY", text, re.M | re.I).group(1))
        state = re.search(r"^Subscription-State:\s*(\S+)", text, re.M | re.I).group(1)
        status = re.search(r"^SIP/2\.0 \d{3}[^\n]*", text, re.M).group(0).strip()
        found.append((cseq, state, status))
    return found


def referring_a(stack: Stack, people: list[Phone], refer_to: str, *, after_ms: int = 1500) -> Phone:
    a = person(stack, "anna", "employee_answer_refer.xml", A, ip=PHONES_IP, port=stack.contact_port("100", "acme"),
               pause_ms=after_ms, keys={"refer_to": refer_to})
    people.append(a)
    return a


def referring_a_calling_out(stack: Stack, people: list[Phone], scenario: str) -> Phone:
    """A calls the client out through the trunk and, 1.5 s after the answer, presses Transfer (101)."""
    tenant = stack.local.config.tenants["acme"]
    a = person(stack, "anna", scenario, A, ip=PHONES_IP, remote=True, pause_ms=1500, service=CLIENT_NUMBER,
               caller="100", domain=tenant.domain, auth=stack.credentials("100"),
               keys={"refer_to": f"<sip:101@{tenant.domain}>"})
    people.append(a)
    return a


def calling_client(stack: Stack, people: list[Phone], *, talk_ms: int, scenario: str = "client_call_signalling.xml",
                   keys: dict[str, str] | None = None) -> Phone:
    client = person(stack, "client", scenario, CLIENT, ip=TRUNK_IP, remote=True, pause_ms=talk_ms, service=DID,
                    caller=CLIENT_NUMBER, keys=keys)
    people.append(client)
    return client


def test_blind_refer_transfers_like_the_hotkey(stack: Stack, people: list[Phone]) -> None:
    b = target(stack, people, "boris", "101", "employee_answer.xml", pause_ms=1500)  # rings 1.5 s, answers
    domain = stack.local.config.tenants["acme"].domain
    a = referring_a(stack, people, f"<sip:101@{domain}>")
    client = calling_client(stack, people, talk_ms=9000)
    wait_until(lambda: "ACK" in a.sipp.received_requests(), what="A to answer")
    eventually(lambda: assert_talking(client, a, CLIENT, A))

    # A presses Transfer: the REFER is answered 202 and never reaches the client's side
    wait_until(lambda: 202 in a.sipp.received_statuses(), what="the REFER's 202")
    wait_until(lambda: "INVITE" in b.sipp.received_requests(), what="B's INVITE")
    assert "REFER" not in client.sipp.received_requests()
    # the client hears the hold music and nothing else while B rings; nobody hears the client
    on_hold(client, b)  # B sends RTP while it rings: the client hears none of it
    # B sees the caller-ID of the tenant's policy ("did": the DID the client called)
    seen = b.sipp.received_header("INVITE", "From")
    assert seen and f"sip:{DID}@" in seen[0], f"B saw From {seen}"

    # B answers: the client and B hear each other and nobody else; A's phone got 100, 180 and the final 200
    wait_until(lambda: "ACK" in b.sipp.received_requests(), what="B to answer")
    eventually(lambda: assert_talking(client, b, CLIENT, B))
    wait_until(lambda: gone(a), timeout=10, what="A to hang up after the final NOTIFY")
    assert a.sipp.wait() == 0, a.sipp.describe_failure()
    got = notifies(a)
    assert [status for _, _, status in got] == ["SIP/2.0 100 Trying", "SIP/2.0 180 Ringing", "SIP/2.0 200 OK"], got
    assert [state.split(";")[0] for _, state, _ in got] == ["active", "active", "terminated"], got
    cseqs = [cseq for cseq, _, _ in got]
    assert cseqs == sorted(set(cseqs)), f"the NOTIFYs' CSeqs do not grow: {cseqs}"
    # every NOTIFY was answered 200 by A's phone (the scenario answers only what it accepts: it ended cleanly)
    assert a.sipp.sent_replies("NOTIFY") == [200] * len(got), a.sipp.sent_replies("NOTIFY")

    # the client's dialog was never torn down; the client hangs up and B gets the BYE
    assert "BYE" not in client.sipp.received_requests()
    assert client.sipp.wait() == 0, client.sipp.describe_failure()
    assert b.sipp.wait() == 0, b.sipp.describe_failure()
    call_id = sip_call_id(client)
    done = stack.wait_event(call_id, "transfer.completed")
    assert (done["data"]["trigger"], done["data"]["mode"]) == ("refer", "blind")
    requested = stack.wait_event(call_id, "transfer.requested")
    assert requested["data"]["referred_by"].startswith("<sip:100@")
    assert stack.kamailio_stat("refer_202") >= 1
    stack.wait_for(lambda: call_id not in stack.rtpengine_calls(), what="rtpengine to forget the call")


def test_the_employees_outgoing_call_is_transferred_by_refer(stack: Stack, people: list[Phone]) -> None:
    # A calls the client out through the trunk, then presses Transfer: the NOTIFYs go to the caller's
    # side of the dialog this time
    b = target(stack, people, "boris", "101", "employee_answer.xml", pause_ms=1000)
    trunk_ip, trunk_port = stack.trunk
    client = person(stack, "client", "employee_answer_then_hangup.xml", CLIENT, ip=trunk_ip, port=trunk_port,
                    pause_ms=8000)
    people.append(client)
    tenant = stack.local.config.tenants["acme"]
    a = referring_a_calling_out(stack, people, "employee_call_refer.xml")
    wait_until(lambda: "ACK" in client.sipp.received_requests(), what="the client to answer")
    eventually(lambda: assert_talking(client, a, CLIENT, A))
    wait_until(lambda: "INVITE" in b.sipp.received_requests(), what="B's INVITE")
    on_hold(client, a)
    # B sees the company number (policy "did", and an outgoing call came in on no DID)
    seen = b.sipp.received_header("INVITE", "From")
    assert seen and f"sip:{tenant.company_number}@" in seen[0], f"B saw From {seen}"
    eventually(lambda: assert_talking(client, b, CLIENT, B), timeout=8)
    assert a.sipp.wait() == 0, a.sipp.describe_failure()
    assert [status for _, _, status in notifies(a)][-1] == "SIP/2.0 200 OK", notifies(a)
    assert "REFER" not in client.sipp.received_requests() and "BYE" not in client.sipp.received_requests()
    assert client.sipp.wait() == 0, client.sipp.describe_failure()  # the client hangs up on B
    assert b.sipp.wait() == 0 and "BYE" in b.sipp.received_requests()


def told_and_back_with_a(stack: Stack, people: list[Phone], refer_to: str, status: str, *, talk_ms: int) -> Phone:
    """A's phone REFERs to `refer_to` and is told `status` in the final NOTIFY; the conversation goes on
    as it was (the client and A hear each other again) until the client hangs up. Returns the client."""
    a = referring_a(stack, people, refer_to)
    client = calling_client(stack, people, talk_ms=talk_ms)
    wait_until(lambda: any(state.startswith("terminated") for _, state, _ in notifies(a)), timeout=10,
               what="the final NOTIFY")
    assert notifies(a)[-1][2] == status, notifies(a)
    eventually(lambda: assert_talking(client, a, CLIENT, A), timeout=10)
    assert client.sipp.wait() == 0, client.sipp.describe_failure()
    assert a.sipp.wait() == 0, a.sipp.describe_failure()  # A got the client's BYE
    assert "REFER" not in client.sipp.received_requests()
    return client


def test_a_busy_target_is_told_and_the_client_goes_back_to_a(stack: Stack, people: list[Phone]) -> None:
    target(stack, people, "boris", "101", "employee_busy.xml")
    # A is still on the line: the client is back with A (after the tenant's warnings), as after `#`
    client = told_and_back_with_a(stack, people, "<sip:101@127.0.0.1>", "SIP/2.0 486 Busy Here", talk_ms=9000)
    done = stack.wait_event(sip_call_id(client), "transfer.returned")
    assert (done["data"]["trigger"], done["data"]["cause"]) == ("refer", "busy")


@pytest.mark.parametrize(("refer_to", "status"), [
    ("<sip:999@127.0.0.1>", "SIP/2.0 404 Not Found"),  # an unknown number (A also hears the short prompt)
    ("<sip:+78031234567@127.0.0.1>", "SIP/2.0 403 Forbidden"),  # an outside number the plan forbids (premium)
    # an attended REFER naming a dialog that is none of A's
    ("<sip:101@127.0.0.1?Replaces=nosuch%3Bto-tag%3D1%3Bfrom-tag%3D2>", "SIP/2.0 481 Call/Transaction Does Not Exist"),
])
def test_a_refused_target_is_told_and_the_client_stays_with_a(stack: Stack, people: list[Phone], refer_to: str,
                                                              status: str) -> None:
    told_and_back_with_a(stack, people, refer_to, status, talk_ms=6000)


def test_a_phone_that_left_after_the_202_gets_the_client_back_when_b_does_not_answer(stack: Stack,
                                                                                    people: list[Phone]) -> None:
    """Incoming rule: return to the transferor (with warnings). A's phone hung up after the 202, so the
    blind transfer's failure rings A again, and A and the client talk."""
    b = target(stack, people, "boris", "101", "employee_ring_until_cancel.xml")
    a = person(stack, "anna", "employee_answer_refer_then_hangup.xml", A, ip=PHONES_IP,
               port=stack.contact_port("100"), pause_ms=1500, keys={"refer_to": "<sip:101@127.0.0.1>"})
    people.append(a)
    client = calling_client(stack, people, talk_ms=20000)
    wait_until(lambda: "ACK" in a.sipp.received_requests(), what="A to answer")
    wait_until(lambda: gone(a), timeout=10, what="A's phone to hang up after the 202")
    assert a.sipp.wait() == 0, a.sipp.describe_failure()
    assert [status for _, _, status in notifies(a)] == ["SIP/2.0 100 Trying"]  # nothing after it left
    a_again = Phone.start("anna-again", "employee_answer.xml", A, stack.sipp_dir, ip=PHONES_IP,
                          port=stack.contact_port("100"), pause_ms=300)
    people.append(a_again)
    wait_until(lambda: "INVITE" in b.sipp.received_requests(), what="B's INVITE")
    on_hold(client)  # B rings alone: the client hears the music and nothing else
    wait_until(lambda: "CANCEL" in b.sipp.received_requests(), timeout=8, what="B's CANCEL after 4 s")
    wait_until(lambda: "ACK" in a_again.sipp.received_requests(), timeout=8, what="A to answer again")
    eventually(lambda: assert_talking(client, a_again, CLIENT, A), timeout=8)  # after the warnings
    done = stack.wait_event(sip_call_id(client), "transfer.returned")
    assert (done["data"]["trigger"], done["data"]["cause"], done["data"]["rule"]) == (
        "refer", "no_answer", "return_to_transferor")
    assert "NOTIFY" not in a_again.sipp.received_requests()  # the subscription died with A's first phone


def test_a_phone_that_left_after_the_202_on_an_outgoing_call_leaves_the_client_an_apology(
        stack: Stack, people: list[Phone]) -> None:
    """Outgoing rule: apologize (the tenant's text, spoken by espeak-ng), then the call ends."""
    b = target(stack, people, "boris", "101", "employee_busy.xml", pause_ms=2500)
    trunk_ip, trunk_port = stack.trunk
    client = person(stack, "client", "employee_answer.xml", CLIENT, ip=trunk_ip, port=trunk_port)
    people.append(client)
    a = referring_a_calling_out(stack, people, "employee_call_refer_then_hangup.xml")
    wait_until(lambda: "ACK" in client.sipp.received_requests(), what="the client to answer")
    wait_until(lambda: gone(a), timeout=10, what="A's phone to hang up after the 202")
    assert a.sipp.wait() == 0, a.sipp.describe_failure()
    wait_until(lambda: gone(b), timeout=10, what="B to answer busy")
    client.voice.reset()
    wait_until(lambda: "BYE" in client.sipp.received_requests(), timeout=10, what="the client's BYE")
    _, prompt = client.voice.snapshot()
    assert prompt >= 50, f"the client heard no apology ({prompt} packets)"
    assert client.sipp.wait() == 0, client.sipp.describe_failure()
    done = stack.wait_event(sip_call_id(client), "transfer.failed")
    assert (done["data"]["trigger"], done["data"]["cause"], done["data"]["rule"]) == ("refer", "busy", "apologize")


@pytest.mark.parametrize("refer_to", ["<sip:101@evil.example>", "<mailto:x@example.com>"])
def test_a_refer_naming_a_strangers_host_or_no_number_is_refused(stack: Stack, people: list[Phone],
                                                                 refer_to: str) -> None:
    a = referring_a(stack, people, refer_to)
    client = calling_client(stack, people, talk_ms=5000)
    wait_until(lambda: "ACK" in a.sipp.received_requests(), what="A to answer")
    # the refusal is the REFER's own answer; the call goes on, with media both ways, until the client
    # hangs up
    wait_until(lambda: any(s in a.sipp.received_statuses() for s in (400, 403)), timeout=8, what="the REFER's answer")
    statuses = a.sipp.received_statuses()
    assert (403 if "evil" in refer_to else 400) in statuses and 202 not in statuses, statuses
    eventually(lambda: assert_talking(client, a, CLIENT, A))
    assert client.sipp.wait() == 0, client.sipp.describe_failure()
    assert a.sipp.wait() == 0, a.sipp.describe_failure()
    assert notifies(a) == []
    assert "REFER" not in client.sipp.received_requests()


def test_the_clients_side_cannot_transfer_the_employee(stack: Stack, people: list[Phone]) -> None:
    b = target(stack, people, "boris", "101", "employee_answer.xml")
    a = person(stack, "anna", "employee_answer.xml", A, ip=PHONES_IP, port=stack.contact_port("100", "acme"))
    people.append(a)
    client = calling_client(stack, people, talk_ms=3000, scenario="client_call_refer.xml",
                            keys={"refer_to": "<sip:101@127.0.0.1>"})
    # the trunk's REFER is refused 403 (the scenario waits for exactly that) and never reaches A
    wait_until(lambda: 403 in client.sipp.received_statuses(), what="the 403 to the trunk's REFER")
    eventually(lambda: assert_talking(client, a, CLIENT, A))
    assert client.sipp.wait() == 0, client.sipp.describe_failure()
    assert a.sipp.wait() == 0, a.sipp.describe_failure()
    assert "REFER" not in a.sipp.received_requests() and "NOTIFY" not in a.sipp.received_requests()
    assert "INVITE" not in b.sipp.received_requests(), "a REFER from the trunk rang B"
    assert stack.kamailio_stat("refer_refused") >= 1 and stack.kamailio_stat("refer_403") >= 1


def header_of(lines: list[str], name: str) -> str:
    return next(line.split(":", 1)[1].strip() for line in lines if line.lower().startswith(name.lower() + ":"))


def test_attended_refer_with_replaces_joins_the_client_with_b(stack: Stack, people: list[Phone]) -> None:
    # A consults B first on a call of its own (A's second line: another phone of extension 100), then
    # A's first phone sends the REFER whose Refer-To replaces that call (RFC 3891, RFC 5589)
    tenant = stack.local.config.tenants["acme"]
    # the consultation, then the controller's INVITE with Replaces; B's phone answers each in 1 s. (With
    # 0.3 s, one CI run had the client hear a player beside B for seconds, never reproduced here: a
    # looped ringback of A's was replayed after the re-pairing then, which a handed-over A no longer gets)
    b = person(stack, "boris", "employee_answer.xml", B, ip=PHONES_IP, port=stack.contact_port("101"),
               pause_ms=1000, calls=2)
    people.append(b)
    a2 = person(stack, "anna-line2", "employee_call_await_bye.xml", A, ip=PHONES_IP, remote=True, service="101",
                caller="100", domain=tenant.domain, auth=stack.credentials("100"))
    people.append(a2)
    wait_until(lambda: "ACK" in b.sipp.received_requests(), what="the consultation call to be answered")
    eventually(lambda: assert_talking(a2, b, A, B))
    d2 = sip_call_id(b)
    a2_tag = b.sipp.received_header("INVITE", "From")[0].split("tag=", 1)[1].split(";")[0]
    b_tag = header_of(a2.sipp.received_messages("SIP/2.0 200")[-1], "To").split("tag=", 1)[1].split(";")[0]
    replaces = quote(f"{d2};to-tag={b_tag};from-tag={a2_tag}", safe="")
    a = referring_a(stack, people, f"<sip:101@{tenant.domain}?Replaces={replaces}>")
    client = calling_client(stack, people, talk_ms=9000)
    wait_until(lambda: "ACK" in a.sipp.received_requests(), what="A to answer the client")

    # the REFER: B gets the controller's INVITE with Replaces naming the consultation, answers it, and
    # the client and B hear each other and nobody else
    wait_until(lambda: len(b.sipp.received_messages("INVITE ")) == 2, what="B's INVITE with Replaces")
    second = b.sipp.received_messages("INVITE ")[1]
    assert header_of(second, "Replaces") == f"{d2};to-tag={b_tag};from-tag={a2_tag}"
    eventually(lambda: assert_talking(client, b, CLIENT, B, a2), timeout=8)
    # both of A's calls end: the first phone hangs up after the final NOTIFY 200, the consultation is
    # ended by the PBX (A's second line gets its BYE), and rtpengine forgets the consultation's media
    assert a.sipp.wait() == 0, a.sipp.describe_failure()
    assert [status for _, _, status in notifies(a)][-1] == "SIP/2.0 200 OK", notifies(a)
    assert a2.sipp.wait() == 0, a2.sipp.describe_failure()
    stack.wait_for(lambda: d2 not in stack.rtpengine_calls(), what="rtpengine to forget the consultation")
    # the client's dialog was never torn down; the client hangs up on B at the end
    assert "BYE" not in client.sipp.received_requests() and "REFER" not in client.sipp.received_requests()
    assert client.sipp.wait() == 0, client.sipp.describe_failure()
    assert b.sipp.wait() == 0, b.sipp.describe_failure()
    done = stack.wait_event(sip_call_id(client), "transfer.completed")
    assert (done["data"]["trigger"], done["data"]["mode"]) == ("refer", "blind")
    stack.wait_for(lambda: sip_call_id(client) not in stack.rtpengine_calls(), what="rtpengine to forget the call")


def sdp_directions(lines: list[str]) -> set[str]:
    return {line[2:] for line in lines if line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")}


def test_the_phones_own_hold_plays_the_music_and_keeps_the_clients_stream_up(stack: Stack,
                                                                          people: list[Phone]) -> None:
    a = person(stack, "anna", "employee_answer_hold.xml", A, ip=PHONES_IP, port=stack.contact_port("100"),
               pause_ms=1500)
    people.append(a)
    client = calling_client(stack, people, talk_ms=3000, scenario="client_call_reinvited.xml")
    wait_until(lambda: "ACK" in a.sipp.received_requests(), what="A to answer")
    # A presses the phone's hold key: the client's stream is not put on hold (its re-INVITE says
    # sendrecv), the phone gets the answer its offer asked for, and the client hears the tenant's music
    # and nothing else, while nobody hears the client
    wait_until(lambda: len(a.sipp.received_messages("SIP/2.0 200")) >= 1, what="the answer to the hold")
    assert "sendonly" not in sdp_directions(client.sipp.received_messages("INVITE ")[0])
    assert sdp_directions(a.sipp.received_messages("SIP/2.0 200")[0]) == {"recvonly"}
    eventually(lambda: on_hold(client, a))
    # the phone resumes: the two hear each other again
    wait_until(lambda: len(a.sipp.received_messages("SIP/2.0 200")) >= 2, what="the answer to the resume")
    eventually(lambda: assert_talking(client, a, CLIENT, A))
    assert client.sipp.wait() == 0, client.sipp.describe_failure()
    assert a.sipp.wait() == 0, a.sipp.describe_failure()


def test_a_refer_while_a_hotkey_transfer_runs_is_refused_and_the_transfer_goes_on(stack: Stack,
                                                                                  people: list[Phone]) -> None:
    b = target(stack, people, "boris", "101", "employee_answer.xml", pause_ms=500)
    a = referring_a(stack, people, "<sip:102@127.0.0.1>", after_ms=3000)
    client = calling_client(stack, people, talk_ms=8000)
    wait_until(lambda: "ACK" in a.sipp.received_requests(), what="A to answer")
    eventually(lambda: assert_talking(client, a, CLIENT, A))
    a.press("#101")  # the hotkey first; the phone's Transfer button while B already rings
    wait_until(lambda: "INVITE" in b.sipp.received_requests(), what="B's INVITE")
    wait_until(lambda: 491 in a.sipp.received_statuses(), timeout=8, what="the 491 to the REFER")
    assert notifies(a) == []
    # the hotkey transfer goes on: A consults B, the client keeps the music
    eventually(lambda: assert_talking(a, b, A, B, client), timeout=8)
    hears = client.voice.snapshot()[0]
    assert A not in hears and B not in hears, f"the client on hold heard {hears}"
    assert client.sipp.wait() == 0, client.sipp.describe_failure()
    assert stack.kamailio_stat("refer_491") >= 1
