"""DTMF events from rtpengine (``dtmf-log-dest = IP:PORT``).

rtpengine sends one UDP JSON datagram per digit, after the digit ends, e.g.::

    {"callid":"abc","source_tag":"tagA","tags":["tagA","tagB"],"type":"DTMF",
     "timestamp":1732520000,"source_ip":"127.0.0.1","event":11,"duration":160,"volume":10}

``timestamp`` is wall-clock seconds and ``duration`` milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EVENT_DIGITS",
    "QUEUED_DIGIT_MAX_AGE_S",
    "DtmfDeduplicator",
    "DtmfEvent",
    "DtmfListener",
    "is_stale",
    "listen_for_dtmf",
    "parse_dtmf_datagram",
    "start_dtmf_listener",
]

log = logging.getLogger(__name__)

# RFC 4733 event codes; 16 is "flash", shown as "!" as SIP INFO (application/dtmf-relay) does.
EVENT_DIGITS: dict[int, str] = {i: str(i) for i in range(10)} | {
    10: "*",
    11: "#",
    12: "A",
    13: "B",
    14: "C",
    15: "D",
    16: "!",
}

#: A digit that waited longer than this for a controller (in the supervisor's socket) is not applied: a
#: supervised restart (systemd's RestartSec=1 and the start) is over within it, so A's dialling completes;
#: a `#` pressed during a longer outage does nothing (nobody expects a transfer to start late). Counted.
QUEUED_DIGIT_MAX_AGE_S = 4

_LOG_PREVIEW = 60  # bytes of a malformed datagram worth putting in a log line (at most ~240 chars as repr)


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    call_id: str
    source_tag: str
    digit: str
    timestamp: int
    duration_ms: int
    volume: int
    # every party's tag in the call: a digit proves the media is up, so these name both sides of the
    # call even when Kamailio's "answered" notification has not been read yet
    tags: tuple[str, ...] = ()


def parse_dtmf_datagram(data: bytes) -> DtmfEvent:
    """Parse one rtpengine DTMF datagram; ValueError says what is wrong with it."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:  # includes UnicodeDecodeError
        raise ValueError(f"not valid JSON: {str(exc)[:80]}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
    kind = _field(doc, "type", str)
    if kind != "DTMF":
        raise ValueError(f"type is {kind[:32]!r}, not 'DTMF'")
    call_id = _field(doc, "callid", str)
    if not call_id:
        raise ValueError("callid is empty")
    event = _field(doc, "event", int)
    digit = EVENT_DIGITS.get(event)
    if digit is None:
        raise ValueError(f"unknown DTMF event code {str(event)[:12]}")
    return DtmfEvent(
        call_id=call_id,
        source_tag=_field(doc, "source_tag", str),
        digit=digit,
        timestamp=_field(doc, "timestamp", int),
        duration_ms=_field(doc, "duration", int),
        volume=_field(doc, "volume", int),
        tags=_tags(doc.get("tags")),
    )


def _tags(value: Any) -> tuple[str, ...]:
    """The optional `tags` list; anything else in that place is ignored rather than fatal."""
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return tuple(value)
    return ()


def _field(doc: dict[str, Any], name: str, kind: type) -> Any:
    if name not in doc:
        raise ValueError(f"missing field {name!r}")
    value = doc[name]
    # bool is an int subclass in Python, but true/false is never a valid number here.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"field {name!r} must be {kind.__name__}, got {type(value).__name__}")
    if kind is int and value < 0:
        raise ValueError(f"field {name!r} must not be negative, got {str(value)[:24]}")
    return value


def is_stale(event: DtmfEvent, now_s: float, max_age_s: float = QUEUED_DIGIT_MAX_AGE_S) -> bool:
    """Whether a digit queued while no controller ran is too old to apply (rtpengine's timestamp is in
    whole seconds, so a digit is given one second more)."""
    return now_s - event.timestamp > max_age_s + 1


class DtmfDeduplicator:
    """Drops re-sent datagrams and the reports of digits the controller re-played, per source tag.

    1. An event with the same (call_id, source_tag, timestamp, digit) as one seen less than
       ``duplicate_window_s`` ago is a re-sent datagram. rtpengine's timestamp has whole-second
       resolution, so the window must stay shorter than a human key press plus gap (> 100 ms):
       "1", "1" pressed within one second are two digits.
    2. A digit the controller re-played itself (rtpengine's ``play DTMF``, announced with
       ``expect_echo``) is reported by rtpengine as if the party had pressed it: one report per
       re-play, within ``echo_window_s``, is dropped. Each real press yields one re-play and one
       report, so which of two identical digits is dropped does not matter.
    3. Anything else is accepted. Every rule is per source tag: one party's digit never hides
       another's (the client pressing ``#`` a moment before A must not swallow A's ``#``). An
       employee's DTMF is blocked towards the other side, so it cannot come back as the other
       party's echo.

    Memory is bounded: on every call, entries older than ``retention_s`` are pruned.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, duplicate_window_s: float = 0.05,
                 echo_window_s: float = 2.0, retention_s: float = 5.0) -> None:
        if duplicate_window_s < 0 or echo_window_s < 0 or retention_s < duplicate_window_s:
            raise ValueError("windows must not be negative, and retention must cover the duplicate window")
        self.duplicate_window_s = duplicate_window_s
        self.echo_window_s = echo_window_s
        self.retention_s = retention_s
        self._clock = clock
        # Insertion-ordered, hence oldest first: pruning stops at the first young entry.
        self._seen: dict[tuple[str, str, int, str], float] = {}
        # re-plays still to be reported back, oldest first: ((call_id, tag, digit), when re-played)
        self._echoes: list[tuple[tuple[str, str, str], float]] = []

    def __len__(self) -> int:
        """Entries currently remembered (for tests and metrics)."""
        return len(self._seen) + len(self._echoes)

    def expect_echo(self, call_id: str, tag: str, digit: str) -> None:
        """The controller re-played `digit` from `tag`: rtpengine will report it once more."""
        self._echoes.append(((call_id, tag, digit), self._clock()))

    def accept(self, event: DtmfEvent) -> bool:
        now = self._clock()
        self._prune(now)
        key = (event.call_id, event.source_tag, event.timestamp, event.digit)
        seen_at = self._seen.pop(key, None)
        self._seen[key] = now  # re-inserted: keeps the dict oldest-first for pruning
        if seen_at is not None and now - seen_at < self.duplicate_window_s:
            return False  # a re-sent datagram (it must not use up an expected re-play's report)
        echo = (event.call_id, event.source_tag, event.digit)
        for index, (expected, _) in enumerate(self._echoes):
            if expected == echo:
                del self._echoes[index]
                return False
        return True

    def _prune(self, now: float) -> None:
        seen, horizon = self._seen, now - self.retention_s
        while seen and seen[oldest := next(iter(seen))] < horizon:
            del seen[oldest]
        echoes, echo_horizon = self._echoes, now - self.echo_window_s
        while echoes and echoes[0][1] < echo_horizon:
            del echoes[0]


class DtmfListener(asyncio.DatagramProtocol):
    """Receives rtpengine DTMF datagrams and hands accepted digits to ``on_digit``.

    Neither a bad datagram nor a failing callback stops the listener.
    """

    def __init__(
        self,
        on_digit: Callable[[DtmfEvent], None],
        *,
        dedup: DtmfDeduplicator | None = None,
        on_malformed: Callable[[bytes, str], None] | None = None,
        allowed_source: str | None = None,
    ) -> None:
        self._on_digit = on_digit
        # rtpengine's address: a datagram from anyone else is dropped unread (a forged digit could
        # start a transfer and dial out)
        self._allowed_source = allowed_source
        self.refused = 0
        self._on_malformed = on_malformed
        self.dedup = dedup if dedup is not None else DtmfDeduplicator()
        self.received = 0
        self.accepted = 0
        self.dropped = 0
        self.malformed = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        event = self.accept(data, addr)
        if event is not None:
            self._guarded(self._on_digit, event)

    def accept(self, data: bytes, addr: Any) -> DtmfEvent | None:
        """The digit a datagram carries, if it is from rtpengine, well-formed and not a duplicate or an
        echo (the checks every datagram passes, live or queued while no controller ran)."""
        if self._allowed_source is not None and (not addr or addr[0] != self._allowed_source):
            self.refused += 1
            if self.refused & (self.refused - 1) == 0:  # 1st, 2nd, 4th, 8th...: a flood cannot flood the log
                log.warning("DTMF datagram from %s refused (only rtpengine at %s may send them; %d so far)",
                            addr, self._allowed_source, self.refused)
            return None
        self.received += 1
        try:
            event = parse_dtmf_datagram(data)
        except ValueError as exc:
            self.malformed += 1
            log.warning("malformed DTMF datagram from %s: %s; data %r", addr, exc, data[:_LOG_PREVIEW])
            if self._on_malformed is not None:
                self._guarded(self._on_malformed, data, str(exc))
            return None
        if not self.dedup.accept(event):
            self.dropped += 1
            log.debug("duplicate/echoed DTMF %r on call %s from tag %s dropped", event.digit,
                      event.call_id, event.source_tag)
            return None
        self.accepted += 1
        return event

    def error_received(self, exc: Exception) -> None:
        log.warning("DTMF listener socket error: %s", exc)

    @staticmethod
    def _guarded(callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("DTMF callback %r failed", callback)


async def start_dtmf_listener(
    address: tuple[str, int],
    on_digit: Callable[[DtmfEvent], None],
    *,
    dedup: DtmfDeduplicator | None = None,
    on_malformed: Callable[[bytes, str], None] | None = None,
    allowed_source: str | None = None,
) -> tuple[asyncio.DatagramTransport, DtmfListener]:
    """Bind a UDP socket on ``address`` (port 0 for an ephemeral one) and start listening."""
    protocol = DtmfListener(on_digit, dedup=dedup, on_malformed=on_malformed, allowed_source=allowed_source)
    return await listen_for_dtmf(protocol, address)


async def listen_for_dtmf(protocol: DtmfListener, address: tuple[str, int],
                          sock: socket.socket | None = None) -> tuple[asyncio.DatagramTransport, DtmfListener]:
    """Start `protocol` on `sock` (a socket the supervisor holds: controller/adapters/listen_fds.py), or on
    a UDP socket of its own bound to `address`."""
    loop = asyncio.get_running_loop()
    if sock is not None:
        transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=sock)
    else:
        transport, _ = await loop.create_datagram_endpoint(lambda: protocol, local_addr=address)
    return transport, protocol
