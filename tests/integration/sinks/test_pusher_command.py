"""``cact siasn push`` as operators run it: two of them on one outbox (PostgreSQL) deliver every result to the
SI ASN emulator exactly once; SIGTERM mid-batch hands the unsent claims back at once; /metrics and /healthz
on its own port; what cannot work is one line.

The results are written straight into the store (the worker's part is proven elsewhere): what is under test is
the process, its leases and its stop, against real HTTP and a real ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cact.processes import siasn_env, wait_until_pushed
from sinks import models as m
from sinks.siasn.emulator import EmulatorThread, Faults
from sinks.siasn.push import outbox_status
from sinks.store import ResultsStore
from streams.broker import free_port
from support.store_scenarios import nip

#: The client's own retries kept short, so the emulator's 503 bursts reach the outbox's backoff too.
FAST_RETRIES = {"CACT_SIASN_BACKOFF_BASE_S": "0.05", "CACT_SIASN_BACKOFF_MAX_S": "0.2", "CACT_SIASN_MAX_ATTEMPTS": "3",
                "CACT_SIASN_RETRY_BASE_SECONDS": "0.2", "CACT_SIASN_RETRY_MAX_SECONDS": "1"}


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("CACT_", "KAFKA_"))}


class Pusher:
    """A ``cact siasn push`` child in its own process group, its output in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "cact.cli", "siasn", "push"], env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def check(self, _pending: int = 0) -> None:
        assert self.proc.poll() is None, f"the pusher exited with {self.proc.returncode}: {self.output()[-2000:]}"

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, as Docker and Kubernetes stop a container; the exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise
        self._log.close()
        return self.proc.returncode


def pusher_env(database: str, emu: EmulatorThread, port: int | None = None, **extra: str) -> dict[str, str]:
    env = {**clean_env(), **siasn_env(emu), **FAST_RETRIES, "CACT_DATABASE_URL": database, **extra}
    if port is not None:
        env["CACT_PUSHER_METRICS_PORT"] = str(port)
    return env


