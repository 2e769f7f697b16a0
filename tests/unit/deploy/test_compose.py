"""deploy/compose/compose.yaml without Docker: valid against the Compose Specification's JSON Schema (vendored in
deploy/compose/schema/), and the rules a schema cannot express, each of which once broke or would break a real
`docker compose up`: one image for every pipeline service, host ports on 127.0.0.1 only, every mounted file in the
repository, healthchecks and start-up order, the secrets' way from init-secrets.sh to the process that reads
them, the scrape targets and the topics matching what runs. promtool's check of prometheus.yml is in
tests/integration/deploy/test_compose_prometheus.py.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from schemas.settings import Settings
from schemas.topics import ALL_TOPICS
from sinks.siasn.emulator import EmulatorConfig

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
SCHEMA = COMPOSE_DIR / "schema" / "compose-spec.json"
SCHEMA_SHA256 = "1f91e091f16b2dd50ab8860e02bb391d22df553d91c145eacedb1b6eff9c3f0e"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
PIPELINE = {"worker-1", "worker-2", "sink", "pusher", "siasn-emulator", "secrets-init"}
ONE_SHOTS = {"kafka-init", "secrets-init"}


@cache
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return doc


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def environment(service: str) -> dict[str, str]:
    env = services()[service].get("environment") or {}
    assert isinstance(env, dict), f"{service}: environment as a mapping"
    return {k: str(v) for k, v in env.items()}


def command(service: str) -> list[str]:
    spec = services()[service].get("command") or []
    return shlex.split(spec) if isinstance(spec, str) else [str(c) for c in spec]


def dockerfile_env() -> dict[str, str]:
    envs: dict[str, str] = DockerfileParser(path=str(DOCKERFILE)).envs
    return envs


# ---- the schema ----------------------------------------------------------------------------------

def test_the_vendored_schema_is_the_published_one_unchanged() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    readme = (SCHEMA.parent / "README.md").read_text(encoding="utf-8")
    assert SCHEMA_SHA256 in readme and "Apache License 2.0" in readme
    assert (SCHEMA.parent / "LICENSE").read_text(encoding="utf-8").lstrip().startswith("Apache License")


def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_the_compose_file_is_valid_compose() -> None:
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(compose())]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("break_it", [
    lambda d: d["services"]["worker-1"].update(port=["6066:6066"]),  # a typo'd key
    lambda d: d["services"]["postgres"]["depends_on"].update(kafka={"condition": "healthy"}),
    lambda d: d["services"]["sink"].update(restart=True),
])
def test_the_schema_check_can_fail(break_it: Any) -> None:
    doc = copy.deepcopy(compose())
    doc["services"]["postgres"].setdefault("depends_on", {})
    break_it(doc)
    assert list(validator().iter_errors(doc))


def test_nothing_is_interpolated_from_the_callers_environment() -> None:
    """Compose replaces ``$NAME`` from the shell that runs it: a shell variable meant for a container must be
    written ``$$NAME``, and nothing of the deployment may depend on what the operator's shell happens to hold."""
    text = COMPOSE.read_text(encoding="utf-8")
    assert not re.findall(r"(?<!\$)\$(?!\$)", text.replace("$$", "")), "a single $ in compose.yaml"


# ---- the services --------------------------------------------------------------------------------

def test_the_services_and_the_emulators_profile() -> None:
    assert set(services()) == PIPELINE | {"kafka", "kafka-init", "postgres", "prometheus", "grafana"}
    profiled = {name: spec["profiles"] for name, spec in services().items() if spec.get("profiles")}
    assert profiled == {"pusher": ["siasn-emulator"], "siasn-emulator": ["siasn-emulator"]}
    assert command("worker-1") == command("worker-2") == ["worker"]
    assert command("sink") == ["sink"] and command("pusher") == ["siasn", "push"]
    assert command("siasn-emulator")[0] == "siasn-emulator"


def test_every_pipeline_service_runs_the_one_image_built_from_this_checkout() -> None:
    built = {name: (spec.get("image"), json.dumps(spec.get("build"), sort_keys=True))
             for name, spec in services().items() if "build" in spec}
    assert set(built) == PIPELINE
    assert len(set(built.values())) == 1, built
    build = services()["worker-1"]["build"]
    assert (COMPOSE_DIR / build["context"]).resolve() == ROOT
    assert (ROOT / build["dockerfile"]).resolve() == DOCKERFILE
    others = {name: spec["image"] for name, spec in services().items() if name not in PIPELINE}
    assert all(re.search(r":v?\d[\w.-]*$", image) for image in others.values()), f"pin third-party images: {others}"


