"""Integration tier: real Kamailio, rtpengine, Redis, controller and SIPp processes on loopback.

Every stack listens on free ports and is stopped by PID. Parties bind distinct loopback addresses
the way real networks separate them: the carrier trunk is 127.0.0.2, employees' phones 127.0.0.3.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import struct
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import yaml

from controller.adapters.redis_store import INBOUND_STREAM
from controller.credentials import redis_kwargs
from controller.devstack.phone import Phone
from controller.devstack.sipp import SippParty
from controller.devstack.stack import (
    REPO_ROOT,
    FreePorts,
    LocalStack,
    StackOptions,
    free_media_port,
    free_port,
    with_free_ports,
)

TRUNK_IP = "127.0.0.2"
PHONES_IP = "127.0.0.3"
CLIENT_NUMBER = "+79161234567"
BETA_DID = "+74952220000"
SUPPORT_DID = "+74951110003"
# tenant beta's own hold music is a constant signal: the 16-bit sample 3000, which G.711 A-law encodes
# as the byte 0x92, so a client on hold "hears" it like a party's voice marker
BETA_HOLD_SAMPLE, BETA_HOLD_MARKER = 3000, 0x92
RUN_ROOT = REPO_ROOT / "run" / "tests"
POLL_S = 0.05  # how often a wait looks again

pytestmark = pytest.mark.integration

_counter = itertools.count()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = [tool for tool in ("kamailio", "rtpengine", "redis-server", "sipp") if shutil.which(tool) is None]
    if missing:
        # never silently skipped: a machine without the daemons fails loudly
        raise pytest.UsageError(f"integration tests need {', '.join(missing)}: run `make setup`")


def make_test_config() -> dict[str, Any]:
    """The example configuration on free ports, with phones' static contacts on free ports too."""
    ports = FreePorts()  # every port of the config distinct
    data = with_free_ports(yaml.safe_load((REPO_ROOT / "config" / "example.yaml").read_text()), ports)
    data["node"]["call_keys_ttl_after_end_s"] = 2
    acme = data["tenants"]["acme"]
    for ext in ("100", "101"):
        acme["extensions"][ext]["contact"] = f"sip:{ext}@{PHONES_IP}:{ports.take()}"
    for ext, extension in acme["extensions"].items():
        extension["password"] = phone_password(ext)
    # B gives up after 4 s in tests (fallback rules), not the production 20 s
    for rule in acme["transfer_rules"].values():
        rule["no_answer_timeout_s"] = 4
    # a DID straight to the extension that registers
    acme["dids"]["+74951110002"] = {"extension": "102"}
    # a second department whose members both have static contacts (first to answer wins)
    acme["extensions"]["103"] = {"name": "Gleb", "contact": f"sip:103@{PHONES_IP}:{ports.take()}",
                                 "password": phone_password("103")}
    acme["departments"]["support"] = {"number": "201", "members": ["101", "103"]}
    acme["dids"][SUPPORT_DID] = {"department": "support"}
    # if A does not take a failed transfer back either, the call goes back to the step that first
    # delivered it (the support department behind SUPPORT_DID)
    acme["transfer_rules"]["incoming"]["return_to_origin"] = True
    # the carrier trunk on a free port: outgoing calls (and transfers to outside numbers) reach a
    # SIPp party listening there
    data["trunks"]["carrier"]["port"] = ports.take()
    # a tenant that shows B the client's number (caller-ID policy "client")
    data["tenants"]["beta"] = {
        "name": "Beta LLC", "domain": "beta.test", "company_number": "+74952220099", "outbound_trunk": "carrier",
        "dids": {BETA_DID: {"extension": "300"}},
        "extensions": {ext: {"name": f"Beta {ext}", "contact": f"sip:{ext}@{PHONES_IP}:{ports.take()}",
                             "password": phone_password(ext)} for ext in ("300", "301")},
        "caller_id": {"policy": "client"},
        "hold_music": str(constant_tone(RUN_ROOT / "beta-hold.wav", BETA_HOLD_SAMPLE)),
        # beta sends a client whose transfer failed to voicemail
        "transfer_rules": {"incoming": {"no_answer_timeout_s": 4, "on_failure": "voicemail", "voicemail_max_s": 30}},
    }
    return data


def phone_password(extension: str) -> str:
    """Every test phone's digest password (the test config's phones all authenticate)."""
    return f"pw-{extension}-test"


