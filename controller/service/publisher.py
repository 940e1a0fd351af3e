"""Keeps what Kamailio applies on its own in Redis: the registrar directory and the routing table.

The controller publishes them at start-up. A Redis that restarts without its data (no persistence, a
replaced instance) would leave Kamailio without a directory (every REGISTER refused) and, for a
restarted Kamailio, without a routing table (every call refused). So every few seconds the keeper looks
whether either is gone, and publishes again at once; a table someone else published since
(`xferctl publish` of a newer configuration) is theirs to keep and is never overwritten.
"""

from __future__ import annotations

import logging
from typing import Any

from controller.metrics import Metrics
from controller.publish import Publication
from controller.tasks import PeriodicCheck
from controller.wire import REGISTRAR_KEY, ROUTES_CURRENT_KEY

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 2.0


class PublicationKeeper(PeriodicCheck):
    task_name = "publication"

    def __init__(self, redis: Any, publication: Publication, metrics: Metrics, interval_s: float = CHECK_INTERVAL_S):
        self.redis = redis
        self.publication = publication
        self.metrics = metrics
        self.interval_s = interval_s

    async def missing(self) -> bool:
        """Whether Redis lost the table pointer or the directory (a directory may rightly be empty only
        when no tenant has an extension)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(ROUTES_CURRENT_KEY)
        pipe.exists(REGISTRAR_KEY)
        has_table, has_registrar = await pipe.execute()
        return not has_table or (bool(self.publication.registrar) and not has_registrar)

    async def check(self) -> bool:
        """Publish again if Redis lost it; True when it did."""
        if not await self.missing():
            return False
        await self.publication.publish(self.redis)
        self.metrics.errors.labels("republished").inc()
        log.warning("Redis had lost the routing table or the registrar directory: published them again")
        return True

    def check_failed(self, exc: Exception) -> None:
        self.metrics.errors.labels("redis").inc()
        log.warning("could not check the publication in Redis: %s", exc)
