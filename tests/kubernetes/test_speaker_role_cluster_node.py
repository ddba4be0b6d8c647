"""The role renders a speaker's ``kubernetes:`` section on a cluster node, and only there.

ansible-playbook runs the role's ``preflight`` and ``config`` entry points (what site.yml runs on
every host of lb_speakers, without the package install and the unit) for two local hosts: ``node1``
in ``lb_cluster_nodes``, ``edge1`` not. Each host's configuration goes to its own directory under
the test's tmp_path; ``lb-speaker check`` (the role's ``validate``) is this interpreter's speaker. The
rendered files are read back with the speaker's own parser. Nothing is installed and no service is
touched (``lb_speaker_service_state: stopped`` keeps the handlers away from systemd; they are
still listed in the output when notified, which is how restart-versus-reload is checked).
"""

from __future__ import annotations

import ipaddress
import json
import os
import pwd
import re
import stat
import subprocess
import sys
from pathlib import Path

import yaml
from lbspeaker import config as speaker_config
from lbspeaker.bgp.config import route_advertisement
from lbspeaker.bgp.manager import Announcement, routes_for_peer

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_BIN = Path(os.environ.get("LB_ANSIBLE_BIN", REPO / ".venv" / "bin"))

POOLS = [
    {"name": "lan", "addresses": ["198.51.100.100-198.51.100.109", "2001:db8:1::100-2001:db8:1::109"]},
    {"name": "routed", "addresses": ["203.0.113.160/28"], "auto_assign": False},
]
L2 = [{"pools": ["lan"], "interfaces": ["lo"]}]
BGP = [{"pools": ["routed"], "peers": ["tor"], "nodes": ["node1"], "communities": ["64500:100"]}]
PEERS = [{"name": "tor", "address": "198.51.100.1", "asn": 64500}]
KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "current-context": "c",
    "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
    "users": [{"name": "u", "user": {"token": "tok-role-test-not-a-secret"}}],
    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
}

PLAYBOOK = """
- name: The speaker's configuration on each speaker, as site.yml renders it
  hosts: lb_speakers
  gather_facts: false
  tasks:
    - name: Preflight
      ansible.builtin.include_role:
        name: baremetal.lb.speaker
        tasks_from: preflight
    - name: Configuration
      ansible.builtin.include_role:
        name: baremetal.lb.speaker
        tasks_from: config
        public: true
    - name: Save the extras this host would install
      ansible.builtin.copy:
        content: "{{ lb_speaker_extras | to_json }}"
        dest: "{{ lb_speaker_config_dir }}/../extras.json"
        mode: "0644"
      check_mode: false
      changed_when: false
"""


def setup(tmp_path: Path) -> tuple[Path, Path]:
    """The inventory and the playbook; a ``lb-speaker`` that runs this checkout's speaker."""
    venv_bin = tmp_path / "install" / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    wrapper = venv_bin / "lb-speaker"
    # this interpreter's lbspeaker (the speaker venv's; PYTHONPATH, if set, passes through ansible to it)
    wrapper.write_text(
        f"#!/bin/sh\nexec {sys.executable} -c 'import sys; from lbspeaker.cli import main; sys.exit(main())' \"$@\"\n"
    )
    wrapper.chmod(0o755)
    kubeconfig = tmp_path / "control-node" / "speaker.kubeconfig"
    kubeconfig.parent.mkdir()
    kubeconfig.write_text(yaml.safe_dump(KUBECONFIG))
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(ANSIBLE_BIN / "python"),
        "lb_interfaces": ["lo"],
    }
    inventory = {
        "all": {
            "vars": {
                "lb_membership_secret": "s" * 32,
                "lb_kubeconfig": str(kubeconfig),
                "lb_pools": POOLS,
                "lb_l2_advertisements": L2,
                "lb_bgp_advertisements": BGP,
                "lb_bgp_peers": PEERS,
                "lb_bgp_asn": 64501,
                "lb_speaker_install_dir": str(tmp_path / "install"),
                "lb_speaker_user": "nobody",
                "lb_speaker_group": "nogroup",
                "lb_speaker_service_state": "stopped",
            },
            "children": {
                "lb_speakers": {
                    "hosts": {
                        "node1": {
                            **host,
                            "lb_node_address": "127.0.0.1",
                            "lb_bgp_router_id": "198.51.100.11",
                            "lb_speaker_config_dir": str(tmp_path / "node1" / "etc"),
                        },
                        "edge1": {
                            **host,
                            "lb_node_address": "127.0.0.2",
                            "lb_bgp_router_id": "198.51.100.12",
                            "lb_speaker_config_dir": str(tmp_path / "edge1" / "etc"),
                        },
                    }
                },
                "lb_cluster_nodes": {"hosts": {"node1": {}}},
            },
        }
    }
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "playbook.yml").write_text(PLAYBOOK)
    return tmp_path / "inventory.yml", tmp_path / "playbook.yml"


