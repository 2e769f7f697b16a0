"""The Kubernetes deployment (deploy/k8s/) as the cluster would take it, and as the design says it must be.

Two kinds of checks, both offline. First, that the API server would accept every document unchanged: core kinds
against kubernetes-validate's strict schemas, Strimzi's and prometheus-operator's custom resources against their
vendored CRD schemas, closed where the API server would silently prune an unknown field
(tests/support/deploy_schemas.py). Second, the design's invariants, which no schema knows: the topics are the
trust boundary (only the pipeline's principal writes control, output and changelog topics; a lab only the lab
topic), every topic has the workers' partition count, credentials reach the pods only as read-only files, the
pods run unprivileged, the web port is reachable only from the operators' ingress and Prometheus, and the
PrometheusRule is alerts.yml. Each invariant is also shown to fail on a broken copy, so none passes vacuously.
"""

from __future__ import annotations

import ast
import copy
import fnmatch
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import TypeAdapter

from schemas import topics
from schemas.settings import Settings
from support import deploy_schemas as ds

Document = dict[str, Any]

MANIFESTS = ds.manifests()
NAMESPACE = "cact"
IMAGE = "ghcr.io/bkn/cact-pipeline"
#: Variables whose value is a credential: they may be set only through their *_FILE variant.
SECRET_VALUES = {"CACT_KAFKA_SASL_PASSWORD", "KAFKA_SASL_PASSWORD", "CACT_DATABASE_URL", "CACT_OPERATOR_TOKEN",
                 "CACT_SIASN_CONSUMER_KEY", "CACT_SIASN_CONSUMER_SECRET", "CACT_SIASN_SSO_CLIENT_ID",
                 "CACT_SIASN_SSO_USERNAME", "CACT_SIASN_SSO_PASSWORD"}
#: Their *_FILE variants (and the client key), which must name a file of a mounted Secret.
CREDENTIAL_FILES = {f"{v}_FILE" for v in SECRET_VALUES} | {"CACT_KAFKA_SSL_KEYFILE", "KAFKA_SSL_KEYFILE"}
CONTROL_AND_OUTPUTS = {topics.CONTROL.name, *(t.name for t in topics.OUTPUT_TOPICS)}


def docs_of(kind: str, manifests: list[ds.Manifest] = MANIFESTS) -> list[Document]:
    return [m.doc for m in manifests if m.doc.get("kind") == kind]


def one(kind: str, name: str, manifests: list[ds.Manifest] = MANIFESTS) -> Document:
    found = [d for d in docs_of(kind, manifests) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def env_of(container: Document) -> dict[str, str]:
    """A container's literal environment; a variable set any other way is refused by its own test."""
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def workloads(manifests: list[ds.Manifest] = MANIFESTS) -> Iterator[tuple[Document, Document]]:
    """(workload, pod spec) of every Deployment, StatefulSet, … the deployment runs."""
    for m in manifests:
        spec = ds.pod_spec(m.doc)
        if spec is not None:
            yield m.doc, spec


def worker() -> Document:
    return one("StatefulSet", "cact-worker")


def worker_container() -> Document:
    spec = worker()["spec"]["template"]["spec"]
    (container,) = [c for c in spec["containers"] if c["name"] == "worker"]
    return container


def worker_setting(name: str) -> Any:
    """The workers' value of a setting: their environment, parsed as Settings parses it, else Settings' default
    (not Settings() itself, which would read this machine's environment)."""
    info = Settings.model_fields[name.removeprefix("CACT_").lower()]
    value = env_of(worker_container()).get(name)
    if value is None:
        return info.default
    assert info.annotation is not None
    return TypeAdapter(info.annotation).validate_python(value)


def labels_match(selector: Document, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels, matchExpressions In/NotIn/Exists/DoesNotExist) selects ``labels``."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# ------------------------------------------------------------------------------------------------
# Files and schemas
# ------------------------------------------------------------------------------------------------

def test_every_resource_file_exists_and_every_manifest_is_a_resource() -> None:
    listed = ds.kustomization()["resources"]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    missing = [name for name in listed if not (ds.K8S / name).is_file()]
    assert not missing, f"kustomization.yaml lists files that do not exist: {missing}"
    unlisted = [str(p.relative_to(ds.K8S)) for p in ds.yaml_files_under_k8s()
                if str(p.relative_to(ds.K8S)) not in listed]
    assert not unlisted, f"YAML under deploy/k8s/ that kustomization.yaml does not list (kubectl apply -k skips it): " \
                         f"{unlisted}"


def test_every_document_is_in_the_namespace_and_named_once() -> None:
    assert ds.kustomization()["namespace"] == NAMESPACE
    seen: set[tuple[str, str]] = set()
    for m in MANIFESTS:
        meta = m.doc["metadata"]
        if m.doc["kind"] != "Namespace":
            assert meta.get("namespace") == NAMESPACE, f"{m.ref}: not in namespace {NAMESPACE}"
        key = (m.doc["kind"], meta["name"])
        assert key not in seen, f"{m.ref}: a second {key}"
        seen.add(key)
    assert ("Namespace", NAMESPACE) in seen


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda m: m.ref)
def test_every_document_validates_against_its_schema(manifest: ds.Manifest) -> None:
    ds.validate(manifest.doc)


