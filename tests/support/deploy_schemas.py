"""Offline validation of the Kubernetes manifests in deploy/k8s/, and the two files generated into it.

A manifest that the API server would refuse is found here, without a cluster: core kinds against the schemas
the ``kubernetes-validate`` package ships (strict: an unknown field is an error, as ``kubectl apply
--validate=strict`` makes it), custom resources (Strimzi, prometheus-operator) against their CRDs'
``openAPIV3Schema``, vendored under deploy/k8s/schemas/ with their source in ``sources.json``.

A CRD schema says little about unknown fields: the API server *prunes* a field its structural schema does not
declare, silently, so a misspelt ``networkPolicyPeer`` would be dropped and the broker left open. :func:`strict`
therefore closes every object that declares ``properties`` and neither ``additionalProperties`` nor
``x-kubernetes-preserve-unknown-fields`` (what the API server would prune is what we refuse), and turns
OpenAPI's ``nullable`` into JSON Schema. The rest of OpenAPI v3 that CRDs use is a subset of Draft 7; the
``x-kubernetes-*`` keys and ``format`` are annotations to jsonschema, and CEL rules (``x-kubernetes-validations``)
are not evaluated here.

Run as a script to regenerate what is generated (each test that compares says which command):

    .venv/bin/python tests/support/deploy_schemas.py prometheusrule
    .venv/bin/python tests/support/deploy_schemas.py crd FILE.yaml VERSION OUT.json
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
SCHEMAS = K8S / "schemas"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS_RULE = K8S / "monitoring" / "prometheusrule-alerts.yaml"

#: Core kinds are checked against both: the oldest Kubernetes that Strimzi 1.2 supports (so no field newer than
#: the cluster is used) and the newest the installed kubernetes-validate ships (so no API since removed is used).
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

REGENERATE_RULE = ".venv/bin/python tests/support/deploy_schemas.py prometheusrule"

Document = dict[str, Any]


class ManifestError(AssertionError):
    """A document the API server would refuse (or silently prune), with where in it and why."""


# ------------------------------------------------------------------------------------------------
# The manifests
# ------------------------------------------------------------------------------------------------

def load_yaml_documents(path: Path) -> list[Document]:
    """Every non-empty document of a YAML file, in order."""
    with path.open(encoding="utf-8") as handle:
        return [d for d in yaml.safe_load_all(handle) if d is not None]


def kustomization() -> Document:
    docs = load_yaml_documents(K8S / "kustomization.yaml")
    assert len(docs) == 1, "kustomization.yaml holds one document"
    return docs[0]


@dataclass(frozen=True)
class Manifest:
    path: Path
    index: int
    doc: Document

    @property
    def ref(self) -> str:
        """``file#n Kind/name``, for test ids and failure messages."""
        meta = self.doc.get("metadata") or {}
        return f"{self.path.relative_to(K8S)}#{self.index} {self.doc.get('kind')}/{meta.get('name')}"


def manifests() -> list[Manifest]:
    """Every document of every resource kustomization.yaml lists, in its order (a listed file that does not
    exist is left out here: the test of the file list names it)."""
    found = []
    for name in kustomization().get("resources", []):
        path = K8S / name
        if not path.is_file():
            continue
        for index, doc in enumerate(load_yaml_documents(path)):
            found.append(Manifest(path, index, doc))
    return found


def yaml_files_under_k8s() -> list[Path]:
    """The YAML files of deploy/k8s/ that are resources (the vendored schemas and the kustomization are not)."""
    return sorted(p for p in K8S.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
                  and SCHEMAS not in p.parents and p.name != "kustomization.yaml")


# ------------------------------------------------------------------------------------------------
# The vendored CRD schemas
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CrdSchema:
    api_version: str
    kind: str
    file: str
    project: str
    version: str
    source: str
    commit: str
    license: str
    schema_sha256: str

    @property
    def path(self) -> Path:
        return SCHEMAS / self.file

    def load(self) -> Document:
        return _load_json(self.path)


