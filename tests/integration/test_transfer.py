"""Hotkey transfers through the real stack, as the people on the phone experience them.

SIPp parties do the signalling (one per person); each person's audio comes from a Python RTP party
whose packets carry a byte naming the speaker, so "who hears whom" is measured, not assumed. The
client is on the carrier trunk, A is extension 100, B is extension 101 (static contacts).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from controller.sipp import SippParty
from tests.integration.conftest import CLIENT_NUMBER, PHONES_IP, TRUNK_IP, Stack
from tests.integration.rtp_party import RtpParty

pytestmark = pytest.mark.integration

CLIENT, A, B = 0x11, 0x22, 0x33
DID = "+74951110000"


@dataclass
class Person:
    """One person on the phone: a SIPp party for SIP, an RTP party for the voice."""

    sipp: SippParty
    voice: RtpParty
    first_line_with_sdp: str  # where this party learns rtpengine's address ("INVITE" or "SIP/2.0 200")

    def rtpengine(self) -> tuple[str, int]:
        return self.sipp.received_sdp_media(self.first_line_with_sdp)

    def talk(self, packets: int = 15) -> None:
        self.voice.send(self.rtpengine(), packets)

    def press(self, digits: str) -> None:
        self.voice.send_dtmf(self.rtpengine(), digits)


def person(stack: Stack, name: str, scenario: str, marker: int, *, ip: str, port: int | None = None,
           pause_ms: int = 0, remote: bool = False, service: str | None = None,
           caller: str | None = None) -> Person:
    voice = RtpParty(name, marker, ip)
    keys = {"rtp_port": str(voice.address[1])}
    if caller:
        keys["from"] = caller
    party = stack.party(name, scenario, ip, port, pause_ms=pause_ms, keys=keys, service=service,
                        remote=stack.local.sip_hostport if remote else None).start()
    if not remote:
        party.wait_bound()
    return Person(party, voice, "SIP/2.0 200" if remote else "INVITE")


def hears(listener: Person, window: float = 0.6) -> tuple[dict[int, int], int]:
    """What `listener` heard during the last `window` seconds: (packets per speaker, music packets)."""
    listener.voice.reset()
    time.sleep(window)
    return listener.voice.snapshot()


def wait_until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def exchange(*speakers: Person, packets: int = 15) -> None:
    """Everyone in `speakers` talks at once (threads), like people do; afterwards each speaker's
    counters hold what they heard during this exchange only."""
    import threading

    for p in speakers:
        p.voice.reset()
    threads = [threading.Thread(target=p.talk, args=(packets,)) for p in speakers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.fixture
def people() -> Iterator[list[Person]]:
    created: list[Person] = []
    yield created
    for p in created:
        p.sipp.stop()
        p.voice.close()


def test_attended_transfer_incoming(stack: Stack, people: list[Person]) -> None:
    # B rings 1 s then answers; A hangs up 5 s after answering; the client talks 9 s, then hangs up
    b = person(stack, "boris", "employee_answer.xml", B, ip=PHONES_IP, port=stack.contact_port("101"), pause_ms=1000)
    a = person(stack, "anna", "employee_answer_then_hangup.xml", A, ip=PHONES_IP, port=stack.contact_port("100"),
               pause_ms=5000)
    client = person(stack, "client", "client_call_signalling.xml", C := CLIENT, ip=TRUNK_IP, pause_ms=9000, remote=True,
                    service=DID, caller=CLIENT_NUMBER)
    people.extend([b, a, client])
    del C

    wait_until(lambda: "ACK" in a.sipp.received_requests(), what="A to answer")
    exchange(client, a)
    assert client.voice.snapshot()[0].get(A, 0) >= 5 and a.voice.snapshot()[0].get(CLIENT, 0) >= 5, "no call"

    # A presses # 1 0 1: the client hears hold music, not A; B's phone rings
    a.press("#101")
    wait_until(lambda: "INVITE" in b.sipp.received_requests(), what="B's INVITE")
    a.talk(10)
    heard, music = hears(client, 1.0)
    assert heard.get(A, 0) == 0, f"the client still hears A: {heard}"
    assert music > 5, f"the client hears no hold music: {heard}, music={music}"

    # B answers: A and B talk (consultation); the client is still on hold
    wait_until(lambda: "ACK" in b.sipp.received_requests(), what="B to answer")
    exchange(a, b, packets=25)
    assert a.voice.snapshot()[0].get(B, 0) >= 10, f"A does not hear B: {a.voice.snapshot()}"
    assert b.voice.snapshot()[0].get(A, 0) >= 10, f"B does not hear A: {b.voice.snapshot()}"
    heard, music = hears(client, 0.3)
    assert heard == {} and music > 0, f"client during consultation: {heard}, music={music}"

    # A hangs up: the client and B are connected, the music stops
    wait_until(lambda: 200 in a.sipp.received_statuses(), timeout=10, what="A's BYE to be answered")
    time.sleep(0.3)
    exchange(client, b, packets=25)
    assert client.voice.snapshot()[0].get(B, 0) >= 10, f"the client does not hear B: {client.voice.snapshot()}"
    assert b.voice.snapshot()[0].get(CLIENT, 0) >= 10, f"B does not hear the client: {b.voice.snapshot()}"
    assert client.voice.snapshot()[1] == 0, "music still playing to the client"
    assert "BYE" not in client.sipp.received_requests(), "the client's dialog was torn down"

    # the client hangs up: B gets the BYE, rtpengine forgets the call
    assert client.sipp.wait() == 0, client.sipp.describe_failure()
    assert b.sipp.wait() == 0, b.sipp.describe_failure()
    assert "BYE" in b.sipp.received_requests()
    call_id = client.sipp.messages().split("Call-ID:", 1)[1].split()[0]
    stack.wait_for(lambda: call_id not in stack.rtpengine_calls(), what="rtpengine to forget the call")
    done = stack.wait_event(call_id, "transfer.completed")
    assert done["data"]["mode"] == "attended"
