"""Kamailio's notifications for the transfer engine (a Redis stream of JSON-RPC 2.0 notifications).

Kamailio appends `call.answered`, `call.failed`, `call.ended`, `call.rejected`, `leg.ringing` and
`leg.hungup` for the legs the controller originates and for calls whose state machine runs, and
`transfer.refer` for every REFER it accepted (it keeps
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
RETRY_AFTER_S = 1.0
#: notifications being applied at once; the reader waits when this many are (bounded memory)
MAX_IN_FLIGHT = 512
ENDING = ("call.failed", "call.ended", "call.rejected")
# leg.ringing: a leg the controller originated rings; leg.hungup: Kamailio absorbed the transferor's BYE
# transfer.refer: a REFER Kamailio accepted from the employee's side of a call (controller/proxy/refer.py)
REFER = "transfer.refer"
# leg.held / leg.resumed: the employee's phone put the client on hold (its own hold key) or took it off
HELD = "leg.held"
# transfer.far_end: what the client's trunk said of the REFER the PBX sent it (a NOTIFY's status, a refusal)
KNOWN = (*ENDING, "call.answered", "leg.ringing", "leg.hungup", REFER, HELD, "leg.resumed", "transfer.far_end")


class NotificationConsumer(BackgroundLoop):
    """Reads the stream and applies each notification as soon as the previous one of its conversation is
    applied: conversations side by side, one conversation in stream order, and the reader goes on reading
    meanwhile (a slow conversation holds up nobody else). Each notification is acknowledged once applied;
    one whose application failed stays pending and is read again a second later."""

    task_name = "notifications"

    def __init__(self, store: ConversationStore, metrics: Metrics, consumer: str,
                 engine: TransferEngine | None = None):
        self.engine = engine
        self.store = store
        self.metrics = metrics
        self.consumer = consumer
        self._tails: dict[str, asyncio.Task[None]] = {}  # the last scheduled notification of each conversation
        self._busy: set[str] = set()  # entry ids being applied, or applied and not yet acknowledged
        self._to_ack: list[str] = []
        self._acking: asyncio.Task[None] | None = None
        self._gate = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._failed = False

    async def run(self) -> None:
        pending, after = True, "0"  # first our own unacknowledged notifications (we may have died mid-way)
        next_claim = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.store.ensure_inbound_group()
                if self._failed:  # something failed to apply: its entry is still pending, read it again
                    self._failed, pending, after = False, True, "0"
                    await asyncio.sleep(RETRY_AFTER_S)
                batch = await self.store.read_inbound(self.consumer, pending=pending, after=after)
                if pending:
                    if batch:
                        after = batch[-1][0]
                    else:
                        pending = False
                if loop.time() >= next_claim:
                    # entries a dead replica read but never acknowledged
                    batch += await self.store.claim_abandoned(self.consumer)
                    next_claim = loop.time() + CLAIM_INTERVAL_S
                await self.dispatch(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.metrics.errors.labels("notifications").inc()
                log.exception("notification stream unavailable; retrying in 1 s")
                pending, after = True, "0"
                await asyncio.sleep(RETRY_AFTER_S)

    async def stop(self) -> None:
        """Stop reading, let what is being applied finish, and acknowledge it (a clean shutdown)."""
        await super().stop()
        tails = list(self._tails.values())
        if tails:
            await asyncio.wait(tails)
        if self._acking is not None:
            await self._acking

    async def dispatch(self, batch: list[tuple[str, bytes]]) -> None:
        """Schedule every notification of a batch after the previous one of its conversation; returns
        once scheduled (it waits only while MAX_IN_FLIGHT are being applied)."""
        parsed: list[tuple[str, str, dict[str, Any]]] = []
        for entry_id, raw in batch:
            if entry_id in self._busy:
                continue  # a pending entry read again while it is still being applied
            try:
                message = parse_message(raw)
                if not isinstance(message, Notification) or not isinstance(message.params, dict):
                    raise JsonRpcError(JsonRpcError.INVALID_REQUEST, "expected a notification with object params")
                parsed.append((entry_id, message.method, message.params))
            except JsonRpcError as exc:
                self.metrics.errors.labels("notification_malformed").inc()
                log.warning("dropping malformed notification %s: %s (%.200r)", entry_id, exc.message, raw)
                self._busy.add(entry_id)
                self._acknowledge(entry_id)
        conversations = await self.store.conversations_for_calls([_call_id(params) for _, _, params in parsed])
        for (entry_id, method, params), conversation in zip(parsed, conversations, strict=True):
            key = conversation or f"call:{_call_id(params)}"
            await self._gate.acquire()
            self._busy.add(entry_id)
            task = asyncio.create_task(self._apply_after(self._tails.get(key), key, entry_id, method, params,
                                                         conversation or ""))
            self._tails[key] = task

    async def _apply_after(self, previous: asyncio.Task[None] | None, key: str, entry_id: str, method: str,
                           params: dict[str, Any], conversation: str) -> None:
        try:
            if previous is not None:
                await asyncio.wait([previous])  # its order, not its success, is what this one waits for
            await self.apply(method, params, conversation=conversation)
            self._acknowledge(entry_id)
        except Exception:
            self.metrics.errors.labels("notifications").inc()
            log.exception("notification %s (%s) not applied; it stays pending", entry_id, method)
            # read again in a second; the conversation's later notifications do not wait for it (the
            # machine refuses what no longer fits its state): a failure here is Redis or Kamailio away
            self._busy.discard(entry_id)
            self._failed = True
        finally:
            self._gate.release()
            if self._tails.get(key) is asyncio.current_task():
                del self._tails[key]

    def _acknowledge(self, entry_id: str) -> None:
        """Acknowledge (and delete) an applied entry; entries applied meanwhile go in the same request."""
        self._to_ack.append(entry_id)
        if self._acking is None or self._acking.done():
            self._acking = asyncio.create_task(self._ack_all())

    async def _ack_all(self) -> None:
        while self._to_ack:
            ids, self._to_ack = self._to_ack, []
            try:
                await self.store.ack_inbound(ids)
            except Exception as exc:
                self.metrics.errors.labels("notifications").inc()
                log.warning("could not acknowledge %d notifications (tried again in 1 s): %s", len(ids), exc)
                self._to_ack = ids + self._to_ack
                await asyncio.sleep(RETRY_AFTER_S)
                continue
            self._busy.difference_update(ids)

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
        if self.engine is None:
            return
        if method == REFER:
            await self.engine.on_refer(conversation, params)
        elif method == HELD:
            await self.engine.on_phone_held(conversation, params)
        else:
            await self.engine.on_notification(conversation, method, params)


def _call_id(params: dict[str, Any]) -> str:
    return str(params.get("call_id", ""))
