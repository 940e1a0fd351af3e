"""The README demo: the local stack on loopback and one transfer, told step by step.

A client on the carrier trunk (127.0.0.2) calls the tenant's DID; employee Anna (extension 100, a phone
on 127.0.0.3) answers. Scenario "hotkey" (the default): Anna presses # 1 0 1 to transfer the client to
Boris (extension 101); the client hears hold music while Anna and Boris talk; Anna hangs up and the
client and Boris talk. Scenario "refer": Anna's phone presses its own Transfer button (a blind REFER to
101); the client hears hold music while Boris rings, Anna's phone is told the progress in NOTIFYs and
hangs up after the last, and the client and Boris talk. Then the client hangs up. Every step prints what
each person really heard: their audio carries a byte naming the speaker, counted on arrival.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from redis.asyncio import Redis

from controller.adapters.redis_store import ConversationStore
from controller.adapters.rtpengine_ng import RtpengineNg
from controller.credentials import redis_kwargs
from controller.devstack.phone import Phone, exchange, wait_until
from controller.devstack.stack import LocalStack, StackOptions, with_free_ports

TRUNK_IP = "127.0.0.2"
CLIENT_NUMBER = "+79161234567"
DID = "+74951110000"
CLIENT, ANNA, BORIS = 0x11, 0x22, 0x33


class DemoFailed(AssertionError):
    pass


def check(ok: bool, what: str) -> None:
    if not ok:
        raise DemoFailed(what)


def run_demo(config_path: Path, run_dir: Path, scenario: str = "hotkey") -> int:
    shutil.rmtree(run_dir, ignore_errors=True)
    data = with_free_ports(yaml.safe_load(config_path.read_text()))
    stack = LocalStack(data, run_dir, StackOptions())
    did = stack.config.lookup_did(DID)
    if did is None or did.route.extension is None or "101" not in did.tenant.extensions:
        print(f"demo: {config_path} must route {DID} to an extension, and have extension 101")
        return 2
    anna_ext, tenant = did.route.extension, did.tenant
    phones: list[Phone] = []
    print(f"== starting the local stack (logs: {run_dir / 'logs'})")
    with stack:
        for name, proc in stack.processes.items():
            print(f"   {name:<10} pid {proc.pid}")
        try:
            {"refer": refer_story, "conference": conference_story}.get(scenario, story)(stack, phones, tenant, anna_ext)
            ok = True
        except (DemoFailed, TimeoutError) as exc:
            print(f"!! {exc}")
            ok = False
        finally:
            for phone in phones:
                phone.close()
    print("== stack stopped")
    print("demo OK" if ok else f"demo FAILED; see {run_dir}")
    return 0 if ok else 1


def contact(tenant: Any, ext: str) -> tuple[str, int]:
    host, port = re.match(r"sips?:[^@]+@([^:;>]+):(\d+)", tenant.extensions[ext].contact or "").groups()
    return host, int(port)


class Cast(NamedTuple):
    """The three people of a demo call, with the first step done: the client and Anna talk."""

    client: Phone
    anna: Phone
    boris: Phone
    anna_name: str
    boris_name: str


def first_step(stack: LocalStack, phones: list[Phone], tenant: Any, anna_ext: str, anna_scenario: str, *,
               anna_ms: int, client_ms: int, keys: dict[str, str] | None = None) -> Cast:
    """Anna's and Boris's phones up, and the client's call to the DID answered by Anna, told."""
    log_dir = stack.run_dir / "sipp"
    a_ip, a_port = contact(tenant, anna_ext)
    b_ip, b_port = contact(tenant, "101")
    anna = Phone.start("anna", anna_scenario, ANNA, log_dir, ip=a_ip, port=a_port, pause_ms=anna_ms, keys=keys)
    boris = Phone.start("boris", "employee_answer.xml", BORIS, log_dir, ip=b_ip, port=b_port, pause_ms=1500)
    phones += [anna, boris]
    anna_name, boris_name = tenant.extensions[anna_ext].name, tenant.extensions["101"].name

    print(f"== 1. the client {CLIENT_NUMBER} (carrier trunk) calls {DID}; {anna_name} (extension {anna_ext}) answers")
    client = Phone.start("client", "client_call_signalling.xml", CLIENT, log_dir, ip=TRUNK_IP,
                         proxy=stack.sip_hostport, pause_ms=client_ms, service=DID, caller=CLIENT_NUMBER)
    phones.append(client)
    wait_until(lambda: "ACK" in anna.sipp.received_requests(), what=f"{anna_name} to answer")
    exchange(client, anna)
    said(client, "the client", {anna_name: ANNA})
    said(anna, anna_name, {"the client": CLIENT})
    check(client.voice.snapshot()[0].get(ANNA, 0) > 0, "the client did not hear Anna")
    return Cast(client, anna, boris, anna_name, boris_name)