def test_the_vendored_schemas_are_the_ones_recorded() -> None:
    """sources.json says where each schema came from; a hand edit of a schema file would no longer match it."""
    used = {(m.doc["apiVersion"], m.doc["kind"]) for m in MANIFESTS} & set(ds.crd_schemas())
    assert used == set(ds.crd_schemas()), f"vendored schemas no manifest uses: {set(ds.crd_schemas()) - used}"
    for crd in ds.crd_schemas().values():
        assert ds.file_sha256(crd.path) == crd.schema_sha256, f"{crd.file} differs from what sources.json records"
        assert crd.license == "Apache-2.0" and crd.source.startswith("https://github.com/") and len(crd.commit) == 40
        assert crd.load()["type"] == "object"
    readme = (ds.SCHEMAS / "README.md").read_text(encoding="utf-8")
    for crd in ds.crd_schemas().values():
        assert crd.file in readme and crd.version in readme, f"README.md does not name {crd.file} {crd.version}"


def _mutated(kind: str, name: str, change: Callable[[Document], None]) -> Document:
    doc = copy.deepcopy(one(kind, name))
    change(doc)
    return doc


def _set(path: str, value: Any) -> Callable[[Document], None]:
    """Set the field at ``path`` ("/"-separated: Kafka's config keys have dots) of a copy."""
    def change(doc: Document) -> None:
        *parents, last = path.split("/")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[last] = value
    return change


def _rename(path: str, new: str) -> Callable[[Document], None]:
    def change(doc: Document) -> None:
        *parents, last = path.split("/")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[new] = node.pop(last)
    return change


BROKEN = {
    # a misspelt core field: kubectl --validate=strict refuses it (a plain apply would drop the probe)
    "probe misspelt": ("StatefulSet", "cact-worker", _rename("spec/template/spec/containers/0/readinessProbe",
                                                             "readinesProbe")),
    "wrong type": ("StatefulSet", "cact-worker", _set("spec/replicas", "three")),
    "unknown metadata field of a custom resource": ("KafkaTopic", topics.LAB.name, _rename("metadata/labels",
                                                                                           "lables")),
    # the API server would prune it silently: the brokers would then take connections from anywhere
    "Strimzi field misspelt": ("Kafka", "cact", _rename("spec/kafka/listeners/0/networkPolicyPeers",
                                                        "networkPolicyPeer")),
    # v1beta2's singular field, removed in kafka.strimzi.io/v1
    "old ACL field": ("KafkaUser", "cact-lab", _set("spec/authorization/acls/0/operation", "Write")),
    "value outside an enum": ("KafkaUser", "cact-lab", _set("spec/authentication/type", "scram-sha-256")),
    "partitions below 1": ("KafkaTopic", topics.LAB.name, _set("spec/partitions", 0)),
    "rule without expr": ("PrometheusRule", "cact-capacity", lambda d: d["spec"]["groups"][0]["rules"][0].pop("expr")),
    "PodMonitor field misspelt": ("PodMonitor", "cact-worker", _rename("spec/podMetricsEndpoints",
                                                                       "podMetricsEndpoint")),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_copy_fails_validation(case: str) -> None:
    kind, name, change = BROKEN[case]
    doc = _mutated(kind, name, change)
    with pytest.raises(ds.ManifestError):
        ds.validate(doc)


def test_strict_closes_only_objects_that_the_api_server_would_prune() -> None:
    """Open maps (additionalProperties), preserved fields and a field merely *named* like a keyword stay as the
    CRD has them."""
    schema = {"type": "object", "properties": {
        "config": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "properties": {"type": "object", "nullable": True, "properties": {"a": {"type": "string"}}},
        "either": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                   "oneOf": [{"properties": {"a": {"type": "string"}}, "required": ["a"]}, {"required": ["b"]}]},
    }}
    closed = ds.strict(schema)
    valid = jsonschema.Draft7Validator(closed).is_valid
    assert valid({"config": {"anything": 1}, "labels": {"x": "y"}, "properties": None, "either": {"a": "1"}})
    assert valid({"either": {"b": "2"}})
    assert not valid({"other": 1})
    assert not valid({"properties": {"b": "x"}})
    assert not valid({"either": {"a": "1", "c": "3"}})


# ------------------------------------------------------------------------------------------------
# Topics
# ------------------------------------------------------------------------------------------------

