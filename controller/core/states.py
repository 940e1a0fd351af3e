"""States and the transition table (the data the machine and the diagram are built from).

In the spirit of h11's ``EVENT_TRIGGERED_TRANSITIONS``: for every state the
table names, per *stimulus*, exactly ONE target state.  A stimulus is what an
event means in context (``LegHungUp`` on the client's leg is
``CLIENT_HUNG_UP``, on A's leg ``TRANSFEROR_HUNG_UP``; ``#`` from A is
``TRANSFER_KEY`` while talking and ``CONFERENCE_KEY`` while consulting).

Where one event can lead to different states, the choice is itself a stimulus,
made in one of two declared ways, so that every edge is one cell:

* a *guard* (:data:`GUARDS`) refines the stimulus before the lookup, from facts
  that are known before anything happens (is the number A's own? is the party
  who takes over an outside number? is this the second media failure?);
* a handler whose decision depends on what it did first (B's last branch
  failed: release it, then ask the fallback rules) returns an internal
  *follow-up* stimulus (:data:`FOLLOW_UPS`), looked up in the row of the state
  the first cell led to.

The machine raises ``InvalidTransition`` for a (state, stimulus) pair that has
no cell and no guard, and ``TransitionTableError`` if a guard or a handler
produces a stimulus its cell did not declare.

The *effective state* of a conversation is its :class:`ConversationState`, or,
while it is ``TRANSFERRING``, the :class:`TransferState` of the active transfer.
A transfer cell whose target is a conversation state ends the transfer.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from typing import TypeVar

from .types import LegState

__all__ = [
    "CONVERSATION_TRANSITIONS",
    "DECISIONS",
    "FOLLOW_UPS",
    "GUARDS",
    "LEG_TRANSITIONS",
    "TRANSFER_TRANSITIONS",
    "TRANSITIONS",
    "ConversationState",
    "LegDisposition",
    "LegSignal",
    "State",
    "Stimulus",
    "TransferState",
    "accepts",
    "edges",
    "transitions_for",
]


class ConversationState(enum.Enum):
    NEW = "new"
    #: The client talks with the transferor (talk options active).
    TALKING = "talking"
    #: A transfer is active; see :class:`TransferState`.
    TRANSFERRING = "transferring"
    #: Client, transferor and a third party hear each other.
    CONFERENCE = "conference"
    #: The client talks with an outside party who has no talk options.
    BRIDGED = "bridged"
    ENDED = "ended"


class TransferState(enum.Enum):
    #: A pressed the transfer key and is dialling.
    COLLECTING = "collecting"
    #: Client on hold; waiting for the service to resolve the number.
    RESOLVING = "resolving"
    #: B (one or more branches) is ringing; A is on the line hearing ringback.
    RINGING = "ringing"
    #: B is ringing and A has hung up (blind transfer).
    BLIND_RINGING = "blind_ringing"
    #: The client's trunk was asked (REFER) to call B itself; its NOTIFYs are followed, A may be on the line.
    FAR_END_CALLING = "far_end_calling"
    #: B answered; A and B talk, the client is on hold.
    CONSULTING = "consulting"
    #: B failed; warning prompts play before A and the client are reconnected.
    RECONNECTING = "reconnecting"
    #: B failed after A left; A is rung again, the client keeps hold music.
    RINGING_TRANSFEROR = "ringing_transferor"
    #: A did not answer either: the service looks up the routing step the call came through.
    ROUTING_TO_ORIGIN = "routing_to_origin"
    #: That step's members ring for the client (hold music goes on); the first answer takes the call.
    RINGING_ORIGIN = "ringing_origin"
    #: The client hears the apology prompt; the call then ends.
    APOLOGIZING = "apologizing"
    #: The client hears the voicemail greeting and the beep.
    VOICEMAIL_GREETING = "voicemail_greeting"
    #: The client's message is being recorded.
    VOICEMAIL_RECORDING = "voicemail_recording"


State = ConversationState | TransferState


class Stimulus(enum.Enum):
    # -- from events -------------------------------------------------------------------
    STARTED = "started"
    TRANSFER_KEY = "transfer_key"
    BACK_KEY = "back_key"
    CONFERENCE_KEY = "conference_key"
    NUMBER_DIGIT = "number_digit"
    DIGIT_TIMEOUT = "digit_timeout"
    TRANSFER_REQUESTED = "transfer_requested"
    TARGET_RESOLVED = "target_resolved"
    TARGET_REJECTED = "target_rejected"
    RESOLVE_TIMEOUT = "resolve_timeout"
    TARGET_RINGING = "target_ringing"
    TARGET_ANSWERED = "target_answered"
    TARGET_FAILED = "target_failed"
    TARGET_HUNG_UP = "target_hung_up"
    NO_ANSWER_TIMEOUT = "no_answer_timeout"
    TRANSFEROR_HUNG_UP = "transferor_hung_up"
    CLIENT_HUNG_UP = "client_hung_up"
    PEER_HUNG_UP = "peer_hung_up"
    RECALL_RINGING = "recall_ringing"
    RECALL_ANSWERED = "recall_answered"
    RECALL_FAILED = "recall_failed"
    RECALL_TIMEOUT = "recall_timeout"
    PROMPT_FINISHED = "prompt_finished"
    PROMPT_TIMEOUT = "prompt_timeout"
    RECORDING_TIMEOUT = "recording_timeout"
    MEDIA_FAILED = "media_failed"
    #: rtpengine restarted and restored the call without its players and blocks.
    MEDIA_RESTORED = "media_restored"
    #: The transferor's phone put the call on hold / took it off hold (its own hold key).
    PHONE_HOLD = "phone_hold"
    PHONE_RESUME = "phone_resume"
    # -- refined by guards -------------------------------------------------------------
    #: The number is A's own or the client's (or resolved only to them).
    SELF_TARGET = "self_target"
    #: A transfer request (a REFER) from a phone that is not the conversation's transferor on the line.
    NOT_TRANSFEROR = "not_transferor"
    #: A second media failure, or one while A is gone: nothing left to fall back to.
    MEDIA_LOST = "media_lost"
    #: The number could not be used and A has left: a failed (blind) transfer.
    TARGET_INVALID = "target_invalid"
    #: The number resolved and A has left meanwhile: B rings for a blind transfer.
    RESOLVED_BLIND = "resolved_blind"
    #: The number resolved to an outside number the client's own trunk calls (a REFER to it).
    RESOLVED_FOR_FAR_END = "resolved_for_far_end"
    #: The resolution named nobody to ring.
    NOBODY_TO_RING = "nobody_to_ring"
    #: B answered a blind transfer / the origin's member answered, and is an outside number.
    OUTSIDE_ANSWERED = "outside_answered"
    #: A left while the party who takes over is an outside number.
    TRANSFEROR_HUNG_UP_OUTSIDE = "transferor_hung_up_outside"
    #: Every awaited prompt finished; ``PROMPT_NEXT``: and another one is queued.
    PROMPTS_DONE = "prompts_done"
    PROMPT_NEXT = "prompt_next"
    NO_NUMBER = "no_number"
    NUMBER_TOO_LONG = "number_too_long"
    # -- follow-ups of handlers ----------------------------------------------------------
    #: The number is complete (and not A's own): resolve it.
    NUMBER_KNOWN = "number_known"
    #: Fallback decisions (:mod:`controller.core.fallback`).
    RECONNECT = "reconnect"
    WARN = "warn"
    RECALL = "recall"
    ROUTE_TO_ORIGIN = "route_to_origin"
    APOLOGIZE = "apologize"
    VOICEMAIL = "voicemail"


_C = ConversationState
_T = TransferState
_S = Stimulus
_K = TypeVar("_K", ConversationState, TransferState)

#: The decisions of the fallback rules, and where each leads.
DECISIONS: Mapping[Stimulus, State] = {
    _S.RECONNECT: _C.TALKING,
    _S.WARN: _T.RECONNECTING,
    _S.RECALL: _T.RINGING_TRANSFEROR,
    _S.ROUTE_TO_ORIGIN: _T.ROUTING_TO_ORIGIN,
    _S.APOLOGIZE: _T.APOLOGIZING,
    _S.VOICEMAIL: _T.VOICEMAIL_GREETING,
}
#: B failed while A is on the line: reconnect (after optional warning prompts).
_A_ON_LINE = (_S.RECONNECT, _S.WARN)
#: A cannot take the client back: the routing step the call came from, if configured, else the apology.
_NO_TRANSFEROR = (_S.ROUTE_TO_ORIGIN, _S.APOLOGIZE)
#: B failed after A left: the direction's rule.
_A_GONE = (_S.RECALL, *_NO_TRANSFEROR, _S.VOICEMAIL)


def _decisions(*stimuli: Stimulus) -> dict[Stimulus, State]:
    return {s: DECISIONS[s] for s in stimuli}


#: Rows shared by every transfer state after A left.
def _tail(state: State) -> dict[Stimulus, State]:
    return {_S.TRANSFER_REQUESTED: state, _S.CLIENT_HUNG_UP: _C.ENDED, _S.MEDIA_FAILED: _C.ENDED}


def _with_a(state: State) -> dict[Stimulus, State]:
    """Rows shared by every transfer state in which A may be on the line."""
    return {
        _S.TRANSFER_REQUESTED: state,
        _S.CLIENT_HUNG_UP: _C.ENDED,
        _S.MEDIA_FAILED: _C.TALKING,
        _S.MEDIA_LOST: _C.ENDED,
    }


def _restorable(table: Mapping[_K, Mapping[Stimulus, State]]) -> dict[_K, Mapping[Stimulus, State]]:
    """rtpengine may restart, and A's phone hold or resume, in any state after NEW: the machine plays and
    blocks again what its media model says (MediaRestored), or notes the phone's hold, and stays."""
    own = (_S.MEDIA_RESTORED, _S.PHONE_HOLD, _S.PHONE_RESUME)
    return {state: row if state is _C.NEW else {**row, **dict.fromkeys(own, state)} for state, row in table.items()}


