"""The worker's web surface, from outside, on a real worker (embedded broker): where it listens, what it serves
without the operator token, and that the token can be rotated without a restart. Also the other listeners
(a standalone sink's /metrics, the SI ASN emulator, the embedded broker): each exactly where configured.

Listening sockets are read with ``ss -ltnp`` for the process's own pid, so a listener on 0.0.0.0 (Faust's
default, which the worker used to have) cannot hide behind the configured one.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from cact.processes import WorkerProcess, consumer_groups
from producers.daysender import send_day
from producers.simulator import SimConfig, build_day
from schemas.blueprint import BlueprintRegistry
from schemas.events import ParticipantScheduled
from schemas.settings import Settings, settings_env
from sinks.store import ResultsStore
from streams.broker import EmbeddedBroker, free_port
from streams.kafka import wait_until_consumed

TOKEN = "first-operator-token-4f1c9a7e2b"
ROTATED = "second-operator-token-8d3e6b0a5c"
WRONG = "not-the-operator-token-1a2b3c4d"


def listening(pid: int) -> set[str]:
    """host:port of every TCP socket the process listens on."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return {line.split()[3] for line in out.splitlines() if re.search(rf"pid={pid}\b", line)}


def wait_until(condition: Callable[[], bool], what: str, alive: Callable[[], None], timeout: float = 90) -> None:
    """Poll a child process until it is ready (it has no clock to inject); ``alive`` raises if it died."""
    deadline = time.monotonic() + timeout
    while not condition():
        alive()
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def private_file(path: Path, content: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content + "\n")
    return path


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def failures(metrics: str, method: str) -> float:
    found = re.search(rf'^cact_web_login_failures_total{{method="{method}"}} (\S+)$', metrics, re.M)
    assert found, metrics[-2000:]
    return float(found.group(1))


