"""The pipeline's processes run locally: a worker child process, the consumer groups to wait for, the outbox
drained. What the demo, the integration tests and the bench share, so none of them imports the demo itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from schemas import topics
from schemas.settings import Settings, settings_env
from sinks.runner import sink_group
from sinks.siasn.emulator import EmulatorThread
from sinks.siasn.push import outbox_status
from sinks.store import ResultsStore
from streams.broker import stop_process_group


class WorkerProcess:
    """A ``cact worker`` child process in its own process group, so stopping it stops all of it."""

    def __init__(self, settings: Settings, log_path: Path, extra_env: dict[str, str] | None = None,
                 args: Sequence[str] = ()) -> None:
        env = {**os.environ, **settings_env(settings), **(extra_env or {})}
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "cact.cli", "worker", *args], env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check(self, _lag: int = 0) -> None:
        """Progress callback for wait_until_consumed: stop waiting at once if the worker died."""
        if not self.alive():
            raise RuntimeError(f"the worker exited with {self.proc.returncode}; see {self._log.name}")

    def stop(self, timeout: float = 20) -> None:
        stop_process_group(self.proc, timeout)
        self._log.close()

    def kill(self) -> None:
        """kill -9: what a crashed machine does; used by the crash tests."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def consumer_groups(settings: Settings) -> dict[str, list[str]]:
    return {settings.app_id: [t.name for t in topics.INPUT_TOPICS],
            sink_group(settings): [t.name for t in topics.OUTPUT_TOPICS]}


def siasn_env(emulator: EmulatorThread) -> dict[str, str]:
    """The worker's SI ASN settings for the emulator: its URLs and demo credentials, and no 10/s pacing."""
    return {**emulator.config.client_env(emulator.url), "CACT_SIASN_RATE_PER_S": "0"}


def wait_until_pushed(store: ResultsStore, *, timeout: float, progress: Callable[[int], None] | None = None) -> None:
    """Until the outbox has nothing pending (delivered or rejected); raises TimeoutError with the backlog."""
    deadline = time.monotonic() + timeout
    while (pending := outbox_status(store)["pending"]) > 0:
        if progress is not None:
            progress(pending)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{pending} pushes to SI ASN still pending after {timeout:.0f} s")
        time.sleep(0.2)
