"""`lb-speaker run` announcing bgp-mode services to BIRD: the daemon, not the bare BGP entry point.

Cluster services are announced by every node; a Local service only while its
health check passes on the node, and it is withdrawn when the check fails,
without resetting the session. SIGTERM withdraws everything (Cease). `check`
refuses a bad bgp section naming the field. Every wait is bounded; nothing
asserts a duration.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest
import yaml

from .bgplab import SRC, Lab, node_v4, wait_for
from .helpers import need
from .test_interop_bird import bird_peer, speaker_bgp

CLUSTER_V4 = "203.0.113.50"
CLUSTER_V6 = "2001:db8:ff::50"
LOCAL_V4 = "203.0.113.51"
HEALTH_PORT = 18151
STATUS_PORT = 17473


@pytest.fixture(autouse=True)
def _tools() -> None:
    need("bird", "birdc")


def daemon_config(i: int, bgp: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "node": f"n{i}",
        "nodes": [{"name": f"n{i}", "address": node_v4(i)}],
        "membership": {"secret": "lab-secret-of-at-least-32-bytes!!"},
        "status": {"address": "127.0.0.1", "port": STATUS_PORT},
        "services": [
            {"name": "shop/web", "addresses": [CLUSTER_V4, CLUSTER_V6], "mode": "bgp"},
            {
                "name": "shop/db",
                "addresses": [LOCAL_V4],
                "mode": "bgp",
                "external_traffic_policy": "Local",
                "health_check": {
                    "type": "tcp",
                    "host": "127.0.0.1",
                    "port": HEALTH_PORT,
                    "interval_ms": 200,
                    "timeout_ms": 200,
                },
            },
        ],
        "bgp": bgp if bgp is not None else speaker_bgp(i),
    }


class Daemon:
    def __init__(self, lab: Lab, i: int, config: dict[str, Any] | None = None) -> None:
        self.lab = lab
        self.ns = lab.nodes[i - 1]
        self.config = lab.dir / f"daemon{i}.yaml"
        self.config.write_text(yaml.safe_dump(config if config is not None else daemon_config(i)))
        self.log = lab.dir / f"daemon{i}.log"
        env = dict(os.environ, PYTHONPATH=str(SRC))
        with open(self.log, "ab") as log:
            self.proc = lab.track(
                self.ns.popen(
                    [sys.executable, "-m", "lbspeaker.cli", "run", "--config", str(self.config), "--log-level", "debug"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )

    def status(self) -> dict[str, Any] | None:
        code = f"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:{STATUS_PORT}/status',timeout=2).read().decode())"
        out = self.ns.exec([sys.executable, "-c", code], check=False)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def metrics(self) -> str:
        code = f"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:{STATUS_PORT}/metrics',timeout=2).read().decode())"
        return self.ns.exec([sys.executable, "-c", code]).stdout


def test_daemon_announces_cluster_and_local_by_health(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(1)
    bird = lab.start_bird(bird_peer(1))
    # the node's "local endpoint": something listening on the health-check port
    endpoint = lab.track(
        lab.nodes[0].popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(HEALTH_PORT)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    )
    daemon = Daemon(lab, 1)
    wait_for(lambda: bird.established("n1"), 30, what="session up with the daemon")
    wait_for(lambda: f"via {node_v4(1)}" in lab.router.route(CLUSTER_V4), 15, what="Cluster route in the FIB")
    wait_for(lambda: f"via {node_v4(1)}" in lab.router.route(LOCAL_V4), 15, what="Local route while healthy")
    assert CLUSTER_V6 in bird.routes("master6")

    status = wait_for(daemon.status, 10, what="status API")
    rows = {(a["address"], a["mode"]): a for a in status["announcements"]}
    assert rows[(LOCAL_V4, "bgp")]["announcing"] is True
    assert rows[(CLUSTER_V4, "bgp")]["reason"].startswith("Cluster")
    assert status["bgp"]["peers"][0]["state"] == "Established"
    assert "lbspeaker_bgp_session_up" in daemon.metrics()

    # the local endpoint dies: the Local route goes, the Cluster one stays, the session is not reset
    endpoint.kill()
    endpoint.wait(5)
    wait_for(lambda: f"via {node_v4(1)}" not in lab.router.route(LOCAL_V4), 15, what="Local withdrawn")
    assert f"via {node_v4(1)}" in lab.router.route(CLUSTER_V4)
    status = daemon.status()
    assert status is not None
    rows = {(a["address"], a["mode"]): a for a in status["announcements"]}
    assert rows[(LOCAL_V4, "bgp")]["announcing"] is False
    assert "no healthy local endpoint" in rows[(LOCAL_V4, "bgp")]["reason"]
    assert any(
        line.startswith("lbspeaker_bgp_established_total{") and float(line.rsplit(" ", 1)[1]) == 1 for line in daemon.metrics().splitlines()
    ), "the session must not have been reset"

    # SIGTERM: withdraw and Cease before exit
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(15) == 0
    wait_for(lambda: f"via {node_v4(1)}" not in lab.router.route(CLUSTER_V4), 10, what="withdrawn on SIGTERM")


def test_check_names_the_bad_bgp_field(make_lab) -> None:  # type: ignore[no-untyped-def]
    lab: Lab = make_lab(1)
    path = lab.dir / "speaker.yaml"

    def check(config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        path.write_text(yaml.safe_dump(config))
        # in the node's namespace, where the membership address is local
        return lab.nodes[0].exec(
            ["env", f"PYTHONPATH={SRC}", sys.executable, "-m", "lbspeaker.cli", "check", "--config", str(path)],
            check=False,
        )

    assert check(daemon_config(1)).returncode == 0
    bad_peer = {"address": "198.51.100.1", "asn": 99999999999}
    out = check(daemon_config(1, bgp={"asn": 64501, "router_id": node_v4(1), "peers": [bad_peer]}))
    assert out.returncode != 0
    assert "bgp.peers[0].asn" in out.stdout + out.stderr

    no_bgp = daemon_config(1)
    del no_bgp["bgp"]
    out = check(no_bgp)
    assert out.returncode != 0
    assert "services[0].mode" in out.stdout + out.stderr