@pytest.mark.broker
def test_worker_pages_need_the_operator_token_and_fausts_pages_are_gone(pipeline_kafka: Settings,
                                                                         tmp_path: Path) -> None:
    token_file = private_file(tmp_path / "operator-token", TOKEN)
    settings = pipeline_kafka.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'results.db'}",
                                                 "operator_token_file": token_file,
                                                 "worker_web_host": "127.0.0.1"})
    day = build_day(SimConfig(participants=20, seats=10, seed=5, malformed=0), BlueprintRegistry.from_dir())
    people = [e.payload for e in day.schedule if isinstance(e, ParticipantScheduled)]
    base = f"http://127.0.0.1:{settings.worker_web_port}"
    log_path = tmp_path / "worker.log"
    worker = WorkerProcess(settings, log_path)
    try:
        wait_until(lambda: answers(f"{base}/metrics"), "the worker's web server answers", worker.check)
        send_day(settings, day)
        asyncio.run(wait_until_consumed(settings, consumer_groups(settings), timeout=180, progress=worker.check))
        assert ResultsStore(settings.database_url).summary()["participants_scheduled"] == day.scheduled

        # ---- it listens exactly where configured, nowhere else ------------------------------------
        assert listening(worker.proc.pid) == {f"127.0.0.1:{settings.worker_web_port}"}

        with httpx.Client(base_url=base, timeout=10, follow_redirects=False) as http:
            # ---- without the token: 401, and the login form for a browser -----------------------
            page = http.get("/operator")
            assert page.status_code == 401 and 'action="/login"' in page.text
            assert page.headers["www-authenticate"].startswith("Bearer")
            data = http.get("/attendance.json")
            assert data.status_code == 401 and "Authorization: Bearer" in data.json()["error"]
            # the lists with NIPs: who is absent from a session, which results are held back
            absent_path = f"/absent.json?session={people[0].session_id}"
            for path in (absent_path, "/held-back.json", "/reports.json", "/reports/file?activity=A&version=1&name=x"):
                refused = http.get(path)
                assert refused.status_code == 401 and "Authorization: Bearer" in refused.json()["error"], path
            refused_page = http.get(f"/operator/absent?session={people[0].session_id}")
            assert refused_page.status_code == 401 and 'action="/login"' in refused_page.text
            # logging in from there comes back to the same session's list, query string and all
            assert f'name="next" value="/operator/absent?session={people[0].session_id}"' in refused_page.text
            before = http.get("/metrics").text
            assert http.get("/attendance.json", headers=bearer(WRONG)).status_code == 401
            assert http.get("/operator", headers=bearer(WRONG)).status_code == 401

            # ---- with the Bearer token: 200 --------------------------------------------------------
            assert http.get("/operator", headers=bearer(TOKEN)).status_code == 200
            served = http.get("/attendance.json", headers=bearer(TOKEN))
            assert served.status_code == 200 and served.json()["overall"]["scheduled"] == day.scheduled
            assert served.headers["cache-control"] == "no-store"
            listed = http.get(absent_path, headers=bearer(TOKEN))
            assert listed.status_code == 200 and listed.headers["cache-control"] == "no-store"
            assert {r["nip"] for r in listed.json()["absent"]} <= {p.nip for p in people}
            assert http.get("/held-back.json", headers=bearer(TOKEN)).status_code == 200
            assert http.get("/operator/absent", headers=bearer(TOKEN)).status_code == 200
            assert http.get("/operator/reports", headers=bearer(TOKEN)).status_code == 200
            reports = http.get("/reports.json", headers=bearer(TOKEN))
            assert reports.status_code == 200 and reports.json()["builds"] == []

            # ---- the login form: a cookie (not the token) that then works; a wrong token is 401 ---------
            refused = http.post("/login", data={"token": WRONG, "next": "/operator"})
            assert refused.status_code == 401 and "set-cookie" not in refused.headers
            login = http.post("/login", data={"token": TOKEN, "next": "/operator"})
            assert login.status_code == 303 and login.headers["location"] == "/operator"
            cookie = login.headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
            browser = httpx.Client(base_url=base, timeout=10, cookies={"cact_operator": login.cookies["cact_operator"]})
            assert browser.get("/operator").status_code == 200
            assert browser.get("/attendance.json").json()["overall"]["scheduled"] == day.scheduled
            logout = httpx.post(f"{base}/logout", timeout=10)
            assert logout.status_code == 303 and logout.headers["location"] == "/login"
            assert "Max-Age=0" in logout.headers["set-cookie"]
            after = http.get("/metrics").text
            assert failures(after, "bearer") == failures(before, "bearer") + 2
            assert failures(after, "form") == failures(before, "form") + 1

            # ---- Faust's own pages are off, whoever asks ---------------------------------------------
            someone = f"{people[0].session_id}/{people[0].nip}"
            for path in (f"/table/cact-participants/{quote(someone, safe='')}/", "/table/cact-participants/",
                         "/table/", f"/router/cact-participants/{quote(someone, safe='')}/", "/router/",
                         "/graph/", "/assignment/", "/performance/", "/stats/"):
                for headers in ({}, bearer(TOKEN)):
                    assert http.get(path, headers=headers).status_code == 404, path
            index = http.get("/")
            assert index.status_code == 200 and index.json() == {"status": "OK"}

            # ---- what is open carries no name and no NIP ---------------------------------------------
            open_pages = http.get("/metrics").text + index.text + page.text + data.text
            assert not [p.nip for p in people if p.nip in open_pages]
            assert not [p.name for p in people if p.name in open_pages]

            # ---- rotation through the file, no restart: the old token and its cookie are out ---------
            os.replace(private_file(tmp_path / "operator-token.new", ROTATED), token_file)
            assert http.get("/attendance.json", headers=bearer(TOKEN)).status_code == 401
            assert browser.get("/attendance.json").status_code == 401
            browser.close()
            assert http.get("/attendance.json", headers=bearer(ROTATED)).status_code == 200

            # ---- a token file others may read is refused, said once in the log -----------------------
            token_file.chmod(0o644)
            for _ in range(3):
                assert http.get("/attendance.json", headers=bearer(ROTATED)).status_code == 401
            token_file.chmod(0o600)
            assert http.get("/attendance.json", headers=bearer(ROTATED)).status_code == 200
        assert worker.alive()
    finally:
        worker.stop()
    log = log_path.read_text(encoding="utf-8", errors="replace")
    assert log.count("chmod 600") == 1, log[-3000:]
    for secret in (TOKEN, ROTATED, WRONG, "cact_operator="):
        assert secret not in log


