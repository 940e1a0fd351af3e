"""Fuzzing every parser of network input: whatever arrives, each fails only in its documented way.

- Kamailio's callbacks (Callbacks.handle): a JSON-RPC error with a standard code, nothing stored;
- rtpengine's DTMF datagrams: a DtmfEvent or ValueError;
- rtpengine's ng replies (bencode): a value or BencodeError, however deep the nesting;
- Kamailio's RPC replies: a result or JsonRpcError (which KamailioRpc turns into KamailioRpcError).

Each test runs 10,000 cases; sizes are kept small so that the whole file runs in under a minute.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.adapters.dtmf import EVENT_DIGITS, DtmfEvent, parse_dtmf_datagram
from controller.codecs.bencode import decode, encode
from controller.codecs.jsonrpc import parse_response
from controller.errors import BencodeError, JsonRpcError
from controller.metrics import Metrics
from controller.routing.table import normalize_ip
from controller.service.callbacks import MAX_CALL_ID, MAX_TEXT, ROUTE_PARAMS, Callbacks
from tests.unit.test_callbacks import CONFIG, INVITE, FakeStore

FUZZ = settings(max_examples=10_000, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

PARSE, INVALID_REQUEST, NO_METHOD, INVALID_PARAMS = -32700, -32600, -32601, -32602
STANDARD_CODES = {PARSE, INVALID_REQUEST, NO_METHOD, INVALID_PARAMS}
LONGEST_LOG_LINE = 1024

# -- strategies ------------------------------------------------------------------------------------

# Small and flat on purpose: hypothesis spends far longer generating big or nested documents than the
# parsers spend on them; deep nesting is spliced in as text instead (see _LITERALS and _fragments).
_floats = st.floats(allow_nan=True, allow_infinity=True)  # json.dumps writes NaN/Infinity literals for these
_scalars = st.none() | st.booleans() | st.integers() | _floats | st.text(max_size=8)
json_values = _scalars | st.lists(_scalars, max_size=2) | st.dictionaries(st.text(max_size=4), _scalars, max_size=2)
_NESTED_JUNK = [[[[]]], {"a": {"b": [1, {"c": None}]}}, [{"": []}] * 3, {"call_id": {"call_id": "x"}}]
ids = st.none() | st.integers(-(2**63), 2**63) | st.text(max_size=12)


def dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def non_finite(value: Any) -> bool:
    """Whether json.dumps writes a NaN or Infinity literal somewhere in `value`."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(non_finite(v) for v in value.values())
    return False


# -- the callback endpoint -------------------------------------------------------------------------