def table_names() -> list[str]:
    """The tables the worker declares: every ``app.Table("<name>", …)`` in streams/app.py."""
    tree = ast.parse((ds.REPO / "streams" / "app.py").read_text(encoding="utf-8"))
    return [str(node.args[0].value) for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "Table"
            and node.args and isinstance(node.args[0], ast.Constant)]


def changelogs() -> set[str]:
    return {f"{worker_setting('CACT_APP_ID')}-{table}-changelog" for table in table_names()}


def kafka_topics(manifests: list[ds.Manifest] = MANIFESTS) -> dict[str, Document]:
    return {d["spec"].get("topicName", d["metadata"]["name"]): d for d in docs_of("KafkaTopic", manifests)}


def test_every_topic_of_the_pipeline_and_its_changelogs_is_a_kafka_topic() -> None:
    assert set(table_names()) == {"cact-sessions", "cact-participants"}
    expected = {t.name for t in topics.ALL_TOPICS} | changelogs()
    assert set(kafka_topics()) == expected


def check_topics(manifests: list[ds.Manifest]) -> None:
    partitions = worker_setting("CACT_TOPIC_PARTITIONS")
    cluster = one("Kafka", "cact", manifests)["metadata"]["name"]
    for name, doc in kafka_topics(manifests).items():
        spec, config = doc["spec"], doc["spec"].get("config", {})
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == cluster, f"{name}: not managed for cluster {cluster}"
        assert spec["partitions"] == partitions, \
            f"{name}: {spec['partitions']} partitions, the workers' CACT_TOPIC_PARTITIONS is {partitions}"
        assert spec["replicas"] == 3 and int(config["min.insync.replicas"]) == 2, f"{name}: replicas 3, min ISR 2"
        if name in changelogs():
            assert config["cleanup.policy"] == "compact", f"{name}: a changelog must be compacted"
            assert "retention.ms" not in config, f"{name}: a compacted changelog keeps every key's latest state"
        else:
            assert config["cleanup.policy"] == "delete", f"{name}: an event log, not compacted"
            assert int(config["retention.ms"]) >= 7 * 86_400_000, f"{name}: kept at least a week"
    dead = int(kafka_topics(manifests)[topics.DEADLETTER.name]["spec"]["config"]["retention.ms"])
    others = [int(d["spec"]["config"]["retention.ms"]) for n, d in kafka_topics(manifests).items()
              if n != topics.DEADLETTER.name and n not in changelogs()]
    assert dead >= 90 * 86_400_000 and dead > max(others), "dead letters are kept longest (90 days or more)"


def test_topics_are_co_partitioned_replicated_and_kept_as_their_purpose_needs() -> None:
    check_topics(MANIFESTS)


def _with(kind: str, name: str, change: Callable[[Document], None]) -> list[ds.Manifest]:
    """All manifests, with one document changed."""
    out = []
    for m in MANIFESTS:
        doc = m.doc
        if doc.get("kind") == kind and doc["metadata"]["name"] == name:
            doc = copy.deepcopy(doc)
            change(doc)
        out.append(ds.Manifest(m.path, m.index, doc))
    return out


@pytest.mark.parametrize("kind,name,change", [
    ("KafkaTopic", topics.LAB.name, _set("spec/partitions", 8)),
    ("KafkaTopic", "cact-pipeline-cact-sessions-changelog", _set("spec/config/cleanup.policy", "delete")),
    ("KafkaTopic", topics.DEADLETTER.name, _set("spec/config/retention.ms", 604800000)),
], ids=["partitions differ", "changelog not compacted", "dead letters kept a week"])
def test_the_topic_checks_catch_a_broken_topic(kind: str, name: str, change: Callable[[Document], None]) -> None:
    with pytest.raises(AssertionError):
        check_topics(_with(kind, name, change))


def test_partitions_split_evenly_over_the_workers() -> None:
    partitions, replicas = worker_setting("CACT_TOPIC_PARTITIONS"), worker()["spec"]["replicas"]
    assert replicas >= 3 and partitions % replicas == 0, f"{partitions} partitions over {replicas} workers"


# ------------------------------------------------------------------------------------------------
# Principals and ACLs
# ------------------------------------------------------------------------------------------------

IMPLIES_DESCRIBE = {"Read", "Write", "Delete", "Alter"}


