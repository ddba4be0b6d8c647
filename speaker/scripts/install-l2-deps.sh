#!/bin/sh
# Debian packages the Layer 2 tests and bench/l2_failover need. Idempotent.
set -eu
PKGS="python3-venv make iproute2 nftables keepalived procps"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends $missing || {
        apt-get update
        apt-get install -y --no-install-recommends $missing
    }
fi
