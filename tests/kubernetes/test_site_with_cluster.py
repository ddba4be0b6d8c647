"""site.yml with lb_kubeconfig against the real control plane: apply, wait for ingress, idempotence, check mode.

It also applies the speakers' RBAC (roles/speaker/files/kubernetes/speaker-rbac.yml): the
ServiceAccount may do what the speaker's code calls (asked of the apiserver with ``kubectl auth
can-i``, and done for real with a token of that account through the speaker's own client) and no more.

ansible-playbook from the collection's venv (with kubernetes.core unpacked into build/collections by
``make kubernetes-core``) runs the production playbook with an inventory of the control node only:
the ledger allocates, service_manifest renders, kubernetes.core applies, and the controller in the
cluster (started here with the same pools) gives each Service the address the ledger pinned.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import POOLS, Namespace
from lbspeaker.config import KubernetesAccess
from lbspeaker.controller.kube import ENDPOINT_SLICES, NODES, SERVICES, ApiError, Kube

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(os.environ.get("LB_ANSIBLE_BIN", REPO / ".venv" / "bin")) / "ansible-playbook"
COLLECTIONS = REPO / "build" / "collections"
SPEAKER_ACCOUNT = ("baremetal-lb", "baremetal-lb-speaker")
# (verb, resource, subresource): each a call of sources/cluster.py or sources/announcing.py
SPEAKER_MAY = [
    ("get", "services", ""), ("list", "services", ""), ("watch", "services", ""), ("patch", "services", ""),
    ("list", "endpointslices.discovery.k8s.io", ""), ("watch", "endpointslices.discovery.k8s.io", ""),
    ("list", "nodes", ""), ("watch", "nodes", ""),
    ("create", "events", ""),
]
SPEAKER_MAY_NOT = [
    ("delete", "services", ""), ("create", "services", ""), ("update", "services", ""),
    ("patch", "services", "status"), ("update", "services", "status"),
    ("get", "endpointslices.discovery.k8s.io", ""), ("patch", "endpointslices.discovery.k8s.io", ""),
    ("get", "nodes", ""), ("patch", "nodes", ""), ("delete", "nodes", ""),
    ("patch", "events", ""), ("delete", "events", ""), ("list", "events", ""),
    ("get", "secrets", ""), ("list", "secrets", ""), ("create", "pods", ""),
    ("create", "leases.coordination.k8s.io", ""), ("update", "leases.coordination.k8s.io", ""),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", ""),
]


def site(inventory: Path, *extra: str) -> tuple[int, str]:
    """Run site.yml: the control node's ``changed=`` count from the recap, and the output."""
    if not (COLLECTIONS / "ansible_collections" / "kubernetes" / "core").exists():
        pytest.fail(f"kubernetes.core is not in {COLLECTIONS}: run make kubernetes-core")
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(REPO / "playbooks" / "site.yml"), *extra],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    recap = re.search(r"^localhost\s+: ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", proc.stdout, re.M)
    assert recap, proc.stdout[-2000:]
    return int(recap.group(1)), proc.stdout


def inventory(tmp_path: Path, namespace: str, kubeconfig: Path) -> Path:
    path = tmp_path / "inventory.yml"
    python = str(REPO / ".venv" / "bin" / "python")
    path.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": python}}, "vars": {
        "lb_ledger": str(tmp_path / "ledger.sqlite3"),
        "lb_manifest_dir": str(tmp_path / "manifests"),
        "lb_kubeconfig": str(kubeconfig),
        "lb_membership_secret": "x" * 32,
        "lb_pools": POOLS,
        "lb_services": [
            {"namespace": namespace, "name": "web", "ports": [{"port": 80}]},
            {"namespace": namespace, "name": "dual", "ports": [{"port": 443}],
             "ip_family_policy": "RequireDualStack"},
            # a namespace that does not exist yet: site.yml makes it (helm --create-namespace's way)
            {"namespace": f"{namespace}-made", "name": "api", "ports": [{"port": 8443}]},
        ],
    }}}))
    return path


def test_site_applies_waits_for_ingress_and_a_second_run_changes_nothing(
        ns: Namespace, start_controller: Any, cluster: Any, tmp_path: Path) -> None:
    start_controller()
    inv = inventory(tmp_path, ns.name, cluster.kubeconfig)
    made = f"{ns.name}-made"
    try:
        check_apply_and_rerun(ns, cluster, tmp_path, inv, made)
    finally:
        cluster.kubectl("delete", "namespace", made, "--ignore-not-found", "--wait=false", check=False)


