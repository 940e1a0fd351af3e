"""The one SDP writer (RFC 4566) of the project, and the little SDP reading it needs.

Every SDP the controller or its tooling sends is a single audio stream: re-pairing legs in rtpengine
(an endpoint and its codec), answering rtpengine for the voicemail recorder (the offer's codecs,
receive only) and the test parties' phones. They differ only in the values below.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["TELEPHONE_EVENT", "Codec", "audio_endpoint", "audio_sdp", "offered_codecs", "static_codec"]


@dataclass(frozen=True)
class Codec:
    """One payload type of an m= line: its number, rtpmap (``PCMA/8000``) and fmtp, if any."""

    payload_type: int
    rtpmap: str
    fmtp: str | None = None


#: RFC 4733 events, at the dynamic payload type carriers commonly use.
TELEPHONE_EVENT = Codec(101, "telephone-event/8000", "0-16")
#: Static payload types (RFC 3551) of the codecs carriers use.
_STATIC = {"PCMU/8000": 0, "GSM/8000": 3, "PCMA/8000": 8, "G722/8000": 9, "G729/8000": 18}


def static_codec(name: str) -> Codec:
    """The static payload type of ``name`` (``PCMU/8000``...); anything else is sent as PCMA."""
    key = name.upper()
    if key in _STATIC:
        return Codec(_STATIC[key], name)
    return Codec(_STATIC["PCMA/8000"], "PCMA/8000")


def audio_sdp(address: str, port: int, codecs: Iterable[Codec], *, direction: str = "sendrecv",
              origin: str = "xfer", session: int | str = 1, ptime_ms: int | None = None) -> str:
    """A session with one audio stream at address:port offering ``codecs`` in order (CRLF line ends)."""
    codecs = list(codecs)
    lines = [
        "v=0", f"o={origin} {session} 1 IN IP4 {address}", "s=-", f"c=IN IP4 {address}", "t=0 0",
        f"m=audio {port} RTP/AVP {' '.join(str(c.payload_type) for c in codecs)}",
    ]
    for codec in codecs:
        lines.append(f"a=rtpmap:{codec.payload_type} {codec.rtpmap}")
        if codec.fmtp:
            lines.append(f"a=fmtp:{codec.payload_type} {codec.fmtp}")
    if ptime_ms:
        lines.append(f"a=ptime:{ptime_ms}")
    lines.append(f"a={direction}")
    return "\r\n".join(lines) + "\r\n"


def offered_codecs(sdp: str) -> list[Codec]:
    """The codecs of an SDP's first audio stream, in its order (an m= line without rtpmap: static)."""
    lines = sdp.replace("\r\n", "\n").split("\n")
    m_line = next((ln for ln in lines if ln.startswith("m=audio")), "m=audio 0 RTP/AVP 8")
    rtpmap: dict[str, str] = {}
    fmtp: dict[str, str] = {}
    for line in lines:
        for prefix, into in (("a=rtpmap:", rtpmap), ("a=fmtp:", fmtp)):
            if line.startswith(prefix):
                pt, _, value = line[len(prefix):].partition(" ")
                into[pt] = value.strip()
    static_names = {pt: name for name, pt in _STATIC.items()}
    out = []
    for pt in m_line.split()[3:]:
        if pt.isdigit():
            out.append(Codec(int(pt), rtpmap.get(pt) or static_names.get(int(pt), "PCMA/8000"), fmtp.get(pt)))
    return out


def audio_endpoint(sdp: str) -> tuple[str, int]:
    """Where an SDP's first audio stream receives: its port, and its own c= address or the session's."""
    session = media = None
    port: int | None = None
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if line.startswith("m="):
            if port is not None:
                break  # the next stream
            if line.startswith("m=audio "):
                port = int(line.split()[1])
        elif line.startswith("c=IN IP4 "):
            if port is None:
                session = line.split()[-1]
            else:
                media = line.split()[-1]
    address = media or session
    if address is None or port is None:
        raise ValueError("no audio endpoint in the SDP")
    return address, port
