"""The methods kamailio.cfg calls with python_exec: a new call's routing, and every call event.

    python_exec("route_invite")          in request_route, after dlg_manage(): sets $var(res) to the
                                         decision ({"action": "route"|"reject", ...}) and
                                         $dlg_var(conv) to the conversation of a routed call
    python_exec("refer")                 in route[REFER]: sets $var(code) / $var(reason), the REFER's answer
    python_exec("call_event", "<method>") from route[NOTIFY]: call.answered / call.failed / call.ended /
                                         call.rejected / leg.ringing / leg.hungup, with $var(code),
                                         $var(reason), $var(cause) and $var(nleg) (a leg the controller
                                         originated)

An ordinary call is routed from the published routing table and recorded in Redis here, by Kamailio
itself: it never waits for the controller and connects while the controller is down. Only calls with a
feature in progress (the controller marks them) and the controller's own legs reach the controller, as
JSON-RPC notifications on its Redis stream. Redis unavailable: the call is still routed with the last
table this process loaded, and the failed record is logged (calls are never refused for bookkeeping).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.errors import JsonRpcError
from controller.proxy.budget import PerSourceBudget
from controller.proxy.invite import MAX_CALL_ID, InviteParams, clip, decide_invite, leg_result
from controller.proxy.records import ProxyRecords, RecordLimits, TableCache, now_ms
from controller.proxy.refer import ReferCheck, ReferDecision, check_refer, employee_sent, far_end_status
from controller.routing.decision import RouteRejection
from controller.wire import LEG_HEADER

__all__ = ["ENVIRONMENT", "KamailioRouting", "ProxySettings"]

log = logging.getLogger("xfer.proxy")

#: The environment variable naming the settings file (JSON, mode 0600: it holds the Redis password).
ENVIRONMENT = "XFER_PROXY_SETTINGS"

#: After a Redis failure a worker leaves Redis alone this long: a Redis that is down or hung must not
#: cost every call its timeouts (0.5 s a command) in a SIP worker. Calls are still routed meanwhile, with
#: the table the worker has; their records are what is lost (logged).
REDIS_PAUSE_S = 1.0

NO_TABLE = RouteRejection(503, "Service Unavailable", "no_routing_table")
BAD_REQUEST = RouteRejection(400, "Bad Request", "bad_request")
ROUTING_FAILED = RouteRejection(500, "Server Internal Error", "routing_failed")
ENDING = ("call.failed", "call.ended", "call.rejected")
REFER_UNAVAILABLE = ReferDecision(503, "Service Unavailable")
REFER_FACTS = ("direction", "state", "tenant")


@dataclass(frozen=True, slots=True)
class ProxySettings:
    redis_host: str
    redis_port: int
    redis_db: int
    redis_password: str | None
    limits: RecordLimits

    @classmethod
    def from_file(cls, path: Path) -> ProxySettings:
        data = json.loads(path.read_text(encoding="utf-8"))
        redis = data["redis"]
        return cls(str(redis["host"]), int(redis["port"]), int(redis.get("db", 0)), redis.get("password"),
                   RecordLimits(**data["limits"]))

    def to_json(self) -> str:
        return json.dumps({"redis": {"host": self.redis_host, "port": self.redis_port, "db": self.redis_db,
                                     "password": self.redis_password},
                           "limits": {"max_call_s": self.limits.max_call_s,
                                      "ttl_after_end_s": self.limits.ttl_after_end_s,
                                      "events_maxlen": self.limits.events_maxlen,
                                      "events_retention_s": self.limits.events_retention_s,
                                      "inbound_maxlen": self.limits.inbound_maxlen}}, indent=2)


def _redis_client(settings: ProxySettings) -> Any:
    import redis  # redis-py; imported here so the module loads for its pure parts without it

    return redis.Redis(host=settings.redis_host, port=settings.redis_port, db=settings.redis_db,
                       password=settings.redis_password, socket_timeout=0.5, socket_connect_timeout=0.5,
                       health_check_interval=30)


class KamailioRouting:
    def __init__(self, settings: ProxySettings, pv: Any, redis_factory: Callable[[ProxySettings], Any] = _redis_client,
                 clock: Callable[[], int] = now_ms, new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
                 has_feature: Callable[[str], bool] = lambda call_id: False,
                 monotonic: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.pv = pv  # KSR.pv in Kamailio; a fake in tests
        # whether the controller marked the call (htable feat:<call-id>): its state machine runs
        self.has_feature = has_feature
        self.monotonic = monotonic
        self._redis_back_at = 0.0  # Redis is left alone until then (after a failure)
        self.redis_factory = redis_factory
        self.clock = clock
        self.new_id = new_id
        self.tables = TableCache()
        self.rejections = PerSourceBudget()  # records of refused INVITEs per source (20 per 10 s)
        self._records: ProxyRecords | None = None

    @classmethod
    def from_environment(cls, pv: Any, has_feature: Callable[[str], bool]) -> KamailioRouting:
        return cls(ProxySettings.from_file(Path(os.environ[ENVIRONMENT])), pv, has_feature=has_feature)

    @property
    def records(self) -> ProxyRecords:
        # made in each worker on first use, after Kamailio forked it: no connection is shared
        if self._records is None:
            self._records = ProxyRecords(self.redis_factory(self.settings), self.settings.limits, self.clock)
        return self._records

    # -- kamailio.cfg's entry points -------------------------------------------------------------
    def route_invite(self, msg: Any = None) -> int:
        result, conversation = self.decide(self._invite_params())
        self.pv.sets("$var(res)", json.dumps(result, separators=(",", ":")))
        if conversation:
            self.pv.sets("$dlg_var(conv)", conversation)
        return 1

    def refer(self, msg: Any = None) -> int:
        """A REFER in a call's dialog: $var(code) / $var(reason) are its final response (202 or a
        refusal); an accepted one is on the controller's stream (controller/proxy/refer.py)."""
        decision = self.decide_refer()
        self.pv.seti("$var(code)", decision.code)
        self.pv.sets("$var(reason)", decision.reason)
        return 1

    def decide_refer(self) -> ReferDecision:
        if not self.redis_usable():
            return REFER_UNAVAILABLE  # nobody could act on it: the phone keeps its call, as with no REFER
        get = self._get
        call_id, conversation = get("$ci"), get("$dlg_var(conv)")
        try:
            record = self.records.conversation_facts(conversation, REFER_FACTS) if conversation else {}
            table = self.tables.current(self.records.redis)
            tenant = table.tenants.get(record.get("tenant", "")) if table is not None else None
            decision = check_refer(ReferCheck(
                by_tag=get("$ft"), dialog_from_tag=get("$dlg(from_tag)"), refer_to=get("$hdr(Refer-To)"),
                referred_by=get("$hdr(Referred-By)"), record=record,
                our_hosts={get("$Ri").lower(), *([tenant.domain.lower()] if tenant else [])}))
            if decision.accepted:
                self._tell_about_dialog("transfer.refer", number=decision.number, referred_by=decision.referred_by,
                                        replaces=decision.replaces, at_ms=self.clock())
        except Exception:
            self.redis_failed(f"REFER in {clip(call_id)} not handed on")
            return REFER_UNAVAILABLE
        if not decision.accepted:
            log.info("REFER in %s refused: %d %s", clip(call_id), decision.code, decision.reason)
        return decision

    def phone_hold(self, msg: Any = None, hold: str = "") -> int:
        """A re-INVITE in a conversation's call; `hold`: "recvonly"/"inactive" when its SDP holds the call,
        "" when it does not. $var(phone) = 1 when it came from the employee's side; the controller is
        told of a hold (its machine starts if it has none) and of a resume of a call it already runs."""
        self.pv.seti("$var(phone)", 0)
        if not self.redis_usable():
            return 1
        get = self._get
        call_id, conversation = get("$ci"), get("$dlg_var(conv)")
        try:
            record = self.records.conversation_facts(conversation, REFER_FACTS)
            if not employee_sent(record, get("$ft"), get("$dlg(from_tag)")):
                return 1
            self.pv.seti("$var(phone)", 1)
            if hold or self.has_feature(call_id):
                self._tell_about_dialog("leg.held" if hold else "leg.resumed")
        except Exception:
            self.redis_failed(f"the hold in {clip(call_id)} not handed on")
        return 1

    def far_end(self, msg: Any = None, transfer_id: str = "") -> int:
        """A NOTIFY of the REFER this node sent the client's trunk (route[FAR_END_NOTIFY]): its status goes
        to the controller, which follows the transfer."""
        if not self.redis_usable():
            return 1  # the controller's no-answer timer takes the call back
        get = self._get
        status = far_end_status(get("$rm"), get("$rb"))
        if status is None:
            return 1
        try:
            self.records.notify_controller({"jsonrpc": "2.0", "method": "transfer.far_end", "params": {
                "call_id": clip(get("$ci"), MAX_CALL_ID), "transfer_id": clip(transfer_id), "status": status}})
        except Exception:
            self.redis_failed(f"the trunk's answer in {clip(get('$ci'))} not handed on")
        return 1

    def _tell_about_dialog(self, method: str, **extra: Any) -> None:
        """A notification to the controller about a request in a conversation's dialog: the dialog (its
        Call-ID and tags), the conversation, who sent the request (its From-tag), and `extra`."""
        get = self._get
        self.records.notify_controller({"jsonrpc": "2.0", "method": method, "params": {
            "call_id": clip(get("$ci"), MAX_CALL_ID), "conversation": get("$dlg_var(conv)"),
            "from_tag": clip(get("$dlg(from_tag)")), "to_tag": clip(get("$dlg(to_tag)")),
            "by_tag": clip(get("$ft")), **extra}})

    def call_event(self, msg: Any = None, method: str = "") -> int:
        if not self.redis_usable():
            return 1  # the call goes on; the record is what is lost
        try:
            self.record_event(method, self._event_params())
        except Exception:
            self.redis_failed(f"{method} not recorded")  # the call goes on; the record is what is lost
        return 1

    # -- Redis, with a pause after a failure ------------------------------------------------------
    def redis_usable(self) -> bool:
        return self.monotonic() >= self._redis_back_at

    def redis_failed(self, what: str) -> None:
        if self.redis_usable():  # log once per pause, not once per call
            log.exception("Redis unavailable (%s); leaving it alone for %.1f s", what, REDIS_PAUSE_S)
        self._redis_back_at = self.monotonic() + REDIS_PAUSE_S

    # -- the work, from plain values -------------------------------------------------------------
    def decide(self, params: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The script's answer for a new INVITE and the conversation it starts ("" for none)."""
        try:
            invite = InviteParams.parse(params)
        except JsonRpcError as exc:
            log.warning("refusing INVITE %.64r: %s", params.get("call_id"), exc.message)
            return BAD_REQUEST.to_jsonrpc_result(), ""
        facts = invite.facts
        call_id = clip(facts.call_id, MAX_CALL_ID)
        if invite.xfer_leg:
            if facts.peer != "node":
                return BAD_REQUEST.to_jsonrpc_result(), ""
            leg = None
            if self.redis_usable():
                try:
                    leg = self.records.leg(invite.xfer_leg)
                except Exception:
                    self.redis_failed(f"transfer leg {clip(invite.xfer_leg)}")
            result = leg_result(leg, invite.xfer_leg, call_id)
            return result, result.get("conversation", "")
        table = self.tables.table
        if self.redis_usable():
            try:
                table = self.tables.current(self.records.redis)
            except Exception:
                self.redis_failed("routing table not refreshed")
        if table is None:
            return NO_TABLE.to_jsonrpc_result(), ""
        conversation = self.new_id()
        try:
            decided = decide_invite(table, invite, conversation, self.clock())
        except Exception:
            log.exception("routing %s failed", call_id)
            return ROUTING_FAILED.to_jsonrpc_result(), ""
        try:
            if not self.redis_usable():
                pass  # the call is routed all the same; its record is lost
            elif decided.conversation is not None:
                self.records.started(conversation, call_id, decided.conversation)
            elif decided.rejection is not None and self.rejections.allow(facts.source_ip):
                # a flood from one source is refused without a record each: it cannot grow the event log
                self.records.event("call.rejected", conversation, decided.rejection)
        except Exception:
            self.redis_failed(f"the routing of {call_id} not recorded; the call is routed anyway")
        return decided.result, conversation if decided.conversation is not None else ""

    def record_event(self, method: str, params: dict[str, Any]) -> None:
        """One call event: the conversation's record and the event log for every call; the controller's
        stream too for its own legs and for calls whose state machine runs."""
        conversation = params.pop("conversation", "") or ""
        answered = params.pop("answered_ms", "")
        if params.pop("leg", False):
            # a transfer leg belongs to its conversation (whose record the client's dialog keeps): the
            # transfer engine is told, nothing else
            self.records.notify_controller({"jsonrpc": "2.0", "method": method, "params": params})
            return
        self._record(method, conversation, answered, params)
        # checked after the record is written: a controller that marks the call meanwhile reads the
        # record after marking it, so it learns of this event one way or the other
        if self.has_feature(params["call_id"]):
            self.records.notify_controller({"jsonrpc": "2.0", "method": method, "params": params})

    def _record(self, method: str, conversation: str, answered: str, params: dict[str, Any]) -> None:
        call_id = params["call_id"]
        fields = {"call_id": call_id, "code": params.get("code"), "reason": params.get("reason", ""),
                  "cause": params.get("cause", "")}
        if method == "call.answered":
            record: dict[str, Any] = {"state": "answered", "answered_ms": self.clock(),
                                      "to_tag": params.get("to_tag", "")}
            if params.get("answered_ext"):
                # a department call: Kamailio tagged each branch with its member, and says which answered
                record["employee"] = fields["employee"] = str(params["answered_ext"])[:16]
            if conversation:
                self.records.answered(conversation, fields, record)
                self.pv.sets("$dlg_var(answered_ms)", str(record["answered_ms"]))
            return
        if method not in ENDING:
            return
        if not conversation:
            self.records.event(method, "", fields)  # refused before it was routed (a Kamailio refusal)
            return
        ended = self.clock()
        fields["ended_ms"] = ended
        if answered:
            fields["duration_ms"] = ended - int(answered)
        self.records.ended(method, conversation, call_id, fields)

    # -- what Kamailio knows ---------------------------------------------------------------------
    def _get(self, name: str) -> str:
        value = self.pv.get(name)
        return "" if value is None else str(value)

    def _invite_params(self) -> dict[str, Any]:
        get = self._get
        params: dict[str, Any] = {
            "call_id": get("$ci"), "from_tag": get("$ft"), "source_ip": get("$si"),
            "source_port": self.pv.get("$sp"), "from_user": get("$fU"), "from_domain": get("$fd"),
            "ruri_user": get("$rU"), "ruri_domain": get("$rd"),
            # who sent it, as route[IDENTIFY] established: "trunk", "node" or "phone" with its user
            "peer": get("$avp(xpeer)"),
        }
        if self.pv.get("$avp(xauth)") is not None:
            params["auth_user"] = get("$avp(xauth)")
        if params["peer"] == "node" and self.pv.get(f"$hdr({LEG_HEADER})") is not None:
            params["xfer_leg"] = get(f"$hdr({LEG_HEADER})")
        return params

    def _event_params(self) -> dict[str, Any]:
        get = self._get
        params: dict[str, Any] = {}
        if self.pv.get("$dlg(callid)") is not None:
            params["call_id"], params["from_tag"] = get("$dlg(callid)"), get("$dlg(from_tag)")
            # in dialog:start the dialog has no to-tag yet: the 200 OK being processed carries it
            to_tag = get("$dlg(to_tag)")
            params["to_tag"] = to_tag if to_tag not in ("", "<null>") else get("$tt")
        else:
            params["call_id"], params["from_tag"] = get("$ci"), get("$ft")
        if get("$rm") == "BYE":
            params["by_tag"] = get("$ft")  # who hung up: the tag of the party that sent the BYE
        answered_ext = self.pv.get("$dlg_var(answered_ext)")
        if answered_ext is not None:
            params["answered_ext"] = str(answered_ext)
        code = self.pv.get("$var(code)")
        params.update(code=int(code) if isinstance(code, int) or str(code).isdigit() else 0,
                      reason=get("$var(reason)"), cause=get("$var(cause)"),
                      conversation=get("$dlg_var(conv)"), answered_ms=get("$dlg_var(answered_ms)"),
                      leg=get("$var(nleg)") == "1")
        return params
