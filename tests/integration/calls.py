"""Calls between people on the phone, for the integration tests: connect a client and A in either
direction, add targets, and assert who hears whom."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

from controller.devstack.phone import Phone, exchange, wait_until
from tests.integration.conftest import CLIENT_NUMBER, PHONES_IP, TRUNK_IP, Stack

_names = itertools.count()

CLIENT, A, B = 0x11, 0x22, 0x33
DID = "+74951110000"


def person(stack: Stack, name: str, scenario: str, marker: int, *, ip: str, port: int | None = None,
           pause_ms: int = 0, remote: bool = False, service: str | None = None,
           caller: str | None = None, domain: str | None = None, auth: tuple[str, str] | None = None,
           keys: dict[str, str] | None = None, calls: int = 1) -> Phone:
    return Phone.start(f"{name}-{next(_names)}", scenario, marker, stack.sipp_dir, ip=ip, port=port,
                       proxy=stack.local.sip_hostport if remote else None, pause_ms=pause_ms, service=service,
                       caller=caller, domain=domain, auth=auth, keys=keys, calls=calls)


def hangs_up(after_ms: int | None) -> str:
    """The scenario of a phone that answers, and hangs up after `after_ms` (None: waits for a BYE)."""
    return "employee_answer.xml" if after_ms is None else "employee_answer_then_hangup.xml"


def connect(stack: Stack, people: list[Phone], direction: str, *, a_leaves_ms: int | None,
            client_leaves_ms: int | None, tenant: str = "acme", a_ext: str = "100",
            did: str = DID) -> tuple[Phone, Phone]:
    """A call between the client and A, up and with media both ways: the client calls A's DID
    (incoming), or A calls the client's number out through the trunk (outgoing).
    `*_leaves_ms`: when that party hangs up after the call is set up (None: never by itself)."""
    a_port = stack.contact_port(a_ext, tenant)
    if direction == "incoming":
        a = person(stack, "anna", hangs_up(a_leaves_ms), A, ip=PHONES_IP, port=a_port, pause_ms=a_leaves_ms or 0)
        client = person(stack, "client", "client_call_signalling.xml", CLIENT, ip=TRUNK_IP, remote=True,
                        pause_ms=client_leaves_ms or 60_000, service=did, caller=CLIENT_NUMBER)
    else:
        trunk_ip, trunk_port = stack.trunk
        client = person(stack, "client", hangs_up(client_leaves_ms), CLIENT, ip=trunk_ip, port=trunk_port,
                        pause_ms=client_leaves_ms or 0)
        a = person(stack, "anna", "employee_call.xml", A, ip=PHONES_IP, remote=True,
                   pause_ms=a_leaves_ms or 60_000, service=CLIENT_NUMBER, caller=a_ext,
                   domain=stack.local.config.tenants[tenant].domain, auth=stack.credentials(a_ext, tenant))
    people.extend([client, a])
    callee = a if direction == "incoming" else client
    wait_until(lambda: "ACK" in callee.sipp.received_requests(), what="the call to be answered")
    exchange(client, a)
    assert client.voice.snapshot()[0].get(A, 0) >= 5, f"the client does not hear A: {client.voice.snapshot()}"
    assert a.voice.snapshot()[0].get(CLIENT, 0) >= 5, f"A does not hear the client: {a.voice.snapshot()}"
    return client, a


def target(stack: Stack, people: list[Phone], name: str, ext: str, scenario: str, marker: int = B, *,
           pause_ms: int = 0, tenant: str = "acme") -> Phone:
    b = person(stack, name, scenario, marker, ip=PHONES_IP, port=stack.contact_port(ext, tenant), pause_ms=pause_ms)
    people.append(b)
    return b


def hears_only(p: Phone, voice: int | None = None, *, audio: bool = False, what: str = "") -> None:
    """What `p` heard during the last exchange, as the person on the phone notices it: exactly the voice
    `voice` (or no voice at all), other audio (music, ringback, a prompt) only when `audio`, and all of it
    as ONE RTP stream: two streams from one port are a choppy mix of two sources on a real phone."""
    heard, other = p.voice.snapshot()
    streams, _ = p.voice.received()
    got = f"{p.voice.name} ({what}) heard voices {heard}, other audio {other}, streams {streams}"
    if voice is None:
        assert not heard, got
    else:
        assert set(heard) == {voice} and heard[voice] >= 10, got
    assert other >= 5 if audio else other == 0, got
    assert len(streams) == 1, got


def assert_talking(x: Phone, y: Phone, mx: int, my: int, *bystanders: Phone) -> None:
    """x and y hear each other and nobody else, while everyone in `bystanders` talks too (so that a leak
    would show; what the bystanders heard is theirs to check)."""
    exchange(x, y, *bystanders, packets=25)
    hears_only(x, my, what=f"talking to {y.voice.name}")
    hears_only(y, mx, what=f"talking to {x.voice.name}")


def on_hold(client: Phone, *others: Phone, music_marker: int | None = None) -> None:
    """The client hears the hold music and nothing else, and nobody hears the client, while everyone
    talks for a second. `music_marker`: the music is a constant signal heard like a voice (tenant beta)."""
    exchange(client, *others, packets=50)
    hears_only(client, music_marker, audio=music_marker is None, what="on hold")
    for other in others:
        assert CLIENT not in other.voice.snapshot()[0], f"{other.voice.name} hears the client on hold"


def waits_for_b(a: Phone, client: Phone) -> None:
    """While B rings, A hears the ringback and no voice, and the client (on hold) does not hear A."""
    exchange(a, client, packets=50)
    hears_only(a, audio=True, what="while B rings")
    assert A not in client.voice.snapshot()[0], "the client on hold hears A"


def no_digits(p: Phone) -> None:
    """No telephone event reached this phone during the call: the talk options are the PBX's own keys."""
    assert p.voice.digits == [], f"{p.voice.name} received DTMF {p.voice.digits}"


POLL_S = 0.05  # how often a wait looks again (a poll interval, never a wait by itself)


def eventually(check: Callable[[], None], timeout: float = 5.0) -> None:
    """Run `check` (assertions about what people hear) until it passes: media settles a moment after the
    signalling that changed it. A lasting leak still fails, with the last check's message."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(POLL_S)


def observe_for(seconds: float, check: Callable[[], None], *, what: str) -> None:
    """An explicit observation window, for a negative that no positive event can stand for: `check`
    (an assertion that something has NOT happened) must hold at every look during `seconds`, and at
    the end. It fails at the first look that sees it happen."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            check()
        except AssertionError as exc:
            raise AssertionError(f"while observing that {what}: {exc}") from exc
        if time.monotonic() >= deadline:
            return
        time.sleep(POLL_S)


def gone(p: Phone) -> bool:
    """The phone's call is over (its SIPp scenario ended)."""
    return p.sipp.process is not None and not p.sipp.process.alive()


def sip_call_id(p: Phone) -> str:
    return p.sipp.messages().split("Call-ID:", 1)[1].split()[0]
