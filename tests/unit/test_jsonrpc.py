"""Pure JSON-RPC 2.0 helpers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.codecs.jsonrpc import (
    Notification,
    Request,
    encode_notification,
    encode_request,
    error_response,
    int_param,
    parse_message,
    parse_response,
    result_response,
    str_param,
)
from controller.errors import JsonRpcError

PARSE, INVALID, INTERNAL = JsonRpcError.PARSE_ERROR, JsonRpcError.INVALID_REQUEST, JsonRpcError.INTERNAL_ERROR


def test_standard_codes() -> None:
    assert (
        JsonRpcError.PARSE_ERROR,
        JsonRpcError.INVALID_REQUEST,
        JsonRpcError.METHOD_NOT_FOUND,
        JsonRpcError.INVALID_PARAMS,
        JsonRpcError.INTERNAL_ERROR,
    ) == (-32700, -32600, -32601, -32602, -32603)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"jsonrpc":"2.0","method":"transfer","params":{"to":"bob"},"id":1}',
         Request("transfer", {"to": "bob"}, 1)),
        (b'{"jsonrpc":"2.0","method":"m","params":[1,2],"id":"abc"}', Request("m", [1, 2], "abc")),
        ('{"jsonrpc":"2.0","method":"m","id":null}', Request("m", None, None)),
        ('{"jsonrpc":"2.0","method":"tick"}', Notification("tick", None)),
        ('{"jsonrpc":"2.0","method":"tick","params":[]}', Notification("tick", [])),
    ],
)
def test_parse_message_valid(raw: str | bytes, expected: Request | Notification) -> None:
    assert parse_message(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code", "error_id"),
    [
        ("{not json", PARSE, None),
        (b"\xff\xfe{", PARSE, None),
        ("", PARSE, None),
        ("[" * 100_000, PARSE, None),  # deep nesting must not escape as RecursionError
        # Python's json reads these; they are not JSON
        ('{"jsonrpc":"2.0","method":"m","params":[NaN],"id":1}', PARSE, None),
        ('{"jsonrpc":"2.0","method":"m","params":{"p":Infinity},"id":1}', PARSE, None),
        ('{"jsonrpc":"2.0","method":"m","params":[-Infinity],"id":1}', PARSE, None),
        ('{"jsonrpc":"2.0","method":"m","params":[1e999],"id":1}', PARSE, None),  # float() makes it inf
        ('{"jsonrpc":"2.0","method":"m","id":1}'.encode("utf-16"), PARSE, None),  # JSON-RPC text is UTF-8
        ('{"jsonrpc":"2.0","method":"m","id":1}'.encode("utf-8-sig"), PARSE, None),
        ("[]", INVALID, None),
        ('[{"jsonrpc":"2.0","method":"m","id":1}]', INVALID, None),
        ('"just a string"', INVALID, None),
        ("42", INVALID, None),
        ('{"method":"m","id":1}', INVALID, 1),
        ('{"jsonrpc":"1.0","method":"m","id":1}', INVALID, 1),
        ('{"jsonrpc":2.0,"method":"m","id":1}', INVALID, 1),
        ('{"jsonrpc":"2.0","id":"x"}', INVALID, "x"),
        ('{"jsonrpc":"2.0","method":7,"id":1}', INVALID, 1),
        ('{"jsonrpc":"2.0","method":"m","params":"x","id":1}', INVALID, 1),
        ('{"jsonrpc":"2.0","method":"m","params":3,"id":1}', INVALID, 1),
        ('{"jsonrpc":"2.0","method":"m","id":true}', INVALID, None),
        ('{"jsonrpc":"2.0","method":"m","id":1.5}', INVALID, None),
        ('{"jsonrpc":"2.0","method":"m","id":{"a":1}}', INVALID, None),
        ('{"jsonrpc":"2.0","method":"m","id":[1]}', INVALID, None),
    ],
)
def test_parse_message_invalid(raw: str | bytes, code: int, error_id: object) -> None:
    with pytest.raises(JsonRpcError) as info:
        parse_message(raw)
    assert info.value.code == code
    assert info.value.id == error_id


def test_responses() -> None:
    assert result_response(7, {"ok": True}) == {"jsonrpc": "2.0", "result": {"ok": True}, "id": 7}
    err = JsonRpcError(JsonRpcError.METHOD_NOT_FOUND, "no such method: x")
    assert error_response("a", err) == {
        "jsonrpc": "2.0",
        "error": {"code": -32601, "message": "no such method: x"},
        "id": "a",
    }
    with_data = JsonRpcError(JsonRpcError.INVALID_PARAMS, "bad", data={"field": "to"})
    assert error_response(None, with_data)["error"]["data"] == {"field": "to"}


def test_encode_request_and_notification() -> None:
    assert json.loads(encode_request("core.version", [], 3)) == {
        "jsonrpc": "2.0", "method": "core.version", "params": [], "id": 3,
    }
    assert json.loads(encode_request("m", None, "x")) == {"jsonrpc": "2.0", "method": "m", "id": "x"}
    assert json.loads(encode_notification("n", {"a": 1})) == {
        "jsonrpc": "2.0", "method": "n", "params": {"a": 1},
    }
    assert "id" not in json.loads(encode_notification("n", None))
    # non-ASCII goes out as UTF-8, not \\u escapes
    assert "é".encode() in encode_request("m", ["é"], 1)


@pytest.mark.parametrize(
    ("method", "params", "msg_id"),
    [("m", "not-a-container", 1), ("m", 5, 1), (3, None, 1), ("m", None, 1.5), ("m", None, True)],
)
def test_encode_request_rejects_bad_arguments(method: Any, params: Any, msg_id: Any) -> None:
    with pytest.raises(TypeError):
        encode_request(method, params, msg_id)


_json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text()
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=15,
)


@given(
    method=st.text(),
    params=st.none() | st.lists(_json, max_size=4) | st.dictionaries(st.text(), _json, max_size=4),
    msg_id=st.none() | st.integers() | st.text(),
)
def test_request_round_trip(method: str, params: Any, msg_id: Any) -> None:
    assert parse_message(encode_request(method, params, msg_id)) == Request(method, params, msg_id)
    assert parse_message(encode_notification(method, params)) == Notification(method, params)


# -- parse_response --------------------------------------------------------------------------------


def test_parse_response_returns_result() -> None:
    assert parse_response('{"jsonrpc":"2.0","result":{"a":[1]},"id":4}', 4) == {"a": [1]}
    assert parse_response(b'{"jsonrpc":"2.0","result":null,"id":"s"}', "s") is None


def test_parse_response_raises_peer_error() -> None:
    raw = '{"jsonrpc":"2.0","error":{"code":500,"message":"Dialog not found","data":"x"},"id":9}'
    with pytest.raises(JsonRpcError) as info:
        parse_response(raw, 9)
    err = info.value
    assert (err.code, err.message, err.data, err.id) == (500, "Dialog not found", "x", 9)


def test_parse_response_null_id_error_is_the_peers_error() -> None:
    # a server that could not parse our request cannot echo the id
    with pytest.raises(JsonRpcError) as info:
        parse_response('{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse Error"},"id":null}', 9)
    assert info.value.code == PARSE
    assert info.value.message == "Parse Error"


@pytest.mark.parametrize(
    ("raw", "code", "why"),
    [
        ("nope", PARSE, "parse error"),
        ('{"jsonrpc":"2.0","result":1,"id":2}', INTERNAL, "expected 1"),
        ('{"jsonrpc":"2.0","result":1,"id":"1"}', INTERNAL, "expected 1"),
        ('{"jsonrpc":"2.0","result":1,"id":true}', INTERNAL, "expected 1"),
        ('{"jsonrpc":"2.0","result":1,"id":1.0}', INTERNAL, "expected 1"),
        ('{"jsonrpc":"2.0","result":1}', INTERNAL, "no id"),
        ('{"jsonrpc":"2.0","result":1,"id":null}', INTERNAL, "expected 1"),
        ('{"jsonrpc":"2.0","error":{"code":1,"message":"m"},"id":2}', INTERNAL, "expected 1"),
        ('{"result":1,"id":1}', INTERNAL, "not a JSON-RPC 2.0"),
        ("[1]", INTERNAL, "not a JSON-RPC 2.0"),
        ('{"jsonrpc":"2.0","id":1}', INTERNAL, "exactly one"),
        ('{"jsonrpc":"2.0","result":1,"error":{"code":1,"message":"m"},"id":1}', INTERNAL, "exactly one"),
        ('{"jsonrpc":"2.0","error":"boom","id":1}', INTERNAL, "malformed error"),
        ('{"jsonrpc":"2.0","error":{"code":"1","message":"m"},"id":1}', INTERNAL, "malformed error"),
        ('{"jsonrpc":"2.0","error":{"code":1},"id":1}', INTERNAL, "malformed error"),
    ],
)
def test_parse_response_rejects_untrustworthy_replies(raw: str, code: int, why: str) -> None:
    with pytest.raises(JsonRpcError, match=why) as info:
        parse_response(raw, 1)
    assert info.value.code == code


def test_parse_response_keeps_a_huge_malformed_error_out_of_the_message() -> None:
    with pytest.raises(JsonRpcError, match="malformed error") as info:
        parse_response('{"jsonrpc":"2.0","error":"' + "x" * 100_000 + '","id":1}', 1)
    assert len(info.value.message) < 300


def test_finite_floats_still_parse() -> None:
    assert parse_response('{"jsonrpc":"2.0","result":[1.5,-2e10,1e308],"id":1}', 1) == [1.5, -2e10, 1e308]


# -- params ----------------------------------------------------------------------------------------

PARAMS = {"s": "abc", "n": 5060, "long": "x" * 11, "t": True, "f": 1.0, "none": None, "lone": "\ud800"}


def test_str_param() -> None:
    assert str_param(PARAMS, "s", max_len=3) == "abc"
    assert str_param(PARAMS, "absent", max_len=3, default="") == ""


@pytest.mark.parametrize(
    ("name", "why"),
    [("absent", "is missing"), ("long", "at most 10"), ("n", "string"), ("none", "string"), ("lone", "string")],
)
def test_str_param_rejects(name: str, why: str) -> None:
    with pytest.raises(JsonRpcError, match=why) as info:
        str_param(PARAMS, name, max_len=10)
    assert info.value.code == JsonRpcError.INVALID_PARAMS
    assert repr(name) in info.value.message


def test_int_param() -> None:
    assert int_param(PARAMS, "n", low=0, high=65535) == 5060


@pytest.mark.parametrize(("name", "why"), [("absent", "is missing"), ("t", "integer"), ("f", "integer"),
                                           ("s", "integer"), ("n", "0..100")])
def test_int_param_rejects(name: str, why: str) -> None:
    with pytest.raises(JsonRpcError, match=why) as info:
        int_param(PARAMS, name, low=0, high=100)
    assert info.value.code == JsonRpcError.INVALID_PARAMS
    assert repr(name) in info.value.message


def test_error_str_carries_context() -> None:
    text = str(JsonRpcError(-32602, "bad params", data={"p": 1}, id=3))
    assert "-32602" in text
    assert "bad params" in text
    assert "3" in text
    assert "{'p': 1}" in text
