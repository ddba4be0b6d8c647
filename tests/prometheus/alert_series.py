"""What the alert rules and the dashboard read: every metric they name, with the labels they use on it.

The scrape tests (speaker/tests/bgp/test_metrics_scrape.py for the speaker,
tests/kubernetes/test_controller_metrics.py for the controller) check that a
running daemon exposes each of them with those labels, so a renamed metric or
label breaks a test here rather than an alert that never fires.

``python3 tests/prometheus/alert_series.py dashboard-rules OUT`` writes the
dashboard's queries as recording rules, so that ``promtool check rules``
parses them (make rules-test).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "roles/speaker/files/prometheus/baremetal-lb-alerts.yml"
DASHBOARD = ROOT / "roles/speaker/files/grafana/baremetal-lb-dashboard.json"

METRIC = re.compile(r"\b(lbspeaker|lbcontroller)_[a-z0-9_]+\b")
GROUPING = re.compile(r"\b(?:by|on|without|ignoring|group_left|group_right)\s*\(([^)]*)\)")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
TEMPLATE_LABEL = re.compile(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)")
LEGEND_LABEL = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
GRAFANA_INTERVAL = "$__rate_interval"
# Labels Prometheus itself gives every series of a target when it scrapes: no daemon exposes them.
TARGET_LABELS = frozenset({"instance", "job"})


def _labels_of(expr: str) -> set[str]:
    labels = set(MATCHER.findall(expr))
    for group in GROUPING.findall(expr):
        labels.update(name.strip() for name in group.split(",") if name.strip())
    return labels


def alert_rules() -> list[dict[str, object]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard_targets() -> list[dict[str, str]]:
    return [target for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]]


def uses() -> list[tuple[str, str, set[str]]]:
    """(where, expression, labels it relies on) for every alert and dashboard query."""
    out = []
    for rule in alert_rules():
        expr = str(rule["expr"])
        annotations = " ".join(str(v) for v in dict(rule.get("annotations") or {}).values())  # type: ignore[call-overload]
        labels = _labels_of(expr) | set(TEMPLATE_LABEL.findall(annotations))
        out.append((f"alert {rule['alert']}", expr, labels - TARGET_LABELS))
    for target in dashboard_targets():
        expr = target["expr"]
        labels = _labels_of(expr) | set(LEGEND_LABEL.findall(target["legendFormat"]))
        out.append((f"dashboard query {expr}", expr, labels - TARGET_LABELS))
    return out


def expected_series(prefix: str) -> dict[str, set[str]]:
    """{metric: labels} for the metrics starting with ``prefix`` (lbspeaker_ or lbcontroller_).

    Every label a query relies on (matchers, grouping, the labels its summary
    or legend prints) is required of every metric of ``prefix`` in it: the
    queries are written so that this holds.
    """
    wanted: dict[str, set[str]] = {}
    for _where, expr, labels in uses():
        for match in METRIC.finditer(expr):
            if match.group(0).startswith(prefix):
                wanted.setdefault(match.group(0), set()).update(labels)
    if not wanted:
        raise AssertionError(f"no {prefix} metric in {RULES} or {DASHBOARD}: the parser is broken")
    return wanted


def missing_series(exposition: str, prefix: str) -> list[str]:
    """What the rules and the dashboard read that ``exposition`` (a /metrics body) lacks, in words."""
    seen: dict[str, list[set[str]]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            seen.setdefault(sample.name, []).append(set(sample.labels))
    problems = []
    for metric, labels in sorted(expected_series(prefix).items()):
        if metric not in seen:
            problems.append(f"{metric}: no sample (wanted with labels {sorted(labels)})")
        elif not any(labels <= have for have in seen[metric]):
            problems.append(f"{metric}: no sample with labels {sorted(labels)} (has {[sorted(h) for h in seen[metric]]})")
    return problems


def dashboard_rules() -> dict[str, object]:
    rules = [
        {"record": f"dashboard:query:{i}", "expr": t["expr"].replace(GRAFANA_INTERVAL, "5m")}
        for i, t in enumerate(dashboard_targets())
    ]
    return {"groups": [{"name": "dashboard-queries", "rules": rules}]}


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "dashboard-rules":
        sys.exit("usage: alert_series.py dashboard-rules OUT")
    Path(sys.argv[2]).write_text(yaml.safe_dump(dashboard_rules()))