class LongestLine(logging.Handler):
    """Remembers the longest log message since the last reset: log lines must stay bounded."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.longest = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.longest = max(self.longest, len(record.getMessage()))


def run_now(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never waits (the store is in memory), without an event loop's overhead."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise AssertionError("the callback waited for I/O")


@dataclass
class Endpoint:
    callbacks: Callbacks
    store: FakeStore
    lines: LongestLine

    def handle(self, raw: bytes) -> dict[str, Any] | None:
        self.store.writes.clear()
        self.lines.longest = 0
        reply = run_now(self.callbacks.handle(raw))
        assert self.lines.longest <= LONGEST_LOG_LINE
        return reply

    def assert_error(self, reply: dict[str, Any] | None, codes: set[int] = STANDARD_CODES) -> dict[str, Any]:
        """`reply` is a JSON-RPC error response with one of `codes`, and nothing was stored."""
        assert reply is not None
        assert set(reply) == {"jsonrpc", "error", "id"}
        assert reply["jsonrpc"] == "2.0"
        assert set(reply["error"]) <= {"code", "message", "data"}
        assert reply["error"]["code"] in codes
        assert isinstance(reply["error"]["message"], str)
        assert self.store.writes == []
        json.dumps(reply)  # what service.handle_rpc sends
        return reply["error"]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    store, lines = FakeStore(), LongestLine()
    logger = logging.getLogger("controller.service.callbacks")
    saved = logger.level, logger.propagate
    # every line is formatted (and measured), none goes to pytest's capture: that would cost seconds
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(lines)
    yield Endpoint(Callbacks(CONFIG, store, Metrics()), store, lines)  # type: ignore[arg-type]
    logger.removeHandler(lines)
    logger.setLevel(saved[0])
    logger.propagate = saved[1]


def _reply_is_sound(endpoint: Endpoint, reply: dict[str, Any] | None) -> None:
    """Any input: an error with a standard code and nothing stored, or (for a valid call) a result."""
    if reply is None or "result" in reply:
        return
    endpoint.assert_error(reply)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_callbacks_survive_arbitrary_bytes(endpoint: Endpoint, raw: bytes) -> None:
    endpoint.assert_error(endpoint.handle(raw))


_requests = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2.0]) | _scalars,
        "method": st.sampled_from(["route.invite", "route.nothing"]) | _scalars,
        "params": json_values | st.dictionaries(st.sampled_from([*INVITE, "xfer_leg"]), _scalars, max_size=4),
        "id": ids | json_values,
    },
)


@FUZZ
@given(doc=json_values | _requests)
def test_callbacks_survive_arbitrary_json(endpoint: Endpoint, doc: Any) -> None:
    _reply_is_sound(endpoint, endpoint.handle(dumps(doc)))


# values each route.invite param must refuse
_not_str = (st.none() | st.booleans() | st.integers() | _floats | st.lists(_scalars, max_size=3)
            | st.dictionaries(st.text(max_size=4), _scalars, max_size=3) | st.sampled_from(_NESTED_JUNK))
# low halves only: a high one followed by a low one would make a valid pair
_lone_surrogates = st.text(st.characters(min_codepoint=0xDC00, max_codepoint=0xDFFF), min_size=1, max_size=4)


def _too_long(limit: int) -> st.SearchStrategy[str]:
    return st.integers(limit + 1, limit + 5_000).map(lambda n: "x" * n)


def _bad_text(limit: int) -> st.SearchStrategy[Any]:
    return _not_str | _too_long(limit) | _lone_surrogates


_BAD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    name: _bad_text(MAX_TEXT) for name in ("from_user", "from_domain", "ruri_user", "ruri_domain", "from_tag",
                                          "xfer_leg")
} | {
    "call_id": _bad_text(MAX_CALL_ID),
    "source_ip": _bad_text(MAX_TEXT) | st.text(max_size=40).filter(lambda s: normalize_ip(s) is None),
    "source_port": (st.none() | st.booleans() | _floats | st.text(max_size=6) | st.lists(st.integers(), max_size=2)
                    | st.integers(max_value=-1) | st.integers(min_value=65536) | st.just(10**300)),
}
MISSING = object()  # a required param left out


def _bad_value(name: str) -> st.SearchStrategy[Any]:
    return _BAD_VALUES[name] | st.just(MISSING) if name in ROUTE_PARAMS else _BAD_VALUES[name]


# one bad param per case: validation stops at the first anyway
_bad_param = st.one_of([st.tuples(st.just(name), _bad_value(name)) for name in sorted(_BAD_VALUES)])

# spliced into the body as written: json.dumps never writes these
_LITERALS = ["NaN", "Infinity", "-Infinity", "1e999", "-1E400", "[" * 5_000 + "]" * 5_000]


@FUZZ
@given(bad=_bad_param, msg_id=ids, literal=st.none() | st.sampled_from(_LITERALS))
def test_callbacks_refuse_wrong_route_invite_params(
    endpoint: Endpoint, bad: tuple[str, Any], msg_id: Any, literal: str | None
) -> None:
    name, value = bad
    params = {k: v for k, v in (INVITE | {name: value}).items() if v is not MISSING}
    if literal is not None:
        params["from_user"] = "@literal@"
    body = dumps({"jsonrpc": "2.0", "method": "route.invite", "params": params, "id": msg_id})
    if literal is not None:
        body = body.replace(b'"@literal@"', literal.encode())

    if literal is not None or non_finite(params):  # not JSON at all
        assert endpoint.assert_error(endpoint.handle(body), {PARSE})
        return
    reply = endpoint.handle(body)
    error = endpoint.assert_error(reply, {INVALID_PARAMS})
    assert reply is not None
    assert reply["id"] == msg_id
    assert len(error["message"]) <= 200
    assert name in error["message"]


# -- rtpengine's DTMF datagrams --------------------------------------------------------------------


def _assert_dtmf_outcome(data: bytes) -> None:
    try:
        event = parse_dtmf_datagram(data)
    except ValueError:
        return
    assert isinstance(event, DtmfEvent)
    assert event.digit in EVENT_DIGITS.values()
    assert isinstance(event.call_id, str)
    assert event.call_id
    assert all(isinstance(value, int) and value >= 0 for value in (event.timestamp, event.duration_ms, event.volume))


@FUZZ
@given(data=st.binary(max_size=200))
def test_dtmf_parser_survives_arbitrary_bytes(data: bytes) -> None:
    _assert_dtmf_outcome(data)


_DATAGRAM = {"callid": "abc", "source_tag": "tagA", "tags": ["tagA", "tagB"], "type": "DTMF",
             "timestamp": 1732520000, "source_ip": "127.0.0.1", "event": 11, "duration": 160, "volume": 10}


_dtmf_keys = st.sampled_from(sorted(_DATAGRAM))
# a real datagram with a few fields changed reaches the checks past the first missing field
_changed_datagrams = st.dictionaries(_dtmf_keys, json_values | st.integers(-3, 20), max_size=2).map(
    lambda changes: _DATAGRAM | changes)


@FUZZ
@given(
    doc=st.dictionaries(_dtmf_keys | st.text(max_size=6), json_values, max_size=3) | _changed_datagrams
)
def test_dtmf_parser_survives_arbitrary_json_objects(doc: dict[str, Any]) -> None:
    _assert_dtmf_outcome(dumps(doc))


# -- rtpengine's ng replies (bencode) --------------------------------------------------------------


def _assert_bencode_outcome(data: bytes) -> None:
    try:
        value = decode(data)
    except BencodeError:  # a RecursionError or a plain ValueError would fail the test
        return
    assert decode(encode(value)) == value


@FUZZ
@given(data=st.binary(max_size=200))
def test_bencode_decoder_survives_arbitrary_bytes(data: bytes) -> None:
    _assert_bencode_outcome(data)


# what rtpengine sends, and some odd but valid values, to mutate
_ENCODINGS = [encode(value) for value in (
    {"result": "ok"}, {"result": "pong"}, {"result": "error", "error-reason": "Unknown call-id"},
    {"result": "ok", "sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n", "warning": "x"},
    {"result": "ok", "totals": {"RTP": {"packets": 10, "bytes": 1720}}, "tags": {"tagA": {"medias": [{"index": 1}]}}},
    [], {}, 0, -1, 2**70, "", b"\xff\x00", [[["deep"]]], {"a": {"b": {"c": [1, "2", b"3"]}}},
)]
# hostile fragments: deep nesting both ways, numbers too long for int(), arbitrary bytes
_fragments = (
    st.sampled_from([b"l", b"d", b"e", b"i", b":", b"-", b"0", b"9", b"1:", b"i-0e"])
    | st.integers(1, 20_000).map(lambda n: b"l" * n)
    | st.integers(1, 200).map(lambda n: b"d1:a" * n)
    | st.integers(4_000, 5_000).map(lambda n: b"9" * n)
    | st.binary(max_size=8)
)


@st.composite
def _mutated_encodings(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(_ENCODINGS)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        how = draw(st.sampled_from(["insert", "replace", "delete", "truncate"]))
        if how == "insert":
            data[at:at] = draw(_fragments)
        elif how == "replace":
            data[at:at + 1] = bytes([draw(st.integers(0, 255))])
        elif how == "delete":
            del data[at:at + draw(st.integers(1, 4))]
        else:
            del data[at:]
    return bytes(data)


@FUZZ
@given(data=_mutated_encodings())
def test_bencode_decoder_survives_mutated_encodings(data: bytes) -> None:
    _assert_bencode_outcome(data)


# -- Kamailio's RPC replies ------------------------------------------------------------------------

_replies = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0"]) | _scalars,
        "result": json_values,
        "error": _scalars | st.fixed_dictionaries({}, optional={"code": _scalars, "message": _scalars,
                                                                "data": json_values}),
        "id": st.sampled_from([1, "1", 1.0, True, None]) | _scalars,
    },
)


@FUZZ
@given(raw=st.binary(max_size=200) | json_values.map(dumps) | _replies.map(dumps))
def test_kamailio_reply_parser_raises_only_json_rpc_errors(raw: bytes) -> None:
    try:
        parse_response(raw, 1)
    except JsonRpcError as exc:
        assert isinstance(exc.code, int)
        assert isinstance(exc.message, str)