def published(spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(host address, host port, container port) of every published port, either syntax."""
    out = []
    for port in spec.get("ports", []):
        if isinstance(port, dict):
            out.append((str(port.get("host_ip", "")), str(port.get("published", "")), str(port["target"])))
        else:
            parts = ["", "", *str(port).rsplit(":", 2)][-3:]  # "[ip:]host:container" or "container"
            out.append((parts[0], parts[1], parts[2]))
    return out


def test_host_ports_are_published_on_loopback_only_and_once() -> None:
    ports = [(name, p) for name, spec in services().items() for p in published(spec)]
    assert ports, "nothing published: the operator page would be unreachable"
    wide = [(name, p) for name, p in ports if p[0] != "127.0.0.1"]
    assert not wide, f"bound beyond 127.0.0.1: {wide}"
    hosts = [p[1] for _, p in ports]
    assert len(hosts) == len(set(hosts)) and all(h.isdigit() for h in hosts)
    assert {name for name, _ in ports} == {"kafka", "worker-1", "worker-2", "prometheus", "grafana"}
    web = str(Settings.model_fields["worker_web_port"].default)
    assert {p[2] for name, p in ports if name.startswith("worker-")} == {web}


def binds(spec: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of every volume entry, short or long syntax."""
    out = []
    for volume in spec.get("volumes", []):
        if isinstance(volume, dict):
            out.append((str(volume.get("source", "")), str(volume["target"])))
        else:
            source, target = str(volume).split(":")[:2]
            out.append((source, target))
    return out


def test_every_mounted_file_is_in_the_repository_and_every_volume_is_declared() -> None:
    declared = set(compose().get("volumes") or {})
    used: set[str] = set()
    for name, spec in services().items():
        for source, _target in binds(spec):
            if source.startswith((".", "/")):
                assert (COMPOSE_DIR / source).exists(), f"{name} mounts {source}, which is not in the repository"
                assert not (COMPOSE_DIR / source).resolve().is_relative_to(COMPOSE_DIR / "secrets"), \
                    f"{name} mounts a secret as a volume: use secrets:"
            else:
                assert source in declared, f"{name} uses volume {source}, not declared"
                used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"
    grafana = dict((t, s) for s, t in binds(services()["grafana"]))
    assert grafana["/etc/grafana/provisioning"] == "../grafana/provisioning"
    assert grafana["/var/lib/grafana/dashboards"] == "../grafana/dashboards"


def test_grafana_reads_this_prometheus_and_these_dashboards() -> None:
    provisioning = COMPOSE_DIR / "../grafana/provisioning"
    sources = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in (provisioning / "datasources").glob("*.y*ml")]
    urls = {d["url"] for doc in sources for d in doc.get("datasources", [])}
    assert "http://prometheus:9090" in urls
    providers = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in (provisioning / "dashboards").glob("*.y*ml")]
    assert "/var/lib/grafana/dashboards" in {p["options"]["path"] for doc in providers for p in doc["providers"]}
    assert list((COMPOSE_DIR / "../grafana/dashboards").glob("*.json"))


def image_healthcheck() -> str:
    (check,) = [i["value"] for i in DockerfileParser(path=str(DOCKERFILE)).structure
                if i["instruction"] == "HEALTHCHECK"]
    return check


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, spec in services().items():
        if name in ONE_SHOTS:
            assert spec.get("restart") == "no", f"{name} runs once: it must not be restarted"
            continue
        assert spec.get("restart") == "unless-stopped", name
        check = spec.get("healthcheck")
        if check is None:  # the image's own: `cact worker`'s /healthz on CACT_WORKER_WEB_PORT
            assert command(name) == ["worker"], f"{name} has no healthcheck"
            assert "/healthz" in image_healthcheck()
            assert "CACT_WORKER_WEB_PORT" not in environment(name)  # the image's check reads it, default 6066
            continue
        assert check["test"][0] in ("CMD", "CMD-SHELL") and not check.get("disable"), name
        assert {"interval", "timeout", "retries"} <= set(check), name


