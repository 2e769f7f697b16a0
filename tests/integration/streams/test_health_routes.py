"""The worker's probes on a real worker (embedded broker, PostgreSQL behind a proxy the test cuts): /healthz and
/readyz answer without the operator token and say nothing but a status and a reason; /readyz follows the results
store while the worker's own sink writes to it, and ignores it when ``cact sink`` does.

What the probes read of Faust (joined, tables recovered) is unit-tested in tests/unit/streams/test_health.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from bench.faults.tcp_proxy import TcpProxy
from cact.processes import WorkerProcess
from schemas.settings import Settings

TOKEN = "health-probe-operator-token-5e2c"


def probe(base: str, path: str) -> tuple[int, dict[str, Any]] | None:
    try:
        answer = httpx.get(base + path, timeout=5)
    except httpx.TransportError:
        return None
    return answer.status_code, answer.json()


def until(condition: Callable[[], bool], what: str, worker: WorkerProcess, timeout: float = 90) -> None:
    """Poll the worker (a child process: no clock to inject); stop at once if it died."""
    deadline = time.monotonic() + timeout
    while not condition():
        worker.check()
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(0.2)


def through(proxy: TcpProxy, url: str) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


@pytest.mark.broker
@pytest.mark.postgres
def test_readiness_follows_the_store_the_workers_sink_writes_to(pipeline_kafka: Settings, pg_database: str,
                                                                tmp_path: Path) -> None:
    pg = make_url(pg_database)
    with TcpProxy(pg.host or "127.0.0.1", pg.port or 5432) as proxy:
        settings = pipeline_kafka.model_copy(update={"database_url": through(proxy, pg_database),
                                                     "operator_token": TOKEN, "sink_in_worker": True})
        base = f"http://127.0.0.1:{settings.worker_web_port}"
        worker = WorkerProcess(settings, tmp_path / "worker.log")
        try:
            until(lambda: probe(base, "/healthz") is not None, "the worker's web server answers", worker)
            until(lambda: probe(base, "/readyz") == (200, {"status": "ready"}), "ready", worker)
            # open: no token (probes have none), while the operator page behind it stays closed
            assert httpx.get(base + "/operator", timeout=5).status_code == 401
            healthz = httpx.get(base + "/healthz", timeout=5)
            assert (healthz.status_code, healthz.json()) == (200, {"status": "ok"})
            assert healthz.headers["cache-control"] == "no-store"

            proxy.cut()  # the database goes away
            down = (503, {"status": "not ready", "reason": "results store unavailable (OperationalError)"})
            until(lambda: probe(base, "/readyz") == down, "not ready while the store is away", worker)
            assert probe(base, "/healthz") == (200, {"status": "ok"})  # alive: a restart would not bring it back

            proxy.restore()
            until(lambda: probe(base, "/readyz") == (200, {"status": "ready"}), "ready again", worker)
            assert worker.alive()
        finally:
            worker.stop()


@pytest.mark.broker
@pytest.mark.postgres
def test_a_worker_without_its_own_sink_is_ready_whatever_the_store(pipeline_kafka: Settings, pg_database: str,
                                                                   tmp_path: Path) -> None:
    pg = make_url(pg_database)
    with TcpProxy(pg.host or "127.0.0.1", pg.port or 5432) as proxy:
        proxy.cut()  # down from the start: the worker processes anyway, `cact sink` waits for it
        settings = pipeline_kafka.model_copy(update={"database_url": through(proxy, pg_database),
                                                     "sink_in_worker": False})
        base = f"http://127.0.0.1:{settings.worker_web_port}"
        worker = WorkerProcess(settings, tmp_path / "worker.log")
        try:
            until(lambda: probe(base, "/readyz") == (200, {"status": "ready"}), "ready", worker)
            assert probe(base, "/healthz") == (200, {"status": "ok"})
        finally:
            worker.stop()
