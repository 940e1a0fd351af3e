"""rtpengine killed and restarted under established calls: every call keeps its media.

rtpengine persists its calls in Redis (its own database); a restarted rtpengine restores them on the
same ports, so the parties, who keep sending where they always did, hear each other again without any
re-INVITE. Measured here: the calls are silent only while rtpengine is away."""

from __future__ import annotations

import os
import signal
import time

import pytest

from controller.devstack.phone import Phone, exchange
from tests.integration.calls import CLIENT, A, assert_talking, connect, eventually
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def test_calls_keep_their_media_across_an_rtpengine_kill_and_restart(own_stack: Stack, people: list[Phone]) -> None:
    stack = own_stack
    calls = [connect(stack, people, "incoming", a_leaves_ms=None, client_leaves_ms=None),
             connect(stack, people, "incoming", a_leaves_ms=None, client_leaves_ms=None, a_ext="101",
                     did="+74951110001")]
    before = set(stack.rtpengine_calls())
    assert len(before) == 2

    rtpengine = stack.local.processes["rtpengine"]
    os.kill(rtpengine.pid, signal.SIGKILL)  # no clean shutdown: as a crash
    rtpengine.popen.wait(5)
    killed = time.monotonic()
    stack.local.start_rtpengine()
    assert set(stack.rtpengine_calls()) == before  # restored from Redis

    for client, employee in calls:
        def talking(client: Phone = client, employee: Phone = employee) -> None:
            exchange(client, employee)
            assert_talking(client, employee, CLIENT, A)
        eventually(talking, timeout=10)
    gap = time.monotonic() - killed
    print(f"media back on every call {gap:.2f} s after the kill (rtpengine restart included)")
    assert gap < 10, f"media came back {gap:.1f} s after the kill"