CONVERSATION_TRANSITIONS: Mapping[ConversationState, Mapping[Stimulus, State]] = _restorable({
    _C.NEW: {_S.STARTED: _C.TALKING},
    _C.TALKING: {
        _S.TRANSFER_KEY: _T.COLLECTING,
        _S.TRANSFER_REQUESTED: _T.RESOLVING,
        _S.SELF_TARGET: _C.TALKING,
        _S.NOT_TRANSFEROR: _C.TALKING,
        _S.CLIENT_HUNG_UP: _C.ENDED,
        _S.TRANSFEROR_HUNG_UP: _C.ENDED,
        _S.MEDIA_FAILED: _C.TALKING,
        _S.MEDIA_LOST: _C.ENDED,
    },
    _C.CONFERENCE: {
        _S.BACK_KEY: _C.TALKING,
        _S.TRANSFEROR_HUNG_UP: _C.TALKING,
        _S.TRANSFEROR_HUNG_UP_OUTSIDE: _C.BRIDGED,
        _S.PEER_HUNG_UP: _C.TALKING,
        _S.CLIENT_HUNG_UP: _C.ENDED,
        _S.TRANSFER_REQUESTED: _C.CONFERENCE,
        _S.MEDIA_FAILED: _C.TALKING,
        _S.MEDIA_LOST: _C.ENDED,
    },
    _C.BRIDGED: {
        _S.PEER_HUNG_UP: _C.ENDED,
        _S.CLIENT_HUNG_UP: _C.ENDED,
        _S.TRANSFER_REQUESTED: _C.BRIDGED,
        _S.MEDIA_FAILED: _C.BRIDGED,
        _S.MEDIA_LOST: _C.ENDED,
    },
    _C.ENDED: {_S.TRANSFER_REQUESTED: _C.ENDED},
})


