"""The API client sends the credentials a kubeconfig gives: a ServiceAccount's token must reach the apiserver.

Here and not in the speaker's unit tests: it needs the kubernetes client (make kubernetes-test installs it).

The ``kubernetes`` client (>= 30) keeps a kubeconfig's or the in-cluster token under ``BearerToken``;
asking it for ``authorization`` only gave nothing, and every request went out anonymous.
"""

from pathlib import Path

import yaml
from lbspeaker.config import KubernetesAccess
from lbspeaker.controller.kube import Kube


def kubeconfig(path: Path, user: dict[str, str]) -> str:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    return str(path)


def test_a_token_goes_out_as_a_bearer_header(tmp_path: Path) -> None:
    kube = Kube(KubernetesAccess(kubeconfig=kubeconfig(tmp_path / "k", {"token": "tok-speaker-1"})))
    try:
        assert kube._headers()["Authorization"] == "Bearer tok-speaker-1"
    finally:
        kube.close()


def test_a_username_and_password_go_out_as_basic_auth(tmp_path: Path) -> None:
    kube = Kube(KubernetesAccess(kubeconfig=kubeconfig(tmp_path / "k", {"username": "x", "password": "y"})))
    try:
        assert kube._headers()["Authorization"] == "Basic eDp5"  # base64("x:y")
    finally:
        kube.close()
