"""Kamailio's notifications for the transfer engine (a Redis stream of JSON-RPC 2.0 notifications).

Kamailio appends `call.answered`, `call.failed`, `call.ended`, `call.rejected`, `leg.ringing` and
`leg.hungup` for the legs the controller originates and for calls whose state machine runs (it keeps
every call's own record and event log itself, controller/proxy). This consumer reads them through a
consumer group, so a controller that was down or restarted picks up exactly where it left off, and a
second replica shares the work. A notification is acknowledged only after it has been applied; a
malformed one is logged, counted and dropped so it cannot block the stream.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from controller.adapters.redis_store import ConversationStore
from controller.codecs.jsonrpc import JsonRpcError, Notification, parse_message
from controller.engine.engine import TransferEngine
from controller.metrics import Metrics
from controller.tasks import BackgroundLoop

log = logging.getLogger(__name__)

CLAIM_INTERVAL_S = 30.0
ENDING = ("call.failed", "call.ended", "call.rejected")
# leg.ringing: a leg the controller originated rings; leg.hungup: Kamailio absorbed the transferor's BYE
KNOWN = (*ENDING, "call.answered", "leg.ringing", "leg.hungup")


class NotificationConsumer(BackgroundLoop):
    task_name = "notifications"

    def __init__(self, store: ConversationStore, metrics: Metrics, consumer: str,
                 engine: TransferEngine | None = None):
        self.engine = engine
        self.store = store
        self.metrics = metrics
        self.consumer = consumer

    async def run(self) -> None:
        pending = True  # first our own unacknowledged notifications (we may have died mid-batch)
        next_claim = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.store.ensure_inbound_group()
                batch = await self.store.read_inbound(self.consumer, pending=pending)
                if pending and not batch:
                    pending = False
                if loop.time() >= next_claim:
                    # entries a dead replica read but never acknowledged
                    batch += await self.store.claim_abandoned(self.consumer)
                    next_claim = loop.time() + CLAIM_INTERVAL_S
                await self.apply_batch(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.metrics.errors.labels("notifications").inc()
                log.exception("notification stream unavailable; retrying in 1 s")
                pending = True
                await asyncio.sleep(1.0)

    async def apply_batch(self, batch: list[tuple[str, bytes]]) -> None:
        """Apply a batch: one conversation's notifications in stream order, different conversations
        concurrently (each waits on Redis, Kamailio and rtpengine, not on the others); then acknowledge."""
        parsed: list[tuple[str, dict[str, Any]]] = []
        for entry_id, raw in batch:
            try:
                message = parse_message(raw)
                if not isinstance(message, Notification) or not isinstance(message.params, dict):
                    raise JsonRpcError(JsonRpcError.INVALID_REQUEST, "expected a notification with object params")
                parsed.append((message.method, message.params))
            except JsonRpcError as exc:
                self.metrics.errors.labels("notification_malformed").inc()
                log.warning("dropping malformed notification %s: %s (%.200r)", entry_id, exc.message, raw)
        conversations = await self.store.conversations_for_calls([_call_id(params) for _, params in parsed])
        groups = group_by_conversation(parsed, conversations)
        results = await asyncio.gather(*(self._apply_in_order(group) for group in groups), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]  # nothing acknowledged: the batch is read again from our pending entries
        await self.store.ack_inbound([entry_id for entry_id, _ in batch])

    async def _apply_in_order(self, group: list[Routed]) -> None:
        for method, params, conversation in group:
            await self.apply(method, params, conversation=conversation)

    async def apply(self, method: str, params: dict[str, Any], *, conversation: str | None = None) -> None:
        """One notification to the transfer engine. Kamailio keeps every call's record and event log
        itself; it tells the controller only of its own legs and of calls whose state machine runs."""
        self.metrics.notifications.labels(method if method in KNOWN else "other").inc()
        if method not in KNOWN:
            log.warning("ignoring unknown notification %s for %s", method, params.get("call_id"))
            return
        if conversation is None:
            conversation = await self.store.conversation_for_call(_call_id(params)) or ""
        if not conversation:
            log.info("notification %s for call %s of no conversation (expired)", method, _call_id(params))
            return
        if self.engine is not None:
            await self.engine.on_notification(conversation, method, params)


Routed = tuple[str, dict[str, Any], str]  # method, params, conversation ("" when the call has none)


def _call_id(params: dict[str, Any]) -> str:
    return str(params.get("call_id", ""))


def group_by_conversation(notifications: list[tuple[str, dict[str, Any]]],
                          conversations: list[str | None]) -> list[list[Routed]]:
    """Split a batch into per-conversation runs, each in stream order (a call no conversation knows is
    a run of its own). `conversations[i]` is the conversation of notification i's call."""
    groups: dict[str, list[Routed]] = {}
    for (method, params), conversation in zip(notifications, conversations, strict=True):
        key = conversation or f"call:{_call_id(params)}"
        groups.setdefault(key, []).append((method, params, conversation or ""))
    return list(groups.values())
