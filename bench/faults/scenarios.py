"""The fault suite's scenarios (issue 12, "Done when"), each a function of (references, size, seed, workdir).

Each runs the seed's day through a fresh pipeline while one kind of fault does its damage, and returns a
:class:`ScenarioResult`: the faulted run compared row by row with the uninterrupted reference of the same seed,
the outbox held to "exactly once" on its own, and every worker or sink exit we did not cause listed. The test
(tests/integration/faults/test_fault_suite.py) runs them at a small size, ``make soak`` at full size.

1. :func:`kill_under_load`: kill -9 of the worker and of the sink at random moments, with a CPU hog beside them;
2. :func:`lab_offline`: a lab loses its network for 30 simulated minutes over its check-in deadline, then
   flushes its spool;
3. :func:`database_outage`: PostgreSQL goes away mid-day and comes back;
4. :func:`siasn_outage`: SI ASN answers 5xx to everything for a while, then every token is revoked, and tokens
   expire every few seconds all day;
5. :func:`worker_lost`: two workers in one group, one killed for good mid-day; the survivor takes over.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import time as clock_time
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.faults.harness import Pipeline, RunResult, Sender, Size, day_messages, run_day, simulated_day
from bench.faults.killer import Kill, KillLoop
from bench.faults.load import CpuHog
from bench.faults.reference import References, ScenarioResult, verdict
from sinks.siasn.emulator import EmulatorConfig

Scenario = Callable[..., ScenarioResult]


def _wait_until(moment: float, started: float, stop: Callable[[], bool] = lambda: False) -> None:
    while time.monotonic() < started + moment and not stop():
        time.sleep(min(0.1, max(0.0, started + moment - time.monotonic())))


def _moment(seed: int, what: str, size: Size, low: float = 0.3, high: float = 0.6) -> float:
    """A seeded moment within the sending of the day (fractions of ``send_seconds``)."""
    return random.Random(f"{seed}/{what}").uniform(low, high) * size.send_seconds


def kill_loops(p: Pipeline, size: Size, seed: int, targets: Any) -> list[KillLoop]:
    """Kill loops spread over the processing of the day: each kill is due at a seeded share of the day's input
    committed by the worker group, once the incarnation is working, after a further 0..work_s of work."""
    progress = p.input_progress(day_messages(simulated_day(size, seed)))
    loops = []
    for target, n in targets:
        loops.append(KillLoop(target, kills=n, span_s=size.send_seconds, seed=seed, context=p.progress,
                              ready=p.working(target), progress=progress,
                              work_s=min(10.0, size.send_seconds / max(1, n))).start())
    return loops


# ------------------------------------------------------------------------------------------------
# 1. kill -9 under load
# ------------------------------------------------------------------------------------------------

def kill_under_load(refs: References, size: Size, seed: int, workdir: Path, *, worker_kills: int = 3,
                    sink_kills: int = 1, hog: bool = True, console: Console | None = None) -> ScenarioResult:
    """Kill loops on the worker and the sink while one busy process per core competes with them for CPU.

    The hog stays on from the first message to the end of the drain: recovery after the last kill is where
    a table restored short by one batch would show."""
    ref = refs.get(size, seed)
    loops: list[KillLoop] = []
    hog_ctx: AbstractContextManager[Any] = CpuHog(max_seconds=size.send_seconds * 4 + size.drain_timeout_s + 60) \
        if hog else nullcontext()

    def fault(p: Pipeline, sender: Sender) -> dict[str, Any]:
        assert p.sink is not None
        loops.extend(kill_loops(p, size, seed, ((p.workers[0], worker_kills), (p.sink, sink_kills))))
        kills = [k for loop in loops for k in loop.join(size.send_seconds * 6 + 120)]
        return {"cpu_hog": getattr(hog_ctx, "backend", None), "cpu_hog_workers": getattr(hog_ctx, "workers", 0),
                "kills": [k.as_json() for k in kills]}

    with hog_ctx:
        run = run_day("kill_under_load", size, seed, workdir / f"kill-{seed}", fault=fault, console=console)
    kills = sorted((k for loop in loops for k in loop.kills), key=lambda k: k.at_s)
    checks = []
    made = Counter(k.role for k in kills)
    if made != Counter({"worker": worker_kills, "sink": sink_kills}):
        checks.append(f"the kill loops made {dict(made)} kills, {worker_kills} worker and {sink_kills} sink planned")
    return verdict("kill_under_load", size, ref, run, kills=kills, checks=checks)


# ------------------------------------------------------------------------------------------------
# 2. a lab offline for 30 minutes
# ------------------------------------------------------------------------------------------------

MORNING = clock_time(7, 30)


def busiest_morning_lab(size: Size, seed: int) -> str:
    """The lab with the most morning sessions: its outage (07:50-08:20 local) covers most check-in deadlines."""
    day = simulated_day(size, seed)
    morning = Counter(p.lab_id for p in day.sessions.values() if p.starts_at.timetz().replace(tzinfo=None) == MORNING)
    return (morning or Counter(p.lab_id for p in day.sessions.values())).most_common(1)[0][0]


def lab_offline(refs: References, size: Size, seed: int, workdir: Path, *, minutes: float = 30.0,
                console: Console | None = None) -> ScenarioResult:
    ref = refs.get(size, seed)
    lab = busiest_morning_lab(size, seed)
    spooled: dict[str, int] = {}

    def fault(p: Pipeline, sender: Sender) -> dict[str, Any]:
        spooled.update(sender.join(size.send_seconds * 4 + 120))
        return {"offline_lab": lab, "offline_minutes": minutes, "held_and_flushed": spooled.get("spooled", 0)}

    run = run_day("lab_offline", size, seed, workdir / f"lab-offline-{seed}", fault=fault, console=console,
                  day_faults={"offline_labs": (lab,), "offline_minutes": minutes})
    checks = [] if spooled.get("spooled", 0) > 0 else [f"lab {lab} had nothing to hold back: the outage tested nothing"]
    return verdict("lab_offline", size, ref, run, checks=checks)


# ------------------------------------------------------------------------------------------------
# 3. a database outage
# ------------------------------------------------------------------------------------------------

class DatabaseCut(Protocol):
    """What the outage scenario needs from a way to take PostgreSQL away: ``route`` gives the URL the pipeline
    must use (called once, before it starts), ``cut``/``restore`` take the database away and bring it back."""

    kind: str

    def route(self, url: str) -> str: ...

    def cut(self) -> None: ...

    def restore(self) -> None: ...

    def close(self) -> None: ...


class RefusedConnections:
    """The database refuses connections and its open ones are terminated (as when PostgreSQL restarts).

    Needs no proxy: ``ALLOW_CONNECTIONS false`` plus ``pg_terminate_backend`` on the database's sessions.
    A network cut, where packets vanish and a connection hangs instead of failing, is :class:`ProxyCut`.
    """

    kind = "connections refused (ALLOW_CONNECTIONS false, sessions terminated)"

    def __init__(self) -> None:
        self._url: str | None = None

    def route(self, url: str) -> str:
        self._url = url
        return url

    def _admin(self) -> tuple[Any, str]:
        assert self._url is not None, "route() first"
        url = make_url(self._url)
        return create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT"), str(url.database)

    def cut(self) -> None:
        engine, name = self._admin()
        try:
            with engine.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
        finally:
            engine.dispose()

    def restore(self) -> None:
        engine, name = self._admin()
        try:
            with engine.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
        finally:
            engine.dispose()

    def close(self) -> None:
        pass


class ProxyCut:
    """The pipeline reaches PostgreSQL through ``bench.faults.tcp_proxy.TcpProxy``, which resets every open
    connection and refuses new ones until restored: what a database host going down looks like to a client."""

    kind = "TCP proxy cut (connections reset, new ones refused)"

    def __init__(self, lifetime_s: float = 3600.0) -> None:
        from bench.faults.tcp_proxy import TcpProxy

        self._factory = TcpProxy
        self.lifetime_s = lifetime_s
        self.proxy: Any = None

    def route(self, url: str) -> str:
        u = make_url(url)
        self.proxy = self._factory(u.host or "127.0.0.1", u.port or 5432, lifetime_s=self.lifetime_s).start()
        return u.set(host="127.0.0.1", port=int(self.proxy.port)).render_as_string(hide_password=False)

    def cut(self) -> None:
        self.proxy.cut()

    def restore(self) -> None:
        self.proxy.restore()

    def stats(self) -> dict[str, int]:
        st = self.proxy.stats
        return {"accepted": st.accepted, "reset": st.reset, "cuts": st.cuts}

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()


def database_cut(lifetime_s: float = 3600.0, prefer_proxy: bool = True) -> DatabaseCut:
    """The proxy's cut when bench/faults/tcp_proxy.py is there (helper "sink"), else refused connections."""
    if prefer_proxy:
        try:
            return ProxyCut(lifetime_s)
        except ModuleNotFoundError:
            pass
    return RefusedConnections()


