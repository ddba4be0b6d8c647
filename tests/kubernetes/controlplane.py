"""A real Kubernetes control plane on loopback, for the tests, the benches and ``make cluster``.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are built from
the ``k8s.io/kubernetes`` Go module at the release pinned in ``go/go.mod``
(``scripts/build-cluster.sh``); kwok simulates the nodes and makes pods Ready,
so the real EndpointSlice controller publishes endpoints for them.

Everything listens on 127.0.0.1 on ports chosen free at start; with
``--address ADDR`` the apiserver listens on ADDR instead (only ever an address of
a network namespace or container the caller made, as in Molecule). TLS with a CA
made for the run (``pki`` makes it ahead, where ``up`` runs without openssl);
the client (``admin.kubeconfig``, certificates embedded, so it works anywhere)
authenticates with a client certificate in ``system:masters``. Processes are stopped by the PIDs this module
recorded in ``state.json`` (``stop``), never by name.

    python3 tests/kubernetes/controlplane.py up   [--dir DIR] [--nodes a,b,c] [--pools FILE] [--address ADDR]
    python3 tests/kubernetes/controlplane.py pki  [--dir DIR] [--address ADDR]
    python3 tests/kubernetes/controlplane.py down [--dir DIR]

With ``--pools FILE`` (``lb_pools`` as in an inventory: a YAML list of pools),
``up`` also runs ``lb-speaker controller`` against the control plane, with
those pools; its log is ``controller.log`` in DIR.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BIN = Path(os.environ.get("LB_CLUSTER_BIN") or REPO / "build" / "cluster" / "bin")
DEFAULT_DIR = REPO / "build" / "cluster" / "run"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

# Cluster IPs and pod IPs only ever live in etcd here (no kube-proxy, no CNI),
# but they are documentation ranges all the same.
SERVICE_CIDRS = "203.0.113.0/25,2001:db8:ffff:1::/112"
POD_CIDR = "198.51.100.224/27"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_pki(pki: Path, address: str = "127.0.0.1") -> None:
    """A CA, the apiserver's serving certificate (for ``address`` too), an admin client, the service-account key."""
    pki.mkdir(parents=True, exist_ok=True)
    _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
          "-keyout", "ca.key", "-out", "ca.crt", "-days", "30", "-subj", "/CN=baremetal-lb-test-ca"], pki)
    ext = pki / "apiserver.ext"
    ext.write_text(
        f"subjectAltName=IP:127.0.0.1,IP:{address},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n"
    )
    for name, subj, extfile in (
        ("apiserver", "/CN=kube-apiserver", "apiserver.ext"),
        ("admin", "/O=system:masters/CN=baremetal-lb-admin", None),
    ):
        _run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
              "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj], pki)
        sign = ["openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "30"]
        if extfile:
            sign += ["-extfile", extfile]
        _run(sign, pki)
    _run(["openssl", "genrsa", "-out", "sa.key", "2048"], pki)
    _run(["openssl", "rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"], pki)


def _embedded(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, pki: Path, user: str = "admin") -> None:
    """A kubeconfig with its certificates embedded: it works wherever it is copied (the role copies it)."""
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "baremetal-lb-test",
                              "cluster": {"server": server, "certificate-authority-data": _embedded(pki / "ca.crt")}}],
                "users": [{"name": user, "user": {"client-certificate-data": _embedded(pki / f"{user}.crt"),
                                                  "client-key-data": _embedded(pki / f"{user}.key")}}],
                "contexts": [{"name": "baremetal-lb-test", "context": {"cluster": "baremetal-lb-test", "user": user}}],
                "current-context": "baremetal-lb-test",
            },
            indent=2,
        )
    )