TRANSFER_TRANSITIONS: Mapping[TransferState, Mapping[Stimulus, State]] = _restorable({
    _T.COLLECTING: {
        _S.NUMBER_DIGIT: _T.COLLECTING,
        _S.NUMBER_KNOWN: _T.RESOLVING,
        _S.SELF_TARGET: _C.TALKING,
        _S.NO_NUMBER: _C.TALKING,
        _S.NUMBER_TOO_LONG: _C.TALKING,
        _S.BACK_KEY: _C.TALKING,
        _S.TRANSFEROR_HUNG_UP: _C.ENDED,
        **_with_a(_T.COLLECTING),
    },
    _T.RESOLVING: {
        _S.TARGET_RESOLVED: _T.RINGING,
        _S.RESOLVED_BLIND: _T.BLIND_RINGING,
        _S.RESOLVED_FOR_FAR_END: _T.FAR_END_CALLING,
        _S.SELF_TARGET: _C.TALKING,
        _S.TARGET_REJECTED: _C.TALKING,
        _S.RESOLVE_TIMEOUT: _C.TALKING,
        _S.NOBODY_TO_RING: _T.RESOLVING,
        _S.TARGET_INVALID: _T.RESOLVING,
        _S.BACK_KEY: _C.TALKING,
        _S.TRANSFEROR_HUNG_UP: _T.RESOLVING,
        **_decisions(*_A_ON_LINE, *_A_GONE),
        **_with_a(_T.RESOLVING),
    },
    _T.RINGING: {
        _S.TARGET_RINGING: _T.RINGING,
        _S.TARGET_ANSWERED: _T.CONSULTING,
        _S.TARGET_FAILED: _T.RINGING,
        _S.NO_ANSWER_TIMEOUT: _T.RINGING,
        _S.BACK_KEY: _C.TALKING,
        _S.TRANSFEROR_HUNG_UP: _T.BLIND_RINGING,
        **_decisions(*_A_ON_LINE),
        **_with_a(_T.RINGING),
    },
    _T.BLIND_RINGING: {
        _S.TARGET_RINGING: _T.BLIND_RINGING,
        _S.TARGET_ANSWERED: _C.TALKING,
        _S.OUTSIDE_ANSWERED: _C.BRIDGED,
        _S.TARGET_FAILED: _T.BLIND_RINGING,
        _S.NO_ANSWER_TIMEOUT: _T.BLIND_RINGING,
        **_decisions(*_A_GONE),
        **_tail(_T.BLIND_RINGING),
    },
    _T.FAR_END_CALLING: {
        _S.TARGET_RINGING: _T.FAR_END_CALLING,
        _S.TARGET_ANSWERED: _C.ENDED,
        _S.TARGET_FAILED: _T.FAR_END_CALLING,
        _S.NO_ANSWER_TIMEOUT: _T.FAR_END_CALLING,
        _S.BACK_KEY: _C.TALKING,
        _S.TRANSFEROR_HUNG_UP: _T.FAR_END_CALLING,
        **_decisions(*_A_ON_LINE, *_A_GONE),
        **_with_a(_T.FAR_END_CALLING),
    },
    _T.CONSULTING: {
        _S.TRANSFEROR_HUNG_UP: _C.TALKING,
        _S.TRANSFEROR_HUNG_UP_OUTSIDE: _C.BRIDGED,
        _S.BACK_KEY: _C.TALKING,
        _S.CONFERENCE_KEY: _C.CONFERENCE,
        _S.TARGET_HUNG_UP: _C.TALKING,
        **_with_a(_T.CONSULTING),
    },
    _T.RECONNECTING: {
        _S.PROMPT_FINISHED: _T.RECONNECTING,
        _S.PROMPTS_DONE: _C.TALKING,
        _S.PROMPT_TIMEOUT: _C.TALKING,
        _S.TRANSFEROR_HUNG_UP: _T.RECONNECTING,
        **_decisions(*_NO_TRANSFEROR, _S.VOICEMAIL),
        **_with_a(_T.RECONNECTING),
    },
    _T.RINGING_TRANSFEROR: {
        _S.RECALL_RINGING: _T.RINGING_TRANSFEROR,
        _S.RECALL_ANSWERED: _T.RINGING_TRANSFEROR,
        _S.RECALL_FAILED: _T.RINGING_TRANSFEROR,
        _S.RECALL_TIMEOUT: _T.RINGING_TRANSFEROR,
        **_decisions(*_A_ON_LINE, *_NO_TRANSFEROR),
        **_tail(_T.RINGING_TRANSFEROR),
    },
    _T.ROUTING_TO_ORIGIN: {
        _S.TARGET_RESOLVED: _T.RINGING_ORIGIN,
        _S.NOBODY_TO_RING: _T.APOLOGIZING,
        _S.TARGET_REJECTED: _T.APOLOGIZING,
        _S.RESOLVE_TIMEOUT: _T.APOLOGIZING,
        **_tail(_T.ROUTING_TO_ORIGIN),
    },
    _T.RINGING_ORIGIN: {
        _S.TARGET_RINGING: _T.RINGING_ORIGIN,
        _S.TARGET_ANSWERED: _C.TALKING,
        _S.OUTSIDE_ANSWERED: _C.BRIDGED,
        _S.TARGET_FAILED: _T.RINGING_ORIGIN,
        _S.NO_ANSWER_TIMEOUT: _T.APOLOGIZING,
        **_decisions(_S.APOLOGIZE),
        **_tail(_T.RINGING_ORIGIN),
    },
    _T.APOLOGIZING: {
        _S.PROMPT_FINISHED: _T.APOLOGIZING,
        _S.PROMPTS_DONE: _C.ENDED,
        _S.PROMPT_TIMEOUT: _C.ENDED,
        **_tail(_T.APOLOGIZING),
    },
    _T.VOICEMAIL_GREETING: {
        _S.PROMPT_FINISHED: _T.VOICEMAIL_GREETING,
        _S.PROMPT_NEXT: _T.VOICEMAIL_GREETING,
        _S.PROMPTS_DONE: _T.VOICEMAIL_RECORDING,
        _S.PROMPT_TIMEOUT: _T.VOICEMAIL_RECORDING,
        **_tail(_T.VOICEMAIL_GREETING),
    },
    _T.VOICEMAIL_RECORDING: {
        _S.RECORDING_TIMEOUT: _C.ENDED,
        **_tail(_T.VOICEMAIL_RECORDING),
    },
})

