"""The Grafana dashboards (deploy/grafana/dashboards/) as files: valid dashboards Grafana can load, every panel
querying something, through the one datasource variable; and the PromQL name extractor the metric check relies
on (tests/support/promql_names.py), proven on expressions that fool a naive one.

Whether the names the dashboards query exist on a running worker is tests/integration/deploy/test_dashboards.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from support.promql_names import (
    alert_queries,
    dashboard_queries,
    exposition,
    grafana_query_names,
    metric_names,
    missing,
    panels,
)

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
#: Panels that show what their targets return; rows and text panels query nothing.
WITHOUT_QUERIES = {"row", "text"}
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def dashboard_schema() -> dict[str, Any]:
    """Grafana's dashboard model as JSON Schema (deploy/grafana/schema/SOURCE.md), with the two places where the
    generator typed CUE's "anything" as an object relaxed to what Grafana accepts: a matcher's options (the
    ``byName`` matcher takes a string) and an override property's value (a number, a string, an object)."""
    schema: dict[str, Any] = json.loads((GRAFANA / "schema" / "dashboard.jsonschema.json").read_text())
    schema["definitions"]["MatcherConfig"]["properties"]["options"] = {}
    schema["definitions"]["DynamicConfigValue"]["properties"]["value"] = {}
    return schema


def test_the_vendored_schema_is_the_published_one() -> None:
    """SOURCE.md names the commit and checksum: a local edit to the schema would silently widen what passes."""
    digest = hashlib.sha256((GRAFANA / "schema" / "dashboard.jsonschema.json").read_bytes()).hexdigest()
    assert f"sha256: {digest}" in (GRAFANA / "schema" / "SOURCE.md").read_text()
    assert (GRAFANA / "schema" / "LICENSE").read_text().lstrip().startswith("Apache License")


def test_there_are_the_three_dashboards() -> None:
    assert [p.name for p in DASHBOARDS] == ["cact-attendance.json", "cact-delivery.json", "cact-pipeline.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_each_dashboard_is_valid_for_grafana(path: Path) -> None:
    dashboard = load(path)
    validator = jsonschema.Draft7Validator(dashboard_schema())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(dashboard)]
    assert not errors, "\n".join(errors)
    assert dashboard["uid"] == path.stem and len(dashboard["uid"]) <= 40  # Grafana's limit on uids
    assert dashboard["title"].startswith("CACT ") and len(dashboard["description"]) > 80
    assert "cact" in dashboard["tags"]


def test_the_schema_refuses_what_grafana_would() -> None:
    """Without this, a schema that accepts anything would let every dashboard through."""
    validator = jsonschema.Draft7Validator(dashboard_schema())
    good = load(DASHBOARDS[0])
    assert validator.is_valid(good)
    for broken in ({**good, "panels": [{**good["panels"][0], "gridPos": {"h": 4, "w": "wide", "x": 0, "y": 0}}]},
                   {**good, "panels": [{**good["panels"][0], "targets": "max(x)"}]},
                   {k: v for k, v in good.items() if k != "schemaVersion"},
                   {**good, "refresh": 30}):
        assert not validator.is_valid(broken)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_panels_have_unique_ids_a_place_a_plain_title_and_queries(path: Path) -> None:
    dashboard = load(path)
    every = list(panels(dashboard))
    ids = [p["id"] for p in every]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {path.name}"
    occupied: set[tuple[int, int]] = set()
    for panel in every:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & occupied, f"{panel['title']!r} overlaps another panel"
        occupied |= cells
        assert panel["title"].strip(), f"panel {panel['id']} has no title"
        if panel["type"] in WITHOUT_QUERIES:
            continue
        assert len(panel.get("description", "")) > 30, f"{panel['title']!r}: say in plain words what it shows"
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']!r} queries nothing"
        for target in panel["targets"]:
            assert target.get("expr", "").strip(), f"{panel['title']!r} target {target.get('refId')} has no expr"
            assert target.get("datasource", DATASOURCE) == DATASOURCE, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_the_datasource_is_a_variable_that_defaults_to_the_provisioned_one(path: Path) -> None:
    """``${DS_PROMETHEUS}`` resolves to the provisioned uid ``prometheus`` out of the box, and in another Grafana
    to whichever Prometheus is picked: an import needs no search-and-replace."""
    variables = {v["name"]: v for v in load(path)["templating"]["list"]}
    ds = variables["DS_PROMETHEUS"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus" and ds["current"]["value"] == "prometheus"
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    assert [(d["uid"], d["type"], d["url"]) for d in provisioned["datasources"]] == [
        ("prometheus", "prometheus", "http://prometheus:9090")]
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE


def test_the_provisioning_loads_the_dashboards_folder() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "cact.yaml").read_text())["providers"]
    assert [(p["type"], p["options"]["path"]) for p in provider] == [("file", "/var/lib/grafana/dashboards")]


def test_the_no_show_charts_draw_the_configured_threshold() -> None:
    attendance = load(GRAFANA / "dashboards" / "cact-attendance.json")
    charts = [p for p in panels(attendance) if "No-show ratio per" in p["title"]]
    assert {p["title"] for p in charts} >= {"No-show ratio per agency", "No-show ratio per lab"}
    for chart in charts:
        exprs = [t["expr"] for t in chart["targets"]]
        assert "max(cact_no_show_threshold_ratio)" in exprs, chart["title"]