@cache
def _load_json(path: Path) -> Document:
    with path.open(encoding="utf-8") as handle:
        data: Document = json.load(handle)
    return data


@cache
def crd_schemas() -> dict[tuple[str, str], CrdSchema]:
    """(apiVersion, kind) → the vendored schema, from deploy/k8s/schemas/sources.json."""
    index = _load_json(SCHEMAS / "sources.json")
    found = {}
    for entry in index["schemas"]:
        crd = CrdSchema(api_version=entry["apiVersion"], kind=entry["kind"], file=entry["file"],
                        project=entry["project"], version=entry["version"], source=entry["source"],
                        commit=entry["commit"], license=entry["license"], schema_sha256=entry["schema_sha256"])
        found[(crd.api_version, crd.kind)] = crd
    return found


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def extract_crd_schema(crd: Document, version: str) -> Document:
    """The ``openAPIV3Schema`` of one served version of a CustomResourceDefinition document."""
    if crd.get("kind") != "CustomResourceDefinition":
        raise ValueError(f"not a CustomResourceDefinition: {crd.get('kind')}")
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            if not entry.get("served", False):
                raise ValueError(f"{crd['metadata']['name']} does not serve {version}")
            schema: Document = entry["schema"]["openAPIV3Schema"]
            return schema
    served = [v["name"] for v in crd["spec"]["versions"]]
    raise ValueError(f"{crd['metadata']['name']} has no version {version} (it has {served})")


_SCHEMA_MAPS = ("properties", "patternProperties", "definitions")  # name → schema
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_ONE = ("additionalProperties", "items")  # a schema (items: or a list; additionalProperties: or a bool)


def python_pattern(pattern: str) -> str:
    """A CRD's ``pattern`` (Go RE2 syntax, where the API server evaluates it) as Python's ``re`` reads it.

    The one difference the vendored CRDs hit: RE2 takes inline flags anywhere (``^(?i)(abort|warn)?$``), Python
    only at the start, where they mean the same for the whole pattern."""
    try:
        re.compile(pattern)
        return pattern
    except re.error:
        flags = "".join(re.findall(r"\(\?([aiLmsux]+)\)", pattern))
        fixed = f"(?{flags})" + re.sub(r"\(\?[aiLmsux]+\)", "", pattern) if flags else pattern
        re.compile(fixed)  # anything else is a difference not handled here: fail loudly
        return fixed


def strict(schema: Any, *, closed: bool = True) -> Any:
    """The schema as JSON Schema that refuses what the API server would prune (module docstring).

    Walks by keyword, so a field that happens to be *named* ``properties`` or ``nullable`` is a name, not a
    keyword. Branches of ``allOf``/``anyOf``/``oneOf``/``not`` are left open (``closed=False``): in a structural
    schema they only add checks to fields declared beside them, and closing a branch that names some of them
    would refuse the others."""
    if not isinstance(schema, dict):
        return schema  # a boolean schema
    out: Document = {}
    for key, value in schema.items():
        if key in _SCHEMA_MAPS:
            out[key] = {name: strict(sub, closed=closed) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS:
            out[key] = [strict(sub, closed=False) for sub in value]
        elif key == "not":
            out[key] = strict(value, closed=False)
        elif key in _SCHEMA_ONE:
            out[key] = [strict(sub, closed=closed) for sub in value] if isinstance(value, list) \
                else strict(value, closed=closed)
        elif key == "pattern":
            out[key] = python_pattern(value)
        else:
            out[key] = copy.deepcopy(value)
    if (closed and "properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields", False)):
        out["additionalProperties"] = False
    if out.pop("nullable", False):
        return {"anyOf": [out, {"type": "null"}]}
    return out


