"""The SIPp trace reader the integration tests assert with: what a party sent and received, by message,
never by substring (a port such as 40481 must not read as a 481 reply)."""

from pathlib import Path

from controller.devstack.sipp import SippParty

TRACE = """\
----------------------------------------------- 2026-12-02 01:43:55.858244
UDP message received [526] bytes :

NOTIFY sip:127.0.0.3:40481;transport=UDP SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:34589;branch=z9hG4bK77d4.0
CSeq: 3 NOTIFY
Content-Length: 0


----------------------------------------------- 2026-12-02 01:43:55.858343
UDP message sent (328 bytes):

SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:34589;branch=z9hG4bK77d4.0
CSeq: 3 NOTIFY
Contact: <sip:127.0.0.3:40481;transport=UDP>
Content-Length: 0


----------------------------------------------- 2026-12-02 01:43:56.000000
UDP message sent (328 bytes):

SIP/2.0 481 Call/Transaction Does Not Exist
CSeq: 4 BYE
Content-Length: 0


----------------------------------------------- 2026-12-02 01:43:57.000000
UDP message received [300] bytes :

SIP/2.0 180 Ringing
CSeq: 1 INVITE
Content-Length: 0

"""


def party(tmp_path: Path) -> SippParty:
    p = SippParty(name="a", scenario="x.xml", local=("127.0.0.3", 40481), media_port=30000, log_dir=tmp_path)
    p.trace_path.write_text(TRACE)
    return p


def test_replies_are_read_by_cseq_method_not_by_substring(tmp_path: Path) -> None:
    a = party(tmp_path)
    assert a.sent_replies("NOTIFY") == [200]
    assert a.sent_replies("BYE") == [481]
    assert a.sent_replies("INVITE") == []


def test_received_first_lines(tmp_path: Path) -> None:
    a = party(tmp_path)
    assert a.received_requests() == ["NOTIFY"]
    assert a.received_statuses() == [180]