def check_apply_and_rerun(ns: Namespace, cluster: Any, tmp_path: Path, inv: Path, made: str) -> None:
    predicted, out = site(inv, "--check", "--diff")
    assert predicted > 0
    assert "198.51.100.100" in out  # the diff shows the address the first run gives
    assert not (tmp_path / "ledger.sqlite3").exists()  # check mode wrote nothing
    services, _version = ns.api.list_services()
    assert [o["metadata"]["name"] for o in services if o["metadata"]["namespace"] == ns.name] == []  # nor applied
    assert cluster.kubectl("get", "namespace", made, check=False).returncode != 0  # nor a namespace made

    first, _out = site(inv)
    assert first > 0
    assert ns.ingress("web") == ["198.51.100.100"]
    assert ns.ingress("dual") == ["198.51.100.101", "2001:db8:1::100"]
    assert ns.pool("web") == "default"
    made_api = yaml.safe_load(cluster.kubectl("-n", made, "get", "service", "api", "-o", "yaml").stdout)
    assert [i["ip"] for i in made_api["status"]["loadBalancer"]["ingress"]] == ["198.51.100.102"]

    second, out = site(inv)
    assert second == 0, re.findall(r"^(?:TASK \[.*|changed: .*)$", out, re.M)

    # the speakers' RBAC came with the first run (and the second changed nothing of it)
    assert speaker_can(cluster, SPEAKER_MAY, ns.name) == dict.fromkeys(SPEAKER_MAY, True)
    assert speaker_can(cluster, SPEAKER_MAY_NOT, ns.name) == dict.fromkeys(SPEAKER_MAY_NOT, False)
    speaker_calls_with_its_token(cluster, tmp_path, ns.name)


def speaker_can(cluster: Any, checks: list[tuple[str, str, str]], namespace: str) -> dict[tuple[str, str, str], bool]:
    """``kubectl auth can-i`` as the speakers' ServiceAccount, asked of the apiserver."""
    found = {}
    for verb, resource, subresource in checks:
        args = ["auth", "can-i", verb, resource, "-n", namespace,
                "--as", "system:serviceaccount:{}:{}".format(*SPEAKER_ACCOUNT)]
        if subresource:
            args.append(f"--subresource={subresource}")
        answer = cluster.kubectl(*args, check=False)
        assert answer.stdout.strip() in ("yes", "no"), answer.stdout + answer.stderr
        found[(verb, resource, subresource)] = answer.stdout.strip() == "yes"
    return found


def speaker_calls_with_its_token(cluster: Any, tmp_path: Path, namespace: str) -> None:
    """The speaker's own client, with a token of the ServiceAccount: every call it makes works, others are refused."""
    path = speaker_kubeconfig(cluster, tmp_path)
    kube = Kube(KubernetesAccess(kubeconfig=str(path)))
    try:
        for collection in (SERVICES, ENDPOINT_SLICES, NODES):  # sources/cluster.py: list, then watch
            _items, version = kube.list_all(collection)
            kube.watch(collection, version, 1).close()
        service = kube.get_service(namespace, "web")  # sources/announcing.py
        key = "announcing.baremetal.lb/rbac-test"
        kube.patch_service(namespace, "web", {"metadata": {"annotations": {key: "{}"}}})
        kube.patch_service(namespace, "web", {"metadata": {"annotations": {key: None}}})
        kube.create_event(service, type_="Normal", reason="nodeAssigned", message="rbac test",
                          component="baremetal-lb-speaker", instance="node1")
        statuses = {
            what: status_of(call) for what, call in (
                ("delete a Service", lambda: kube.request("DELETE", f"/api/v1/namespaces/{namespace}/services/web")),
                ("write a Service's status", lambda: kube.patch_service_status(namespace, "web", {"status": {}})),
                ("list Secrets", lambda: kube.request("GET", f"/api/v1/namespaces/{namespace}/secrets")),
                ("read a Node", lambda: kube.request("GET", "/api/v1/nodes/node1")),
            )
        }
        assert statuses == dict.fromkeys(statuses, 403)  # Forbidden, by RBAC
        assert kube.get_service(namespace, "web")["metadata"]["uid"] == service["metadata"]["uid"]
    finally:
        kube.close()


def status_of(call: Any) -> int:
    """The HTTP status of one API call (200 when it succeeded)."""
    try:
        call()
    except ApiError as exc:
        return exc.status
    return 200


def speaker_kubeconfig(cluster: Any, tmp_path: Path) -> Path:
    """A kubeconfig of the speakers' ServiceAccount, made as docs/kubernetes.md says (kubectl only)."""
    admin = ["kubectl", f"--kubeconfig={cluster.kubeconfig}"]
    path = tmp_path / "lb-speaker.kubeconfig"
    own = ["kubectl", f"--kubeconfig={path}"]

    def run(*argv: str) -> str:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        assert proc.returncode == 0, f"{argv}: {proc.stderr}"
        return proc.stdout

    token = run(*admin, "-n", SPEAKER_ACCOUNT[0], "create", "token", SPEAKER_ACCOUNT[1], "--duration=10m").strip()
    server = run(*admin, "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")
    ca = run(*admin, "config", "view", "--raw", "--minify",
             "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}")
    (tmp_path / "ca.crt").write_bytes(base64.b64decode(ca))
    run(*own, "config", "set-cluster", "cluster", f"--server={server}",
        f"--certificate-authority={tmp_path / 'ca.crt'}", "--embed-certs")
    run(*own, "config", "set-credentials", "lb-speaker", f"--token={token}")
    run(*own, "config", "set-context", "lb-speaker", "--cluster=cluster", "--user=lb-speaker")
    run(*own, "config", "use-context", "lb-speaker")
    users = yaml.safe_load(path.read_text())["users"]
    assert [u["name"] for u in users] == ["lb-speaker"] and set(users[0]["user"]) == {"token"}  # nothing of admin's
    return path