def play(tmp_path: Path, *extra: str, ok: bool = True) -> tuple[dict[str, int], str]:
    """Run the playbook: ``changed=`` per host from the recap, and the output."""
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / "build" / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_LOCALHOST_WARNING": "false",
    }
    link = REPO / "build" / "collections" / "ansible_collections" / "baremetal" / "lb"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO, target_is_directory=True)
    proc = subprocess.run(
        [
            str(ANSIBLE_BIN / "ansible-playbook"),
            "-i",
            str(tmp_path / "inventory.yml"),
            str(tmp_path / "playbook.yml"),
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    out = proc.stdout + proc.stderr
    if not ok:
        assert proc.returncode != 0, out[-3000:]
        return {}, out
    assert proc.returncode == 0, out[-5000:]
    changed = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", out, re.M)
    }
    assert set(changed) == {"node1", "edge1"}, out[-2000:]
    return changed, out


def rendered(tmp_path: Path, host: str) -> speaker_config.Config:
    return speaker_config.load(str(tmp_path / host / "etc" / "speaker.yaml"), check_interfaces=False)


def handlers(out: str) -> set[str]:
    return set(re.findall(r"^RUNNING HANDLER \[baremetal\.lb\.speaker : ([^\]]+)\]", out, re.M))


def changed_tasks(out: str, host: str) -> list[str]:
    """The tasks that reported ``changed`` for ``host``."""
    found, task = [], ""
    for line in out.splitlines():
        head = re.match(r"^TASK \[(?:baremetal\.lb\.speaker : )?(.*)\]", line)
        if head:
            task = head.group(1)
        elif re.match(rf"^changed: \[{re.escape(host)}\]", line):
            found.append(task)
    return found


def test_a_cluster_node_gets_the_kubernetes_section_and_a_second_run_changes_nothing(tmp_path: Path) -> None:
    setup(tmp_path)
    first, out = play(tmp_path)
    assert first["node1"] > 0 and first["edge1"] > 0

    node1 = rendered(tmp_path, "node1")
    assert node1.kubernetes is not None
    kubeconfig = tmp_path / "node1" / "etc" / "speaker.kubeconfig"
    assert node1.kubernetes.access == speaker_config.KubernetesAccess(kubeconfig=str(kubeconfig))
    assert node1.kubernetes.node_name == "node1"  # lb_kubernetes_node_name: lb_node_name by default
    assert [p.name for p in node1.kubernetes.pools] == ["lan", "routed"]
    assert (node1.kubernetes.load_balancer_class, node1.kubernetes.serve_unclassed) == ("baremetal.lb/speaker", True)
    assert [(a.mode, a.pools, a.nodes) for a in node1.kubernetes.advertisements] == [
        ("l2", ("lan",), ()),
        ("bgp", ("routed",), ("node1",)),
    ]
    # its BGP advertisement needs the peers: the bgp section comes with it, without any static BGP service
    assert node1.bgp is not None and [str(p.address) for p in node1.bgp.peers] == ["198.51.100.1"]
    # no route policy of its own: the speaker applies the pool's advertisement (peers, communities) to the
    # cluster's Services itself (tests/kubernetes/test_speaker_cluster_bgp.py sees them at BIRD)
    assert node1.bgp.advertisements == ()
    (bgp_ad,) = [a for a in node1.kubernetes.advertisements if a.mode == "bgp"]
    assert (bgp_ad.peers, bgp_ad.communities) == (("tor",), ("64500:100",)), bgp_ad
    assert node1.services == ()

    # the kubeconfig, decrypted and copied as given, readable by the speaker's user only
    assert yaml.safe_load(kubeconfig.read_text()) == KUBECONFIG
    info = kubeconfig.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == pwd.getpwnam("nobody").pw_uid
    assert "tok-role-test-not-a-secret" not in out  # never logged

    edge1 = rendered(tmp_path, "edge1")
    assert edge1.kubernetes is None and edge1.bgp is None
    assert not (tmp_path / "edge1" / "etc" / "speaker.kubeconfig").exists()

    # the kubernetes client goes to the cluster node only
    assert yaml.safe_load((tmp_path / "node1" / "extras.json").read_text()) == ["kubernetes"]
    assert yaml.safe_load((tmp_path / "edge1" / "extras.json").read_text()) == []

    again, out = play(tmp_path, "--check", "--diff")
    assert again == {"node1": 0, "edge1": 0}, changed_tasks(out, "node1") + changed_tasks(out, "edge1")


def test_a_changed_kubernetes_section_restarts_other_changes_reload(tmp_path: Path) -> None:
    setup(tmp_path)
    play(tmp_path)
    # another pool: node1's kubernetes section changes (edge1 follows no cluster: nothing changes there)
    more_pools = [*POOLS, {"name": "extra", "addresses": ["203.0.113.176/28"]}]
    _changed, out = play(tmp_path, "-e", json.dumps({"lb_pools": more_pools}))
    assert changed_tasks(out, "node1") == [
        "Render the configuration, checked by lb-speaker before it replaces the old one",
        "Restart rather than reload when the kubernetes section changed",
    ]
    assert changed_tasks(out, "edge1") == []
    assert {"Restart lb-speaker", "Reload lb-speaker"} <= handlers(out)  # restart first; it skips the reload
    assert [p.name for p in rendered(tmp_path, "node1").kubernetes.pools] == ["lan", "routed", "extra"]  # type: ignore[union-attr]

    # a membership setting (the pools as before) changes both configurations but no kubernetes section:
    # a reload, no restart
    _changed, out = play(tmp_path, "-e", json.dumps({"lb_pools": more_pools, "lb_speaker_membership_interval_ms": 100}))
    for host in ("node1", "edge1"):
        assert changed_tasks(out, host) == [
            "Render the configuration, checked by lb-speaker before it replaces the old one"
        ]
    assert handlers(out) == {"Reload lb-speaker"}


def test_a_missing_kubeconfig_is_named(tmp_path: Path) -> None:
    setup(tmp_path)
    missing = tmp_path / "nowhere.kubeconfig"
    _changed, out = play(tmp_path, "-e", f"lb_speaker_kubeconfig={missing}", ok=False)
    assert (
        f"lb_speaker_kubeconfig: lb-speaker on node1 needs a kubeconfig file on the control node "
        f"(plain or ansible-vault encrypted; got {missing})"
    ) in re.sub(r"\s+", " ", out)
    assert not (tmp_path / "node1" / "etc").exists()  # preflight stopped it before anything was written


def two_racks(tmp_path: Path) -> None:
    """Both hosts cluster nodes, each in its rack with its own router (a peer with ``nodes``), and one BGP
    advertisement without ``nodes`` naming both routers; a static BGP service as site.yml resolves it, too."""
    setup(tmp_path)
    path = tmp_path / "inventory.yml"
    inventory = yaml.safe_load(path.read_text())
    inventory["all"]["vars"].update({
        "lb_bgp_peers": [
            {"name": "tor-a", "address": "198.51.100.1", "asn": 64500, "nodes": ["node1"]},
            {"name": "tor-b", "address": "198.51.100.2", "asn": 64500, "nodes": ["edge1"]},
        ],
        "lb_bgp_advertisements": [{"pools": ["routed"], "peers": ["tor-a", "tor-b"], "communities": ["64500:100"]}],
        # what lb_announcements gives for a static service of pool routed under that advertisement
        "lb_speaker_services": [{"name": "demo/web", "addresses": ["203.0.113.161"], "mode": "bgp",
                                 "external_traffic_policy": "Cluster", "nodes": []}],
        "lb_speaker_bgp_advertisements": [{"services": ["demo/web"], "peers": ["tor-a", "tor-b"],
                                           "communities": ["64500:100"], "nodes": []}],
    })
    inventory["all"]["children"]["lb_cluster_nodes"]["hosts"]["edge1"] = {}
    path.write_text(yaml.safe_dump(inventory))


def test_an_advertisement_naming_each_racks_peer_goes_to_each_nodes_own(tmp_path: Path) -> None:
    """MetalLB's peers with node selectors: each node announces to its own rack's router, and passes the check."""
    two_racks(tmp_path)
    play(tmp_path)  # edge1's lb-speaker check refused tor-a ("names no configured peer")
    route = ipaddress.ip_address("203.0.113.161")
    for host, own in (("node1", "tor-a"), ("edge1", "tor-b")):
        cfg = rendered(tmp_path, host)
        assert cfg.bgp is not None and [p.key for p in cfg.bgp.peers] == [own]
        (static,) = cfg.bgp.advertisements
        assert static.peers == (own,)
        assert cfg.kubernetes is not None
        (cluster_ad,) = [a for a in cfg.kubernetes.advertisements if a.mode == "bgp"]
        assert cluster_ad.peers == ("tor-a", "tor-b")  # the cluster's, the same on every node
        for announcement in (Announcement("demo/web", route),
                             Announcement("demo/svc", route, advertisements=(route_advertisement(cluster_ad),))):
            sent = {p.key: list(routes_for_peer(cfg.bgp, p, [announcement])) for p in cfg.bgp.peers}
            assert {k: [str(n) for n in v] for k, v in sent.items()} == {own: ["203.0.113.161/32"]}


def test_a_peer_that_is_nobodys_is_named_with_its_variable(tmp_path: Path) -> None:
    two_racks(tmp_path)
    ads = [{"pools": ["routed"], "peers": ["tor-a", "spine"]}]
    _changed, out = play(tmp_path, "-e", json.dumps({"lb_bgp_advertisements": ads}), ok=False)
    assert "lb_bgp_advertisements[0].peers[1]: is not a peer in lb_bgp_peers (by name or address) (got 'spine')" in (
        re.sub(r"\s+", " ", out))


def test_a_cluster_node_covered_by_a_bgp_advertisement_needs_lb_bgp_asn_at_preflight(tmp_path: Path) -> None:
    """No static BGP service, but the cluster's BGP advertisement brings node1 a bgp section: its AS number is
    checked before anything is installed, naming the variable (not bgp.asn at "Render the configuration")."""
    setup(tmp_path)
    path = tmp_path / "inventory.yml"
    inventory = yaml.safe_load(path.read_text())
    del inventory["all"]["vars"]["lb_bgp_asn"]  # the role's default, 0
    path.write_text(yaml.safe_dump(inventory))
    _changed, out = play(tmp_path, ok=False)
    check = re.search(r"^TASK \[baremetal\.lb\.speaker : Check the BGP settings.*?(?=^TASK )", out, re.M | re.S)
    assert check is not None, out[-3000:]
    # edge1 follows no cluster and announces nothing over BGP: no AS number needed there
    assert "fatal: [node1]" in check.group(0) and "skipping: [edge1]" in check.group(0), check.group(0)
    assert (
        "lb_bgp_asn / lb_bgp_router_id: needed on node1 because a BGP advertisement of the cluster "
        "(lb_bgp_advertisements) covers it, with its peers (lb_bgp_peers) (got lb_bgp_asn=0, "
        "lb_bgp_router_id=198.51.100.11)"
    ) in re.sub(r"\s+", " ", check.group(0))
    assert "bgp.asn" not in out
    assert not (tmp_path / "node1" / "etc").exists()  # preflight stopped it before anything was written
