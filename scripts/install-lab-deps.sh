#!/bin/sh
# Debian packages the lab (make demo) and the Molecule scenarios (make molecule)
# need on the control node: podman and runc for the hosts, debootstrap for their
# image. Molecule's first step is destroy, which calls podman, so this runs
# before Molecule does. Idempotent: installs only what is missing.
set -eu
sh "$(dirname "$0")/../speaker/scripts/install-debs.sh" install-lab-deps podman runc debootstrap
