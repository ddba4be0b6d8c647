"""One core for both sides: the speaker's wheel carries plugins/module_utils as lbspeaker.core.

The wheel is built here as the role builds it (``pip wheel speaker/``), and
the speaker inside it reads the configurations that ``site.yml`` works out
from the README's inventory.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from ansible_collections.baremetal.lb.plugins.module_utils.announcements import node_config

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "plugins" / "module_utils"
SPEAKER_SRC = ROOT / "speaker" / "src" / "lbspeaker"


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The speaker's wheel, built from the checkout and unpacked as site-packages would hold it."""
    out = tmp_path_factory.mktemp("wheel")
    # a copy of the collection's layout (speaker/ beside plugins/), so that setuptools' build/ and
    # egg-info land there and not in the checkout
    tree = out / "collection"
    shutil.copytree(ROOT / "speaker", tree / "speaker", symlinks=True,
                    ignore=shutil.ignore_patterns(".venv", "build", "*.egg-info", "tests", "__pycache__"))
    shutil.copytree(CORE, tree / "plugins" / "module_utils", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--wheel-dir", str(out), str(tree / "speaker")],
        check=True, timeout=600, env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"},
    )
    (wheel,) = out.glob("lbspeaker-*.whl")
    site = out / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def in_wheel(site: Path, code: str, *args: str) -> str:
    """Run ``code`` with only the wheel's lbspeaker importable (not the checkout's)."""
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONSAFEPATH": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120, check=False,
        cwd=site,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_wheel_carries_the_core_byte_for_byte(wheel_site: Path) -> None:
    ours = {p.name: p.read_bytes() for p in CORE.glob("*.py")}
    packed = {p.name: p.read_bytes() for p in (wheel_site / "lbspeaker" / "core").glob("*.py")}
    assert packed == ours
    out = in_wheel(
        wheel_site,
        "import lbspeaker.core.allocator as a, lbspeaker.config as c, lbspeaker.core.service as s;"
        "print(a.__file__); print(c.TRAFFIC_POLICIES is s.TRAFFIC_POLICIES)",
    )
    path, same = out.split()
    assert Path(path).is_relative_to(wheel_site) and same == "True"


def test_the_wheel_carries_every_module_of_the_speaker(wheel_site: Path) -> None:
    """Every module of the checkout is in the wheel, and the daemon imports from the wheel alone:
    a package missing from pyproject's list (lbspeaker.decisions once) passed every test run from the
    checkout and failed only where the role installs the wheel."""
    src = ROOT / "speaker" / "src" / "lbspeaker"
    ours = {p.relative_to(src).as_posix() for p in src.rglob("*.py") if "core" not in p.relative_to(src).parts[:1]}
    packed = {p.relative_to(wheel_site / "lbspeaker").as_posix() for p in (wheel_site / "lbspeaker").rglob("*.py")
              if "core" not in p.relative_to(wheel_site / "lbspeaker").parts[:1]}
    assert ours - packed == set()
    modules = sorted(p.removesuffix(".py").replace("/", ".").removesuffix(".__init__") for p in ours)
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module('lbspeaker.' + m)"
    in_wheel(wheel_site, code, *[m for m in modules if m != "__init__" and not m.endswith("__main__")
                                 and not m.startswith(("sources", "controller.kube"))])


def _core_definitions() -> set[str]:
    """Constants (UPPER_CASE) and classes the core defines at module level."""
    names: set[str] = set()
    for path in CORE.glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                names.add(node.name)
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            names.update(t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper())
    return names


def test_the_speaker_defines_no_rule_or_model_of_the_core_again() -> None:
    """A rule constant or a model class of the core, defined again on the speaker side, fails here."""
    core = _core_definitions()
    assert {"MIN_SECRET_BYTES", "TRAFFIC_POLICIES", "ServicePort", "HealthCheck", "Backend", "Service"} <= core
    again = []
    for path in SPEAKER_SRC.rglob("*.py"):
        if "core" in path.relative_to(SPEAKER_SRC).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name in core:
                again.append(f"{path.relative_to(ROOT)}:{node.lineno} class {node.name}")
            if isinstance(node, ast.Assign):
                again += [
                    f"{path.relative_to(ROOT)}:{node.lineno} {t.id}"
                    for t in node.targets if isinstance(t, ast.Name) and t.id in core
                ]
    assert again == []


def test_the_speaker_limits_are_the_cores(wheel_site: Path) -> None:
    """A short secret and a long BGP password are refused by the speaker with the core's words."""
    code = """
import sys, yaml
from lbspeaker import config
doc = {"node": "n1", "nodes": [{"name": "n1", "address": "198.51.100.11"}], "interfaces": ["eth0"],
       "membership": {"secret": "short"}, "services": []}
for secret, extra in (("short", {}), ("x" * 32, {"bgp": {"asn": 64501, "router_id": "198.51.100.11",
        "peers": [{"address": "198.51.100.1", "asn": 64500, "password": "p" * 81}]}})):
    try:
        config.parse({**doc, "membership": {"secret": secret}, **extra}, check_interfaces=False)
    except config.ConfigError as exc:
        print(exc.field, "|", exc.message)
"""
    lines = in_wheel(wheel_site, code).splitlines()
    assert lines == [
        "membership.secret | must be at least 32 bytes (got 5)",
        "bgp.peers[0].password | must be a string of 1 to 80 bytes (TCP-MD5)",
    ]


