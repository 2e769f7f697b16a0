"""No environment variable in any deployment file that the pipeline does not read.

Settings ignores variables it does not know (``extra="ignore"``), so a misspelt ``CACT_TABLE_STANDBY_REPLICA``
in a manifest would deploy without a word and leave the workers without standby copies. Every variable the
deployment files under deploy/ hand to the pipeline's image is therefore checked against ``Settings``: its
``CACT_<FIELD>`` name or one of a field's ``validation_alias`` choices (the Kafka settings' ``KAFKA_*``). The
files are found by what they are, not by a list, so a compose file, a Dockerfile or a manifest added later is
covered as soon as it exists:

- Kubernetes manifests (any YAML document with ``apiVersion`` and ``kind``): the ``env`` of every container of
  every workload;
- compose files (YAML with ``services``): each service's ``environment`` (mapping or list) and ``env_file``;
- Dockerfiles (``Dockerfile``, ``*.Dockerfile``, ``Containerfile``): every ``ENV`` of every stage;
- ``.env`` and ``*.env`` files.

Third-party images get their own variables, keyed by image: the Kafka broker, PostgreSQL and Grafana
containers of the compose file are configured through their images' variables, which ``Settings`` has no
business knowing. Our image also sets a few variables of the Python runtime it is built on.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser
from dockerfile_parse.util import extract_key_values
from pydantic import AliasChoices

from schemas.settings import Settings
from support import deploy_schemas as ds

DEPLOY = ds.DEPLOY
OUR_IMAGE = "ghcr.io/bkn/cact-pipeline"
#: Files that must be covered once they exist (other helpers of issue 17 write them).
EXPECTED = (DEPLOY / "compose" / "compose.yaml", DEPLOY / "docker" / "Dockerfile")

#: Variables of third-party images, by image (fnmatch on the repository, tag and digest removed): each image reads
#: its own, e.g. apache/kafka turns KAFKA_* into server.properties. These images never run our code.
THIRD_PARTY: dict[str, tuple[str, ...]] = {
    "apache/kafka": ("KAFKA_*", "CLUSTER_ID"),
    "apache/kafka-native": ("KAFKA_*", "CLUSTER_ID"),
    "bitnami/kafka": ("KAFKA_*", "ALLOW_PLAINTEXT_LISTENER", "BITNAMI_DEBUG"),
    "confluentinc/cp-kafka": ("KAFKA_*", "CLUSTER_ID"),
    "postgres": ("POSTGRES_*", "PGDATA", "PGPORT"),
    "grafana/grafana": ("GF_*",),
    "grafana/grafana-oss": ("GF_*",),
    "prom/prometheus": (),
}
#: Variables of the runtime our image is built on (Python, pip, matplotlib, the shell), not settings.
RUNTIME = frozenset({"PATH", "HOME", "LANG", "LC_ALL", "TZ", "VIRTUAL_ENV", "PYTHONUNBUFFERED",
                     "PYTHONDONTWRITEBYTECODE", "PYTHONFAULTHANDLER", "PIP_NO_CACHE_DIR",
                     "PIP_DISABLE_PIP_VERSION_CHECK", "MPLCONFIGDIR"})


def settings_names() -> set[str]:
    """Every environment variable Settings reads: CACT_<FIELD>, or the field's alias choices when it has them
    (then the prefixed name counts only if it is one of them)."""
    names: set[str] = set()
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {c for c in alias.choices if isinstance(c, str)}
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"CACT_{field.upper()}")
    return names


KNOWN = settings_names()


@dataclass(frozen=True)
class EnvVar:
    name: str
    source: Path
    where: str  # service, container or stage
    image: str | None  # None: our image (a Dockerfile of this repo, a compose service built from it)


def repository(image: str) -> str:
    """``docker.io/library/postgres:16@sha256:…`` → ``postgres``; ``ghcr.io/bkn/cact-pipeline:1`` → its repo."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    for prefix in ("docker.io/library/", "docker.io/", "library/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name


def is_ours(image: str | None) -> bool:
    return image is None or repository(image) == OUR_IMAGE or repository(image).endswith("/cact-pipeline") \
        or repository(image) == "cact-pipeline"


def _env_file(path: Path, where: str, image: str | None) -> Iterator[EnvVar]:
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name = line.removeprefix("export ").split("=", 1)[0].strip()
            yield EnvVar(name, path, where, image)


