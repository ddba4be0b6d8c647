#!/bin/sh
# promtool from Debian's prometheus package, for `make rules-test` (promtool test rules on the
# alert rules the role ships). Idempotent: installs only what is missing. Debian's postinst may
# enable a prometheus service on :9090; the tests neither use nor stop it.
set -eu
sh "$(dirname "$0")/../speaker/scripts/install-debs.sh" install-prometheus-deps prometheus
command -v promtool >/dev/null || { echo "install-prometheus-deps: promtool not found after install" >&2; exit 1; }
