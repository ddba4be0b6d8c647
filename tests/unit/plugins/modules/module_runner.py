# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module's main() in-process and return its exit code and JSON result."""

from __future__ import annotations

import json

import pytest

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    import contextlib
    from unittest import mock

    from ansible.module_utils import basic
    from ansible.module_utils.common.text.converters import to_bytes

    @contextlib.contextmanager  # type: ignore[no-redef]
    def patch_module_args(args=None):
        with mock.patch.object(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}))):
            yield


def run_module(main, args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as info:
        main()
    return info.value.code, json.loads(capsys.readouterr().out)
