"""Bencode, the serialisation used by rtpengine's ng control protocol.

``decode`` is strict: input comes from the network, so anything a canonical encoder would not
produce (leading zeros, "-0", trailing bytes, non-string keys) is rejected rather than guessed at.
Two leniencies, both for what rtpengine 10.5 really sends: dict keys need not be sorted (it emits them
in insertion order), and a repeated key keeps its last value (its `query` reply has listed one tag twice,
seen under load when a transfer re-paired a party whose hang-up had just been processed; rejecting the
whole reply would fail every later media command on that call).
"""

from __future__ import annotations

from collections.abc import Mapping

from controller.errors import BencodeError

__all__ = ["MAX_DEPTH", "decode", "encode"]

# Deep enough for any ng message, shallow enough that hostile input cannot exhaust the stack.
MAX_DEPTH = 64

_DIGITS = frozenset(b"0123456789")


def encode(obj: object) -> bytes:
    """Encode int, bool (as int), str (UTF-8), bytes, list/tuple and dict (str/bytes keys)."""
    out: list[bytes] = []
    _encode(obj, out, 0)
    return b"".join(out)


def _encode(obj: object, out: list[bytes], depth: int) -> None:
    if isinstance(obj, bytes | bytearray | memoryview):
        raw = bytes(obj)
        out.append(b"%d:%b" % (len(raw), raw))
    elif isinstance(obj, str):
        raw = obj.encode("utf-8")
        out.append(b"%d:%b" % (len(raw), raw))
    elif isinstance(obj, int):  # bool is an int: True -> i1e
        out.append(b"i%de" % int(obj))
    elif isinstance(obj, list | tuple):
        _check_depth(depth)
        out.append(b"l")
        for item in obj:
            _encode(item, out, depth + 1)
        out.append(b"e")
    elif isinstance(obj, Mapping):
        _check_depth(depth)
        items = sorted(((_key_bytes(k), v) for k, v in obj.items()), key=lambda kv: kv[0])
        out.append(b"d")
        previous = None
        for key, value in items:
            if key == previous:  # e.g. "a" and b"a" in the same dict
                raise BencodeError(f"duplicate dict key {key!r} after encoding")
            previous = key
            out.append(b"%d:%b" % (len(key), key))
            _encode(value, out, depth + 1)
        out.append(b"e")
    else:
        raise TypeError(f"cannot bencode {type(obj).__name__}")


def _key_bytes(key: object) -> bytes:
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, bytes):
        return key
    raise TypeError(f"bencode dict keys must be str or bytes, not {type(key).__name__}")


def _check_depth(depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise BencodeError(f"nesting deeper than {MAX_DEPTH}")


def decode(data: bytes) -> object:
    """Decode one complete bencoded value.

    Byte strings become ``str`` when they are valid UTF-8 and stay ``bytes`` otherwise.
    Raises BencodeError (a ValueError) with the offset of the problem.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"decode() needs bytes, not {type(data).__name__}")
    buf = bytes(data)
    if not buf:
        raise BencodeError("empty input", 0)
    value, end = _Decoder(buf).value(0, 0)
    if end != len(buf):
        raise BencodeError("trailing data", end)
    return value


class _Decoder:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf

    def value(self, pos: int, depth: int) -> tuple[object, int]:
        buf = self.buf
        if pos >= len(buf):
            raise BencodeError("truncated input", pos)
        lead = buf[pos]
        if lead == 0x69:  # i
            return self.integer(pos)
        if lead in _DIGITS:
            return self.string(pos)
        if lead == 0x6C:  # l
            return self.list(pos, depth)
        if lead == 0x64:  # d
            return self.dict(pos, depth)
        raise BencodeError(f"unexpected byte {bytes([lead])!r}", pos)

    def integer(self, pos: int) -> tuple[int, int]:
        end = self.buf.find(b"e", pos + 1)
        if end < 0:
            raise BencodeError("truncated integer", pos)
        text = self.buf[pos + 1 : end]
        digits = text[1:] if text.startswith(b"-") else text
        if not digits or not all(c in _DIGITS for c in digits):
            raise BencodeError(f"invalid integer {text[:32]!r}", pos)
        if digits[0] == 0x30 and (len(digits) > 1 or text.startswith(b"-")):
            raise BencodeError(f"non-canonical integer {text[:32]!r}", pos)
        return _int(text, pos), end + 1

    def raw_string(self, pos: int) -> tuple[bytes, int]:
        colon = self.buf.find(b":", pos)
        if colon < 0:
            raise BencodeError("truncated string length", pos)
        length_text = self.buf[pos:colon]
        if not length_text or not all(c in _DIGITS for c in length_text):
            raise BencodeError(f"invalid string length {length_text[:32]!r}", pos)
        if length_text[0] == 0x30 and len(length_text) > 1:
            raise BencodeError(f"non-canonical string length {length_text[:32]!r}", pos)
        start = colon + 1
        end = start + _int(length_text, pos)
        if end > len(self.buf):
            raise BencodeError("truncated string", pos)
        return self.buf[start:end], end

    def string(self, pos: int) -> tuple[str | bytes, int]:
        raw, end = self.raw_string(pos)
        return _text_or_bytes(raw), end

    def list(self, pos: int, depth: int) -> tuple[list[object], int]:
        _check_decode_depth(depth, pos)
        items: list[object] = []
        pos += 1
        while True:
            if pos >= len(self.buf):
                raise BencodeError("truncated list", pos)
            if self.buf[pos] == 0x65:  # e
                return items, pos + 1
            item, pos = self.value(pos, depth + 1)
            items.append(item)

    def dict(self, pos: int, depth: int) -> tuple[dict[str | bytes, object], int]:
        _check_decode_depth(depth, pos)
        result: dict[str | bytes, object] = {}
        pos += 1
        while True:
            if pos >= len(self.buf):
                raise BencodeError("truncated dict", pos)
            if self.buf[pos] == 0x65:  # e
                return result, pos + 1
            if self.buf[pos] not in _DIGITS:
                raise BencodeError("dict key is not a string", pos)
            raw_key, value_pos = self.raw_string(pos)
            key = _text_or_bytes(raw_key)
            result.pop(key, None)  # a repeated key: the last value wins, in its own position
            result[key], pos = self.value(value_pos, depth + 1)


def _int(digits: bytes, pos: int) -> int:
    # int() refuses more than sys.get_int_max_str_digits() digits (4300) with a plain ValueError
    try:
        return int(digits)
    except ValueError:
        raise BencodeError(f"number too long ({len(digits)} characters)", pos) from None


def _check_decode_depth(depth: int, pos: int) -> None:
    if depth >= MAX_DEPTH:
        raise BencodeError(f"nesting deeper than {MAX_DEPTH}", pos)


def _text_or_bytes(raw: bytes) -> str | bytes:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
