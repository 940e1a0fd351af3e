"""Kamailio RPC over HTTP (jsonrpcs module behind xhttp, e.g. http://127.0.0.1:5071/RPC).

Retries are dangerous here: a timed-out ``tm.t_uac_start`` may already have sent its SIP request,
and a second POST would send another. So only read-only methods are retried, and only on
transport failures or HTTP 5xx without a JSON-RPC body; a JSON-RPC error reply is final.

Note: jsonrpcs copies the code given to ``rpc->fault()`` into the HTTP status (e.g. 404 or 500),
so a non-200 reply whose body is a JSON-RPC error is an application error, not an outage.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import httpx
from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from controller.codecs import jsonrpc
from controller.errors import JsonRpcError, KamailioRpcError, KamailioUnavailable

__all__ = ["IDEMPOTENT_METHODS", "KamailioRpc", "is_idempotent"]

log = logging.getLogger(__name__)

# Read-only RPC methods: calling them twice has no effect beyond the first call.
IDEMPOTENT_METHODS = frozenset(
    {
        "core.version",
        "core.uptime",
        "core.psx",
        "system.listMethods",
        "dlg.list",
        "dlg.dlg_list",
        "dlg.briefing",
        "ul.lookup",
        "ul.dump",
        "stats.get_statistics",
        "tm.stats",
        "sl.stats",
    }
)


def is_idempotent(method: str) -> bool:
    """True for methods safe to send twice: the set above, plus any ``*.list`` / ``*.stats``."""
    return method in IDEMPOTENT_METHODS or method.endswith((".list", ".stats"))


class _ServerError(Exception):
    """Internal: HTTP 5xx without a JSON-RPC body; retryable for idempotent methods."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason


class KamailioRpc:
    """Client of one Kamailio jsonrpcs endpoint.

    ``retries`` is the number of extra attempts for idempotent methods (so up to retries + 1
    POSTs); ``backoff_base`` is the first wait between attempts, doubling each time.
    A given ``client`` is used as is and not closed by ``aclose()``.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 2.0,
        retries: int = 3,
        client: httpx.AsyncClient | None = None,
        backoff_base: float = 0.05,
        auth: tuple[str, str] | None = None,
        on_request: Callable[[str], None] | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff_base = backoff_base
        self._owns_client = client is None
        # Kamailio's /RPC answers only the controller's HTTP basic credentials (docs/SECURITY.md)
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout, auth=auth)
        self._ids = itertools.count(1)
        self._closed = False
        self._on_request = on_request  # counts requests by method (the benchmark's round trips)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def call(self, method: str, *params: Any) -> Any:
        """Call ``method`` with positional ``params`` and return the JSON-RPC ``result``.

        Raises KamailioRpcError for a JSON-RPC error or an untrustworthy reply, and
        KamailioUnavailable when Kamailio could not be reached. For a non-idempotent method,
        KamailioUnavailable after a timeout means the outcome is unknown: it may have run.
        """
        request_id = next(self._ids)
        if self._on_request is not None:
            self._on_request(method)
        body = jsonrpc.encode_request(method, list(params), request_id)
        attempts = self.retries + 1 if is_idempotent(method) else 1
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=self.backoff_base, max=max(self.backoff_base, 1.0)),
            retry=retry_if_exception_type((httpx.TransportError, _ServerError)),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        )
        try:
            response = await retrying(self._post, method, body)
        except _ServerError as exc:
            raise KamailioUnavailable(method, exc.status, f"HTTP {exc.status} {exc.reason}".strip()) from exc
        except httpx.TransportError as exc:
            detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
            if isinstance(exc, httpx.TimeoutException) and attempts == 1:
                detail += " (the request may have been executed)"
            raise KamailioUnavailable(method, None, detail) from exc

        try:
            return jsonrpc.parse_response(response.content, request_id)
        except JsonRpcError as exc:
            raise KamailioRpcError(method, exc.code, exc.message) from exc

    async def _post(self, method: str, body: bytes) -> httpx.Response:
        response = await self._client.post(
            self.url,
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=self.timeout,
        )
        if response.status_code == 200 or _has_jsonrpc_error(response):
            return response
        status, reason = response.status_code, response.reason_phrase
        if status >= 500:
            raise _ServerError(status, reason)
        # 3xx/4xx without a JSON-RPC body: wrong URL or proxy; retrying will not help.
        raise KamailioUnavailable(method, status, f"HTTP {status} {reason}".strip())


def _has_jsonrpc_error(response: httpx.Response) -> bool:
    try:
        doc = json.loads(response.content)
    except (ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and "error" in doc
