"""The handler and guard tables: (state, stimulus) -> function, next to the target table of states.py.

Every cell of :data:`~controller.core.states.TRANSITIONS` has exactly one
handler here and every handler a cell; every guarded pair of
:data:`~controller.core.states.GUARDS` has one guard function.  The
conversation-level handlers (talking, conference, bridged call) are here too;
the transfer's are in :mod:`controller.core.transfer`, the fallback's in
:mod:`controller.core.fallback`.  A sub-machine to come (``refer.py``: the REFER
subscription and its NOTIFYs; ``conference.py``: a three-way mixer) adds its
states to states.py and its handlers to these two tables, nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from . import branches
from . import fallback as fb
from . import transfer as tr
from .actions import TransferRefused
from .context import Step
from .events import ConversationStarted, TransferRequested
from .legs import Leg
from .media import Overlay
from .states import ConversationState, State, Stimulus, TransferState
from .types import EndReason, LegRole, LegState, OutcomeCause, RefusalReason, TimerPurpose, TransferTrigger

__all__ = ["GUARD_FUNCTIONS", "HANDLERS", "Guard", "Handler"]

Handler = Callable[[Step], Stimulus | None]
Guard = Callable[[Step], Stimulus]

_C, _T, _S = ConversationState, TransferState, Stimulus


# -- conversation-level handlers --------------------------------------------------------------


def on_started(s: Step) -> None:
    event = s.event
    assert isinstance(event, ConversationStarted)
    s.fx.start(event)
    s.fx.add_leg(Leg(event.client_leg, LegRole.CLIENT, LegState.UP, event.client_number))
    s.fx.add_leg(Leg(event.transferor_leg, LegRole.TRANSFEROR, LegState.UP, event.transferor_number,
                     event.transferor_kind))
    # The service sets the call up with client and A paired, and A's DTMF blocked in rtpengine
    # (Kamailio does it when A's side answers): the talk options never reach the client.
    s.fx.media.model.pair(event.client_leg, event.transferor_leg)
    s.fx.media.model.dtmf_blocked.add(event.transferor_leg)


def on_transfer_key(s: Step) -> None:
    s.fx.new_transfer(TransferTrigger.DTMF)
    s.fx.start_timer(TimerPurpose.INTERDIGIT, s.facts.settings.first_digit_timeout_s)


def on_transfer_requested(s: Step) -> None:
    event = s.event
    assert isinstance(event, TransferRequested)
    s.fx.new_transfer(event.trigger).replaces = event.replaces
    tr.begin(s, event.number)


def on_self_requested(s: Step) -> None:
    event = s.event
    assert isinstance(event, TransferRequested)
    s.fx.new_transfer(event.trigger)
    tr.refuse_self(s, event.number)
    s.fx.emit(TransferRefused(event.number, event.trigger, OutcomeCause.SELF_TARGET))


def _refuser(reason: RefusalReason) -> Handler:
    def refuse(s: Step) -> None:
        event = s.event
        assert isinstance(event, TransferRequested)
        s.fx.emit(TransferRefused(event.number, event.trigger, reason))

    refuse.__name__ = f"refuse_{reason}"
    return refuse


def _ender(reason: EndReason) -> Handler:
    def end(s: Step) -> None:
        s.fx.end(reason)

    end.__name__ = f"end_{reason}"
    return end


def on_a_left_conference(s: Step) -> None:
    """The client and the third party stay together; the third party takes over (or is outside)."""
    peer = s.facts.peer_leg
    assert peer is not None
    s.fx.media.bridge(s.facts.client_leg, peer)
    s.fx.media.stop_conference()  # two parties need no mixer
    s.fx.promote(peer)


def on_peer_left_conference(s: Step) -> None:
    s.fx.make_peer(None)
    s.fx.media.reconnect(s.facts.a, s.facts.client_leg)
    s.fx.media.stop_conference()


def on_back_key_conference(s: Step) -> None:
    """A takes the client back and releases the third party."""
    assert s.facts.peer_leg is not None
    s.fx.release_leg(s.facts.peer_leg, EndReason.TRANSFEROR_RETURNED)
    s.fx.make_peer(None)
    s.fx.media.reconnect(s.facts.a, s.facts.client_leg)
    s.fx.media.stop_conference()


def on_media_restored(s: Step) -> None:
    s.fx.media.reassert()


def _client_free(s: Step) -> bool:
    """The client talks to A, or A is still dialling: no transfer has put the client on hold (yet)."""
    t = s.transfer_or_none
    return s.facts.state is _C.TALKING or (t is not None and t.state is _T.COLLECTING)


def on_phone_hold(s: Step) -> None:
    """A's phone holds the call: the client hears the tenant's music rather than silence (Kamailio kept
    the client's stream sendrecv), and on hold means on hold: nobody hears the client. Once a transfer
    holds the client it has the music already (and takes it away when it gives the client back)."""
    s.fx.set_phone_held(True)
    client, media = s.facts.client_leg, s.fx.media
    if _client_free(s) and media.overlay_of(client) is None:
        media.play_hold(client)
        # both ways: whatever the phone sends meanwhile (its own music, silence) never mixes into ours
        media.block(s.facts.a, client)
        media.block(client, s.facts.a)


def on_phone_resume(s: Step) -> None:
    s.fx.set_phone_held(False)
    client, media = s.facts.client_leg, s.fx.media
    if _client_free(s) and media.overlay_of(client) is Overlay.HOLD:
        media.stop(client)
        media.unblock(s.facts.a, client)
        media.unblock(client, s.facts.a)


def on_media_failed_talking(s: Step) -> None:
    s.fx.set_degraded()
    s.fx.media.reconnect(s.facts.a, s.facts.client_leg, force=True)


def on_media_failed_conference(s: Step) -> None:
    s.fx.set_degraded()
    assert s.facts.peer_leg is not None
    s.fx.release_leg(s.facts.peer_leg, EndReason.MEDIA_FAILURE)
    s.fx.make_peer(None)
    s.fx.media.reconnect(s.facts.a, s.facts.client_leg, force=True)
    s.fx.media.stop_conference()


def on_media_failed_bridged(s: Step) -> None:
    s.fx.set_degraded()
    peer, client = s.facts.peer_leg, s.facts.client_leg
    assert peer is not None
    s.fx.media.stop(client, force=True)
    s.fx.media.bridge(client, peer)


# -- guards -----------------------------------------------------------------------------------


def guard_self_request(s: Step) -> Stimulus:
    event = s.event
    assert isinstance(event, TransferRequested)
    facts = s.facts
    if event.trigger is TransferTrigger.REFER and not (
            event.leg == facts.transferor_leg == facts.first_transferor_leg and facts.transferor_up):
        # a phone that is not (or no longer) the one talking to the client in the client's own dialog (a
        # REFER travels in a dialog: a leg the controller originated is not the client's)
        return _S.NOT_TRANSFEROR
    return _S.SELF_TARGET if facts.is_self_target(event.number) else _S.TRANSFER_REQUESTED


def guard_media(s: Step) -> Stimulus:
    """A second failure, or one while A is gone, leaves nothing to fall back to."""
    lost = s.facts.degraded or (s.transfer_or_none is not None and not s.facts.transferor_up)
    return _S.MEDIA_LOST if lost else _S.MEDIA_FAILED


def _guard(stimulus: Stimulus) -> Guard:
    def guard(s: Step) -> Stimulus:
        return tr.guard_refusal(s, stimulus)

    return guard


GUARD_FUNCTIONS: Mapping[tuple[State, Stimulus], Guard] = {
    (_C.TALKING, _S.TRANSFER_REQUESTED): guard_self_request,
    (_C.TALKING, _S.MEDIA_FAILED): guard_media,
    (_C.CONFERENCE, _S.MEDIA_FAILED): guard_media,
    (_C.BRIDGED, _S.MEDIA_FAILED): guard_media,
    (_C.CONFERENCE, _S.TRANSFEROR_HUNG_UP): lambda s: (
        _S.TRANSFEROR_HUNG_UP_OUTSIDE if s.facts.is_outside(s.facts.peer_leg) else _S.TRANSFEROR_HUNG_UP),
    (_T.COLLECTING, _S.DIGIT_TIMEOUT): tr.guard_digit_timeout,
    (_T.COLLECTING, _S.MEDIA_FAILED): guard_media,
    (_T.RESOLVING, _S.TARGET_RESOLVED): tr.guard_resolved,
    (_T.RESOLVING, _S.TARGET_REJECTED): _guard(_S.TARGET_REJECTED),
    (_T.RESOLVING, _S.RESOLVE_TIMEOUT): _guard(_S.RESOLVE_TIMEOUT),
    (_T.RESOLVING, _S.MEDIA_FAILED): guard_media,
    (_T.RINGING, _S.MEDIA_FAILED): guard_media,
    (_T.FAR_END_CALLING, _S.MEDIA_FAILED): guard_media,
    (_T.BLIND_RINGING, _S.TARGET_ANSWERED): tr.guard_answered,
    (_T.CONSULTING, _S.TRANSFEROR_HUNG_UP): tr.guard_a_left,
    (_T.CONSULTING, _S.MEDIA_FAILED): guard_media,
    (_T.RECONNECTING, _S.PROMPT_FINISHED): fb.guard_prompt,
    (_T.RECONNECTING, _S.MEDIA_FAILED): guard_media,
    (_T.ROUTING_TO_ORIGIN, _S.TARGET_RESOLVED): lambda s: (
        _S.TARGET_RESOLVED if branches.allowed_targets(s)[1] else _S.NOBODY_TO_RING),
    (_T.RINGING_ORIGIN, _S.TARGET_ANSWERED): tr.guard_answered,
    (_T.APOLOGIZING, _S.PROMPT_FINISHED): fb.guard_prompt,
    (_T.VOICEMAIL_GREETING, _S.PROMPT_FINISHED): fb.guard_prompt,
}


# -- the handler table --------------------------------------------------------------------------

_DECISIONS: Mapping[Stimulus, Handler] = {
    _S.RECONNECT: fb.reconnect,
    _S.WARN: fb.warn,
    _S.RECALL: fb.recall,
    _S.ROUTE_TO_ORIGIN: fb.route_to_origin,
    _S.APOLOGIZE: fb.apologize,
    _S.VOICEMAIL: fb.voicemail,
}


def _rows() -> dict[tuple[State, Stimulus], Handler]:
    cells: dict[State, dict[Stimulus, Handler]] = {
        _C.NEW: {_S.STARTED: on_started},
        _C.TALKING: {
            _S.TRANSFER_KEY: on_transfer_key,
            _S.TRANSFER_REQUESTED: on_transfer_requested,
            _S.SELF_TARGET: on_self_requested,
            _S.NOT_TRANSFEROR: _refuser(RefusalReason.NO_TRANSFEROR),
            _S.CLIENT_HUNG_UP: _ender(EndReason.CLIENT_HUNG_UP),
            _S.TRANSFEROR_HUNG_UP: _ender(EndReason.TRANSFEROR_HUNG_UP),
            _S.MEDIA_FAILED: on_media_failed_talking,
        },
        _C.CONFERENCE: {
            _S.BACK_KEY: on_back_key_conference,
            _S.TRANSFEROR_HUNG_UP: on_a_left_conference,
            _S.TRANSFEROR_HUNG_UP_OUTSIDE: on_a_left_conference,
            _S.PEER_HUNG_UP: on_peer_left_conference,
            _S.CLIENT_HUNG_UP: _ender(EndReason.CLIENT_HUNG_UP),
            _S.TRANSFER_REQUESTED: _refuser(RefusalReason.CONFERENCE_ACTIVE),
            _S.MEDIA_FAILED: on_media_failed_conference,
        },
        _C.BRIDGED: {
            _S.PEER_HUNG_UP: _ender(EndReason.PEER_HUNG_UP),
            _S.CLIENT_HUNG_UP: _ender(EndReason.CLIENT_HUNG_UP),
            _S.TRANSFER_REQUESTED: _refuser(RefusalReason.NO_TRANSFEROR),
            _S.MEDIA_FAILED: on_media_failed_bridged,
        },
        _C.ENDED: {_S.TRANSFER_REQUESTED: _refuser(RefusalReason.CONVERSATION_ENDED)},
        _T.COLLECTING: {
            _S.NUMBER_DIGIT: tr.on_number_digit,
            _S.NUMBER_KNOWN: tr.on_number_known,
            _S.SELF_TARGET: tr.on_self_dialled,
            _S.NO_NUMBER: tr.on_no_number,
            _S.NUMBER_TOO_LONG: tr.on_number_too_long,
            _S.BACK_KEY: tr.on_back_key,
            _S.TRANSFEROR_HUNG_UP: tr.on_a_left_dialling,
        },
        _T.RESOLVING: {
            _S.TARGET_RESOLVED: tr.on_target_resolved,
            _S.RESOLVED_BLIND: tr.on_target_resolved,
            _S.RESOLVED_FOR_FAR_END: tr.on_pass_to_far_end,
            _S.SELF_TARGET: tr.on_resolved_to_self,
            _S.TARGET_REJECTED: tr.on_target_rejected,
            _S.RESOLVE_TIMEOUT: tr.on_resolve_timeout,
            _S.NOBODY_TO_RING: tr.on_nobody_to_ring,
            _S.TARGET_INVALID: tr.on_target_invalid,
            _S.BACK_KEY: tr.on_back_key,
            _S.TRANSFEROR_HUNG_UP: tr.ignore,  # continue as a blind transfer once resolved
        },
        _T.RINGING: {
            _S.TARGET_RINGING: tr.on_target_ringing,
            _S.TARGET_ANSWERED: tr.on_target_answered,
            _S.TARGET_FAILED: tr.on_target_failed,
            _S.NO_ANSWER_TIMEOUT: tr.on_no_answer,
            _S.BACK_KEY: tr.on_back_key,
            _S.TRANSFEROR_HUNG_UP: tr.on_a_left_ringing,
        },
        _T.BLIND_RINGING: {
            _S.TARGET_RINGING: tr.ignore,  # nobody hears B's ringing but A: the client keeps the music
            _S.TARGET_ANSWERED: tr.on_blind_answered,
            _S.OUTSIDE_ANSWERED: tr.on_blind_answered,
            _S.TARGET_FAILED: tr.on_target_failed,
            _S.NO_ANSWER_TIMEOUT: tr.on_no_answer,
        },
        _T.FAR_END_CALLING: {
            _S.TARGET_RINGING: tr.ignore,  # A hears our ringback already
            _S.TARGET_ANSWERED: tr.on_far_end_connected,
            _S.TARGET_FAILED: tr.on_far_end_failed,
            _S.NO_ANSWER_TIMEOUT: tr.on_far_end_no_answer,
            _S.BACK_KEY: tr.on_back_key,
            _S.TRANSFEROR_HUNG_UP: tr.ignore,  # the trunk goes on calling B: a blind transfer
        },
        _T.CONSULTING: {
            _S.TRANSFEROR_HUNG_UP: tr.on_attended,
            _S.TRANSFEROR_HUNG_UP_OUTSIDE: tr.on_attended,
            _S.BACK_KEY: tr.on_back_key,
            _S.CONFERENCE_KEY: tr.on_conference_key,
            _S.TARGET_HUNG_UP: tr.on_target_hung_up,
        },
        _T.RECONNECTING: {
            _S.PROMPT_FINISHED: fb.on_prompt_finished,
            _S.PROMPTS_DONE: fb.on_warnings_done,
            _S.PROMPT_TIMEOUT: fb.on_warnings_done,
            _S.TRANSFEROR_HUNG_UP: fb.on_a_left_during_warning,
        },
        _T.RINGING_TRANSFEROR: {
            _S.RECALL_RINGING: tr.ignore,
            _S.RECALL_ANSWERED: fb.on_recall_answered,
            _S.RECALL_FAILED: fb.on_recall_failed,
            _S.RECALL_TIMEOUT: fb.on_recall_timeout,
        },
        _T.ROUTING_TO_ORIGIN: {
            _S.TARGET_RESOLVED: fb.on_origin_resolved,
            _S.NOBODY_TO_RING: fb.apologize,
            _S.TARGET_REJECTED: fb.apologize,
            _S.RESOLVE_TIMEOUT: fb.apologize,
        },
        _T.RINGING_ORIGIN: {
            _S.TARGET_RINGING: tr.ignore,
            _S.TARGET_ANSWERED: fb.on_origin_answered,
            _S.OUTSIDE_ANSWERED: fb.on_origin_answered,
            _S.TARGET_FAILED: fb.on_origin_failed,
            _S.NO_ANSWER_TIMEOUT: fb.on_origin_no_answer,
        },
        _T.APOLOGIZING: {
            _S.PROMPT_FINISHED: fb.on_prompt_finished,
            _S.PROMPTS_DONE: fb.on_apology_done,
            _S.PROMPT_TIMEOUT: fb.on_apology_done,
        },
        _T.VOICEMAIL_GREETING: {
            _S.PROMPT_FINISHED: fb.on_prompt_finished,
            _S.PROMPT_NEXT: fb.on_next_prompt,
            _S.PROMPTS_DONE: fb.on_greeting_done,
            _S.PROMPT_TIMEOUT: fb.on_greeting_timeout,
        },
        _T.VOICEMAIL_RECORDING: {
            _S.RECORDING_TIMEOUT: fb.on_recording_timeout,
            _S.CLIENT_HUNG_UP: fb.on_client_left_voicemail,
        },
    }
    from .states import DECISIONS, TRANSITIONS

    table: dict[tuple[State, Stimulus], Handler] = {}
    for state, row in TRANSITIONS.items():
        own = cells.get(state, {})
        for stimulus in row:
            if stimulus in own:
                table[state, stimulus] = own[stimulus]
            elif stimulus in DECISIONS:
                table[state, stimulus] = _DECISIONS[stimulus]
            elif stimulus is _S.MEDIA_RESTORED:
                # an ended conversation's call is gone from rtpengine: nothing to restore
                table[state, stimulus] = tr.ignore if state is _C.ENDED else on_media_restored
            elif stimulus in (_S.PHONE_HOLD, _S.PHONE_RESUME):
                phone = on_phone_hold if stimulus is _S.PHONE_HOLD else on_phone_resume
                table[state, stimulus] = tr.ignore if state is _C.ENDED else phone
            elif isinstance(state, TransferState):
                # the rows every transfer state shares; where MEDIA_FAILED has no guard, A cannot be on
                # the line (blind and fallback states), so the failure is fatal there
                table[state, stimulus] = {
                    _S.TRANSFER_REQUESTED: tr.on_transfer_requested,
                    _S.CLIENT_HUNG_UP: tr.on_client_hung_up,
                    _S.MEDIA_FAILED: tr.on_media_failed if (state, _S.MEDIA_FAILED) in GUARD_FUNCTIONS
                    else tr.on_media_lost,
                    _S.MEDIA_LOST: tr.on_media_lost,
                }[stimulus]
            elif stimulus is _S.MEDIA_LOST:  # talking, conference, bridged call
                table[state, stimulus] = _ender(EndReason.MEDIA_FAILURE)
        for stimulus in own:
            if stimulus not in row:
                raise AssertionError(f"handler for {state.name}/{stimulus.name} has no cell")
    return table


#: (state, stimulus) -> handler, for every cell of the table.
HANDLERS: Mapping[tuple[State, Stimulus], Handler] = _rows()
