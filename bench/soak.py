"""``make soak`` (``python -m bench.soak``): the fault suite of issue 12 at full size.

For each seed (3 by default): the seed's 3,000-participant day uninterrupted (the reference, itself held to the
ground truth), then the same day with 20 kill -9 of the worker and 5 of the sink at random moments while a CPU
hog keeps every core busy. Once, on the first seed: a lab offline 30 simulated minutes, a database outage
(TCP proxy cut, and refused connections), an SI ASN outage with token expiry, two workers with one killed for
good, with ``--hostile N`` (default 100,000 from make) the kill scenario with N hostile records sent beside
the day, and the embedded broker restarted mid-day with the labs' resend (``bench/faults/broker_loss.py``).
Every run is compared row by row with its reference (bench/faults/compare.py says what is not compared and why).
Writes bench/results/soak.json and exits 1 on any difference, unexpected exit or unfinished run.

Each scenario's seed is printed with its result: ``python -m bench.soak --seeds 11 --scenarios kill_under_load``
replays one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.faults import harness
from bench.faults.harness import FULL, Size
from bench.faults.load import ensure_stress_ng
from bench.faults.reference import References, ScenarioResult
from bench.faults.scenarios import (
    RefusedConnections,
    database_cut,
    database_outage,
    hostile_under_kills,
    kill_under_load,
    lab_offline,
    siasn_outage,
    worker_lost,
)

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "bench" / "results" / "soak.json"
ONCE = ("lab_offline", "database_outage", "database_refused", "siasn_outage", "worker_lost", "hostile_under_kills")
#: Runs compared with a reference of their own (two sends of the day in two parts), reported beside the table.
APART = ("broker_loss",)
ALL = ("kill_under_load", *ONCE, *APART)


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def plan(args: argparse.Namespace) -> list[tuple[str, int]]:
    """(scenario, seed) in the order they run: the kill scenario per seed, the others on the first seed."""
    wanted = [s for s in ALL if s in args.scenarios]
    runs = [("kill_under_load", seed) for seed in args.seeds] if "kill_under_load" in wanted else []
    runs += [(s, args.seeds[0]) for s in ONCE if s in wanted and (s != "hostile_under_kills" or args.hostile > 0)]
    return runs


def run_one(name: str, seed: int, refs: References, size: Size, args: argparse.Namespace, workdir: Path
            ) -> ScenarioResult:
    if name == "kill_under_load":
        return kill_under_load(refs, size, seed, workdir, worker_kills=args.worker_kills, sink_kills=args.sink_kills)
    if name == "lab_offline":
        return lab_offline(refs, size, seed, workdir)
    if name == "database_outage":
        return database_outage(refs, size, seed, workdir, outage_s=args.outage_seconds,
                               cut=database_cut(lifetime_s=size.send_seconds * 6 + size.drain_timeout_s + 900))
    if name == "database_refused":
        return database_outage(refs, size, seed, workdir / "refused", outage_s=args.outage_seconds,
                               cut=RefusedConnections())
    if name == "siasn_outage":
        return siasn_outage(refs, size, seed, workdir, outage_s=args.outage_seconds)
    if name == "worker_lost":
        return worker_lost(refs, size, seed, workdir)
    if name == "hostile_under_kills":
        hostile_size = replace(size, drain_timeout_s=size.drain_timeout_s + args.hostile / 50)
        return hostile_under_kills(refs, hostile_size, seed, workdir, count=args.hostile,
                                   worker_kills=max(1, args.worker_kills // 4), sink_kills=max(1, args.sink_kills // 5))
    raise ValueError(f"unknown scenario {name}")


def render(results: Sequence[ScenarioResult], console: Console) -> None:
    table = Table(title="fault suite (make soak): each run against the uninterrupted run of its seed")
    for col, justify in (("scenario", "left"), ("seed", "right"), ("participants", "right"), ("kills", "right"),
                         ("lost", "right"), ("wrong", "right"), ("twice", "right"), ("unexpected", "right"),
                         ("outbox", "right"), ("exits", "right"), ("minutes", "right"), ("verdict", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in results:
        totals = {k: sum(d.counts()[k] for d in r.diffs) for k in ("lost", "wrong", "twice", "unexpected")}
        table.add_row(r.scenario, str(r.seed), f"{r.participants:,}", str(len(r.kills)),
                      *(str(v) for v in totals.values()),
                      str(len(r.outbox_problems)), str(len(r.unexpected_exits)), f"{r.seconds / 60:.1f}",
                      "[green]ok[/]" if r.ok else "[red]FAILED[/]" + (" (unfinished)" if r.drain_error else ""))
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--participants", type=int, default=FULL.participants)
    parser.add_argument("--send-seconds", type=float, default=FULL.send_seconds,
                        help="wall-clock time the labs take to send the day")
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--worker-kills", type=int, default=20)
    parser.add_argument("--sink-kills", type=int, default=5)
    parser.add_argument("--outage-seconds", type=float, default=30.0, help="database and SI ASN outages")
    parser.add_argument("--hostile", type=int, default=0, help="hostile records beside a kill run (0: none)")
    parser.add_argument("--scenarios", nargs="+", default=list(ALL), choices=list(ALL))
    parser.add_argument("--workdir", type=Path, default=ROOT / ".cact" / "soak")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    console = Console()

    hog = "stress-ng" if ensure_stress_ng() else "python busy loops (stress-ng could not be installed)"
    size = replace(FULL, participants=args.participants, send_seconds=args.send_seconds,
                   drain_timeout_s=max(FULL.drain_timeout_s, args.participants * 0.3))
    runs = plan(args)
    console.print(f"soak: {len(runs)} faulted runs of a {size.participants:,}-participant day (seeds "
                  f"{', '.join(map(str, args.seeds))}), plus one reference per seed; CPU hog: {hog}; logs in "
                  f"{args.workdir}")
    refs = References(args.workdir)
    results: list[ScenarioResult] = []
    started = time.monotonic()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        overall = progress.add_task("fault suite", total=len(runs))
        phase = progress.add_task("", total=None)
        harness.phase_reporter.append(lambda text: progress.update(phase, description=text))
        try:
            for name, seed in runs:
                progress.update(overall, description=f"{name} (seed {seed})")
                result = run_one(name, seed, refs, size, args, args.workdir)
                results.append(result)
                progress.console.print(("[green]✓[/] " if result.ok else "[red]✗[/] ") +
                                       f"{name} seed {seed}: {result.differences} differences, "
                                       f"{len(result.kills)} kills, {result.seconds / 60:.1f} min")
                if not result.ok:
                    progress.console.print(result.explain(first=5), markup=False, highlight=False)
                progress.advance(overall)
        finally:
            harness.phase_reporter.pop()
    render(results, console)
    apart: dict[str, Any] = {}
    if "broker_loss" in args.scenarios:
        from bench.faults.broker_loss import broker_loss_day

        with console.status(f"broker_loss (seed {args.seeds[0]}): the day with and without a broker restart"):
            problems, facts = broker_loss_day(harness.simulated_day(size, args.seeds[0]),
                                              args.workdir / f"broker-loss-{args.seeds[0]}",
                                              drain_timeout=size.drain_timeout_s)
        apart["broker_loss"] = {"seed": args.seeds[0], "ok": not problems, "problems": problems, **facts}
        console.print(("[green]✓[/] " if not problems else "[red]✗[/] ") +
                      f"broker_loss seed {args.seeds[0]}: {len(problems)} problems, {facts['seconds'] / 60:.1f} min")
        for line in problems[:5]:
            console.print(line, markup=False, highlight=False)
    ok = (bool(results) or bool(apart)) and all(r.ok for r in results) and all(a["ok"] for a in apart.values())
    report: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"), "commit": git_commit(), "ok": ok,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "cpu_hog": hog},
        "size": {"participants": size.participants, "send_seconds": size.send_seconds},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "minutes": round((time.monotonic() - started) / 60, 1),
        "references": [{"seed": seed, "seconds": round(r.run.seconds, 1), "problems": r.problems}
                       for seed, r in refs.made()],
        "results": [r.as_json() for r in results],
        "apart": apart,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    console.print(f"wrote {args.output}: " + ("[green]0 lost, 0 wrong, 0 saved twice[/]" if ok else
                                              "[red]differences found (see above and the report)[/]"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
