"""Kamailio's JSON-RPC callbacks: the one routing question per call.

`route.invite` turns Kamailio's facts about a new INVITE into a routing decision (pure, in
controller.routing) and records the new conversation in Redis. Bookkeeping failures never block a
call: if Redis is away, the call is still routed and the failure is logged and counted.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from controller.codecs.jsonrpc import (
    JsonRpcError,
    Notification,
    error_response,
    parse_message,
    result_response,
)
from controller.config import Config
from controller.logs import call_logger
from controller.metrics import Metrics
from controller.routing import InviteFacts, RouteRejection, decide_route
from controller.store import ConversationStore, now_ms

log = logging.getLogger(__name__)

ROUTE_PARAMS = ("call_id", "source_ip", "source_port", "from_user", "from_domain", "ruri_user", "ruri_domain")


class Callbacks:
    def __init__(self, config: Config, store: ConversationStore, metrics: Metrics):
        self.config = config
        self.store = store
        self.metrics = metrics
        self.methods: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "route.invite": self.route_invite,
        }

    async def handle(self, raw: bytes) -> dict[str, Any] | None:
        """One JSON-RPC message in, one response out (None for a notification)."""
        started = time.perf_counter()
        method = "?"
        try:
            message = parse_message(raw)
            method = message.method
            handler = self.methods.get(method)
            if handler is None:
                raise JsonRpcError(JsonRpcError.METHOD_NOT_FOUND, f"unknown method {method!r}")
            if not isinstance(message.params, dict):
                raise JsonRpcError(JsonRpcError.INVALID_PARAMS, "params must be an object")
            result = await handler(message.params)
            self.metrics.callbacks.labels(method, "ok").inc()
            return None if isinstance(message, Notification) else result_response(message.id, result)
        except JsonRpcError as exc:
            self.metrics.callbacks.labels(method if method in self.methods else "?", "error").inc()
            log.warning("bad callback %s: %s (%.200r)", method, exc.message, raw)
            return error_response(getattr(exc, "id", None), exc)
        finally:
            self.metrics.callback_seconds.labels(method if method in self.methods else "?").observe(
                time.perf_counter() - started)

    async def route_invite(self, params: dict[str, Any]) -> dict[str, Any]:
        missing = [name for name in ROUTE_PARAMS if name not in params]
        if missing:
            raise JsonRpcError(JsonRpcError.INVALID_PARAMS, f"missing params: {', '.join(missing)}")
        if params.get("xfer_leg"):
            return await self.route_transfer_leg(str(params["xfer_leg"]), str(params["call_id"]))
        try:
            facts = InviteFacts(
                call_id=str(params["call_id"]), source_ip=str(params["source_ip"]),
                source_port=int(params["source_port"]), from_user=str(params["from_user"]),
                from_domain=str(params["from_domain"]), ruri_user=str(params["ruri_user"]),
                ruri_domain=str(params["ruri_domain"]), conversation_id=uuid.uuid4().hex,
            )
        except (TypeError, ValueError) as exc:
            raise JsonRpcError(JsonRpcError.INVALID_PARAMS, f"bad params: {exc}") from exc

        decision = decide_route(self.config, facts)
        clog = call_logger(log, facts.conversation_id)
        if isinstance(decision, RouteRejection):
            clog.info("rejecting %s from %s:%s to %s: %s", facts.call_id, facts.source_ip, facts.source_port,
                      facts.ruri_user, decision.cause)
            self.metrics.calls.labels("unknown", f"rejected_{decision.code}").inc()
            await self._record(self.store.append_event("call.rejected", facts.conversation_id, {
                "call_id": facts.call_id, "code": decision.code, "reason": decision.reason,
                "cause": decision.cause, "from": facts.from_user, "to": facts.ruri_user,
                "source": f"{facts.source_ip}:{facts.source_port}"}))
            return decision.to_jsonrpc_result()

        clog.info("routing %s call %s from %s to %s via %s", decision.direction, facts.call_id,
                  facts.from_user, facts.ruri_user, decision.origin)
        self.metrics.calls.labels(decision.direction, "routed").inc()
        await self._record(self.store.create_conversation(decision.conversation_id, facts.call_id, {
            "tenant": decision.tenant_id, "direction": decision.direction, "client_number": decision.client_number,
            "employee": decision.employee, "did": decision.did, "origin": decision.origin,
            "from_tag": params.get("from_tag", ""), "from": facts.from_user, "to": facts.ruri_user,
            "targets": [t.uri for t in decision.targets], "created_ms": now_ms(),
        }))
        return decision.to_jsonrpc_result()

    async def route_transfer_leg(self, leg_id: str, call_id: str) -> dict[str, Any]:
        """The INVITE of a leg the controller originated (through Kamailio): its targets were resolved
        when the transfer was requested, so this is a lookup, not a decision."""
        leg = await self.store.get_leg(leg_id)
        if leg is None or leg["call_id"] != call_id:
            self.metrics.calls.labels("transfer", "rejected_unknown_leg").inc()
            log.warning("INVITE for unknown transfer leg %s (call %s) refused", leg_id, call_id)
            return RouteRejection(404, "Not Found", "unknown_transfer_leg").to_jsonrpc_result()
        return {"action": "route", "conversation": leg["conversation"], "tenant": "", "direction": "transfer",
                "targets": leg["targets"], "from_user": "", "origin": f"transfer-leg:{leg_id}",
                "ring_timeout_ms": int(leg.get("ring_timeout_ms") or 0)}

    async def _record(self, write: Awaitable[None]) -> None:
        # Redis away must not cost the caller the call: route anyway, count and log loudly
        try:
            await write
        except Exception:
            self.metrics.errors.labels("redis").inc()
            log.exception("could not record a routing decision in Redis; the call is routed anyway")
