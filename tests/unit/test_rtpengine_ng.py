"""rtpengine ng client against a fake rtpengine on a real loopback UDP socket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest

from controller.adapters.rtpengine_ng import RtpengineNg
from controller.codecs import bencode
from controller.errors import RtpengineError, RtpengineTimeout

FAST = 0.05  # per-attempt timeout where a test must sit through timeouts
PATIENT = 0.5  # per-attempt timeout where a resend would spoil the test on a slow machine


class FakeRtpengine(asyncio.DatagramProtocol):
    """Decodes commands with our bencode and answers according to its knobs."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.received: list[tuple[bytes, dict[str, Any]]] = []  # (cookie, message)
        self.drop_first = 0  # ignore this many packets before answering
        self.silent = False  # never answer
        self.error_reason: str | None = None  # answer result=error with this reason
        self.reply: dict[str, Any] | None = None  # answer exactly this
        self.raw_body: bytes | None = None  # answer these bytes after the cookie
        self.wrong_cookie_first = False  # send a reply with another cookie before the real one
        self.delay = 0.0  # seconds before answering
        self.delays: dict[str, float] = {}  # per call-id delay, overrides ``delay``

    @property
    def address(self) -> tuple[str, int]:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[:2]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        cookie, _, body = data.partition(b" ")
        message = bencode.decode(body)
        assert isinstance(message, dict)
        self.received.append((cookie, message))
        if self.silent:
            return
        if self.drop_first > 0:
            self.drop_first -= 1
            return
        delay = self.delays.get(message.get("call-id", ""), self.delay)
        asyncio.get_running_loop().call_later(delay, self._answer, cookie, message, addr)

    def _answer(self, cookie: bytes, message: dict[str, Any], addr: Any) -> None:
        assert self.transport is not None
        if self.raw_body is not None:
            body = self.raw_body
        elif self.reply is not None:
            body = bencode.encode(self.reply)
        elif self.error_reason is not None:
            body = bencode.encode({"result": "error", "error-reason": self.error_reason})
        else:
            result = "pong" if message["command"] == "ping" else "ok"
            body = bencode.encode({"result": result, "echo": message})
        if self.wrong_cookie_first:
            self.transport.sendto(b"0123456789abcdef " + bencode.encode({"result": "ok", "stray": 1}), addr)
        self.transport.sendto(cookie + b" " + body, addr)

    @property
    def cookies(self) -> list[bytes]:
        return [cookie for cookie, _ in self.received]


class RttLog:
    def __init__(self) -> None:
        self.samples: list[tuple[str, float]] = []

    def __call__(self, command: str, seconds: float) -> None:
        self.samples.append((command, seconds))


@pytest.fixture
async def fake() -> AsyncIterator[FakeRtpengine]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(FakeRtpengine, local_addr=("127.0.0.1", 0))
    try:
        yield protocol
    finally:
        transport.close()


@pytest.fixture
def rtt() -> RttLog:
    return RttLog()


@pytest.fixture
async def ng(fake: FakeRtpengine, rtt: RttLog) -> AsyncIterator[RtpengineNg]:
    async with RtpengineNg(fake.address, timeout=PATIENT, attempts=3, on_rtt=rtt) as client:
        yield client


@pytest.fixture
async def fast_ng(fake: FakeRtpengine, rtt: RttLog) -> AsyncIterator[RtpengineNg]:
    async with RtpengineNg(fake.address, timeout=FAST, attempts=3, on_rtt=rtt) as client:
        yield client


