import sys
from pathlib import Path

import pytest
from prerequisites import require

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="module")
def netns_requirements():
    """For the files that build namespaces: root, ip, nft and sysctl, or the test fails."""
    require("ip", "nft", "sysctl", install="install-forwarding-deps.sh")
