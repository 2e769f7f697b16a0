"""An operator's bad configuration is one line naming the variable and a non-zero exit, through ``cact`` as a
process: nothing else on stdout or stderr, no traceback. And a worker that can start says where it is."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.broker import EmbeddedBroker, free_port

#: Credentials made up per run: what the masking must hide (never a literal in the repo).
FAKE_SECRET = secrets.token_hex(8)

CACT = str(Path(__file__).resolve().parents[3] / ".venv" / "bin" / "cact")
QUICK = 30  # seconds; each case takes one or two


def env_for(tmp_path: Path, **variables: str) -> dict[str, str]:
    """Nothing of the caller's configuration: only a store, a spool and worker files in tmp_path, and ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CACT_", "KAFKA_"))}
    env.update(CACT_DATABASE_URL=f"sqlite:///{tmp_path / 'results.db'}", CACT_DATA_DIR=str(tmp_path / "worker"),
               CACT_LAB_SPOOL_PATH=str(tmp_path / "spool.db"), CACT_BROKER_PORT=str(free_port()),
               CACT_WORKER_WEB_PORT=str(free_port()), COLUMNS="80")
    env.update(variables)
    return env


def cact(tmp_path: Path, args: list[str], **variables: str) -> tuple[int, list[str]]:
    proc = subprocess.run([CACT, *args], env=env_for(tmp_path, **variables), cwd=tmp_path, capture_output=True,
                          text=True, timeout=QUICK)
    return proc.returncode, [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]


BLUEPRINT = ["--activity", "ACT-1", "--blueprint", "corrected.json"]


@pytest.mark.parametrize(("args", "variables", "names", "code"), [
    (["siasn", "status"], {"CACT_NOSHOW_THRESHOLD": "15"}, "CACT_NOSHOW_THRESHOLD=15", 2),
    (["worker"], {"CACT_NOSHOW_THRESHOLD": "15"}, "CACT_NOSHOW_THRESHOLD=15", 2),
    (["worker"], {"CACT_WORKER_WEB_PORT": "notaport"}, "CACT_WORKER_WEB_PORT=notaport", 2),
    (["siasn", "status"], {"CACT_DATABASE_URL": "nonsense://x"}, "CACT_DATABASE_URL=nonsense://x", 2),
    (["worker"], {"CACT_DATABASE_URL": "nonsense://x"}, "CACT_DATABASE_URL=nonsense://x", 2),
    (["sink"], {"CACT_DATABASE_URL": "nonsense://x"}, "CACT_DATABASE_URL=nonsense://x", 2),
    (["siasn", "status"], {"CACT_DATABASE_URL": f"postgresql+psycopg://postgres:{FAKE_SECRET}@127.0.0.1:1/x"},
     "postgresql+psycopg://postgres:***@127.0.0.1:1/x (CACT_DATABASE_URL)", 69),
    (["attendance", "no-shows", "--agency", "AG-1"],
     {"CACT_DATABASE_URL": f"postgresql+psycopg://postgres:{FAKE_SECRET}@127.0.0.1:1/x"}, "(CACT_DATABASE_URL)", 69),
    (["worker"], {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, "127.0.0.1:1 (KAFKA_BOOTSTRAP_SERVERS)", 69),
    (["rescore", *BLUEPRINT], {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, "127.0.0.1:1 (KAFKA_BOOTSTRAP_SERVERS)", 69),
    (["sink"], {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, "127.0.0.1:1 (KAFKA_BOOTSTRAP_SERVERS)", 69),
    (["simulate"], {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, "127.0.0.1:1 (KAFKA_BOOTSTRAP_SERVERS)", 69),
    (["worker"], {"CACT_BROKER_PORT": "1"}, "127.0.0.1:1 (CACT_BROKER_HOST:CACT_BROKER_PORT, the embedded broker)", 69),
])
def test_bad_configuration_is_one_line_naming_the_variable(tmp_path: Path, args: list[str], variables: dict[str, str],
                                                           names: str, code: int) -> None:
    started = time.monotonic()
    returncode, lines = cact(tmp_path, args, **variables)
    assert len(lines) == 1, "\n".join(lines)
    assert names in lines[0] and f"{FAKE_SECRET}" not in lines[0]
    assert returncode == code, lines
    assert time.monotonic() - started < 15


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port this test listens on, as another program would."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(("args", "variable"), [
    (["worker"], "CACT_WORKER_WEB_PORT"),
    (["broker"], "CACT_BROKER_PORT"),
    (["sink"], "CACT_SINK_METRICS_PORT"),
])
def test_a_port_in_use_is_one_line_naming_host_port_and_the_variable(tmp_path: Path, held_port: int, args: list[str],
                                                                      variable: str) -> None:
    returncode, lines = cact(tmp_path, args, **{variable: str(held_port)})
    assert len(lines) == 1, "\n".join(lines)
    assert f"127.0.0.1:{held_port}" in lines[0] and variable in lines[0] and "in use" in lines[0]
    assert returncode == 2


def test_the_siasn_emulator_names_its_option(tmp_path: Path, held_port: int) -> None:
    returncode, lines = cact(tmp_path, ["siasn-emulator", "--port", str(held_port)])
    assert returncode == 2 and len(lines) == 1 and f"127.0.0.1:{held_port}" in lines[0] and "--port" in lines[0]


@pytest.mark.broker
def test_a_starting_worker_says_where_its_pages_kafka_and_store_are(tmp_path: Path) -> None:
    with EmbeddedBroker("127.0.0.1", free_port(), log_path=tmp_path / "broker.log") as broker:
        web = free_port()
        env = env_for(tmp_path, KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, CACT_WORKER_WEB_PORT=str(web),
                      CACT_DATABASE_URL=f"postgresql+psycopg://postgres:{FAKE_SECRET}@127.0.0.1:1/x")
        proc = subprocess.Popen([CACT, "worker"], env=env, cwd=tmp_path, stderr=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, text=True, start_new_session=True)
        try:
            assert proc.stderr is not None
            said = [proc.stderr.readline() for _ in range(3)]
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    base = f"http://127.0.0.1:{web}"
    assert said[0].strip() == (f"cact worker: operator page {base}/operator, attendance {base}/attendance.json "
                               "(both need CACT_OPERATOR_TOKEN or _FILE, unset: they answer 401), "
                               f"metrics {base}/metrics")
    assert said[1].strip() == f"Kafka: {broker.bootstrap} (KAFKA_BOOTSTRAP_SERVERS)"
    assert said[2].strip().startswith("results store: postgresql+psycopg://postgres:***@127.0.0.1:1/x "
                                      "(CACT_DATABASE_URL)")
