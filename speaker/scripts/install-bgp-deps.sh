#!/bin/sh
# Install the BGP routers the speaker's BGP interop tests run against.
# Idempotent: installs only what is missing; runs `apt-get update` at most once.
set -eu

PACKAGES="bird2 frr gobgpd iproute2 nftables procps"

missing=""
for pkg in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $pkg"
    fi
done

if [ -z "$missing" ]; then
    echo "install-bgp-deps: all present ($PACKAGES)"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends $missing; then
    apt-get update
    apt-get install -y --no-install-recommends $missing
fi

# The packages start their daemons in the root namespace; the tests start their
# own in namespaces, so stop and disable the system ones if systemd runs them.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    for unit in bird frr gobgpd; do
        systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
fi
echo "install-bgp-deps: installed$missing"
