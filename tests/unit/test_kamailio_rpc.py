"""Kamailio JSON-RPC client against httpx.MockTransport."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from controller.adapters.kamailio_rpc import IDEMPOTENT_METHODS, KamailioRpc, is_idempotent
from controller.errors import KamailioRpcError, KamailioUnavailable

URL = "http://127.0.0.1:5071/RPC"

Step = httpx.Response | Exception | Callable[[dict[str, Any]], httpx.Response]


class ScriptedKamailio:
    """Answers each POST with the next step of a script; the last step repeats."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps[min(len(self.requests), len(self.steps)) - 1]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        return step(json.loads(request.content))


def ok(result: Any) -> Callable[[dict[str, Any]], httpx.Response]:
    """A well-behaved reply echoing the request id."""
    return lambda req: httpx.Response(200, json={"jsonrpc": "2.0", "result": result, "id": req["id"]})


def fault(status: int, code: int, message: str) -> Callable[[dict[str, Any]], httpx.Response]:
    """What jsonrpcs sends for rpc->fault(): the code as HTTP status AND a JSON-RPC error body."""
    body = {"jsonrpc": "2.0", "error": {"code": code, "message": message}}
    return lambda req: httpx.Response(status, json=body | {"id": req["id"]})


@pytest.fixture
async def make_rpc() -> AsyncIterator[Callable[..., KamailioRpc]]:
    clients: list[httpx.AsyncClient] = []

    def make(server: ScriptedKamailio, **kwargs: Any) -> KamailioRpc:
        client = httpx.AsyncClient(transport=httpx.MockTransport(server))
        clients.append(client)
        kwargs.setdefault("backoff_base", 0.0)  # keep the suite fast; one test checks the backoff
        return KamailioRpc(URL, client=client, **kwargs)

    yield make
    for client in clients:
        await client.aclose()


# -- replies ---------------------------------------------------------------------------------------


async def test_returns_result_and_sends_a_proper_request(make_rpc: Callable[..., KamailioRpc]) -> None:
    server = ScriptedKamailio(ok({"dialogs": 2}))
    rpc = make_rpc(server, timeout=1.5)
    assert await rpc.call("dlg.briefing", "callid", 7) == {"dialogs": 2}
    request = server.requests[0]
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["content-type"] == "application/json"
    assert request.extensions["timeout"]["read"] == 1.5
    assert server.bodies == [{"jsonrpc": "2.0", "method": "dlg.briefing", "params": ["callid", 7], "id": 1}]


async def test_ids_increase_per_call(make_rpc: Callable[..., KamailioRpc]) -> None:
    server = ScriptedKamailio(ok("x"))
    rpc = make_rpc(server)
    await rpc.call("core.version")
    await rpc.call("core.uptime")
    assert [b["id"] for b in server.bodies] == [1, 2]


async def test_jsonrpc_error_raises_with_code_and_message(make_rpc: Callable[..., KamailioRpc]) -> None:
    server = ScriptedKamailio(fault(200, -32601, "Method Not Found"))
    rpc = make_rpc(server)
    with pytest.raises(KamailioRpcError) as info:
        await rpc.call("core.version")
    err = info.value
    assert not isinstance(err, KamailioUnavailable)
    assert (err.method, err.code, err.message) == ("core.version", -32601, "Method Not Found")
    assert "core.version" in str(err)
    assert "-32601" in str(err)
    assert len(server.requests) == 1  # an error reply is final, even for an idempotent method


@pytest.mark.parametrize("status", [404, 500])
async def test_fault_with_http_error_status_is_an_rpc_error_not_an_outage(
    make_rpc: Callable[..., KamailioRpc], status: int
) -> None:
    server = ScriptedKamailio(fault(status, status, "Dialog not found"))
    rpc = make_rpc(server)
    with pytest.raises(KamailioRpcError) as info:
        await rpc.call("dlg.list")
    assert not isinstance(info.value, KamailioUnavailable)
    assert (info.value.code, info.value.message) == (status, "Dialog not found")
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, json={"jsonrpc": "2.0", "result": "x", "id": 999}),
        httpx.Response(200, json={"jsonrpc": "2.0", "result": "x"}),
        httpx.Response(200, content=b"<html>not json</html>"),
        httpx.Response(200, json={"result": "x", "id": 1}),
    ],
)
async def test_untrustworthy_reply_raises_rpc_error(
    make_rpc: Callable[..., KamailioRpc], response: httpx.Response
) -> None:
    server = ScriptedKamailio(response)
    rpc = make_rpc(server)
    with pytest.raises(KamailioRpcError) as info:
        await rpc.call("core.version")
    assert not isinstance(info.value, KamailioUnavailable)
    assert info.value.method == "core.version"
    assert len(server.requests) == 1


# -- retries ---------------------------------------------------------------------------------------


async def test_idempotent_method_retried_on_503(make_rpc: Callable[..., KamailioRpc]) -> None:
    server = ScriptedKamailio(httpx.Response(503), httpx.Response(503), ok("5.8.4"))
    rpc = make_rpc(server)
    assert await rpc.call("core.version") == "5.8.4"
    assert len(server.requests) == 3
    assert len({r.content for r in server.requests}) == 1  # the same request, same id


