"""rtpengine DTMF events: parsing, de-duplication, and the UDP listener."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.adapters.dtmf import (
    EVENT_DIGITS,
    QUEUED_DIGIT_MAX_AGE_S,
    DtmfDeduplicator,
    DtmfEvent,
    is_stale,
    parse_dtmf_datagram,
    start_dtmf_listener,
)


def datagram(**overrides: Any) -> bytes:
    doc: dict[str, Any] = {
        "callid": "abc",
        "source_tag": "tagA",
        "tags": ["tagA", "tagB"],
        "type": "DTMF",
        "timestamp": 1732520000,
        "source_ip": "127.0.0.1",
        "event": 11,
        "duration": 160,
        "volume": 10,
    }
    for key, value in overrides.items():
        if value is _DROP:
            del doc[key]
        else:
            doc[key] = value
    return json.dumps(doc).encode()


_DROP = object()


def event(digit: str = "5", tag: str = "tagA", ts: int = 100, call: str = "abc") -> DtmfEvent:
    return DtmfEvent(call_id=call, source_tag=tag, digit=digit, timestamp=ts, duration_ms=100, volume=10)


# -- parsing ---------------------------------------------------------------------------------------


def test_parse_rtpengine_example() -> None:
    raw = (
        b'{"callid":"abc","source_tag":"tagA","tags":["tagA","tagB"],"type":"DTMF","timestamp":1732520000,'
        b'"source_ip":"127.0.0.1","event":11,"duration":160,"volume":10}'
    )
    assert parse_dtmf_datagram(raw) == DtmfEvent("abc", "tagA", "#", 1732520000, 160, 10, ("tagA", "tagB"))


@pytest.mark.parametrize("tags", [None, "tagA", ["tagA", 5], {"a": 1}])
def test_missing_or_odd_tags_do_not_reject_the_digit(tags: object) -> None:
    doc = {"callid": "abc", "source_tag": "tagA", "type": "DTMF", "timestamp": 1, "event": 5, "duration": 160,
           "volume": 10}
    if tags is not None:
        doc["tags"] = tags
    parsed = parse_dtmf_datagram(json.dumps(doc).encode())
    assert parsed.digit == "5" and parsed.tags == ()


@pytest.mark.parametrize(
    ("code", "digit"),
    [*((i, str(i)) for i in range(10)), (10, "*"), (11, "#"),
     (12, "A"), (13, "B"), (14, "C"), (15, "D"), (16, "!")],
)
def test_event_codes(code: int, digit: str) -> None:
    assert parse_dtmf_datagram(datagram(event=code)).digit == digit


def test_newer_rtpengine_extra_fields_are_ignored() -> None:
    assert parse_dtmf_datagram(datagram(source_label="caller")).call_id == "abc"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"{oops", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[" * 100_000, "not valid JSON"),
        (b'["DTMF"]', "expected a JSON object"),
        (datagram(callid=_DROP), "missing field 'callid'"),
        (datagram(source_tag=_DROP), "missing field 'source_tag'"),
        (datagram(type=_DROP), "missing field 'type'"),
        (datagram(timestamp=_DROP), "missing field 'timestamp'"),
        (datagram(event=_DROP), "missing field 'event'"),
        (datagram(duration=_DROP), "missing field 'duration'"),
        (datagram(volume=_DROP), "missing field 'volume'"),
        (datagram(type="RTCP"), "not 'DTMF'"),
        (datagram(type=1), "'type' must be str"),
        (datagram(callid=5), "'callid' must be str"),
        (datagram(callid=""), "callid is empty"),
        (datagram(source_tag=None), "'source_tag' must be str"),
        (datagram(event="1"), "'event' must be int"),
        (datagram(event=1.0), "'event' must be int"),
        (datagram(event=True), "'event' must be int"),
        (datagram(event=17), "unknown DTMF event code 17"),
        (datagram(event=-1), "must not be negative"),
        (datagram(timestamp="now"), "'timestamp' must be int"),
        (datagram(duration=-160), "must not be negative"),
        (datagram(volume=[10]), "'volume' must be int"),
    ],
)
def test_parse_rejects_malformed(raw: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_dtmf_datagram(raw)


@given(
    call=st.text(min_size=1),
    tag=st.text(),
    code=st.sampled_from(sorted(EVENT_DIGITS)),
    ts=st.integers(0, 2**40),
    duration=st.integers(0, 10_000),
    volume=st.integers(0, 63),
)
def test_parse_round_trip(call: str, tag: str, code: int, ts: int, duration: int, volume: int) -> None:
    raw = datagram(callid=call, source_tag=tag, event=code, timestamp=ts, duration=duration, volume=volume)
    expected = DtmfEvent(call, tag, EVENT_DIGITS[code], ts, duration, volume, ("tagA", "tagB"))
    assert parse_dtmf_datagram(raw) == expected


# -- de-duplication --------------------------------------------------------------------------------


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_resent_datagram_is_dropped(clock: FakeClock) -> None:
    dedup = DtmfDeduplicator(clock=clock)
    assert dedup.accept(event("5", ts=100)) is True
    clock.now += 0.01
    assert dedup.accept(event("5", ts=100)) is False


def test_same_digit_twice_within_one_second_is_two_presses(clock: FakeClock) -> None:
    # rtpengine's timestamp is in whole seconds: "1", "1" within a second carry the same key
    dedup = DtmfDeduplicator(clock=clock)
    assert dedup.accept(event("1", ts=100)) is True
    clock.now += 0.2
    assert dedup.accept(event("1", ts=100)) is True


def test_same_digit_pressed_again_is_accepted(clock: FakeClock) -> None:
    dedup = DtmfDeduplicator(clock=clock)
    assert dedup.accept(event("5", ts=100)) is True
    clock.now += 0.2
    assert dedup.accept(event("5", ts=101)) is True


def test_one_partys_digit_never_hides_anothers(clock: FakeClock) -> None:
    """The client presses # a moment before A does: A's # still counts (it starts A's transfer)."""
    dedup = DtmfDeduplicator(clock=clock)
    assert dedup.accept(event("#", tag="client", ts=100)) is True
    clock.now += 0.1
    assert dedup.accept(event("#", tag="employee", ts=100)) is True
    assert dedup.accept(event("#", tag="employee", ts=100)) is False  # but its re-sent datagram is dropped