def test_start_up_waits_for_what_each_service_needs() -> None:
    for name, spec in services().items():
        depends = spec.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on with conditions"
        for target, rule in depends.items():
            condition = rule["condition"]
            if target in ONE_SHOTS:
                assert condition == "service_completed_successfully", (name, target)
            else:
                assert condition == "service_healthy", (name, target)
                assert services()[target].get("healthcheck") or command(target) == ["worker"], (name, target)
            if not spec.get("profiles"):  # compose refuses a dependency on a service whose profile is off
                assert not services()[target].get("profiles"), (name, target)
    for name in ("worker-1", "worker-2", "sink", "pusher"):
        needs = set(services()[name]["depends_on"])
        assert {"postgres", "secrets-init"} <= needs, name
        if name != "pusher":
            assert "kafka-init" in needs, name
    assert "siasn-emulator" in services()["pusher"]["depends_on"]
    assert "kafka" in services()["kafka-init"]["depends_on"]


# ---- settings and secrets ------------------------------------------------------------------------

def test_every_cact_variable_is_a_setting_and_no_secret_is_a_value() -> None:
    known = {f"CACT_{name.upper()}" for name in Settings.model_fields}
    for name in PIPELINE:
        env = environment(name)
        assert set(k for k in env if k.startswith("CACT_")) <= known, (name, set(env) - known)
        assert not [k for k in env if not k.startswith("CACT_")], name
    for name in services():
        for key, value in environment(name).items():
            if re.search(r"(PASSWORD|SECRET|TOKEN|DATABASE_URL)(_{1,2}FILE)?$", key):
                assert key.endswith("_FILE"), f"{name}: {key} holds a secret as a value; use a file"
            assert "://" not in value or "@" not in value, f"{name}: {key} holds credentials"


def secret_names() -> set[str]:
    return {m.group(1) for m in re.finditer(r"^write (\S+) ", (COMPOSE_DIR / "init-secrets.sh").read_text(), re.M)}


def test_every_secret_comes_from_init_secrets_and_stays_out_of_git() -> None:
    declared = compose()["secrets"]
    assert {Path(s["file"]).parent for s in declared.values()} == {Path("secrets")}
    assert {Path(s["file"]).name for s in declared.values()} == secret_names() == set(declared)
    ignored = (COMPOSE_DIR / ".gitignore").read_text(encoding="utf-8").split()
    assert "secrets/*" in ignored and "!secrets/README.md" in ignored
    assert (COMPOSE_DIR / "secrets" / "README.md").exists()
    for name in secret_names():  # documented for the operator
        assert f"`{name}`" in (COMPOSE_DIR / "secrets" / "README.md").read_text(encoding="utf-8"), name