def test_every_query_names_at_least_one_metric() -> None:
    """A query the extractor reads no name from would slip through the check against a worker's /metrics."""
    for path in DASHBOARDS:
        for where, query in dashboard_queries(load(path)):
            assert grafana_query_names(query), f"{path.name} {where}: {query!r}"
    for where, query in alert_queries((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text()):
        assert metric_names(query), where


# ---- the extractor -------------------------------------------------------------------------------------

@pytest.mark.parametrize("expr, names", [
    ("cact_no_show_ratio", {"cact_no_show_ratio"}),
    ('max by (agency_id) (cact_agency_no_show_ratio{agency_id=~"$agency"}) > 0.15', {"cact_agency_no_show_ratio"}),
    ("sum(rate(cact_events_in_total[$__rate_interval])) by (event_type)", {"cact_events_in_total"}),
    ("histogram_quantile(0.99, sum by (le) (rate(cact_event_latency_seconds_bucket[5m])))",
     {"cact_event_latency_seconds_bucket"}),
    ("(time() - max by (lab_id) (cact_lab_last_event_timestamp_seconds)) > 600\n  and on (lab_id)\n"
     "max by (lab_id) (cact_lab_sessions_in_progress) > 0",
     {"cact_lab_last_event_timestamp_seconds", "cact_lab_sessions_in_progress"}),
    ("process_resident_memory_bytes * on (instance, job) group_left (version) cact_build_info",
     {"process_resident_memory_bytes", "cact_build_info"}),
    # label names in matchers, strings with brackets and names in them, and a regex matcher
    ('a{le="0.5", lab_id!~"x(y)\\"z", quoted="sum(b)"} / on() group_right c', {"a", "c"}),
    # keywords, numbers (hex, exponent, Inf, NaN), durations, offset, @, subqueries, a comment
    ("x offset 5m + y @ start() + 0x1F * 1e3 - Inf + NaN > bool z[5m:30s] # and q", {"x", "y", "z"}),
    ("max_over_time(deriv(x[10m])[1h:]) unless ignoring (a, b) y", {"x", "y"}),
    ("sum without (instance) (x) or count_values(\"version\", cact_build_info)", {"x", "cact_build_info"}),
    ('label_replace(up, "dst", "$1", "src", "(.*)") and absent(nothing_here)', {"up", "nothing_here"}),
    ("recorded:rate5m:sum + ${var:regex} * [[old_style]]", {"recorded:rate5m:sum"}),
    ('{__name__="cact_sessions", state="closed"} + vector(1)', {"cact_sessions"}),
    ("topk(15, max by (agency_id) (r)) and sum by (a)(b)", {"r", "b"}),
    ("1 - scalar(x) ^ 2 % 3 atan2 y", {"x", "y"}),
])
def test_the_extractor_reads_metric_names_and_nothing_else(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_an_unresolvable_name_matcher_is_refused_not_ignored() -> None:
    with pytest.raises(ValueError, match="__name__"):
        metric_names('{__name__=~"cact_.*"}')
    with pytest.raises(ValueError, match="unbalanced"):
        metric_names("sum(x{a='b')")


def test_grafana_variable_queries() -> None:
    assert grafana_query_names("label_values(cact_agency_participants, agency_id)") == {"cact_agency_participants"}
    assert grafana_query_names('label_values(cact_lab_participants{state="scheduled"},lab_id)') == {
        "cact_lab_participants"}
    assert grafana_query_names("label_values(agency_id)") == set()
    assert grafana_query_names("query_result(topk(5, x))") == {"x"}
    with pytest.raises(ValueError):
        grafana_query_names("metrics(cact_.*)")


EXPOSITION = """\
# HELP cact_batch_seconds Time to process one batch
# TYPE cact_batch_seconds histogram
cact_batch_seconds_bucket{le="+Inf"} 0.0
cact_batch_seconds_count 0.0
cact_batch_seconds_sum 0.0
# HELP cact_events_in_total Input events
# TYPE cact_events_in_total counter
# HELP cact_lag OpenMetrics-style counter family
# TYPE cact_lag counter
# HELP cact_build_info Build
# TYPE cact_build_info gauge
cact_build_info{version="0.1.0"} 1.0
# HELP cact_om_build Build, OpenMetrics
# TYPE cact_om_build info
# HELP cact_help_only A family with help and no type
plain_sample 3
"""


def test_what_a_metrics_page_serves() -> None:
    families, samples = exposition(EXPOSITION)
    assert families["cact_batch_seconds"] == "histogram" and families["cact_help_only"] == "untyped"
    assert "plain_sample" in samples
    served = ["cact_batch_seconds_bucket", "cact_batch_seconds_sum", "cact_batch_seconds_count", "cact_batch_seconds",
              "cact_events_in_total",  # a labelled counter with no child yet: its HELP/TYPE lines count
              "cact_lag_total", "cact_build_info", "cact_om_build_info", "cact_help_only", "plain_sample"]
    assert missing(served, EXPOSITION) == []
    assert missing(["cact_events_in_total_bucket", "cact_build_info_total", "cact_batch_seconds_total",
                    "cact_gone"], EXPOSITION) == ["cact_batch_seconds_total", "cact_build_info_total",
                                                 "cact_events_in_total_bucket", "cact_gone"]
