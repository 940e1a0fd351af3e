"""Bencode codec: known vectors, strict rejection of bad input (but what rtpengine sends), and a round-trip property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.codecs.bencode import MAX_DEPTH, decode, encode
from controller.errors import BencodeError


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (0, b"i0e"),
        (-42, b"i-42e"),
        (2**70, b"i1180591620717411303424e"),
        (True, b"i1e"),
        (False, b"i0e"),
        ("", b"0:"),
        ("spam", b"4:spam"),
        ("é", b"2:\xc3\xa9"),
        (b"\xff\x00", b"2:\xff\x00"),
        ([], b"le"),
        (["a", 1, [b"\xfe"]], b"l1:ai1el1:\xfeee"),
        (("x", "y"), b"l1:x1:ye"),
        ({}, b"de"),
        # keys sorted as raw bytes: "Z" (0x5a) < "a" (0x61) < "é" (0xc3 0xa9)
        ({"é": 1, "a": 2, "Z": 3}, b"d1:Zi3e1:ai2e2:\xc3\xa9i1ee"),
        ({b"b": "x", "a": ["y"]}, b"d1:al1:ye1:b1:xe"),
    ],
)
def test_encode_known_vectors(value: object, wire: bytes) -> None:
    assert encode(value) == wire


def test_encode_ng_offer_like_message() -> None:
    msg = {"command": "offer", "call-id": "c1", "from-tag": "t1", "flags": ["trust-address"]}
    assert encode(msg) == b"d7:call-id2:c17:command5:offer5:flagsl13:trust-addresse8:from-tag2:t1e"


@pytest.mark.parametrize("value", [None, 1.5, {1: "x"}, {"k": None}, object()])
def test_encode_rejects_unsupported_types(value: object) -> None:
    with pytest.raises(TypeError):
        encode(value)


def test_encode_rejects_keys_that_collide_as_bytes() -> None:
    with pytest.raises(BencodeError, match="duplicate"):
        encode({"a": 1, b"a": 2})


def test_encode_rejects_excessive_nesting() -> None:
    value: list[object] = []
    for _ in range(MAX_DEPTH):
        value = [value]
    with pytest.raises(BencodeError, match="nesting"):
        encode(value)


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        (b"i0e", 0),
        (b"i-7e", -7),
        (b"4:spam", "spam"),
        (b"2:\xff\xfe", b"\xff\xfe"),  # not UTF-8: stays bytes
        (b"0:", ""),
        (b"l4:spami3ee", ["spam", 3]),
        # rtpengine does not sort keys: accept any order, keep it
        (b"d6:result2:ok1:ai1ee", {"result": "ok", "a": 1}),
        (b"d2:\xff\xffi1ee", {b"\xff\xff": 1}),
    ],
)
def test_decode_known_vectors(wire: bytes, value: object) -> None:
    decoded = decode(wire)
    assert decoded == value
    assert type(decoded) is type(value)


def test_decode_accepts_bytearray_and_memoryview() -> None:
    assert decode(bytearray(b"i5e")) == 5
    assert decode(memoryview(b"l1:ae")) == ["a"]


def test_decode_rejects_str() -> None:
    with pytest.raises(TypeError):
        decode("i1e")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("wire", "offset", "why"),
    [
        (b"", 0, "empty"),
        (b"i03e", 0, "non-canonical"),
        (b"i-0e", 0, "non-canonical"),
        (b"i-03e", 0, "non-canonical"),
        (b"ie", 0, "invalid integer"),
        (b"i-e", 0, "invalid integer"),
        (b"i1x2e", 0, "invalid integer"),
        (b"i12", 0, "truncated"),
        (b"5:abc", 0, "truncated"),
        (b"03:abc", 0, "non-canonical"),
        (b"3abc", 0, "truncated string length"),
        (b"l1:a", 4, "truncated list"),
        (b"d1:ai1e", 7, "truncated dict"),
        (b"d1:a", 4, "truncated"),
        (b"di1ei2ee", 1, "not a string"),
        (b"dl1:aei1ee", 1, "not a string"),
        (b"i1ei2e", 3, "trailing"),
        (b"4:spam ", 6, "trailing"),
        (b"x", 0, "unexpected byte"),
        (b"l1:ax", 4, "unexpected byte"),
    ],
)
def test_decode_rejects_malformed(wire: bytes, offset: int, why: str) -> None:
    with pytest.raises(BencodeError, match=why) as info:
        decode(wire)
    assert info.value.offset == offset
    assert f"offset {offset}" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("wire", [b"i" + b"1" * 5_000 + b"e", b"i-" + b"1" * 5_000 + b"e", b"9" * 5_000 + b":x"])
def test_decode_rejects_numbers_too_long_for_int(wire: bytes) -> None:
    # int() refuses more than 4300 digits with a plain ValueError: it must surface as a BencodeError
    with pytest.raises(BencodeError, match="too long") as info:
        decode(wire)
    assert info.value.offset == 0
    assert len(str(info.value)) < 100


def test_decode_nesting_limit() -> None:
    assert decode(b"l" * MAX_DEPTH + b"e" * MAX_DEPTH) is not None
    with pytest.raises(BencodeError, match="nesting") as info:
        decode(b"l" * (MAX_DEPTH + 1) + b"e" * (MAX_DEPTH + 1))
    assert info.value.offset == MAX_DEPTH
    # dicts count as well, and hostile depth fails cleanly instead of exhausting the stack
    with pytest.raises(BencodeError, match="nesting"):
        decode(b"d1:a" * (MAX_DEPTH + 1) + b"i0e" + b"e" * (MAX_DEPTH + 1))
    with pytest.raises(BencodeError):
        decode(b"l" * 100_000)


# -- round trip ------------------------------------------------------------------------------------

_scalars = st.integers() | st.text() | st.binary()
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text() | st.binary(), inner, max_size=5),
    max_leaves=30,
)


def _as_decoded(value: object) -> object:
    """What decode() gives back for ``value``: valid UTF-8 bytes become str."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    if isinstance(value, list):
        return [_as_decoded(v) for v in value]
    if isinstance(value, dict):
        return {_as_decoded(k): _as_decoded(v) for k, v in value.items()}
    return value


def _without_colliding_keys(value: object) -> bool:
    if isinstance(value, list):
        return all(_without_colliding_keys(v) for v in value)
    if isinstance(value, dict):
        raw = [k.encode() if isinstance(k, str) else k for k in value]
        return len(set(raw)) == len(raw) and all(_without_colliding_keys(v) for v in value.values())
    return True


@given(_values.filter(_without_colliding_keys))
def test_round_trip(value: object) -> None:
    wire = encode(value)
    decoded = decode(wire)
    assert decoded == _as_decoded(value)
    # decoding then re-encoding is the identity on the wire (canonical form)
    assert encode(decoded) == wire


@given(st.binary(max_size=64))
def test_decode_random_bytes_fails_only_with_bencode_error(data: bytes) -> None:
    try:
        value = decode(data)
    except BencodeError:
        return
    # whatever is accepted survives a re-encode unchanged
    assert decode(encode(value)) == value


def test_a_repeated_key_keeps_its_last_value() -> None:
    # rtpengine 10.5's `query` has listed a tag twice; the reply must still decode
    assert decode(b"d4:tagsd3:abci1e3:xyzi2e3:abci3eee") == {"tags": {"xyz": 2, "abc": 3}}
