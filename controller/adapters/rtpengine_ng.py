"""Async client for rtpengine's ng control protocol over UDP.

Wire format, both ways: ``<cookie> <bencoded dict>``. rtpengine caches each reply by cookie, so
resending a command with the SAME cookie is idempotent: a lost reply is answered again instead of
the command being executed twice. That is what makes resending safe for offer/answer/delete.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from controller.codecs import bencode
from controller.errors import BencodeError, RtpengineError, RtpengineTimeout

__all__ = ["RtpengineNg", "RttCallback"]

log = logging.getLogger(__name__)

RttCallback = Callable[[str, float], None]

_OK_RESULTS = frozenset({"ok", "pong"})


class _ReplyProblem(Exception):
    """Internal: resolves a pending future when no usable reply will come (bad reply, closed)."""

    def __init__(self, result: str, reason: str) -> None:
        super().__init__(result, reason)
        self.result = result
        self.reason = reason


class _NgProtocol(asyncio.DatagramProtocol):
    def __init__(self, client: RtpengineNg) -> None:
        self._client = client

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._client._on_datagram(data)

    def error_received(self, exc: Exception) -> None:
        # On a connected UDP socket this is usually ICMP "port unreachable": rtpengine is down.
        # The pending requests will time out and be resent; nothing else to do here.
        self._client.send_errors += 1
        log.debug("rtpengine ng socket error: %s", exc)


class RtpengineNg:
    """One UDP socket to one rtpengine; any number of concurrent commands.

    ``timeout`` is per attempt; a command is sent up to ``attempts`` times with the same cookie.
    ``on_rtt(command, seconds)`` receives round-trip times, only for commands that were answered
    without a resend (Karn's rule: for a resent command we cannot tell which send was answered).
    """

    def __init__(
        self,
        address: tuple[str, int],
        *,
        timeout: float = 1.0,
        attempts: int = 3,
        on_rtt: RttCallback | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.address = address
        self.timeout = timeout
        self.attempts = attempts
        self._on_rtt = on_rtt
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # Counters for metrics and tests.
        self.unknown_replies = 0  # cookie not pending: late duplicate after a resend, or garbage
        self.malformed_replies = 0
        self.send_errors = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the socket. Connecting it makes the kernel pick an ephemeral port on the interface
        that reaches rtpengine (loopback for a local one) and drop datagrams from anyone else."""
        if self._transport is not None:
            return
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _NgProtocol(self), remote_addr=self.address
        )
        self._transport = transport

    async def close(self) -> None:
        """Close the socket; commands still waiting fail with RtpengineError(result="closed")."""
        transport, self._transport = self._transport, None
        if transport is None:
            return
        transport.close()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(_ReplyProblem("closed", "client closed before rtpengine replied"))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def in_flight(self) -> int:
        """Commands currently waiting for a reply."""
        return len(self._pending)

    @property
    def local_address(self) -> tuple[str, int]:
        if self._transport is None:
            raise RuntimeError("RtpengineNg is not started")
        return self._transport.get_extra_info("sockname")[:2]

    # -- commands -------------------------------------------------------------------------------

    async def request(self, command: str, **params: Any) -> dict[str, Any]:
        """Send ``command`` and return rtpengine's reply dict.

        Keyword names have underscores turned into dashes (``call_id`` -> ``call-id``); ``None``
        values are left out. Keys that are not identifiers can be given as ``**{"key name": v}``.
        Raises RtpengineError if the result is not "ok"/"pong", RtpengineTimeout if no reply came.
        """
        if self._transport is None:
            raise RuntimeError("RtpengineNg is not started")
        message: dict[str, Any] = {"command": command}
        message.update({k.replace("_", "-"): v for k, v in params.items() if v is not None})
        call_id = message.get("call-id")

        cookie = secrets.token_hex(8)
        while cookie in self._pending:  # astronomically unlikely, but a clash would cross replies
            cookie = secrets.token_hex(8)
        packet = cookie.encode("ascii") + b" " + bencode.encode(message)

        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending[cookie] = future
        try:
            reply = await self._exchange(command, call_id, cookie, packet, future)
        except _ReplyProblem as exc:
            raise RtpengineError(command, call_id, exc.result, exc.reason) from None
        finally:
            self._pending.pop(cookie, None)
        return self._check(command, call_id, reply)

    async def _exchange(
        self,
        command: str,
        call_id: str | None,
        cookie: str,
        packet: bytes,
        future: asyncio.Future[dict[str, Any]],
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        for attempt in range(1, self.attempts + 1):
            transport = self._transport
            if transport is None:
                raise _ReplyProblem("closed", "client closed before rtpengine replied")
            sent_at = loop.time()
            transport.sendto(packet)
            # asyncio.wait, unlike wait_for, leaves the future alive across attempts, so a late
            # reply to an earlier send still completes it.
            done, _ = await asyncio.wait({future}, timeout=self.timeout)
            if done:
                reply = future.result()  # raises _ReplyProblem: no RTT for a reply we could not use
                if attempt == 1:
                    self._report_rtt(command, loop.time() - sent_at)
                return reply
            log.debug("rtpengine %s cookie %s: no reply to attempt %d/%d", command, cookie, attempt,
                      self.attempts)
        log.warning("rtpengine %s (call-id %s): no reply after %d attempts", command, call_id, self.attempts)
        raise RtpengineTimeout(command, call_id, self.attempts, self.timeout)

    @staticmethod
    def _check(command: str, call_id: str | None, reply: dict[str, Any]) -> dict[str, Any]:
        result = reply.get("result")
        if result in _OK_RESULTS:
            if "warning" in reply:
                log.warning("rtpengine %s (call-id %s) warning: %s", command, call_id, reply["warning"])
            return reply
        reason = reply.get("error-reason", reply.get("message"))
        raise RtpengineError(
            command,
            call_id,
            result if isinstance(result, str) else repr(result),
            reason if isinstance(reason, str) or reason is None else repr(reason),
        )

    def _report_rtt(self, command: str, seconds: float) -> None:
        if self._on_rtt is None:
            return
        try:
            self._on_rtt(command, seconds)
        except Exception:
            # A broken metrics hook must not fail a media command.
            log.exception("on_rtt callback failed")

    def _on_datagram(self, data: bytes) -> None:
        cookie_raw, sep, body = data.partition(b" ")
        if not sep:
            self.malformed_replies += 1
            log.debug("rtpengine reply without cookie separator: %r", data[:80])
            return
        cookie = cookie_raw.decode("ascii", errors="replace")
        future = self._pending.get(cookie)
        if future is None or future.done():
            self.unknown_replies += 1
            log.debug("rtpengine reply with unknown cookie %r ignored", cookie[:32])
            return
        try:
            reply = bencode.decode(body)
        except BencodeError as exc:
            reply = exc
        if not isinstance(reply, dict):
            # rtpengine caches replies by cookie: resending would only fetch the same bad bytes.
            self.malformed_replies += 1
            log.warning("malformed rtpengine reply for cookie %s: %s", cookie, reply)
            future.set_exception(_ReplyProblem("malformed", f"undecodable reply: {reply}"))
            return
        future.set_result(reply)

    # -- conveniences: one line each over request() ---------------------------------------------

    async def ping(self) -> dict[str, Any]:
        return await self.request("ping")

    async def offer(self, call_id: str, from_tag: str, sdp: str, **extra: Any) -> dict[str, Any]:
        return await self.request("offer", call_id=call_id, from_tag=from_tag, sdp=sdp, **extra)

    async def answer(
        self, call_id: str, from_tag: str, to_tag: str, sdp: str, **extra: Any
    ) -> dict[str, Any]:
        return await self.request("answer", call_id=call_id, from_tag=from_tag, to_tag=to_tag, sdp=sdp,
                                  **extra)

    async def delete(self, call_id: str, from_tag: str | None = None, **extra: Any) -> dict[str, Any]:
        return await self.request("delete", call_id=call_id, from_tag=from_tag, **extra)

    async def query(self, call_id: str, **extra: Any) -> dict[str, Any]:
        return await self.request("query", call_id=call_id, **extra)

    async def list_calls(self, limit: int = 32) -> dict[str, Any]:
        return await self.request("list", limit=limit)

    async def statistics(self) -> dict[str, Any]:
        return await self.request("statistics")

    async def play_media(
        self, call_id: str, from_tag: str, file: str, repeat_times: int | None = None
    ) -> dict[str, Any]:
        return await self.request("play media", call_id=call_id, from_tag=from_tag, file=file,
                                  repeat_times=repeat_times)

    async def stop_media(self, call_id: str, from_tag: str) -> dict[str, Any]:
        return await self.request("stop media", call_id=call_id, from_tag=from_tag)

    async def block_media(self, call_id: str, from_tag: str) -> dict[str, Any]:
        return await self.request("block media", call_id=call_id, from_tag=from_tag)

    async def unblock_media(self, call_id: str, from_tag: str) -> dict[str, Any]:
        return await self.request("unblock media", call_id=call_id, from_tag=from_tag)
