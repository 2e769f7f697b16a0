"""``cact broker`` starts the embedded broker with the pipeline's topics and stops cleanly on a signal."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schemas import topics
from schemas.settings import Settings
from streams.broker import free_port
from streams.kafka import partition_counts


@pytest.mark.broker
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_broker_command_serves_topics_and_stops_on_signal(sig: signal.Signals) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    proc = subprocess.Popen([sys.executable, "-m", "cact.cli", "broker", "--port", str(port)], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        while "broker listening" not in proc.stderr.readline():
            assert time.monotonic() < deadline and proc.poll() is None
        counts = asyncio.run(partition_counts(Settings(kafka_bootstrap_servers=f"127.0.0.1:{port}"),
                                              [t.name for t in topics.ALL_TOPICS]))
        assert counts == {t.name: 4 for t in topics.ALL_TOPICS}
        proc.send_signal(sig)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    out = subprocess.run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"], capture_output=True)
    assert out.returncode != 0, "nothing listens on the port any more"


@pytest.mark.broker
def test_demo_stops_everything_it_started_on_ctrl_c(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "CACT_"))}
    proc = subprocess.Popen([sys.executable, "-m", "cact.cli", "demo", "--workdir", str(tmp_path / "d")],
                            env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp_path)
    assert proc.stderr is not None
    lines = []
    while not any("worker started" in line for line in lines):
        line = proc.stderr.readline()
        assert line or proc.poll() is None, "".join(lines)
        lines.append(line)
    port = int(re.search(r"on 127\.0\.0\.1:(\d+)", "".join(lines)).group(1))  # type: ignore[union-attr]
    worker_pid = int(re.search(r"pid (\d+)", lines[-1]).group(1))  # type: ignore[union-attr]
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130
    assert "interrupted" in proc.stderr.read()
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)
    out = subprocess.run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"], capture_output=True)
    assert out.returncode != 0, "the embedded broker was stopped"
