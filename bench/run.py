"""``make bench`` (``python -m bench.run``): a national exam day replayed through one worker into PostgreSQL.

Phases, all in one run on a broker and database of its own:

1. generate N participants (full CACT sheets, one batched autosave per section) and load them into the broker,
   packed per session into ``EventBatch`` messages as a lab's spool flush would send them;
2. the limit: a raw aiokafka consumer reads and JSON-decodes the same topics, nothing else;
3. throughput: one worker processes the day into PostgreSQL, timed from its first processed event to the
   moment the last result is visible in the store; the worker's peak RSS (VmHWM) is sampled meanwhile;
4. latency: new sessions are released at ``--paced-rate`` participants per second; latency is the time from
   sending the message holding a participant's last ``SectionSubmitted`` to their result being visible in
   the store (polled every 20 ms, so an upper bound).

Results go to ``bench/results/latest.json`` and a row is appended to ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import create_engine, text

from bench.generator import BenchDay, DayGenerator
from bench.scrape import Sample, histogram_quantile, scrape, total
from bench.sidebyside import IDLE_SETTLE_SECONDS, PEERS, Measured, compare_rows, idle_cpu, run_peer, snapshot
from bench.watch import ResultWatcher, cpu_seconds, create_database, machine_busy_seconds, peak_rss_mb, wait_for
from cact.processes import WorkerProcess
from schemas import topics
from schemas.blueprint import BlueprintRegistry
from schemas.kafka_config import client_kwargs
from schemas.settings import Settings, settings_env
from streams.broker import EmbeddedBroker, free_port
from streams.kafka import end_offsets, ensure_topics, partition_counts

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
FLOORS = {"participants_per_s": 1000.0, "p99_latency_ms": 1000.0, "worker_peak_rss_mb": 500.0}
#: Issue 18's goals (docs/benchmarks.md, "Beside the peers"), judged by :func:`goals`.
GOALS = {"idle_cpu_ms_per_s": 10.0, "p99_latency_ms": 500.0, "worker_peak_rss_mb": 300.0}
INPUT_NAMES = [t.name for t in topics.INPUT_TOPICS]
Message = tuple[str, str, bytes]  # topic, key, value


# ------------------------------------------------------------------------------------------------
# Messages
# ------------------------------------------------------------------------------------------------

def day_messages(day: BenchDay, batch: int) -> list[Message]:
    """The schedule first (it exists the day before), then each session's lab events, in EventBatches."""
    out: list[Message] = []
    for session in day.sessions:
        out.extend(_pack(session.schedule, batch))
    for session in day.sessions:
        out.extend(_pack(session.lab_events(), batch))
    return out


def _pack(events: list[dict[str, Any]], batch: int) -> Iterable[Message]:
    from schemas.events import EVENT_TYPES

    if batch > 1:
        from producers.batching import batch_events

        return batch_events(events, max_events=batch)
    # One event per message: the baseline the batches are measured against (runs on code without EventBatch).

    return [(EVENT_TYPES[e["event_type"]].topic.name,
             str(e["payload"][EVENT_TYPES[e["event_type"]].key_field]), orjson.dumps(e)) for e in events]


async def produce(settings: Settings, messages: Sequence[Message], advance: Callable[[int], None]) -> None:
    producer = AIOKafkaProducer(acks="all", linger_ms=5, max_batch_size=1 << 20, max_request_size=4 << 20,
                                **client_kwargs(settings))
    await producer.start()
    try:
        for start in range(0, len(messages), 500):
            chunk = messages[start:start + 500]
            futures = [await producer.send(t, key=k.encode(), value=v) for t, k, v in chunk]
            await asyncio.gather(*futures)
            advance(len(chunk))
    finally:
        await producer.stop()


def count_answers(value: bytes) -> tuple[int, int]:
    """(events, answers) in one message, from its JSON: what the raw consumer and the worker both count."""
    data = orjson.loads(value)
    inner = data["payload"]["events"] if data.get("event_type") == "EventBatch" else [data]
    return len(inner), sum(len(e["payload"].get("answers", ())) for e in inner)


