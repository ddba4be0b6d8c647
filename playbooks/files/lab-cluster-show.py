#!/usr/bin/env python
"""The lab's cluster, shown as a user of it sees it (docs/lab.md, "The cluster").

On the control node, with the lab's kubeconfig: ``helm upgrade --install`` of the lab's chart
(files/lab-chart: pods on the lab's nodes, host network, port 8080), ``kubectl apply`` of a
Service of each policy in each mode (files/lab-cluster-services.yml), then, per Service: the
address the controller gave it, one request from a client (the LAN client for L2, the remote
client behind the router for BGP) with the backend that answered and the source address it saw,
the nodes ``kubectl describe`` names (the speakers' record and their ``nodeAssigned`` Events), and
for BGP the router's kernel route; for the Cluster ones, 30 requests (which pods answered, what they saw).
Then the Local Services' one pod moves to another node (``helm upgrade --set localNode=...``) while the LAN
client asks every 10 ms, and the same is shown again: the old node withdrew. kube-proxy on each node
forwards; the speakers announce.

    lab-cluster-show.py --kubeconfig FILE --helm BIN --chart DIR --services FILE
                        --client CONTAINER --remote CONTAINER --router CONTAINER
                        --node NAME=ADDRESS [...] --from NODE --to NODE

Prints the report; exits 1 (after the report) when an outcome is not the expected one, each named.
Every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

NAMESPACE = "shop"
RELEASE = "shop"
WAIT_S = 60.0
MOVE_WATCH_S = 12  # the watch across the move
SPREAD = 30  # requests to a Cluster Service, each on a new connection


def _event_time(event: dict) -> str:
    return str(event.get("lastTimestamp") or event.get("eventTime") or "")


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Lab:
    kubeconfig: str
    helm: str
    client: str
    remote: str
    router: str
    nodes: dict[str, str]  # name -> LAN address
    client_address: dict[str, str]  # client container -> its address
    applied: float = 0.0  # time.monotonic() of the step's kubectl apply or helm upgrade
    step: str = "kubectl apply"  # what the answers' delay is counted from ("": not told)
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def run(self, argv: list[str], check: bool = True, input: str | None = None) -> str:
        proc = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=120, check=False)
        if check and proc.returncode:
            raise SystemExit(f"lab-cluster-show: {' '.join(argv)}: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc.stdout

    def kubectl(self, *args: str, check: bool = True) -> str:
        return self.run(["kubectl", f"--kubeconfig={self.kubeconfig}", "-n", NAMESPACE, *args], check=check)

    def say(self, line: str = "") -> None:
        self.lines.append(line)
        print(line, flush=True)

    def expect(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)
            self.say(f"  WRONG: {problem}")

    def service(self, name: str) -> dict:
        return json.loads(self.kubectl("get", "service", name, "-o", "json"))

    def ingress(self, name: str) -> str:
        """The Service's first ingress IP, once the controller wrote it (bounded)."""
        deadline = time.monotonic() + WAIT_S
        while True:
            ingress = self.service(name).get("status", {}).get("loadBalancer", {}).get("ingress", [])
            if ingress:
                return str(ingress[0]["ip"])
            if time.monotonic() > deadline:
                raise SystemExit(f"lab-cluster-show: service {NAMESPACE}/{name} got no address in {WAIT_S:.0f} s")
            time.sleep(0.5)

    def announcers(self, name: str) -> list[str]:
        """The nodes the speakers' record on the Service names (annotation announcing.baremetal.lb/<node>)."""
        annotations = self.service(name)["metadata"].get("annotations", {})
        return sorted(json.loads(v)["node"] for k, v in annotations.items()
                      if k.startswith("announcing.baremetal.lb/"))

    def ask(self, container: str, ip: str) -> tuple[str, str]:
        """One request to ip:80 from a client container: (the backend node that answered, the source it saw)."""
        out = self.run(["podman", "exec", container, "python3", "/usr/local/bin/lab-probe", "get", f"http://{ip}/"],
                       check=False).strip()
        words = out.split()
        return (words[0], words[2]) if len(words) == 3 and words[1] == "saw" else ("", out or "no answer")

    def route(self, ip: str) -> list[str]:
        """The router's kernel next hops to ip/32 (BIRD installs them, ECMP), as node names."""
        doc = json.loads(self.run(["podman", "exec", self.router, "ip", "-j", "route", "show", "exact", f"{ip}/32"])
                         or "[]")
        hops = [h["gateway"] for r in doc for h in r.get("nexthops", [r]) if "gateway" in h]
        by_address = {a: n for n, a in self.nodes.items()}
        return sorted(by_address.get(h, h) for h in hops)

    def describe(self, name: str, since: str) -> list[str]:
        """Who announces, as ``kubectl describe service`` tells it: the record's keys (one per announcing node) from
        its output, and the ``nodeAssigned`` Events it lists, read with ``kubectl get events`` so that only this
        step's are shown (``since``: RFC 3339; earlier runs' Events are left out)."""
        text = self.kubectl("describe", "service", name)
        keys = [ln.split("Annotations:")[-1].strip() for ln in text.splitlines()
                if ln.split("Annotations:")[-1].strip().startswith("announcing.baremetal.lb/")]
        events = json.loads(self.kubectl("get", "events", "-o", "json",
                                         f"--field-selector=involvedObject.name={name},reason=nodeAssigned"))
        messages = [e.get("message", "") for e in sorted(events["items"], key=_event_time)
                    if _event_time(e) >= since]
        return [f"record {k.rstrip(':')}" for k in keys] + [f"Event nodeAssigned: {m}" for m in messages]

    def settle(self, name: str, done: Callable[[list[str]], bool]) -> list[str]:
        """Wait (bounded) until the nodes the record names are ``done``; the nodes it names then."""
        deadline = time.monotonic() + WAIT_S
        while not done(got := self.announcers(name)) and time.monotonic() < deadline:
            time.sleep(0.5)
        return got


