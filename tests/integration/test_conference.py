"""The three-way conference through the real stack (issue 15): rtpengine forwards each party's media to
the controller's mixer and the mix back. Each party speaks its own tone, and what each party receives is
analysed for every party's tone: a party hears both others, and never itself."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from controller.devstack.phone import Phone, exchange, wait_until
from controller.devstack.tones import levels
from tests.integration.calls import CLIENT, DID, A, B, eventually, hangs_up, person
from tests.integration.conftest import CLIENT_NUMBER, PHONES_IP, TRUNK_IP, Stack, make_test_config, start_stack

pytestmark = pytest.mark.integration

TONES = {"client": 400.0, "a": 700.0, "b": 1100.0}
FREQS = list(TONES.values())
HEARD, UNHEARD = 2500.0, 400.0  # amplitudes (sent at 8000) as measured after rtpengine and the mixer


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    data = make_test_config()
    data["tenants"]["acme"]["talk_options"]["conference"] = "#"  # `#` again after B answered
    local = start_stack("conference", data)
    try:
        yield Stack(local)
    finally:
        local.stop()


def hears(phone: Phone, *others: str) -> None:
    """What `phone` received during the last exchange: the tones of `others`, and no other party's."""
    got = phone.voice.tones(FREQS)
    for who, freq in TONES.items():
        if who in others:
            assert got[freq] > HEARD, f"{phone.voice.name} does not hear {who}: {got}"
        else:
            assert got[freq] < UNHEARD, f"{phone.voice.name} hears {who}: {got}"


def three_way(stack: Stack, people: list[Phone], direction: str = "incoming", *, a_leaves_ms: int | None = None,
              b_leaves_ms: int | None = None) -> tuple[Phone, Phone, Phone]:
    """A call between the client and A (the client calls the DID, or A calls the client out through the
    trunk); A transfers with `#101`, B answers, A presses `#` again. `*_leaves_ms`: that party hangs up by
    itself so long after it answered."""
    b = person(stack, "boris", hangs_up(b_leaves_ms), B, ip=PHONES_IP, port=stack.contact_port("101"),
               pause_ms=b_leaves_ms or 800)
    if direction == "incoming":
        a = person(stack, "anna", hangs_up(a_leaves_ms), A, ip=PHONES_IP, port=stack.contact_port("100"),
                   pause_ms=a_leaves_ms or 0)
        client = person(stack, "client", "client_call_signalling.xml", CLIENT, ip=TRUNK_IP, remote=True, service=DID,
                        caller=CLIENT_NUMBER, pause_ms=25_000)
        answered = a
    else:
        trunk_ip, trunk_port = stack.trunk
        client = person(stack, "client", "employee_answer.xml", CLIENT, ip=trunk_ip, port=trunk_port)
        domain = stack.local.config.tenants["acme"].domain
        a = person(stack, "anna", "employee_call.xml", A, ip=PHONES_IP, remote=True, pause_ms=a_leaves_ms or 25_000,
                   service=CLIENT_NUMBER, caller="100", domain=domain, auth=stack.credentials("100"))
        answered = client
    for phone, who in ((client, "client"), (a, "a"), (b, "b")):
        phone.voice.tone_hz = TONES[who]
    people += [a, b, client]
    wait_until(lambda: "ACK" in answered.sipp.received_requests(), what="the call to be answered")
    a.press("#101", gap_s=0.1)
    wait_until(lambda: "ACK" in b.sipp.received_requests(), timeout=10, what="B to answer")
    # consultation: A and B hear each other, the client hears the music and neither of them
    eventually(lambda: (exchange(client, a, b, packets=40), hears(a, "b"), hears(b, "a"))[0], timeout=8)
    a.press("#", gap_s=0.1)
    eventually(lambda: (exchange(client, a, b, packets=40), hears(client, "a", "b"))[0], timeout=8)
    return client, a, b


def talking(x: Phone, y: Phone, x_is: str, y_is: str) -> None:
    """x and y hear each other, nobody else, one stream each (no mixer left beside them)."""
    def check() -> None:
        exchange(x, y, packets=40)
        hears(x, y_is)
        hears(y, x_is)
        assert len(x.voice.received()[0]) == 1 and len(y.voice.received()[0]) == 1

    eventually(check, timeout=8)
    check()  # and from then on


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
def test_after_the_second_hash_each_hears_both_others_and_not_itself(stack: Stack, people: list[Phone],
                                                                     direction: str) -> None:
    client, a, b = three_way(stack, people, direction)
    exchange(client, a, b, packets=150)  # 3 s of all three talking
    hears(client, "a", "b")
    hears(a, "client", "b")
    hears(b, "client", "a")
    # A presses `*`: B is hung up, and A is with the client alone
    a.press("*", gap_s=0.1)
    wait_until(lambda: "BYE" in b.sipp.received_requests(), timeout=8, what="B's BYE")
    talking(client, a, "client", "a")
    assert b.sipp.wait() == 0, b.sipp.describe_failure()
    stack.wait_for(lambda: stack.controller_metric("xfer_conferences_active") == 0, what="the mixer to be empty")


def test_when_a_hangs_up_the_client_and_b_talk_on(stack: Stack, people: list[Phone]) -> None:
    client, a, b = three_way(stack, people, a_leaves_ms=7000)
    wait_until(lambda: not a.sipp.process.alive(), timeout=12, what="A to hang up")
    talking(client, b, "client", "b")


def test_when_b_hangs_up_the_client_and_a_talk_on(stack: Stack, people: list[Phone]) -> None:
    client, a, b = three_way(stack, people, b_leaves_ms=6000)
    wait_until(lambda: not b.sipp.process.alive(), timeout=12, what="B to hang up")
    talking(client, a, "client", "a")


def test_five_percent_loss_on_the_clients_stream_leaves_a_and_b_hearing_each_other(stack: Stack,
                                                                                   people: list[Phone]) -> None:
    client, a, b = three_way(stack, people)
    for p in (client, a, b):
        p.voice.reset()
    talkers = [threading.Thread(target=client.talk, args=(150,), kwargs={"loss": 0.05}),
               threading.Thread(target=a.talk, args=(150,)), threading.Thread(target=b.talk, args=(150,))]
    for t in talkers:
        t.start()
    for t in talkers:
        t.join()
    # every 100 ms of what A and B received holds the other's voice: no gap, no stall
    for listener, other in ((a, "b"), (b, "a")):
        chunks = listener.voice.chunks(5)
        assert len(chunks) >= 25, len(chunks)
        quiet = [n for n, chunk in enumerate(chunks[2:-2]) if levels(chunk, [TONES[other]])[TONES[other]] < HEARD]
        assert not quiet, f"{listener.voice.name} lost {other} in chunks {quiet}"