@cache
def _crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    schema = strict(crd_schemas()[(api_version, kind)].load())
    jsonschema.Draft7Validator.check_schema(schema)
    validator: jsonschema.protocols.Validator = jsonschema.Draft7Validator(schema)
    return validator


def _where(path: Any) -> str:
    return "/".join(str(p) for p in path) or "(document)"


def validate(doc: Document, kubernetes_versions: tuple[str, ...] = KUBERNETES_VERSIONS) -> None:
    """Raise :class:`ManifestError` unless the API server would accept ``doc`` as it is, dropping nothing."""
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    if key in crd_schemas():
        errors = sorted(_crd_validator(*key).iter_errors(doc), key=lambda e: list(e.absolute_path))
        if errors:
            raise ManifestError("; ".join(f"{_where(e.absolute_path)}: {e.message[:300]}" for e in errors[:5]))
        # The CRD schema says only "metadata: object": check it as the API server's ObjectMeta, strictly.
        doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc.get("metadata")}
    for version in kubernetes_versions:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise ManifestError(f"Kubernetes {version}: {_where(exc.absolute_path)}: {exc.message[:300]}") from None
        except kubernetes_validate.SchemaNotFoundError as exc:
            raise ManifestError(f"no schema for {key[1]} {key[0]}: vendor its CRD under deploy/k8s/schemas/ "
                                f"({exc.message})") from None


# ------------------------------------------------------------------------------------------------
# Walking pod templates
# ------------------------------------------------------------------------------------------------

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")


def pod_spec(doc: Document) -> Document | None:
    """The pod spec of a workload (a CronJob's job template included), or None for other kinds."""
    if doc.get("kind") not in WORKLOAD_KINDS:
        return None
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: Document = spec["template"]["spec"]
    return template


def containers(spec: Document) -> Iterator[Document]:
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])


# ------------------------------------------------------------------------------------------------
# The PrometheusRule generated from deploy/prometheus/alerts.yml
# ------------------------------------------------------------------------------------------------

def alert_groups() -> list[Document]:
    groups: list[Document] = load_yaml_documents(ALERTS)[0]["groups"]
    return groups


def prometheus_rule(groups: list[Document]) -> Document:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "cact-alerts",
            "namespace": "cact",
            "labels": {"app.kubernetes.io/part-of": "cact-pipeline", "app.kubernetes.io/component": "alerts"},
        },
        "spec": {"groups": groups},
    }


class _LiteralDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, descriptions) as ``|`` blocks, so the generated file reads like alerts.yml."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LiteralDumper.add_representer(str, _str)


def render_prometheus_rule(groups: list[Document]) -> str:
    header = ("# GENERATED from deploy/prometheus/alerts.yml: do not edit here. After changing alerts.yml run\n"
              f"#   {REGENERATE_RULE}\n"
              "# (tests/unit/deploy/test_k8s_manifests.py fails while the two differ).\n")
    body = yaml.dump(prometheus_rule(groups), Dumper=_LiteralDumper, sort_keys=False, width=120,
                     allow_unicode=True)
    return header + body


def _main(argv: list[str]) -> int:
    if argv[:1] == ["prometheusrule"]:
        PROMETHEUS_RULE.write_text(render_prometheus_rule(alert_groups()), encoding="utf-8")
        print(f"wrote {PROMETHEUS_RULE.relative_to(REPO)}")
        return 0
    if argv[:1] == ["crd"] and len(argv) == 4:
        source, version, out = Path(argv[1]), argv[2], Path(argv[3])
        crds = [d for d in load_yaml_documents(source) if d.get("kind") == "CustomResourceDefinition"]
        if len(crds) != 1:
            print(f"{source}: expected one CustomResourceDefinition, found {len(crds)}", file=sys.stderr)
            return 2
        out.write_text(json.dumps(extract_crd_schema(crds[0], version), indent=1, ensure_ascii=False) + "\n",
                       encoding="utf-8")
        print(f"wrote {out} (schema_sha256 {file_sha256(out)})")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
