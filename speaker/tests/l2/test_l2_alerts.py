"""The alert rules evaluated on what three real speakers expose across a failover.

The leader of an L2 address is killed (kill -9); every speaker's /metrics is
scraped once a second before and after, and promtool evaluates the rules the
role ships on those series (a failed scrape leaves a gap, as in Prometheus).
Each scrape round stands for one 15 s scrape interval and the last round is
held for two minutes, so the rules' ``for`` clauses can elapse: the order of
events is real, their durations are not (no assertion is about time).

What must hold: the address moved (its series turn from the killed node to
another), the survivors report the killed node missing and that alert fires
naming it, and no address is left unannounced or announced twice.
"""

import shutil
import subprocess
import time

import pytest
import yaml
from conftest import stable
from l2lab import HERE, PY, VIP4
from prerequisites import require
from prometheus_client.parser import text_string_to_metric_families

RULES = HERE.parents[1] / "roles" / "speaker" / "files" / "prometheus" / "baremetal-lb-alerts.yml"
ROUNDS_BEFORE = 3
ROUNDS_AFTER = 8
HOLD = 8  # rounds of 15 s the last scrape is held: two minutes, past every rule's ``for``


@pytest.fixture(scope="module", autouse=True)
def _promtool():
    require("promtool", install="install-prometheus-deps.sh")


def scrape(lab, node):
    """{(metric, labels): value} of one speaker's lbspeaker_ samples, or None if the scrape fails."""
    res = lab.exec(node.ns, PY, str(HERE / "l2probe.py"), "get", "http://127.0.0.1:7473/metrics", check=False)
    if res.returncode != 0:
        return None
    out = {}
    for family in text_string_to_metric_families(res.stdout):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def series_text(name, labels):
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"


def test_alerts_after_a_failover(lab, tmp_path, capsys):
    lab.all_alive()
    leader = lab.node_by_name(stable(lab, VIP4))
    rounds = []
    for i in range(ROUNDS_BEFORE + ROUNDS_AFTER):
        if i == ROUNDS_BEFORE:
            lab.fail(leader, "kill9")
        started = time.monotonic()
        rounds.append({n.name: scrape(lab, n) for n in lab.nodes})
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    try:
        new_leader = stable(lab, VIP4, skip=(leader.name,))
    finally:
        lab.restore(leader, "kill9")
    assert new_leader not in (None, leader.name)
    assert all(r[leader.name] is None for r in rounds[ROUNDS_BEFORE:]), "the killed speaker still answered"

    # the address's series: on the old leader before, on the new one at the end
    def announced(r, node):
        key = ("lbspeaker_address_announced",
               (("address", VIP4), ("mode", "l2"), ("node", node), ("service", "default/web")))
        return (r[node] or {}).get(key)
    assert announced(rounds[0], leader.name) == 1 and announced(rounds[0], new_leader) == 0
    assert announced(rounds[-1], new_leader) == 1

    # the series with a node label (the ones the rules read), each from its own speaker's scrapes
    keys = sorted({k for r in rounds for sample in r.values() if sample for k in sample if dict(k[1]).get("node")})
    series = []
    for name, labels in keys:
        values: list[str] = []
        for r in rounds:
            value = (r[dict(labels)["node"]] or {}).get((name, labels))
            if value is not None:
                values.append(repr(float(value)))
            else:  # a failed scrape marks the series stale at once, as Prometheus does
                values.append("stale" if values and values[-1] not in ("_", "stale") else "_")
        values.append(f"{values[-1] if values[-1] != 'stale' else '_'}x{HOLD}")
        series.append({"series": series_text(name, labels), "values": " ".join(values)})
    survivors = sorted(n.name for n in lab.nodes if n is not leader)
    end = f"{(len(rounds) + HOLD - 1) * 15}s"
    missing = [
        {
            "exp_labels": {"severity": "warning", "node": node, "member": leader.name},
            "exp_annotations": {
                "summary": f"Node {node} receives no heartbeats from member {leader.name}",
                "description": (
                    f"{leader.name} is configured but missing from {node}'s membership: its speaker is down, or "
                    "the membership port is blocked between them. See \"BaremetalLBMemberMissing\" in "
                    "docs/observability.md."
                ),
            },
        }
        for node in survivors
    ]
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "15s",
        "tests": [{
            "interval": "15s",
            "input_series": series,
            "alert_rule_test": [
                {"eval_time": end, "alertname": "BaremetalLBMemberMissing", "exp_alerts": missing},
                {"eval_time": end, "alertname": "BaremetalLBAddressNotAnnounced", "exp_alerts": []},
                {"eval_time": end, "alertname": "BaremetalLBAddressAnnouncedTwice", "exp_alerts": []},
                {"eval_time": end, "alertname": "BaremetalLBSpeakerConfigReloadFailed", "exp_alerts": []},
            ],
        }],
    }
    path = tmp_path / "failover_test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    promtool = shutil.which("promtool")
    assert promtool is not None
    result = subprocess.run([promtool, "test", "rules", str(path)], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    with capsys.disabled():
        print(f"\n  {VIP4} moved from {leader.name} to {new_leader}; alerts firing after the failover:")
        for alert in missing:
            print(f"    BaremetalLBMemberMissing: {alert['exp_annotations']['summary']}")
