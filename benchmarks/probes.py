"""Read-only probes of the running stack: Redis memory, Kamailio dialogs and memory, rtpengine totals,
the controller's metrics. Each probe answers in a few milliseconds so it can run during a step."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

import httpx
import redis

from controller.adapters.redis_store import EVENTS_STREAM
from controller.codecs import bencode
from controller.credentials import redis_kwargs
from controller.devstack.stack import EVENT_STREAM, LocalStack


@dataclass(frozen=True)
class RedisSample:
    used_memory: int
    keys: int
    events_bytes: int  # the event log stream (MEMORY USAGE)
    events_len: int
    inbound_bytes: int  # Kamailio's notification stream
    inbound_backlog: int  # notifications Kamailio appended that the controller has not consumed yet


class RedisProbe:
    def __init__(self, stack: LocalStack):
        self.client = redis.Redis(**redis_kwargs(stack.node), socket_timeout=2.0)

    def sample(self) -> RedisSample:
        pipe = self.client.pipeline(transaction=False)
        pipe.info("memory")
        pipe.dbsize()
        # SAMPLES 0: walk the whole stream; the default samples 5 nodes and extrapolates
        pipe.execute_command("MEMORY", "USAGE", EVENTS_STREAM, "SAMPLES", "0")
        pipe.xlen(EVENTS_STREAM)
        pipe.execute_command("MEMORY", "USAGE", EVENT_STREAM, "SAMPLES", "0")
        pipe.xlen(EVENT_STREAM)
        info, keys, events, events_len, inbound, backlog = pipe.execute()
        return RedisSample(int(info["used_memory"]), int(keys), int(events or 0), int(events_len),
                           int(inbound or 0), int(backlog))

    def backlog(self) -> int:
        return int(self.client.xlen(EVENT_STREAM))

    def close(self) -> None:
        self.client.close()


class KamailioProbe:
    def __init__(self, stack: LocalStack):
        self.url = stack.kamailio_rpc_url
        self.http = httpx.Client(timeout=2.0, auth=stack.rpc_auth)

    def rpc(self, method: str, *params: Any) -> Any:
        reply = self.http.post(self.url, json={"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1})
        return reply.json()["result"]

    def active_dialogs(self) -> int:
        return int(self.rpc("stats.fetch", "dialog:")["dialog.active_dialogs"])

    def shm_used(self) -> int:
        return int(self.rpc("core.shmmem")["real_used"])

    def close(self) -> None:
        self.http.close()


class RtpengineProbe:
    """rtpengine's own counters (ng `statistics`): proof that media really flowed, and how much."""

    def __init__(self, stack: LocalStack):
        self.address = (stack.node.rtpengine.ng_address, stack.node.rtpengine.ng_port)

    def statistics(self) -> dict[str, Any]:
        cookie = os.urandom(4).hex().encode()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2.0)
            s.sendto(cookie + b" " + bencode.encode({"command": "statistics"}), self.address)
            while True:
                data, _ = s.recvfrom(1 << 20)
                got, _, body = data.partition(b" ")
                if got == cookie:
                    return bencode.decode(body)["statistics"]

    def ping_ms(self) -> float:
        """Round trip of an ng ping: how long Kamailio's workers wait on rtpengine right now."""
        cookie = os.urandom(4).hex().encode()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2.0)
            started = time.perf_counter()
            s.sendto(cookie + b" " + bencode.encode({"command": "ping"}), self.address)
            while True:
                data, _ = s.recvfrom(65535)
                if data.partition(b" ")[0] == cookie:
                    return (time.perf_counter() - started) * 1000

    def totals(self) -> dict[str, int]:
        stats = self.statistics()
        total, current = stats["totalstatistics"], stats["currentstatistics"]
        keys = ("managedsessions", "relayedpackets", "relayedpacketerrors", "onewaystreams", "zerowaystreams")
        return {key: int(total.get(key, 0)) for key in keys} | {"sessions": int(current.get("sessionstotal", 0))}


def udp_drops(sockets: dict[str, tuple[str, int]]) -> dict[str, int]:
    """Datagrams the kernel dropped on each bound UDP socket (its receive buffer was full): a SIP message
    lost on loopback shows up here, the only place where it does. Sockets not bound now are left out."""
    wanted = {"".join(f"{int(part):02X}" for part in reversed(ip.split("."))) + f":{port:04X}": name
              for name, (ip, port) in sockets.items()}
    found = {}
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] in wanted:
                found[wanted[fields[1]]] = int(fields[-1])
    return found


class ControllerProbe:
    def __init__(self, stack: LocalStack):
        self.url = stack.controller_url + "/metrics"
        self.http = httpx.Client(timeout=5.0, headers={"Authorization": f"Bearer {stack.node.secrets.metrics}"})

    def metrics(self) -> str:
        return self.http.get(self.url).text

    def close(self) -> None:
        self.http.close()
