"""Which metric names a PromQL expression reads, and whether a /metrics page serves them.

The dashboards (deploy/grafana/dashboards/) and the alert rules (deploy/prometheus/alerts.yml) query metrics by
name; a renamed metric leaves a panel empty or an alert silent without any error. The checks compare the names
they read with what a running worker serves, so the names must be read exactly: a label name, a function, a
keyword or a Grafana variable taken for a metric would fail the check for nothing, and a metric missed would
let a broken panel through. A small tokeniser, not a PromQL parser: it knows where names cannot be (inside
``{...}`` matchers, ``[...]`` ranges, strings, the label lists of ``by``/``without``/``on``/``ignoring``/
``group_left``/``group_right``) and that a function is a name followed by ``(``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import yaml

#: Words of the language that are not followed by ``(`` and are not metrics (``inf`` and ``nan`` in any case).
KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
                      "unless", "atan2", "inf", "nan"})
#: Keywords whose parenthesised list that follows holds label names.
LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<variable>\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\])
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])*)
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<punct>.)
""", re.X | re.S)

#: Sample-name suffixes by the family type that produces them (text format 0.0.4 and OpenMetrics).
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count", "_created"), "summary": ("_sum", "_count", "_created"),
            "counter": ("_total", "_created"), "info": ("_info",), "gaugehistogram": ("_bucket", "_gsum", "_gcount")}


def _tokens(expr: str) -> list[tuple[str, str]]:
    out = []
    for m in _TOKEN.finditer(expr):
        kind = m.lastgroup or "punct"
        if kind not in ("space", "comment"):
            out.append((kind, m.group()))
    return out


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects. A ``{__name__=~"..."}`` selector cannot be resolved to names: it
    raises ValueError, so a check built on this never passes by not looking."""
    tokens = _tokens(expr)
    names: set[str] = set()
    i, n = 0, len(tokens)

    def next_is(j: int, text: str) -> bool:
        return j < n and tokens[j] == ("punct", text)

    def next_is_word(j: int, words: tuple[str, ...]) -> bool:
        return j < n and tokens[j][0] == "name" and tokens[j][1] in words

    def skip_group(j: int, opening: str, closing: str) -> int:
        """Index after the group opened at ``j``; strings inside are single tokens, so brackets in them do not count."""
        depth = 0
        while j < n:
            if tokens[j] == ("punct", opening):
                depth += 1
            elif tokens[j] == ("punct", closing):
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
        raise ValueError(f"unbalanced {opening}{closing} in {expr!r}")

    while i < n:
        kind, text = tokens[i]
        if kind == "punct" and text == "{":
            end = skip_group(i, "{", "}")
            names |= _names_in_matchers(tokens[i + 1:end - 1], expr)
            i = end
        elif kind == "punct" and text == "[":
            i = skip_group(i, "[", "]")
        elif kind == "name":
            if text in LABEL_LISTS and next_is(i + 1, "("):
                i = skip_group(i + 1, "(", ")")
            elif text.lower() in KEYWORDS or next_is(i + 1, "(") or next_is_word(i + 1, ("by", "without")):
                i += 1  # a keyword, a function called here, or an aggregation with its grouping first
            else:
                names.add(text)
                i += 1
        else:
            i += 1
    return names


def _names_in_matchers(tokens: list[tuple[str, str]], expr: str) -> set[str]:
    """Inside ``{...}``: only a ``__name__`` equality names a metric; every other name there is a label."""
    found = set()
    for j, (kind, text) in enumerate(tokens):
        if (kind, text) != ("name", "__name__"):
            continue
        op = "".join(t for _, t in tokens[j + 1:j + 3] if t in ("=", "!", "~"))
        value = next((t for k, t in tokens[j + 1:j + 4] if k == "string"), None)
        if op != "=" or value is None:
            raise ValueError(f"a __name__ matcher other than equality cannot be checked: {expr!r}")
        found.add(value[1:-1])
    return found


def grafana_query_names(query: str) -> set[str]:
    """Names a Grafana Prometheus query reads: PromQL, or a template variable's ``label_values(expr, label)``,
    ``label_values(label)`` (no metric), ``query_result(expr)``; ``metrics(regex)`` raises like a regex matcher."""
    query = query.strip()
    if m := re.fullmatch(r"label_values\((.*),\s*[A-Za-z_]\w*\s*\)", query, re.S):
        return metric_names(m.group(1))
    if re.fullmatch(r"label_values\(\s*[A-Za-z_]\w*\s*\)", query):
        return set()
    if m := re.fullmatch(r"query_result\((.*)\)", query, re.S):
        return metric_names(m.group(1))
    if query.startswith("metrics("):
        raise ValueError(f"a metrics() variable query cannot be checked: {query!r}")
    return metric_names(query)


def exposition(text: str) -> tuple[dict[str, str], set[str]]:
    """A /metrics page's families (name → type, from its ``# TYPE`` lines; ``# HELP`` alone counts as untyped)
    and the names of the samples it carries."""
    families: dict[str, str] = {}
    samples: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, type_ = line.split(" ", 3)
            families[name] = type_.strip()
        elif line.startswith("# HELP "):
            families.setdefault(line.split(" ", 3)[2], "untyped")
        elif line and not line.startswith("#"):
            samples.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return families, samples


def missing(names: Iterable[str], text: str) -> list[str]:
    """The names a /metrics page does not serve, sorted. Served: a family (its ``# HELP``/``# TYPE`` lines count
    without a sample), a sample, or a suffix its family's type gives (``x_bucket`` of histogram ``x``; ``x_total``
    of an OpenMetrics counter ``x``; ``x_info`` of info ``x``)."""
    families, samples = exposition(text)
    known = set(families) | samples
    known |= {family + suffix for family, type_ in families.items() for suffix in SUFFIXES.get(type_, ())}
    return sorted(set(names) - known)


# ---- what the deploy files query --------------------------------------------------------------------------

def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a Grafana dashboard, those inside (collapsed) rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panels(panel)


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, query) of every Prometheus query of a dashboard: its panels' targets and its query variables."""
    found = [(f"panel {p.get('id')} {p.get('title', '')!r} target {t.get('refId')}", t["expr"])
             for p in panels(dashboard) for t in p.get("targets", []) if "expr" in t]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var.get("query")
            found.append((f"variable {var.get('name')}", query["query"] if isinstance(query, dict) else query))
    return found


def alert_queries(rules_yaml: str) -> list[tuple[str, str]]:
    """(where, expr) of every rule in a Prometheus rule file."""
    return [(f"rule {rule.get('alert') or rule.get('record')}", rule["expr"])
            for group in yaml.safe_load(rules_yaml)["groups"] for rule in group["rules"]]
