"""SDP from rtpengine's view of a leg, and the INVITE that originates a leg through Kamailio."""

from __future__ import annotations

import pytest

from controller.adapters.kamailio_sip import build_originate
from controller.adapters.rtpengine_media import LegMediaUnknown, leg_media


def query_reply(tag: str, address: str = "127.0.0.3", port: int = 40000, codec: str = "PCMA/8000") -> dict:
    stream = {"flags": ["RTP", "filled"], "advertised endpoint": {"address": address, "port": port},
              "endpoint": {"address": address, "port": port}}
    rtcp = {"flags": ["RTCP"], "endpoint": {"address": address, "port": port + 1}}
    return {"tags": {tag: {"medias": [{"type": "audio", "codec": codec, "streams": [rtcp, stream]}]}}}


def test_leg_media_takes_the_rtp_endpoint_and_codec() -> None:
    media = leg_media(query_reply("A", port=41000, codec="PCMU/8000"), "A")
    assert (media.address, media.port, media.codec) == ("127.0.0.3", 41000, "PCMU/8000")
    sdp = media.sdp()
    assert "c=IN IP4 127.0.0.3" in sdp and "m=audio 41000 RTP/AVP 0 101" in sdp
    assert "a=rtpmap:0 PCMU/8000" in sdp and "a=rtpmap:101 telephone-event/8000" in sdp
    assert sdp.endswith("\r\n") and "\n" not in sdp.replace("\r\n", "")


def test_unknown_codec_falls_back_to_pcma() -> None:
    sdp = leg_media(query_reply("A", codec="opus/48000"), "A").sdp()
    assert "m=audio 40000 RTP/AVP 8 101" in sdp and "a=rtpmap:8 PCMA/8000" in sdp


@pytest.mark.parametrize("reply", [{}, {"tags": {}}, {"tags": {"A": {"medias": []}}},
                                   {"tags": {"A": {"medias": [{"type": "audio", "streams": [{"flags": ["RTP"]}]}]}}}])
def test_unknown_leg_media_is_a_clear_error(reply: dict) -> None:
    with pytest.raises(LegMediaUnknown):
        leg_media(reply, "A")


def test_originate_sends_the_invite_through_the_proxy_without_a_from_tag() -> None:
    req = build_originate(leg_id="conv.t1.b1", target_user="101", domain="acme.test", caller_id="+74951110000",
                          proxy="127.0.0.1:5060", sdp="v=0\r\n", call_id="xfer-1")
    method, ruri, nexthop, sock, headers, body = req.rpc_params()
    assert (method, ruri, nexthop, sock, body) == ("INVITE", "sip:101@acme.test", "sip:127.0.0.1:5060", ".", "v=0\r\n")
    lines = headers.split("\r\n")
    # tm adds its own From tag; a second one breaks the ACK (platform notes)
    assert "From: <sip:+74951110000@acme.test>" in lines and not any(";tag=" in line for line in lines)
    assert "P-Asserted-Identity: <sip:+74951110000@acme.test>" in lines
    assert "X-Xfer-Leg: conv.t1.b1" in lines and "Call-ID: xfer-1" in lines
    assert "Contact: <sip:xfer@127.0.0.1:5060>" in lines
    assert headers.endswith("\r\n")


def test_originated_legs_get_distinct_call_ids() -> None:
    ids = {build_originate(leg_id="l", target_user="1", domain="d", caller_id="c", proxy="p", sdp="").call_id
           for _ in range(50)}
    assert len(ids) == 50
