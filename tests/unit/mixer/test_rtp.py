"""RTP for the mixer: what it accepts from a participant, what it sends."""

from __future__ import annotations

import struct

from controller.mixer.rtp import HEADER, OutputStream, is_rtcp, parse


def rtp(pt: int = 8, seq: int = 1, ts: int = 160, ssrc: int = 7, payload: bytes = b"\xd5" * 160, *,
        marker: bool = False, csrc: int = 0, extension: bytes | None = None, padding: int = 0) -> bytes:
    first = 0x80 | csrc | (0x10 if extension is not None else 0) | (0x20 if padding else 0)
    out = HEADER.pack(first, (0x80 if marker else 0) | pt, seq, ts, ssrc) + b"\x00\x00\x00\x01" * csrc
    if extension is not None:
        out += struct.pack("!HH", 0xBEDE, len(extension) // 4) + extension
    return out + payload + (b"\x00" * (padding - 1) + bytes([padding]) if padding else b"")


def test_a_plain_packet() -> None:
    packet = parse(rtp(seq=65535, ts=4294967200, marker=True))
    assert packet is not None
    assert (packet.payload_type, packet.sequence, packet.timestamp, packet.ssrc, packet.marker) == (
        8, 65535, 4294967200, 7, True)
    assert packet.payload == b"\xd5" * 160


def test_csrcs_a_header_extension_and_padding_are_skipped() -> None:
    packet = parse(rtp(csrc=2, extension=b"\x10\x01\x02\x03", padding=4, payload=b"abcd"))
    assert packet is not None and packet.payload == b"abcd"


def test_rtcp_and_junk_are_no_rtp() -> None:
    sender_report = bytes([0x80, 200]) + b"\x00\x06" + b"\x00" * 24
    assert is_rtcp(sender_report) and parse(sender_report) is None
    assert parse(b"") is None and parse(b"\x80\x08\x00") is None  # truncated
    assert parse(b"\x40" + b"\x00" * 20) is None  # version 1
    assert parse(rtp(extension=b"\x00" * 4)[:14]) is None  # the extension runs past the end
    claims_too_much = bytearray(rtp(payload=b"ab"))
    claims_too_much[0] |= 0x20  # padding, and its last byte says 98 bytes of it: more than the packet
    assert parse(bytes(claims_too_much)) is None


def test_an_output_stream_runs_on_and_marks_talk_spurts() -> None:
    out = OutputStream(ssrc=0x1234, first_sequence=65534, first_timestamp=4294967136, payload_type=0)
    packets = [parse(out.packet(b"\xff" * 160, 160, voice=voice)) for voice in (False, True, True, False, True)]
    assert [p.sequence for p in packets] == [65534, 65535, 0, 1, 2]  # wraps without a gap
    assert [p.timestamp for p in packets] == [4294967136, 0, 160, 320, 480]
    assert [p.marker for p in packets] == [False, True, False, False, True]  # the first packet of each spurt
    assert {p.ssrc for p in packets} == {0x1234} and {p.payload_type for p in packets} == {0}
