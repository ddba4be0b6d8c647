#!/bin/sh
# Debian packages the standalone forwarding tests and bench/forwarding need. Idempotent:
# installs only what is missing, and runs apt-get update only if that install fails.
set -eu
PKGS="iproute2 nftables procps"
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
