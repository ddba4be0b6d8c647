#!/bin/sh
# Debian packages the lab (make demo) and the Molecule scenarios (make molecule)
# need on the control node: podman and runc for the hosts, debootstrap for their
# image. Molecule's first step is destroy, which calls podman, so this runs
# before Molecule does. Idempotent: installs only what is missing.
set -eu
PKGS="podman runc debootstrap"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "install-lab-deps: all present ($PKGS)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-lab-deps: missing$missing; run as root (apt-get install$missing)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends $missing || {
    apt-get update
    apt-get install -y --no-install-recommends $missing
}
echo "install-lab-deps: installed$missing"