def allowed(user: Document, operation: str, resource_type: str, name: str) -> bool:
    """Whether Kafka's simple authorizer lets ``user`` do ``operation`` on a resource, from its KafkaUser ACLs:
    literal and prefixed names and ``*``, ``All``, deny before allow; an allowed Read/Write/Delete/Alter implies
    Describe (a denied one does not deny it)."""
    def matches(acl: Document, implied: bool) -> bool:
        res = acl["resource"]
        if res["type"] != resource_type:
            return False
        pattern, wanted = res.get("name", "*"), res.get("patternType", "literal")
        if wanted == "prefix":
            if not name.startswith(pattern):
                return False
        elif pattern not in ("*", name):
            return False
        ops = set(acl["operations"])
        return bool("All" in ops or operation in ops
                    or (implied and operation == "Describe" and ops & IMPLIES_DESCRIBE))

    acls = user["spec"].get("authorization", {}).get("acls", [])
    if any(matches(a, implied=False) for a in acls if a.get("type", "allow") == "deny"):
        return False
    return any(matches(a, implied=True) for a in acls if a.get("type", "allow") == "allow")


WRITES = ("Write", "Create", "Delete", "Alter", "AlterConfigs", "All")


def check_acls(manifests: list[ds.Manifest]) -> None:
    users = {d["metadata"]["name"]: d for d in docs_of("KafkaUser", manifests)}
    cluster = one("Kafka", "cact", manifests)
    assert cluster["spec"]["kafka"]["authorization"]["type"] == "simple"
    app_id = worker_setting("CACT_APP_ID")
    all_topics = set(kafka_topics(manifests))
    pipeline_only = CONTROL_AND_OUTPUTS | changelogs()
    for name, user in users.items():
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == cluster["metadata"]["name"]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512", f"{name}: SCRAM-SHA-512"
        assert user["spec"]["authorization"]["type"] == "simple"
        assert not any(allowed(user, op, "cluster", "kafka-cluster") for op in ("Alter", "AlterConfigs", "All",
                                                                                  "Create", "ClusterAction")), \
            f"{name}: no principal administers the cluster"
        written = {t for t in all_topics if any(allowed(user, op, "topic", t) for op in WRITES)}
        if name != "cact-pipeline":
            assert not written & pipeline_only, f"{name} may write {sorted(written & pipeline_only)}: only the " \
                                                f"pipeline writes control, output and changelog topics"
        if name.startswith("cact-lab"):
            assert written == {topics.LAB.name}, f"lab principal {name} may write {sorted(written)}"
            assert not any(allowed(user, "Read", "topic", t) for t in all_topics), f"{name} reads nothing"
        if name == "cact-scheduler":
            assert written == {topics.SCHEDULE.name}
    pipeline, sink = users["cact-pipeline"], users["cact-sink"]
    for spec in topics.INPUT_TOPICS:
        assert allowed(pipeline, "Read", "topic", spec.name)
    for name in pipeline_only | {topics.SCHEDULE.name}:  # the arrival side of a reschedule goes to the schedule
        assert allowed(pipeline, "Write", "topic", name)
    for name in changelogs():
        assert allowed(pipeline, "Read", "topic", name), f"the workers recover their tables from {name}"
    assert allowed(pipeline, "Read", "group", app_id)
    assert not allowed(pipeline, "Read", "group", f"{app_id}-sink"), "the workers cannot join the sink's group"
    assert not any(allowed(sink, op, "topic", t) for op in WRITES for t in all_topics), "the sink writes nothing"
    for spec in topics.OUTPUT_TOPICS:
        assert allowed(sink, "Read", "topic", spec.name)
    assert allowed(sink, "Read", "group", f"{app_id}-sink")
    assert any(n.startswith("cact-lab") for n in users) and "cact-scheduler" in users


def test_only_the_pipeline_writes_control_and_output_topics_and_labs_only_the_lab_topic() -> None:
    check_acls(MANIFESTS)


def _add_acl(resource: Document, operations: list[str]) -> Callable[[Document], None]:
    return lambda d: d["spec"]["authorization"]["acls"].append({"resource": resource, "operations": operations})


@pytest.mark.parametrize("kind,name,change", [
    ("KafkaUser", "cact-lab", _add_acl({"type": "topic", "name": topics.SCHEDULE.name, "patternType": "literal"},
                                       ["Write"])),
    ("KafkaUser", "cact-lab", _add_acl({"type": "topic", "name": "cact.", "patternType": "prefix"}, ["All"])),
    ("KafkaUser", "cact-sink", _add_acl({"type": "topic", "name": "*", "patternType": "literal"}, ["Write"])),
    ("KafkaUser", "cact-scheduler", _add_acl({"type": "topic", "name": topics.CONTROL.name}, ["Write"])),
    ("KafkaUser", "cact-pipeline", _add_acl({"type": "group", "name": "cact-pipeline", "patternType": "prefix"},
                                            ["Read"])),
    ("KafkaUser", "cact-lab", _add_acl({"type": "cluster"}, ["Alter"])),
], ids=["lab writes the schedule", "lab prefix All", "sink writes everything", "scheduler writes control",
        "pipeline joins the sink's group", "lab alters the cluster"])
