"""The README demo: the local stack on loopback, one real call through it, and a readable summary.

A client on the carrier trunk (SIPp on 127.0.0.2) calls the tenant's DID; the controller routes it to
employee Anna (extension 100, a SIPp phone on 127.0.0.3 that echoes what it hears); they talk for a
few seconds with real RTP through rtpengine; the client hangs up.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path
from typing import Any

import yaml
from redis.asyncio import Redis

from controller.adapters.rtpengine_ng import RtpengineNg
from controller.media_stats import MediaWatcher
from controller.sipp import SippParty
from controller.stack import LocalStack, StackOptions, free_port, with_free_ports
from controller.store import ConversationStore

TRUNK_IP = "127.0.0.2"
CLIENT_NUMBER = "+79161234567"
DID = "+74951110000"
TALK_MS = 3000


def run_demo(config_path: Path, run_dir: Path) -> int:
    shutil.rmtree(run_dir, ignore_errors=True)
    data = with_free_ports(yaml.safe_load(config_path.read_text()))
    stack = LocalStack(data, run_dir, StackOptions())
    did = stack.config.lookup_did(DID)
    if did is None or did.route.extension is None:
        print(f"demo: {config_path} must route {DID} to an extension with a static contact")
        return 2
    ext = did.tenant.extensions[did.route.extension]
    host, port = re.match(r"sips?:[^@]+@([^:;>]+):(\d+)", ext.contact or "").groups()

    print(f"== starting the local stack (logs: {run_dir / 'logs'})")
    with stack:
        for name, proc in stack.processes.items():
            print(f"   {name:<10} pid {proc.pid}")
        print(f"   SIP on {stack.sip_hostport}, controller on {stack.controller_url}")
        sipp_dir = run_dir / "sipp"
        phone = SippParty("employee", "employee_answer.xml", (host, int(port)), free_port(), sipp_dir,
                          pause_ms=500, rtp_echo=True).start()
        phone.wait_bound()
        print(f"== the client {CLIENT_NUMBER} (carrier trunk, {TRUNK_IP}) calls {DID}; "
              f"{ext.name} (extension {did.route.extension}) answers; they talk {TALK_MS / 1000:.0f} s")
        client = SippParty("client", "client_call.xml", (TRUNK_IP, free_port()), free_port(), sipp_dir,
                           remote=stack.sip_hostport, service=DID, keys={"from": CLIENT_NUMBER},
                           pause_ms=TALK_MS).start()
        media = asyncio.run(_watch(stack, client, phone))
        client_rc, phone_rc = client.wait(), phone.wait()
        events = asyncio.run(_events(stack))
        ok = _summary(client, phone, media, events, ext.name)
    print("== stack stopped")
    if client_rc or phone_rc or not ok:
        print(f"demo FAILED (client rc {client_rc}, phone rc {phone_rc}); see {run_dir}")
        return 1
    print("demo OK")
    return 0


async def _watch(stack: LocalStack, *parties: SippParty) -> dict[str, dict[str, int]]:
    rtpe = stack.node.rtpengine
    async with RtpengineNg((rtpe.ng_address, rtpe.ng_port)) as ng, MediaWatcher(ng) as watcher:
        while any(p.process and p.process.alive() for p in parties):  # noqa: ASYNC110 - polling child processes
            await asyncio.sleep(0.1)
        # the controller reads Kamailio's notifications asynchronously: give it a moment
        await asyncio.sleep(0.5)
        return dict(watcher.last)


async def _events(stack: LocalStack) -> list[dict[str, Any]]:
    r = stack.node.redis
    redis = Redis(host=r.address, port=r.port, db=r.db)
    try:
        return await ConversationStore(redis, max_call_s=1, ttl_after_end_s=1).read_events()
    finally:
        await redis.aclose()


def _summary(client: SippParty, phone: SippParty, media: dict[str, dict[str, int]],
             events: list[dict[str, Any]], employee: str) -> bool:
    call_id = (re.search(r"^Call-ID:\s*(\S+)", client.messages(), re.MULTILINE) or [None, "?"])[1]
    tags = {
        "client": _tag(client.messages(), "From"),
        employee: _tag(phone.messages(), "To"),
    }
    packets = media.get(call_id, {})
    print("== what happened")
    print(f"   client received: {', '.join(client.received()) or 'nothing'}")
    print(f"   {employee}'s phone received: {', '.join(phone.received_requests()) or 'nothing'}")
    print(f"   caller ID {employee} saw: {(phone.received_header('INVITE', 'From') or ['?'])[0]}")
    for who, tag in tags.items():
        print(f"   RTP packets rtpengine received from {who}: {packets.get(tag, 0)}")
    who_hung_up = "the client" if "BYE" in phone.received_requests() else "nobody (call failed)"
    print(f"   the call ended: {who_hung_up} hung up (BYE)")
    print("   event log (Redis stream xfer:events):")
    mine = [e for e in events if e["data"].get("call_id") == call_id]
    for event in mine:
        extra = {k: v for k, v in event["data"].items() if k in ("direction", "origin", "duration_ms", "cause")}
        print(f"     {event['event']:<14} {extra}")
    return bool(packets) and all(packets.get(t, 0) > 0 for t in tags.values()) and \
        [e["event"] for e in mine] == ["call.started", "call.answered", "call.ended"]


def _tag(trace: str, header: str) -> str:
    """The tag a party used for itself, read from the first message of its trace that carries one."""
    match = re.search(rf"^{header}:.*;tag=([^;\s>]+)", trace, re.MULTILINE)
    return match.group(1) if match else "?"