#: Both tables as one: effective state -> stimulus -> the one target.
TRANSITIONS: Mapping[State, Mapping[Stimulus, State]] = {**CONVERSATION_TRANSITIONS, **TRANSFER_TRANSITIONS}

_MEDIA = (_S.MEDIA_FAILED, _S.MEDIA_LOST)
_PROMPT = (_S.PROMPT_FINISHED, _S.PROMPTS_DONE)

#: (state, stimulus) -> the stimuli its guard may refine it to (the guard functions are
#: :data:`controller.core.handlers.GUARD_FUNCTIONS`).  A guarded stimulus is accepted in that state even if it has no
#: cell of its own.
GUARDS: Mapping[tuple[State, Stimulus], tuple[Stimulus, ...]] = {
    (_C.TALKING, _S.TRANSFER_REQUESTED): (_S.TRANSFER_REQUESTED, _S.SELF_TARGET, _S.NOT_TRANSFEROR),
    (_C.TALKING, _S.MEDIA_FAILED): _MEDIA,
    (_C.CONFERENCE, _S.MEDIA_FAILED): _MEDIA,
    (_C.BRIDGED, _S.MEDIA_FAILED): _MEDIA,
    (_C.CONFERENCE, _S.TRANSFEROR_HUNG_UP): (_S.TRANSFEROR_HUNG_UP, _S.TRANSFEROR_HUNG_UP_OUTSIDE),
    (_T.COLLECTING, _S.DIGIT_TIMEOUT): (_S.NO_NUMBER, _S.NUMBER_TOO_LONG, _S.SELF_TARGET, _S.NUMBER_KNOWN),
    (_T.COLLECTING, _S.MEDIA_FAILED): _MEDIA,
    (_T.RESOLVING, _S.TARGET_RESOLVED): (
        _S.TARGET_RESOLVED, _S.RESOLVED_BLIND, _S.RESOLVED_FOR_FAR_END, _S.SELF_TARGET, _S.NOBODY_TO_RING,
        _S.TARGET_INVALID),
    (_T.RESOLVING, _S.TARGET_REJECTED): (_S.TARGET_REJECTED, _S.TARGET_INVALID),
    (_T.RESOLVING, _S.RESOLVE_TIMEOUT): (_S.RESOLVE_TIMEOUT, _S.TARGET_INVALID),
    (_T.RESOLVING, _S.MEDIA_FAILED): _MEDIA,
    (_T.RINGING, _S.MEDIA_FAILED): _MEDIA,
    (_T.FAR_END_CALLING, _S.MEDIA_FAILED): _MEDIA,
    (_T.BLIND_RINGING, _S.TARGET_ANSWERED): (_S.TARGET_ANSWERED, _S.OUTSIDE_ANSWERED),
    (_T.CONSULTING, _S.TRANSFEROR_HUNG_UP): (_S.TRANSFEROR_HUNG_UP, _S.TRANSFEROR_HUNG_UP_OUTSIDE),
    (_T.CONSULTING, _S.MEDIA_FAILED): _MEDIA,
    (_T.RECONNECTING, _S.PROMPT_FINISHED): _PROMPT,
    (_T.RECONNECTING, _S.MEDIA_FAILED): _MEDIA,
    (_T.ROUTING_TO_ORIGIN, _S.TARGET_RESOLVED): (_S.TARGET_RESOLVED, _S.NOBODY_TO_RING),
    (_T.RINGING_ORIGIN, _S.TARGET_ANSWERED): (_S.TARGET_ANSWERED, _S.OUTSIDE_ANSWERED),
    (_T.APOLOGIZING, _S.PROMPT_FINISHED): _PROMPT,
    (_T.VOICEMAIL_GREETING, _S.PROMPT_FINISHED): (*_PROMPT, _S.PROMPT_NEXT),
}

