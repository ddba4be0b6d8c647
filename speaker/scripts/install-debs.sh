#!/bin/sh
# install-debs.sh WHO PACKAGE...: install the Debian packages that are missing.
# Idempotent: installs only what is missing, and runs `apt-get update` only if
# that install fails (a fresh machine's package lists may be stale or empty).
# WHO names the caller in its messages. Called by the install-*-deps.sh scripts
# here and by the collection's scripts/install-lab-deps.sh.
set -eu
who=$1
shift
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "$who: all present ($*)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "$who: missing$missing; run as root (apt-get install$missing)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends $missing || {
    apt-get update
    apt-get install -y --no-install-recommends $missing
}
echo "$who: installed$missing"