def test_memory_is_pruned_after_retention(clock: FakeClock) -> None:
    dedup = DtmfDeduplicator(clock=clock)
    assert dedup.retention_s == 5.0
    for i in range(50):
        assert dedup.accept(event(str(i % 10), call=f"call{i}", ts=i)) is True
        clock.now += 0.01
    assert len(dedup) == 50
    clock.now += 5.1
    assert dedup.accept(event("1", call="fresh")) is True
    assert len(dedup) == 1


def test_memory_stays_bounded_over_a_long_run(clock: FakeClock) -> None:
    dedup = DtmfDeduplicator(clock=clock)
    for i in range(20_000):
        dedup.accept(event(str(i % 10), call=f"call{i % 300}", ts=i))
        clock.now += 0.01  # 100 digits/s: 5 s of retention holds at most ~500 events
    assert len(dedup) <= 2 * 502


def test_a_digit_the_controller_re_played_is_not_pressed_again(clock: FakeClock) -> None:
    """rtpengine reports a `play DTMF` digit as if the party had pressed it: one report per re-play is
    dropped, so A's 5 passed on to the client never comes back as a second 5 (nor loops)."""
    dedup = DtmfDeduplicator(clock=clock)
    assert dedup.accept(event("5", tag="tagA", ts=100)) is True  # A pressed 5
    dedup.expect_echo("abc", "tagA", "5")  # ...and the controller re-played it
    clock.now += 0.4
    assert dedup.accept(event("5", tag="tagA", ts=100)) is False  # the re-play's report
    clock.now += 0.4
    assert dedup.accept(event("5", tag="tagA", ts=101)) is True  # A presses 5 again: a real press


