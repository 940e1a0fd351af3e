"""Fuzzing every parser of network input: whatever arrives, each fails only in its documented way.

- a new INVITE's facts as Kamailio hands them to its Python (InviteParams.parse): checked params or a
  JSON-RPC INVALID_PARAMS error naming the bad one; KamailioRouting.decide and route_invite on top of
  it: a decision Kamailio can apply (a reject with a SIP code, or a route), never an exception, and
  nothing recorded for bad params;
- rtpengine's DTMF datagrams: a DtmfEvent or ValueError;
- rtpengine's ng replies (bencode): a value or BencodeError, however deep the nesting;
- Kamailio's RPC replies: a result or JsonRpcError (which KamailioRpc turns into KamailioRpcError).

Each test runs 10,000 cases; sizes are kept small so that the whole file runs in under a minute.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.adapters.dtmf import EVENT_DIGITS, DtmfEvent, parse_dtmf_datagram
from controller.codecs.bencode import decode, encode
from controller.codecs.jsonrpc import parse_response
from controller.errors import BencodeError, JsonRpcError
from controller.proxy.handler import KamailioRouting
from controller.proxy.invite import MAX_CALL_ID, MAX_TEXT, ROUTE_PARAMS, InviteParams
from controller.routing.table import normalize_ip
from tests.unit.proxy.fakes import INVITE_PV, LEG_HEADER_PV, FakePv, FakeRedis, make_routing

FUZZ = settings(max_examples=10_000, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

INVALID_PARAMS = -32602
LONGEST_LOG_LINE = 1024

# what Kamailio's Python hands to decide() for a client calling the DID of extension 100
INVITE: dict[str, Any] = {
    "call_id": "call-1", "from_tag": "ft-1", "source_ip": "127.0.0.2", "source_port": 5060,
    "from_user": "+79161112233", "from_domain": "127.0.0.2", "ruri_user": "+74951110000", "ruri_domain": "127.0.0.1",
    "peer": "trunk",
}

# -- strategies ------------------------------------------------------------------------------------

# Small and flat on purpose: hypothesis spends far longer generating big or nested documents than the
# code under test spends on them.
_floats = st.floats(allow_nan=True, allow_infinity=True)
_scalars = st.none() | st.booleans() | st.integers() | _floats | st.text(max_size=8)
json_values = _scalars | st.lists(_scalars, max_size=2) | st.dictionaries(st.text(max_size=4), _scalars, max_size=2)
_NESTED_JUNK = [[[[]]], {"a": {"b": [1, {"c": None}]}}, [{"": []}] * 3, {"call_id": {"call_id": "x"}}]


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


# -- a new INVITE, in Kamailio's Python ------------------------------------------------------------


class LongestLine(logging.Handler):
    """Remembers the longest log message since the last reset: log lines must stay bounded."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.longest = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.longest = max(self.longest, len(record.getMessage()))


@dataclass
class Proxy:
    routing: KamailioRouting
    redis: FakeRedis
    lines: LongestLine

    def decide(self, params: dict[str, Any]) -> tuple[dict[str, Any], str]:
        self.reset()
        result, conversation = self.routing.decide(params)
        self.assert_sound(result, conversation)
        return result, conversation

    def route_invite(self, pv: dict[str, Any]) -> dict[str, Any]:
        self.reset()
        self.routing.pv = values = FakePv(pv)
        assert self.routing.route_invite() == 1
        result = json.loads(values.set["$var(res)"])
        self.assert_sound(result, values.set.get("$dlg_var(conv)", ""))
        return result

    def reset(self) -> None:
        self.redis.hashes.clear()
        self.redis.streams.clear()
        self.redis.strings = {k: v for k, v in self.redis.strings.items() if k not in self.redis.ttls}
        self.redis.ttls.clear()
        self.redis.writes = 0
        self.lines.longest = 0

    def assert_sound(self, result: dict[str, Any], conversation: str) -> None:
        """A decision kamailio.cfg applies: a reject with a SIP error code, or a route with targets."""
        assert self.lines.longest <= LONGEST_LOG_LINE
        json.dumps(result, allow_nan=False)  # what route_invite hands to Kamailio
        if result["action"] == "reject":
            assert isinstance(result["code"], int) and 400 <= result["code"] <= 699
            assert isinstance(result["reason"], str) and isinstance(result["cause"], str)
            assert conversation == ""
        else:
            assert result["action"] == "route"
            assert result["targets"] and conversation

    def assert_bad_request(self, result: dict[str, Any]) -> None:
        assert (result["action"], result["code"]) == ("reject", 400)
        assert self.redis.writes == 0


