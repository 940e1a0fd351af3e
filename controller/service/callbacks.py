"""Kamailio's JSON-RPC callbacks: the one routing question per call.

`route.invite` turns Kamailio's facts about a new INVITE into a routing decision (pure, in
controller.routing.decision) and records the new conversation in Redis. Bookkeeping failures never block a
call: if Redis is away, the call is still routed and the failure is logged and counted.

Bad input is answered with a JSON-RPC error, never an exception: the params are checked strictly
(bounded strings, an IP address, a port number), and what a peer sends is cut short before it goes
into a log line or into Redis.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from controller.adapters.redis_store import ConversationStore, now_ms
from controller.codecs.jsonrpc import (
    Id,
    JsonRpcError,
    Notification,
    Request,
    error_response,
    int_param,
    invalid_param,
    parse_message,
    result_response,
    str_param,
)
from controller.config import Config
from controller.logs import call_logger
from controller.metrics import Metrics
from controller.routing.compiler import compile_routes
from controller.routing.decision import InviteFacts, RouteRejection, decide_route
from controller.routing.table import normalize_ip
from controller.service.budget import PerSourceBudget

log = logging.getLogger(__name__)

ROUTE_PARAMS = ("call_id", "source_ip", "source_port", "from_user", "from_domain", "ruri_user", "ruri_domain")

# SIP sets no bounds, but nothing longer is a call we route, and every value ends up in logs or Redis.
MAX_CALL_ID = 256
MAX_TEXT = 128


def clip(value: str, limit: int = MAX_TEXT) -> str:
    """``value`` cut to ``limit`` characters: what a peer sends must not grow a log line or a Redis entry."""
    return value[:limit]


@dataclass(frozen=True, slots=True)
class InviteParams:
    """route.invite's params, checked: bounded strings, an IP address, a port number. The routing facts
    are `facts` (its conversation id is given when the call is routed); the rest is bookkeeping."""

    facts: InviteFacts
    from_tag: str
    xfer_leg: str  # "" unless the INVITE is of a leg the controller originated

    @classmethod
    def parse(cls, params: dict[str, Any]) -> InviteParams:
        """Raises INVALID_PARAMS naming the first bad parameter."""
        missing = [name for name in ROUTE_PARAMS if name not in params]
        if missing:
            raise JsonRpcError(JsonRpcError.INVALID_PARAMS, f"missing params: {', '.join(missing)}")
        text = partial(str_param, params, max_len=MAX_TEXT)
        call_id = str_param(params, "call_id", max_len=MAX_CALL_ID)
        source_ip = text("source_ip")
        if normalize_ip(source_ip) is None:
            raise invalid_param("source_ip", "must be an IP address")
        facts = InviteFacts(
            call_id=call_id, source_ip=source_ip, source_port=int_param(params, "source_port", low=0, high=65535),
            from_user=text("from_user"), from_domain=text("from_domain"),
            ruri_user=text("ruri_user"), ruri_domain=text("ruri_domain"), conversation_id="",
            # who Kamailio says sent it: "trunk", "phone" (authenticated as auth_user) or "node"
            peer=text("peer", default=""), auth_user=text("auth_user", default=""),
        )
        return cls(facts, from_tag=text("from_tag", default=""), xfer_leg=text("xfer_leg", default=""))


class Callbacks:
    def __init__(self, config: Config, store: ConversationStore, metrics: Metrics):
        self.config = config
        self.routes = compile_routes(config)
        self.store = store
        self.metrics = metrics
        self.rejections = PerSourceBudget()  # records of rejected INVITEs per source (20 per 10 s)
        self.methods: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "route.invite": self.route_invite,
        }

    async def handle(self, raw: bytes) -> dict[str, Any] | None:
        """One JSON-RPC message in, one response out (None for a notification).

        Bad input is answered, never raised: a JSON-RPC error says what is wrong with it.
        """
        started = time.perf_counter()
        label = "?"  # for metrics and logs: a method we serve, never a name the peer made up
        reply_id: Id = None
        try:
            message = parse_message(raw)
            reply_id = message.id if isinstance(message, Request) else None
            handler = self.methods.get(message.method)
            if handler is None:
                raise JsonRpcError(JsonRpcError.METHOD_NOT_FOUND, f"unknown method {clip(message.method)!r}")
            label = message.method
            if not isinstance(message.params, dict):
                raise JsonRpcError(JsonRpcError.INVALID_PARAMS, "params must be an object")
            result = await handler(message.params)
            self.metrics.callbacks.labels(label, "ok").inc()
            return None if isinstance(message, Notification) else result_response(reply_id, result)
        except JsonRpcError as exc:
            self.metrics.callbacks.labels(label, "error").inc()
            log.warning("bad callback %s: %s (%.200r)", label, exc.message, raw)
            # a parse error carries what id could be read; any later error answers the request's id
            return error_response(exc.id if reply_id is None else reply_id, exc)
        finally:
            self.metrics.callback_seconds.labels(label).observe(time.perf_counter() - started)

    async def route_invite(self, params: dict[str, Any]) -> dict[str, Any]:
        invite = InviteParams.parse(params)
        if invite.xfer_leg:
            if invite.facts.peer != "node":
                raise invalid_param("xfer_leg", "only from the node itself")
            return await self.route_transfer_leg(invite.xfer_leg, invite.facts.call_id)
        facts = replace(invite.facts, conversation_id=uuid.uuid4().hex)
        call_id, from_user, ruri_user = clip(facts.call_id, MAX_CALL_ID), clip(facts.from_user), clip(facts.ruri_user)

        decision = decide_route(self.routes, facts)
        clog = call_logger(log, facts.conversation_id)
        if isinstance(decision, RouteRejection):
            source = f"{clip(facts.source_ip)}:{facts.source_port}"
            clog.info("rejecting %s from %s to %s: %s", call_id, source, ruri_user, decision.cause)
            self.metrics.calls.labels("unknown", f"rejected_{decision.code}").inc()
            if not self.rejections.allow(facts.source_ip):
                # a flood from one source is counted, not written: it cannot grow the event log
                self.metrics.errors.labels("rejection_not_recorded").inc()
                return decision.to_jsonrpc_result()
            await self._record(self.store.append_event("call.rejected", facts.conversation_id, {
                "call_id": call_id, "code": decision.code, "reason": decision.reason,
                "cause": decision.cause, "from": from_user, "to": ruri_user, "source": source}))
            return decision.to_jsonrpc_result()

        clog.info("routing %s call %s from %s to %s via %s", decision.direction, call_id,
                  from_user, ruri_user, decision.origin)
        self.metrics.calls.labels(decision.direction, "routed").inc()
        await self._record(self.store.create_conversation(decision.conversation_id, call_id, {
            "tenant": decision.tenant_id, "direction": decision.direction,
            # the caller's number (from_user) or none: stored as "" either way
            "client_number": clip(decision.client_number or ""),
            "employee": decision.employee, "did": decision.did, "origin": decision.origin,
            "from_tag": clip(invite.from_tag), "from": from_user, "to": ruri_user,
            "targets": [t.uri for t in decision.targets], "created_ms": now_ms(),
        }))
        return decision.to_jsonrpc_result()

    async def route_transfer_leg(self, leg_id: str, call_id: str) -> dict[str, Any]:
        """The INVITE of a leg the controller originated (through Kamailio): its targets were resolved
        when the transfer was requested, so this is a lookup, not a decision."""
        leg = await self.store.get_leg(leg_id)
        if leg is None or leg["call_id"] != call_id:
            self.metrics.calls.labels("transfer", "rejected_unknown_leg").inc()
            log.warning("INVITE for unknown transfer leg %s (call %s) refused", clip(leg_id),
                        clip(call_id, MAX_CALL_ID))
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
