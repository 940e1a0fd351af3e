"""The attacker's probes (issue: "anyone who reaches the SIP port can call out through the trunk"),
each against the real stack, each getting its defined refusal, with nothing reaching the trunk.

Strangers speak raw SIP from loopback addresses that are neither the trunk (127.0.0.2) nor the phones
(127.0.0.3): 127.0.0.9 and up, one address per probe (a source that keeps failing authentication is
refused for a minute, which one probe tests on purpose).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from controller.devstack.phone import Phone, wait_until
from tests.integration.calls import connect, observe_for, sip_call_id, target
from tests.integration.conftest import PHONES_IP, TRUNK_IP, Stack, make_test_config, start_stack
from tests.integration.sip_probe import SDP, SipProbe, SipSink, digest, final

pytestmark = pytest.mark.integration

OUTSIDE = "+19005550123"  # a premium-rate number abroad: what a toll fraudster dials


@pytest.fixture
def trunk(stack: Stack) -> Iterator[SipSink]:
    """Whatever reaches the carrier trunk's address during the test."""
    ip, port = stack.trunk
    sink = SipSink(ip, port)
    yield sink
    sink.close()


def probe(stack: Stack, ip: str) -> SipProbe:
    host, port = stack.local.sip_hostport.rsplit(":", 1)
    return SipProbe(ip, (host, int(port)))


def node_uri(stack: Stack, user: str) -> str:
    return f"sip:{user}@{stack.local.sip_hostport}"


def test_a_strangers_invite_is_challenged_and_never_reaches_the_trunk(stack: Stack, trunk: SipSink) -> None:
    stranger = probe(stack, "127.0.0.9")
    try:
        body = SDP.format(ip=stranger.ip, port=40000)
        ruri = node_uri(stack, OUTSIDE)
        # claiming to be Anna (From: 100@acme.test) is not enough: digest authentication
        first = stranger.request("INVITE", ruri, from_uri="sip:100@acme.test", body=body)
        assert final(first) == 407, [r.status for r in first]
        challenge = first[-1].headers["proxy-authenticate"]
        wrong = digest(challenge, "INVITE", ruri, "100", "guessed", header="Proxy-Authorization")
        statuses = [final(stranger.request("INVITE", ruri, from_uri="sip:100@acme.test", body=body,
                                           headers=(wrong,))) for _ in range(12)]
        assert statuses[:10] == [407] * 10, statuses
        assert statuses[-1] == 403, f"a source that keeps guessing is not refused outright: {statuses}"
    finally:
        stranger.close()
    # every probe got its final answer from Kamailio itself; a relay that might still be on its way has
    # no event of its own to wait for, so the trunk is watched for a named window
    observe_for(0.3, lambda: nothing_reached(trunk), what="no stranger's INVITE reaches the trunk")


def test_requests_for_dialogs_the_node_does_not_know_are_refused(stack: Stack, trunk: SipSink) -> None:
    stranger = probe(stack, "127.0.0.10")
    trunk_ip, trunk_port = stack.trunk
    try:
        route = (f"Route: <sip:{trunk_ip}:{trunk_port};lr>",)
        for method in ("INVITE", "MESSAGE", "BYE"):
            got = stranger.request(method, f"sip:{OUTSIDE}@{trunk_ip}:{trunk_port}", from_uri="sip:100@acme.test",
                                   to_tag="made-up", headers=route, body="hello" if method == "MESSAGE" else "",
                                   content_type="text/plain" if method == "MESSAGE" else None)
            assert final(got) == 481, (method, [r.status for r in got])
        # a BYE to the controller's own leg contact, for a Call-ID nobody ever set up
        call_id = "made-up-call@127.0.0.10"
        got = stranger.request("BYE", node_uri(stack, "xfer"), from_uri="sip:x@127.0.0.10", to_tag="t",
                               call_id=call_id, content_type=None)
        assert final(got) == 481, [r.status for r in got]
    finally:
        stranger.close()
    # whatever Kamailio wrote about these requests (it writes before it answers) has been applied by the
    # controller once its notification stream is drained: then the event log is complete
    stack.wait_for(stack.notifications_applied, what="the controller to apply Kamailio's notifications")
    assert not [e for e in stack.events() if e["data"].get("call_id") == call_id], "a forged BYE was recorded"
    observe_for(0.5, lambda: nothing_reached(trunk), what="no stranger's in-dialog request reaches the trunk")


def nothing_reached(trunk: SipSink) -> None:
    assert trunk.requests() == [], f"a stranger's request reached the trunk: {trunk.requests()}"


