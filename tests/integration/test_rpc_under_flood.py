"""Kamailio's JSON-RPC answers within its bound during and right after an INVITE flood, and answers right.

The RPC listener (xhttp, TCP) used to share Kamailio's TCP workers (`tcp_children=2`) with SIP over TCP.
A flood of INVITEs on as many TCP connections kept both workers busy for seconds (each INVITE runs the
routing Python, Redis and rtpengine), tcp_main queued every new connection behind them (Kamailio logs
`send2child(): tcp child N ... queue full`), the RPC's among them: `dlg.list` and the controller's own
calls waited 0.6-2.7 s on this 2-core machine, at worst past the controller's 2 s timeout. kamailio.cfg
now gives the RPC listener workers of its own (`socket_workers` before `listen=LISTEN_RPC`), which no
SIP reaches.
"""

from __future__ import annotations

import asyncio
import resource
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from controller.adapters.kamailio_rpc import KamailioRpc
from controller.devstack.sipp import SippParty
from controller.devstack.stack import free_media_port
from controller.errors import KamailioUnavailable
from controller.wire import HTABLE
from tests.integration.calls import DID, POLL_S
from tests.integration.conftest import CLIENT_NUMBER, PHONES_IP, TRUNK_IP, Stack, make_test_config, start_stack

pytestmark = pytest.mark.integration

FLOOD = 1000  # INVITEs, each on its own TCP connection, sent as fast as the loopback takes them
# every RPC answers within this, during the flood and right after it: a quarter of the controller's 2 s
# timeout (sharing the SIP workers, the slowest call of a run waited 0.8-1.6 s on this 2-core machine)
BOUND_S = 0.5
RPC_TIMEOUT_S = 10.0  # what the probes wait at most, so that a stall is measured rather than cut short
CONTROLLER_CALLS = (("core.uptime", ()), ("dlg.stats_active", ()), ("htable.sets", (HTABLE, "rpcflood:probe", "1")))
OPERATOR_CALLS = ("dlg.stats_active", "dlg.list")
DLG_EARLY = 2  # the dialog module's state of a dialog that rings (a provisional reply, no answer yet)


@dataclass(frozen=True)
class Probe:
    client: str  # "controller" (its KamailioRpc client) or "operator" (plain HTTP); a new connection per call
    method: str
    started: float  # time.monotonic()
    seconds: float
    result: Any  # the JSON-RPC result, or the exception


@pytest.fixture(scope="module")
def flood_stack() -> Iterator[Stack]:
    data = make_test_config()
    # rtpengine anchors every flooded call (4 ports each); the range stays below the ephemeral ports
    # that the stack's own free ports come from
    data["node"]["rtpengine"]["port_min"], data["node"]["rtpengine"]["port_max"] = 20000, 20000 + 5 * FLOOD - 1
    # a socket per INVITE: this process (and the SIPp and Kamailio it starts) needs the descriptors
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * FLOOD + 1024
    if soft < wanted and (hard == resource.RLIM_INFINITY or hard >= wanted):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    local = start_stack("rpc-flood", data)
    try:
        yield Stack(local)
    finally:
        local.stop()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def invite(call_id: str, local_port: int, sip: tuple[str, int]) -> bytes:
    """A trunk's INVITE to the DID over TCP, with an SDP offer for rtpengine to anchor."""
    host, port = sip
    sdp = (f"v=0\r\no=flood 1 1 IN IP4 {TRUNK_IP}\r\ns=-\r\nc=IN IP4 {TRUNK_IP}\r\nt=0 0\r\n"
           "m=audio 49170 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n")
    return (f"INVITE sip:{DID}@{host}:{port};transport=tcp SIP/2.0\r\n"
            f"Via: SIP/2.0/TCP {TRUNK_IP}:{local_port};branch=z9hG4bK{secrets.token_hex(8)};rport\r\n"
            f"From: <sip:{CLIENT_NUMBER}@{TRUNK_IP}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:{DID}@{host}:{port}>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:{CLIENT_NUMBER}@{TRUNK_IP}:{local_port};transport=tcp>\r\n"
            f"Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}").encode()


def tcp_invite_flood(sip: tuple[str, int], count: int) -> tuple[set[str], list[socket.socket]]:
    """`count` INVITEs from the trunk's address, each on a new TCP connection, back to back. The sockets
    stay open (Kamailio answers on them) until the caller closes them."""
    call_ids: set[str] = set()
    sockets: list[socket.socket] = []
    try:
        for i in range(count):
            sock = socket.create_connection(sip, timeout=5, source_address=(TRUNK_IP, 0))
            sockets.append(sock)
            call_id = f"rpcflood-{i}-{secrets.token_hex(4)}@{TRUNK_IP}"
            sock.sendall(invite(call_id, sock.getsockname()[1], sip))
            call_ids.add(call_id)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return call_ids, sockets


def controller_call(stack: Stack, method: str, *params: Any) -> Probe:
    """One call with the controller's own client, KamailioRpc, on a new connection (its pool drops one idle
    for 5 s, httpx's keep-alive expiry: a transfer after a quiet moment connects anew), without retries
    (one call is one request)."""
    async def call() -> Any:
        async with KamailioRpc(stack.local.kamailio_rpc_url, auth=stack.local.rpc_auth, timeout=RPC_TIMEOUT_S,
                               retries=0) as rpc:
            return await rpc.call(method, *params)

    started = time.monotonic()
    try:
        result = asyncio.run(call())
    except KamailioUnavailable as exc:
        result = exc
    return Probe("controller", method, started, time.monotonic() - started, result)


