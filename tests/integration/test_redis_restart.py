"""Redis restarts: what Kamailio applies on its own comes back without restarting anything.

The local stack runs Redis with its append-only file, as a deployment does; a Redis that comes back
without its data (a replaced instance, lost disk) is the harder case, tested here: the controller
publishes the registrar directory and the routing table again within seconds, Kamailio's ndb_redis and
its Python reconnect by themselves, and phones register and calls connect again. A transfer in progress
completes across a restart: its snapshot and deadlines are in the append-only file."""

from __future__ import annotations

import shutil
import time

import pytest

from controller.devstack.phone import Phone, wait_until
from controller.wire import REGISTRAR_KEY, ROUTES_CURRENT_KEY
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
from tests.integration.test_department_answer import register_vera

pytestmark = pytest.mark.integration


def test_a_redis_that_comes_back_empty_gets_the_publication_again(own_stack: Stack) -> None:
    stack = own_stack
    redis = stack.local.processes["redis"]
    redis.stop()
    shutil.rmtree(stack.local.run_dir / "appendonlydir", ignore_errors=True)  # its data is gone
    stack.local.start_redis()
    back = time.monotonic()
    assert not stack.redis.exists(ROUTES_CURRENT_KEY)

    stack.wait_for(lambda: stack.redis.exists(ROUTES_CURRENT_KEY, REGISTRAR_KEY) == 2, timeout=5,
                   what="the controller to publish the routing table and the registrar again")
    published = time.monotonic() - back
    # a phone registers: Kamailio's Redis connection came back by itself
    stack.wait_for(lambda: _registers(stack), timeout=5, what="a REGISTER to succeed again")
    registered = time.monotonic() - back
    print(f"Redis back empty: published again after {published:.2f} s, a REGISTER succeeded after {registered:.2f} s")
    assert registered < 5

    anna = stack.employee("100")
    client = stack.client_call("+74951110000", talk_ms=300)
    assert client.wait() == 0, client.describe_failure()
    assert anna.wait() == 0 and anna.received_requests() == ["INVITE", "ACK", "BYE"]


def _registers(stack: Stack) -> bool:
    try:
        register_vera(stack)
    except AssertionError:
        return False
    return True


def test_a_redis_restart_with_its_append_only_file_keeps_everything(own_stack: Stack) -> None:
    stack = own_stack
    before = {key: stack.redis.type(key) for key in (ROUTES_CURRENT_KEY, REGISTRAR_KEY)}
    version = stack.redis.get(ROUTES_CURRENT_KEY)
    stack.wait_for(lambda: (stack.local.run_dir / "appendonlydir").exists(), what="the append-only file")
    stack.local.processes["redis"].stop()  # SIGTERM: Redis writes and syncs its append-only file first
    stack.local.start_redis()
    assert {key: stack.redis.type(key) for key in before} == before
    assert stack.redis.get(ROUTES_CURRENT_KEY) == version
    assert _registers(stack)


def test_a_transfer_in_progress_completes_across_a_redis_restart(patient_stack: Stack, people: list[Phone]) -> None:
    """B rings, the client is on hold; Redis restarts (with its append-only file). The conversation's
    snapshot and deadlines are still there: B answers, A and B talk, A hangs up, the client and B talk."""
    stack = patient_stack
    client, a = connect(stack, people, "incoming", a_leaves_ms=14_000, client_leaves_ms=None)
    b = target(stack, people, "boris", "101", "employee_answer.xml", pause_ms=5000)
    a.press("#101")
    wait_until(lambda: "INVITE" in b.sipp.received_requests(), what="B's INVITE")
    on_hold(client, a)

    stack.local.processes["redis"].stop()  # SIGTERM: Redis syncs its append-only file first
    stack.local.start_redis()
    back = time.monotonic()
    stack.wait_for(lambda: _registers(stack), timeout=5, what="a REGISTER to succeed again")
    print(f"Redis restarted during a transfer: a REGISTER succeeded {time.monotonic() - back:.2f} s after")

    wait_until(lambda: "ACK" in b.sipp.received_requests(), timeout=10, what="B to answer")
    eventually(lambda: assert_talking(a, b, A, B))
    on_hold(client, a, b)
    wait_until(lambda: gone(a), timeout=20, what="A to hang up")
    eventually(lambda: assert_talking(client, b, CLIENT, B))
    no_digits(client)
    assert stack.wait_event(sip_call_id(client), "transfer.completed")["data"]["mode"] == "attended"
