#!/bin/sh
# Debian packages the standalone forwarding tests and bench/forwarding need. Idempotent.
set -eu
sh "$(dirname "$0")/install-debs.sh" install-forwarding-deps iproute2 nftables procps
