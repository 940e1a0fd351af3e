"""Pure builders for what the controller sends when it moves legs: SDP and originating INVITEs.

Re-pairing two legs inside the conversation's rtpengine call is an ng offer/answer whose SDPs describe
each party's real media endpoint. Kamailio anchored those legs, so the controller never saw their SDP;
rtpengine did, and its `query` reply names every party's endpoint and codec. From that we write the
minimal SDP rtpengine needs (it only keeps the endpoint and the codec).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

# static RTP payload types (RFC 3551) of the codecs carriers use; telephone-event rides at 101
STATIC_PAYLOAD_TYPES = {"PCMU/8000": 0, "GSM/8000": 3, "PCMA/8000": 8, "G722/8000": 9, "G729/8000": 18}
TELEPHONE_EVENT_PT = 101


class LegMediaUnknown(LookupError):
    """rtpengine does not know this leg's media (no such tag, or it never sent an SDP)."""


@dataclass(frozen=True)
class LegMedia:
    address: str
    port: int
    codec: str

    def sdp(self, session: int = 1) -> str:
        pt = STATIC_PAYLOAD_TYPES.get(self.codec.upper(), 8)
        codec = self.codec if self.codec.upper() in STATIC_PAYLOAD_TYPES else "PCMA/8000"
        return (
            f"v=0\r\no=xfer {session} {session} IN IP4 {self.address}\r\ns=-\r\n"
            f"c=IN IP4 {self.address}\r\nt=0 0\r\n"
            f"m=audio {self.port} RTP/AVP {pt} {TELEPHONE_EVENT_PT}\r\n"
            f"a=rtpmap:{pt} {codec}\r\na=rtpmap:{TELEPHONE_EVENT_PT} telephone-event/8000\r\n"
            f"a=fmtp:{TELEPHONE_EVENT_PT} 0-16\r\na=sendrecv\r\n"
        )


def leg_media(query_reply: dict[str, Any], tag: str) -> LegMedia:
    """The media endpoint and codec rtpengine has for party `tag`, from an ng `query` reply."""
    info = (query_reply.get("tags") or {}).get(tag)
    if not info:
        raise LegMediaUnknown(f"rtpengine has no leg {tag!r}")
    for media in info.get("medias") or []:
        if media.get("type") != "audio":
            continue
        for stream in media.get("streams") or []:
            if "RTP" not in (stream.get("flags") or []):
                continue
            endpoint = stream.get("advertised endpoint") or stream.get("endpoint") or {}
            if endpoint.get("address") and endpoint.get("port"):
                return LegMedia(str(endpoint["address"]), int(endpoint["port"]), str(media.get("codec") or "PCMA/8000"))
    raise LegMediaUnknown(f"rtpengine has no audio endpoint for leg {tag!r}")


@dataclass(frozen=True)
class OriginateRequest:
    """Arguments of Kamailio's `tm.t_uac_start` for a leg the controller originates.

    The INVITE goes to Kamailio itself (next hop), so it is routed, anchored and dialog-tracked like any
    call; `X-Xfer-Leg` tells Kamailio's callback which pending leg it is (only trusted from Kamailio).
    """

    ruri: str
    nexthop: str
    headers: str
    body: str
    call_id: str

    def rpc_params(self) -> list[str]:
        return ["INVITE", self.ruri, self.nexthop, ".", self.headers, self.body]


def build_originate(*, leg_id: str, target_user: str, domain: str, caller_id: str, proxy: str,
                    sdp: str, call_id: str | None = None) -> OriginateRequest:
    call_id = call_id or f"xfer-{secrets.token_hex(12)}"
    identity = f"<sip:{caller_id}@{domain}>"
    # no From tag: tm.t_uac_* adds its own, and a second one breaks the ACK (platform-notes.md)
    headers = (
        f"From: {identity}\r\n"
        f"To: <sip:{target_user}@{domain}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:xfer@{proxy}>\r\n"
        f"P-Asserted-Identity: {identity}\r\n"
        f"X-Xfer-Leg: {leg_id}\r\n"
        "Content-Type: application/sdp\r\n"
    )
    return OriginateRequest(ruri=f"sip:{target_user}@{domain}", nexthop=f"sip:{proxy}", headers=headers,
                            body=sdp, call_id=call_id)
