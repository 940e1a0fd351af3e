"""One codec for every snapshot: core dataclasses to JSON-safe primitives and back, by type hints.

:func:`encode` turns a dataclass (recursively: enums, tuples, lists, sets,
frozensets, dicts with string or enum keys, ``X | None`` and unions of enums)
into dicts, lists, str, int, float, bool and None.  :func:`decode` rebuilds a
value of a given type from that, guided by the dataclass' type hints and
calling its constructor (so its validation runs again).  Sets are written
sorted, so equal values encode equally.  There is no per-class code: a field
added to a dataclass is in the snapshot at once.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any

__all__ = ["decode", "encode"]

_PRIMITIVES = (str, int, float, bool, type(None))


def encode(value: Any) -> Any:
    """``value`` as JSON-safe primitives."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, _PRIMITIVES):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {encode(k): encode(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((encode(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    raise TypeError(f"cannot snapshot {type(value).__name__}: {value!r}")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode(tp: Any, data: Any) -> Any:
    """Rebuild a value of type ``tp`` from :func:`encode` output."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return _decode_union(typing.get_args(tp), data)
    if tp is Any:
        return data
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(data, Mapping):
            raise ValueError(f"{tp.__name__}: expected an object, got {data!r}")
        hints = _hints(tp)
        kwargs, late = {}, {}
        for f in dataclasses.fields(tp):
            if f.name not in data:
                continue  # the field's default applies
            value = decode(hints[f.name], data[f.name])
            (kwargs if f.init else late)[f.name] = value
        obj = tp(**kwargs)
        for name, value in late.items():
            object.__setattr__(obj, name, value)
        return obj
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(data)
    if tp in (str, int, bool, type(None)):
        if not isinstance(data, tp) or (tp is int and isinstance(data, bool)):
            raise ValueError(f"expected {tp.__name__}, got {data!r}")
        return data
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise ValueError(f"expected a number, got {data!r}")
        return data
    args = typing.get_args(tp)
    if origin in (list, set, frozenset):
        (item,) = args
        return origin(decode(item, v) for v in data)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], v) for v in data)
        if len(args) != len(data):
            raise ValueError(f"expected {len(args)} items, got {data!r}")
        return tuple(decode(a, v) for a, v in zip(args, data, strict=True))
    if origin in (dict, Mapping):
        key, val = args
        return {decode(key, k): decode(val, v) for k, v in data.items()}
    raise TypeError(f"cannot decode type {tp!r}")


def _decode_union(options: tuple[Any, ...], data: Any) -> Any:
    if data is None and type(None) in options:
        return None
    errors = []
    for option in options:
        if option is type(None):
            continue
        try:
            return decode(option, data)
        except (ValueError, TypeError) as exc:
            errors.append(str(exc))
    raise ValueError(f"{data!r} matches none of {options}: {errors}")