#: (state, stimulus) -> the follow-up stimuli its handler may return, looked up in the target's row.
FOLLOW_UPS: Mapping[tuple[State, Stimulus], tuple[Stimulus, ...]] = {
    (_T.COLLECTING, _S.NUMBER_DIGIT): (_S.NUMBER_KNOWN, _S.SELF_TARGET),
    (_T.RESOLVING, _S.NOBODY_TO_RING): (*_A_ON_LINE, *_A_GONE),
    (_T.RESOLVING, _S.TARGET_INVALID): _A_GONE,
    #: a REFER's B answered: A's phone hands the call over (core/refer.py)
    (_T.RINGING, _S.TARGET_ANSWERED): (_S.TRANSFEROR_HUNG_UP,),
    (_T.RINGING, _S.TARGET_FAILED): _A_ON_LINE,
    (_T.RINGING, _S.NO_ANSWER_TIMEOUT): _A_ON_LINE,
    (_T.BLIND_RINGING, _S.TARGET_FAILED): _A_GONE,
    #: the far end failed or did not reach B in time: A decides if on the line, else the direction's rule
    (_T.FAR_END_CALLING, _S.TARGET_FAILED): (*_A_ON_LINE, *_A_GONE),
    (_T.FAR_END_CALLING, _S.NO_ANSWER_TIMEOUT): (*_A_ON_LINE, *_A_GONE),
    (_T.BLIND_RINGING, _S.NO_ANSWER_TIMEOUT): _A_GONE,
    (_T.RECONNECTING, _S.TRANSFEROR_HUNG_UP): (*_NO_TRANSFEROR, _S.VOICEMAIL),
    (_T.RINGING_TRANSFEROR, _S.RECALL_ANSWERED): _A_ON_LINE,
    (_T.RINGING_TRANSFEROR, _S.RECALL_FAILED): _NO_TRANSFEROR,
    (_T.RINGING_TRANSFEROR, _S.RECALL_TIMEOUT): _NO_TRANSFEROR,
    (_T.RINGING_ORIGIN, _S.TARGET_FAILED): (_S.APOLOGIZE,),
}