async def wait_until(predicate: Callable[[], bool], within_s: float = 1.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


# -- happy path ------------------------------------------------------------------------------------


async def test_ping_returns_pong_and_reports_rtt(ng: RtpengineNg, fake: FakeRtpengine, rtt: RttLog) -> None:
    fake.delay = 0.01
    reply = await ng.ping()
    assert reply["result"] == "pong"
    assert len(fake.received) == 1
    assert len(rtt.samples) == 1
    command, seconds = rtt.samples[0]
    assert command == "ping"
    assert 0.01 <= seconds < PATIENT
    assert ng.in_flight == 0


async def test_socket_is_on_loopback(ng: RtpengineNg) -> None:
    host, port = ng.local_address
    assert host == "127.0.0.1"
    assert port > 0


async def test_request_turns_underscores_into_dashes_and_drops_none(
    ng: RtpengineNg, fake: FakeRtpengine
) -> None:
    reply = await ng.request(
        "offer",
        call_id="c1",
        from_tag="f1",
        sdp="v=0\r\n",
        flags=["trust-address"],
        replace=["origin"],
        ICE="remove",
        via_branch=None,
        **{"address family": "IP4"},
    )
    sent = {
        "command": "offer",
        "call-id": "c1",
        "from-tag": "f1",
        "sdp": "v=0\r\n",
        "flags": ["trust-address"],
        "replace": ["origin"],
        "ICE": "remove",
        "address family": "IP4",
    }
    assert fake.received[0][1] == sent
    assert reply == {"result": "ok", "echo": sent}


Convenience = Callable[[RtpengineNg], Awaitable[dict[str, Any]]]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.ping(), {"command": "ping"}),
        (lambda c: c.offer("c", "f", "v=0", flags=["x"]),
         {"command": "offer", "call-id": "c", "from-tag": "f", "sdp": "v=0", "flags": ["x"]}),
        (lambda c: c.answer("c", "f", "t", "v=0", to_tag_extra=1),
         {"command": "answer", "call-id": "c", "from-tag": "f", "to-tag": "t", "sdp": "v=0",
          "to-tag-extra": 1}),
        (lambda c: c.delete("c"), {"command": "delete", "call-id": "c"}),
        (lambda c: c.delete("c", "f", delete_delay=0),
         {"command": "delete", "call-id": "c", "from-tag": "f", "delete-delay": 0}),
        (lambda c: c.query("c"), {"command": "query", "call-id": "c"}),
        (lambda c: c.list_calls(limit=5), {"command": "list", "limit": 5}),
        (lambda c: c.statistics(), {"command": "statistics"}),
        (lambda c: c.play_media("c", "f", "/tmp/a.wav"),
         {"command": "play media", "call-id": "c", "from-tag": "f", "file": "/tmp/a.wav"}),
        (lambda c: c.play_media("c", "f", "/tmp/a.wav", repeat_times=3),
         {"command": "play media", "call-id": "c", "from-tag": "f", "file": "/tmp/a.wav", "repeat-times": 3}),
        (lambda c: c.stop_media("c", "f"), {"command": "stop media", "call-id": "c", "from-tag": "f"}),
        (lambda c: c.block_media("c", "f"), {"command": "block media", "call-id": "c", "from-tag": "f"}),
        (lambda c: c.unblock_media("c", "f"), {"command": "unblock media", "call-id": "c", "from-tag": "f"}),
    ],
)
async def test_conveniences_send_the_right_message(
    ng: RtpengineNg, fake: FakeRtpengine, call: Convenience, message: dict[str, Any]
) -> None:
    await call(ng)
    assert [m for _, m in fake.received] == [message]


async def test_concurrent_requests_get_their_own_replies(ng: RtpengineNg, fake: FakeRtpengine) -> None:
    # later commands are answered first: matching must be by cookie, not by order
    fake.delays = {f"c{i}": 0.002 * (20 - i) for i in range(20)}
    replies = await asyncio.gather(*(ng.query(f"c{i}") for i in range(20)))
    assert [r["echo"]["call-id"] for r in replies] == [f"c{i}" for i in range(20)]
    assert len(set(fake.cookies)) == 20
    assert ng.in_flight == 0


# -- errors ----------------------------------------------------------------------------------------


async def test_unknown_call_id_raises_with_error_reason(ng: RtpengineNg, fake: FakeRtpengine) -> None:
    fake.error_reason = "Unknown call-id"
    with pytest.raises(RtpengineError) as info:
        await ng.query("gone")
    err = info.value
    assert not isinstance(err, RtpengineTimeout)
    assert (err.command, err.call_id, err.result) == ("query", "gone", "error")
    assert err.error_reason == "Unknown call-id"
    assert "Unknown call-id" in str(err)
    assert "gone" in str(err)
    assert len(fake.received) == 1  # an error reply is final: no resend
    assert ng.in_flight == 0


async def test_other_non_ok_result_raises(ng: RtpengineNg, fake: FakeRtpengine) -> None:
    fake.reply = {"result": "load limit", "message": "Parallel session limit reached"}
    with pytest.raises(RtpengineError) as info:
        await ng.offer("c", "f", "v=0")
    assert info.value.result == "load limit"
    assert info.value.error_reason == "Parallel session limit reached"


async def test_reply_without_result_raises(ng: RtpengineNg, fake: FakeRtpengine) -> None:
    fake.reply = {"sdp": "v=0"}
    with pytest.raises(RtpengineError) as info:
        await ng.offer("c", "f", "v=0")
    assert info.value.result == "None"


async def test_malformed_reply_fails_fast(ng: RtpengineNg, fake: FakeRtpengine, rtt: RttLog) -> None:
    fake.raw_body = b"d6:result2:ok"  # truncated bencode
    with pytest.raises(RtpengineError) as info:
        await ng.query("c")
    assert info.value.result == "malformed"
    assert len(fake.received) == 1
    assert ng.malformed_replies == 1
    assert rtt.samples == []


