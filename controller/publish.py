"""What the controller publishes for Kamailio to apply on its own: the registrar directory and the routing
table, both compiled from the one configuration.

Kamailio checks every REGISTER and phone INVITE against the directory (user@domain -> HA1, never a
password) and routes every new call from the table of the current version; see kamailio/xfer_routing.py.
A publication is one MULTI/EXEC: the directory is replaced whole, the new table is written before the
version pointer moves to it, and the table it replaces expires a little later (calls that started with
it have read it by then). Publishing the same configuration twice changes nothing (the version is the
table's content hash). The local stack publishes before Kamailio starts, the controller at start-up
and `xferctl publish` after a configuration change: no restart of Kamailio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.config import Config
from controller.credentials import ha1
from controller.routing.compiler import compile_routes, encoded, version_of
from controller.wire import REGISTRAR_KEY, ROUTES_CURRENT_KEY, ROUTES_KEY

__all__ = ["OLD_TABLE_TTL_S", "Publication", "publication", "registrar_entries"]

#: How long a replaced routing table stays readable (a Kamailio worker that read the old version pointer
#: just before the switch still finds its table).
OLD_TABLE_TTL_S = 600


def registrar_entries(config: Config) -> dict[str, str]:
    """user@domain -> HA1 of its digest password for every configured extension ('' = no
    authentication: only a lab node's extensions without a password). No password is ever stored."""
    entries = {}
    for tenant in config.tenants.values():
        for number, ext in tenant.extensions.items():
            entries[f"{number}@{tenant.domain}"] = ha1(number, tenant.domain, ext.password) if ext.password else ""
    return entries


@dataclass(frozen=True)
class Publication:
    registrar: dict[str, str]
    version: str
    table: str

    def queue(self, pipe: Any, previous: str | None) -> None:
        """Queue the writes on a MULTI pipeline (redis-py, sync or asyncio: the same calls)."""
        tmp = REGISTRAR_KEY + ":new"
        pipe.delete(tmp)
        if self.registrar:
            pipe.hset(tmp, mapping=self.registrar)
            pipe.rename(tmp, REGISTRAR_KEY)
        else:
            pipe.delete(REGISTRAR_KEY)
        pipe.set(ROUTES_KEY.format(self.version), self.table)  # no expiry: the current table stays
        pipe.set(ROUTES_CURRENT_KEY, self.version)
        if previous and previous != self.version:
            pipe.expire(ROUTES_KEY.format(previous), OLD_TABLE_TTL_S)

    def publish_sync(self, redis: Any) -> None:
        previous = _text(redis.get(ROUTES_CURRENT_KEY))
        pipe = redis.pipeline(transaction=True)
        self.queue(pipe, previous)
        pipe.execute()

    async def publish(self, redis: Any) -> None:
        previous = _text(await redis.get(ROUTES_CURRENT_KEY))
        async with redis.pipeline(transaction=True) as pipe:
            self.queue(pipe, previous)
            await pipe.execute()


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def publication(config: Config) -> Publication:
    text = encoded(compile_routes(config))
    return Publication(registrar_entries(config), version_of(text), text)