def register(p: SipProbe, stack: Stack, aor_user: str, contact: str, *, creds: tuple[str, str] | None,
             expires: int = 300) -> int | None:
    """REGISTER aor_user@acme.test with `contact`, answering the challenge with `creds` if given."""
    uri = "sip:acme.test"
    headers = (f"Contact: {contact}", f"Expires: {expires}")
    call_id = f"reg-{aor_user}-{time.monotonic_ns()}@{p.ip}"
    aor = f"sip:{aor_user}@acme.test"
    got = p.request("REGISTER", uri, from_uri=aor, to_uri=aor, call_id=call_id, headers=headers, content_type=None)
    if final(got) != 401 or creds is None:
        return final(got)
    auth = digest(got[-1].headers["www-authenticate"], "REGISTER", uri, *creds)
    return final(p.request("REGISTER", uri, from_uri=aor, to_uri=aor, call_id=call_id, cseq=2,
                           headers=(*headers, auth), content_type=None))


def test_registrations_need_the_owners_password_and_a_phones_contact(stack: Stack) -> None:
    p = probe(stack, "127.0.0.13")  # any address: only credentials decide
    trunk_ip, trunk_port = stack.trunk
    vera = stack.credentials("102")
    try:
        phone = f"<sip:102@{PHONES_IP}:45062>"
        assert register(p, stack, "102", phone, creds=None) == 401
        assert register(p, stack, "102", phone, creds=("102", "wrong")) == 401
        assert register(p, stack, "102", phone, creds=stack.credentials("101")) in (401, 403)  # Boris is not Vera
        assert register(p, stack, "102", "*", creds=None) == 401  # nobody but Vera removes Vera's phones
        # a Contact that would deliver Vera's calls out through the carrier, or back to this node
        assert register(p, stack, "102", f"<sip:{OUTSIDE}@{trunk_ip}:{trunk_port}>", creds=vera) == 403
        assert register(p, stack, "102", f"<{node_uri(stack, '102')}>", creds=vera) == 403
        assert register(p, stack, "102", "<tel:+19005550123>", creds=vera) == 403
        # a bounded number of phones per extension
        statuses = [register(p, stack, "102", f"<sip:102@{PHONES_IP}:{45100 + i}>", creds=vera) for i in range(6)]
        assert statuses[:5] == [200] * 5 and statuses[5] != 200, statuses
        assert register(p, stack, "102", "*", creds=vera, expires=0) == 200  # the owner cleans up
    finally:
        p.close()
    # what Kamailio reads from Redis is the HA1, never the password
    entry = stack.redis.hget("xfer:registrar", "102@acme.test")
    assert entry and vera[1] not in entry and len(entry) == 32


@pytest.mark.parametrize(("content_type", "body"), [
    ("text/plain", SDP.format(ip=TRUNK_IP, port=41000)),
    ("application/octet-stream", SDP.format(ip=TRUNK_IP, port=41000)),
    ("multipart/mixed;boundary=xyz", "--xyz\r\nContent-Type: text/plain\r\n\r\nhello\r\n--xyz--\r\n"),
])
def test_a_body_that_is_not_sdp_is_refused(stack: Stack, content_type: str, body: str) -> None:
    anna = SipSink(PHONES_IP, stack.contact_port("100"))
    client = probe(stack, TRUNK_IP)
    try:
        got = client.request("INVITE", node_uri(stack, "+74951110000"), from_uri="sip:+79161234567@127.0.0.2",
                             body=body, content_type=content_type)
        assert final(got) == 415, [r.status for r in got]
    finally:
        client.close()
        anna.close()
    assert anna.requests() == [], "an INVITE whose media cannot be anchored reached the phone"


def test_a_multipart_body_has_its_sdp_part_anchored(stack: Stack) -> None:
    anna = SipSink(PHONES_IP, stack.contact_port("100"))
    client = probe(stack, TRUNK_IP)
    sdp = SDP.format(ip=TRUNK_IP, port=41002)
    body = (f"--xyz\r\nContent-Type: application/sdp\r\n\r\n{sdp}\r\n--xyz\r\nContent-Type: application/isup\r\n"
            f"\r\nISUP\r\n--xyz--\r\n")
    try:
        client.request("INVITE", node_uri(stack, "+74951110000"), from_uri="sip:+79161234567@127.0.0.2",
                       body=body, content_type="multipart/mixed;boundary=xyz")
        wait_until(lambda: anna.requests(), timeout=5, what="the INVITE to reach Anna's phone")
    finally:
        client.close()
        anna.close()
    invite = anna.received[0]
    assert "41002" not in invite and f"c=IN IP4 {TRUNK_IP}" not in invite, "the caller's own media reached Anna"
    assert f"c=IN IP4 {stack.local.node.rtpengine.media_address}" in invite


