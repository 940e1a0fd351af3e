"""Kamailio's Python (app_python3, the system python3): loaded by kamailio.cfg, it routes every new call
from the published routing table and keeps the call records; the logic is controller.proxy.handler.

The controller package and redis-py come from PYTHONPATH, and the settings file (Redis, record TTLs)
from $XFER_PROXY_SETTINGS: the local stack and the Ansible role set both.
"""

import KSR

from controller.proxy.handler import KamailioRouting
from controller.wire import FEATURE_PREFIX, HTABLE


def has_feature(call_id: str) -> bool:
    return KSR.htable.sht_get(HTABLE, FEATURE_PREFIX + call_id) is not None


class Handler:
    def __init__(self) -> None:
        self.routing = KamailioRouting.from_environment(KSR.pv, has_feature)

    def child_init(self, rank: int) -> int:
        return 0  # connections are made per worker on first use, after the fork

    def route_invite(self, msg) -> int:
        return self.routing.route_invite(msg)

    def refer(self, msg) -> int:
        return self.routing.refer(msg)

    def phone_hold(self, msg, hold: str) -> int:
        return self.routing.phone_hold(msg, hold)

    def far_end(self, msg, transfer_id: str) -> int:
        return self.routing.far_end(msg, transfer_id)

    def call_event(self, msg, method: str) -> int:
        return self.routing.call_event(msg, method)


def mod_init() -> Handler:
    return Handler()
