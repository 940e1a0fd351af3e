"""A minimal RTP party for media tests and the demo: it sends G.711 A-law packets whose payload is a byte
that names the sender, and counts what it receives by that byte, so one can say exactly who heard whom.

It also keeps what a phone would notice beyond the voices: how many distinct RTP streams (SSRCs) reached
it (a phone fed two streams from one port plays a choppy mix of both), and which RFC 4733 telephone
events it received, one per key press."""

from __future__ import annotations

import collections
import random
import socket
import struct
import threading
import time

from controller.codecs.sdp import TELEPHONE_EVENT as TELEPHONE_EVENT_CODEC
from controller.codecs.sdp import audio_sdp, static_codec
from controller.devstack.tones import levels, tone
from controller.mixer.g711 import Law, decode, encode

PCMA = 8
TELEPHONE_EVENT = 101
DTMF_EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}
EVENT_DIGITS = {code: digit for digit, code in DTMF_EVENTS.items()}
SILENCE_PCMA = 0xD5  # A-law encoding of zero amplitude


class RtpParty:
    def __init__(self, name: str, marker: int, address: str = "127.0.0.1", tone_hz: float | None = None):
        self.name = name
        self.marker = marker  # payload byte that identifies this party's audio
        # a voice that survives mixing: a sine of its own frequency instead of the marker byte (a conference
        # sums voices, so markers would not survive); what it receives is kept as audio for tones()
        self.tone_hz = tone_hz
        self._tone_at = 0
        self.audio: list[bytes] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((address, 0))
        self.sock.settimeout(0.1)
        self.address = self.sock.getsockname()
        self.heard: collections.Counter[int] = collections.Counter()  # payload marker -> packets
        self.other = 0  # packets whose payload is not a single repeated byte (e.g. music)
        self.streams: collections.Counter[int] = collections.Counter()  # audio packets per SSRC
        self.digits: list[str] = []  # every telephone event received in the call, one per key press
        self._last_event: tuple[int, int] | None = None  # (ssrc, timestamp) of the last event seen
        self._seq = random.randint(0, 60000)
        self._ts = random.randint(0, 1 << 30)
        self._ssrc = random.getrandbits(32)
        self._destination: tuple[str, int] = ("127.0.0.1", 9)
        self._running = True
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def sdp(self, session: str = "1") -> str:
        host, port = self.address
        return audio_sdp(host, port, [static_codec("PCMA/8000"), TELEPHONE_EVENT_CODEC], origin="-", session=session,
                         ptime_ms=20)

    def send(self, destination: tuple[str, int], packets: int = 10, *, loss: float = 0.0) -> None:
        """`packets` of 20 ms; `loss`: the share of them dropped on the way (at random)."""
        self._destination = destination
        payload = bytes([self.marker]) * 160
        for _ in range(packets):
            if self.tone_hz is not None:
                payload = encode(Law.PCMA, tone(self.tone_hz, 160, start=self._tone_at))
                self._tone_at += 160
            if loss and random.random() < loss:
                self._seq += 1  # lost on the way: the receiver sees the gap
            else:
                self._send(PCMA, self._ts, payload)
            self._ts += 160
            time.sleep(0.02)

    def send_dtmf(self, destination: tuple[str, int], digits: str, gap_s: float = 0.25) -> None:
        self._destination = destination
        """RFC 4733 telephone-events: 8 packets of 20 ms per digit (one timestamp, growing duration,
        marker on the first), then three end packets; audio keeps flowing between digits."""
        for digit in digits:
            event, start_ts = DTMF_EVENTS[digit], self._ts
            for i in range(8):
                self._send(TELEPHONE_EVENT, start_ts, struct.pack("!BBH", event, 10, 160 * (i + 1)), marker=i == 0)
                time.sleep(0.02)
            for _ in range(3):
                self._send(TELEPHONE_EVENT, start_ts, struct.pack("!BBH", event, 0x80 | 10, 160 * 8))
            self._ts += 160 * 8
            self.send(destination, max(1, int(gap_s / 0.02)))

    def _send(self, payload_type: int, timestamp: int, payload: bytes, marker: bool = False) -> None:
        header = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | payload_type, self._seq & 0xFFFF,
                             timestamp & 0xFFFFFFFF, self._ssrc)
        self.sock.sendto(header + payload, self._destination)
        self._seq += 1

    def reset(self) -> None:
        with self._lock:
            self.heard.clear()
            self.other = 0
            self.streams.clear()
            self.audio.clear()

    def chunks(self, packets: int) -> list:
        """The audio received since the last reset, decoded, in pieces of `packets` packets each."""
        with self._lock:
            audio = list(self.audio)
        return [decode(Law.PCMA, b"".join(audio[i:i + packets])) for i in range(0, len(audio) - packets + 1, packets)]

    def tones(self, frequencies: list[float]) -> dict[float, float]:
        """The amplitude of each frequency in the audio received since the last reset (0 for none)."""
        with self._lock:
            payload = b"".join(self.audio)
        if not payload:
            return dict.fromkeys(frequencies, 0.0)
        return levels(decode(Law.PCMA, payload), frequencies)

    def snapshot(self) -> tuple[dict[int, int], int]:
        with self._lock:
            return dict(self.heard), self.other

    def received(self) -> tuple[dict[int, int], list[str]]:
        """(audio packets per RTP stream since the last reset, every telephone event of the call)."""
        with self._lock:
            return dict(self.streams), list(self.digits)

    def close(self) -> None:
        self._running = False
        self._thread.join(1)
        self.sock.close()

    def _receive(self) -> None:
        while self._running:
            try:
                data, _ = self.sock.recvfrom(2048)
            except (TimeoutError, OSError):
                continue
            if len(data) < 13:
                continue
            payload_type, payload = data[1] & 0x7F, data[12:]
            timestamp, ssrc = struct.unpack("!II", data[4:12])
            if payload_type == TELEPHONE_EVENT:
                self._on_event(ssrc, timestamp, payload)
                continue
            if payload_type != PCMA:
                continue
            with self._lock:
                self.streams[ssrc] += 1
                self.audio.append(payload)
                if len(set(payload)) == 1:
                    if payload[0] != SILENCE_PCMA:  # silence is nobody's voice
                        self.heard[payload[0]] += 1
                elif any(b != SILENCE_PCMA for b in payload):
                    self.other += 1


    def _on_event(self, ssrc: int, timestamp: int, payload: bytes) -> None:
        # RFC 4733 section 2.5.1: all packets of one event share its timestamp; a new timestamp (or a new
        # sender) is a new key press
        if len(payload) < 4:
            return
        with self._lock:
            if self._last_event != (ssrc, timestamp):
                self._last_event = (ssrc, timestamp)
                self.digits.append(EVENT_DIGITS.get(payload[0], "?"))



def media_port(sdp: str) -> int:
    for line in sdp.splitlines():
        if line.startswith("m=audio "):
            return int(line.split()[1])
    raise ValueError("no audio m-line in SDP")
