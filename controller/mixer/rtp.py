"""RTP (RFC 3550) for the mixer: parse what a participant sends, build what it receives. Pure.

Our own dozen lines rather than a library's: aiortc's RTP classes would bring PyAV (FFmpeg), Opus and
cryptography along for a 12-byte header; nothing here needs SRTP (rtpengine terminates it) or RTCP (it is
recognised and ignored).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["HEADER", "OutputStream", "RtpPacket", "is_rtcp", "parse"]

HEADER = struct.Struct("!BBHII")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes


def is_rtcp(datagram: bytes) -> bool:
    """RTCP multiplexed on the RTP port (RFC 5761): packet types 192-223 where RTP's marker+PT would be."""
    return len(datagram) >= 2 and 192 <= datagram[1] <= 223


def parse(datagram: bytes) -> RtpPacket | None:
    """An RTP packet, or None for anything that is not one (RTCP, junk, a truncated header)."""
    if len(datagram) < HEADER.size or datagram[0] >> 6 != 2 or is_rtcp(datagram):
        return None
    first, second, sequence, timestamp, ssrc = HEADER.unpack_from(datagram)
    offset = HEADER.size + 4 * (first & 0x0F)  # CSRCs
    if first & 0x10:  # a header extension: 4 bytes, then its length in 32-bit words
        if len(datagram) < offset + 4:
            return None
        (words,) = struct.unpack_from("!H", datagram, offset + 2)
        offset += 4 + 4 * words
    end = len(datagram)
    if first & 0x20:  # padding: its length is the last byte
        end -= datagram[-1]
    if end < offset:
        return None
    return RtpPacket(second & 0x7F, sequence, timestamp, ssrc, bool(second & 0x80), datagram[offset:end])


class OutputStream:
    """What one participant receives from the mixer: one SSRC of its own, sequence numbers and timestamps
    that run on without a gap whoever joins or leaves, the marker bit on each talk-spurt's first packet."""

    def __init__(self, ssrc: int, first_sequence: int, first_timestamp: int, payload_type: int):
        self.ssrc = ssrc & 0xFFFFFFFF
        self.sequence = first_sequence & 0xFFFF
        self.timestamp = first_timestamp & 0xFFFFFFFF
        self.payload_type = payload_type
        self._talking = False

    def packet(self, payload: bytes, samples: int, *, voice: bool) -> bytes:
        """The next packet of `samples` samples; `voice`: somebody is heard in it (False: silence)."""
        marker = voice and not self._talking
        self._talking = voice
        header = HEADER.pack(0x80, (0x80 if marker else 0) | self.payload_type, self.sequence, self.timestamp,
                             self.ssrc)
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + samples) & 0xFFFFFFFF
        return header + payload