def database_outage(refs: References, size: Size, seed: int, workdir: Path, *, outage_s: float = 10.0,
                    cut: DatabaseCut | None = None, console: Console | None = None) -> ScenarioResult:
    ref = refs.get(size, seed)
    cutter = cut or database_cut(lifetime_s=size.send_seconds * 6 + size.drain_timeout_s + 600)
    at = _moment(seed, "database-outage", size)

    def fault(p: Pipeline, sender: Sender) -> dict[str, Any]:
        _wait_until(at, p.started)
        before = p.progress()
        cutter.cut()
        cut_at = time.monotonic() - p.started
        try:
            time.sleep(outage_s)
        finally:
            cutter.restore()
            p.store.engine.dispose()  # the harness's own pooled connections died with the outage
        return {"database_outage": cutter.kind, "cut_at_s": round(cut_at, 1), "outage_s": outage_s,
                "store_before": before, "store_after": p.progress()}

    try:
        run = run_day("database_outage", size, seed, workdir / f"db-outage-{seed}", fault=fault, console=console,
                      database_url_for_pipeline=cutter.route)
        stats = cutter.stats() if isinstance(cutter, ProxyCut) else None
    finally:
        cutter.close()
    checks = []
    if stats is not None:
        run.faults["proxy"] = stats
        if not stats["reset"]:
            checks.append("the cut met no open database connection: the outage tested nothing")
    return verdict("database_outage", size, ref, run, checks=checks)