def test_internal_headers_from_outside_are_refused(stack: Stack) -> None:
    client = probe(stack, TRUNK_IP)
    try:
        got = client.request("INVITE", node_uri(stack, "+74951110000"), from_uri="sip:+79161234567@127.0.0.2",
                             headers=("X-Xfer-Leg: anything.t1.b1",), body=SDP.format(ip=TRUNK_IP, port=41004))
        assert final(got) == 403, [r.status for r in got]
    finally:
        client.close()


def test_control_interfaces_refuse_strangers(stack: Stack) -> None:
    local = stack.local
    call = {"jsonrpc": "2.0", "method": "core.version", "id": 1}
    # Kamailio's JSON-RPC: the controller's address and credentials only
    assert httpx.post(local.kamailio_rpc_url, json=call, timeout=5).status_code == 401
    bad = ("controller", "guess")
    assert httpx.post(local.kamailio_rpc_url, json=call, timeout=5, auth=bad).status_code == 401
    other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.11"), auth=local.rpc_auth)
    with other:
        assert other.post(local.kamailio_rpc_url, json=call, timeout=5).status_code == 401
    kill = {"jsonrpc": "2.0", "method": "core.kill", "id": 1}
    assert httpx.post(local.kamailio_rpc_url, json=kill, timeout=5).status_code == 401
    assert httpx.post(local.kamailio_rpc_url, json=call, timeout=5, auth=local.rpc_auth).status_code == 200
    # the controller: /metrics for the token; no /rpc any more (Kamailio routes calls itself), for anyone
    assert httpx.get(local.controller_url + "/metrics", timeout=5).status_code == 401
    assert httpx.get(local.controller_url + "/metrics", timeout=5,
                     headers={"Authorization": "Bearer guess"}).status_code == 401
    token = {"Authorization": f"Bearer {local.node.secrets.metrics}"}
    assert httpx.get(local.controller_url + "/metrics", headers=token, timeout=5).status_code == 200
    invite = {"jsonrpc": "2.0", "method": "route.invite", "id": 1, "params": {}}
    assert httpx.post(local.controller_url + "/rpc", json=invite, timeout=5).status_code == 404
    assert httpx.post(local.controller_url + "/rpc", json=invite, timeout=5, headers=token).status_code == 404
    huge = {"jsonrpc": "2.0", "method": "route.invite", "id": 1, "params": {"from_user": "x" * 100_000}}
    assert httpx.post(local.controller_url + "/rpc", json=huge, timeout=5).status_code in (404, 413)
    # Redis: nothing without the password
    r = local.node.redis
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=r.address, port=r.port, socket_timeout=2).get("xfer:registrar")


def test_secrets_are_in_private_files_and_never_on_a_command_line(stack: Stack) -> None:
    local = stack.local
    for name in ("controller.yaml", "redis.conf", "kamailio.cfg"):
        mode = stat.S_IMODE(os.stat(local.run_dir / name).st_mode)
        assert mode == 0o600, f"{name} is mode {oct(mode)}"
    secrets = [v for v in local.node.secrets.model_dump().values() if v]
    for name, proc in local.processes.items():
        cmdline = (open(f"/proc/{proc.pid}/cmdline", "rb").read().decode(errors="replace"))
        assert not [s for s in secrets if s in cmdline], f"a secret is on {name}'s command line"


def test_forged_dtmf_datagrams_cannot_start_a_transfer(stack: Stack, people: list[Phone], trunk: SipSink) -> None:
    """A stranger who learnt the call's Call-ID and tags sends rtpengine-like DTMF datagrams for A."""
    client, a = connect(stack, people, "incoming", a_leaves_ms=None, client_leaves_ms=6000)
    call_id = sip_call_id(client)
    conversation = stack.redis.get(f"xfer:call:{call_id}")
    fields = stack.redis.hgetall(f"xfer:conv:{conversation}")
    a_tag = fields["to_tag"]
    dtmf = stack.local.node.dtmf
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.12", 0))
    try:
        for second, code in enumerate([11, 7, 9, 0, 0, 1, 2, 3, 4, 5, 6, 7]):
            datagram = {"callid": call_id, "source_tag": a_tag, "tags": [fields["from_tag"], a_tag], "type": "DTMF",
                        "timestamp": int(time.time()) + second, "source_ip": TRUNK_IP, "event": code,
                        "duration": 160, "volume": 10}
            sock.sendto(json.dumps(datagram).encode(), (dtmf.address, dtmf.port))
    finally:
        sock.close()
    # A presses 5 (no talk option: it is re-played to the client). The controller reads DTMF reports in
    # the order they arrive, so when the client hears that 5, every forged datagram before it has been
    # handled; and had the forged # started collecting a number, the 5 would have been collected too,
    # never re-played. Then: no number is being collected, so none will be dialled.
    a.press("5")
    wait_until(lambda: client.voice.digits == ["5"], timeout=5,
               what="the client to hear A's 5 (a collection started by forged digits would have swallowed it)")
    assert not [e for e in stack.events() if e["event"].startswith("transfer.")
                and e["data"].get("call_id") == call_id], "forged digits started a transfer"
    assert trunk.requests() == [], "forged digits dialled out"
    assert client.sipp.wait() == 0, client.sipp.describe_failure()


