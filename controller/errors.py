"""Exception types of the controller.

Each exception keeps the context needed to act on it (which command, which call, what the peer said)
as attributes, and renders it in ``str()`` so that a log line alone is enough to diagnose.
``args`` always mirrors the constructor's positional arguments so the exceptions pickle cleanly.
"""

from __future__ import annotations

from typing import Any


class ControllerError(Exception):
    """Base class of every error raised by the controller itself."""


class RtpengineError(ControllerError):
    """rtpengine answered a command with a result other than "ok"/"pong" (or could not be asked)."""

    def __init__(
        self,
        command: str,
        call_id: str | None = None,
        result: str | None = None,
        error_reason: str | None = None,
    ) -> None:
        super().__init__(command, call_id, result, error_reason)
        self.command = command
        self.call_id = call_id
        self.result = result
        self.error_reason = error_reason

    def __str__(self) -> str:
        call = f" (call-id {self.call_id!r})" if self.call_id is not None else ""
        reason = f": {self.error_reason}" if self.error_reason else ""
        return f"rtpengine {self.command!r}{call} failed with result {self.result!r}{reason}"


class RtpengineTimeout(RtpengineError):
    """rtpengine did not reply to any of the attempts."""

    def __init__(
        self,
        command: str,
        call_id: str | None = None,
        attempts: int = 1,
        timeout: float = 0.0,
    ) -> None:
        reason = f"no reply after {attempts} attempt(s) of {timeout:g} s each"
        super().__init__(command, call_id, "timeout", reason)
        self.args = (command, call_id, attempts, timeout)
        self.attempts = attempts
        self.timeout = timeout


class KamailioRpcError(ControllerError):
    """Kamailio answered with a JSON-RPC error object, or with a reply we cannot trust."""

    def __init__(self, method: str, code: int | None, message: str) -> None:
        super().__init__(method, code, message)
        self.method = method
        self.code = code
        self.message = message

    def __str__(self) -> str:
        code = f" [{self.code}]" if self.code is not None else ""
        return f"Kamailio RPC {self.method!r} failed{code}: {self.message}"


class KamailioUnavailable(KamailioRpcError):
    """Kamailio could not be reached: connection refused, HTTP timeout, unexpected HTTP status.

    ``code`` is the HTTP status when there was one, else None.
    """


class BencodeError(ValueError):
    """Malformed bencode input (``offset`` is where decoding stopped) or an unencodable value."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message, offset)
        self.message = message
        self.offset = offset

    def __str__(self) -> str:
        if self.offset is None:
            return self.message
        return f"{self.message} at offset {self.offset}"


class JsonRpcError(ControllerError):
    """A JSON-RPC 2.0 error: raised by the codec, and used to build error responses."""

    # Standard codes from the JSON-RPC 2.0 specification.
    PARSE_ERROR = -32700
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603

    def __init__(self, code: int, message: str, data: Any = None, id: str | int | None = None) -> None:
        super().__init__(code, message, data, id)
        self.code = code
        self.message = message
        self.data = data
        self.id = id

    def __str__(self) -> str:
        text = f"JSON-RPC error {self.code}: {self.message}"
        if self.id is not None:
            text += f" (id {self.id!r})"
        if self.data is not None:
            text += f"; data: {self.data!r}"
        return text