# -- loss, resend, Karn's rule ---------------------------------------------------------------------


async def test_lost_packet_is_resent_with_the_same_cookie_and_no_rtt(
    fast_ng: RtpengineNg, fake: FakeRtpengine, rtt: RttLog
) -> None:
    ng = fast_ng
    fake.drop_first = 2
    reply = await ng.delete("c", "f")
    assert reply["result"] == "ok"
    assert len(fake.received) == 3
    assert len(set(fake.cookies)) == 1
    assert fake.received[0] == fake.received[2]  # byte-for-byte the same command
    assert rtt.samples == []  # Karn: a resent command gives no RTT sample


async def test_late_reply_after_resend_gives_no_rtt_and_duplicate_is_ignored(
    fake: FakeRtpengine, rtt: RttLog
) -> None:
    fake.delay = FAST * 1.6  # the first reply arrives while the second attempt is pending
    async with RtpengineNg(fake.address, timeout=FAST, attempts=5, on_rtt=rtt) as client:
        reply = await client.query("c")
        assert reply["result"] == "ok"
        assert len(fake.received) >= 2
        assert rtt.samples == []
        # the answer to the resend arrives later and must only be counted
        await wait_until(lambda: client.unknown_replies >= 1)
        assert client.in_flight == 0


async def test_timeout_after_all_attempts(fast_ng: RtpengineNg, fake: FakeRtpengine, rtt: RttLog) -> None:
    ng = fast_ng
    fake.silent = True
    started = time.monotonic()
    with pytest.raises(RtpengineTimeout) as info:
        await ng.delete("c", "f")
    elapsed = time.monotonic() - started
    err = info.value
    assert isinstance(err, RtpengineError)
    assert (err.command, err.call_id, err.result) == ("delete", "c", "timeout")
    assert err.attempts == 3
    assert "3 attempt" in str(err)
    assert len(fake.received) == 3
    assert len(set(fake.cookies)) == 1
    assert 3 * FAST * 0.9 <= elapsed < 3 * FAST + 0.5
    assert rtt.samples == []
    assert ng.in_flight == 0


async def test_reply_with_unknown_cookie_is_ignored(
    ng: RtpengineNg, fake: FakeRtpengine, rtt: RttLog
) -> None:
    fake.wrong_cookie_first = True
    reply = await ng.query("c")
    assert "stray" not in reply
    assert reply["echo"]["call-id"] == "c"
    assert ng.unknown_replies == 1
    assert len(fake.received) == 1
    assert len(rtt.samples) == 1  # answered first time: the stray reply does not spoil the sample


async def test_reply_without_cookie_separator_is_counted(ng: RtpengineNg) -> None:
    ng._on_datagram(b"garbage-without-space")
    assert ng.malformed_replies == 1


async def test_broken_rtt_callback_does_not_fail_the_command(fake: FakeRtpengine) -> None:
    def explode(command: str, seconds: float) -> None:
        raise RuntimeError("metrics down")

    async with RtpengineNg(fake.address, timeout=PATIENT, on_rtt=explode) as client:
        assert (await client.ping())["result"] == "pong"


# -- lifecycle -------------------------------------------------------------------------------------


async def test_request_before_start_raises(fake: FakeRtpengine) -> None:
    client = RtpengineNg(fake.address)
    with pytest.raises(RuntimeError):
        await client.ping()


async def test_close_twice_and_use_after_close(fake: FakeRtpengine) -> None:
    client = RtpengineNg(fake.address, timeout=PATIENT)
    await client.start()
    assert (await client.ping())["result"] == "pong"
    await client.close()
    await client.close()
    with pytest.raises(RuntimeError):
        await client.ping()


async def test_close_fails_pending_commands(fake: FakeRtpengine) -> None:
    fake.silent = True
    client = RtpengineNg(fake.address, timeout=5.0)
    await client.start()
    task = asyncio.create_task(client.query("c"))
    await wait_until(lambda: len(fake.received) == 1)
    await client.close()
    with pytest.raises(RtpengineError) as info:
        await asyncio.wait_for(task, 1.0)
    assert info.value.result == "closed"
    assert client.in_flight == 0


@pytest.mark.parametrize(("timeout", "attempts"), [(0, 3), (-1.0, 3), (1.0, 0)])
def test_invalid_settings_rejected(timeout: float, attempts: int) -> None:
    with pytest.raises(ValueError):
        RtpengineNg(("127.0.0.1", 1), timeout=timeout, attempts=attempts)