def test_each_secret_file_reaches_its_reader_as_a_file_it_owns() -> None:
    """secrets-init copies /run/secrets/<name> into the reader's volume: every …_FILE a process reads must be
    one it copies, into a volume that process mounts."""
    init = services()["secrets-init"]
    script = command("secrets-init")[-1]
    assert init["user"] == "0:0" and init["network_mode"] == "none"
    loop = re.search(r'for name in ([^;]+); do\s+install -o 10001 -g 10001 -m 0400 "/run/secrets/\$\$name" '
                     r'"/cact-secrets/\$\$name"', script)
    assert loop is not None, script
    copied = {f"/run/cact/{name}" for name in loop.group(1).split()}
    assert "install -o 10001 -g 10001 -m 0400" in script and "install -o 472 -g 0 -m 0400" in script
    assert set(init["secrets"]) == set(compose()["secrets"]) - {"postgres-password"}
    for name in PIPELINE - {"secrets-init", "siasn-emulator"}:
        files = {k: v for k, v in environment(name).items() if k.endswith("_FILE")}
        assert files and set(files.values()) <= copied, (name, set(files.values()) - copied)
        assert ("cact-secrets", "/run/cact") in binds(services()[name]), name
        assert all(v.endswith(":ro") for v in services()[name]["volumes"] if str(v).startswith("cact-secrets:"))
    assert environment("grafana")["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/grafana/admin-password"
    assert ("grafana-secrets", "/run/grafana") in binds(services()["grafana"])
    assert environment("postgres")["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres-password"
    assert services()["postgres"]["secrets"] == ["postgres-password"]
    assert not [n for n in PIPELINE - {"secrets-init"} if services()[n].get("secrets")]  # host mode, unreadable


def test_the_workers_share_the_partitions_and_the_corrected_blueprints() -> None:
    worker = environment("worker-1")
    assert worker == environment("worker-2")
    assert worker["CACT_SINK_IN_WORKER"] == "false" and worker["CACT_WORKER_WEB_HOST"] == "0.0.0.0"
    assert worker["CACT_OPERATOR_TOKEN_FILE"] == "/run/cact/operator-token"
    assert int(worker["CACT_TABLE_STANDBY_REPLICAS"]) == 1  # two workers: one warm copy each
    corrections = dockerfile_env()["CACT_BLUEPRINT_CORRECTIONS_DIR"]
    data = [dict((t, s) for s, t in binds(services()[n])) for n in ("worker-1", "worker-2")]
    assert data[0]["/var/lib/cact"] != data[1]["/var/lib/cact"]  # each its own table state
    assert data[0][corrections] == data[1][corrections]  # what `cact rescore` installs, every worker reads


def test_the_topics_are_the_contracts_with_the_workers_partition_count() -> None:
    script = command("kafka-init")[-1]
    listed = re.search(r"for topic in ([^;]+);", script)
    assert listed is not None
    assert listed.group(1).split() == [t.name for t in ALL_TOPICS]
    partitions = re.search(r"--partitions (\d+)", script)
    assert partitions is not None
    for name in ("worker-1", "worker-2", "sink"):
        assert environment(name)["CACT_TOPIC_PARTITIONS"] == partitions.group(1)
        assert environment(name)["CACT_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    kafka = environment("kafka")
    assert "PLAINTEXT://kafka:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert set(kafka["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}  # KRaft, one node
    assert kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{kafka['KAFKA_NODE_ID']}@kafka:9093"
    host = [p for p in published(services()["kafka"])]
    assert host == [("127.0.0.1", "19092", "19092")] and "HOST://127.0.0.1:19092" in kafka["KAFKA_ADVERTISED_LISTENERS"]


def test_the_pusher_talks_to_the_emulator_with_the_emulators_own_credentials() -> None:
    emulator = command("siasn-emulator")
    port = emulator[emulator.index("--port") + 1]
    assert emulator[emulator.index("--host") + 1] == "0.0.0.0"
    urls = EmulatorConfig.client_urls(f"http://siasn-emulator:{port}")
    env = environment("pusher")
    assert {k: env[f"CACT_SIASN_{k.upper()}"] for k in urls} == urls
    demo = EmulatorConfig()
    script = (COMPOSE_DIR / "init-secrets.sh").read_text(encoding="utf-8")
    for field in ("consumer_key", "consumer_secret", "sso_client_id", "sso_username", "sso_password"):
        assert f"write siasn-{field.replace('_', '-')} {getattr(demo, field)}\n" in script, field
        assert env[f"CACT_SIASN_{field.upper()}_FILE"] == f"/run/cact/siasn-{field.replace('_', '-')}"


# ---- Prometheus ----------------------------------------------------------------------------------

def listening_port(service: str) -> str:
    """Where a pipeline service serves /metrics, read from its settings as the process reads them."""
    env = environment(service)
    if command(service) == ["worker"]:
        return env.get("CACT_WORKER_WEB_PORT", str(Settings.model_fields["worker_web_port"].default))
    key = {"sink": "CACT_SINK_METRICS_PORT", "pusher": "CACT_PUSHER_METRICS_PORT"}[service]
    host = key.replace("_PORT", "_HOST")
    assert env[host] == "0.0.0.0", f"{service}: {host} must let Prometheus in"
    return env[key]


def test_prometheus_scrapes_every_process_where_it_listens() -> None:
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {job["job_name"]: [t for s in job["static_configs"] for t in s["targets"]]
               for job in config["scrape_configs"]}
    assert set(targets) == {"cact-worker", "cact-sink", "cact-pusher"}  # the dashboards' job names
    scraped = {t for ts in targets.values() for t in ts}
    expected = {f"{name}:{listening_port(name)}" for name in ("worker-1", "worker-2", "sink", "pusher")}
    assert scraped == expected
    for target in scraped:
        service, port = target.split(":")
        check = services()[service].get("healthcheck")
        if check:  # the container's own check probes the same port
            assert f"127.0.0.1:{port}/healthz" in " ".join(check["test"]), service
    prometheus = services()["prometheus"]
    mounts = dict((t, s) for s, t in binds(prometheus))
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert mounts["/etc/prometheus/prometheus.yml"] == "./prometheus.yml"
    assert config["rule_files"] == ["alerts.yml"]  # resolved beside the config file, where the rules are mounted
    assert mounts["/etc/prometheus/alerts.yml"] == "../prometheus/alerts.yml"
