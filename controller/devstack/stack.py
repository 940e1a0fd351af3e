"""The local stack: Redis, rtpengine, the controller and Kamailio on loopback, from one configuration.

The README demo, `xferctl stack` and the integration tests all start daemons through this module, so
there is one code path to trust. Rendered configs, logs and pids go under one run directory.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import socket
import string
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

import controller
from controller.codecs import bencode
from controller.config import Config, parse_config
from controller.credentials import (
    basic_authorization,
    kamailio_rpc_auth,
    new_secrets,
    redis_kwargs,
)
from controller.devstack import resources
from controller.devstack.processes import ManagedProcess
from controller.proxy.handler import ENVIRONMENT as PROXY_SETTINGS_ENV
from controller.proxy.handler import ProxySettings
from controller.proxy.records import RecordLimits
from controller.publish import publication
from controller.wire import DTMF_SOCKET_NAME, INBOUND_STREAM, kamailio_wire_defines, substdef_lines

log = logging.getLogger(__name__)

REPO_ROOT = resources.ROOT  # the checkout, or the installed copy of its shipped files (resources.py)
KAMAILIO_CFG = resources.KAMAILIO_CFG
RTPENGINE_TEMPLATE = resources.RTPENGINE_TEMPLATE
EVENT_STREAM = INBOUND_STREAM  # Kamailio's notifications (benchmarks read it)


def rtpengine_db(node_db: int) -> int:
    """rtpengine's own Redis database: the one after the node's (its keys never mix with the controller's)."""
    return node_db + 1


def free_port(kind: int = socket.SOCK_STREAM, address: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP right now (SIP listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((address, 0))
            port = s.getsockname()[1]
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, other) as s:
            try:
                s.bind((address, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port found")


# SIPp's media ports come from below the kernel's ephemeral range (32768 and up on Linux): a socket
# bound to port 0 meanwhile, by any process, can then never take the port between the check and
# SIPp's own bind. rtpengine's ranges (tests 20000-29999, benchmarks 10000-19999) stay clear of it.
_MEDIA_PORTS = itertools.cycle(range(30000, 32764, 4))


def free_media_port(address: str) -> int:
    """An even UDP port p with p..p+3 free on `address` (SIPp binds RTP and RTCP, audio and video)."""
    for _ in range(700):
        port = next(_MEDIA_PORTS)
        sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
        try:
            for offset, sock in enumerate(sockets):
                sock.bind((address, port + offset))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return port
    raise RuntimeError(f"no free media port block on {address}")


class FreePorts:
    """Free loopback ports, each handed out once: a probe closes its socket, so the kernel may offer
    the same port again to the next probe."""

    def __init__(self) -> None:
        self.taken: set[int] = set()

    def take(self, kind: int = socket.SOCK_STREAM) -> int:
        port = free_port(kind)
        while port in self.taken:
            port = free_port(kind)
        self.taken.add(port)
        return port


def with_free_ports(data: dict[str, Any], ports: FreePorts | None = None) -> dict[str, Any]:
    """A copy of a raw configuration whose node listens on free loopback ports (for tests)."""
    data = json.loads(json.dumps(data))
    ports = ports or FreePorts()
    node = data.setdefault("node", {})
    for key in ("sip", "kamailio_rpc", "controller", "dtmf", "redis"):
        node.setdefault(key, {})["port"] = ports.take()
    rtpe = node.setdefault("rtpengine", {})
    rtpe["ng_port"] = ports.take(socket.SOCK_DGRAM)
    # a random 500-port media range, so consecutive stacks do not trip over each other's ports
    base = 20000 + 2 * (int.from_bytes(os.urandom(2), "big") % 4500)
    rtpe["port_min"], rtpe["port_max"] = base, base + 499
    return data


@dataclass(frozen=True)
class StackOptions:
    with_controller: bool = True
    kamailio_log_level: int = 2  # 1 = errors and warnings only (benchmarks)
    rtpengine_log_level: int = 5
    kamailio_children: int = 4
    ring_timeout_ms: int = 60_000  # how long an ordinary call rings before Kamailio's 408
    kamailio_shm_mb: int = 256
    baseline_hostport: str = "127.0.0.1:5080"
    controller_log_level: str = "INFO"


#: Run argv[2:] with the socket argv[1] as fd 3, as systemd's socket activation hands it over.
HANDOVER = ("import os, sys; os.dup2(int(sys.argv[1]), 3); "
            f"os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', LISTEN_FDNAMES='{DTMF_SOCKET_NAME}'); "
            "os.execv(sys.argv[2], sys.argv[2:])")


class LocalStack:
    """Start and stop one node's daemons. Use as a context manager; stop() is safe to call twice."""

    def __init__(self, config_data: dict[str, Any], run_dir: Path, options: StackOptions | None = None):
        self.run_dir = Path(run_dir).resolve()
        self.options = options or StackOptions()
        # a local stack makes its own control-interface credentials where the configuration has none
        self.config_data = json.loads(json.dumps(config_data))
        node = self.config_data.setdefault("node", {})
        node["secrets"] = new_secrets() | (node.get("secrets") or {})
        self.config: Config = parse_config(self.config_data, base_dir=resources.CONFIG_DIR)
        self.processes: dict[str, ManagedProcess] = {}
        self.config_path = self.run_dir / "controller.yaml"
        self._dtmf_socket: socket.socket | None = None

    # -- addresses -----------------------------------------------------------------------------
    @property
    def node(self):
        return self.config.node

    @property
    def sip_hostport(self) -> str:
        return f"{self.node.sip.address}:{self.node.sip.port}"

    @property
    def kamailio_rpc_url(self) -> str:
        return f"http://{self.node.kamailio_rpc.address}:{self.node.kamailio_rpc.port}/RPC"

    @property
    def rpc_auth(self) -> tuple[str, str]:
        """HTTP basic credentials of Kamailio's /RPC (for httpx's `auth=`)."""
        return kamailio_rpc_auth(self.node)

    @property
    def controller_url(self) -> str:
        return f"http://{self.node.controller.address}:{self.node.controller.port}"

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        for tool in ("redis-server", "rtpengine", "kamailio"):
            if shutil.which(tool) is None:
                raise FileNotFoundError(f"{tool} is not installed: run `make setup`")
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        write_private(self.config_path, yaml.safe_dump(self.config_data, sort_keys=False))
        try:
            self.start_redis()
            self.start_rtpengine()
            if self.options.with_controller:
                self.start_controller()
            self.start_kamailio()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for name in ("kamailio", "controller", "rtpengine", "redis"):
            proc = self.processes.get(name)
            if proc is not None:
                proc.stop()
        if self._dtmf_socket is not None:
            self._dtmf_socket.close()
            self._dtmf_socket = None

    # -- daemons -------------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None,
               pass_fds: tuple[int, ...] = ()) -> ManagedProcess:
        proc = ManagedProcess(name, argv, self.run_dir / "logs" / f"{name}.log", env=env, pass_fds=pass_fds)
        proc.start()
        self.processes[name] = proc
        (self.run_dir / f"{name}.pid").write_text(f"{proc.pid}\n")
        return proc

    def start_redis(self) -> None:
        r = self.node.redis
        # a file, not the command line: anyone on the host can read a process's arguments
        conf = self.run_dir / "redis.conf"
        write_private(conf, "\n".join([
            # persistence as a deployment has it: the append-only file, fsync'd every second
            f"bind {r.address}", f"port {r.port}", 'save ""', "appendonly yes", "appendfsync everysec",
            f"dir {self.run_dir}",
            "daemonize no", "loglevel warning", "protected-mode yes", f"requirepass {self.node.secrets.redis}",
            # nobody but the node's processes uses it; nothing here needs these commands
            'rename-command FLUSHALL ""', 'rename-command CONFIG ""', 'rename-command DEBUG ""', "",
        ]))
        proc = self._spawn("redis", ["redis-server", str(conf)])
        client = redis.Redis(**redis_kwargs(self.node), socket_timeout=0.5)
        proc.wait_healthy(lambda: bool(client.ping()))
        client.close()

    def start_rtpengine(self) -> None:
        rtpe = self.node.rtpengine
        conf = self.run_dir / "rtpengine.conf"
        conf.write_text(string.Template(RTPENGINE_TEMPLATE.read_text()).substitute(
            media_address=rtpe.media_address, ng_address=rtpe.ng_address, ng_port=rtpe.ng_port,
            cli_port=free_port(), port_min=rtpe.port_min, port_max=rtpe.port_max,
            dtmf_address=self.node.dtmf.address, dtmf_port=self.node.dtmf.port,
            log_level=self.options.rtpengine_log_level, max_call_duration_s=self.node.max_call_duration_s,
            redis_persistence=self.rtpengine_persistence(),
        ))
        env = dict(os.environ, RTPENGINE_REDIS_AUTH_PW=self.node.secrets.redis or "")
        proc = self._spawn("rtpengine", ["rtpengine", "--config-file", str(conf), "--config-section", "rtpengine"],
                           env=env)
        proc.wait_healthy(lambda: ng_ping((rtpe.ng_address, rtpe.ng_port)))

    def rtpengine_persistence(self) -> str:
        """rtpengine's Redis line: the product's stack persists calls (in the database after the node's own)
        unless node.rtpengine.persist_calls is off; the plain baseline keeps none, as a bare rtpengine would."""
        if not self.options.with_controller:
            return "# (baseline: no persistence)"
        if not self.node.rtpengine.persist_calls:
            return "# (node.rtpengine.persist_calls: false)"
        r = self.node.redis
        return f"redis = {r.address}:{r.port}/{rtpengine_db(r.db)}"

    def dtmf_socket(self) -> socket.socket:
        """The controller's DTMF socket, held by the stack as systemd's xfer-controller.socket holds it on
        a node: it stays bound while the controller restarts, so the digits pressed meanwhile are queued
        for the next controller rather than lost (controller/adapters/listen_fds.py)."""
        if self._dtmf_socket is None:
            sock = socket.socket(socket.AF_INET6 if ":" in self.node.dtmf.address else socket.AF_INET,
                                 socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind((self.node.dtmf.address, self.node.dtmf.port))
            self._dtmf_socket = sock
        return self._dtmf_socket

    def dtmf_queued_bytes(self) -> int:
        """What the kernel holds on the DTMF socket, unread (/proc/net/udp's rx_queue; tests)."""
        port = f":{self.node.dtmf.port:04X}"
        for table in ("/proc/net/udp", "/proc/net/udp6"):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[1].endswith(port):
                    return int(fields[4].split(":")[1], 16)
        return 0

    def start_controller(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        fd = self.dtmf_socket().fileno()
        # sd_listen_fds(3) as systemd does it: the socket as fd 3, LISTEN_PID the controller's own pid
        # (exec keeps it)
        proc = self._spawn("controller", [
            sys.executable, "-c", HANDOVER, str(fd),
            sys.executable, "-m", "controller.cli", "serve", "--config", str(self.config_path),
            "--cache-dir", str(self.run_dir.parent / "cache"), "--log-level", self.options.controller_log_level,
            "--voicemail-dir", str(self.run_dir / "voicemail"),
        ], env=env, pass_fds=(fd,))
        url = self.controller_url + "/health"
        proc.wait_healthy(lambda: httpx.get(url, timeout=0.5).status_code == 200, timeout=20)

    def restart_controller(self) -> None:
        """Stop and start the controller alone (tests of a controller restart)."""
        self.processes["controller"].stop()
        self.start_controller()

    def kamailio_secrets_cfg(self) -> Path:
        """Kamailio's main file for this run (mode 0600): the wire names (controller/wire.py) and the
        secret defines, then the project's script. Defines given with -A would be readable by anyone in
        the process's command line; the wire names are substdefs, which -A cannot give."""
        n = self.node
        lines = [
            "#!KAMAILIO",
            *substdef_lines(kamailio_wire_defines(n.max_call_duration_s)),
            f'#!define RPC_AUTH "{basic_authorization(*self.rpc_auth)}"',
            f'#!define REDIS_SERVER "name=st;addr={n.redis.address};port={n.redis.port};db={n.redis.db};'
            f'pass={n.secrets.redis}"',
            f'include_file "{KAMAILIO_CFG}"',
            "",
        ]
        path = self.run_dir / "kamailio.cfg"
        write_private(path, "\n".join(lines))
        return path

    def trunks_file(self) -> Path:
        """The trunks' source addresses for Kamailio's permissions module: group 1, /32 (/128), port 0 = any."""
        rows = []
        for name, trunk in self.config.trunks.items():
            mask = 128 if ":" in trunk.address else 32
            rows.append(f"1 {trunk.address} {mask} {trunk.port if trunk.match_port else 0} {name}")
        path = self.run_dir / "trunks.list"
        path.write_text("\n".join(rows) + "\n")
        return path

    def kamailio_defines(self) -> list[str]:
        n, o = self.node, self.options
        defines = {
            "LISTEN_UDP": f"udp:{n.sip.address}:{n.sip.port}",
            "LISTEN_TCP": f"tcp:{n.sip.address}:{n.sip.port}",
            "LISTEN_RPC": f"tcp:{n.kamailio_rpc.address}:{n.kamailio_rpc.port}",
            "SIP_ALIAS": f'"{n.sip.address}:{n.sip.port}"',
            "SIP_PORT": str(n.sip.port),
            "RPC_PORT": str(n.kamailio_rpc.port),
            "CONTROLLER_IP": f'"{n.controller.address}"',
            "TRUNKS_FILE": f'"{self.trunks_file()}"',
            "RTPENGINE_SOCK": f'"udp:{n.rtpengine.ng_address}:{n.rtpengine.ng_port}"',
            "CTL_SOCK": f'"unix:{self.run_dir / "kamailio_ctl"}"',
            "BASELINE_HOSTPORT": f'"{o.baseline_hostport}"',
            "PROXY_SCRIPT": f'"{resources.KAMAILIO_PY}"',
            "LOG_LEVEL": str(o.kamailio_log_level),
            "CHILDREN": str(o.kamailio_children),
            "RING_TIMEOUT_MS": str(o.ring_timeout_ms),
        }
        argv = []
        for key, value in defines.items():
            argv += ["-A", f"{key}={value}"]
        if o.with_controller:
            argv += ["-A", "WITH_CONTROLLER"]
        return argv

    def proxy_settings(self) -> Path:
        """What Kamailio's Python needs (Redis and its password, record lifetimes): a 0600 file."""
        n = self.node
        settings = ProxySettings(n.redis.address, n.redis.port, n.redis.db, n.secrets.redis, RecordLimits(
            max_call_s=n.max_call_duration_s, ttl_after_end_s=n.call_keys_ttl_after_end_s,
            events_maxlen=n.event_log_max, events_retention_s=n.event_log_retention_s))
        path = self.run_dir / "proxy.json"
        write_private(path, settings.to_json())
        return path

    def kamailio_env(self) -> dict[str, str]:
        """Kamailio's Python (the system python3) finds the controller package and redis-py where this
        interpreter has them, and its settings file."""
        paths = dict.fromkeys(str(Path(module.__file__).resolve().parents[1]) for module in (controller, redis))
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "VIRTUAL_ENV")}
        # app_python3 finds its standard library by looking for `python3` on PATH: a virtualenv's (of
        # another Python build) must not come first, or the embedded interpreter loads a foreign stdlib
        env["PATH"] = os.pathsep.join(d for d in env.get("PATH", "/usr/bin:/bin").split(os.pathsep)
                                      if not (Path(d).parent / "pyvenv.cfg").exists())
        return env | {"PYTHONPATH": os.pathsep.join(paths), "PYTHONDONTWRITEBYTECODE": "1",
                      PROXY_SETTINGS_ENV: str(self.proxy_settings())}

    def publish(self, config: Config | None = None) -> None:
        """Publish the registrar directory and the routing table of `config` (default: the stack's) for
        Kamailio, as the controller does at start-up and `xferctl publish` after a change."""
        client = redis.Redis(**redis_kwargs(self.node), socket_timeout=2.0)
        try:
            publication(config or self.config).publish_sync(client)
        finally:
            client.close()

    def start_kamailio(self) -> None:
        argv = [
            "kamailio", "-f", str(self.kamailio_secrets_cfg()), "-DD", "-E", "-m", str(self.options.kamailio_shm_mb),
            "-Y", str(self.run_dir), "-P", str(self.run_dir / "kamailio.main.pid"), *self.kamailio_defines(),
        ]
        (self.run_dir / "kamailio.argv").write_text(" ".join(argv) + "\n")
        env = None
        if self.options.with_controller:
            self.publish()  # the routing table first: Kamailio routes calls from it, with or without a controller
            env = self.kamailio_env()
        proc = self._spawn("kamailio", argv, env=env)
        proc.wait_healthy(self._kamailio_ready, timeout=20)

    def _kamailio_ready(self) -> bool:
        reply = httpx.post(self.kamailio_rpc_url, json={"jsonrpc": "2.0", "method": "core.version", "id": 1},
                           timeout=0.5, auth=self.rpc_auth)
        return reply.status_code == 200 and "result" in reply.json()


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (it holds passwords or secrets)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT


def ng_ping(address: tuple[str, int], timeout: float = 0.3) -> bool:
    """One synchronous rtpengine ng ping (start-up probe; the service uses the async client)."""
    cookie = os.urandom(4).hex().encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(cookie + b" " + bencode.encode({"command": "ping"}), address)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data, _ = s.recvfrom(65535)
            got, _, body = data.partition(b" ")
            if got == cookie:
                return bencode.decode(body).get("result") == "pong"
    return False
