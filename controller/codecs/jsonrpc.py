"""JSON-RPC 2.0 messages as plain data: parsing, validation and encoding, no I/O.

Used both ways: to talk to Kamailio's jsonrpcs module (client side) and to serve our own
control API (server side). Batches are not supported and are reported as invalid requests.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from controller.errors import JsonRpcError

__all__ = [
    "Id",
    "Notification",
    "Params",
    "Request",
    "encode_notification",
    "encode_request",
    "error_response",
    "int_param",
    "invalid_param",
    "parse_message",
    "parse_response",
    "result_response",
    "str_param",
]

Params = dict[str, Any] | list[Any] | None
Id = str | int | None

_MISSING = object()


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    params: Params
    id: Id


@dataclass(frozen=True, slots=True)
class Notification:
    method: str
    params: Params


def parse_message(raw: bytes | str) -> Request | Notification:
    """Parse one incoming request or notification; raise JsonRpcError with the standard code."""
    doc = _load(raw)
    if isinstance(doc, list):
        raise JsonRpcError(JsonRpcError.INVALID_REQUEST, "batch requests are not supported")
    if not isinstance(doc, dict):
        raise JsonRpcError(JsonRpcError.INVALID_REQUEST, "request must be a JSON object")

    msg_id = doc.get("id", _MISSING)
    # Echo the id back in the error whenever it is usable, as the spec asks.
    reply_id = msg_id if msg_id is not _MISSING and _valid_id(msg_id) else None

    def invalid(why: str) -> JsonRpcError:
        return JsonRpcError(JsonRpcError.INVALID_REQUEST, why, id=reply_id)

    if doc.get("jsonrpc") != "2.0":
        raise invalid('"jsonrpc" must be exactly "2.0"')
    method = doc.get("method")
    if not isinstance(method, str):
        raise invalid('"method" must be a string')
    params = doc.get("params")
    if params is not None and not isinstance(params, dict | list):
        raise invalid('"params" must be an object or an array')
    if msg_id is _MISSING:
        return Notification(method, params)
    if not _valid_id(msg_id):
        raise invalid('"id" must be a string, an integer or null')
    return Request(method, params, msg_id)


def result_response(id: Id, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "result": result, "id": id}


def error_response(id: Id, err: JsonRpcError) -> dict[str, Any]:
    error: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.data is not None:
        error["data"] = err.data
    return {"jsonrpc": "2.0", "error": error, "id": id}


def encode_request(method: str, params: Params, id: Id) -> bytes:
    if not _valid_id(id):
        raise TypeError(f"invalid JSON-RPC id {id!r}")
    return _dump(_message(method, params) | {"id": id})


def encode_notification(method: str, params: Params) -> bytes:
    return _dump(_message(method, params))


def parse_response(raw: bytes | str, expected_id: Id) -> Any:
    """Return the ``result`` of a response to our request ``expected_id``.

    Raises JsonRpcError: the peer's own error object (code/message/data as sent), or an
    INTERNAL_ERROR-coded one when the reply is not a well-formed response to *this* request.
    """
    doc = _load(raw)
    if not isinstance(doc, dict) or doc.get("jsonrpc") != "2.0":
        raise _bad_reply("reply is not a JSON-RPC 2.0 object", expected_id)
    has_result, has_error = "result" in doc, "error" in doc
    if has_result == has_error:
        raise _bad_reply('reply must have exactly one of "result" and "error"', expected_id)
    reply_id = doc.get("id", _MISSING)

    if has_error:
        error = doc["error"]
        if (
            not isinstance(error, dict)
            or not _is_int(error.get("code"))
            or not isinstance(error.get("message"), str)
        ):
            raise _bad_reply(f"malformed error object {error!r:.200}", expected_id)
        # A null id means the peer could not read ours (e.g. parse error): its error still applies.
        if reply_id is None or _same_id(reply_id, expected_id):
            raise JsonRpcError(error["code"], error["message"], error.get("data"), expected_id)
    if not _same_id(reply_id, expected_id):
        got = "no id" if reply_id is _MISSING else f"id {reply_id!r}"
        raise _bad_reply(f"reply has {got}, expected {expected_id!r}", expected_id)
    return doc["result"]


def str_param(params: dict[str, Any], name: str, *, max_len: int, default: str | None = None) -> str:
    """``params[name]``: a string of at most ``max_len`` characters (``default`` when absent and given).

    Raises INVALID_PARAMS naming the parameter, never quoting the value (which may be huge or hostile).
    """
    value = params.get(name, _MISSING)
    if value is _MISSING:
        if default is None:
            raise invalid_param(name, "is missing")
        return default
    if not isinstance(value, str) or len(value) > max_len or not _is_utf8(value):
        raise invalid_param(name, f"must be a string of at most {max_len} characters")
    return value


def int_param(params: dict[str, Any], name: str, *, low: int, high: int) -> int:
    """``params[name]``: an integer (not a bool, not a float) in ``low..high``; else INVALID_PARAMS."""
    if name not in params:
        raise invalid_param(name, "is missing")
    value = params[name]
    if not _is_int(value) or not low <= value <= high:
        raise invalid_param(name, f"must be an integer in {low}..{high}")
    return value


def invalid_param(name: str, why: str) -> JsonRpcError:
    return JsonRpcError(JsonRpcError.INVALID_PARAMS, f"invalid param {name!r}: {why}")


def _message(method: str, params: Params) -> dict[str, Any]:
    if not isinstance(method, str):
        raise TypeError("method must be a str")
    msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        if not isinstance(params, dict | list):
            raise TypeError("params must be a dict, a list or None")
        msg["params"] = params
    return msg


def _load(raw: bytes | str) -> Any:
    try:
        # JSON-RPC text is UTF-8: json.loads would also guess UTF-16/32 from the first bytes
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise JsonRpcError(JsonRpcError.PARSE_ERROR, f"parse error: {exc}") from None


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN, Infinity and -Infinity; JSON does not
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e999, which float() turns into inf
        raise ValueError(f"number {text[:32]} is out of range")
    return value


def _dump(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _bad_reply(why: str, expected_id: Id) -> JsonRpcError:
    return JsonRpcError(JsonRpcError.INTERNAL_ERROR, why, id=expected_id)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_utf8(text: str) -> bool:
    # JSON escapes can smuggle lone surrogates into a str; no UTF-8 consumer (Redis, logs) accepts them
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _valid_id(value: object) -> bool:
    # Fractional ids are discouraged by the spec; booleans are not ids at all.
    return value is None or isinstance(value, str) or _is_int(value)


def _same_id(a: object, b: object) -> bool:
    # Python would call True == 1 and 1 == 1.0; JSON-RPC ids must match in type too.
    return type(a) is type(b) and a == b and _valid_id(a)