def show(lab: Lab, name: str, mode: str, policy: str, local_node: str, *, since: str) -> None:
    ip = lab.ingress(name)
    client = lab.client if mode == "l2" else lab.remote
    # L2: one node, the pod's under Local; BGP: the pod's node under Local, every node under Cluster
    want = [local_node] if policy == "Local" else sorted(lab.nodes) if mode == "bgp" else None
    names = lab.settle(name, (lambda got: got == want) if want else (lambda got: len(got) == 1))
    # the speakers may announce before kube-proxy on the node has the Service's rules (a refused connection
    # meanwhile: the node holds the address, nothing DNATs it yet): the first answer is waited for, bounded
    node, saw = lab.ask(client, ip)
    while not node and time.monotonic() - lab.applied < WAIT_S:
        time.sleep(0.2)
        node, saw = lab.ask(client, ip)
    lab.say(f"{NAMESPACE}/{name}  {ip}  {mode}, {policy}")
    for line in lab.describe(name, since):
        lab.say(f"  kubectl describe: {line}")
    if mode == "bgp":
        hops = lab.route(ip)
        lab.say(f"  router's route to {ip}: via {', '.join(hops) or 'nothing'}")
        lab.expect(hops == want, f"{name}: the router routes {ip} via {hops}, expected {want}")
    who = "LAN client" if mode == "l2" else "remote client"
    after = f"  ({time.monotonic() - lab.applied:.1f} s after {lab.step})" if lab.step else ""
    lab.say(f"  {who} -> {ip}: answered by {node or '-'}, which saw {saw}{after}")
    lab.expect(bool(node), f"{name}: no answer from {ip} ({saw})")
    if mode == "l2":
        lab.expect(len(names) == 1, f"{name}: {len(names)} nodes recorded as announcing {ip} over L2: {names}")
    if policy == "Local":
        lab.expect(names == [local_node], f"{name}: announced by {names}, but its only pod runs on {local_node}")
        lab.expect(node == local_node, f"{name}: answered by {node}, but its only pod runs on {local_node}")
        lab.expect(saw == lab.client_address[client], f"{name}: Local, yet the backend saw {saw}, not the client "
                                                      f"({lab.client_address[client]})")
    else:
        # kube-proxy masquerades what it sends on to another node; a pod on the node that took the packet gets it
        # with the client's address (no postrouting on local delivery)
        lab.expect(saw in (*lab.nodes.values(), lab.client_address[client]),
                   f"{name}: Cluster, yet the backend saw {saw}: neither a node nor the client")
        spread = lab.run(["podman", "exec", client, "python3", "/usr/local/bin/lab-probe", "spread",
                          f"http://{ip}/", str(SPREAD)]).strip()
        lab.say(f"  {SPREAD} requests: {spread.split(': ', 1)[-1]}")
        lab.expect(spread.endswith("; 0 failed"), f"{name}: {spread}")
        answered = spread.split(": ", 1)[-1].split(";")[0]
        lab.expect(all(n in answered for n in lab.nodes),
                   f"{name}: Cluster, yet not every node's pod answered ({answered})")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    for opt in ("--kubeconfig", "--helm", "--chart", "--services", "--client", "--remote", "--router",
                "--client-address", "--remote-address", "--to"):
        p.add_argument(opt, required=True)
    p.add_argument("--from", dest="start", required=True)
    p.add_argument("--node", action="append", default=[], help="NAME=ADDRESS")
    args = p.parse_args(argv)
    lab = Lab(args.kubeconfig, args.helm, args.client, args.remote, args.router,
              dict(n.split("=", 1) for n in args.node),
              {args.client: args.client_address, args.remote: args.remote_address})
    services = [("web", "l2", "Cluster"), ("web-local", "l2", "Local"),
                ("web-bgp", "bgp", "Cluster"), ("web-bgp-local", "bgp", "Local")]

    step = now_rfc3339()
    helm = [args.helm, f"--kubeconfig={args.kubeconfig}", "-n", NAMESPACE]
    lab.run([*helm, "upgrade", "--install", "--create-namespace", "--wait", "--timeout", "60s", RELEASE, args.chart,
             "--set", f"localNode={args.start}"])
    lab.say(f"$ helm upgrade --install -n {NAMESPACE} {RELEASE} files/lab-chart --set localNode={args.start}")
    for line in lab.kubectl("get", "pods", "-o", "wide").splitlines():
        lab.say(f"  {' '.join(line.split()[:1] + line.split()[5:7])}")
    lab.say(f"$ kubectl apply -f files/lab-cluster-services.yml  (Services in {NAMESPACE}, one per mode and policy)")
    lab.run(["kubectl", f"--kubeconfig={args.kubeconfig}", "apply", "-f", args.services])
    lab.applied = time.monotonic()
    lab.say()
    for name, mode, policy in services:
        show(lab, name, mode, policy, args.start, since=step)

    lab.say()
    lab.say(f"$ helm upgrade -n {NAMESPACE} {RELEASE} files/lab-chart --set localNode={args.to}   "
            f"(the Local Services' pod leaves {args.start})")
    step = now_rfc3339()
    local_ip = lab.ingress("web-local")
    # the LAN client asks every 10 ms across the move (lab-probe watch): who answered, and the longest gap
    watch = subprocess.Popen(["podman", "exec", lab.client, "python3", "/usr/local/bin/lab-probe", "watch",
                              f"http://{local_ip}/", str(MOVE_WATCH_S)], stdout=subprocess.PIPE, text=True)
    time.sleep(2.0)  # asking before the move
    lab.run([*helm, "upgrade", "--wait", "--timeout", "60s", RELEASE, args.chart, "--set", f"localNode={args.to}"])
    lab.applied, lab.step = time.monotonic(), ""  # the watch above tells when it answered
    out, _err = watch.communicate(timeout=MOVE_WATCH_S + 60)
    seen = json.loads(out or "{}")
    order = " -> ".join(seen.get("answered_by", [])) or "nobody"
    lab.say(f"  the LAN client, a request every 10 ms to {local_ip} across the move: answered by {order}, "
            f"longest gap {seen.get('outage_s', 0) * 1000:.0f} ms, {seen.get('failed_requests', '-')} failed "
            "(Recreate: the old pod goes before the new one runs)")
    lab.expect(seen.get("answered_by", [])[-1:] == [args.to], f"web-local: across the move answered by {seen}")
    for name, mode, policy in services:
        if policy == "Local":
            show(lab, name, mode, policy, args.to, since=step)
    lab.say()
    lab.say(f"cluster outcomes wrong: {len(lab.problems)}" + (f": {'; '.join(lab.problems)}" if lab.problems else ""))
    return 1 if lab.problems else 0


if __name__ == "__main__":
    sys.exit(main())
