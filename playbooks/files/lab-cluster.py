#!/usr/bin/env python
"""The lab's Kubernetes control plane, on this control node, and the way its hosts reach it.

``up`` starts (or keeps, when every process of it still runs) the control plane of the tests
(tests/kubernetes/controlplane.py: etcd, kube-apiserver, kube-controller-manager, kube-scheduler
and kwok, on 127.0.0.1) with the lab's nodes registered under their inventory names and LAN
addresses; then a relay (tests/kubernetes/netns_relay.py) that listens on 127.0.0.1 inside each
lab container given, on the apiserver's own port, and forwards to the apiserver here. The
containers' network is podman ``--internal``: this node cannot reach it and it cannot reach this
node, so one kubeconfig (``server: https://127.0.0.1:PORT``) serves ansible-playbook, kubectl and
helm here and the speakers and the controller inside the containers. A container made anew (its
network namespace changed) gets a new relay.

It also applies the speakers' ServiceAccount and RBAC (what site.yml applies again, unchanged) and
writes ``speaker.kubeconfig``: a token of that account (``kubectl create token``), for
``lb_speaker_kubeconfig``.

    lab-cluster.py up   --dir DIR --node NAME=CONTAINER=ADDRESS [--node ...]
    lab-cluster.py down --dir DIR

Prints one JSON line: ``changed``, the kubeconfigs, the apiserver's URL. Processes are stopped by
the PIDs recorded in DIR, never by name.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "kubernetes"))

from controlplane import ControlPlane, stop_pid  # noqa: E402

RBAC = REPO / "roles" / "speaker" / "files" / "kubernetes" / "speaker-rbac.yml"
SPEAKER_ACCOUNT = ("baremetal-lb", "baremetal-lb-speaker")
TOKEN_DURATION = "8760h"
RELAY_START_S = 20.0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def container_netns(container: str) -> tuple[str, int]:
    """The path of a running container's network namespace (through its PID) and the namespace's inode."""
    out = subprocess.run(["podman", "inspect", "--format", "{{.State.Pid}}", container],
                         capture_output=True, text=True, check=False, timeout=60)
    pid = out.stdout.strip()
    if out.returncode or not pid.isdigit() or pid == "0":
        raise SystemExit(f"lab-cluster: container {container} is not running ({out.stderr.strip() or pid})")
    path = f"/proc/{pid}/ns/net"
    return path, os.stat(path).st_ino


def control_plane(directory: Path, nodes: list[tuple[str, str, str]]) -> tuple[ControlPlane, bool]:
    """The running control plane recorded in ``directory``, or a new one with ``nodes``; and whether it is new."""
    if (directory / "state.json").exists():
        cp = ControlPlane.load(directory)
        if all(alive(pid) for pid in cp.pids.values()):
            return cp, False
        cp.stop()  # what is left of it: by the PIDs it recorded
    shutil.rmtree(directory, ignore_errors=True)
    cp = ControlPlane(directory).start()
    try:
        for name, _container, address in nodes:
            cp.add_node(name, addresses=(address,))
    except BaseException:
        cp.stop()
        raise
    return cp, True


def relay(directory: Path, port: int, nodes: list[tuple[str, str, str]]) -> bool:
    """The relay into every container, started anew unless the running one serves these namespaces; whether it was."""
    state_file = directory / "relay.json"
    namespaces = {container: container_netns(container) for _name, container, _address in nodes}
    wanted = {"port": port, "netns": {c: ino for c, (_path, ino) in namespaces.items()}}
    if state_file.exists():
        state = json.loads(state_file.read_text())
        if alive(state["pid"]) and {k: state[k] for k in wanted} == wanted:
            return False
        if alive(state["pid"]):
            stop_pid(state["pid"])
        state_file.unlink()
    log = directory / "relay.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "kubernetes" / "netns_relay.py"), "--target", f"127.0.0.1:{port}",
             *(f"{path}:{port}" for path, _ino in namespaces.values())],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + RELAY_START_S
    while "ready" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise SystemExit(f"lab-cluster: the relay did not start: {log.read_text().strip()[-2000:]}")
        time.sleep(0.1)
    state_file.write_text(json.dumps({"pid": proc.pid, **wanted}))
    return True


def speaker_kubeconfig(cp: ControlPlane, fresh: bool) -> tuple[Path, bool]:
    """The speakers' RBAC applied, and a kubeconfig with a token of their ServiceAccount (kept while the cluster is)."""
    path = cp.dir / "speaker.kubeconfig"
    if path.exists() and not fresh:
        return path, False
    cp.kubectl("apply", "-f", str(RBAC))
    namespace, account = SPEAKER_ACCOUNT
    token = cp.kubectl("-n", namespace, "create", "token", account, f"--duration={TOKEN_DURATION}").stdout.strip()
    admin = json.loads(cp.kubectl("config", "view", "--raw", "-o", "json").stdout)
    cluster = admin["clusters"][0]["cluster"]
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "speaker",
        "clusters": [{"name": "lab", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "speaker", "context": {"cluster": "lab", "user": account}}],
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"# {account} of {namespace}: a token of the speakers' ServiceAccount (lab-cluster.py)\n")
        f.write(json.dumps(doc) + "\n")
    return path, True


def down(directory: Path) -> bool:
    changed = False
    state_file = directory / "relay.json"
    if state_file.exists():
        pid = json.loads(state_file.read_text())["pid"]
        if alive(pid):
            stop_pid(pid)
        changed = True
    if (directory / "state.json").exists():
        ControlPlane.load(directory).stop()
        changed = True
    if directory.exists():
        shutil.rmtree(directory)
        changed = True
    return changed


def parse_node(spec: str) -> tuple[str, str, str]:
    parts = spec.split("=")
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError(f"--node {spec!r}: expected NAME=CONTAINER=ADDRESS")
    return parts[0], parts[1], parts[2]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("action", choices=("up", "down"))
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--node", type=parse_node, action="append", default=[], help="NAME=CONTAINER=ADDRESS")
    args = p.parse_args(argv)
    if args.action == "down":
        print(json.dumps({"changed": down(args.dir)}))
        return 0
    if not args.node:
        p.error("up needs at least one --node")
    args.dir.parent.mkdir(parents=True, exist_ok=True)
    cp, fresh = control_plane(args.dir, args.node)
    relayed = relay(args.dir, cp.ports["apiserver"], args.node)
    speaker, minted = speaker_kubeconfig(cp, fresh)
    print(json.dumps({"changed": fresh or relayed or minted, "apiserver": cp.server, "kubeconfig": str(cp.kubeconfig),
                      "speaker_kubeconfig": str(speaker), "relay": relayed}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
