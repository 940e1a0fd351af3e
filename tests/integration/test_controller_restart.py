"""The controller killed while A dials: no digit is lost.

The DTMF socket is held by the supervisor (systemd's xfer-controller.socket on a node, the local stack
here), not by the controller: while no controller runs, rtpengine's datagrams queue in it, and the next
controller applies them, in order, before anything else (controller/adapters/listen_fds.py)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from controller.devstack.phone import Phone, wait_until
from tests.integration.calls import (
    CLIENT,
    A,
    B,
    assert_talking,
    connect,
    eventually,
    gone,
    no_digits,
    on_hold,
    sip_call_id,
    target,
)
from tests.integration.conftest import Stack

pytestmark = pytest.mark.integration


def test_digits_pressed_while_the_controller_is_down_still_transfer(own_stack: Stack, people: list[Phone]) -> None:
    stack = own_stack
    # A hangs up 15 s after the call is up, which is long after B answers: then the client and B talk
    client, a = connect(stack, people, "incoming", a_leaves_ms=15_000, client_leaves_ms=None)
    b = target(stack, people, "boris", "101", "employee_answer.xml", pause_ms=500)
    a.press("#1")
    stack.wait_logged("digit='1'")  # the controller has the start of the number

    controller = stack.local.processes["controller"]
    os.kill(controller.pid, signal.SIGKILL)  # no clean shutdown: as a crash
    controller.popen.wait(5)
    killed = time.monotonic()
    # A goes on dialling "01": rtpengine reports each digit to a socket nobody reads for now
    for digit in "01":
        before = stack.local.dtmf_queued_bytes()
        a.press(digit)
        wait_until(lambda before=before: stack.local.dtmf_queued_bytes() > before, timeout=5,
                   what=f"rtpengine's report of {digit!r} to be queued")
    assert "INVITE" not in b.sipp.received_requests()

    stack.local.start_controller()
    back = time.monotonic()
    # the number A typed is complete: B is called, the client is on hold and hears nobody
    wait_until(lambda: "INVITE" in b.sipp.received_requests(), timeout=10, what="B's INVITE after the restart")
    print(f"controller down {back - killed:.2f} s; B's INVITE {time.monotonic() - back:.2f} s after it was back")
    wait_until(lambda: "ACK" in b.sipp.received_requests(), timeout=10, what="B to answer")
    eventually(lambda: assert_talking(a, b, A, B))
    on_hold(client, a, b)
    no_digits(client)
    no_digits(b)
    log = "\n".join(stack.controller_log())
    assert "DTMF datagrams had arrived while no controller ran: applied" in log
    assert "Connection refused" not in (stack.local.run_dir / "logs" / "rtpengine.log").read_text(errors="replace")

    wait_until(lambda: gone(a), timeout=20, what="A to hang up")
    eventually(lambda: assert_talking(client, b, CLIENT, B))
    assert stack.wait_event(sip_call_id(client), "transfer.completed")["data"]["mode"] == "attended"
