import os
import shutil

import pytest
from l2lab import VIP4, VIP6, Lab, stable

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")

VIP_LOCAL4 = "198.51.100.101"
VIP_LOCAL6 = "2001:db8:1::101"
SERVICES = [
    {"name": "default/web", "addresses": [VIP4, VIP6]},
    {
        "name": "default/local",
        "addresses": [VIP_LOCAL4, VIP_LOCAL6],
        "external_traffic_policy": "Local",
        "health_check": {"type": "kube_proxy", "url": "http://127.0.0.1:10256/healthz", "interval_ms": 100},
    },
]


def _need_tools():
    missing = [t for t in ("ip", "nft", "sysctl") if not shutil.which(t)]
    if os.geteuid() != 0 or missing:
        pytest.skip(f"needs root and {missing or 'tools'}")


@pytest.fixture(scope="module")
def lab(request):
    _need_tools()
    lab = Lab()
    request.addfinalizer(lab.destroy)
    lab.create()
    for n in lab.nodes:
        lab.set_healthy(n, True)
    lab.start_backends()
    lab.start_speakers(SERVICES)
    for address in (VIP4, VIP6):
        stable(lab, address)
    return lab