def test_an_expected_re_play_report_only_swallows_its_own_digit_and_tag(clock: FakeClock) -> None:
    dedup = DtmfDeduplicator(clock=clock)
    dedup.expect_echo("abc", "tagA", "5")
    clock.now += 0.1
    assert dedup.accept(event("6", tag="tagA", ts=100)) is True
    assert dedup.accept(event("5", tag="tagB", ts=100)) is True
    assert dedup.accept(event("5", call="call2", tag="tagA", ts=100)) is True


def test_a_re_play_that_is_never_reported_expires(clock: FakeClock) -> None:
    dedup = DtmfDeduplicator(clock=clock, echo_window_s=2.0)
    dedup.expect_echo("abc", "tagA", "5")
    clock.now += 2.5
    assert dedup.accept(event("5", tag="tagA", ts=100)) is True  # a real press later is not swallowed
    assert len(dedup) == 1  # the expectation is gone


@dataclass
class ReferenceDedup:
    """Brute-force restatement of the documented rules, for the model-based test below."""

    duplicate_window_s: float = 0.05
    recorded: list[tuple[float, tuple[str, str, int, str]]] = field(default_factory=list)

    def accept(self, now: float, ev: DtmfEvent) -> bool:
        horizon = now - 5.0
        key = (ev.call_id, ev.source_tag, ev.timestamp, ev.digit)
        previous = [t for t, k in self.recorded if k == key and t >= horizon]
        self.recorded.append((now, key))
        return not (previous and now - previous[-1] < self.duplicate_window_s)


@given(
    steps=st.lists(
        st.tuples(
            st.integers(0, 3000),  # ms since the previous event
            st.sampled_from(["c1", "c2"]),
            st.sampled_from(["tagA", "tagB"]),
            st.integers(0, 3),
            st.sampled_from("12#"),
        ),
        max_size=40,
    ),
)
def test_matches_reference_model(steps: list[tuple[int, str, str, int, str]]) -> None:
    clock = FakeClock(now=0.0)
    dedup = DtmfDeduplicator(clock=clock)
    model = ReferenceDedup()
    elapsed_ms = 0
    for dt_ms, call, tag, ts, digit in steps:
        elapsed_ms += dt_ms
        clock.now = elapsed_ms / 1000
        ev = event(digit, tag=tag, ts=ts, call=call)
        assert dedup.accept(ev) == model.accept(clock.now, ev)


_presses = st.lists(st.sampled_from(sorted(EVENT_DIGITS.values())), max_size=30)


@given(digits=_presses, data=st.data())
def test_stream_with_duplicates_and_re_plays_yields_each_press_once(
    digits: list[str], data: st.DataObject
) -> None:
    # one press per second (rtpengine timestamps are in seconds); each datagram may be repeated, and
    # a digit the controller re-played is reported once more under the same tag shortly after
    clock = FakeClock()
    dedup = DtmfDeduplicator(clock=clock)
    delivered = []
    for second, digit in enumerate(digits):
        press = event(digit, tag="tagA", ts=second)
        replayed = data.draw(st.booleans())
        copies = [press] * data.draw(st.integers(1, 3))
        for copy in copies:
            clock.now += 0.01  # re-sent datagrams arrive within milliseconds
            if dedup.accept(copy):
                delivered.append(copy)
                if replayed:
                    dedup.expect_echo(copy.call_id, copy.source_tag, copy.digit)
        if replayed:
            clock.now += 0.3
            assert dedup.accept(press) is False  # the re-play's report
        clock.now += 1.0
    assert [e.digit for e in delivered] == digits


# -- listener over a real UDP socket ---------------------------------------------------------------


