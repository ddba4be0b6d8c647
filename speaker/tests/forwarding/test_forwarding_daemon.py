"""`lb-speaker run` with forwarded services: the real daemon takes the VIP over Layer 2
(local route, ARP) and programs nftables from its config.

One speaker (node1) running, its two peers down; echo backends on all three nodes.
Cluster: the backends on every node answer and see node1's address. Local:
only node1's backend answers and sees the client's address; when it dies,
node1 is no longer eligible and nobody announces the VIP (never a black hole),
while the Cluster VIP keeps working. SIGTERM removes the speaker's table and
leaves the foreign one alone. Every wait is bounded; no timing is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from fwlab import CLIENT4, CLUSTER_VIP4, ECHO_PORT, LOCAL_VIP4, PY, SERVICE_PORT, TABLE, Lab, wait_for

SRC = Path(__file__).resolve().parents[2] / "src"
STATUS_PORT = 17474


@pytest.fixture
def lab(request, netns_requirements):
    lab = Lab(vip_routes=False)
    request.addfinalizer(lab.destroy)
    lab.create()
    for node in lab.nodes:
        lab.start_echo(node)
    return lab


def speaker_config(lab: Lab) -> dict[str, object]:
    node1 = lab.forwarder
    check = {"type": "tcp", "interval_ms": 300, "timeout_ms": 200}
    backends = [{"node": n.name, "address": n.v4, "port": ECHO_PORT, "health_check": check} for n in lab.nodes]
    return {
        "node": node1.name,
        # backends must sit on speaker nodes; node2 and node3 run no speaker here, so they count as dead
        "nodes": [{"name": n.name, "address": n.v4} for n in lab.nodes],
        "membership": {"secret": "forwarding-test-secret-32-bytes!!"},
        "interfaces": ["eth0"],
        "status": {"address": "127.0.0.1", "port": STATUS_PORT},
        "services": [
            {"name": "default/cluster", "addresses": [CLUSTER_VIP4], "ports": [SERVICE_PORT], "backends": backends},
            {
                "name": "default/local",
                "addresses": [LOCAL_VIP4],
                "ports": [SERVICE_PORT],
                "external_traffic_policy": "Local",
                "backends": backends,
            },
        ],
    }


def get(lab: Lab, vip: str) -> dict[str, object] | None:
    out = lab.client_run("get", vip, str(SERVICE_PORT), check=False, timeout=10)
    return json.loads(out.stdout) if out.returncode == 0 else None


def status(lab: Lab) -> dict[str, object]:
    code = f"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:{STATUS_PORT}/status',timeout=2).read().decode())"
    out = subprocess.run(["ip", "netns", "exec", lab.forwarder.ns, PY, "-c", code], check=False, capture_output=True, text=True, timeout=10)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def test_daemon_forwards_both_policies_and_withdraws_local(lab):
    config = Path(lab.workdir) / "speaker.yaml"
    config.write_text(yaml.safe_dump(speaker_config(lab)))
    env = dict(os.environ, PYTHONPATH=str(SRC))
    log = open(Path(lab.workdir) / "speaker.log", "ab")  # noqa: SIM115 - closed with the process
    speaker = subprocess.Popen(
        ["ip", "netns", "exec", lab.forwarder.ns, PY, "-m", "lbspeaker.cli", "run", "--config", str(config)],
        stdout=log,
        stderr=log,
        env=env,
        start_new_session=True,
    )
    lab.procs.append(speaker)

    try:
        wait_for(lambda: get(lab, CLUSTER_VIP4) is not None, 30, "Cluster VIP answering through the speaker")
    except TimeoutError:
        print((Path(lab.workdir) / "speaker.log").read_text()[-3000:], json.dumps(status(lab))[:3000])
        raise
    wait_for(lambda: get(lab, LOCAL_VIP4) is not None, 30, "Local VIP answering through the speaker")

    seen = [get(lab, CLUSTER_VIP4) for _unused in range(30)]
    assert all(s is not None and s["client"] == lab.forwarder.v4 for s in seen), seen
    assert {s["node"] for s in seen if s} == {n.name for n in lab.nodes}
    local = [get(lab, LOCAL_VIP4) for _unused in range(10)]
    assert all(s is not None and s["node"] == lab.forwarder.name and s["client"] == CLIENT4 for s in local), local

    doc = status(lab)
    forwarding = {f["service"]: f for f in doc["forwarding"]}
    assert forwarding["default/local"]["eligible"] is True
    assert {b["node"] for b in forwarding["default/cluster"]["backends"] if b["forwarded"]} == {n.name for n in lab.nodes}

    # node1's own backend dies: Local has no eligible node left, so nobody announces it
    lab.stop_echo(lab.forwarder)
    wait_for(lambda: get(lab, LOCAL_VIP4) is None, 15, "Local VIP withdrawn")
    wait_for(
        lambda: any(
            a["address"] == LOCAL_VIP4 and not a["announcing"] and "no eligible node" in a["reason"]
            for a in status(lab).get("announcements", [])
        ),
        10,
        "status explains the withdrawal",
    )
    remaining = [get(lab, CLUSTER_VIP4) for _unused in range(20)]
    assert all(s is not None for s in remaining), "Cluster must keep working on the other nodes"
    assert lab.forwarder.name not in {s["node"] for s in remaining if s}

    assert lab.stop(speaker) == 0
    log.close()
    assert lab.own_table() is None, f"table {TABLE} left behind"
    assert lab.foreign_ruleset() == lab.foreign
