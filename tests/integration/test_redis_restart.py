"""Redis restarts: what Kamailio applies on its own comes back without restarting anything.

The local stack runs Redis with its append-only file, as a deployment does; a Redis that comes back
without its data (a replaced instance, lost disk) is the harder case, tested here: the controller
publishes the registrar directory and the routing table again within seconds, Kamailio's ndb_redis and
its Python reconnect by themselves, and phones register and calls connect again."""

from __future__ import annotations

import shutil
import time

import pytest

from controller.wire import REGISTRAR_KEY, ROUTES_CURRENT_KEY
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