def test_the_acl_checks_catch_a_wider_grant(kind: str, name: str, change: Callable[[Document], None]) -> None:
    with pytest.raises(AssertionError):
        check_acls(_with(kind, name, change))


def test_a_deny_rule_wins_over_an_allow() -> None:
    user = {"spec": {"authorization": {"acls": [
        {"resource": {"type": "topic", "name": "cact.", "patternType": "prefix"}, "operations": ["All"]},
        {"type": "deny", "resource": {"type": "topic", "name": topics.CONTROL.name}, "operations": ["Write"]}]}}}
    assert allowed(user, "Write", "topic", topics.LAB.name)
    assert not allowed(user, "Write", "topic", topics.CONTROL.name)
    assert allowed(user, "Describe", "topic", topics.CONTROL.name)


# ------------------------------------------------------------------------------------------------
# The pods: commands, settings, credentials, security
# ------------------------------------------------------------------------------------------------

def test_the_workers_run_as_the_design_says() -> None:
    sts, container = worker(), worker_container()
    env = env_of(container)
    assert sts["spec"]["replicas"] == 3
    assert container["command"] == ["cact", "worker"]
    assert int(env["CACT_TABLE_STANDBY_REPLICAS"]) >= 1
    assert env["CACT_SINK_IN_WORKER"] == "false" and env.get("CACT_SIASN_PUSH_ENABLED", "false") == "false"
    assert env["CACT_WORKER_WEB_HOST"] == "0.0.0.0"
    (web,) = [p for p in container["ports"] if p["name"] == "web"]
    assert web["containerPort"] == worker_setting("CACT_WORKER_WEB_PORT") == 6066
    # the table state lives on the pod's own volume, kept across restarts
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert Path(env["CACT_DATA_DIR"]).is_relative_to(mounts[claim["metadata"]["name"]])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    # every worker sees the same corrected blueprints and reports
    (shared,) = [v for v in sts["spec"]["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v]
    pvc = one("PersistentVolumeClaim", shared["persistentVolumeClaim"]["claimName"])
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    for var in ("CACT_BLUEPRINT_CORRECTIONS_DIR", "CACT_REPORTS_DIR"):
        assert Path(env[var]).is_relative_to(mounts[shared["name"]]), f"{var} is on the shared volume"
    headless = one("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert labels_match({"matchLabels": headless["spec"]["selector"]}, sts["spec"]["template"]["metadata"]["labels"])


def test_the_sink_and_the_pusher_run_their_commands_with_their_metrics_port() -> None:
    expected = {"cact-sink": (["cact", "sink"], "CACT_SINK_METRICS_PORT", "CACT_SINK_METRICS_HOST"),
                "cact-pusher": (["cact", "siasn", "push"], "CACT_PUSHER_METRICS_PORT", "CACT_PUSHER_METRICS_HOST")}
    for name, (command, port_var, host_var) in expected.items():
        (container,) = one("Deployment", name)["spec"]["template"]["spec"]["containers"]
        env = env_of(container)
        assert container["command"] == command
        assert env[host_var] == "0.0.0.0"
        (metrics,) = [p for p in container["ports"] if p["name"] == "metrics"]
        assert metrics["containerPort"] == int(env[port_var])
        assert "CACT_SINK_IN_WORKER" not in env
    sink_env = env_of(one("Deployment", "cact-sink")["spec"]["template"]["spec"]["containers"][0])
    assert sink_env["CACT_APP_ID"] == worker_setting("CACT_APP_ID"), "the sink's group is <the workers' app id>-sink"


def test_every_pod_runs_unprivileged_with_resources_and_without_service_links() -> None:
    seen = set()
    for workload, spec in workloads():
        name = workload["metadata"]["name"]
        seen.add(name)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001 and pod["fsGroup"] == 10001, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["enableServiceLinks"] is False, f"{name}: Service variables would collide with CACT_* settings"
        assert spec["automountServiceAccountToken"] is False, f"{name}: the pipeline never calls the Kubernetes API"
        for c in ds.containers(spec):
            ctx = c["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, f"{name}/{c['name']}"
            assert ctx["allowPrivilegeEscalation"] is False, f"{name}/{c['name']}"
            assert ctx["capabilities"]["drop"] == ["ALL"] and not ctx["capabilities"].get("add"), name
            assert not ctx.get("privileged") and ctx.get("runAsUser", 10001) != 0, name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), f"{name}/{c['name']}: {kind}"
            repo, _, tag = c["image"].rpartition(":")
            assert repo == IMAGE and tag and tag != "latest", f"{name}: {c['image']}"
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{name}: a writable /tmp on a read-only root file system"
    assert seen == {"cact-worker", "cact-sink", "cact-pusher"}
    images = ds.kustomization()["images"]
    assert [i["name"] for i in images] == [IMAGE]


def probe_port(container: Document, port: int | str) -> int:
    if isinstance(port, int):
        return port
    (found,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(found)


#: What each workload's probes ask: the worker's readiness is /readyz (joined its group, tables recovered), so a
#: rolling update waits for each worker to be back; everything else asks /healthz (the event loop answers).
PROBES = {"cact-worker": ("CACT_WORKER_WEB_PORT", {"startupProbe": "/healthz", "livenessProbe": "/healthz",
                                                   "readinessProbe": "/readyz"}),
          "cact-sink": ("CACT_SINK_METRICS_PORT", {"livenessProbe": "/healthz", "readinessProbe": "/healthz"}),
          "cact-pusher": ("CACT_PUSHER_METRICS_PORT", {"livenessProbe": "/healthz", "readinessProbe": "/healthz"})}


def test_probes_ask_healthz_on_the_port_that_serves_it() -> None:
    for workload, spec in workloads():
        name = workload["metadata"]["name"]
        port_var, probes = PROBES[name]
        (container,) = spec["containers"]
        served = int(env_of(container)[port_var])
        assert {k for k in container if k.endswith("Probe")} == set(probes), name
        for probe, path in probes.items():
            get = container[probe]["httpGet"]
            assert get["path"] == path, f"{name} {probe}"
            assert probe_port(container, get["port"]) == served, f"{name} {probe} asks another port"
            if path == "/readyz":  # it may wait 2 s for the results store (streams/pages.py), the default is 1 s
                assert container[probe].get("timeoutSeconds", 1) >= 3, f"{name} {probe}"


def secret_volumes(spec: Document) -> dict[str, Document]:
    return {v["name"]: v["secret"] for v in spec.get("volumes", []) if "secret" in v}


def check_credentials(manifests: list[ds.Manifest]) -> None:
    assert not docs_of("Secret", manifests), "no Secret is shipped: each is created from docs/deploy.md"
    for workload, spec in workloads(manifests):
        name = workload["metadata"]["name"]
        secrets = secret_volumes(spec)
        for volume in secrets.values():
            assert volume["defaultMode"] == 0o400, f"{name}: secret {volume['secretName']} mode"
        for c in ds.containers(spec):
            assert "envFrom" not in c, f"{name}: envFrom hides variable names from the checks"
            for e in c.get("env", []):
                assert "valueFrom" not in e or "secretKeyRef" not in e["valueFrom"], \
                    f"{name}: {e['name']} from a secretKeyRef: mount the Secret as a file instead"
                assert e["name"] not in SECRET_VALUES, f"{name}: {e['name']} set: use {e['name']}_FILE"
            mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
            for mount in mounts.values():
                if mount["name"] in secrets:
                    assert mount.get("readOnly") is True and "subPath" not in mount, \
                        f"{name}: secret {mount['name']} mounted read-only as a folder (rotations reach it)"
            for var, path in env_of(c).items():
                if var not in CREDENTIAL_FILES:
                    continue
                holders = [m for m in mounts.values() if Path(path).parent == Path(m["mountPath"])]
                assert holders and holders[0]["name"] in secrets, f"{name}: {var}={path} is not in a mounted Secret"
                volume = secrets[holders[0]["name"]]
                keys = {i["path"]: i["key"] for i in volume.get("items", [])}
                assert not keys or Path(path).name in keys, f"{name}: {var}: {Path(path).name} is not an item of " \
                                                            f"secret {volume['secretName']}"


def test_credentials_reach_the_pods_only_as_read_only_files() -> None:
    check_credentials(MANIFESTS)


def _worker_env(name: str, value: str) -> Callable[[Document], None]:
    return lambda d: d["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": name, "value": value})


def _secret_volume(name: str, change: Callable[[Document], None]) -> Callable[[Document], None]:
    def apply(doc: Document) -> None:
        (volume,) = [v for v in doc["spec"]["template"]["spec"]["volumes"] if v["name"] == name]
        change(volume["secret"])
    return apply


def _mount(name: str, change: Callable[[Document], None]) -> Callable[[Document], None]:
    def apply(doc: Document) -> None:
        (mount,) = [m for m in doc["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] if m["name"] == name]
        change(mount)
    return apply


@pytest.mark.parametrize("kind,name,change", [
    ("StatefulSet", "cact-worker", _worker_env("CACT_OPERATOR_TOKEN", "x" * 20)),
    ("StatefulSet", "cact-worker", lambda d: d["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "CACT_DATABASE_URL_FILE", "valueFrom": {"secretKeyRef": {"name": "cact-database", "key": "url"}}})),
    ("StatefulSet", "cact-worker", _worker_env("CACT_SIASN_SSO_PASSWORD_FILE", "/tmp/sso-password")),
    ("Deployment", "cact-pusher", _secret_volume("siasn", lambda v: v.update(defaultMode=0o644))),
    ("Deployment", "cact-sink", _mount("kafka-user", lambda m: m.pop("readOnly"))),
], ids=["token as a value", "secretKeyRef", "file outside a secret", "secret readable by all", "secret writable"])
def test_the_credential_checks_catch_a_leak(kind: str, name: str, change: Callable[[Document], None]) -> None:
    with pytest.raises(AssertionError):
        check_credentials(_with(kind, name, change))


def test_kafka_clients_use_tls_scram_their_own_user_and_the_cluster_ca() -> None:
    """The bootstrap is the cluster's TLS listener, the password is the Secret Strimzi made for that very
    KafkaUser (key ``password``), the CA is ``<cluster>-cluster-ca-cert`` (key ``ca.crt``)."""
    cluster = one("Kafka", "cact")
    name = cluster["metadata"]["name"]
    (listener,) = [li for li in cluster["spec"]["kafka"]["listeners"] if li["type"] == "internal"]
    assert listener["tls"] is True and listener["authentication"]["type"] == "scram-sha-512"
    users = {d["metadata"]["name"] for d in docs_of("KafkaUser")}
    clients = 0
    for workload, spec in workloads():
        for c in spec["containers"]:
            env = env_of(c)
            if "CACT_KAFKA_BOOTSTRAP_SERVERS" not in env:
                assert not any(k.startswith(("CACT_KAFKA_", "KAFKA_")) for k in env), workload["metadata"]["name"]
                continue
            clients += 1
            assert env["CACT_KAFKA_BOOTSTRAP_SERVERS"] == f"{name}-kafka-bootstrap:{listener['port']}"
            assert env["CACT_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
            assert env["CACT_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
            user = env["CACT_KAFKA_SASL_USERNAME"]
            assert user in users
            files = {Path(m["mountPath"]): m["name"] for m in c["volumeMounts"]}
            secrets = secret_volumes(spec)
            password = secrets[files[Path(env["CACT_KAFKA_SASL_PASSWORD_FILE"]).parent]]
            assert password["secretName"] == user and {"key": "password", "path": "password"} in password["items"]
            ca = secrets[files[Path(env["CACT_KAFKA_SSL_CAFILE"]).parent]]
            assert ca["secretName"] == f"{name}-cluster-ca-cert"
            assert {"key": "ca.crt", "path": Path(env["CACT_KAFKA_SSL_CAFILE"]).name} in ca["items"]
            assert workload["spec"]["template"]["metadata"]["labels"].get("cact.bkn.go.id/kafka-client") == "true", \
                "the brokers' listener admits pods with this label (its networkPolicyPeers)"
    assert clients == 2  # the workers and the sink; the pusher needs no Kafka


def test_every_workload_has_a_disruption_budget() -> None:
    budgets = docs_of("PodDisruptionBudget")
    for workload, _ in workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if labels_match(b["spec"]["selector"], labels)]
        assert len(matching) == 1, f"{workload['metadata']['name']}: {len(matching)} budgets"
        assert matching[0]["spec"]["maxUnavailable"] == 1


# ------------------------------------------------------------------------------------------------
# Network
# ------------------------------------------------------------------------------------------------

def policies_selecting(labels: dict[str, str], direction: str, manifests: list[ds.Manifest] = MANIFESTS) -> list[
        Document]:
    return [p for p in docs_of("NetworkPolicy", manifests)
            if direction in p["spec"].get("policyTypes", ["Ingress"]) and labels_match(p["spec"]["podSelector"],
                                                                                        labels)]


def port_opened(rule: Document, container: Document, port: int) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True  # a rule without ports opens every port
    return any(probe_port(container, p["port"]) == port if "port" in p else True for p in ports)


def check_web_port(manifests: list[ds.Manifest]) -> None:
    sts = one("StatefulSet", "cact-worker", manifests)
    labels = sts["spec"]["template"]["metadata"]["labels"]
    container = sts["spec"]["template"]["spec"]["containers"][0]
    web = int(env_of(container)["CACT_WORKER_WEB_PORT"])
    deny = [p for p in docs_of("NetworkPolicy", manifests) if p["spec"]["podSelector"] == {}
            and p["spec"]["policyTypes"] == ["Ingress"] and not p["spec"].get("ingress")]
    assert deny, "a default-deny ingress policy for the namespace"
    peers = []
    for policy in policies_selecting(labels, "Ingress", manifests):
        for rule in policy["spec"].get("ingress", []):
            if port_opened(rule, container, web):
                assert rule.get("from"), f"{policy['metadata']['name']} opens the web port to everyone"
                peers += rule["from"]
    assert peers, "no policy lets anyone reach the operator page"
    for peer in peers:
        assert "ipBlock" not in peer, "the web port only for pods (the ingress controller, Prometheus)"
        assert peer.get("namespaceSelector", {}).get("matchLabels"), "a peer in a named namespace"
        assert peer.get("podSelector", {}).get("matchLabels"), "a peer with its pods named, not a whole namespace"
    names = {p["podSelector"]["matchLabels"].get("app.kubernetes.io/name") for p in peers}
    assert names == {"ingress-nginx", "prometheus"}


def test_the_web_port_is_reachable_only_from_the_operators_ingress_and_prometheus() -> None:
    check_web_port(MANIFESTS)


@pytest.mark.parametrize("change", [
    lambda d: d["spec"]["ingress"].append({"ports": [{"protocol": "TCP", "port": 6066}]}),
    lambda d: d["spec"]["ingress"][0]["from"].append({"ipBlock": {"cidr": "0.0.0.0/0"}}),
    lambda d: d["spec"]["ingress"][0]["from"].append({"namespaceSelector": {}}),
], ids=["open to all", "open to an address range", "open to every namespace"])
def test_the_web_port_check_catches_an_opened_port(change: Callable[[Document], None]) -> None:
    with pytest.raises(AssertionError):
        check_web_port(_with("NetworkPolicy", "cact-worker-web", change))


def test_pipeline_pods_may_reach_dns_the_brokers_and_the_database_and_only_the_pusher_si_asn() -> None:
    cluster = one("Kafka", "cact")["metadata"]["name"]
    broker_labels = {"strimzi.io/cluster": cluster, "strimzi.io/broker-role": "true", "strimzi.io/kind": "Kafka"}
    for workload, spec in workloads():
        name = workload["metadata"]["name"]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        rules = [r for p in policies_selecting(labels, "Egress") for r in p["spec"].get("egress", [])]
        assert rules, f"{name}: egress is restricted"
        ports = {(p.get("protocol", "TCP"), p["port"]) for r in rules for p in r.get("ports", [])}
        assert all(r.get("ports") for r in rules), f"{name}: every egress rule names its ports"
        assert {("UDP", 53), ("TCP", 53), ("TCP", 5432)} <= ports, name
        kafka = [r for r in rules if ("TCP", 9093) in {(p.get("protocol", "TCP"), p["port"]) for p in r["ports"]}]
        is_client = "CACT_KAFKA_BOOTSTRAP_SERVERS" in env_of(spec["containers"][0])
        assert bool(kafka) == is_client, f"{name}: brokers reachable exactly when it is a Kafka client"
        for rule in kafka:
            assert all(labels_match(peer["podSelector"], broker_labels) for peer in rule["to"]), name
        https = {("TCP", 443), ("TCP", 8243)} & ports
        assert bool(https) == (name == "cact-pusher"), f"{name}: SI ASN's HTTPS endpoints"


def test_the_brokers_tls_listener_admits_the_pipelines_kafka_clients() -> None:
    (listener,) = [li for li in one("Kafka", "cact")["spec"]["kafka"]["listeners"] if li["port"] == 9093]
    peers = listener["networkPolicyPeers"]
    for workload, spec in workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        is_client = "CACT_KAFKA_BOOTSTRAP_SERVERS" in env_of(spec["containers"][0])
        admitted = any(labels_match(p["podSelector"], labels) for p in peers)
        assert admitted == is_client, workload["metadata"]["name"]


# ------------------------------------------------------------------------------------------------
# Monitoring
# ------------------------------------------------------------------------------------------------

def test_prometheus_scrapes_every_workload_on_a_port_it_has() -> None:
    monitors = docs_of("PodMonitor")
    for workload, spec in workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        (monitor,) = [m for m in monitors if labels_match(m["spec"]["selector"], labels)]
        names = {p["name"] for c in spec["containers"] for p in c.get("ports", [])}
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert endpoint["port"] in names and endpoint["path"] == "/metrics", workload["metadata"]["name"]


def test_the_prometheus_rule_is_alerts_yml() -> None:
    """The rules Prometheus evaluates in the cluster are those promtool tests (deploy/prometheus/alerts.yml)."""
    rule = one("PrometheusRule", "cact-alerts")
    assert rule["spec"]["groups"] == ds.alert_groups(), \
        f"deploy/k8s/monitoring/prometheusrule-alerts.yaml differs from deploy/prometheus/alerts.yml: run " \
        f"{ds.REGENERATE_RULE}"
    assert ds.PROMETHEUS_RULE.read_text(encoding="utf-8") == ds.render_prometheus_rule(ds.alert_groups()), \
        f"the generated file was edited by hand: run {ds.REGENERATE_RULE}"


def test_no_alert_is_defined_twice() -> None:
    names = [r["alert"] for d in docs_of("PrometheusRule") for g in d["spec"]["groups"] for r in g["rules"]
             if "alert" in r]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert all(fnmatch.fnmatch(n, "Cact*") for n in names)
