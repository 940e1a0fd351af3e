"""The three-way conference through the real stack (issue 15): rtpengine forwards each party's media to
the controller's mixer and the mix back. Each party speaks its own tone, and what each party receives is
analysed for every party's tone: a party hears both others, and never itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controller.devstack.phone import Phone, exchange, wait_until
from tests.integration.calls import CLIENT, DID, A, B, eventually, person
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


def three_way(stack: Stack, people: list[Phone]) -> tuple[Phone, Phone, Phone]:
    """The client calls the DID, A answers, transfers with `#101`, B answers, A presses `#` again."""
    a = person(stack, "anna", "employee_answer.xml", A, ip=PHONES_IP, port=stack.contact_port("100"))
    b = person(stack, "boris", "employee_answer.xml", B, ip=PHONES_IP, port=stack.contact_port("101"), pause_ms=800)
    client = person(stack, "client", "client_call_signalling.xml", CLIENT, ip=TRUNK_IP, remote=True, service=DID,
                    caller=CLIENT_NUMBER, pause_ms=25_000)
    for phone, who in ((client, "client"), (a, "a"), (b, "b")):
        phone.voice.tone_hz = TONES[who]
    people += [a, b, client]
    wait_until(lambda: "ACK" in a.sipp.received_requests(), what="A to answer")
    a.press("#101", gap_s=0.1)
    wait_until(lambda: "ACK" in b.sipp.received_requests(), timeout=10, what="B to answer")
    # consultation: A and B hear each other, the client hears the music and neither of them
    eventually(lambda: (exchange(client, a, b, packets=40), hears(a, "b"), hears(b, "a"))[0], timeout=8)
    a.press("#", gap_s=0.1)
    return client, a, b


def test_after_the_second_hash_each_hears_both_others_and_not_itself(stack: Stack, people: list[Phone]) -> None:
    client, a, b = three_way(stack, people)
    eventually(lambda: (exchange(client, a, b, packets=40), hears(client, "a", "b"))[0], timeout=8)
    exchange(client, a, b, packets=150)  # 3 s of all three talking
    hears(client, "a", "b")
    hears(a, "client", "b")
    hears(b, "client", "a")
    # A presses `*`: B is hung up, and A is with the client alone; no mixer left in the path
    a.press("*", gap_s=0.1)
    wait_until(lambda: "BYE" in b.sipp.received_requests(), timeout=8, what="B's BYE")

    def back_to_two() -> None:
        exchange(client, a, packets=40)
        hears(client, "a")
        hears(a, "client")

    eventually(back_to_two, timeout=8)
    back_to_two()  # and from then on: one stream each (the mixer's went with it), nobody else
    assert len(client.voice.received()[0]) == 1 and len(a.voice.received()[0]) == 1
    assert b.sipp.wait() == 0, b.sipp.describe_failure()