async def test_idempotent_method_retried_on_connect_error(make_rpc: Callable[..., KamailioRpc]) -> None:
    server = ScriptedKamailio(httpx.ConnectError("Connection refused"), ok([{"h": 1}]))
    rpc = make_rpc(server)
    assert await rpc.call("dlg.list") == [{"h": 1}]
    assert len(server.requests) == 2


async def test_methods_ending_in_list_or_stats_are_retried(make_rpc: Callable[..., KamailioRpc]) -> None:
    server = ScriptedKamailio(httpx.ReadTimeout("slow"), ok({}))
    rpc = make_rpc(server)
    assert await rpc.call("htable.stats") == {}
    assert len(server.requests) == 2


@pytest.mark.parametrize("method", ["tm.t_uac_start", "dlg.end_dlg", "dlg.bridge_dlg"])
@pytest.mark.parametrize(
    "failure",
    [httpx.Response(503), httpx.ConnectError("Connection refused"), httpx.ReadTimeout("timed out")],
    ids=["503", "connect-error", "read-timeout"],
)
async def test_non_idempotent_method_is_never_retried(
    make_rpc: Callable[..., KamailioRpc], method: str, failure: Step
) -> None:
    server = ScriptedKamailio(failure, ok("should not be reached"))
    rpc = make_rpc(server, retries=5)
    with pytest.raises(KamailioUnavailable) as info:
        await rpc.call(method, "a", "b")
    assert len(server.requests) == 1
    assert info.value.method == method
    if isinstance(failure, httpx.ReadTimeout):
        assert "may have been executed" in str(info.value)


async def test_unavailable_after_retries_exhausted_on_5xx(make_rpc: Callable[..., KamailioRpc]) -> None:
    server = ScriptedKamailio(httpx.Response(503))
    rpc = make_rpc(server, retries=3)
    with pytest.raises(KamailioUnavailable) as info:
        await rpc.call("core.uptime")
    assert len(server.requests) == 4  # first try + 3 retries
    assert info.value.code == 503
    assert "503" in str(info.value)
    assert isinstance(info.value, KamailioRpcError)


async def test_unavailable_after_retries_exhausted_on_connect_error(
    make_rpc: Callable[..., KamailioRpc],
) -> None:
    server = ScriptedKamailio(httpx.ConnectError("Connection refused"))
    rpc = make_rpc(server, retries=2)
    with pytest.raises(KamailioUnavailable) as info:
        await rpc.call("ul.dump")
    assert len(server.requests) == 3
    assert info.value.code is None
    assert "Connection refused" in str(info.value)
    assert isinstance(info.value.__cause__, httpx.ConnectError)


async def test_client_error_status_without_jsonrpc_body_is_not_retried(
    make_rpc: Callable[..., KamailioRpc],
) -> None:
    server = ScriptedKamailio(httpx.Response(404, text="Not Found"), ok("x"))
    rpc = make_rpc(server)
    with pytest.raises(KamailioUnavailable) as info:
        await rpc.call("core.version")
    assert info.value.code == 404
    assert len(server.requests) == 1


async def test_retries_back_off(make_rpc: Callable[..., KamailioRpc]) -> None:
    server = ScriptedKamailio(httpx.Response(502), httpx.Response(502), ok(1))
    rpc = make_rpc(server, backoff_base=0.04)
    started = time.monotonic()
    assert await rpc.call("tm.stats") == 1
    assert time.monotonic() - started >= 0.04 + 0.08 - 0.01  # exponential: 0.04 then 0.08


@pytest.mark.parametrize(
    ("method", "idempotent"),
    [
        *((m, True) for m in sorted(IDEMPOTENT_METHODS)),
        ("htable.list", True),
        ("pike.stats", True),
        ("tm.t_uac_start", False),
        ("dlg.end_dlg", False),
        ("dlg.bridge_dlg", False),
        ("dlg.terminate_dlg", False),
        ("ul.rm", False),
        ("dlg.listx", False),
        ("blacklist", False),
    ],
)
def test_is_idempotent(method: str, idempotent: bool) -> None:
    assert is_idempotent(method) is idempotent


# -- lifecycle -------------------------------------------------------------------------------------


async def test_owned_client_closed_by_aclose_twice() -> None:
    rpc = KamailioRpc(URL, timeout=0.5)
    await rpc.aclose()
    await rpc.aclose()
    assert rpc._client.is_closed


async def test_given_client_is_left_open() -> None:
    server = ScriptedKamailio(ok("x"))
    client = httpx.AsyncClient(transport=httpx.MockTransport(server))
    async with KamailioRpc(URL, client=client) as rpc:
        assert await rpc.call("core.version") == "x"
    assert not client.is_closed
    await client.aclose()


async def test_negative_retries_rejected() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ValueError):
            KamailioRpc(URL, retries=-1, client=client)