@dataclass
class ControlPlane:
    """One running control plane; ``state.json`` in ``dir`` records its PIDs and ports."""

    dir: Path
    pids: dict[str, int] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    address: str = "127.0.0.1"  # the apiserver's; everything else stays on loopback
    apiserver_argv: list[str] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "admin.kubeconfig"

    @property
    def server(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"https://{host}:{self.ports['apiserver']}"

    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.dir / "pki" / "ca.crt"))
        ctx.load_cert_chain(str(self.dir / "pki" / "admin.crt"), str(self.dir / "pki" / "admin.key"))
        return ctx

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.server + path, context=self._ssl(), timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=self.dir)
        log.close()
        self.pids[name] = proc.pid
        self._save()

    def _save(self) -> None:
        state = {"pids": self.pids, "ports": self.ports, "address": self.address}
        (self.dir / "state.json").write_text(json.dumps(state, indent=2))

    def _alive(self, name: str) -> bool:
        pid = self.pids.get(name)
        if not pid:
            return False
        try:
            waited, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            waited = 0
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return False
        return waited == 0

    def _wait(self, what: str, check: Callable[[], object], timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name in self.pids:
                if not self._alive(name):
                    raise RuntimeError(f"{name} exited while waiting for {what}; see {self.dir / (name + '.log')}")
            with contextlib.suppress(OSError, ssl.SSLError):
                if check():
                    return
            time.sleep(0.2)
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}; logs in {self.dir}")

    def start(self, nodes: tuple[str, ...] = ()) -> ControlPlane:
        missing = [b for b in BINARIES if not (BIN / b).exists()]
        if missing:
            raise RuntimeError(f"missing {', '.join(missing)} in {BIN}: run scripts/build-cluster.sh (make cluster-bins)")
        if (self.dir / "state.json").exists():
            raise RuntimeError(f"{self.dir} holds a running control plane (state.json): stop it first")
        self.dir.mkdir(parents=True, exist_ok=True)
        pki = self.dir / "pki"
        if not (pki / "ca.crt").exists():  # else made ahead by `pki` for this address
            make_pki(pki, self.address)
        self.ports = {n: free_port() for n in ("etcd", "etcd-peer", "apiserver", "kcm", "scheduler", "kwok")}
        etcd = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        try:
            self._spawn("etcd", [str(BIN / "etcd"), "--name", "lbtest", "--data-dir", str(self.dir / "etcd"),
                                 "--listen-client-urls", etcd, "--advertise-client-urls", etcd,
                                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                 "--initial-cluster", f"lbtest={peer}", "--unsafe-no-fsync",
                                 "--log-level", "warn"])
            self._wait("etcd", lambda: urllib.request.urlopen(etcd + "/health", timeout=2).status == 200)
            self.apiserver_argv = [
                str(BIN / "kube-apiserver"),
                f"--etcd-servers={etcd}",
                f"--bind-address={self.address}", f"--advertise-address={self.address}",
                f"--secure-port={self.ports['apiserver']}",
                f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDRS}",
                "--authorization-mode=Node,RBAC",
                "--endpoint-reconciler-type=none",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=0",
            ]
            self._spawn("kube-apiserver", self.apiserver_argv)
            self._wait("kube-apiserver /readyz", lambda: self.get("/readyz", 2)[0] == 200)
            write_kubeconfig(self.kubeconfig, self.server, pki)
            kc = f"--kubeconfig={self.kubeconfig}"
            self._spawn("kube-controller-manager", [
                str(BIN / "kube-controller-manager"), kc,
                f"--authentication-kubeconfig={self.kubeconfig}", f"--authorization-kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1", f"--secure-port={self.ports['kcm']}",
                "--leader-elect=false", "--use-service-account-credentials=false",
                f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
                f"--service-cluster-ip-range={SERVICE_CIDRS}",
                "--node-monitor-grace-period=20s",
                "--profiling=false",
            ])
            self._spawn("kube-scheduler", [
                str(BIN / "kube-scheduler"), kc,
                f"--authentication-kubeconfig={self.kubeconfig}", f"--authorization-kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1", f"--secure-port={self.ports['scheduler']}",
                "--leader-elect=false", "--profiling=false",
            ])
            self._spawn("kwok", [
                str(BIN / "kwok"), kc, f"--config={HERE / 'kwok-stages.yaml'}",
                "--node-lease-duration-seconds=40",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                f"--cidr={POD_CIDR}",
                f"--server-address=127.0.0.1:{self.ports['kwok']}",
            ])
            # the default ServiceAccount is what pods need before they are admitted
            self._wait("the default ServiceAccount",
                       lambda: self.get("/api/v1/namespaces/default/serviceaccounts/default", 2)[0] == 200)
            for node in nodes:
                self.add_node(node)
        except BaseException:
            self.stop()
            raise
        return self

    def restart_apiserver(self, while_down: Callable[[], object] | None = None) -> None:
        """Stop kube-apiserver (by its PID), run ``while_down``, start it again on the same port, wait for /readyz.

        Clients see their connections cut and refused, then an apiserver whose watch cache starts afresh
        from etcd, as after an upgrade or a crash.
        """
        if not self.apiserver_argv:
            raise RuntimeError("restart_apiserver: this control plane was not started here (no command line)")
        stop_pid(self.pids.pop("kube-apiserver"))
        if while_down is not None:
            while_down()
        self._spawn("kube-apiserver", self.apiserver_argv)
        self._wait("kube-apiserver /readyz after a restart", lambda: self.get("/readyz", 2)[0] == 200)

    def etcd(self, method: str, body: dict[str, object]) -> dict[str, object]:
        """One call of etcd's v3 JSON gateway (``/v3/kv/range``, ``/v3/kv/compaction``...): keys in base64."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports['etcd']}/v3/{method}",
                                         data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            doc: dict[str, object] = json.loads(resp.read())
        return doc

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["kubectl", f"--kubeconfig={self.kubeconfig}", *args], input=input, text=True,
                              capture_output=True, check=check, timeout=60)

    def add_node(self, name: str, labels: dict[str, str] | None = None, addresses: tuple[str, ...] = ()) -> None:
        """A kwok node: kwok keeps it Ready (heartbeats, a Lease) and runs the pods bound to it.

        ``addresses`` become its InternalIPs (the lab's node addresses), as a kubelet registers them.
        """
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "annotations": {KWOK_NODE_ANNOTATION: "fake"},
                         "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                    "type": "kwok", **(labels or {})}},
            "spec": {},
        }
        if addresses:
            node["status"] = {"addresses": [{"type": "InternalIP", "address": a} for a in addresses]
                              + [{"type": "Hostname", "address": name}]}
        self.kubectl("create", "-f", "-", input=json.dumps(node))

        def ready() -> bool:
            out = self.kubectl("get", "node", name, "-o", "json", check=False)
            if out.returncode:
                return False
            conds = json.loads(out.stdout).get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

        self._wait(f"node {name} Ready", ready, timeout=60)

    def start_controller(self, pools_file: Path, lb_speaker: Path) -> Path:
        """``lb-speaker controller`` against this control plane with the pools in ``pools_file``."""
        config = self.dir / "controller.yaml"
        pools = pools_file.read_text()
        self.ports["controller"] = free_port()
        doc = {
            "kubernetes": {"kubeconfig": str(self.kubeconfig)},
            "pools": _yaml_list(pools, pools_file),
            "status": {"address": "127.0.0.1", "port": self.ports["controller"]},
        }
        config.write_text(f"# written by controlplane.py up --pools {pools_file} (JSON is YAML)\n{json.dumps(doc)}\n")
        check = subprocess.run([str(lb_speaker), "check", "--config", str(config)], capture_output=True, text=True,
                               check=False, timeout=60)
        if check.returncode:
            raise RuntimeError(f"{pools_file}: {check.stderr.strip() or check.stdout.strip()}")
        self._spawn("controller", [str(lb_speaker), "controller", "--config", str(config)])
        url = f"http://127.0.0.1:{self.ports['controller']}/healthz"
        self._wait("the controller's /healthz", lambda: urllib.request.urlopen(url, timeout=2).status == 200)
        return config

    def stop(self) -> None:
        for name in reversed(list(self.pids)):
            stop_pid(self.pids[name])
        self.pids.clear()
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "state.json").unlink()

    @classmethod
    def load(cls, directory: Path) -> ControlPlane:
        state = json.loads((directory / "state.json").read_text())
        return cls(dir=directory, pids=state["pids"], ports=state["ports"], address=state.get("address", "127.0.0.1"))


def _yaml_list(text: str, path: Path) -> list[object]:
    import yaml  # noqa: PLC0415 - only `up --pools` needs it (the speaker's venv has it)

    data = yaml.safe_load(text)
    if not isinstance(data, list):
        raise RuntimeError(f"{path}: must be a YAML list of pools (lb_pools), got {type(data).__name__}")
    return data


def stop_pid(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM, wait, SIGKILL: only the process this module started (its session)."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
                if done:
                    return
            except ChildProcessError:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("action", choices=("up", "pki", "down"))
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    p.add_argument("--nodes", default="", help="comma-separated kwok node names")
    p.add_argument("--pools", type=Path, help="lb_pools as YAML: also run the controller with them")
    p.add_argument("--lb-speaker", type=Path, default=REPO / "speaker" / ".venv" / "bin" / "lb-speaker")
    p.add_argument("--address", default="127.0.0.1",
                   help="the apiserver's address: loopback, or one of a namespace or container you made")
    args = p.parse_args(argv)
    if args.action == "pki":
        make_pki(args.dir / "pki", args.address)
        print(f"PKI for {args.address} in {args.dir / 'pki'}")
        return 0
    if args.action == "down":
        if not (args.dir / "state.json").exists():
            print(f"no control plane recorded in {args.dir}")
            return 0
        ControlPlane.load(args.dir).stop()
        shutil.rmtree(args.dir, ignore_errors=True)
        print(f"stopped the control plane in {args.dir}")
        return 0
    cp = ControlPlane(args.dir, address=args.address).start(tuple(n for n in args.nodes.split(",") if n))
    try:
        controller = cp.start_controller(args.pools, args.lb_speaker) if args.pools else None
    except BaseException:
        cp.stop()
        raise
    print(f"control plane up: {cp.server}\nkubeconfig: {cp.kubeconfig}")
    if controller:
        print(f"controller: {controller} (pools from {args.pools}), log {cp.dir / 'controller.log'}, "
              f"metrics http://127.0.0.1:{cp.ports['controller']}/metrics")
    print(f"try: kubectl --kubeconfig {cp.kubeconfig} get nodes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
