"""Round trips per call/transfer from the components' own counters (pure parts)."""

from __future__ import annotations

from benchmarks.roundtrips import RoundTripSnapshot, ng_counts, per_unit, redis_counts, render, rpc_counts


def test_redis_commandstats_become_counts_and_microseconds() -> None:
    stats = {"cmdstat_hset": {"calls": 30, "usec": 120, "usec_per_call": 4.0},
             "cmdstat_xadd": {"calls": 10, "usec": 90}}
    assert redis_counts(stats) == {"hset": (30.0, 120.0), "xadd": (10.0, 90.0)}


def test_ng_counts_sum_the_proxies_and_turn_seconds_into_ms() -> None:
    cs = {"proxies": [
        {"proxy": "127.0.0.1", "offercount": 4, "offerduration": "0.004000", "errorcount": 1},
        {"proxy": "127.0.0.2", "offercount": 6, "offerduration": "0.002000", "playmediacount": 2,
         "playmediaduration": "0.010000"},
    ]}
    counts = ng_counts(cs)
    assert counts["offer"][0] == 10 and abs(counts["offer"][1] - 6.0) < 1e-9
    assert counts["playmedia"] == (2.0, 10.0)
    assert "error" not in counts


def test_rpc_counts_from_the_controllers_metrics() -> None:
    text = ('xfer_kamailio_rpc_total{method="tm.t_uac_start"} 4.0\n'
            'xfer_kamailio_rpc_total{method="htable.sets"} 8.0\n')
    assert rpc_counts(text) == {"tm.t_uac_start": 4.0, "htable.sets": 8.0}


def test_per_unit_divides_the_difference_and_leaves_the_probes_out() -> None:
    before = RoundTripSnapshot(redis={"hset": (100.0, 400.0), "info": (5.0, 50.0)}, ng={"offer": (10.0, 5.0)},
                               rpc={"htable.sets": 2.0})
    after = RoundTripSnapshot(redis={"hset": (140.0, 560.0), "info": (50.0, 500.0), "xadd": (20.0, 100.0)},
                              ng={"offer": (30.0, 15.0), "stats": (9.0, 1.0)}, rpc={"htable.sets": 22.0})
    trips = per_unit(before, after, 10)
    assert trips["redis"] == {"hset": [4.0, 16.0], "xadd": [2.0, 10.0]}  # busiest first; INFO is a probe
    assert trips["ng"] == {"offer": [2.0, 1.0]}
    assert trips["rpc"] == {"htable.sets": 2.0}
    assert trips["totals"] == {"redis": 6.0, "redis_us": 26.0, "ng": 2.0, "ng_ms": 1.0, "rpc": 2.0}


def test_render_shows_a_column_per_measured_unit() -> None:
    trips = per_unit(RoundTripSnapshot(), RoundTripSnapshot(redis={"hset": (3.0, 9.0)}), 1)
    lines = render([("ordinary call", trips), ("transfer", None)])
    assert lines[0] == "| per unit | ordinary call |"
    assert any(line.startswith("- ordinary call: Redis hset 3") for line in lines)
    assert render([("x", None)]) == ["Not measured in this run."]
