"""The controller service: the transfer engine fed by background consumers, and a small HTTP server.

Kamailio never calls the controller: it routes every new call itself (controller/proxy) and hands the
controller only the events of calls with a feature in progress, on a Redis stream.

HTTP endpoints (on node.controller):
  GET  /health   liveness: the service answers (no dependency probes, so it is cheap and certain)
  GET  /ready    readiness: Redis and rtpengine probed, 503 when one is unavailable
  GET  /metrics  Prometheus metrics, for the bearer token of node.secrets.metrics
Background: the Kamailio notification consumer (Redis stream), the rtpengine DTMF listener, the
timer loop (deadlines in Redis) and the rtpengine restart watch, all feeding the transfer engine.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web
from redis.asyncio import Redis

from controller.adapters.dtmf import (
    QUEUED_DIGIT_MAX_AGE_S,
    DtmfDeduplicator,
    DtmfEvent,
    DtmfListener,
    is_stale,
    listen_for_dtmf,
)
from controller.adapters.kamailio_rpc import KamailioRpc
from controller.adapters.kamailio_sip import SipExecutor
from controller.adapters.listen_fds import inherited_datagram_socket, queued_datagrams
from controller.adapters.mixer import MixerService
from controller.adapters.prompts import PromptLibrary
from controller.adapters.redis_limits import OutsideTransferLimits
from controller.adapters.redis_store import ConversationStore
from controller.adapters.redis_timers import TimerLoop, TimerStore
from controller.adapters.rtpengine_media import MediaExecutor
from controller.adapters.rtpengine_ng import RtpengineNg
from controller.adapters.voicemail import VoicemailBox
from controller.config import Config
from controller.credentials import kamailio_rpc_auth, matches, redis_kwargs
from controller.engine.engine import TransferEngine
from controller.logs import call_logger
from controller.metrics import Metrics
from controller.publish import publication
from controller.service.notifications import NotificationConsumer
from controller.service.publisher import PublicationKeeper
from controller.service.rtpengine_watch import RtpengineWatch
from controller.wire import DTMF_SOCKET_NAME

log = logging.getLogger(__name__)

CONFIG_KEY = web.AppKey("config", Config)
CACHE_DIR_KEY = web.AppKey("cache_dir", Path)
VOICEMAIL_DIR_KEY = web.AppKey("voicemail_dir", Path)
STATE_KEY = web.AppKey("state", dict)
KEEPALIVE_TIMEOUT_S = 15.0  # an idle kept-alive connection is closed (Kamailio reconnects when it needs to)


def build_app(config: Config, cache_dir: Path, voicemail_dir: Path) -> web.Application:
    app = web.Application(client_max_size=16 * 1024)  # only GETs are served: any body larger is refused (413)
    app[CONFIG_KEY] = config
    app[CACHE_DIR_KEY] = cache_dir
    app[VOICEMAIL_DIR_KEY] = voicemail_dir
    app[STATE_KEY] = {}
    app.middlewares.append(authorize)
    app.router.add_get("/health", handle_health)
    app.router.add_get("/ready", handle_ready)
    app.router.add_get("/metrics", handle_metrics)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


async def on_startup(app: web.Application) -> None:
    config = app[CONFIG_KEY]
    state = app[STATE_KEY]
    node = config.node
    metrics = Metrics()
    redis = Redis(**redis_kwargs(node), socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30)
    store = ConversationStore(redis, max_call_s=node.max_call_duration_s,
                              ttl_after_end_s=node.call_keys_ttl_after_end_s, events_maxlen=node.event_log_max,
                              events_retention_s=node.event_log_retention_s)
    published = publication(config)
    try:
        await published.publish(redis)
    except Exception:
        # Kamailio keeps the directory and table published before (Redis persists them); the keeper
        # publishes as soon as Redis answers
        metrics.errors.labels("redis").inc()
        log.exception("could not publish the registrar directory and the routing table to Redis")
    keeper = PublicationKeeper(redis, published, metrics)
    keeper.start()

    ng = RtpengineNg((node.rtpengine.ng_address, node.rtpengine.ng_port),
                     on_rtt=lambda cmd, s: metrics.rtpengine_rtt.labels(cmd).observe(s))
    await ng.start()

    rpc_base = f"http://{node.kamailio_rpc.address}:{node.kamailio_rpc.port}"
    def count_rpc(method: str) -> None:
        metrics.kamailio_rpc.labels(method).inc()

    kamailio = KamailioRpc(rpc_base + "/RPC", auth=kamailio_rpc_auth(node), on_request=count_rpc)
    kamailio_xfer = KamailioRpc(rpc_base + "/xfer", auth=kamailio_rpc_auth(node), on_request=count_rpc)
    timers = TimerStore(redis)
    voicemail = VoicemailBox(ng, redis, app[VOICEMAIL_DIR_KEY], node.controller.address)
    dedup = DtmfDeduplicator()
    limits = OutsideTransferLimits(redis, slot_lifetime_s=node.max_call_duration_s)
    mixer = MixerService(node.rtpengine.media_address, metrics)
    engine = TransferEngine(
        config, store, MediaExecutor(ng, PromptLibrary(app[CACHE_DIR_KEY] / "prompts"), dedup.expect_echo, mixer),
        SipExecutor(kamailio, kamailio_xfer, store, f"{node.sip.address}:{node.sip.port}"), timers, metrics,
        limits, voicemail)
    background: set[asyncio.Task[None]] = set()

    async def digit_to_engine(event: DtmfEvent) -> None:
        conversation = await store.conversation_for_call(event.call_id)
        if conversation:
            await engine.on_digit(conversation, event.source_tag, event.digit, event.tags)

    def on_digit(event: DtmfEvent) -> None:
        metrics.dtmf_digits.inc()
        call_logger(log, event.call_id).info("DTMF %r from tag %s", event.digit, event.source_tag)
        task = asyncio.create_task(digit_to_engine(event))
        background.add(task)  # keep a reference until done; log what it raised
        task.add_done_callback(_finished(background, "DTMF"))

    # a DTMF socket systemd (or the local stack) holds across controller restarts: the digits pressed
    # while no controller ran are queued in it, and are applied in order before new ones are read and
    # before any deadline that passed meanwhile fires (A's dialling is completed as A typed it)
    dtmf_address = (node.dtmf.address, node.dtmf.port)
    held = inherited_datagram_socket(DTMF_SOCKET_NAME, dtmf_address)
    dtmf_listener = DtmfListener(on_digit, dedup=dedup, allowed_source=node.rtpengine.ng_address,
                                 on_malformed=lambda data, why: metrics.errors.labels("dtmf_malformed").inc())
    queued, stale = queued_datagrams(held) if held is not None else [], 0
    for data, addr in queued:
        event = dtmf_listener.accept(data, addr)
        if event is not None and is_stale(event, time.time()):
            stale += 1  # pressed too long ago to act on now
            metrics.errors.labels("dtmf_stale").inc()
        elif event is not None:
            metrics.dtmf_digits.inc()
            await _logged(digit_to_engine(event), "queued DTMF")
    if queued:
        log.warning("%d DTMF datagrams had arrived while no controller ran: applied (%d older than %d s "
                    "dropped)", len(queued), stale, QUEUED_DIGIT_MAX_AGE_S)
    dtmf_transport, _ = await listen_for_dtmf(dtmf_listener, dtmf_address, sock=held)

    consumer = NotificationConsumer(store, metrics, consumer=f"{socket.gethostname()}-{node.name}", engine=engine)
    consumer.start()
    timer_loop = TimerLoop(timers, engine.on_timer)
    timer_loop.start()
    rtpengine_watch = RtpengineWatch(ng, redis, store, engine.on_media_restored, metrics,
                                     node_key=f"{node.rtpengine.ng_address}:{node.rtpengine.ng_port}")
    rtpengine_watch.start()
    state.update(keeper=keeper, metrics=metrics, redis=redis, store=store, ng=ng, dtmf=dtmf_transport,
                 consumer=consumer, timer_loop=timer_loop, rtpengine_watch=rtpengine_watch, voicemail=voicemail,
                 kamailio=kamailio, kamailio_xfer=kamailio_xfer, background=background, mixer=mixer)
    log.info("controller %s ready on %s:%s", node.name, node.controller.address, node.controller.port)


async def on_cleanup(app: web.Application) -> None:
    """Clean shutdown: stop reading, close sockets; every step safe if start-up stopped half-way."""
    state = app[STATE_KEY]
    if "keeper" in state:
        await state["keeper"].stop()
    if "consumer" in state:
        await state["consumer"].stop()
    if "timer_loop" in state:
        await state["timer_loop"].stop()
    if "rtpengine_watch" in state:
        await state["rtpengine_watch"].stop()
    if "voicemail" in state:
        await state["voicemail"].close()  # finish recordings in progress: nothing said is lost
    for task in list(state.get("background", ())):
        task.cancel()
    if "mixer" in state:
        await state["mixer"].close()
    for name in ("kamailio", "kamailio_xfer"):
        if name in state:
            await state[name].aclose()
    if "dtmf" in state:
        state["dtmf"].close()
    if "ng" in state:
        await state["ng"].close()
    if "redis" in state:
        await state["redis"].aclose()
    log.info("controller stopped")


#: Who may call what: /metrics is the scraper's (bearer token); /health and /ready anyone's.
def _allowed(request: web.Request, config: Config) -> bool:
    node, presented = config.node, request.headers.get("Authorization")
    if request.path == "/metrics":
        assert node.secrets.metrics is not None
        return matches(presented, f"Bearer {node.secrets.metrics}")
    return True


@web.middleware
async def authorize(request: web.Request, handler: Any) -> web.StreamResponse:
    """Refuse a stranger before anything is read (the metrics are for the scraper's token only)."""
    if not _allowed(request, request.app[CONFIG_KEY]):
        request.app[STATE_KEY]["metrics"].errors.labels("unauthorized").inc()
        return web.Response(status=401, text="credentials required\n", headers={"WWW-Authenticate": "Bearer"})
    return await handler(request)


async def handle_health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def handle_ready(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body: dict[str, Any] = {}
    for name, probe in (("redis", state["store"].ping), ("rtpengine", state["ng"].ping)):
        try:
            await asyncio.wait_for(probe(), 1.0)
            body[name] = "ok"
        except Exception as exc:
            body[name] = f"unavailable: {exc.__class__.__name__}"
    ready = all(v == "ok" for v in body.values())
    return web.json_response(body | {"status": "ok" if ready else "degraded"}, status=200 if ready else 503)


async def handle_metrics(request: web.Request) -> web.Response:
    metrics: Metrics = request.app[STATE_KEY]["metrics"]
    return web.Response(body=metrics.render(), content_type="text/plain")


async def _logged(work: Any, what: str) -> None:
    try:
        await work
    except Exception:
        log.exception("%s handling failed", what)


def _finished(tasks: set[asyncio.Task[None]], what: str) -> Callable[[asyncio.Task[None]], None]:
    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s handling failed", what, exc_info=task.exception())
    return done


def serve(config: Config, cache_dir: Path, voicemail_dir: Path) -> None:
    """Run until SIGINT/SIGTERM; aiohttp then runs on_cleanup (a clean shutdown)."""
    # libuv's event loop: socket I/O is the controller's largest cost under load (docs/BENCHMARKS.md)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(build_app(config, cache_dir, voicemail_dir), host=config.node.controller.address,
                port=config.node.controller.port, access_log=None, print=None, shutdown_timeout=5,
                keepalive_timeout=KEEPALIVE_TIMEOUT_S)