def operator_call(stack: Stack, http: httpx.Client, method: str) -> Probe:
    """One call the way an operator's tool makes it: plain HTTP, a new connection (`http` keeps none)."""
    started = time.monotonic()
    try:
        reply = http.post(stack.local.kamailio_rpc_url, json={"jsonrpc": "2.0", "method": method, "id": 1})
        result = reply.json()["result"]
    except httpx.HTTPError as exc:
        result = exc
    return Probe("operator", method, started, time.monotonic() - started, result)


def keep_probing(stack: Stack, client: str, stop: threading.Event, out: list[Probe]) -> None:
    """Round after round of the client's calls until `stop`."""
    with httpx.Client(auth=stack.local.rpc_auth, timeout=RPC_TIMEOUT_S,
                      limits=httpx.Limits(max_keepalive_connections=0)) as http:
        while not stop.is_set():
            if client == "controller":
                out.extend(controller_call(stack, method, *params) for method, params in CONTROLLER_CALLS)
            else:
                out.extend(operator_call(stack, http, method) for method in OPERATOR_CALLS)
            time.sleep(POLL_S)  # the poll interval of this probe


def right_after(stack: Stack) -> list[Probe]:
    """What the operator did: `dlg.list` the moment the flood is sent; and the controller's call at the
    same moment. Both wait behind everything the flood queued in Kamailio's TCP workers, if they share them."""
    with (httpx.Client(auth=stack.local.rpc_auth, timeout=RPC_TIMEOUT_S,
                       limits=httpx.Limits(max_keepalive_connections=0)) as http,
          ThreadPoolExecutor(2) as pool):
        calls = [pool.submit(operator_call, stack, http, "dlg.list"),
                 pool.submit(controller_call, stack, "core.uptime")]
        return [call.result() for call in calls]


def latest(probes: list[Probe], client: str, method: str) -> Any:
    return next((p.result for p in reversed(probes) if p.client == client and p.method == method), None)


def test_rpc_answers_within_its_bound_during_and_after_an_invite_flood(flood_stack: Stack) -> None:
    stack = flood_stack
    # employee 100's phone rings for every flooded call (an early dialog each) and never answers
    callee = SippParty("flood-callee", "employee_ring_until_cancel.xml", (PHONES_IP, stack.contact_port("100")),
                       free_media_port(PHONES_IP), stack.sipp_dir, calls=FLOOD, timeout_s=120,
                       extra=["-max_recv_loops", "10000"]).start()
    probes: list[Probe] = []
    stop = threading.Event()
    threads = [threading.Thread(target=keep_probing, args=(stack, client, stop, probes), daemon=True)
               for client in ("controller", "operator")]
    sockets: list[socket.socket] = []
    try:
        callee.wait_bound()
        for thread in threads:
            thread.start()
        stack.wait_for(lambda: {p.client for p in probes} == {"controller", "operator"}, what="the probes to start")

        flood_start = time.monotonic()
        call_ids, sockets = tcp_invite_flood((stack.local.node.sip.address, stack.local.node.sip.port), FLOOD)
        flood_sent = time.monotonic()
        after = right_after(stack)
        probes.extend(after)

        def all_ringing() -> bool:
            stats = latest(probes, "controller", "dlg.stats_active")
            return isinstance(stats, dict) and stats.get("all") == FLOOD
        stack.wait_for(all_ringing, timeout=15, what=f"{FLOOD} ringing dialogs; last RPCs: {probes[-3:]}")
        all_up = time.monotonic()
        # right after the flood: one more round of every call from both clients
        stack.wait_for(lambda: {(p.client, p.method) for p in probes if p.started > all_up}
                       >= {("controller", m) for m, _ in CONTROLLER_CALLS} | {("operator", m) for m in OPERATOR_CALLS},
                       timeout=30, what="a round of RPCs after the flood")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=RPC_TIMEOUT_S + 5)
        for sock in sockets:
            sock.close()
        callee.stop()

    during = [p for p in probes if flood_start <= p.started < all_up]
    summary = {f"{client} {method}": f"{max(p.seconds for p in mine):.3f} s max of {len(mine)}"
               for client, method in sorted({(p.client, p.method) for p in probes})
               if (mine := [p for p in probes if (p.client, p.method) == (client, method)])}
    print(f"\n{FLOOD} INVITEs over TCP sent in {flood_sent - flood_start:.2f} s, all {FLOOD} dialogs up "
          f"{all_up - flood_start:.2f} s after the first; right after it "
          f"{', '.join(f'{p.client} {p.method} {p.seconds:.3f} s' for p in after)}; "
          f"{len(during)} RPCs during the flood; all RPCs: {summary}")

    # the RPCs really overlapped the flood, from both clients
    assert {p.client for p in during} == {"controller", "operator"}, summary
    failed = [p for p in probes if isinstance(p.result, Exception)]
    assert not failed, f"RPCs failed: {failed[:5]}"
    slow = [p for p in probes if p.seconds > BOUND_S]
    assert not slow, (f"{len(slow)} RPCs took longer than {BOUND_S} s, e.g. "
                      f"{[(p.client, p.method, round(p.seconds, 2)) for p in slow[:6]]}; {summary}")

    # and they answered right: the flood's dialogs, all of them and no other, each ringing (early)
    listed = latest(probes, "operator", "dlg.list")
    assert {d["call-id"] for d in listed} == call_ids
    assert {d["state"] for d in listed} == {DLG_EARLY}
    stats = latest(probes, "operator", "dlg.stats_active")
    assert stats == {"starting": 0, "connecting": FLOOD, "answering": 0, "ongoing": 0, "all": FLOOD}, stats
    assert stack.rpc("htable.get", HTABLE, "rpcflood:probe")["item"]["value"] == "1"