def constant_tone(path: Path, sample: int, seconds: float = 3.0) -> Path:
    """A WAV file of one repeated 16-bit sample (8 kHz mono): audio whose G.711 encoding is one byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(struct.pack("<h", sample) * int(8000 * seconds))
    return path


class Stack:
    """A started LocalStack plus helpers to place calls and read what happened."""

    def __init__(self, local: LocalStack):
        self.local = local
        self.redis = redis.Redis(**redis_kwargs(local.node), decode_responses=True)
        self.sipp_dir = local.run_dir / "sipp"

    @property
    def acme(self):
        return self.local.config.tenants["acme"]

    def credentials(self, ext: str, tenant: str = "acme") -> tuple[str, str]:
        """(user, password) a phone of `ext` authenticates with."""
        password = self.local.config.tenants[tenant].extensions[ext].password
        assert password is not None
        return ext, password

    def contact_port(self, ext: str, tenant: str = "acme") -> int:
        return int(self.local.config.tenants[tenant].extensions[ext].contact.rsplit(":", 1)[1])

    @property
    def trunk(self) -> tuple[str, int]:
        trunk = self.local.config.trunks["carrier"]
        return str(trunk.address), trunk.port

    def party(self, name: str, scenario: str, ip: str, port: int | None = None, **kw: Any) -> SippParty:
        unique = f"{name}-{next(_counter)}"
        return SippParty(unique, scenario, (ip, port or free_port(address=ip)), free_media_port(ip),
                         self.sipp_dir, **kw)

    def employee(self, ext: str, *, ring_ms: int = 200) -> SippParty:
        party = self.party(f"ext{ext}", "employee_answer.xml", PHONES_IP, self.contact_port(ext),
                           pause_ms=ring_ms, rtp_echo=True).start()
        party.wait_bound()
        return party

    def client_call(self, did: str, *, talk_ms: int = 1500, scenario: str = "client_call.xml",
                    caller: str = CLIENT_NUMBER) -> SippParty:
        return self.party("client", scenario, TRUNK_IP, remote=self.local.sip_hostport, service=did,
                          keys={"from": caller}, pause_ms=talk_ms).start()

    # -- observations --------------------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        out = []
        for entry_id, fields in self.redis.xrange("xfer:events"):
            fields["id"] = entry_id
            fields["data"] = json.loads(fields.get("data", "{}"))
            out.append(fields)
        return out

    def events_for_call(self, call_id: str) -> list[str]:
        return [e["event"] for e in self.events() if e["data"].get("call_id") == call_id]

    def wait_event(self, call_id: str, name: str) -> dict[str, Any]:
        """Wait for event `name` about SIP call `call_id` in the event log, and return it."""
        def find() -> dict[str, Any] | None:
            return next((e for e in self.events() if e["event"] == name and e["data"].get("call_id") == call_id),
                        None)
        return self.wait_for(find, what=f"{name} event for {call_id}")

    def wait_for(self, predicate: Any, timeout: float = 10.0, what: str = "condition") -> Any:
        """Poll `predicate` until it returns something truthy (and return that), for at most `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(POLL_S)  # the poll interval of this wait
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    def controller_log(self) -> list[str]:
        """The messages the controller has logged so far (its log is one JSON object per line)."""
        path = self.local.run_dir / "logs" / "controller.log"
        if not path.exists():
            return []
        messages = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                messages.append(str(json.loads(line).get("msg", "")))
            except (ValueError, AttributeError):
                messages.append(line)
        return messages

    def wait_logged(self, message: str, timeout: float = 10.0) -> None:
        """Wait until the controller has logged a message containing `message`."""
        self.wait_for(lambda: any(message in m for m in self.controller_log()), timeout,
                      what=f"the controller to log {message!r}")

    def notifications_applied(self) -> bool:
        """The controller has applied every notification Kamailio has written so far: its consumer
        group has nothing pending and nothing unread, and the applied entries are deleted."""
        try:
            groups = self.redis.xinfo_groups(INBOUND_STREAM)
        except redis.ResponseError:  # no stream yet: nothing was ever written
            return True
        return (all(g["pending"] == 0 and g.get("lag") in (0, None) for g in groups)
                and self.redis.xlen(INBOUND_STREAM) == 0)

    def controller_metric(self, name: str) -> float:
        """A metric of the controller's /metrics (summed over its labels), read with the scraper's token."""
        text = httpx.get(self.local.controller_url + "/metrics", timeout=5,
                         headers={"Authorization": f"Bearer {self.local.node.secrets.metrics}"}).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith((name + " ", name + "{")))

    def rpc(self, method: str, *params: Any) -> Any:
        reply = httpx.post(self.local.kamailio_rpc_url, timeout=5, auth=self.local.rpc_auth,
                           json={"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1})
        return reply.json()["result"]

    def kamailio_stat(self, name: str) -> int:
        """One of the counters Kamailio keeps in the group xfer (WIRE_STATS in kamailio.cfg)."""
        from controller.wire import STATS_GROUP

        result = self.rpc("stats.get_statistics", f"{STATS_GROUP}:{name}")
        line = result[0] if isinstance(result, list) else str(result)
        return int(str(line).rsplit("=", 1)[1])

    def rtpengine_calls(self) -> list[str]:
        from controller.adapters.rtpengine_ng import RtpengineNg

        async def ask() -> list[str]:
            async with RtpengineNg((self.local.node.rtpengine.ng_address, self.local.node.rtpengine.ng_port)) as ng:
                return list((await ng.list_calls(limit=100_000)).get("calls") or [])

        return asyncio.run(ask())


def start_stack(name: str, data: dict[str, Any] | None = None, options: StackOptions | None = None) -> LocalStack:
    run_dir = RUN_ROOT / f"{name}-{next(_counter)}"
    shutil.rmtree(run_dir, ignore_errors=True)
    local = LocalStack(data or make_test_config(), run_dir, options)
    local.start()
    return local


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    local = start_stack("shared")
    try:
        yield Stack(local)
    finally:
        local.stop()


@pytest.fixture
def own_stack() -> Iterator[Stack]:
    """A stack of the test's own, for tests that stop or break one of its daemons."""
    local = start_stack("own")
    try:
        yield Stack(local)
    finally:
        local.stop()


@pytest.fixture
def patient_stack() -> Iterator[Stack]:
    """A stack of the test's own whose B may ring 30 s: the restart, not the no-answer rule, is tested."""
    data = make_test_config()
    data["tenants"]["acme"]["transfer_rules"]["incoming"]["no_answer_timeout_s"] = 30
    local = start_stack("patient", data)
    try:
        yield Stack(local)
    finally:
        local.stop()


@pytest.fixture
def people() -> Iterator[list[Phone]]:
    """Phones a test started; closed (SIPp stopped by PID) when it ends."""
    created: list[Phone] = []
    yield created
    for p in created:
        p.close()
