"""Prometheus metrics. One registry per service instance, so tests can run several side by side."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        # (ordinary calls are routed and counted by Kamailio itself: its WIRE_STATS, and the event log)
        self.notifications = Counter("xfer_notifications_total", "Notifications read from Kamailio's stream",
                                     ["method"], registry=r)
        self.errors = Counter("xfer_errors_total", "Errors by component", ["component"], registry=r)
        self.dtmf_digits = Counter("xfer_dtmf_digits_total", "DTMF digits accepted after de-duplication",
                                   registry=r)
        self.transfers = Counter("xfer_transfers_total", "Transfer outcomes (completed, returned, failed...)",
                                 ["outcome"], registry=r)
        self.transfers_started = Counter("xfer_transfers_started_total", "Transfers requested", registry=r)
        # Kamailio counts the REFERs it answered (xfer:refer_accepted / xfer:refer_refused); these are
        # what the phones of the accepted ones were finally told, by the sipfrag status code
        self.refer_results = Counter("xfer_refer_results_total", "Final REFER NOTIFY status codes sent", ["code"],
                                     registry=r)
        # the conference mixer (controller/adapters/mixer.py)
        self.conferences_active = Gauge("xfer_conferences_active", "Conferences being mixed", registry=r)
        self.mixer_frame_seconds = Histogram("xfer_mixer_frame_seconds",
                                             "Time to mix one 20 ms tick of all conferences",
                                             buckets=(0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02),
                                             registry=r)
        self.mixer_late = Counter("xfer_mixer_late_packets_total", "Packets that came after their frame was mixed",
                                  registry=r)
        self.mixer_lost = Counter("xfer_mixer_lost_frames_total", "Frames a participant never sent in time",
                                  registry=r)
        self.mixer_dropped = Counter("xfer_mixer_dropped_datagrams_total",
                                     "Datagrams at a mixer socket from anyone but rtpengine", registry=r)
        # outside transfers handed to the client's own trunk (a REFER to it; tenants' outside_transfers)
        self.far_end_refers = Counter("xfer_far_end_refers_total", "REFERs sent to a client's trunk", registry=r)
        self.dtmf_to_invite = Histogram("xfer_dtmf_to_target_invite_seconds",
                                        "From the digit that completed the number to B's INVITE being sent",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.kamailio_rpc = Counter("xfer_kamailio_rpc_total", "Kamailio JSON-RPC requests by method", ["method"],
                                    registry=r)
        self.rtpengine_rtt = Histogram("xfer_rtpengine_rtt_seconds", "rtpengine ng round trip", ["command"],
                                       buckets=LATENCY_BUCKETS, registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