@pytest.mark.parametrize(("dialled", "cause"), [
    ("79161234567", "own_number"),  # the client's own number, written without its '+'
    ("74951110000", "own_number"),  # the tenant's own DID
    ("81019005550123", "not_allowed"),  # abroad (international prefix 810): not in the allowed prefixes
    ("7916123456789012345678901", "too_long"),  # more digits than any number has: refused, never cut short
])
def test_transfer_targets_that_toll_fraud_would_use_are_refused(stack: Stack, people: list[Phone], trunk: SipSink,
                                                                dialled: str, cause: str) -> None:
    client, a = connect(stack, people, "incoming", a_leaves_ms=None, client_leaves_ms=14000)
    a.voice.send_dtmf(a.rtpengine(), "#" + dialled, gap_s=0.05)
    event = stack.wait_event(sip_call_id(client), "transfer.refused")
    assert event["data"]["cause"] == cause, event["data"]
    heard, prompt = a.hears(1.0)
    assert prompt > 10, f"A heard no refusal prompt: {heard}, other={prompt}"
    assert trunk.requests() == [], "the refused number was dialled out"
    assert client.voice.digits == [], "A's digits reached the client"


def test_the_clients_digit_never_hides_the_employees(stack: Stack, people: list[Phone]) -> None:
    """The client presses # a tenth of a second before A: A's #101 still starts A's transfer."""
    client, a = connect(stack, people, "incoming", a_leaves_ms=None, client_leaves_ms=9000)
    b = target(stack, people, "boris", "101", "employee_ring_until_cancel.xml")
    client_tag = stack.redis.hget(f"xfer:conv:{stack.redis.get(f'xfer:call:{sip_call_id(client)}')}", "from_tag")
    pressing = threading.Thread(target=client.press, args=("#",))
    pressing.start()
    # A presses once the controller has the client's # (rtpengine reports a digit when it ends)
    stack.wait_logged(f"DTMF '#' from tag {client_tag}", timeout=5)
    a.press("#101")
    pressing.join()
    wait_until(lambda: "INVITE" in b.sipp.received_requests(), timeout=8, what="B's INVITE")
    a.press("*")
    wait_until(lambda: "CANCEL" in b.sipp.received_requests(), what="B's CANCEL")


def test_a_trickling_request_body_is_not_waited_for(stack: Stack) -> None:
    """The controller serves no request with a body (Kamailio's /rpc is gone): a slow one to where /rpc
    was is answered 404 at once, without waiting for the body."""
    local = stack.local
    head = ("POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 500\r\n\r\n")
    with socket.create_connection((local.node.controller.address, local.node.controller.port), timeout=6) as conn:
        conn.sendall(head.encode() + b'{"jsonrpc"')
        started = time.monotonic()
        reply = conn.recv(4096).decode(errors="replace")
    assert reply.startswith("HTTP/1.1 404"), reply[:80]
    assert time.monotonic() - started < 5


@pytest.fixture
def lab_stack() -> Iterator[Stack]:
    """A lab node: extension 100 has no password, which the node explicitly allows."""
    data = make_test_config()
    data["node"]["lab_allow_extensions_without_password"] = True
    del data["tenants"]["acme"]["extensions"]["100"]["password"]
    local = start_stack("lab", data)
    try:
        yield Stack(local)
    finally:
        local.stop()


def test_a_lab_nodes_extension_without_a_password_calls_unchallenged(lab_stack: Stack) -> None:
    stack = lab_stack
    ip, port = stack.trunk
    trunk = SipSink(ip, port)
    phone = probe(stack, PHONES_IP)
    try:
        got = phone.request("INVITE", node_uri(stack, "+79161234567"), from_uri="sip:100@acme.test",
                            body=SDP.format(ip=PHONES_IP, port=41010))
        assert final(got) == 486, [r.status for r in got]  # the trunk's answer: the call went out
        assert trunk.requests()[:1] == ["INVITE"]
        # Boris still has a password: his calls are still challenged
        got = phone.request("INVITE", node_uri(stack, "+79161234567"), from_uri="sip:101@acme.test",
                            body=SDP.format(ip=PHONES_IP, port=41012))
        assert final(got) == 407, [r.status for r in got]
    finally:
        phone.close()
        trunk.close()
