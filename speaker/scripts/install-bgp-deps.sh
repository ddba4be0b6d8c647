#!/bin/sh
# Install the BGP routers the speaker's BGP interop tests run against. Idempotent.
set -eu
sh "$(dirname "$0")/install-debs.sh" install-bgp-deps bird2 frr gobgpd iproute2 nftables procps

# The packages start their daemons in the root namespace; the tests start their
# own in namespaces, so stop and disable the system ones if systemd runs them.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    for unit in bird frr gobgpd; do
        systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
fi