def wait_until(condition: Callable[[], bool], what: str, alive: Callable[[], None], timeout: float = 60) -> None:
    """Poll a child process (it has no clock to inject); ``alive`` raises if it died."""
    deadline = time.monotonic() + timeout
    while not condition():
        alive()
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(0.1)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def delivered_by(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(float(v) for v in re.findall(r'^cact_siasn_deliveries_total\{kind="kompetensi"\} (\S+)$', text, re.M))


def listening(pid: int) -> set[str]:
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return {line.split()[3] for line in out.splitlines() if re.search(rf"pid={pid}\b", line)}


def filled_store(url: str, store_cases: Any, count: int) -> tuple[ResultsStore, list[str]]:
    store = ResultsStore(url)
    store.create_schema()
    nips = [nip(i) for i in range(1, count + 1)]
    store.write_batch([store_cases.scored(n, 1) for n in nips])
    return store, nips


@pytest.mark.postgres
def test_two_pushers_share_the_outbox_and_push_every_result_once(pg_database: str, store_cases: Any,
                                                                 tmp_path: Path) -> None:
    store, nips = filled_store(pg_database, store_cases, 150)
    ports = [free_port(), free_port()]
    # Slow enough that both are busy at once, with a burst of outage for the retries.
    with EmulatorThread(faults=Faults(latency_ms=5, fail_next_n=15)) as emu:
        pushers = [Pusher(pusher_env(pg_database, emu, port, CACT_SIASN_PUSH_BATCH="5"), tmp_path / f"p{i}.log")
                   for i, port in enumerate(ports)]
        try:
            for pusher, port in zip(pushers, ports, strict=True):
                url = f"http://127.0.0.1:{port}/healthz"
                wait_until(lambda url=url: answers(url), "the pusher's /healthz", pusher.check)  # type: ignore[misc]
                assert listening(pusher.proc.pid) == {f"127.0.0.1:{port}"}  # CACT_PUSHER_METRICS_HOST's default

            def both_alive(_pending: int) -> None:
                for pusher in pushers:
                    pusher.check()

            wait_until_pushed(store, timeout=180, progress=both_alive)
            shares = [delivered_by(port) for port in ports]
            health = httpx.get(f"http://127.0.0.1:{ports[0]}/healthz", timeout=5)
        finally:
            codes = [p.terminate() for p in pushers]
        stats = emu.stats()
    assert codes == [0, 0], [p.output()[-2000:] for p in pushers]
    assert stats["saves_by_nip"] == dict.fromkeys(nips, 1)  # every result once: none lost, none twice
    assert stats["served_503"] >= 15
    assert outbox_status(store)["delivered"] == len(nips)
    assert sum(shares) == len(nips) and min(shares) > 0, shares  # both took part
    assert health.json() == {"status": "ok"} and health.headers["cache-control"] == "no-store"
    for pusher in pushers:
        out = pusher.output()
        assert "cact siasn push stopped: 0 claimed push(es) handed back" in out
        assert "cact-emulator-password" not in out and "Traceback" not in out


@pytest.mark.postgres
def test_sigterm_mid_batch_hands_the_unsent_claims_back_at_once(pg_database: str, store_cases: Any,
                                                                tmp_path: Path) -> None:
    store, nips = filled_store(pg_database, store_cases, 30)
    with EmulatorThread(faults=Faults(latency_ms=150)) as emu:
        # One claim holds the whole outbox; each push takes two calls of 150 ms.
        first = Pusher(pusher_env(pg_database, emu, CACT_SIASN_PUSH_BATCH="30"), tmp_path / "first.log")
        try:
            wait_until(lambda: outbox_status(store)["delivered"] >= 2, "two deliveries", first.check)
            stopping = time.monotonic()
            code = first.terminate()
            took = time.monotonic() - stopping
        finally:
            first.terminate()
        delivered = outbox_status(store)["delivered"]
        with Session(store.engine) as s:
            still_claimed = s.scalar(select(func.count()).select_from(m.SiasnOutbox).where(
                m.SiasnOutbox.status == "pending", m.SiasnOutbox.claimed_until.is_not(None)))
        assert code == 0 and took < 10, (code, took, first.output()[-2000:])
        assert still_claimed == 0  # nothing waits out a lease
        assert f"{len(nips) - delivered} claimed push(es) handed back" in first.output()
        assert emu.stats()["saves_total"] == delivered  # the push in flight was finished and recorded

        emu.set_faults(latency_ms=0)
        second = Pusher(pusher_env(pg_database, emu), tmp_path / "second.log")
        try:
            started = time.monotonic()
            wait_until_pushed(store, timeout=60, progress=second.check)
            # the lease is 120 s: this is quick only because the claims were handed back
            assert time.monotonic() - started < 30
        finally:
            assert second.terminate() == 0
        assert emu.stats()["saves_by_nip"] == dict.fromkeys(nips, 1)


def run_push(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cact.cli", "siasn", "push"], env=env, capture_output=True,
                          text=True, timeout=60)


def test_what_cannot_work_is_one_line(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'results.db'}"
    missing = run_push({**clean_env(), "CACT_DATABASE_URL": database})
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    assert missing.stderr.startswith("cannot push to SI ASN: SI ASN client not configured: set CACT_SIASN_CONSUMER_KEY")

    with EmulatorThread() as emu, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_push(pusher_env(database, emu, port))
        secret = run_push({**pusher_env(database, emu), "CACT_SIASN_SSO_PASSWORD_FILE": str(tmp_path / "absent")})
    assert busy.returncode == 2 and len(busy.stderr.strip().splitlines()) == 1, busy.stderr
    assert f"cannot listen on 127.0.0.1:{port}: the port is already in use" in busy.stderr
    assert "CACT_PUSHER_METRICS_PORT" in busy.stderr
    assert secret.returncode == 2 and "cact-emulator-password" not in secret.stderr
    assert "CACT_SIASN_SSO_PASSWORD or CACT_SIASN_SSO_PASSWORD_FILE, not both" in secret.stderr