def transitions_for(state: State) -> Mapping[Stimulus, State]:
    """The row of the table for an effective state (empty for ``TRANSFERRING``)."""
    return TRANSITIONS.get(state, {})


def accepts(state: State, stimulus: Stimulus) -> bool:
    """Whether ``stimulus`` is acceptable in ``state`` (a cell, or a guard that refines it)."""
    return stimulus in transitions_for(state) or (state, stimulus) in GUARDS


def edges() -> Iterator[tuple[State, Stimulus, State]]:
    """Every (source, stimulus, target) cell of the table, in table order."""
    for source, row in TRANSITIONS.items():
        for stimulus, target in row.items():
            yield source, stimulus, target


# -- the per-dialog machine ------------------------------------------------------------


class LegSignal(enum.Enum):
    """The four things a SIP dialog can tell us."""

    RINGING = "ringing"
    ANSWERED = "answered"
    FAILED = "failed"
    HUNG_UP = "hung_up"


class LegDisposition(enum.Enum):
    #: Pass the event on to the conversation/transfer tables.
    DELIVER = "deliver"
    #: Expected but irrelevant (a late 487, a crossing BYE): no actions.
    IGNORE = "ignore"
    #: A 200 OK crossed our CANCEL: the dialog exists now and must be BYEd.
    RELEASE = "release"


