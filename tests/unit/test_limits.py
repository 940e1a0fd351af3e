"""Limits on transfers to outside numbers (against a fake Redis), and how the engine applies them and the
numbering plan when it resolves a transfer's number."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from controller.adapters.redis_limits import LIVE_KEY, MINUTE_KEY, MINUTE_TTL_S, OutsideTransferLimits
from controller.config import load_config
from controller.core import (
    Conversation,
    ConversationStarted,
    OutcomeKind,
    RecordOutcome,
    TargetRejected,
    TargetResolved,
)
from controller.core.types import RejectReason, TargetKind
from controller.engine.context import ConversationIO
from controller.engine.executor import ActionExecutor
from controller.metrics import Metrics
from controller.numbering_plan import NumberingPlan
from controller.tenant_settings import settings_for

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
CONFIG = load_config(EXAMPLE)
PLAN = NumberingPlan(max_outside_transfers_concurrent=3, max_outside_transfers_per_minute=5)


class FakePipeline:
    """Queues commands and applies them together on execute, as MULTI/EXEC does."""

    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis
        self.commands: list[tuple[str, tuple[Any, ...]]] = []

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.commands = []

    def __getattr__(self, name: str) -> Any:
        def queue(*args: Any) -> FakePipeline:
            self.commands.append((name, args))
            return self

        return queue

    async def execute(self) -> list[Any]:
        await asyncio.sleep(0)  # let racing replicas interleave between transactions
        self.redis.transactions += 1
        return [getattr(self.redis, f"_{name}")(*args) for name, args in self.commands]


class FakeRedis:
    """The few commands the limiter uses, with their Redis semantics (scores and TTLs in seconds)."""

    def __init__(self) -> None:
        self.strings: dict[str, int] = {}
        self.zsets: dict[str, dict[str, float]] = {}
        self.ttl: dict[str, int] = {}
        self.transactions = 0
        self.fail = False

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        assert transaction, "the limiter's counting must be one MULTI"
        if self.fail:
            raise RedisConnectionError("connection refused")
        return FakePipeline(self)

    async def zrem(self, key: str, *members: str) -> int:
        await asyncio.sleep(0)
        return self._zrem(key, *members)

    def _incr(self, key: str) -> int:
        self.strings[key] = self.strings.get(key, 0) + 1
        return self.strings[key]

    def _expire(self, key: str, seconds: int) -> bool:
        self.ttl[key] = seconds
        return True

    def _zremrangebyscore(self, key: str, low: str, high: float) -> int:
        zset = self.zsets.get(key, {})
        gone = [member for member, score in zset.items() if score <= high]
        for member in gone:
            del zset[member]
        return len(gone)

    def _zadd(self, key: str, mapping: dict[str, float]) -> int:
        zset = self.zsets.setdefault(key, {})
        new = sum(member not in zset for member in mapping)
        zset.update(mapping)
        return new

    def _zcard(self, key: str) -> int:
        return len(self.zsets.get(key, {}))

    def _zrem(self, key: str, *members: str) -> int:
        zset = self.zsets.get(key, {})
        return sum(zset.pop(member, None) is not None for member in members)


class Clock:
    def __init__(self, now: float = 1_000_020.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(redis: FakeRedis, clock: Clock, lifetime: int = 14400) -> OutsideTransferLimits:
    return OutsideTransferLimits(redis, slot_lifetime_s=lifetime, clock=clock)  # type: ignore[arg-type]


def live(redis: FakeRedis, tenant: str = "acme") -> set[str]:
    return set(redis.zsets.get(LIVE_KEY.format(tenant), {}))


# ---------------------------------------------------------------------------------------------
# the limiter


async def test_concurrent_slots_are_limited_and_freed_by_release() -> None:
    redis, clock = FakeRedis(), Clock()
    limits = limiter(redis, clock)
    assert [await limits.acquire("acme", f"c{i}.t1", PLAN) for i in range(3)] == [None, None, None]
    assert await limits.acquire("acme", "c3.t1", PLAN) == "concurrent"
    assert live(redis) == {"c0.t1", "c1.t1", "c2.t1"}  # a refused transfer holds no slot
    await limits.release("acme", "c1.t1")
    assert await limits.acquire("acme", "c3.t1", PLAN) is None
    assert live(redis) == {"c0.t1", "c2.t1", "c3.t1"}
    assert await limits.acquire("beta", "c9.t1", PLAN) is None  # per tenant
    assert redis.ttl[LIVE_KEY.format("acme")] == 14400


async def test_taking_and_releasing_a_slot_twice_counts_once() -> None:
    redis, clock = FakeRedis(), Clock()
    limits = limiter(redis, clock)
    assert await limits.acquire("acme", "c0.t1", PLAN) is None
    assert await limits.acquire("acme", "c0.t1", PLAN) is None  # the same transfer again: still one slot
    assert live(redis) == {"c0.t1"}
    await limits.release("acme", "c0.t1")
    await limits.release("acme", "c0.t1")  # a second release frees nothing else
    await limits.release("acme")  # nothing to release: no round trip
    assert live(redis) == set()


async def test_per_minute_limit_counts_attempts_in_the_clocks_minute() -> None:
    redis, clock = FakeRedis(), Clock(60 * 1000 + 5)
    limits = limiter(redis, clock)
    results = []
    for i in range(6):
        results.append(await limits.acquire("acme", f"c{i}.t1", PLAN.model_copy(
            update={"max_outside_transfers_concurrent": 100})))
        await limits.release("acme", f"c{i}.t1")  # short transfers: only the rate counts
    assert results == [None] * 5 + ["per_minute"]
    key = MINUTE_KEY.format("acme", 1000)
    assert redis.strings[key] == 6 and redis.ttl[key] == MINUTE_TTL_S
    assert live(redis) == set()
    clock.now += 55  # the next minute starts a new window
    assert await limits.acquire("acme", "c7.t1", PLAN) is None
    assert redis.strings[MINUTE_KEY.format("acme", 1001)] == 1


async def test_a_slot_nobody_released_lapses_after_the_longest_call() -> None:
    redis, clock = FakeRedis(), Clock()
    limits = limiter(redis, clock, lifetime=600)
    for i in range(3):
        assert await limits.acquire("acme", f"dead{i}.t1", PLAN) is None
        clock.now += 61  # new minutes: the rate limit stays out of the way
    assert await limits.acquire("acme", "new.t1", PLAN) == "concurrent"
    clock.now += 600  # the controller holding them died; their calls cannot last this long
    assert await limits.acquire("acme", "new.t1", PLAN) is None
    assert live(redis) == {"new.t1"}


async def test_zero_means_no_outside_transfers() -> None:
    redis, clock = FakeRedis(), Clock()
    limits = limiter(redis, clock)
    assert await limits.acquire("acme", "c.t1", NumberingPlan(max_outside_transfers_concurrent=0)) == "concurrent"
    assert await limits.acquire("acme", "c.t2", NumberingPlan(max_outside_transfers_per_minute=0)) == "per_minute"
    assert live(redis) == set()


async def test_one_transaction_per_transfer() -> None:
    redis, clock = FakeRedis(), Clock()
    await limiter(redis, clock).acquire("acme", "c.t1", PLAN)
    assert redis.transactions == 1


async def test_racing_replicas_never_exceed_the_limit() -> None:
    redis, clock = FakeRedis(), Clock()
    replicas = [limiter(redis, clock) for _ in range(4)]
    plan = PLAN.model_copy(update={"max_outside_transfers_per_minute": 1000})
    results = await asyncio.gather(*(replicas[i % 4].acquire("acme", f"c{i}.t1", plan) for i in range(20)))
    granted = {f"c{i}.t1" for i, result in enumerate(results) if result is None}
    assert 1 <= len(granted) <= 3
    assert live(redis) == granted  # every refused contender took its slot back


# ---------------------------------------------------------------------------------------------
# the engine: the numbering plan, loops and the limits when a transfer's number is resolved


class FakeStore:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def append_event(self, event: str, conversation_id: str, fields: dict[str, Any]) -> None:
        self.events.append((event, fields))


class FakeSip:
    async def forget_call(self, call_id: str, leg_call_ids: list[str]) -> None:
        pass


class FakeTimers:
    async def cancel_all(self, conversation: str, names: list[str]) -> None:
        pass


def engine(redis: FakeRedis, plan_changes: dict[str, Any] | None = None) -> tuple[ActionExecutor, FakeStore]:
    config = CONFIG
    if plan_changes:
        tenant = CONFIG.tenants["acme"]
        plan = tenant.numbering_plan.model_copy(update=plan_changes)
        config = CONFIG.model_copy(update={"tenants": {"acme": tenant.model_copy(update={"numbering_plan": plan})}})
    store = FakeStore()
    limits = limiter(redis, Clock())
    built = ActionExecutor(config, store, None, FakeSip(), FakeTimers(), limits, Metrics(),  # type: ignore[arg-type]
                           clock=lambda: 0)
    return built, store


def restored(machine: Conversation, **changes: Any) -> Conversation:
    """The machine as a snapshot with `changes` would restore it (a state reached by earlier transfers)."""
    return Conversation.from_dict(machine.to_dict() | changes)


def conversation(transferor: str = "100", client: str | None = "+79161112233") -> tuple[Conversation, ConversationIO]:
    machine = Conversation("conv", settings_for(CONFIG, CONFIG.tenants["acme"], "incoming"))
    machine.handle(ConversationStarted(direction="incoming", client_leg="ctag", transferor_leg="atag",
                                       client_number=client, transferor_number=transferor, did="+74951110000",
                                       origin="did:+74951110000->extension:100"))
    return machine, ConversationIO("conv", "acme", "incoming", "call-1", "ctag", "atag", "ctag", "atag")


async def test_an_allowed_outside_number_goes_out_in_e164_and_takes_a_slot() -> None:
    redis = FakeRedis()
    built, _ = engine(redis)
    machine, io = conversation()
    resolved = await built._resolve(machine, io, "t1", "89169999999")
    assert resolved == TargetResolved("t1", ("sip:+79169999999@127.0.0.2:5060",), TargetKind.TRUNK)
    assert io.outside_slots == ["conv.t1"] and live(redis) == {"conv.t1"} and io.refusals == {}


async def test_an_internal_transfer_takes_no_slot() -> None:
    redis = FakeRedis()
    built, _ = engine(redis)
    machine, io = conversation()
    resolved = await built._resolve(machine, io, "t1", "101")
    assert isinstance(resolved, TargetResolved) and resolved.target_kind is TargetKind.EXTENSION
    assert io.outside_slots == [] and redis.transactions == 0


@pytest.mark.parametrize(("number", "reason", "refusal"), [
    ("89161112233", RejectReason.FORBIDDEN, "own_number"),  # the client, in another form
    ("9161112233", RejectReason.FORBIDDEN, "own_number"),
    ("74951110000", RejectReason.FORBIDDEN, "own_number"),  # the DID the client called
    ("84951110001", RejectReason.FORBIDDEN, "own_number"),  # another DID of the tenant
    ("88091234567", RejectReason.FORBIDDEN, "denied_prefix"),
    ("+12125551234", RejectReason.FORBIDDEN, "not_allowed"),
    ("1040", RejectReason.UNKNOWN_NUMBER, "wrong_length"),  # a mistyped number: the "unknown" prompt
    ("8" * 16, RejectReason.UNKNOWN_NUMBER, "too_long"),
])
async def test_numbers_the_plan_or_the_conversation_forbid(number: str, reason: RejectReason, refusal: str) -> None:
    redis = FakeRedis()
    built, store = engine(redis)
    machine, io = conversation()
    assert await built._resolve(machine, io, "t1", number) == TargetRejected("t1", reason)
    assert io.refusals == {"t1": refusal} and io.outside_slots == [] and redis.transactions == 0
    await built._record_outcome(io, RecordOutcome("t1", OutcomeKind.REFUSED, number, cause=str(reason)))
    event, fields = store.events[-1]
    assert (event, fields["cause"], fields["refusal"]) == ("transfer.refused", refusal, refusal)
    assert io.refusals == {}


async def test_a_party_on_a_live_leg_is_forbidden_too() -> None:
    redis = FakeRedis()
    built, _ = engine(redis)
    machine, io = conversation()
    # B took over from A after an earlier transfer: the transferor is a dial string now
    machine = restored(machine, transferor_number="lookup:sip:102@acme.test")
    assert await built._resolve(machine, io, "t2", "102") == TargetRejected("t2", RejectReason.FORBIDDEN)
    machine = restored(machine, transferor_number="sip:+79165550000@127.0.0.2:5060")
    assert await built._resolve(machine, io, "t3", "89165550000") == TargetRejected("t3", RejectReason.FORBIDDEN)
    assert io.refusals == {"t3": "own_number"}  # t2: A's own extension, the machine's "forbidden"


async def test_a_number_on_a_leg_that_ended_may_be_tried_again() -> None:
    redis = FakeRedis()
    built, _ = engine(redis)
    machine, io = conversation()
    b = "sip:+79165550001@127.0.0.2:5060"
    leg = {"id": "conv.t1.b1", "role": "target", "state": "ringing", "number": b, "kind": "trunk"}
    machine = restored(machine, legs=machine.to_dict()["legs"] | {"conv.t1.b1": leg})
    assert await built._resolve(machine, io, "t2", "89165550001") == TargetRejected("t2", RejectReason.FORBIDDEN)
    machine = restored(machine, legs=machine.to_dict()["legs"] | {"conv.t1.b1": leg | {"state": "ended"}})
    # B was busy: A may try B again later
    assert isinstance(await built._resolve(machine, io, "t3", "89165550001"), TargetResolved)


async def test_over_the_limit_the_transfer_is_forbidden_with_cause_limit() -> None:
    redis = FakeRedis()
    built, store = engine(redis, {"max_outside_transfers_per_minute": 1})
    machine, io = conversation()
    assert isinstance(await built._resolve(machine, io, "t1", "89169999999"), TargetResolved)
    await built._record_outcome(io, RecordOutcome("t1", OutcomeKind.RETURNED, "89169999999", mode="transferor_on_line"))
    assert io.outside_slots == [] and live(redis) == set()  # B's leg is over: its slot is free
    assert await built._resolve(machine, io, "t2", "89169999998") == TargetRejected("t2", RejectReason.FORBIDDEN)
    await built._record_outcome(io, RecordOutcome("t2", OutcomeKind.REFUSED, "89169999998", cause="forbidden"))
    assert store.events[-1][0] == "transfer.refused" and store.events[-1][1]["cause"] == "limit"


async def test_when_a_blind_transfer_fails_the_event_still_names_the_refusal() -> None:
    redis = FakeRedis()
    built, store = engine(redis, {"max_outside_transfers_concurrent": 0})
    machine, io = conversation()
    assert await built._resolve(machine, io, "t1", "89169999999") == TargetRejected("t1", RejectReason.FORBIDDEN)
    # A had left: the machine applies the fallback rule and records a failed transfer
    await built._record_outcome(io, RecordOutcome("t1", OutcomeKind.FAILED, "89169999999", cause="invalid_target"))
    fields = store.events[-1][1]
    assert (fields["cause"], fields["refusal"]) == ("invalid_target", "limit")


async def test_a_completed_outside_transfer_holds_its_slot_until_the_call_ends() -> None:
    redis = FakeRedis()
    built, _ = engine(redis)
    machine, io = conversation()
    await built._resolve(machine, io, "t1", "89169999999")
    await built._record_outcome(io, RecordOutcome("t1", OutcomeKind.COMPLETED, "89169999999", mode="blind"))
    assert live(redis) == {"conv.t1"}  # the client talks to B through the trunk
    await built._end_conversation(machine, io, "peer_hung_up")
    assert live(redis) == set() and io.outside_slots == []


async def test_limits_that_cannot_be_counted_refuse() -> None:
    redis = FakeRedis()
    redis.fail = True
    built, _ = engine(redis)
    machine, io = conversation()
    assert await built._resolve(machine, io, "t1", "89169999999") == TargetRejected("t1", RejectReason.FORBIDDEN)
    assert io.refusals == {"t1": "limit"} and io.outside_slots == []


def test_conversation_io_snapshots_without_the_new_fields_still_load() -> None:
    old = {"conversation_id": "conv", "tenant_id": "acme", "direction": "incoming", "ng_call_id": "call-1",
           "client_tag": "ctag", "transferor_tag": "atag", "client_from_tag": "ctag", "client_to_tag": "atag"}
    io = ConversationIO(**old)
    assert (io.refusals, io.outside_slots) == ({}, [])