# ------------------------------------------------------------------------------------------------
# 4. SI ASN outage and token expiry
# ------------------------------------------------------------------------------------------------

def siasn_outage(refs: References, size: Size, seed: int, workdir: Path, *, outage_s: float = 8.0,
                 token_ttl_s: float = 20.0, console: Console | None = None) -> ScenarioResult:
    """SI ASN down (every API call a 5xx) from a seeded moment once pushes have begun, then all tokens revoked
    at once as it comes back; tokens also expire every ``token_ttl_s`` all day."""
    ref = refs.get(size, seed)
    at = _moment(seed, "siasn-outage", size)
    expected = len(ref.run.snapshot.get("siasn_kompetensi", []))

    def fault(p: Pipeline, sender: Sender) -> dict[str, Any]:
        _wait_until(at, p.started)
        deadline = time.monotonic() + size.send_seconds * 4 + 60
        while p.emulator.stats()["saves_total"] < max(1, expected // 10) and time.monotonic() < deadline:
            time.sleep(0.2)  # down while results are being pushed, not before the first one
        saved_before = p.emulator.stats()["saves_total"]
        p.emulator.set_faults(fail_rate=1.0, seed=seed)
        down_at = time.monotonic() - p.started
        time.sleep(outage_s)
        p.emulator.set_faults(fail_rate=0.0, expire_tokens_now=True)
        return {"siasn_down_at_s": round(down_at, 1), "outage_s": outage_s, "token_ttl_s": token_ttl_s,
                "saved_before_outage": saved_before}

    checks: list[str] = []
    run = run_day("siasn_outage", size, seed, workdir / f"siasn-outage-{seed}", fault=fault, console=console,
                  emulator_config=EmulatorConfig(token_ttl_s=token_ttl_s))
    stats = run.emulator_stats
    run.faults["emulator"] = {k: stats.get(k) for k in ("served_5xx", "served_401", "tokens_issued", "saves_total")}
    if not stats.get("served_5xx"):
        checks.append("SI ASN served no 5xx: the outage met no push")
    if not stats.get("served_401") and stats.get("tokens_issued", 0) <= 2:
        checks.append("no token expired during the run: token expiry was not tested")
    return verdict("siasn_outage", size, ref, run, checks=checks)


# ------------------------------------------------------------------------------------------------
# 5. two workers, one lost for good
# ------------------------------------------------------------------------------------------------

def worker_lost(refs: References, size: Size, seed: int, workdir: Path, *, console: Console | None = None
                ) -> ScenarioResult:
    ref = refs.get(size, seed)
    at = _moment(seed, "worker-lost", size)
    kills: list[Kill] = []
    checks: list[str] = []

    def fault(p: Pipeline, sender: Sender) -> dict[str, Any]:
        lost, survivor = p.workers[1], p.workers[0]
        _wait_until(at, p.started)
        working = p.working(lost)
        while lost.alive() and lost.uptime() < 30 and not working():  # mid-work, not mid-start-up
            time.sleep(0.1)
        context = p.progress()
        kills.append(Kill(lost.role, time.monotonic() - p.started, lost.pid, lost.incarnation, lost.uptime(), context))
        lost.retire()
        return {"lost": lost.role, "survivor": survivor.role, "lost_at_s": round(kills[0].at_s, 1)}

    run = run_day("worker_lost", size, seed, workdir / f"worker-lost-{seed}", fault=fault, console=console, workers=2)
    survivor_exits = [e for e in run.exits if e.role == "worker-0"]
    if survivor_exits:
        checks.append(f"the surviving worker ended {len(survivor_exits)} time(s) during the run")
    return verdict("worker_lost", size, ref, run, kills=kills, checks=checks)


# ------------------------------------------------------------------------------------------------
# 6. (soak --hostile N) kills under load with hostile records interleaved
# ------------------------------------------------------------------------------------------------

def hostile_under_kills(refs: References, size: Size, seed: int, workdir: Path, *, count: int,
                        worker_kills: int = 3, sink_kills: int = 1, console: Console | None = None) -> ScenarioResult:
    """The kill scenario with ``count`` hostile records (``bench.faults.hostile``, day-safe kinds) sent beside
    the day by an outside client. The run's dead letters at the hostile records' positions are accounted
    for (0 vanished, each with its kind's reason) and set aside; everything else must still equal the reference."""
    from bench.faults import hostile
    from bench.faults.hostile_stream import HostileStream, account

    ref = refs.get(size, seed)
    day = simulated_day(size, seed)
    records = hostile.iter_hostile(day, count, seed=seed, kinds=hostile.DAY_SAFE_KINDS)
    loops: list[KillLoop] = []
    streams: list[HostileStream] = []

    def fault(p: Pipeline, sender: Sender) -> dict[str, Any]:
        assert p.sink is not None
        streams.append(HostileStream(p.settings, records, count, size.send_seconds).start())
        loops.extend(kill_loops(p, size, seed, ((p.workers[0], worker_kills), (p.sink, sink_kills))))
        kills = [k for loop in loops for k in loop.join(size.send_seconds * 6 + 120)]
        streams[0].join(size.send_seconds * 6 + 600)
        return {"kills": [k.as_json() for k in kills]}

    with CpuHog(max_seconds=size.send_seconds * 6 + size.drain_timeout_s + 600):
        run = run_day("hostile_under_kills", size, seed, workdir / f"hostile-{seed}", fault=fault, console=console)
    checks: list[str] = []
    if streams:
        fates, run.snapshot = account(streams[0].sent, run.snapshot, {t.nip for t in day.truth.values()},
                                      set(day.sessions))
        fates["refused_by_broker"] = dict(streams[0].refused)
        run.faults["hostile"] = fates
        if fates["fates"].get("vanished"):
            checks.append(f"{fates['fates']['vanished']} hostile records vanished (no dead letter at their "
                          f"position): {fates['vanished_by_kind']}")
        if fates["other_reason"]:
            checks.append(f"hostile records dead-lettered with another reason than their kind's: "
                          f"{fates['other_reason']}")
    kills = sorted((k for loop in loops for k in loop.kills), key=lambda k: k.at_s)
    return verdict("hostile_under_kills", size, ref, run, kills=kills, checks=checks)


SCENARIOS: dict[str, Scenario] = {
    "kill_under_load": kill_under_load,
    "lab_offline": lab_offline,
    "database_outage": database_outage,
    "siasn_outage": siasn_outage,
    "worker_lost": worker_lost,
}


__all__ = ["SCENARIOS", "References", "RunResult", "ScenarioResult", "kill_under_load", "lab_offline",
           "database_outage", "siasn_outage", "worker_lost", "database_cut", "RefusedConnections", "ProxyCut"]
