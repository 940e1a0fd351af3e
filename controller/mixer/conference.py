"""One conference's mixing, pure: datagrams in (`receive`), one packet per participant out (`tick`).

Each participant's RTP (through rtpengine, paired with a mixer tag of its own) is decoded from its own
codec into its jitter buffer; every 20 ms tick takes one frame from each buffer, mixes each
participant's N-1 others (mixing.py) and encodes the result in that participant's codec on its own
output stream. Telephone events and any payload type that is not the participant's audio codec are
never mixed; RTCP is ignored. The I/O side (sockets, the clock, random SSRCs) is the caller's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import g711
from .jitter import JitterBuffer, JitterStats
from .mixing import mix_minus
from .rtp import OutputStream, parse

__all__ = ["Conference", "Participant"]

#: RTP's static payload types of the two laws (RFC 3551).
PAYLOAD_TYPES = {g711.Law.PCMU: 0, g711.Law.PCMA: 8}


@dataclass
class Participant:
    law: g711.Law
    out: OutputStream
    jitter: JitterBuffer = field(default_factory=JitterBuffer)
    #: payload types received that were not mixed (telephone-event, comfort noise, another codec)
    ignored: int = 0


class Conference:
    def __init__(self) -> None:
        self.participants: dict[str, Participant] = {}

    def add(self, who: str, law: g711.Law | str, *, ssrc: int, first_sequence: int, first_timestamp: int) -> None:
        """A participant joins (its output stream starts at the given, random, SSRC / sequence / timestamp)."""
        law = g711.Law(law)
        if who in self.participants:
            raise ValueError(f"{who!r} is already in the conference")
        self.participants[who] = Participant(law, OutputStream(ssrc, first_sequence, first_timestamp,
                                                               PAYLOAD_TYPES[law]))

    def remove(self, who: str) -> None:
        self.participants.pop(who, None)

    def receive(self, who: str, datagram: bytes, arrival_ms: float) -> None:
        """A datagram from `who`'s side of rtpengine: audio goes to its jitter buffer, anything else away."""
        participant = self.participants.get(who)
        packet = parse(datagram) if participant is not None else None
        if participant is None or packet is None:
            return
        if packet.payload_type != participant.out.payload_type or not packet.payload:
            participant.ignored += 1
            return
        participant.jitter.push(packet.ssrc, packet.timestamp, g711.decode(participant.law, packet.payload),
                                arrival_ms)

    def tick(self) -> list[tuple[str, bytes]]:
        """Every 20 ms: one packet for each participant, the others mixed (silence when nobody spoke)."""
        frames = {who: p.jitter.pop() for who, p in self.participants.items()}
        mixed = mix_minus(frames)
        out = []
        for who, participant in self.participants.items():
            voice = any(frame is not None for other, frame in frames.items() if other != who)
            payload = g711.encode(participant.law, mixed[who])
            out.append((who, participant.out.packet(payload, g711.FRAME_SAMPLES, voice=voice)))
        return out

    def stats(self) -> dict[str, JitterStats]:
        return {who: p.jitter.stats for who, p in self.participants.items()}
