#!/bin/sh
# promtool for `make rules-test` (promtool test rules on the alert rules the role ships): the speaker's
# script, which its own tests use too. Idempotent: installs only what is missing.
set -eu
sh "$(dirname "$0")/../speaker/scripts/install-prometheus-deps.sh"
