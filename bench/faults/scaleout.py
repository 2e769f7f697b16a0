"""Three workers in one group, one killed for good mid-day and later brought back: the takeover, timed.

Issue 17 asks for the scale-out to be proven, not assumed: with more partitions than workers, the survivors
must take over a lost worker's partitions with results identical to a one-worker run of the same day, and the
worker that comes back must get partitions again. What an operator waits for is timed from the kill, per
phase, from what the workers say about themselves on ``/metrics`` (``cact_consumer_partition_assigned``,
``cact_consumer_lag_messages``) and from the group's committed offsets:

- **assigned**: every partition of the lost worker is owned by a survivor (the group noticed and rebalanced);
- **reading**: the survivors read all of them (a partition is paused while its tables are recovered, and has
  no lag series until it is fetched again);
- **processing**: each of them has either committed past where the lost worker's commit left it, or has
  nothing left to read.

The rebalance back counts how many partitions changed owner and how many of those went to the returning worker:
a sticky assignment moves only what the returning worker needs. The arithmetic is pure (:func:`takeover` and
:func:`rebalance_back` over :class:`Sample` s) and unit-tested; :class:`Sampler` is the thin adapter that reads
the workers and the group. ``tests/integration/faults/test_scale_out.py`` runs it small; ``python -m
bench.faults.scaleout`` prints the figures for a size and settings (docs/deploy.md, "Scale-out and takeover").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from rich.console import Console
from rich.table import Table

from bench.faults.harness import SMALL, Pipeline, Sender, Size, day_messages, run_day, simulated_day, with_size
from bench.faults.killer import Kill
from bench.faults.reference import References, ScenarioResult, verdict
from bench.scrape import fetch, samples
from schemas import topics
from schemas.kafka_config import client_kwargs
from schemas.settings import Settings

TP = tuple[str, int]


@dataclass(frozen=True)
class Sample:
    """What the group looked like at ``t`` (monotonic seconds): per live worker the input partitions it owns and
    the lag of those it reads (a partition it owns without a lag is not read yet), and the committed offsets."""

    t: float
    owned: Mapping[str, frozenset[TP]]
    lag: Mapping[str, Mapping[TP, float]]
    committed: Mapping[TP, int]

    def owner(self) -> dict[TP, str]:
        return {tp: role for role, tps in sorted(self.owned.items()) for tp in tps}

    def reading(self) -> dict[TP, float]:
        return {tp: value for lags in self.lag.values() for tp, value in lags.items()}


def parse_metrics(text: str) -> tuple[frozenset[TP], dict[TP, float]]:
    """The partitions a worker owns and the lag of those it reads, from its ``/metrics`` text."""
    owned: set[TP] = set()
    lag: dict[TP, float] = {}
    for s in samples(text):
        if s.name not in ("cact_consumer_partition_assigned", "cact_consumer_lag_messages"):
            continue
        tp = (s.labels["topic"], int(s.labels["partition"]))
        if s.name == "cact_consumer_partition_assigned":
            owned.add(tp)
        else:
            lag[tp] = s.value
    return frozenset(owned), lag


@dataclass
class Takeover:
    """Seconds from the kill until each phase held for every partition of the lost worker (None: never)."""

    partitions: int
    assigned_s: float | None
    reading_s: float | None
    processing_s: float | None

    def as_json(self) -> dict[str, Any]:
        return {"partitions": self.partitions, "assigned_s": _round(self.assigned_s),
                "reading_s": _round(self.reading_s), "processing_s": _round(self.processing_s)}


def takeover(samples: Sequence[Sample], *, killed_at: float, lost: frozenset[TP],
             committed_at_kill: Mapping[TP, int]) -> Takeover:
    """When the survivors owned, read and processed again every partition the lost worker had."""
    def first(holds: Callable[[Sample], bool]) -> float | None:
        return next((s.t - killed_at for s in samples if s.t >= killed_at and holds(s)), None)

    def moved(s: Sample) -> bool:
        return all(tp in s.owner() for tp in lost)

    def read(s: Sample) -> bool:
        return moved(s) and all(tp in s.reading() for tp in lost)

    def processed(s: Sample) -> bool:
        lags = s.reading()
        return read(s) and all(s.committed.get(tp, 0) > committed_at_kill.get(tp, 0) or lags[tp] == 0
                               for tp in lost)

    return Takeover(len(lost), first(moved), first(read), first(processed))


@dataclass
class RebalanceBack:
    """The worker that came back: when the group settled, what moved and what it got."""

    settled_s: float | None  # all partitions owned and read, the returning worker among the owners, and stable
    moved: int  # partitions whose owner changed
    to_returning: int  # of which went to the returning worker
    between_survivors: int  # moved from one survivor to another: what a sticky assignment does not do

    def as_json(self) -> dict[str, Any]:
        return {"settled_s": _round(self.settled_s), "moved": self.moved, "to_returning": self.to_returning,
                "between_survivors": self.between_survivors}


def rebalance_back(samples: Sequence[Sample], *, restarted_at: float, before: Mapping[TP, str], returning: str,
                   partitions: frozenset[TP]) -> RebalanceBack:
    """Compare the owners before the return with the owners once the group settled: the first sample from
    which on every partition is owned and read, the returning worker owns some, and nothing changes again."""
    after = [s for s in samples if s.t >= restarted_at]
    settled: Sample | None = None
    for i, s in enumerate(after):
        owners = s.owner()
        if (set(owners) >= partitions and returning in owners.values() and set(s.reading()) >= partitions
                and all(later.owner() == owners for later in after[i:])):
            settled = s
            break
    if settled is None:
        return RebalanceBack(None, 0, 0, 0)
    owners = settled.owner()
    changed = [tp for tp in partitions if owners.get(tp) != before.get(tp)]
    to_returning = sum(owners.get(tp) == returning for tp in changed)
    return RebalanceBack(settled.t - restarted_at, len(changed), to_returning, len(changed) - to_returning)


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


class Sampler:
    """Reads every live worker's ``/metrics`` and the group's committed offsets every ``interval`` seconds, in
    a thread of its own (with its own consumer: it only reads the group's offsets, it never joins it)."""

    def __init__(self, settings: Settings, workers: Callable[[], Mapping[str, int]], interval: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings, self.workers, self.interval, self.clock = settings, workers, interval, clock
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="scaleout-sampler",
                                        daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def wait_for(self, holds: Callable[[Sample], bool], timeout: float) -> Sample | None:
        deadline = self.clock() + timeout
        seen = len(self.samples)
        while self.clock() < deadline:
            for s in self.samples[seen:]:
                if holds(s):
                    return s
            seen = len(self.samples)
            time.sleep(self.interval / 2)
        return None

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(group_id=self.settings.app_id, enable_auto_commit=False,
                                    **client_kwargs(self.settings))
        await consumer.start()
        try:
            tps = [TopicPartition(t.name, p) for t in topics.INPUT_TOPICS
                   for p in sorted(consumer.partitions_for_topic(t.name) or ())]
            while not self._stop.is_set():
                owned: dict[str, frozenset[TP]] = {}
                lag: dict[str, dict[TP, float]] = {}
                for role, port in self.workers().items():
                    text = await asyncio.to_thread(fetch, port)
                    if text is not None:
                        owned[role], lag[role] = parse_metrics(text)
                committed: dict[TP, int] = {}
                for tp in tps:
                    try:
                        committed[(tp.topic, tp.partition)] = (await consumer.committed(tp)) or 0
                    except Exception:  # the coordinator is moving: this sample has no offset for it
                        pass
                self.samples.append(Sample(self.clock(), owned, lag, committed))
                await asyncio.sleep(self.interval)
        finally:
            await consumer.stop()




@dataclass
class ScaleOut:
    """The scenario's verdict (row by row against the one-worker reference) and its timings."""

    result: ScenarioResult
    takeover: Takeover | None = None
    back: RebalanceBack | None = None
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        out = [] if self.result.ok else [self.result.explain()]
        if self.takeover is None or self.takeover.processing_s is None:
            out.append(f"the survivors did not take over every partition of the lost worker: {self.figures}")
        if self.back is None or self.back.settled_s is None or not self.back.to_returning:
            out.append(f"the returning worker got no partitions back, or the group never settled: {self.figures}")
        return out


def scale_out(refs: References, size: Size, seed: int, workdir: Path, *, workers: int = 3,
              extra_env: dict[str, str] | None = None, takeover_timeout_s: float = 300.0, kill_at: float = 0.0,
              console: Console | None = None) -> ScaleOut:
    """The day through ``workers`` workers; the last one killed for good once it works and the group has
    committed ``kill_at`` of the day's input (0..1: how much state its partitions' changelogs hold by then), then
    restarted once the survivors process its partitions; compared with the one-worker reference of the seed."""
    ref = refs.get(size, seed)
    kills: list[Kill] = []
    timings: dict[str, Any] = {}

    def fault(p: Pipeline, sender: Sender) -> dict[str, Any]:
        lost = p.workers[-1]
        ports = {w.role: int(w.env["CACT_WORKER_WEB_PORT"]) for w in p.workers}
        sampler = Sampler(p.settings, lambda: {r: port for r, port in ports.items()
                                               if next(w for w in p.workers if w.role == r).alive()}).start()
        try:
            everyone = sampler.wait_for(lambda s: len(s.owned) == workers and all(s.owned.values())
                                        and len(s.reading()) == sum(len(v) for v in s.owned.values()), 180)
            if everyone is None:
                return {"error": "the workers never all owned and read partitions"}
            working = p.working(lost)
            deadline = time.monotonic() + 60
            while not working() and time.monotonic() < deadline:  # mid-work, not mid-start-up
                time.sleep(0.1)
            progress = p.input_progress(day_messages(simulated_day(size, seed)))
            deadline = time.monotonic() + size.send_seconds * 4 + 60
            while kill_at and progress() < kill_at and time.monotonic() < deadline:
                time.sleep(0.5)
            committed_share = progress()
            before = sampler.wait_for(lambda s: lost.role in s.owned, 10) or everyone
            lost_tps = before.owned[lost.role]
            at_kill = dict(before.committed)
            killed_at = time.monotonic()
            kills.append(Kill(lost.role, killed_at - p.started, lost.pid, lost.incarnation, lost.uptime(),
                              p.progress()))
            lost.retire()

            def taken(s: Sample) -> bool:
                return takeover([s], killed_at=killed_at, lost=lost_tps,
                                committed_at_kill=at_kill).processing_s is not None

            sampler.wait_for(taken, takeover_timeout_s)
            timings["takeover"] = takeover(sampler.samples, killed_at=killed_at, lost=lost_tps,
                                           committed_at_kill=at_kill)
            owners_before = (sampler.latest() or before).owner()
            restarted_at = time.monotonic()
            lost.start()
            all_tps = frozenset(before.committed) | frozenset(owners_before)
            sampler.wait_for(lambda s: lost.role in s.owner().values() and set(s.reading()) >= all_tps,
                             takeover_timeout_s)
            settle_until = time.monotonic() + 5  # the owners must hold still a while to count as settled
            while time.monotonic() < settle_until:
                time.sleep(0.25)
            timings["back"] = rebalance_back(sampler.samples, restarted_at=restarted_at, before=owners_before,
                                             returning=lost.role, partitions=all_tps)
            return {"lost": lost.role, "lost_partitions": len(lost_tps), "partitions": len(all_tps),
                    "input_committed_at_kill": round(committed_share, 3),
                    "lost_at_s": round(killed_at - p.started, 1), "takeover": timings["takeover"].as_json(),
                    "back": timings["back"].as_json()}
        finally:
            sampler.stop()

    run = run_day("scale_out", size, seed, workdir / f"scale-out-{seed}", fault=fault, console=console,
                  workers=workers, extra_env=extra_env)
    survivors = [e for e in run.exits if e.role != f"worker-{workers - 1}" and e.role.startswith("worker")]
    checks = [f"a surviving worker ended during the run: {e.describe()}" for e in survivors]
    result = verdict("scale_out", size, ref, run, kills=kills, checks=checks)
    return ScaleOut(result, timings.get("takeover"), timings.get("back"),
                    {**run.faults, "settings": dict(extra_env or {}), "workers": workers})


def figures_table(rows: Sequence[tuple[str, ScaleOut]]) -> Table:
    table = Table(title="Takeover of a lost worker (seconds from the kill -9)")
    for column in ("run", "partitions lost", "assigned", "reading (tables recovered)", "processing",
                   "back: settled", "moved", "to returning", "between survivors", "rows vs 1 worker"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for name, s in rows:
        t, b = s.takeover, s.back
        table.add_row(name, str(t.partitions if t else "-"), *(f"{x:.1f}" if x is not None else "-" for x in (
            t.assigned_s if t else None, t.reading_s if t else None, t.processing_s if t else None,
            b.settled_s if b else None)), *(str(x) if b else "-" for x in (
                b.moved if b else 0, b.to_returning if b else 0, b.between_survivors if b else 0)),
            "identical" if s.result.differences == 0 else f"{s.result.differences} differ")
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.faults.scaleout", description=__doc__.split("\n")[0])
    parser.add_argument("--participants", type=int, default=SMALL.participants)
    parser.add_argument("--send-seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--kill-at", type=float, default=0.6,
                        help="share of the day's input committed when the worker is killed (default 0.6)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cact-scaleout"))
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for every worker, e.g. CACT_TABLE_STANDBY_REPLICAS=1 (repeatable)")
    parser.add_argument("--output", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    console = Console()
    size = with_size(SMALL, participants=args.participants, send_seconds=args.send_seconds, drain_timeout_s=600.0)
    env = dict(item.split("=", 1) for item in args.env)
    refs = References(args.workdir / "references")
    s = scale_out(refs, size, args.seed, args.workdir, extra_env=env, kill_at=args.kill_at, console=console)
    console.print(figures_table([(" ".join(args.env) or "defaults", s)]))
    for problem in s.problems:
        console.print(f"[red]{problem}[/]")
    if args.output:
        args.output.write_text(json.dumps({"figures": s.figures, "ok": not s.problems}, indent=2, default=str))
    return 1 if s.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
