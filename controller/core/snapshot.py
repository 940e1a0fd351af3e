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
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

__all__ = ["decode", "encode"]

_PRIMITIVES = (str, int, float, bool, type(None))


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def encode(value: Any) -> Any:
    """``value`` as JSON-safe primitives."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, _PRIMITIVES):
        return value
    if hasattr(type(value), "__dataclass_fields__"):
        return {name: encode(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, Mapping):
        return {encode(k): encode(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((encode(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    raise TypeError(f"cannot snapshot {type(value).__name__}: {value!r}")


def decode(tp: Any, data: Any) -> Any:
    """Rebuild a value of type ``tp`` from :func:`encode` output."""
    return _decoder(tp)(data)


Decoder = Callable[[Any], Any]


@cache
def _decoder(tp: Any) -> Decoder:
    """A decoding function for ``tp``, compiled once per type."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return _union_decoder(args)
    if tp is Any:
        return lambda data: data
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass_decoder(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp
    if tp in (str, int, bool, type(None), float):
        return _primitive_decoder(tp)
    if origin in (list, set, frozenset):
        item = _decoder(args[0])
        return lambda data: origin(item(v) for v in data)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])
            return lambda data: tuple(item(v) for v in data)
        items = tuple(_decoder(a) for a in args)

        def decode_tuple(data: Any) -> tuple[Any, ...]:
            if len(items) != len(data):
                raise ValueError(f"expected {len(items)} items, got {data!r}")
            return tuple(d(v) for d, v in zip(items, data, strict=True))

        return decode_tuple
    if origin in (dict, Mapping):
        key, val = _decoder(args[0]), _decoder(args[1])
        return lambda data: {key(k): val(v) for k, v in data.items()}
    raise TypeError(f"cannot decode type {tp!r}")


def _primitive_decoder(tp: type) -> Decoder:
    def decode_primitive(data: Any) -> Any:
        if tp is float:
            ok = isinstance(data, int | float) and not isinstance(data, bool)
        else:
            ok = isinstance(data, tp) and not (tp is int and isinstance(data, bool))
        if not ok:
            raise ValueError(f"expected {tp.__name__}, got {data!r}")
        return data

    return decode_primitive


def _dataclass_decoder(cls: type) -> Decoder:
    plan: list[tuple[str, bool, Decoder]] = []

    def decode_dataclass(data: Any) -> Any:
        if not plan:  # compiled on first use, so that a field may name a type defined later
            hints = typing.get_type_hints(cls)
            plan.extend((f.name, f.init, _decoder(hints[f.name])) for f in dataclasses.fields(cls))
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__}: expected an object, got {data!r}")
        kwargs, late = {}, {}
        for name, init, field_decoder in plan:
            if name in data:  # a field left out takes its default
                (kwargs if init else late)[name] = field_decoder(data[name])
        obj = cls(**kwargs)
        for name, value in late.items():
            object.__setattr__(obj, name, value)
        return obj

    return decode_dataclass


def _union_decoder(options: tuple[Any, ...]) -> Decoder:
    nullable = type(None) in options
    decoders = [_decoder(o) for o in options if o is not type(None)]

    def decode_union(data: Any) -> Any:
        if data is None and nullable:
            return None
        errors = []
        for decoder in decoders:
            try:
                return decoder(data)
            except (ValueError, TypeError) as exc:
                errors.append(str(exc))
        raise ValueError(f"{data!r} matches none of {options}: {errors}")

    return decode_union
