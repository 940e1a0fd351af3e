"""rtpengine killed and restarted under established calls: every call keeps its media.

rtpengine persists its calls in Redis (its own database); a restarted rtpengine restores them on the
same ports, so the parties, who keep sending where they always did, hear each other again without any
re-INVITE. Measured here: the calls are silent only while rtpengine is away. A transfer in progress gets
its hold music, ringback and blocks back from the controller, which notices the restart
(controller/service/rtpengine_watch.py)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from controller.devstack.phone import Phone, exchange, wait_until
from tests.integration.calls import (
    CLIENT,
    A,
    assert_talking,
    connect,
    eventually,
    hears_only,
    no_digits,
    on_hold,
    sip_call_id,
    target,
    waits_for_b,
)
from tests.integration.conftest import BETA_DID, Stack, make_test_config, start_stack

pytestmark = pytest.mark.integration


def _kill_and_restart_rtpengine(stack: Stack) -> float:
    """SIGKILL (no clean shutdown: as a crash), then a new rtpengine; returns when it was killed."""
    rtpengine = stack.local.processes["rtpengine"]
    os.kill(rtpengine.pid, signal.SIGKILL)
    rtpengine.popen.wait(5)
    killed = time.monotonic()
    stack.local.start_rtpengine()
    return killed


#: Five employees with static contacts and a DID each: (tenant, extension, DID).
FIVE = [("acme", "100", "+74951110000"), ("acme", "101", "+74951110001"), ("acme", "103", "+74951110009"),
        ("beta", "300", BETA_DID), ("beta", "301", "+74952220009")]


@pytest.fixture
def five_dids_stack() -> Iterator[Stack]:
    data = make_test_config()
    for tenant, ext, did in FIVE:
        data["tenants"][tenant]["dids"].setdefault(did, {"extension": ext})
    local = start_stack("five", data)
    try:
        yield Stack(local)
    finally:
        local.stop()


def test_calls_keep_their_media_across_an_rtpengine_kill_and_restart(five_dids_stack: Stack,
                                                                     people: list[Phone]) -> None:
    stack = five_dids_stack
    calls = [connect(stack, people, "incoming", a_leaves_ms=None, client_leaves_ms=None, tenant=tenant, a_ext=ext,
                     did=did) for tenant, ext, did in FIVE]
    before = set(stack.rtpengine_calls())
    assert len(before) == 5

    killed = _kill_and_restart_rtpengine(stack)
    assert set(stack.rtpengine_calls()) == before  # restored from Redis

    everyone = [p for call in calls for p in call]

    def all_talking() -> None:
        # all ten talk at once: each client hears its employee and nobody else, and the other way round
        exchange(*everyone, packets=25)
        for client, employee in calls:
            hears_only(client, A, what=f"talking to {employee.voice.name}")
            hears_only(employee, CLIENT, what=f"talking to {client.voice.name}")

    eventually(all_talking, timeout=10)
    gap = time.monotonic() - killed
    print(f"media back on every call {gap:.2f} s after the kill (rtpengine restart included)")
    assert gap < 10, f"media came back {gap:.1f} s after the kill"


def test_a_transfer_keeps_its_hold_music_and_blocks_across_an_rtpengine_restart(patient_stack: Stack,
                                                                                 people: list[Phone]) -> None:
    """B rings, the client is on hold, A hears ringback; rtpengine crashes and comes back. The client
    hears the music again and still never A, A hears the ringback again and not the client, and the
    transfer goes on: `*` brings A back to the client."""
    stack = patient_stack
    client, a = connect(stack, people, "incoming", a_leaves_ms=None, client_leaves_ms=None)
    b = target(stack, people, "boris", "101", "employee_ring_until_cancel.xml")
    a.press("#101")
    wait_until(lambda: "INVITE" in b.sipp.received_requests(), what="B's INVITE")
    on_hold(client, a)
    eventually(lambda: waits_for_b(a, client))

    killed = _kill_and_restart_rtpengine(stack)

    def on_hold_again() -> None:
        on_hold(client, a)
        waits_for_b(a, client)

    eventually(on_hold_again, timeout=10)
    gap = time.monotonic() - killed
    print(f"hold music, ringback and blocks back {gap:.2f} s after the kill (rtpengine restart included)")
    assert gap < 10, f"the hold music came back {gap:.1f} s after the kill"

    a.press("*")
    wait_until(lambda: "CANCEL" in b.sipp.received_requests(), what="B's CANCEL")
    eventually(lambda: assert_talking(client, a, CLIENT, A))
    no_digits(client)
    assert stack.wait_event(sip_call_id(client), "transfer.cancelled")