async def raw_consume(settings: Settings, advance: Callable[[int], None]) -> dict[str, float]:
    """The limit: read every input message from the start and JSON-decode it; no validation, no state."""
    counts = await partition_counts(settings, INPUT_NAMES)
    tps = [TopicPartition(t, p) for t in INPUT_NAMES for p in range(counts[t])]
    ends = await end_offsets(settings, tps)
    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=4 << 20, fetch_max_bytes=64 << 20, **client_kwargs(settings))
    await consumer.start()
    messages = events = answers = 0
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        started, cpu_started = time.perf_counter(), time.process_time()
        done = {tp for tp in tps if ends[tp] == 0}
        while len(done) < len(tps):
            fetched = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, batch in fetched.items():
                for m in batch:
                    e, a = count_answers(m.value)
                    events += e
                    answers += a
                    if m.offset + 1 >= ends[tp]:
                        done.add(tp)
                messages += len(batch)
                advance(len(batch))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        await consumer.stop()
    return {"seconds": seconds, "cpu_seconds": cpu, "messages": messages, "events": events, "answers": answers}


# ------------------------------------------------------------------------------------------------
# Watching the worker and the store
# ------------------------------------------------------------------------------------------------

def domain_only(settings: Settings, day: BenchDay, messages: Sequence[Message], sample: int,
                advance: Callable[[int], None]) -> dict[str, float]:
    """The worker's own domain code alone, in this process with no Kafka and no Faust: decode and validate
    each message, run it through the processor, serialise what it emits. Its CPU per participant is what any
    worker built on this code needs at the least, whatever carries the messages (docs/benchmarks.md)."""
    from schemas.decode import Rejected, decode_event, unpack
    from streams.processor import SessionProcessor
    from streams.scoring import ScoringPolicy

    keys = {s.session_id for s in day.sessions[: max(1, sample // 30)]}
    chosen = [m for m in messages if m[1] in keys]
    participants = sum(len(s.sittings) for s in day.sessions if s.session_id in keys)
    processor = SessionProcessor(BlueprintRegistry.from_settings(settings),
                                 ScoringPolicy.load(settings.scoring_policy), {}, {})
    started = time.process_time()
    for topic, _key, value in chosen:
        for _index, event in unpack(decode_event(value, topic=topic), topic=topic):
            if isinstance(event, Rejected):
                raise RuntimeError(f"the generated day broke the contract: {event.reason} {event.detail}")
            for out in processor.handle(event):
                out.to_bytes()
        advance(1)
    return {"participants": participants,
            "cpu_ms_per_participant": (time.process_time() - started) * 1000 / participants}


class SinkProcess(WorkerProcess):
    """``cact sink`` as a child process: the deployment where the sink does not share the worker's GIL."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        env = {**os.environ, **settings_env(settings)}
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "cact.cli", "sink"], env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)


def worker_metrics(port: int, names: Sequence[str]) -> dict[str, float]:
    """The worker's Prometheus samples of each name, summed over their labels (all 0 while it is not up)."""
    found = scrape(port, timeout=5)
    return {name: total(found, name) or 0.0 for name in names}


def events_in(port: int) -> float:
    """cact_events_in_total summed over event types: above 0 once the worker has processed an event."""
    return worker_metrics(port, ["cact_events_in_total"])["cact_events_in_total"]


# ------------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------------

def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    registry = BlueprintRegistry.from_dir(None)
    blueprint = registry.get("cact-full")
    assert blueprint is not None
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cact-bench-")))
        broker = EmbeddedBroker(log_path=work / "broker.log").start()
        stack.callback(broker.stop)
        db_url = create_database(stack)
        settings = broker.settings(Settings(
            database_url=db_url, app_id=f"bench-{uuid.uuid4().hex[:6]}", data_dir=work / "worker",
            worker_web_port=free_port(), topic_partitions=args.partitions, sink_in_worker=not args.sink_process,
            **({"batch_max": args.batch_max} if args.batch_max else {}),
            **({"chunk_events": args.chunk_events} if args.chunk_events else {})))
        asyncio.run(ensure_topics(settings))
        console.print(f"[green]✓[/] broker on {broker.bootstrap}, PostgreSQL database {db_url.rsplit('/', 1)[1]}")

        progress = stack.enter_context(Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                                TimeElapsedColumn(), console=console))
        task = progress.add_task("generating the exam day", total=2)
        generator = DayGenerator(blueprint, seed=args.seed)
        day = generator.day(args.participants, prefix="B", activity_id="ACT-BENCH")
        progress.advance(task)
        paced_n = int(args.paced_rate * args.paced_seconds)
        paced = generator.day(paced_n, prefix="P", activity_id="ACT-PACED")
        messages = day_messages(day, args.batch)
        progress.advance(task)

        task = progress.add_task("loading the day into the broker", total=len(messages))
        asyncio.run(produce(settings, messages, lambda n: progress.advance(task, n)))

        task = progress.add_task("raw aiokafka consume + decode (the limit)", total=len(messages))
        raw = asyncio.run(raw_consume(settings, lambda n: progress.advance(task, n)))

        sample = min(args.participants, 3000)
        task = progress.add_task(f"domain code alone, no Kafka ({sample:,} participants)", total=None)
        domain = domain_only(settings, day, messages, sample, lambda n: progress.advance(task, n))
        progress.update(task, total=1, completed=1)

        worker = WorkerProcess(settings, work / "worker.log")
        stack.callback(worker.stop)
        sink = SinkProcess(settings, work / "sink.log") if args.sink_process else None
        if sink is not None:
            stack.callback(sink.stop)
        watcher = ResultWatcher(db_url, day.activity_id, interval=0.25)  # its queries cost PostgreSQL CPU too
        profilers = []
        if args.profile:  # the worker into --profile, the sink of its own process beside it (".sink" added)
            profiled = [(worker.proc.pid, args.profile)]
            if sink is not None:
                profiled.append((sink.proc.pid, args.profile.with_name(args.profile.name + ".sink")))
            profilers = [subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
                                           "record", "--pid", str(pid), "--rate", "100", "--format", "raw",
                                           "--nonblocking", "-o", str(path)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                         for pid, path in profiled]
        task = progress.add_task("worker: waiting for its first event", total=None)
        wait_for(lambda: events_in(settings.worker_web_port) > 0, 120, "the worker's first event", worker.check)
        first = time.time()
        cpu_first = cpu_seconds(worker.proc.pid)
        sink_cpu_first = cpu_seconds(sink.proc.pid) if sink else 0.0
        assert broker.proc is not None
        broker_cpu_first, bench_cpu_first, machine_first = (
            cpu_seconds(broker.proc.pid), time.process_time(), machine_busy_seconds())
        watcher.start()
        progress.update(task, description="worker: results in PostgreSQL", total=day.participants)
        while len(watcher.seen) < day.participants:
            worker.check()
            progress.update(task, completed=len(watcher.seen))
            if time.time() - first > args.timeout:
                raise TimeoutError(f"only {len(watcher.seen)} of {day.participants} results after {args.timeout} s")
            time.sleep(0.1)
        last = max(watcher.seen.values())
        cpu_day = cpu_seconds(worker.proc.pid) - cpu_first
        sink_cpu_day = cpu_seconds(sink.proc.pid) - sink_cpu_first if sink else 0.0
        broker_cpu_day = cpu_seconds(broker.proc.pid) - broker_cpu_first
        bench_cpu_day = time.process_time() - bench_cpu_first
        machine_day = machine_busy_seconds() - machine_first
        progress.update(task, completed=len(watcher.seen))
        watcher.stop()
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(30)
        rss_after_day = peak_rss_mb(worker.proc.pid)
        inside = worker_metrics(settings.worker_web_port,
                                ["cact_batch_seconds_sum", "cact_batch_seconds_count",
                                 "cact_sink_batch_seconds_sum", "cact_sink_batch_seconds_count",
                                 "cact_state_writes_total", "cact_events_out_total"])
        seconds = last - first
        project = Measured("project", day.participants, {"worker": cpu_day} | ({"sink": sink_cpu_day} if sink else {}),
                           {"worker": rss_after_day} | ({"sink": peak_rss_mb(sink.proc.pid)} if sink else {}),
                           {}, last - min(watcher.seen.values()), {})
        time.sleep(IDLE_SETTLE_SECONDS)
        project.idle_ms_per_s = idle_cpu({"worker": worker.proc.pid} | ({"sink": sink.proc.pid} if sink else {}))
        project.snapshot = snapshot(db_url)
        peers: dict[str, Measured] = {}
        for name in args.peers:
            task = progress.add_task(f"peer {name}: results in its own database", total=day.participants)

            def advance(n: int, task: TaskID = task) -> None:
                progress.update(task, completed=n)

            peers[name] = run_peer(name, settings, work, day.activity_id, day.participants, timeout=args.timeout,
                                   advance=advance)
        worker.check()

        # The worker's own histograms over the paced phase split the latency at the worker's acknowledgement.
        latencies, before, after = paced_phase(settings, db_url, paced, args, progress, worker.check)
        rss = peak_rss_mb(worker.proc.pid)
        sink_rss = peak_rss_mb(sink.proc.pid) if sink else 0.0
        progress.stop()

    p50 = statistics.median(latencies)
    p99 = statistics.quantiles(latencies, n=100, method="inclusive")[98] if len(latencies) > 1 else latencies[0]
    answers_per_s = day.answers / seconds
    raw_answers_per_s = raw["answers"] / raw["seconds"]
    result: dict[str, Any] = {
        "commit": git_commit(), "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}",
        "participants": day.participants, "answers": day.answers, "messages": len(messages),
        "events_per_message": round(raw["events"] / raw["messages"], 1), "partitions": args.partitions,
        "seconds": round(seconds, 2),
        "participants_per_s": round(day.participants / seconds, 1),
        "answers_per_s": round(answers_per_s),
        "raw_consume_seconds": round(raw["seconds"], 2),
        "raw_consume_answers_per_s": round(raw_answers_per_s),
        "raw_consume_messages_per_s": round(raw["messages"] / raw["seconds"]),
        "ratio_to_raw": round(answers_per_s / raw_answers_per_s, 3),
        "paced_rate": args.paced_rate, "paced_participants": paced.participants,
        "p50_latency_ms": round(p50 * 1000, 1), "p99_latency_ms": round(p99 * 1000, 1),
        "max_latency_ms": round(max(latencies) * 1000, 1),
        # Of that: from a record's Kafka timestamp to its outputs and state acknowledged by the broker (the worker's
        # cact_event_latency_seconds, interpolated in its buckets), and one chunk from its first record to that
        # acknowledgement (cact_batch_seconds); the rest is the sink's fetch, decode and transaction.
        **{f"worker_{name}_ms": _ms(histogram_quantile(before, after, metric, q))
           for name, metric, q in (("p50_latency", "cact_event_latency_seconds", 0.5),
                                   ("p99_latency", "cact_event_latency_seconds", 0.99),
                                   ("p50_chunk", "cact_batch_seconds", 0.5),
                                   ("p99_chunk", "cact_batch_seconds", 0.99))},
        "worker_cpu_ms_per_participant": round(cpu_day * 1000 / day.participants, 2),
        "worker_peak_rss_mb": round(rss, 1), "worker_rss_after_day_mb": round(rss_after_day, 1),
        "sink": "own process (cact sink)" if sink else "in the worker",
        "sink_cpu_ms_per_participant": round(sink_cpu_day * 1000 / day.participants, 2) if sink else None,
        "sink_peak_rss_mb": round(sink_rss, 1) if sink else None,
        # Where the rest of the machine's CPU went during the day: the broker, and what is left (PostgreSQL,
        # mostly) once the worker, the sink, the broker and this benchmark's own polling are taken out.
        "broker_cpu_ms_per_participant": round(broker_cpu_day * 1000 / day.participants, 2),
        "machine_busy_ms_per_participant": round(machine_day * 1000 / day.participants, 2),
        "other_cpu_ms_per_participant": round((machine_day - cpu_day - sink_cpu_day - broker_cpu_day - bench_cpu_day)
                                              * 1000 / day.participants, 2),
        "machine_cores_busy": round(machine_day / seconds, 2),
    }
    cores = os.cpu_count() or 1
    rest = result["sink_cpu_ms_per_participant"] or 0.0
    rest += result["broker_cpu_ms_per_participant"] + max(result["other_cpu_ms_per_participant"], 0.0)
    result |= {
        # The most this machine could do with every core busy at the day's CPU cost per participant, and the
        # most it could do if the worker cost nothing at all: the floor is out of reach when that is below it.
        "machine_ceiling_participants_per_s": round(cores * 1000 / result["machine_busy_ms_per_participant"], 1),
        "ceiling_without_worker_participants_per_s": round(cores * 1000 / rest, 1) if rest else None,
        # ...and with a worker that spent nothing beyond its domain code (decode, validate, score, serialise).
        "domain_cpu_ms_per_participant": round(domain["cpu_ms_per_participant"], 2),
        "ceiling_domain_only_participants_per_s": round(cores * 1000 / (rest + domain["cpu_ms_per_participant"]), 1),
        "worker_inside": {  # from the worker's /metrics after the day: where its time went
            "process_batches": int(inside["cact_batch_seconds_count"]),
            "process_seconds": round(inside["cact_batch_seconds_sum"], 2),
            "sink_batches": int(inside["cact_sink_batch_seconds_count"]),
            "sink_write_seconds": round(inside["cact_sink_batch_seconds_sum"], 2),
            "state_writes": int(inside["cact_state_writes_total"]),
            "events_out": int(inside["cact_events_out_total"]),
        },
    }
    result["floors"] = {
        "participants_per_s >= 1000": result["participants_per_s"] >= FLOORS["participants_per_s"],
        "p99_latency_ms <= 1000": result["p99_latency_ms"] <= FLOORS["p99_latency_ms"],
        "worker_peak_rss_mb <= 500": result["worker_peak_rss_mb"] <= FLOORS["worker_peak_rss_mb"],
    }
    result["raw_consume_cpu_ms_per_participant"] = round(raw["cpu_seconds"] * 1000 / day.participants, 2)
    result["side_by_side"] = {m.name: m.as_dict() for m in (project, *peers.values())}
    result["identical_rows"] = compare_rows(project.snapshot, {n: m.snapshot for n, m in peers.items()})
    result["goals"] = goals(result)
    return result


def goals(result: dict[str, Any]) -> dict[str, bool | None]:
    """Issue 18's goal figures, judged on this one run; None where the run cannot judge it (no peers ran, a
    day smaller than the 10,000 participants the memory goal names)."""
    side = result["side_by_side"]
    ours = side["project"]["total_cpu_ms_per_participant"]
    peers = [v["total_cpu_ms_per_participant"] for k, v in side.items() if k != "project"]
    raw, idle = result["raw_consume_cpu_ms_per_participant"], side["project"]["total_idle_cpu_ms_per_s"]
    p99, rss = result["p99_latency_ms"], result["worker_peak_rss_mb"]
    return {
        "total CPU per participant below the best peer's": ours < min(peers) if peers else None,
        "total CPU per participant within 2x raw consume + decode": ours <= 2 * raw,
        "idle CPU of worker + sink <= 10 ms/s": idle <= GOALS["idle_cpu_ms_per_s"],
        "p99 latency <= 500 ms at 200 participants/s": (p99 <= GOALS["p99_latency_ms"]
                                                        if result["paced_rate"] >= 200 else None),
        "worker peak RSS <= 300 MB for 10,000 participants": (rss <= GOALS["worker_peak_rss_mb"]
                                                              if result["participants"] >= 10_000 else None),
        "every peer stored identical rows": all(v["identical"] for v in result["identical_rows"].values()),
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def paced_phase(settings: Settings, db_url: str, day: BenchDay, args: argparse.Namespace, progress: Progress,
                check: Callable[[], None]) -> tuple[list[float], list[Sample], list[Sample]]:
    """Release participants at a steady rate; return each one's latency (s) from send to stored result, and the
    worker's metrics when the clock started and once the last result was stored.

    The schedule goes first (it exists the day before). Then every tick releases the next participants:
    their lab events, with the check-ins of their whole room the first time the room is touched (everyone
    checks in before the first section starts). A tick's events go out as one EventBatch per session.
    """
    schedule = [m for s in day.sessions for m in _pack(s.schedule, args.batch)]
    asyncio.run(produce(settings, schedule, lambda n: None))
    engine = create_engine(db_url)
    with engine.connect() as conn:  # the schedule is processed (attendance rows exist) before the clock starts
        wait_for(lambda: conn.execute(text("SELECT count(*) FROM attendance WHERE activity_id = :a"),
                                      {"a": day.activity_id}).scalar_one() >= day.participants,
                 120, "the paced schedule", check)
    engine.dispose()
    before = scrape(settings.worker_web_port, timeout=5) or []  # not the schedule's records, read after a silence

    tick = 0.05
    per_tick = args.paced_rate * tick
    queue: list[tuple[Any, list[dict[str, Any]]]] = []
    for session in day.sessions:
        checkins = [s[0] for s in session.sittings]
        for i, sitting in enumerate(session.sittings):
            queue.append((session, (checkins if i == 0 else []) + sitting[1:]))
    nips = [sitting[-1]["payload"]["nip"] for _, sitting in queue]
    sent_at: dict[str, float] = {}
    watcher = ResultWatcher(db_url, day.activity_id)
    watcher.start()
    task = progress.add_task(f"paced: {args.paced_rate:g} participants/s finishing", total=len(queue))

    async def pace() -> None:
        producer = AIOKafkaProducer(acks="all", linger_ms=0, max_request_size=4 << 20, **client_kwargs(settings))
        await producer.start()
        try:
            start = time.monotonic()
            released = 0
            n = 0
            while released < len(queue):
                n += 1
                upto = min(len(queue), round(n * per_tick))
                by_session: dict[str, list[dict[str, Any]]] = {}
                for _session, events in queue[released:upto]:
                    by_session.setdefault(events[-1]["payload"]["session_id"], []).extend(events)
                now = time.time()
                futures = []
                for events in by_session.values():
                    for t, k, v in _pack(events, args.batch):
                        futures.append(await producer.send(t, key=k.encode(), value=v))
                for nip in nips[released:upto]:
                    sent_at[nip] = now
                await asyncio.gather(*futures)
                progress.advance(task, upto - released)
                released = upto
                await asyncio.sleep(max(0.0, start + n * tick - time.monotonic()))
        finally:
            await producer.stop()

    asyncio.run(pace())
    wait_for(lambda: len(watcher.seen) >= len(queue), 120, "the paced results", check)
    watcher.stop()
    after = scrape(settings.worker_web_port, timeout=5) or []
    return [watcher.seen[nip] - sent_at[nip] for nip in nips], before, after


# ------------------------------------------------------------------------------------------------
# Reporting
# ------------------------------------------------------------------------------------------------

def render(result: dict[str, Any], console: Console) -> None:
    table = Table(title=f"make bench — {result['participants']:,} participants, commit {result['commit']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("floor", justify="right")
    floors = {"participants_per_s": "≥ 1,000", "p99_latency_ms": "≤ 1,000", "worker_peak_rss_mb": "≤ 500"}
    for key in ("participants_per_s", "worker_cpu_ms_per_participant", "sink_cpu_ms_per_participant",
                "broker_cpu_ms_per_participant", "other_cpu_ms_per_participant", "machine_busy_ms_per_participant",
                "machine_cores_busy", "machine_ceiling_participants_per_s", "ceiling_without_worker_participants_per_s",
                "domain_cpu_ms_per_participant", "ceiling_domain_only_participants_per_s",
                "answers_per_s", "raw_consume_answers_per_s", "ratio_to_raw", "p50_latency_ms",
                "p99_latency_ms", "worker_p50_latency_ms", "worker_p99_latency_ms", "worker_p50_chunk_ms",
                "worker_p99_chunk_ms", "worker_peak_rss_mb", "seconds", "messages", "events_per_message"):
        value = result[key]
        table.add_row(key, f"{value:,}" if isinstance(value, (int, float)) else str(value), floors.get(key, ""))
    console.print(table)
    for name, ok in result["floors"].items():
        console.print(f"{'[green]✓' if ok else '[red]✗'}[/] {name}")
    side = Table(title=f"beside the peers: same day, same run (raw consume + decode: "
                       f"{result['raw_consume_cpu_ms_per_participant']} ms CPU per participant)")
    for col in ("contender", "process", "CPU ms/participant", "idle ms/s", "peak RSS MB", "participants/s", "rows"):
        side.add_column(col, justify="left" if col in ("contender", "process", "rows") else "right")
    for row in side_rows(result):
        side.add_row(*row)
    console.print(side)
    for name, ok in result["goals"].items():
        console.print(f"{'[green]✓' if ok else '[red]✗' if ok is False else '[dim]–'}[/] {name}")


def side_rows(result: dict[str, Any]) -> list[tuple[str, ...]]:
    """One row per process of each contender, then its total (the figure the goals judge)."""
    rows: list[tuple[str, ...]] = []
    for name, m in result["side_by_side"].items():
        same = result["identical_rows"].get(name)
        for process, cpu in m["cpu_ms_per_participant"].items():
            rows.append((name, process, str(cpu), str(m["idle_cpu_ms_per_s"][process]), str(m["peak_rss_mb"][process]),
                         "", ""))
        rows.append((name, "total", str(m["total_cpu_ms_per_participant"]), str(m["total_idle_cpu_ms_per_s"]), "",
                     str(m["participants_per_s"]),
                     "reference" if same is None else "identical" if same["identical"] else "DIFFERENT"))
    return rows


RUNS_HEADING = "## Runs beside the peers"
DOC_HEADER = f"""
{RUNS_HEADING}

Appended by `make bench`: one row per run, the project and its peers on the same day in the same run (CPU ms
per participant, all processes of each; idle: ms of CPU per second with no input; the earlier one-worker runs
are in "Runs before the peers" above).

| date (UTC) | commit | participants | participants/s | project CPU ms/participant (worker + sink) \
| plain aiokafka | Quix Streams | raw consume + decode | idle ms/s: project / plain / Quix | p99 ms at 200/s \
| worker peak RSS MB | rows identical | goals met |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|
"""


def append_doc(result: dict[str, Any], path: Path = DOC) -> None:
    text_ = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if f"\n{RUNS_HEADING}\n" not in text_:
        text_ = text_.rstrip("\n") + "\n" + DOC_HEADER
    goals_ = result.get("goals", {})
    failed = [k for k, v in goals_.items() if v is False]
    met = "yes" if goals_ and not failed else "no: " + "; ".join(failed) if failed else "–"
    side = result.get("side_by_side", {})

    def total(name: str) -> str:
        return str(side[name]["total_cpu_ms_per_participant"]) if name in side else "–"

    def idle(name: str) -> str:
        return str(side[name]["total_idle_cpu_ms_per_s"]) if name in side else "–"

    same = result.get("identical_rows", {})
    identical = ("–" if not same else "yes" if all(v["identical"] for v in same.values())
                 else "no: " + ", ".join(k for k, v in same.items() if not v["identical"]))
    row = (f"| {result['at'][:16].replace('T', ' ')} | {result['commit']} | {result['participants']:,} | "
           f"{result['participants_per_s']:,} | {total('project')} | {total('plain_aiokafka')} | "
           f"{total('quix_streams')} | {result.get('raw_consume_cpu_ms_per_participant', '–')} | "
           f"{idle('project')} / {idle('plain_aiokafka')} / {idle('quix_streams')} | {result['p99_latency_ms']} | "
           f"{result['worker_peak_rss_mb']} | {identical} | {met} |\n")
    path.write_text(text_.rstrip("\n") + "\n" + row, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--paced-rate", type=float, default=200.0, help="participants finishing per second")
    parser.add_argument("--paced-seconds", type=float, default=15.0)
    parser.add_argument("--batch", type=int, default=50, help="events per EventBatch message (1: one per message)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-max", type=int, default=None, help="the worker's CACT_BATCH_MAX (default: its own)")
    parser.add_argument("--chunk-events", type=int, default=None,
                        help="the worker's CACT_CHUNK_EVENTS (default: its own)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sink-in-worker", dest="sink_process", action="store_false",
                        help="run the results-store sink inside the worker instead of as its own `cact sink` process")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy the worker's day phase into this file (and the sink's into FILE.sink)")
    parser.add_argument("--no-doc", action="store_true", help="do not append to docs/benchmarks.md")
    parser.add_argument("--peers", nargs="*", choices=sorted(PEERS), default=sorted(PEERS),
                        help="the peers to run beside the project on the same day (none: --peers)")
    args = parser.parse_args(argv)
    console = Console()
    result = run(args, console)
    render(result, console)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if not args.no_doc:
        append_doc(result)
    console.print(f"wrote {args.output}" + ("" if args.no_doc else f" and appended to {DOC.relative_to(ROOT)}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
