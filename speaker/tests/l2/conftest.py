import pytest
from l2lab import VIP4, VIP6, Lab, stable
from prerequisites import require

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


@pytest.fixture(scope="module", autouse=True)
def _requirements():
    require("ip", "nft", "sysctl", install="install-l2-deps.sh")


@pytest.fixture(scope="module")
def lab(request, _requirements):
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
