"""One exam day through a pipeline of its own, with faults injected on the way, ending in a snapshot.

Every run (the reference and each faulted run) gets a fresh embedded broker, a fresh PostgreSQL database, a
fresh SI ASN emulator, its own worker process(es) and a ``cact sink`` process, so two runs share nothing but the
seed. The day is sent paced over ``send_seconds`` of wall time, as labs would send it, so faults land mid-day;
the reference is paced the same way, so the only difference between the two runs is the fault.

Settings that differ from the defaults, and why:

- ``CACT_WALL_CLOCK_LAG_SECONDS`` one year: the simulated day is in the past and replayed in minutes, so the
  wall-clock fallback would close check-in windows by *today's* clock in one run and not in another;
- ``CACT_SIASN_LEASE_SECONDS`` 20 and ``CACT_SIASN_RETRY_*`` 1..5 s: a push claimed by a killed worker is
  retried after its lease and a push that met an outage after its backoff; the production values (120 s,
  up to 300 s) would only make the runs wait longer, not behave differently;
- ``CACT_SIASN_RATE_PER_S`` 0: the emulator needs no pacing (as in ``cact demo``).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition
from rich.console import Console
from sqlalchemy import create_engine, text

from bench.faults.compare import Snapshot, emulator_snapshot, store_snapshot
from bench.faults.processes import Exit, PipelineProcess, Supervisor, fresh_dir
from bench.scrape import scrape, total
from cact.processes import consumer_groups, siasn_env, wait_until_pushed
from producers.daysender import delivery_plan, send_day
from producers.simulator import SimConfig, SimDay, build_day
from schemas import topics
from schemas.blueprint import BlueprintRegistry
from schemas.kafka_config import client_kwargs
from schemas.settings import Settings
from sinks.siasn.emulator import EmulatorConfig, EmulatorThread
from sinks.store import ResultsStore
from streams.broker import EmbeddedBroker, free_port
from streams.kafka import ensure_topics, wait_until_consumed

PG_ADMIN_URL = os.environ.get("CACT_FAULTS_PG_ADMIN_URL",
                              os.environ.get("CACT_TEST_PG_ADMIN_URL",
                                             "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
ONE_YEAR_S = 365 * 24 * 3600.0


@dataclass(frozen=True)
class Size:
    """How big a day, and how long (wall clock) it takes the labs to send it."""

    participants: int
    send_seconds: float
    seats: int = 30
    malformed: int = 8
    reschedule_share: float = 0.3
    drain_timeout_s: float = 240.0

    def sim_config(self, seed: int, **faults: Any) -> SimConfig:
        # Results that must not count ride along: blank sheets (incomplete, held), sessions of an institution
        # whose accreditation ended before the day (not_recognised, never pushed) and of a valid one.
        return SimConfig(participants=self.participants, seats=self.seats, seed=seed, malformed=self.malformed,
                         reschedule_share=self.reschedule_share, blank_sheets=max(2, self.participants // 300),
                         organisers=ORGANISERS, **faults)


#: Kemenkeu's assessment centre: 207/KEP/2020 ended on 2025-10-19; Kemenag's: category B until 2027-10-25.
ORGANISERS = {"kemenkeu": "kemenkeu-assessment-center", "kemenag": "kemenag-biro-kepegawaian"}
#: What their results must be, read off the registry's rows by hand (schemas/accreditation/, the 2026-11-03 day).
ORGANISER_STANDING = {"kemenkeu-assessment-center": "not_recognised", "kemenag-biro-kepegawaian": "counted"}

SMALL = Size(participants=240, send_seconds=14.0, drain_timeout_s=150.0)
FULL = Size(participants=3000, send_seconds=150.0, drain_timeout_s=900.0)

_days: dict[tuple[Any, ...], SimDay] = {}
_registry: list[BlueprintRegistry] = []


def simulated_day(size: Size, seed: int, **faults: Any) -> SimDay:
    """The day for this size and seed (built once per process: the reference and the runs share it)."""
    key = (size.participants, size.seats, size.malformed, size.reschedule_share, seed, tuple(sorted(faults.items())))
    if key not in _days:
        if not _registry:
            _registry.append(BlueprintRegistry.from_dir())
        _days[key] = build_day(size.sim_config(seed, **faults), _registry[0])
    return _days[key]


def day_messages(day: SimDay) -> int:
    schedule, lab = delivery_plan(day)
    return len(schedule) + len(lab)


@dataclass
class RunResult:
    """What one run left behind: its rows, what was done to it, and how its processes ended."""

    name: str
    seed: int
    snapshot: Snapshot
    seconds: float
    exits: list[Exit] = field(default_factory=list)
    faults: dict[str, Any] = field(default_factory=dict)
    drain_error: str | None = None
    workdir: str = ""
    emulator_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def unexpected_exits(self) -> list[Exit]:
        return [e for e in self.exits if not e.killed]


@contextmanager
def fresh_database(admin_url: str = PG_ADMIN_URL, prefix: str = "cact_fault") -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards (``DROP … WITH (FORCE)``: a leaked connection
    cannot keep it alive). The integration tests' ``pg_database`` is this too."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        raise RuntimeError(f"cannot create a database at {admin_url.rsplit('@', 1)[-1]} ({type(exc).__name__}); "
                           "set CACT_FAULTS_PG_ADMIN_URL to a PostgreSQL you may create databases in") from None
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Pipeline:
    """Broker, database, emulator, workers and a sink for one run; stop() (or the with block) ends all of it.

    ``database_url_for_pipeline`` lets a scenario put a proxy between the pipeline and PostgreSQL: it gets the
    real URL and returns the one the processes use (the harness itself always reads the real one).
    """

    def __init__(self, workdir: Path, *, workers: int = 1, emulator_config: EmulatorConfig | None = None,
                 database_url_for_pipeline: Callable[[str], str] | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.n_workers = workers
        self.emulator_config = emulator_config
        self.route_db = database_url_for_pipeline or (lambda url: url)
        self.extra_env = extra_env or {}
        self.workers: list[PipelineProcess] = []
        self.sink: PipelineProcess | None = None
        self._stack = ExitStack()
        self.started = time.monotonic()

    @property
    def processes(self) -> list[PipelineProcess]:
        return [*self.workers, *([self.sink] if self.sink else [])]

    def __enter__(self) -> Pipeline:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def _start(self) -> None:
        fresh_dir(self.workdir)
        broker = self._stack.enter_context(EmbeddedBroker("127.0.0.1", free_port(),
                                                          log_path=self.workdir / "broker.log"))
        self.database_url = self._stack.enter_context(fresh_database())
        self.emulator = self._stack.enter_context(EmulatorThread(config=self.emulator_config))
        self.settings = Settings(
            kafka_bootstrap_servers=broker.bootstrap, database_url=self.route_db(self.database_url),
            data_dir=self.workdir / "worker", lab_spool_path=self.workdir / "lab-spool.db",
            worker_web_port=free_port(), sink_in_worker=False, siasn_push_enabled=True,
            wall_clock_lag_seconds=ONE_YEAR_S, siasn_lease_seconds=20.0, siasn_retry_base_seconds=1.0,
            siasn_retry_max_seconds=5.0)
        asyncio.run(ensure_topics(self.settings))
        self.store = ResultsStore(self.database_url)
        self._stack.callback(self.store.dispose)
        self.store.create_schema()
        env = {**siasn_env(self.emulator), **self.extra_env}
        logs = self.workdir / "logs"
        for i in range(self.n_workers):
            own = self.settings.model_copy(update={"data_dir": self.workdir / f"worker-{i}",
                                                   "worker_web_port": free_port()})
            self.workers.append(PipelineProcess(f"worker{'' if self.n_workers == 1 else f'-{i}'}", "worker", own,
                                                logs, env))
        self.sink = PipelineProcess("sink", "sink", self.settings, logs, env)
        for p in self.processes:
            p.start()
        self._stack.callback(self._stop_processes)
        self._stack.enter_context(Supervisor(self.processes))  # exits before the processes are stopped

    def _stop_processes(self) -> None:
        for p in self.processes:
            p.stop()

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    # -- during the run ---------------------------------------------------------------------------

    def progress(self) -> dict[str, Any]:
        """What the store holds right now (read directly, never through a scenario's proxy): kill context."""
        try:
            with self.store.engine.connect() as conn:
                results = conn.execute(text("SELECT count(*) FROM results")).scalar_one()
                attendance = conn.execute(text("SELECT count(*) FROM attendance")).scalar_one()
        except Exception as exc:  # the store is what the scenario may have cut: say so, do not fail
            return {"t_s": round(time.monotonic() - self.started, 1), "store": type(exc).__name__}
        return {"t_s": round(time.monotonic() - self.started, 1), "results": results, "attendance": attendance}

    def working(self, process: PipelineProcess) -> Callable[[], bool]:
        """True once the current incarnation has done some work: a worker has processed input (its
        ``cact_events_in_total`` counter starts at 0 in every incarnation), a sink has stored rows."""
        if process.command == "worker":
            port = int(process.env["CACT_WORKER_WEB_PORT"])
            return lambda: _events_in(port) > 0
        baselines: dict[int, int] = {}

        def stored_more() -> bool:
            rows = self._rows()
            if rows is None:
                return False
            return rows > baselines.setdefault(process.incarnation, rows)
        return stored_more

    def input_progress(self, total: int) -> Callable[[], float]:
        """Share of the day's ``total`` input messages the worker group has committed (0..1): where in the day
        the pipeline really is, which on a loaded machine is well behind what the labs have sent."""
        names = [t.name for t in topics.INPUT_TOPICS]

        async def committed() -> int:
            consumer = AIOKafkaConsumer(group_id=self.settings.app_id, enable_auto_commit=False,
                                        **client_kwargs(self.settings))
            await consumer.start()
            try:
                tps = [TopicPartition(t, p) for t in names for p in sorted(consumer.partitions_for_topic(t) or ())]
                return sum([(await consumer.committed(tp)) or 0 for tp in tps])
            finally:
                await consumer.stop()

        def progress() -> float:
            try:
                return min(1.0, asyncio.run(committed()) / max(1, total))
            except Exception:  # the broker is busy or the group is rebalancing: no progress seen this time
                return 0.0
        return progress

    def _rows(self) -> int | None:
        try:
            with self.store.engine.connect() as conn:
                return int(conn.execute(text("SELECT (SELECT count(*) FROM results) + "
                                             "(SELECT count(*) FROM attendance)")).scalar_one())
        except Exception:
            return None

    def send_in_background(self, day: SimDay, send_seconds: float) -> Sender:
        return Sender(self.settings, day, send_seconds).start()

    def drain(self, timeout: float) -> str | None:
        """Wait until every group has consumed everything and SI ASN acknowledged every push; None when done,
        else what was still outstanding (the run is compared anyway: the diff says what is missing)."""
        deadline = time.monotonic() + timeout
        try:
            asyncio.run(wait_until_consumed(self.settings, consumer_groups(self.settings), timeout=timeout))
            wait_until_pushed(self.store, timeout=max(5.0, deadline - time.monotonic()))
            # A push retried after the last consume can only come from rows already there: one more look.
            asyncio.run(wait_until_consumed(self.settings, consumer_groups(self.settings),
                                            timeout=max(5.0, deadline - time.monotonic())))
        except TimeoutError as exc:
            return str(exc)
        return None

    def snapshot(self) -> Snapshot:
        emu = self.emulator.emulator
        deadline = time.monotonic() + 10
        while True:  # the emulator's dicts live on its own thread's loop: copy them when they hold still
            try:
                saved = emulator_snapshot({k: list(v) for k, v in dict(emu._kompetensi).items()},
                                          {k: list(v) for k, v in dict(emu._potensi).items()})
                break
            except RuntimeError:  # changed size during iteration
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return {**store_snapshot(self.store), **saved}

    def exits(self) -> list[Exit]:
        for p in self.processes:
            p.poll_exit()
        return [e for p in self.processes for e in p.exits]


def _events_in(port: int) -> float:
    return total(scrape(port), "cact_events_in_total") or 0.0


class Sender:
    """``send_day`` in a thread, paced so the whole day takes ``send_seconds``; join() re-raises its error."""

    def __init__(self, settings: Settings, day: SimDay, send_seconds: float) -> None:
        self.rate = day_messages(day) / send_seconds
        self.settings, self.day = settings, day
        self.error: BaseException | None = None
        self.sent: dict[str, int] = {}
        self._thread = threading.Thread(target=self._run, name="day-sender", daemon=True)

    def _run(self) -> None:
        try:
            self.sent = dict(send_day(self.settings, self.day, rate=self.rate))
        except BaseException as exc:
            self.error = exc

    def start(self) -> Sender:
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> dict[str, int]:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the labs were still sending after {timeout} s")
        if self.error is not None:
            raise RuntimeError(f"sending the day failed: {self.error}") from self.error
        return self.sent


Fault = Callable[[Pipeline, Sender], dict[str, Any]]
#: Where run_day reports its phase ("reference seed 7: draining") when a driver (the soak) shows its own
#: progress display; None: the console's status spinner, if a console is given.
phase_reporter: list[Callable[[str], None]] = []


def run_day(name: str, size: Size, seed: int, workdir: Path, *, fault: Fault | None = None,
            day_faults: dict[str, Any] | None = None, console: Console | None = None,
            **pipeline_options: Any) -> RunResult:
    """Send the day through a fresh pipeline while ``fault`` does its damage, drain, and snapshot.

    ``fault(pipeline, sender)`` runs in the calling thread while the day is being sent and returns a record of
    what it did (kills, outages); it must return only once its damage is done and repaired.
    ``day_faults``: SimConfig delivery faults (e.g. an offline lab): same day, delivered differently.
    """
    day = simulated_day(size, seed, **(day_faults or {}))
    started = time.monotonic()
    report = phase_reporter[-1] if phase_reporter else None
    with Pipeline(workdir, **pipeline_options) as pipeline:
        sender = pipeline.send_in_background(day, size.send_seconds)
        status = console.status("") if console and not report else _null()
        with status as shown:
            def phase(text: str) -> None:
                line = f"[bold]{name}[/] (seed {seed}): {text}"
                if report:
                    report(line)
                elif shown is not None:
                    shown.update(line)
            phase(f"sending {day_messages(day):,} messages over {size.send_seconds:g} s")
            done = fault(pipeline, sender) if fault is not None else {}
            sender.join(size.send_seconds * 4 + 120)
            phase("draining: waiting until everything is consumed, stored and pushed")
            error = pipeline.drain(size.drain_timeout_s)
            snapshot = pipeline.snapshot()
        return RunResult(name, seed, snapshot, time.monotonic() - started, pipeline.exits(), done, error,
                         str(workdir), pipeline.emulator.stats())


@contextmanager
def _null() -> Iterator[Any]:
    yield None


def with_size(size: Size, **changes: Any) -> Size:
    return replace(size, **changes)