_L = LegState
_G = LegSignal
_D = LegDisposition

#: Per-dialog transitions; a missing entry is a protocol impossibility.
#:
#: * RFC 3261 §15: "the callee's UA ... MUST NOT send a BYE on early dialogs",
#:   so a BYE before the answer (TRYING/RINGING/CANCELLING) is invalid.
#: * RFC 3261 §9: "CANCEL has no effect on a request to which a UAS has already
#:   given a final response", so a 200 may still arrive after our CANCEL
#:   (RELEASE: the service ACKs it and the machine BYEs it).
#: * RFC 3261 §15.1.1: the UAC "MUST consider the session terminated ... as soon
#:   as the BYE request is passed to the client transaction", so a leg we BYE is
#:   ENDED at once and a crossing BYE from the other side is ignored.
LEG_TRANSITIONS: Mapping[LegState, Mapping[LegSignal, tuple[LegState, LegDisposition]]] = {
    _L.TRYING: {
        _G.RINGING: (_L.RINGING, _D.DELIVER),
        _G.ANSWERED: (_L.UP, _D.DELIVER),
        _G.FAILED: (_L.ENDED, _D.DELIVER),
    },
    _L.RINGING: {
        _G.RINGING: (_L.RINGING, _D.DELIVER),
        _G.ANSWERED: (_L.UP, _D.DELIVER),
        _G.FAILED: (_L.ENDED, _D.DELIVER),
    },
    _L.UP: {_G.HUNG_UP: (_L.ENDED, _D.DELIVER)},
    _L.CANCELLING: {
        _G.RINGING: (_L.CANCELLING, _D.IGNORE),
        _G.ANSWERED: (_L.ENDED, _D.RELEASE),
        _G.FAILED: (_L.ENDED, _D.IGNORE),
    },
    _L.ENDED: {
        _G.HUNG_UP: (_L.ENDED, _D.IGNORE),
        _G.FAILED: (_L.ENDED, _D.IGNORE),
    },
}
