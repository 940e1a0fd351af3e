"""Shared helpers for the core tests (h11-style small drivers)."""

from __future__ import annotations

from collections.abc import Iterable

from controller.core import (
    Action,
    CancelTimer,
    Conversation,
    ConversationStarted,
    DigitPressed,
    Direction,
    Event,
    FallbackPolicy,
    LegAnswered,
    RecordOutcome,
    Settings,
    StartTimer,
    TalkOptions,
    TargetKind,
    TargetResolved,
    TimerFired,
    TransferState,
)

CONV = "c1"
CLIENT = "client"
A = "alice"
CLIENT_NO = "+4930111222"
A_NO = "100"
DID = "+4930999000"
COMPANY = "+4930000000"
ORIGIN = "ivr:main-menu"
DIRECTIONS = [Direction.INCOMING, Direction.OUTGOING]
CONFERENCE_ON = TalkOptions(conference="#")
KNOWN = frozenset({"100", "201", "202", "300", "3001", "400"})


def leg_b(n: int = 1, t: int = 1) -> str:
    return f"{CONV}.t{t}.b{n}"


def leg_r(t: int = 1) -> str:
    return f"{CONV}.t{t}.r1"


def leg_o(n: int = 1, t: int = 1) -> str:
    """A member of the routing step the call came through, rung after A did not answer the recall."""
    return f"{CONV}.t{t}.o{n}"


def make_settings(direction: Direction | None = None, policy: FallbackPolicy | None = None, **kw) -> Settings:
    """Settings with ``policy`` for ``direction`` and a *different* policy for the other one."""
    kw.setdefault("company_number", COMPANY)
    # the flows below were written with the conference key on ("#"; off by default: no mixer yet)
    kw.setdefault("talk_options", CONFERENCE_ON)
    kw.setdefault("known_extensions", KNOWN)
    if direction is not None and policy is not None:
        other = FallbackPolicy(rule="apologize") if policy.rule != "apologize" else FallbackPolicy(rule="voicemail")
        if direction is Direction.INCOMING:
            kw["fallback_incoming"], kw["fallback_outgoing"] = policy, other
        else:
            kw["fallback_outgoing"], kw["fallback_incoming"] = policy, other
    return Settings(**kw)


def start(direction: Direction = Direction.INCOMING, settings: Settings | None = None, **kw) -> Conversation:
    conv = Conversation(CONV, settings if settings is not None else make_settings())
    kw.setdefault("client_number", CLIENT_NO)
    kw.setdefault("transferor_number", A_NO)
    kw.setdefault("did", DID if direction is Direction.INCOMING else None)
    kw.setdefault("origin", ORIGIN)
    assert conv.handle(ConversationStarted(direction, CLIENT, A, **kw)) == []
    return conv


def feed(conv: Conversation, *events: Event) -> list[Action]:
    out: list[Action] = []
    for event in events:
        out.extend(conv.handle(event))
    return out


def press(conv: Conversation, digits: str, leg: str = A) -> list[Action]:
    return feed(conv, *(DigitPressed(leg, d) for d in digits))


def timer_names(conv: Conversation, purpose: str) -> list[str]:
    return [name for name, p in conv.active_timers.items() if p == purpose]


def fire(conv: Conversation, purpose: str) -> list[Action]:
    (name,) = timer_names(conv, purpose)
    return conv.handle(TimerFired(name))


def norm(actions: Iterable[Action]) -> list[Action]:
    """Replace unique timer names by their purpose so expectations stay readable."""
    out: list[Action] = []
    for action in actions:
        if isinstance(action, StartTimer):
            out.append(StartTimer(action.name.split("/")[1], action.seconds))
        elif isinstance(action, CancelTimer):
            out.append(CancelTimer(action.name.split("/")[1]))
        else:
            out.append(action)
    return out


def outcome(actions: Iterable[Action]) -> RecordOutcome:
    found = [a for a in actions if isinstance(a, RecordOutcome)]
    assert len(found) == 1, found
    return found[0]


def of_type(actions: Iterable[Action], cls: type) -> list:
    return [a for a in actions if isinstance(a, cls)]


def tid(conv: Conversation) -> str:
    assert conv.transfer is not None
    return conv.transfer.id


def to_resolving(conv: Conversation, number: str = "201", leg: str = A) -> list[Action]:
    actions = press(conv, "#" + number, leg)
    if conv.effective_state is TransferState.COLLECTING:
        actions += fire(conv, "interdigit")
    assert conv.effective_state is TransferState.RESOLVING
    return actions


def to_ringing(
    conv: Conversation,
    targets: tuple[str, ...] = ("201",),
    kind: TargetKind = TargetKind.EXTENSION,
    number: str = "201",
    leg: str = A,
) -> list[Action]:
    actions = to_resolving(conv, number, leg)
    actions += conv.handle(TargetResolved(tid(conv), targets, kind))
    return actions


def to_consulting(conv: Conversation, targets: tuple[str, ...] = ("201",), kind=TargetKind.EXTENSION,
                  number: str = "201", winner: int = 1) -> list[Action]:
    actions = to_ringing(conv, targets, kind, number)
    t = int(tid(conv)[1:])
    actions += conv.handle(LegAnswered(leg_b(winner, t)))
    assert conv.effective_state is TransferState.CONSULTING
    return actions