async def test_listener_delivers_exactly_the_right_digits(caplog: pytest.LogCaptureFixture) -> None:
    digits: list[DtmfEvent] = []
    malformed: list[tuple[bytes, str]] = []
    last_one_in = asyncio.Event()

    def on_digit(ev: DtmfEvent) -> None:
        digits.append(ev)
        if ev.timestamp == 4:  # the last datagram; loopback UDP keeps the order
            last_one_in.set()
        if ev.digit == "#":
            raise RuntimeError("handler bug")  # must not kill the listener

    transport, listener = await start_dtmf_listener(
        ("127.0.0.1", 0), on_digit, on_malformed=lambda data, why: malformed.append((data, why))
    )
    port = transport.get_extra_info("sockname")[1]
    sent = [
        datagram(event=1, timestamp=1),
        datagram(event=1, timestamp=1),  # repeated datagram
        b"{not json" + b"x" * 500,  # malformed (and long: the log line is truncated)
        datagram(event=1, timestamp=1, source_tag="tagB"),  # the other party's own 1: delivered too
        datagram(event=11, timestamp=2),  # "#": the callback raises
        datagram(event=10, timestamp=3),  # "*": still delivered afterwards
        datagram(event=1, timestamp=4),  # "1" again: a genuine new press
    ]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with caplog.at_level(logging.WARNING, logger="controller.adapters.dtmf"):
            for raw in sent:
                sock.sendto(raw, ("127.0.0.1", port))
            await asyncio.wait_for(last_one_in.wait(), 2.0)
    finally:
        sock.close()
        transport.close()

    assert listener.received == len(sent)
    assert [(e.digit, e.source_tag, e.timestamp) for e in digits] == [
        ("1", "tagA", 1),
        ("1", "tagB", 1),
        ("#", "tagA", 2),
        ("*", "tagA", 3),
        ("1", "tagA", 4),
    ]
    assert len(malformed) == 1
    assert malformed[0][0] == sent[2]
    assert "not valid JSON" in malformed[0][1]
    (warning,) = [r for r in caplog.records if "malformed DTMF" in r.getMessage()]
    assert len(warning.getMessage()) < 400
    failures = [r.exc_info[1] for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert [str(exc) for exc in failures] == ["handler bug"]
    assert (listener.accepted, listener.dropped, listener.malformed) == (5, 1, 1)


async def test_listener_survives_a_failing_malformed_callback() -> None:
    digits: list[str] = []

    def bad_on_malformed(data: bytes, why: str) -> None:
        raise RuntimeError("boom")

    transport, listener = await start_dtmf_listener(
        ("127.0.0.1", 0), lambda ev: digits.append(ev.digit), on_malformed=bad_on_malformed
    )
    try:
        listener.datagram_received(b"garbage", ("127.0.0.1", 9))
        listener.datagram_received(datagram(event=5), ("127.0.0.1", 9))
    finally:
        transport.close()
    assert digits == ["5"]


async def test_listener_refuses_datagrams_from_anyone_but_rtpengine() -> None:
    """A stranger who knows a call's Call-ID and tags must not be able to press keys for a party."""
    digits: list[DtmfEvent] = []
    arrived = asyncio.Event()

    def on_digit(ev: DtmfEvent) -> None:
        digits.append(ev)
        arrived.set()

    transport, listener = await start_dtmf_listener(("127.0.0.1", 0), on_digit, allowed_source="127.0.0.1")
    port = transport.get_extra_info("sockname")[1]
    stranger, rtpengine = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET,
                                                                                         socket.SOCK_DGRAM)
    try:
        stranger.bind(("127.0.0.9", 0))
        rtpengine.bind(("127.0.0.1", 0))
        stranger.sendto(datagram(event=11, timestamp=1), ("127.0.0.1", port))
        rtpengine.sendto(datagram(event=5, timestamp=2), ("127.0.0.1", port))
        await asyncio.wait_for(arrived.wait(), 2.0)
    finally:
        stranger.close()
        rtpengine.close()
        transport.close()
    assert [(e.digit, e.timestamp) for e in digits] == [("5", 2)]
    assert (listener.refused, listener.received) == (1, 1)


def test_a_digit_queued_too_long_for_a_controller_is_stale() -> None:
    event = DtmfEvent("call", "tag", "#", timestamp=1000, duration_ms=160, volume=10)
    assert not is_stale(event, 1000.5)
    assert not is_stale(event, 1000 + QUEUED_DIGIT_MAX_AGE_S + 0.9)  # whole-second timestamps: one more
    assert is_stale(event, 1000 + QUEUED_DIGIT_MAX_AGE_S + 1.1)