@pytest.fixture(scope="module")
def proxy() -> Iterator[Proxy]:
    redis, lines = FakeRedis(), LongestLine()
    redis.publish()
    logger = logging.getLogger("xfer.proxy")
    saved = logger.level, logger.propagate
    # every line is formatted (and measured), none goes to pytest's capture: that would cost seconds
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(lines)
    yield Proxy(make_routing(redis), redis, lines)
    logger.removeHandler(lines)
    logger.setLevel(saved[0])
    logger.propagate = saved[1]


_params = (st.dictionaries(st.sampled_from([*INVITE, "xfer_leg", "auth_user"]) | st.text(max_size=4),
                           json_values, max_size=6)
           | st.dictionaries(st.sampled_from([*INVITE, "xfer_leg"]), _scalars, max_size=10).map(
               lambda changes: INVITE | changes))


@FUZZ
@given(params=_params)
def test_any_params_are_checked_and_get_a_decision_kamailio_can_apply(proxy: Proxy, params: dict[str, Any]) -> None:
    try:
        invite = InviteParams.parse(params)
    except JsonRpcError as exc:
        assert exc.code == INVALID_PARAMS
        assert len(exc.message) <= 200
        proxy.assert_bad_request(proxy.decide(params)[0])
        return
    assert len(invite.facts.call_id) <= MAX_CALL_ID and normalize_ip(invite.facts.source_ip) is not None
    assert 0 <= invite.facts.source_port <= 65535
    proxy.decide(params)


# values each param must refuse
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


@FUZZ
@given(bad=_bad_param)
def test_a_bad_param_is_refused_with_400_and_nothing_recorded(proxy: Proxy, bad: tuple[str, Any]) -> None:
    name, value = bad
    params = {k: v for k, v in (INVITE | {name: value}).items() if v is not MISSING}
    with pytest.raises(JsonRpcError) as refused:
        InviteParams.parse(params)
    assert refused.value.code == INVALID_PARAMS
    assert name in refused.value.message and len(refused.value.message) <= 200
    result, _conversation = proxy.decide(params)
    proxy.assert_bad_request(result)


# what KSR.pv.get returns: a string, an integer, or None for a pseudo-variable that is not set
_pv_values = st.none() | st.integers(-(2**31), 2**32) | st.text(max_size=12) | _too_long(MAX_CALL_ID)
_pvs = st.dictionaries(st.sampled_from([*INVITE_PV, "$avp(xauth)", LEG_HEADER_PV]), _pv_values, max_size=4).map(
    lambda changes: INVITE_PV | changes)


@FUZZ
@given(pv=_pvs)
def test_whatever_kamailio_s_pseudo_variables_hold_route_invite_answers(proxy: Proxy, pv: dict[str, Any]) -> None:
    proxy.route_invite(pv)


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


# -- a REFER's Refer-To (controller/proxy/refer.py) --------------------------------------------------

_REFER_PIECES = st.sampled_from(["<", ">", "sip:", "sips:", "tel:", "@", ";", "?", "&", "=", "%3B", "%0D%0A",
                                 "Replaces=", "to-tag%3D", "from-tag%3D", "user=phone", "102", "+49", " ", "\r\n",
                                 "pbx.example", "127.0.0.1", ":5060", "\x00", "é"])


@FUZZ
@given(st.one_of(st.text(max_size=80), st.lists(_REFER_PIECES, max_size=16).map("".join)))
def test_refer_to_parser_gives_a_number_or_bad_refer_to(value: str) -> None:
    from controller.proxy.refer import BadReferTo, parse_refer_to

    try:
        target = parse_refer_to(value)
    except BadReferTo:
        return
    # what reaches the dial policy is a number, and what reaches our INVITE's Replaces header cannot
    # carry a second header or a parameter of its own
    assert target.number.lstrip("+").isdigit() and 2 <= len(target.number) <= 33
    assert not any(c in target.replaces for c in "\r\n ,") and target.replaces.count(";") in (0, 2)
