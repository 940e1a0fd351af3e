"""States and transition tables (the data the machine and the diagram are built from).

In the spirit of h11's ``EVENT_TRIGGERED_TRANSITIONS``: the tables below say,
for every state, which *stimuli* are acceptable and which states each may lead
to.  A stimulus is what an event means in context (``LegHungUp`` on the
client's leg is ``CLIENT_HUNG_UP``, on A's leg ``TRANSFEROR_HUNG_UP``; ``#``
from A is ``TRANSFER_KEY`` while talking and ``CONFERENCE_KEY`` while
consulting).  The machine raises ``InvalidTransition`` for any (state,
stimulus) pair missing from the tables, and checks that every handler lands
in one of the listed target states.

The *effective state* of a conversation is its :class:`ConversationState`, or,
while it is ``TRANSFERRING``, the :class:`TransferState` of the active transfer.
Targets in :data:`TRANSFER_TRANSITIONS` that are conversation states end the
transfer.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping

from .types import LegState

__all__ = [
    "CONVERSATION_TRANSITIONS",
    "LEG_TRANSITIONS",
    "TRANSFER_TRANSITIONS",
    "ConversationState",
    "LegDisposition",
    "LegSignal",
    "State",
    "Stimulus",
    "TransferState",
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


_C = ConversationState
_T = TransferState
_S = Stimulus

# Landing sets shared by several rows.
#: B failed after A left: the direction's fallback rule decides.
_FALLBACK: tuple[State, ...] = (_T.RINGING_TRANSFEROR, _T.ROUTING_TO_ORIGIN, _T.APOLOGIZING, _T.VOICEMAIL_GREETING)
#: A cannot take the client back: the routing step the call came from, if configured, else the apology.
_NO_TRANSFEROR: tuple[State, ...] = (_T.ROUTING_TO_ORIGIN, _T.APOLOGIZING)
#: B failed while A is on the line: reconnect (after optional warning prompts).
_RETURN: tuple[State, ...] = (_T.RECONNECTING, _C.TALKING)
#: The client is connected to B: B takes over talk options, or not (outside number).
_COMPLETE: tuple[State, ...] = (_C.TALKING, _C.BRIDGED)
#: Media failure: back to the plain client-A call once, otherwise end.
_ABORT: tuple[State, ...] = (_C.TALKING, _C.ENDED)
_END: tuple[State, ...] = (_C.ENDED,)


CONVERSATION_TRANSITIONS: Mapping[ConversationState, Mapping[Stimulus, tuple[State, ...]]] = {
    _C.NEW: {_S.STARTED: (_C.TALKING,)},
    _C.TALKING: {
        _S.TRANSFER_KEY: (_T.COLLECTING,),
        _S.TRANSFER_REQUESTED: (_T.RESOLVING, _C.TALKING),
        _S.CLIENT_HUNG_UP: _END,
        _S.TRANSFEROR_HUNG_UP: _END,
        _S.MEDIA_FAILED: _ABORT,
    },
    _C.CONFERENCE: {
        _S.BACK_KEY: (_C.TALKING,),
        _S.TRANSFEROR_HUNG_UP: _COMPLETE,
        _S.PEER_HUNG_UP: (_C.TALKING,),
        _S.CLIENT_HUNG_UP: _END,
        _S.TRANSFER_REQUESTED: (_C.CONFERENCE,),
        _S.MEDIA_FAILED: _ABORT,
    },
    _C.BRIDGED: {
        _S.PEER_HUNG_UP: _END,
        _S.CLIENT_HUNG_UP: _END,
        _S.TRANSFER_REQUESTED: (_C.BRIDGED,),
        _S.MEDIA_FAILED: (_C.BRIDGED, _C.ENDED),
    },
    _C.ENDED: {_S.TRANSFER_REQUESTED: (_C.ENDED,)},
}


TRANSFER_TRANSITIONS: Mapping[TransferState, Mapping[Stimulus, tuple[State, ...]]] = {
    _T.COLLECTING: {
        _S.NUMBER_DIGIT: (_T.COLLECTING, _T.RESOLVING, _C.TALKING),
        _S.DIGIT_TIMEOUT: (_T.RESOLVING, _C.TALKING),
        _S.BACK_KEY: (_C.TALKING,),
        _S.TRANSFER_REQUESTED: (_T.COLLECTING,),
        _S.TRANSFEROR_HUNG_UP: _END,
        _S.CLIENT_HUNG_UP: _END,
        _S.MEDIA_FAILED: _ABORT,
    },
    _T.RESOLVING: {
        _S.TARGET_RESOLVED: (_T.RINGING, _T.BLIND_RINGING, *_RETURN, *_FALLBACK),
        _S.TARGET_REJECTED: (_C.TALKING, *_FALLBACK),
        _S.RESOLVE_TIMEOUT: (_C.TALKING, *_FALLBACK),
        _S.BACK_KEY: (_C.TALKING,),
        _S.TRANSFER_REQUESTED: (_T.RESOLVING,),
        _S.TRANSFEROR_HUNG_UP: (_T.RESOLVING,),
        _S.CLIENT_HUNG_UP: _END,
        _S.MEDIA_FAILED: _ABORT,
    },
    _T.RINGING: {
        _S.TARGET_RINGING: (_T.RINGING,),
        _S.TARGET_ANSWERED: (_T.CONSULTING,),
        _S.TARGET_FAILED: (_T.RINGING, *_RETURN),
        _S.NO_ANSWER_TIMEOUT: _RETURN,
        _S.BACK_KEY: (_C.TALKING,),
        _S.TRANSFER_REQUESTED: (_T.RINGING,),
        _S.TRANSFEROR_HUNG_UP: (_T.BLIND_RINGING,),
        _S.CLIENT_HUNG_UP: _END,
        _S.MEDIA_FAILED: _ABORT,
    },
    _T.BLIND_RINGING: {
        _S.TARGET_RINGING: (_T.BLIND_RINGING,),
        _S.TARGET_ANSWERED: _COMPLETE,
        _S.TARGET_FAILED: (_T.BLIND_RINGING, *_FALLBACK),
        _S.NO_ANSWER_TIMEOUT: _FALLBACK,
        _S.TRANSFER_REQUESTED: (_T.BLIND_RINGING,),
        _S.CLIENT_HUNG_UP: _END,
        _S.MEDIA_FAILED: _END,
    },
    _T.CONSULTING: {
        _S.TRANSFEROR_HUNG_UP: _COMPLETE,
        _S.BACK_KEY: (_C.TALKING,),
        _S.CONFERENCE_KEY: (_C.CONFERENCE,),
        _S.TARGET_HUNG_UP: (_C.TALKING,),
        _S.TRANSFER_REQUESTED: (_T.CONSULTING,),
        _S.CLIENT_HUNG_UP: _END,
        _S.MEDIA_FAILED: _ABORT,
    },
    _T.RECONNECTING: {
        _S.PROMPT_FINISHED: (_T.RECONNECTING, _C.TALKING),
        _S.PROMPT_TIMEOUT: (_C.TALKING,),
        _S.TRANSFEROR_HUNG_UP: (*_NO_TRANSFEROR, _T.VOICEMAIL_GREETING),
        _S.TRANSFER_REQUESTED: (_T.RECONNECTING,),
        _S.CLIENT_HUNG_UP: _END,
        _S.MEDIA_FAILED: _ABORT,
    },
    _T.RINGING_TRANSFEROR: {
        _S.RECALL_RINGING: (_T.RINGING_TRANSFEROR,),
        _S.RECALL_ANSWERED: _RETURN,
        _S.RECALL_FAILED: _NO_TRANSFEROR,
        _S.RECALL_TIMEOUT: _NO_TRANSFEROR,
        _S.TRANSFER_REQUESTED: (_T.RINGING_TRANSFEROR,),
        _S.CLIENT_HUNG_UP: _END,
        _S.MEDIA_FAILED: _END,
    },
    _T.ROUTING_TO_ORIGIN: {
        _S.TARGET_RESOLVED: (_T.RINGING_ORIGIN, _T.APOLOGIZING),
        _S.TARGET_REJECTED: (_T.APOLOGIZING,),
        _S.RESOLVE_TIMEOUT: (_T.APOLOGIZING,),
        _S.TRANSFER_REQUESTED: (_T.ROUTING_TO_ORIGIN,),
        _S.CLIENT_HUNG_UP: _END,
        _S.MEDIA_FAILED: _END,
    },
    _T.RINGING_ORIGIN: {
        _S.TARGET_RINGING: (_T.RINGING_ORIGIN,),
        _S.TARGET_ANSWERED: _COMPLETE,
        _S.TARGET_FAILED: (_T.RINGING_ORIGIN, _T.APOLOGIZING),
        _S.NO_ANSWER_TIMEOUT: (_T.APOLOGIZING,),
        _S.TRANSFER_REQUESTED: (_T.RINGING_ORIGIN,),
        _S.CLIENT_HUNG_UP: _END,
        _S.MEDIA_FAILED: _END,
    },
    _T.APOLOGIZING: {
        _S.PROMPT_FINISHED: _END,
        _S.PROMPT_TIMEOUT: _END,
        _S.TRANSFER_REQUESTED: (_T.APOLOGIZING,),
        _S.CLIENT_HUNG_UP: _END,
        _S.MEDIA_FAILED: _END,
    },
    _T.VOICEMAIL_GREETING: {
        _S.PROMPT_FINISHED: (_T.VOICEMAIL_GREETING, _T.VOICEMAIL_RECORDING),
        _S.PROMPT_TIMEOUT: (_T.VOICEMAIL_RECORDING,),
        _S.TRANSFER_REQUESTED: (_T.VOICEMAIL_GREETING,),
        _S.CLIENT_HUNG_UP: _END,
        _S.MEDIA_FAILED: _END,
    },
    _T.VOICEMAIL_RECORDING: {
        _S.RECORDING_TIMEOUT: _END,
        _S.TRANSFER_REQUESTED: (_T.VOICEMAIL_RECORDING,),
        _S.CLIENT_HUNG_UP: _END,
        _S.MEDIA_FAILED: _END,
    },
}


def transitions_for(state: State) -> Mapping[Stimulus, tuple[State, ...]]:
    """The row of the table for an effective state (empty for ``TRANSFERRING``)."""
    if isinstance(state, TransferState):
        return TRANSFER_TRANSITIONS[state]
    return CONVERSATION_TRANSITIONS.get(state, {})


def edges() -> Iterator[tuple[State, Stimulus, State]]:
    """Every (source, stimulus, target) triple of both tables, in table order."""
    for table in (CONVERSATION_TRANSITIONS, TRANSFER_TRANSITIONS):
        for source, row in table.items():
            for stimulus, targets in row.items():
                for target in targets:
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
