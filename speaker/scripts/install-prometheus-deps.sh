#!/bin/sh
# promtool from Debian's prometheus package: the alert rules' tests (the collection's make rules-test,
# and tests/l2/test_l2_alerts.py, which evaluates the rules on what it scraped from the speakers).
# Idempotent. Debian's postinst may enable a prometheus service on :9090; the tests neither use nor stop it.
set -eu
sh "$(dirname "$0")/install-debs.sh" install-prometheus-deps prometheus
command -v promtool >/dev/null || { echo "install-prometheus-deps: promtool not found after install" >&2; exit 1; }
