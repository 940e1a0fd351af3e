"""In-memory stand-ins for what Kamailio's Python talks to: KSR.pv and a redis-py client."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.config import load_config
from controller.proxy.handler import KamailioRouting, ProxySettings
from controller.proxy.records import RecordLimits
from controller.publish import publication
from controller.wire import LEG_HEADER, ROUTES_CURRENT_KEY, ROUTES_KEY

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "example.yaml"
CONFIG = load_config(EXAMPLE)
PUBLISHED = publication(CONFIG)
LIMITS = RecordLimits(max_call_s=3600, ttl_after_end_s=30)
SETTINGS = ProxySettings("127.0.0.1", 6379, 0, "secret", LIMITS)

# what Kamailio knows of a client calling the DID of extension 100 from the example's trunk
INVITE_PV: dict[str, Any] = {
    "$ci": "call-1", "$ft": "ft-1", "$si": "127.0.0.2", "$sp": 5060, "$fU": "+79161112233", "$fd": "127.0.0.2",
    "$rU": "+74951110000", "$rd": "127.0.0.1", "$avp(xpeer)": "trunk",
}
LEG_HEADER_PV = f"$hdr({LEG_HEADER})"


class FakePv:
    """KSR.pv: get() is None for a pseudo-variable that is not set."""

    def __init__(self, values: dict[str, Any] | None = None) -> None:
        self.values: dict[str, Any] = dict(values or {})
        self.set: dict[str, str] = {}

    def get(self, name: str) -> Any:
        return self.values.get(name)

    def sets(self, name: str, value: str) -> None:
        assert isinstance(value, str)
        self.values[name] = self.set[name] = value

    def seti(self, name: str, value: int) -> None:
        assert isinstance(value, int)
        self.values[name] = value
        self.set[name] = str(value)


class FakeRedis:
    """The few redis-py calls ProxyRecords and TableCache make, in memory; replies are bytes, as redis-py's."""

    def __init__(self) -> None:
        self.strings: dict[str, bytes] = {}
        self.hashes: dict[str, dict[str, str]] = {}
        self.streams: dict[str, list[dict[str, Any]]] = {}
        self.ttls: dict[str, int] = {}
        self.writes = 0
        self.commands = 0  # every call that would reach Redis, failed or not
        self.fail_reads = self.fail_writes = False

    def _read(self) -> None:
        self.commands += 1
        if self.fail_reads:
            raise ConnectionError("Redis is away")

    def _write(self) -> None:
        if self.fail_writes:
            raise ConnectionError("Redis is away")
        self.writes += 1

    def get(self, key: str) -> bytes | None:
        self._read()
        return self.strings.get(key)

    def hgetall(self, key: str) -> dict[bytes, bytes]:
        self._read()
        return {k.encode(): v.encode() for k, v in self.hashes.get(key, {}).items()}

    def hmget(self, key: str, names: list[str]) -> list[bytes | None]:
        self._read()
        stored = self.hashes.get(key, {})
        return [stored[name].encode() if name in stored else None for name in names]

    def set(self, key: str, value: Any, ex: int | None = None) -> None:
        self._write()
        self.strings[key] = str(value).encode()
        if ex is not None:
            self.ttls[key] = ex

    def hset(self, key: str, mapping: dict[str, Any]) -> None:
        self._write()
        self.hashes.setdefault(key, {}).update({k: str(v) for k, v in mapping.items()})

    def expire(self, key: str, seconds: int) -> None:
        self._write()
        self.ttls[key] = seconds

    def xadd(self, stream: str, fields: dict[str, Any], **trim: Any) -> None:
        self._write()
        self.streams.setdefault(stream, []).append({k: str(v) for k, v in fields.items()})

    def xtrim(self, stream: str, **trim: Any) -> None:
        self._write()

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)

    # set up by the tests, not by the code under test
    def publish(self, version: str = PUBLISHED.version, table: str = PUBLISHED.table) -> None:
        self.strings[ROUTES_KEY.format(version)] = table.encode()
        self.strings[ROUTES_CURRENT_KEY] = version.encode()


class FakePipeline:
    """Queued calls run on execute(): all of them, or (Redis away) none."""

    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis
        self.queued: list[Callable[[], Any]] = []

    def __getattr__(self, name: str) -> Callable[..., FakePipeline]:
        method = getattr(self.redis, name)

        def queue(*args: Any, **kwargs: Any) -> FakePipeline:
            self.queued.append(lambda: method(*args, **kwargs))
            return self

        return queue

    def execute(self) -> list[Any]:
        self.redis.commands += 1
        if self.redis.fail_writes:
            raise ConnectionError("Redis is away")
        return [call() for call in self.queued]


class Clock:
    def __init__(self, now_ms: int = 1_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def make_routing(redis: FakeRedis, pv: FakePv | None = None, clock: Clock | None = None,
                 features: set[str] | frozenset[str] = frozenset()) -> KamailioRouting:
    """`features`: the Call-IDs the controller marked (Kamailio's htable feat:<call-id>)."""
    ids = (f"conv-{n}" for n in itertools.count(1))
    return KamailioRouting(SETTINGS, pv or FakePv(), redis_factory=lambda settings: redis,
                           clock=clock or Clock(), new_id=lambda: next(ids), has_feature=features.__contains__)
