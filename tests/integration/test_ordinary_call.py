"""Ordinary calls through the real stack: what the people on the phone and the operator see."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from controller.adapters.rtpengine_ng import RtpengineNg
from controller.devstack.media_stats import MediaWatcher
from tests.integration.conftest import CLIENT_NUMBER, PHONES_IP, Stack

pytestmark = pytest.mark.integration


def sip_call_id(party) -> str:
    match = re.search(r"^Call-ID:\s*(\S+)", party.messages(), re.MULTILINE)
    assert match, f"no Call-ID in {party.name}'s trace"
    return match.group(1)


def watch_media(stack: Stack, *parties, timeout: float = 30.0) -> dict[str, dict[str, int]]:
    """Run until the parties' calls are over (their SIPp processes have exited, at most `timeout` s);
    per call, the RTP packets rtpengine received from each tag."""
    node = stack.local.node.rtpengine

    async def run() -> dict[str, dict[str, int]]:
        async with RtpengineNg((node.ng_address, node.ng_port)) as ng, MediaWatcher(ng) as watcher:
            deadline = time.monotonic() + timeout
            while any(p.process.alive() for p in parties):
                if time.monotonic() >= deadline:
                    raise AssertionError(f"the call was not over within {timeout} s: "
                                         f"{[p.name for p in parties if p.process.alive()]} still running")
                await asyncio.sleep(0.1)  # the poll interval of this wait
            return dict(watcher.last)

    return asyncio.run(run())


def notifications_seen(stack: Stack) -> float:
    """How many of Kamailio's notifications the controller has read so far (its own counter)."""
    return stack.controller_metric("xfer_notifications_total")


def test_trunk_call_to_did_reaches_employee_with_media_both_ways(stack: Stack) -> None:
    seen = notifications_seen(stack)
    anna = stack.employee("100")
    client = stack.client_call("+74951110000", talk_ms=2000)
    media = watch_media(stack, client, anna)

    assert client.wait() == 0, client.describe_failure()
    assert anna.wait() == 0, anna.describe_failure()
    call_id = sip_call_id(client)

    # the employee's phone got the call, with the client's number as the caller, and the BYE
    assert anna.received_requests() == ["INVITE", "ACK", "BYE"]
    assert CLIENT_NUMBER in anna.received_header("INVITE", "From")[0]
    assert 200 in client.received_statuses()

    # media was anchored in rtpengine and flowed both ways: the client's audio reached Anna (her phone
    # echoes it), and Anna's audio came back through rtpengine
    packets = media[call_id]
    assert len(packets) == 2, packets
    assert all(count >= 25 for count in packets.values()), packets

    # the call ended cleanly: rtpengine holds nothing, the event log has the whole story
    stack.wait_for(lambda: call_id not in stack.rtpengine_calls(), what="rtpengine to forget the call")
    ended = stack.wait_event(call_id, "call.ended")
    assert stack.events_for_call(call_id) == ["call.started", "call.answered", "call.ended"]
    assert ended["data"]["duration_ms"] >= 1500

    # per-call keys expire after the call (call_keys_ttl_after_end_s = 2 in the test config)
    conversation = ended["conversation"]
    stack.wait_for(lambda: not stack.redis.exists(f"xfer:conv:{conversation}", f"xfer:call:{call_id}"),
                   timeout=5, what="per-call keys to expire")
    assert stack.events_for_call(call_id)  # the event log outlives the call's keys

    # an ordinary call never reaches the controller: Kamailio routed and recorded it, and told the
    # controller nothing about it
    assert notifications_seen(stack) == seen


def test_registered_employee_is_reachable(stack: Stack) -> None:
    vera_port = stack.party("unused", "x", PHONES_IP).local[1]
    register = stack.party("vera-register", "employee_register.xml", PHONES_IP, vera_port,
                           remote=stack.local.sip_hostport, service="102", keys={"domain": "acme.test"},
                           auth=stack.credentials("102")).start()
    assert register.wait() == 0, register.describe_failure()

    vera = stack.party("vera", "employee_answer.xml", PHONES_IP, vera_port, pause_ms=100, rtp_echo=True).start()
    vera.wait_bound()
    client = stack.client_call("+74951110002", talk_ms=500)
    assert client.wait() == 0, client.describe_failure()
    assert vera.wait() == 0, vera.describe_failure()
    assert vera.received_requests() == ["INVITE", "ACK", "BYE"]


def test_register_for_unknown_extension_is_refused(stack: Stack) -> None:
    intruder = stack.party("intruder", "employee_register_refused.xml", PHONES_IP,
                           remote=stack.local.sip_hostport, service="999", keys={"domain": "acme.test"}).start()
    assert intruder.wait() == 0, intruder.describe_failure()
    assert intruder.received_statuses()[-1] == 404


def test_unregistered_extension_gets_480_and_an_event(stack: Stack) -> None:
    # Vera (102) registers in another test: make sure she has no binding now
    bindings = httpx.post(stack.local.kamailio_rpc_url, timeout=5, auth=stack.local.rpc_auth, json={
        "jsonrpc": "2.0", "method": "ul.rm", "params": ["location", "102@acme.test"], "id": 1}).json()
    assert "result" in bindings or bindings["error"]["message"] in ("AOR not found", "Not Found")
    client = stack.client_call("+74951110002", scenario="client_rejected.xml")
    assert client.wait() == 0, client.describe_failure()
    assert client.received_statuses()[-1] == 480
    call_id = sip_call_id(client)
    event = stack.wait_event(call_id, "call.rejected")
    assert event["data"]["cause"] == "not_registered"


def test_unknown_did_gets_404_and_an_event(stack: Stack) -> None:
    client = stack.client_call("+74950000999", scenario="client_rejected.xml")
    assert client.wait() == 0, client.describe_failure()
    assert client.received_statuses()[-1] == 404
    call_id = sip_call_id(client)
    event = stack.wait_event(call_id, "call.rejected")
    assert event["data"]["code"] == 404 and event["data"]["cause"] == "unknown_did"
    assert not stack.rtpengine_calls()


def test_rtpengine_down_gives_503_not_an_unanchored_call(own_stack: Stack) -> None:
    anna = own_stack.employee("100")
    own_stack.local.processes["rtpengine"].stop()
    client = own_stack.client_call("+74951110000", scenario="client_rejected.xml")
    assert client.wait() == 0, client.describe_failure()
    assert client.received_statuses()[-1] == 503
    call_id = sip_call_id(client)
    # Anna's phone never rang: no INVITE without media anchoring
    anna.stop()
    assert "INVITE" not in anna.received_requests()
    event = own_stack.wait_event(call_id, "call.rejected")
    assert event["data"]["cause"] == "rtpengine_unavailable"
    assert own_stack.events_for_call(call_id) == ["call.started", "call.rejected"]
