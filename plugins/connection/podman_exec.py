# Copyright: baremetal.lb developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# ruff: noqa: E402 - DOCUMENTATION comes first in Ansible plugins
from __future__ import annotations

DOCUMENTATION = r"""
name: podman_exec
short_description: Run tasks in local podman containers with C(podman exec)
description:
  - Runs commands in a running podman container on the control node with C(podman exec),
    and moves files in and out through the command's standard input and output.
  - Made for the lab (C(make demo)) and the Molecule scenarios of this collection, whose hosts
    are podman containers with systemd as PID 1. Works as root only (rootful podman).
  - Needs no collection from Galaxy (C(containers.podman) provides a fuller plugin).
author: baremetal.lb developers (@baremetal-lb)
version_added: 0.1.0
options:
  remote_addr:
    description: The container's name.
    default: inventory_hostname
    type: str
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_podman_host
  podman_executable:
    description: The podman command.
    default: podman
    type: str
    vars:
      - name: ansible_podman_executable
  containers_conf:
    description:
      - Path of a C(containers.conf) to use (exported as E(CONTAINERS_CONF) to podman).
      - Empty keeps podman's own choice.
    default: ''
    type: str
    vars:
      - name: ansible_podman_containers_conf
    env:
      - name: CONTAINERS_CONF
"""

import os
import shlex
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_native
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

# A file transfer is one `podman exec` with the file on stdin or stdout.
TRANSFER_TIMEOUT_S = 300


class Connection(ConnectionBase):
    """Local podman containers through `podman exec`."""

    transport = "baremetal.lb.podman_exec"
    has_pipelining = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._container = None

    def _podman(self, *args):
        return [self.get_option("podman_executable"), *args]

    def _env(self):
        env = dict(os.environ)
        conf = self.get_option("containers_conf")
        if conf:
            env["CONTAINERS_CONF"] = conf
        return env

    def _connect(self):
        if not self._connected:
            self._container = self.get_option("remote_addr")
            result = subprocess.run(
                self._podman("container", "inspect", "--format", "{{.State.Running}}", self._container),
                capture_output=True, env=self._env(), timeout=60, check=False,
            )
            if result.returncode != 0 or result.stdout.strip() != b"true":
                raise AnsibleConnectionFailure(
                    f"podman container {self._container} is not running: {to_native(result.stderr).strip()}"
                )
            display.vvv(f"podman_exec: container {self._container} is running", host=self._container)
            self._connected = True
        return self

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        argv = self._podman("exec", "-i", self._container, "/bin/sh", "-c", cmd)
        display.vvv(f"EXEC {shlex.join(argv)}", host=self._container)
        with subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self._env()
        ) as proc:
            stdout, stderr = proc.communicate(in_data)
        return proc.returncode, stdout, stderr

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        display.vvv(f"PUT {in_path} TO {out_path}", host=self._container)
        if not os.path.exists(to_bytes(in_path, errors="surrogate_or_strict")):
            raise AnsibleError(f"file or module does not exist: {in_path}")
        script = f"cat > {shlex.quote(out_path)}"
        with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as src:
            result = subprocess.run(
                self._podman("exec", "-i", self._container, "/bin/sh", "-c", script),
                stdin=src, capture_output=True, env=self._env(), timeout=TRANSFER_TIMEOUT_S, check=False,
            )
        if result.returncode != 0:
            raise AnsibleError(f"failed to transfer {in_path} to {out_path}: {to_native(result.stderr)}")

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        display.vvv(f"FETCH {in_path} TO {out_path}", host=self._container)
        script = f"cat {shlex.quote(in_path)}"
        with open(to_bytes(out_path, errors="surrogate_or_strict"), "wb") as dst:
            result = subprocess.run(
                self._podman("exec", self._container, "/bin/sh", "-c", script),
                stdout=dst, stderr=subprocess.PIPE, env=self._env(), timeout=TRANSFER_TIMEOUT_S, check=False,
            )
        if result.returncode != 0:
            raise AnsibleError(f"failed to fetch {in_path} to {out_path}: {to_native(result.stderr)}")

    def close(self):
        self._connected = False
