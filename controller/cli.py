"""xferctl: the controller's command line.

  xferctl check-config [FILE]      validate a configuration without starting anything
  xferctl serve --config FILE      run the controller service (what systemd / Ansible runs)
  xferctl stack [--config FILE]    run the whole local stack on loopback until Ctrl-C
  xferctl demo [--scenario refer]  local stack + a demo call through it, with a summary
  xferctl events [--config FILE]   print the event log (calls and transfers) from Redis
  xferctl voicemails [--config F]  list recorded voicemail messages
  xferctl diagram [--write]        the transfer state diagram (Mermaid), generated from the tables
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path

from controller.config import ConfigError, Secrets, load_config
from controller.credentials import redis_kwargs
from controller.devstack import DEMO_SCENARIOS, resources

# the checkout's files, or the installed copies; run/ in a checkout, else $XFERCTL_RUN_DIR or the XDG state dir
DEFAULT_CONFIG = resources.EXAMPLE_CONFIG
DEFAULT_RUN_DIR = resources.RUN_DIR


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(f"{args.file}: invalid configuration\n{exc}", file=sys.stderr)
        return 1
    tenants = ", ".join(f"{tid} ({len(t.extensions)} extensions, {len(t.dids)} DIDs)"
                        for tid, t in config.tenants.items())
    print(f"{args.file}: ok: node {config.node.name}; tenants: {tenants or 'none'}")
    for warning in config.warnings():
        print(f"{args.file}: warning: {warning}", file=sys.stderr)
    if Path(args.file).stat().st_mode & 0o077 and config.node.secrets.missing() != list(Secrets.model_fields):
        print(f"{args.file}: warning: holds secrets but is readable by others (chmod 600)", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from controller.logs import setup_logging
    from controller.service.app import serve

    setup_logging(args.log_level)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"{args.config}: invalid configuration\n{exc}", file=sys.stderr)
        return 1
    if config.node.secrets.missing():
        # secure by default: no control interface runs without its credentials
        print(f"{args.config}: node.secrets.{', node.secrets.'.join(config.node.secrets.missing())}: required "
              "to serve (docs/SECURITY.md)", file=sys.stderr)
        return 1
    serve(config, args.cache_dir, args.voicemail_dir)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Publish a (changed) configuration's registrar directory and routing table: Kamailio routes the next
    call with it, without a restart. Refused whole when the file is invalid (nothing half-applied)."""
    import redis

    from controller.publish import publication

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"{args.config}: invalid configuration, nothing published\n{exc}", file=sys.stderr)
        return 1
    published = publication(config)
    client = redis.Redis(**redis_kwargs(config.node), socket_timeout=5)
    try:
        published.publish_sync(client)
    except redis.RedisError as exc:
        print(f"publishing to Redis at {config.node.redis.address}:{config.node.redis.port} failed: {exc}",
              file=sys.stderr)
        return 1
    finally:
        client.close()
    print(f"published routing table {published.version} and {len(published.registrar)} registrar entries")
    return 0


def cmd_stack(args: argparse.Namespace) -> int:
    import yaml

    from controller.devstack.stack import LocalStack

    data = yaml.safe_load(Path(args.config).read_text())
    stack = LocalStack(data, args.run_dir / "stack")
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    with stack:
        print(f"stack up: SIP {stack.sip_hostport}, controller {stack.controller_url}, "
              f"logs in {stack.run_dir / 'logs'}; Ctrl-C stops it")
        try:
            while not stopping and all(p.alive() for p in stack.processes.values()):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        dead = [n for n, p in stack.processes.items() if not p.alive()]
        if dead:
            print(f"stopping: {', '.join(dead)} exited; see {stack.run_dir / 'logs'}", file=sys.stderr)
            return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from controller.devstack.demo import run_demo

    return run_demo(Path(args.config), args.run_dir / "demo", args.scenario)


def cmd_voicemails(args: argparse.Namespace) -> int:
    from redis.asyncio import Redis

    from controller.adapters.voicemail import list_voicemails

    config = load_config(args.config)

    async def show() -> list[dict[str, str]]:
        redis = Redis(**redis_kwargs(config.node))
        try:
            return await list_voicemails(redis, args.count)
        finally:
            await redis.aclose()

    messages = asyncio.run(show())
    if args.json:
        print(json.dumps(messages, indent=1))
        return 0
    for m in messages:
        print(f"{m['id']}  {m['tenant']}/{m['mailbox']}  from {m['client_number'] or 'unknown'}  "
              f"{float(m['seconds']):.1f} s  {m['file'] or '(no audio)'}")
    if not messages:
        print("no voicemail")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from redis.asyncio import Redis

    from controller.adapters.redis_store import ConversationStore

    config = load_config(args.config)

    async def show() -> None:
        redis = Redis(**redis_kwargs(config.node))
        store = ConversationStore(redis, max_call_s=1, ttl_after_end_s=1)
        for event in await store.read_events(args.count):
            print(json.dumps(event, sort_keys=True))
        await redis.aclose()

    asyncio.run(show())
    return 0


ARCHITECTURE = resources.ARCHITECTURE_DOC
DIAGRAM_START, DIAGRAM_END = "<!-- state-diagram:start -->", "<!-- state-diagram:end -->"


def diagram_block() -> str:
    from controller.core import to_mermaid

    return f"{DIAGRAM_START}\n```mermaid\n{to_mermaid().rstrip()}\n```\n{DIAGRAM_END}"


def cmd_diagram(args: argparse.Namespace) -> int:
    if not args.write:
        print(diagram_block())
        return 0
    text = ARCHITECTURE.read_text()
    head, _, rest = text.partition(DIAGRAM_START)
    _, _, tail = rest.partition(DIAGRAM_END)
    ARCHITECTURE.write_text(head + diagram_block() + tail)
    print(f"wrote the state diagram into {ARCHITECTURE}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xferctl", description="Call-transfer controller for Kamailio")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-config", help="validate a configuration file")
    p.add_argument("file", type=Path, nargs="?", default=DEFAULT_CONFIG, help="default: the example configuration")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("serve", help="run the controller service")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_RUN_DIR / "cache",
                   help="where generated prompts and converted audio are kept")
    p.add_argument("--voicemail-dir", type=Path, default=DEFAULT_RUN_DIR / "voicemail",
                   help="where voicemail recordings (WAV + JSON metadata) are kept")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("publish", help="publish a configuration's routing table and registrar for Kamailio")
    p.add_argument("--config", type=Path, required=True)
    p.set_defaults(func=cmd_publish)

    for name, func, help_text in (("stack", cmd_stack, "run the local stack until Ctrl-C"),
                                  ("demo", cmd_demo, "local stack plus a demo call")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
        p.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
        if name == "demo":
            p.add_argument("--scenario", choices=DEMO_SCENARIOS, default=DEMO_SCENARIOS[0],
                           help="hotkey: # 1 0 1 and a consultation; refer: the phone's own Transfer button")
        p.set_defaults(func=func)

    p = sub.add_parser("events", help="print the event log")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--count", type=int, default=100)
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("voicemails", help="list recorded voicemail messages")
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_voicemails)

    p = sub.add_parser("diagram", help="the transfer state diagram, generated from the transition tables")
    p.add_argument("--write", action="store_true", help="replace the diagram in docs/ARCHITECTURE.md")
    p.set_defaults(func=cmd_diagram)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