def story(stack: LocalStack, phones: list[Phone], tenant: Any, anna_ext: str) -> None:
    client, anna, boris, anna_name, boris_name = first_step(
        stack, phones, tenant, anna_ext, "employee_answer_then_hangup.xml", anna_ms=6000, client_ms=11000)

    print(f"== 2. {anna_name} presses # 1 0 1 to transfer the client to {boris_name} (extension 101)")
    anna.press("#101")
    wait_until(lambda: "INVITE" in boris.sipp.received_requests(), what=f"{boris_name}'s phone to ring")
    on_hold_while_b_rings(client, boris, anna_name, boris_name)

    print(f"== 3. {boris_name} answers; {anna_name} and {boris_name} talk (consultation)")
    wait_until(lambda: "ACK" in boris.sipp.received_requests(), what=f"{boris_name} to answer")
    exchange(anna, boris, packets=25)
    said(anna, anna_name, {boris_name: BORIS})
    said(boris, boris_name, {anna_name: ANNA})
    heard, music = client.hears(0.5)
    print(f"   the client still hears only hold music ({music} packets; voices: {sum(heard.values())})")
    check(anna.voice.snapshot()[0].get(BORIS, 0) > 0 and not heard, "the consultation did not work")

    print(f"== 4. {anna_name} hangs up: the transfer completes")
    wait_until(lambda: anna.sipp.process is not None and not anna.sipp.process.alive(), timeout=10,
               what=f"{anna_name} to hang up")
    exchange(client, boris, packets=25)
    said(client, "the client", {boris_name: BORIS})
    said(boris, boris_name, {"the client": CLIENT})
    print(f"   hold music packets the client still got: {client.voice.snapshot()[1]}; "
          f"requests the client received meanwhile: {client.sipp.received_requests() or 'none'}")
    check(set(client.voice.snapshot()[0]) == {BORIS} and set(boris.voice.snapshot()[0]) == {CLIENT},
          "the client and Boris do not hear each other, and only each other")

    the_end(stack, client, boris, boris_name, 5)


def refer_story(stack: LocalStack, phones: list[Phone], tenant: Any, anna_ext: str) -> None:
    client, anna, boris, anna_name, boris_name = first_step(
        stack, phones, tenant, anna_ext, "employee_answer_refer.xml", anna_ms=2000, client_ms=9000,
        keys={"refer_to": f"<sip:101@{tenant.domain}>"})

    print(f"== 2. {anna_name}'s phone presses its own Transfer button: REFER Refer-To: <sip:101@{tenant.domain}>")
    wait_until(lambda: 202 in anna.sipp.received_statuses(), what="the REFER's answer")
    print(f"   the PBX answered: 202 Accepted; the client received: {client.sipp.received_requests() or 'nothing'}")
    wait_until(lambda: "INVITE" in boris.sipp.received_requests(), what=f"{boris_name}'s phone to ring")
    on_hold_while_b_rings(client, boris, anna_name, boris_name)

    print(f"== 3. {boris_name} answers: the client and {boris_name} talk; {anna_name}'s phone hangs up")
    wait_until(lambda: "ACK" in boris.sipp.received_requests(), what=f"{boris_name} to answer")
    exchange(client, boris, packets=25)
    said(client, "the client", {boris_name: BORIS, anna_name: ANNA})
    said(boris, boris_name, {"the client": CLIENT})
    check(set(client.voice.snapshot()[0]) == {BORIS} and set(boris.voice.snapshot()[0]) == {CLIENT},
          "the client and Boris do not hear each other, and only each other")
    wait_until(lambda: anna.sipp.process is not None and not anna.sipp.process.alive(), timeout=10,
               what=f"{anna_name}'s phone to hang up")
    progress = [" ".join(lines[-1].split()[1:3]) for lines in anna.sipp.received_messages("NOTIFY ")]
    print(f"   {anna_name}'s phone was told, in NOTIFYs: {', '.join(progress)}; it answered each "
          f"{sorted(set(anna.sipp.sent_replies('NOTIFY')))}")
    check(progress[-1:] == ["200 OK"], f"{anna_name}'s phone was not told the transfer succeeded")
    the_end(stack, client, boris, boris_name, 4)


