#!/bin/sh
# Debian packages the Layer 2 tests and bench/l2_failover need. Idempotent.
set -eu
sh "$(dirname "$0")/install-debs.sh" install-l2-deps python3-venv make iproute2 nftables keepalived procps