def readme_inventory(tmp: Path) -> Path:
    """The README's group_vars/all.yml, with three hosts and the vault values filled in."""
    text = (ROOT / "README.md").read_text()
    block = text.split("# group_vars/all.yml (complete example", 1)[1].split("```", 1)[0]
    group_vars = yaml.safe_load(block.split("\n", 1)[1])
    group_vars |= {
        "vault_lb_membership_secret": "readme-inventory-test-secret-0123456789abcdef",
        "vault_lb_bgp_password": "readme-test",
    }
    hosts = {
        f"lb-{x}.example.net": {"lb_node_address": f"198.51.100.{11 + i}", "lb_interfaces": ["bond0"]}
        for i, x in enumerate("abc")
    }
    inventory = {
        "all": {
            "hosts": {"localhost": {"ansible_connection": "local",
                                    "ansible_python_interpreter": "{{ ansible_playbook_python }}"}},
            "children": {"lb_speakers": {"hosts": hosts}},
            "vars": group_vars,
        }
    }
    path = tmp / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


def test_site_gives_each_speaker_the_data_plane_written_in_the_inventory(tmp_path: Path, wheel_site: Path) -> None:
    """README inventory -> site.yml's plan -> each node's config (as the role renders it) -> the wheel's parser."""
    inventory = readme_inventory(tmp_path)
    plan_file = tmp_path / "plan.json"
    playbook = tmp_path / "site.yml"
    playbook.write_text(f"""
- ansible.builtin.import_playbook: {ROOT / "playbooks" / "site.yml"}

- name: Save the announcement plan for the test
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Save it
      ansible.builtin.copy:
        content: "{{{{ lb_announcement_plan | to_json }}}}"
        dest: {plan_file}
        mode: "0600"
""")
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
           "ANSIBLE_HOME": str(tmp_path / "ansible-home"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp")}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-i", str(inventory),
         "-e", f"lb_ledger={tmp_path / 'ledger.sqlite3'}", "--limit", "localhost"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    plan = json.loads(plan_file.read_text())
    group_vars = yaml.safe_load(inventory.read_text())["all"]
    hosts = group_vars["children"]["lb_speakers"]["hosts"]
    settings = group_vars["vars"]
    nodes = [{"name": name, "address": h["lb_node_address"]} for name, h in hosts.items()]
    password = settings["vault_lb_bgp_password"]
    configs = {
        name: node_config(name, nodes, {
            "interfaces": h["lb_interfaces"],
            "membership": {"secret": settings["vault_lb_membership_secret"]},
            "status": {"address": "127.0.0.1", "port": 7473},
            "services": plan["services"],
            "bgp_advertisements": plan["bgp_advertisements"],
            "bgp_asn": settings["lb_bgp_asn"],
            "bgp_router_id": h["lb_node_address"],
            "bgp_peers": [{**p, "password": password} for p in settings["lb_bgp_peers"]],
        })
        for name, h in hosts.items()
    }
    code = """
import json, sys
from lbspeaker import config
for name, doc in json.loads(sys.argv[1]).items():
    cfg = config.parse(doc, check_interfaces=False)
    for s in cfg.services:
        print(json.dumps({"node": name, "service": s.name, "mode": s.mode, "policy": s.external_traffic_policy,
                          "health": s.health_check.url if s.health_check else None,
                          "interfaces": list(s.interfaces),
                          "ports": [str(p) for p in s.ports],
                          "backends": [(b.node, str(b.address), b.port) for b in s.backends]}))
    if cfg.bgp is not None:
        print(json.dumps({"node": name, "communities": [list(a.communities) for a in cfg.bgp.advertisements]}))
"""
    seen = [json.loads(line) for line in in_wheel(wheel_site, code, json.dumps(configs)).splitlines()]
    services = {(x["node"], x["service"]): x for x in seen if "service" in x}
    for node in hosts:
        web = services[(node, "shop/web")]
        assert (web["mode"], web["policy"]) == ("bgp", "Local")
        assert web["health"] == "http://127.0.0.1:8443/healthz"
        api = services[(node, "default/api")]  # no namespace in the inventory
        assert (api["mode"], api["policy"], api["interfaces"]) == ("l2", "Cluster", ["bond0"])
        assert api["ports"] == ["8080/tcp"]
        assert api["backends"] == [["lb-a.example.net", "198.51.100.11", 8080]]
        assert services[(node, "infra/dns-udp")]["mode"] == "l2"
    communities = [x["communities"] for x in seen if "communities" in x]
    assert len(communities) == 3 and all(c == [[0xFBF40064]] for c in communities)  # 64500:100