def conference_story(stack: LocalStack, phones: list[Phone], tenant: Any, anna_ext: str) -> None:
    client, anna, boris, anna_name, boris_name = first_step(
        stack, phones, tenant, anna_ext, "employee_answer.xml", anna_ms=0, client_ms=16000)
    tones = {"the client": (client, 400.0), anna_name: (anna, 700.0), boris_name: (boris, 1100.0)}
    for phone, hz in tones.values():
        phone.voice.tone_hz = hz  # voices that survive mixing: a tone each
    print("   from now on each person's voice is a tone of its own: "
          + ", ".join(f"{who} {hz:.0f} Hz" for who, (_, hz) in tones.items()))

    print(f"== 2. {anna_name} presses # 1 0 1; {boris_name} answers and they consult (the client on hold)")
    anna.press("#101", gap_s=0.1)
    wait_until(lambda: "ACK" in boris.sipp.received_requests(), timeout=10, what=f"{boris_name} to answer")
    time.sleep(0.5)  # the re-pairing settles (a demo, not a test: tests wait for the audio itself)
    heard_tones(tones)

    print(f"== 3. {anna_name} presses # again: a three-way conference (the controller's own mixer)")
    anna.press("#", gap_s=0.1)
    time.sleep(0.5)
    levels_after = heard_tones(tones)
    for who, got in levels_after.items():
        others = [hz for name, (_, hz) in tones.items() if name != who]
        own = tones[who][1]
        check(all(got[hz] > 2000 for hz in others) and got[own] < 400, f"{who} does not hear exactly the others")

    print(f"== 4. {anna_name} presses *: {boris_name} is hung up, {anna_name} and the client talk alone")
    anna.press("*", gap_s=0.1)
    wait_until(lambda: "BYE" in boris.sipp.received_requests(), timeout=8, what=f"{boris_name}'s BYE")
    time.sleep(0.5)
    heard_tones({k: v for k, v in tones.items() if k != boris_name})
    the_end(stack, client, anna, anna_name, 5, outcome="transfer.conferenced")


def heard_tones(tones: dict[str, tuple[Phone, float]]) -> dict[str, dict[float, float]]:
    """Everyone talks for 1.5 s; each person's received audio, analysed for everyone's tone."""
    exchange(*(phone for phone, _ in tones.values()), packets=75)
    freqs = [hz for _, hz in tones.values()]
    out = {}
    for who, (phone, _) in tones.items():
        got = phone.voice.tones(freqs)
        out[who] = got
        print(f"   {who} heard: " + ", ".join(f"{name} {got[hz]:.0f}" for name, (_, hz) in tones.items())
              + " (tone amplitude; sent at 8000)")
    return out


def on_hold_while_b_rings(client: Phone, boris: Phone, anna_name: str, boris_name: str) -> None:
    heard, music = client.hears(1.0)
    print(f"   the client hears hold music ({music} packets) and {anna_name} {heard.get(ANNA, 0)} packets")
    print(f"   {boris_name}'s phone rings; the caller ID it shows: "
          f"{boris.sipp.received_header('INVITE', 'From')[0].split(';')[0]}")
    check(music > 0 and not heard, "the client was not on hold (it heard a voice)")


def the_end(stack: LocalStack, client: Phone, party: Phone, party_name: str, step: int,
            outcome: str = "transfer.completed") -> None:
    """The client hangs up on `party`, who gets the BYE; what rtpengine and the event log hold after
    (which must show the transfer's `outcome`)."""
    print(f"== {step}. the client hangs up; {party_name}'s phone gets the BYE")
    check(client.sipp.wait() == 0, "the client's call did not end cleanly")
    check(party.sipp.wait() == 0, f"{party_name}'s call did not end cleanly")
    print(f"   {party_name}'s phone received: {', '.join(party.sipp.received_requests())}")
    call_id = re.search(r"^Call-ID:\s*(\S+)", client.sipp.messages(), re.MULTILINE).group(1)
    calls, events = asyncio.run(_after(stack, call_id))
    print(f"   calls rtpengine still holds: {len(calls)}")
    print("== the event log (Redis stream xfer:events)")
    for event in events:
        data = event["data"]
        extra = {k: data[k] for k in ("direction", "origin", "trigger", "mode", "number", "duration_ms", "cause")
                 if data.get(k)}
        print(f"   {event['event']:<20} {extra}")
    check(outcome in [e["event"] for e in events], f"no {outcome} in the event log")


def said(listener: Phone, who: str, speakers: dict[str, int]) -> None:
    heard = listener.voice.snapshot()[0]
    print("   " + "; ".join(f"{who} heard {name}: {heard.get(mark, 0)} packets" for name, mark in speakers.items()))


async def _after(stack: LocalStack, call_id: str) -> tuple[list[str], list[dict[str, Any]]]:
    await asyncio.sleep(0.7)  # the controller applies Kamailio's notifications asynchronously
    rtpe = stack.node.rtpengine
    async with RtpengineNg((rtpe.ng_address, rtpe.ng_port)) as ng:
        calls = list((await ng.list_calls(limit=1000)).get("calls") or [])
    redis = Redis(**redis_kwargs(stack.node))
    try:
        events = await ConversationStore(redis, max_call_s=1, ttl_after_end_s=1).read_events()
    finally:
        await redis.aclose()
    return calls, [e for e in events if e["data"].get("call_id") == call_id]