def _compose(path: Path, doc: dict[str, Any]) -> Iterator[EnvVar]:
    for service, spec in (doc.get("services") or {}).items():
        spec = spec or {}
        image = None if "build" in spec else spec.get("image")
        environment = spec.get("environment") or {}
        names = list(environment) if isinstance(environment, dict) else [str(e).split("=", 1)[0] for e in environment]
        for name in names:
            yield EnvVar(name, path, service, image)
        env_files = spec.get("env_file") or []
        for entry in [env_files] if isinstance(env_files, (str, dict)) else env_files:
            file = entry["path"] if isinstance(entry, dict) else entry
            target = (path.parent / file).resolve()
            assert target.is_file() or (isinstance(entry, dict) and entry.get("required") is False), \
                f"{path}: service {service} names env_file {file}, which does not exist"
            if target.is_file():
                yield from _env_file(target, service, image)


def _kubernetes(path: Path, doc: dict[str, Any]) -> Iterator[EnvVar]:
    spec = ds.pod_spec(doc)
    if spec is None:
        return
    for container in ds.containers(spec):
        for entry in container.get("env", []):
            yield EnvVar(entry["name"], path, f"{doc['metadata']['name']}/{container['name']}", container["image"])


def _dockerfile(path: Path) -> Iterator[EnvVar]:
    stage = "(first stage)"
    for instruction in DockerfileParser(path=str(path), env_replace=False).structure:
        if instruction["instruction"] == "FROM":
            stage = instruction["value"]
        elif instruction["instruction"] == "ENV":
            for name, _ in extract_key_values(False, {}, {}, instruction["value"]):
                yield EnvVar(name, path, stage, None)


def is_dockerfile(path: Path) -> bool:
    return path.name in ("Dockerfile", "Containerfile") or path.name.endswith((".Dockerfile", ".dockerfile"))


def is_env_file(path: Path) -> bool:
    return path.name == ".env" or path.suffix == ".env"


def collect(root: Path = DEPLOY) -> tuple[list[EnvVar], set[Path]]:
    """Every variable set in the deployment files under ``root``, and the files that set or could set one.

    An env file a compose service names counts as that service's (its image decides what it may hold); any
    other env file is taken to be for our image."""
    found: list[EnvVar] = []
    parsed: set[Path] = set()
    files = sorted(p for p in root.rglob("*") if p.is_file() and ds.SCHEMAS not in p.parents)
    for path in files:
        if path.suffix in (".yaml", ".yml"):
            for doc in ds.load_yaml_documents(path):
                if not isinstance(doc, dict):
                    continue
                if "apiVersion" in doc and "kind" in doc:
                    found += _kubernetes(path, doc)
                    parsed.add(path)
                elif "services" in doc:
                    found += _compose(path, doc)
                    parsed.add(path)
        elif is_dockerfile(path):
            found += _dockerfile(path)
            parsed.add(path)
    named = {v.source.resolve() for v in found}
    for path in files:
        if is_env_file(path) and path.resolve() not in named:
            found += _env_file(path, path.name, None)
            parsed.add(path)
    return found, parsed


def shown(path: Path) -> Path:
    return path.relative_to(ds.REPO) if path.is_relative_to(ds.REPO) else path


def allowed(var: EnvVar) -> bool:
    """Whether the image that gets ``var`` reads it: ours if Settings (or the Python runtime) does, a third-party
    image if its entry in THIRD_PARTY names it. An image that is neither is a failure of its own."""
    if is_ours(var.image):
        return var.name in KNOWN or var.name in RUNTIME
    assert var.image is not None
    patterns = next((p for image, p in THIRD_PARTY.items() if fnmatch.fnmatch(repository(var.image), image)), None)
    assert patterns is not None, f"{shown(var.source)}: {var.where} runs image {var.image}, which is not ours and " \
                                 f"has no entry in THIRD_PARTY: add its variables there"
    return any(fnmatch.fnmatchcase(var.name, p) for p in patterns)


def test_every_variable_in_the_deployment_files_is_one_the_pipeline_reads() -> None:
    found, _ = collect()
    unknown = sorted({f"{shown(v.source)} ({v.where}): {v.name}" for v in found if not allowed(v)})
    assert not unknown, "variables Settings does not read (schemas/settings.py; a typo is silently ignored):\n" + \
        "\n".join(unknown)


def test_the_deployment_files_are_covered() -> None:
    """The Kubernetes manifests are read, and the compose file and the Dockerfile once they exist."""
    found, parsed = collect()
    by_file = {v.source for v in found}
    for path in ds.yaml_files_under_k8s():
        docs = ds.load_yaml_documents(path)
        if any(ds.pod_spec(d) is not None for d in docs):
            assert path in by_file, f"{path}: a workload whose variables were not read"
    present = [p for p in EXPECTED if p.exists()]
    for path in present:
        assert path in parsed and path in by_file, f"{path} exists but no variable of it was read"
    assert len(by_file) >= 3 + len(present)  # worker, sink, pusher