@pytest.mark.broker
def test_a_worker_without_a_token_keeps_its_pages_closed_and_says_so_once(
        pipeline_kafka: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CACT_OPERATOR_TOKEN", raising=False)  # the worker inherits the test's environment
    monkeypatch.delenv("CACT_OPERATOR_TOKEN_FILE", raising=False)
    settings = pipeline_kafka.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'results.db'}"})
    assert settings.operator_token is None and settings.operator_token_file is None
    base = f"http://127.0.0.1:{settings.worker_web_port}"
    log_path = tmp_path / "worker.log"
    worker = WorkerProcess(settings, log_path)
    try:
        wait_until(lambda: answers(f"{base}/metrics"), "the worker's web server answers", worker.check)
        for path in ("/operator", "/attendance.json", "/operator/absent", "/absent.json?session=S1", "/held-back.json",
                     "/operator/reports", "/reports.json", "/reports/file?activity=A&version=1&name=x"):
            for headers in ({}, bearer(TOKEN)):
                refused = httpx.get(base + path, headers=headers, timeout=10)
                assert refused.status_code == 401
                assert "CACT_OPERATOR_TOKEN or CACT_OPERATOR_TOKEN_FILE" in refused.text
        login = httpx.post(base + "/login", data={"token": TOKEN}, timeout=10)
        assert login.status_code == 401 and "set-cookie" not in login.headers
    finally:
        worker.stop()
    log = log_path.read_text(encoding="utf-8", errors="replace")
    assert log.count("CACT_OPERATOR_TOKEN_FILE") == 1, log[-3000:]


@pytest.mark.broker
def test_a_standalone_sinks_metrics_listen_where_configured(pipeline_kafka: Settings, tmp_path: Path) -> None:
    port = free_port()
    settings = pipeline_kafka.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'results.db'}",
                                                 "sink_metrics_port": port})
    env = {**clean_env(), **settings_env(settings)}
    with (tmp_path / "sink.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cact.cli", "sink"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(lambda: answers(f"http://127.0.0.1:{port}/metrics"), "the sink's /metrics answers",
                       alive(proc))
            assert listening(proc.pid) == {f"127.0.0.1:{port}"}
        finally:
            stop(proc)


def test_the_siasn_emulator_listens_on_loopback_by_default(tmp_path: Path) -> None:
    port = free_port()
    with (tmp_path / "emulator.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cact.cli", "siasn-emulator", "--port", str(port)],
                                env=clean_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            stats = f"http://127.0.0.1:{port}/_emulator/stats"
            wait_until(lambda: answers(stats), "the emulator's control endpoint answers", alive(proc))
            assert listening(proc.pid) == {f"127.0.0.1:{port}"}
        finally:
            stop(proc)


@pytest.mark.broker
def test_the_embedded_broker_listens_where_configured(tmp_path: Path) -> None:
    port = free_port()
    with EmbeddedBroker("127.0.0.1", port, log_path=tmp_path / "broker.log") as broker:
        assert broker.proc is not None
        assert listening(broker.proc.pid) == {f"127.0.0.1:{port}"}


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("CACT_", "KAFKA_"))}


def alive(proc: subprocess.Popen[bytes]) -> Callable[[], None]:
    def check() -> None:
        assert proc.poll() is None, f"exited with {proc.returncode}"
    return check


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
