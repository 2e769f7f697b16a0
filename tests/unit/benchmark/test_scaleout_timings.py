"""The takeover arithmetic of bench/faults/scaleout.py on samples built by hand: what an operator waits for
after losing a worker, phase by phase, and what a worker's return moves."""

from __future__ import annotations

from bench.faults.scaleout import Sample, parse_metrics, rebalance_back, takeover

LAB = "cact.lab.v1"
A, B, C, D = (LAB, 0), (LAB, 1), (LAB, 2), (LAB, 3)


def sample(t: float, owned: dict[str, set[tuple[str, int]]], lag: dict[str, dict[tuple[str, int], float]],
           committed: dict[tuple[str, int], int] | None = None) -> Sample:
    return Sample(t, {r: frozenset(v) for r, v in owned.items()}, lag, committed or {})


def test_metrics_text_gives_owned_and_read_partitions() -> None:
    text = "\n".join([
        "# HELP cact_consumer_lag_messages Input messages",
        'cact_consumer_lag_messages{partition="0",topic="cact.lab.v1"} 12.0',
        'cact_consumer_partition_assigned{partition="0",topic="cact.lab.v1"} 1.0',
        'cact_consumer_partition_assigned{partition="3",topic="cact.schedule.v1"} 1.0',
        'cact_events_in_total{event_type="CheckedIn"} 5.0'])
    owned, lag = parse_metrics(text)
    assert owned == {A, ("cact.schedule.v1", 3)} and lag == {A: 12.0}


def test_each_phase_is_timed_from_the_kill_and_holds_for_every_lost_partition() -> None:
    lost = frozenset({C, D})
    at_kill = {C: 40, D: 7}
    samples = [
        sample(99.0, {"w0": {A}, "w1": {B}, "w2": {C, D}}, {"w0": {A: 0}, "w1": {B: 0}, "w2": {C: 3, D: 0}}, at_kill),
        sample(100.0, {"w0": {A}, "w1": {B}}, {"w0": {A: 0}, "w1": {B: 0}}, at_kill),  # the kill: nobody has C, D
        sample(116.0, {"w0": {A, C}, "w1": {B}}, {"w0": {A: 0}, "w1": {B: 0}}, at_kill),  # C moved, D not yet
        sample(117.0, {"w0": {A, C}, "w1": {B, D}}, {"w0": {A: 0}, "w1": {B: 0}}, at_kill),  # both owned, recovering
        sample(150.0, {"w0": {A, C}, "w1": {B, D}}, {"w0": {A: 0, C: 9}, "w1": {B: 0}}, at_kill),  # C read, D not
        sample(180.0, {"w0": {A, C}, "w1": {B, D}}, {"w0": {A: 0, C: 9}, "w1": {B: 0, D: 0}}, at_kill),  # both read
        sample(185.0, {"w0": {A, C}, "w1": {B, D}}, {"w0": {A: 0, C: 2}, "w1": {B: 0, D: 0}}, {C: 40, D: 7}),
        sample(190.0, {"w0": {A, C}, "w1": {B, D}}, {"w0": {A: 0, C: 0}, "w1": {B: 0, D: 0}}, {C: 49, D: 7}),
    ]
    got = takeover(samples, killed_at=100.0, lost=lost, committed_at_kill=at_kill)
    # processing: C committed past the kill's offset (D had nothing left to read, lag 0) — not before 190 s,
    # although C's lag fell at 185 s: its work was not committed yet and a lag of 2 is not done.
    assert (got.partitions, got.assigned_s, got.reading_s, got.processing_s) == (2, 17.0, 80.0, 90.0)


def test_a_takeover_that_never_completes_says_so() -> None:
    samples = [sample(101.0, {"w0": {A, C}}, {"w0": {A: 0}})]
    got = takeover(samples, killed_at=100.0, lost=frozenset({C, D}), committed_at_kill={})
    assert (got.assigned_s, got.reading_s, got.processing_s) == (None, None, None)


def test_samples_from_before_the_kill_do_not_count() -> None:
    samples = [sample(90.0, {"w0": {A, C}}, {"w0": {A: 0, C: 0}})]
    assert takeover(samples, killed_at=100.0, lost=frozenset({C}), committed_at_kill={}).assigned_s is None


def test_the_return_counts_what_moved_and_to_whom_once_the_group_settles() -> None:
    before = {A: "w0", B: "w0", C: "w1", D: "w1"}
    parts = frozenset(before)
    samples = [
        sample(200.0, {"w0": {A, B}, "w1": {C, D}}, {"w0": {A: 0, B: 0}, "w1": {C: 0, D: 0}}),
        sample(215.0, {"w0": {A}, "w1": {B, D}, "w2": {C}}, {"w1": {B: 0, D: 0}}),  # moving, not all read
        sample(230.0, {"w0": {A}, "w1": {B, D}, "w2": {C}}, {"w0": {A: 0}, "w1": {B: 0, D: 0}, "w2": {C: 0}}),
        sample(235.0, {"w0": {A}, "w1": {B, D}, "w2": {C}}, {"w0": {A: 0}, "w1": {B: 0, D: 0}, "w2": {C: 0}}),
    ]
    back = rebalance_back(samples, restarted_at=200.0, before=before, returning="w2", partitions=parts)
    # C went to the returning worker; B moved from w0 to w1, which a sticky assignment would not do
    assert (back.settled_s, back.moved, back.to_returning, back.between_survivors) == (30.0, 2, 1, 1)


def test_a_group_still_changing_at_the_end_has_not_settled() -> None:
    before = {A: "w0", B: "w1"}
    samples = [
        sample(200.0, {"w0": {A}, "w2": {B}}, {"w0": {A: 0}, "w2": {B: 0}}),
        sample(205.0, {"w0": {A, B}}, {"w0": {A: 0, B: 0}}),  # it lost its partition again
    ]
    back = rebalance_back(samples, restarted_at=200.0, before=before, returning="w2", partitions=frozenset(before))
    assert back.settled_s is None and back.to_returning == 0