def test_the_settings_names_are_what_settings_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The list the check compares with is Settings' own: every name of it, set in the environment, changes the
    field it names, and a near miss changes nothing."""
    assert {"CACT_TABLE_STANDBY_REPLICAS", "CACT_KAFKA_SASL_PASSWORD_FILE", "KAFKA_SASL_PASSWORD_FILE",
            "KAFKA_BOOTSTRAP_SERVERS", "CACT_KAFKA_BOOTSTRAP_SERVERS", "CACT_PUSHER_METRICS_PORT"} <= KNOWN
    assert "CACT_KAFKA_BOOTSTRAP_SERVERS" in KNOWN and "BOOTSTRAP_SERVERS" not in KNOWN
    monkeypatch.setenv("CACT_TABLE_STANDBY_REPLICAS", "2")
    monkeypatch.setenv("CACT_TABLE_STANDBY_REPLICA", "5")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "cact-pipeline")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.table_standby_replicas == 2 and settings.kafka_sasl_username == "cact-pipeline"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_misspelt_variable_is_caught_in_every_kind_of_file(tmp_path: Path) -> None:
    """The check must be able to fail: one wrong name in each kind of file, and the third-party rules."""
    _write(tmp_path / "docker" / "Dockerfile", "FROM python:3.11-slim AS base\nENV CACT_DATA_DIR=/d \\\n"
                                                "    CACT_DATADIR=/x\nENV PYTHONUNBUFFERED 1\n")
    _write(tmp_path / "compose" / "compose.yaml", """
services:
  worker:
    build: {context: ../.., dockerfile: deploy/docker/Dockerfile}
    environment:
      CACT_TABLE_STANDBY_REPLICAS: "1"
      CACT_TABLE_STANDBY_REPLICA: "1"
      KAFKA_BOOTSTRAP_SERVERS: kafka:9092
    env_file: worker.env
  kafka:
    image: apache/kafka:4.3.1
    environment: ["KAFKA_NODE_ID=1", "CACT_SURPRISE=1"]
  db:
    image: docker.io/library/postgres:16@sha256:0123
    environment: ["POSTGRES_PASSWORD_FILE=/run/secrets/pg"]
    env_file: [{path: db.env}, {path: missing.env, required: false}]
""")
    _write(tmp_path / "lab.env", "export CACT_LAB_ID=kanreg-01\nCACT_LABID=kanreg-01\n")
    _write(tmp_path / "compose" / "worker.env", "# comment\nCACT_APP_ID=cact-pipeline\nCACT_APPID=x\n")
    _write(tmp_path / "compose" / "db.env", "POSTGRES_DB=cact\n")
    _write(tmp_path / "k8s" / "worker.yaml", """
apiVersion: apps/v1
kind: Deployment
metadata: {name: w}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      containers:
        - name: worker
          image: ghcr.io/bkn/cact-pipeline:0.1.0
          env:
            - {name: CACT_SINK_IN_WORKER, value: "false"}
            - {name: CACT_SINK_IN_WORKERS, value: "false"}
            - {name: PYTHONUNBUFFERED, value: "1"}
        - name: broker
          image: apache/kafka:4.3.1
          env:
            - {name: KAFKA_PROCESS_ROLES, value: "broker,controller"}
            - {name: CACT_KAFKA_BOOTSTRAP_SERVERS, value: "x:9092"}
""")
    found, parsed = collect(tmp_path)
    assert {p.name for p in parsed} == {"Dockerfile", "compose.yaml", "worker.yaml", "lab.env"}
    assert {(v.where, v.name) for v in found if v.source.name == "db.env"} == {("db", "POSTGRES_DB")}
    refused = {(v.source.name, v.name) for v in found if not allowed(v)}
    assert refused == {("Dockerfile", "CACT_DATADIR"), ("compose.yaml", "CACT_TABLE_STANDBY_REPLICA"),
                       ("compose.yaml", "CACT_SURPRISE"), ("worker.env", "CACT_APPID"),
                       ("worker.yaml", "CACT_SINK_IN_WORKERS"), ("worker.yaml", "CACT_KAFKA_BOOTSTRAP_SERVERS"),
                       ("lab.env", "CACT_LABID")}
    _write(tmp_path / "compose" / "extra.yaml", "services:\n  x:\n    image: someone/else:1\n"
                                                "    environment: {FOO: bar}\n")
    found, _ = collect(tmp_path)
    with pytest.raises(AssertionError, match="THIRD_PARTY"):
        [allowed(v) for v in found]


@pytest.mark.parametrize("image,repo", [
    ("postgres:16", "postgres"), ("docker.io/library/postgres:16@sha256:ab", "postgres"),
    ("ghcr.io/bkn/cact-pipeline:0.1.0", OUR_IMAGE), ("localhost:5000/cact-pipeline", "localhost:5000/cact-pipeline"),
    ("grafana/grafana-oss:11.0.0", "grafana/grafana-oss"),
])
def test_image_repository(image: str, repo: str) -> None:
    assert repository(image) == repo
