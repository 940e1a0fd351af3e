"""Carry out the state machine's SIP actions through Kamailio's JSON-RPC.

- A leg the controller originates is an INVITE from `tm.t_uac_start` whose next hop is Kamailio
  itself: it is routed (registrar, trunks), anchored (into the conversation's rtpengine call, by the
  htable entry `leg:<call-id>`) and dialog-tracked like any call.
- CANCEL is `tm.cancel` on that INVITE's transaction; BYE to one side of a dialog is our own
  `dlg.bye_side` method (Kamailio's dlg.end_dlg always BYEs both sides).
- While a transfer runs, `transferor:<call-id>` makes Kamailio absorb the transferor's BYE: the
  client's dialog goes on, with the controller acting for the transferor (RFC 3261 15: a BYE ends
  only the dialog of its sender).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

from controller.adapters.kamailio_rpc import KamailioRpc
from controller.adapters.redis_store import ConversationStore
from controller.errors import KamailioRpcError
from controller.wire import (
    FAR_REFER_PREFIX,
    FEATURE_PREFIX,
    GONE_PREFIX,
    HTABLE,
    LEG_CONTACT_USER,
    LEG_HEADER,
    LEG_PREFIX,
    NOTIFY_CSEQ_PREFIX,
    RING_TIMEOUT_MARGIN_S,
    SHIFTED_PREFIX,
    TRANSFEROR_PREFIX,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OriginateRequest:
    """Arguments of Kamailio's `tm.t_uac_start` for a leg the controller originates.

    The INVITE goes to Kamailio itself (next hop), so it is routed, anchored and dialog-tracked like any
    call; `X-Xfer-Leg` tells Kamailio's callback which pending leg it is (only trusted from Kamailio).
    """

    ruri: str
    nexthop: str
    headers: str
    body: str
    call_id: str

    def rpc_params(self) -> list[str]:
        return ["INVITE", self.ruri, self.nexthop, ".", self.headers, self.body]


def build_originate(*, leg_id: str, target_user: str, domain: str, caller_id: str, proxy: str,
                    sdp: str, call_id: str | None = None, replaces: str | None = None) -> OriginateRequest:
    call_id = call_id or f"xfer-{secrets.token_hex(12)}"
    identity = f"<sip:{caller_id}@{domain}>"
    # no From tag: tm.t_uac_* adds its own, and a second one breaks the ACK (platform-notes.md)
    headers = (
        f"From: {identity}\r\n"
        f"To: <sip:{target_user}@{domain}>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:{LEG_CONTACT_USER}@{proxy}>\r\n"
        f"P-Asserted-Identity: {identity}\r\n"
        f"{LEG_HEADER}: {leg_id}\r\n"
        # an attended REFER's B joins the client in place of its call with A (RFC 3891); the value was
        # checked by controller/proxy/refer.py (no separator, no CR/LF) and its dialog by the engine
        + (f"Replaces: {replaces}\r\nRequire: replaces\r\n" if replaces else "")
        + "Content-Type: application/sdp\r\n"
    )
    return OriginateRequest(ruri=f"sip:{target_user}@{domain}", nexthop=f"sip:{proxy}", headers=headers,
                            body=sdp, call_id=call_id)


FORGET_BATCH = 32  # keys per xfer.forget (kamailio.cfg reads at most this many)


class SipExecutor:
    def __init__(self, rpc: KamailioRpc, xfer_rpc: KamailioRpc, store: ConversationStore, proxy_hostport: str):
        self.rpc = rpc
        self.xfer_rpc = xfer_rpc
        self.store = store
        self.proxy = proxy_hostport

    async def originate(self, *, conversation_id: str, leg_id: str, targets: list[dict[str, Any]],
                        target_user: str, domain: str, caller_id: str, sdp: str, ng_flags: str,
                        ring_timeout_s: float, replaces: str | None = None) -> str:
        """INVITE a new leg; returns its SIP Call-ID. Its progress comes back as notifications.
        Kamailio lets it ring `ring_timeout_s` plus a margin: the state machine's own timer, which
        CANCELs it, must come first (a tenant may allow longer than Kamailio's default ring time)."""
        request = build_originate(leg_id=leg_id, target_user=target_user, domain=domain, caller_id=caller_id,
                                  proxy=self.proxy, sdp=sdp, replaces=replaces)
        ring_ms = round((ring_timeout_s + RING_TIMEOUT_MARGIN_S) * 1000)
        # the rtpengine flags go with the leg's record: Kamailio's routing of the INVITE reads it anyway and
        # puts them into its htable itself (route[ROUTE_CALL]), one JSON-RPC request less per leg
        await self.store.save_leg(leg_id, conversation_id, request.call_id, targets, ring_ms, ng_flags)
        await self.rpc.call("tm.t_uac_start", *request.rpc_params())
        return request.call_id

    async def cancel(self, call_id: str) -> None:
        try:
            await self.rpc.call("tm.cancel", call_id, "1")
        except KamailioRpcError as exc:
            # the INVITE already got its final response: the machine will see that response
            log.info("CANCEL of %s not sent: %s", call_id, exc)

    async def bye(self, call_id: str, from_tag: str, to_tag: str, side: str) -> None:
        try:
            await self.xfer_rpc.call("dlg.bye_side", call_id, from_tag, to_tag, side)
        except KamailioRpcError as exc:
            if exc.code in (404, 500):  # no such dialog, or one already terminating
                log.info("BYE on %s not sent: the dialog has already ended (%s)", call_id, exc)
                return
            raise

    async def end_dialog(self, call_id: str, from_tag: str, to_tag: str) -> None:
        """BYE to both sides of a dialog (one an attended REFER replaced); one already over is no error."""
        await self.bye(call_id, from_tag, to_tag, "both")

    async def set_transferor(self, call_id: str, tag: str | None) -> None:
        if tag:
            await self.rpc.call("htable.sets", HTABLE, f"{TRANSFEROR_PREFIX}{call_id}", tag)
        else:
            await self.forget([f"{TRANSFEROR_PREFIX}{call_id}", f"{GONE_PREFIX}{call_id}"])

    async def mark_feature(self, call_id: str) -> None:
        """The call's state machine runs: Kamailio tells the controller its dialog events from now on."""
        await self.rpc.call("htable.sets", HTABLE, f"{FEATURE_PREFIX}{call_id}", "1")

    async def forget_call(self, call_id: str, leg_call_ids: list[str]) -> None:
        """A conversation is over: its feature mark, its takeover, its in-dialog request counts, its REFER to
        the trunk and its legs' rtpengine flags go, in one request."""
        await self.forget([f"{FEATURE_PREFIX}{call_id}", f"{TRANSFEROR_PREFIX}{call_id}", f"{GONE_PREFIX}{call_id}",
                           f"{NOTIFY_CSEQ_PREFIX}caller:{call_id}",
                           f"{NOTIFY_CSEQ_PREFIX}callee:{call_id}", f"{SHIFTED_PREFIX}{call_id}",
                           f"{FAR_REFER_PREFIX}{call_id}", *(f"{LEG_PREFIX}{leg}" for leg in leg_call_ids)])

    async def refer_far_end(self, call_id: str, from_tag: str, to_tag: str, side: str, refer_to: str,
                            referred_by: str, transfer_id: str) -> None:
        """A REFER in the client's dialog to `side` (the client's trunk), as its peer would send it (the
        /xfer method xfer.refer); its NOTIFYs come back as `transfer.far_end`. Not retried: a second
        REFER would ask the trunk for a second call."""
        await self.xfer_rpc.call("xfer.refer", call_id, from_tag, to_tag, side, refer_to, referred_by, transfer_id)

    async def notify_referrer(self, call_id: str, from_tag: str, to_tag: str, side: str, code: int, reason: str,
                              final: bool) -> None:
        """A NOTIFY of the REFER subscription in the client's dialog, to `side` (the /xfer method
        xfer.notify); not retried (a NOTIFY is no idempotent request). A phone that has hung up is
        told nothing (Kamailio knows)."""
        try:
            await self.xfer_rpc.call("xfer.notify", call_id, from_tag, to_tag, side, code, reason, int(final))
        except KamailioRpcError as exc:
            if exc.code == 404:
                log.info("NOTIFY in %s not sent: the dialog has ended", call_id)
                return
            raise

    async def forget(self, keys: list[str]) -> None:
        """Remove htable entries (one request for all: the /xfer method xfer.forget); one that is not
        there is no error."""
        for start in range(0, len(keys), FORGET_BATCH):
            await self.xfer_rpc.call("xfer.forget", *keys[start:start + FORGET_BATCH])
