# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for baremetal.lb.allocate: cheap templating of large service lists.

On ansible-core 2.19 and later, templating ``services: "{{ lb_services }}"`` renders every value of
every service through the template engine and returns a copy with a data tag (the file and line it
came from) on every string; the worker then sends the task's fields, arguments included, back to
the controller pickled with those tags. For 10,000 services that was 3.5 s of templating and 8 MB,
8 s of pickling and unpickling on a busy 2-core machine (docs/allocation.md, "Scale").

Here ``services`` and ``pools`` are resolved to their container, and when nothing inside can be a
template (no ``{{``, ``{%``, ``{#`` or ``#jinja2:`` in any string, only JSON types) the value is
copied as plain Python data. Anything else - a template inside a service, a vaulted value, an omit
- goes through Ansible's own templating as before. Before 2.19 ansible-core does not call
``finalize_task_arg`` and the task is templated as usual. The module runs as it would without this
plugin.
"""

from __future__ import annotations

import typing as t

from ansible.plugins.action import ActionBase

# The arguments that can hold thousands of entries.
LARGE_ARGS = frozenset({"services", "pools"})

# A string with any of these might be a template (a superset of what Jinja and Ansible treat as one).
TEMPLATE_MARKS = ("{{", "{%", "{#")
OVERRIDE_HEADER = "#jinja2:"


class NeedsTemplating(Exception):
    """The value holds something only Ansible's templating handles correctly."""


def plain_data(value: t.Any) -> t.Any:
    """A copy of ``value`` in built-in types without data tags; NeedsTemplating if it may hold a template."""
    if isinstance(value, str):
        if OVERRIDE_HEADER in value or any(mark in value for mark in TEMPLATE_MARKS):
            raise NeedsTemplating
        return str(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {plain_data(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_data(v) for v in value]
    raise NeedsTemplating


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = True

    @classmethod
    def finalize_task_arg(cls, name: str, value: t.Any, templar: t.Any, context: t.Any) -> t.Any:
        if name in LARGE_ARGS:
            try:
                return plain_data(templar.resolve_to_container(value))
            except NeedsTemplating:
                pass
        return super().finalize_task_arg(name, value, templar, context)

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        # what ansible.builtin.normal does for a module without an action plugin of its own
        result: dict[str, t.Any] = super().run(tmp, task_vars)
        del tmp
        wrap_async = self._task.async_val and not self._connection.has_native_async
        result.update(self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
