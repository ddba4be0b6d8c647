# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for baremetal.lb.allocate: the allocation in-process on the control node, cheap templating.

In-process. When the task runs on the control node itself (the ``local`` connection: ``hosts:
localhost`` or ``delegate_to: localhost``, as ``playbooks/site.yml`` runs it), without ``become``,
``async`` or a task ``environment``, the plugin validates the options against the module's own
argument spec (``ArgumentSpecValidator``, what ``AnsibleModule`` runs) and calls the module's own
function, :func:`run_allocate`, here in Ansible's worker process. That skips building the AnsiballZ
payload, starting a Python process, sending it the services as JSON, validating them again there,
and parsing its JSON result (docs/allocation.md, "Scale"). The result is the module's: same keys,
same errors and messages, check mode and diff from the task, secrets masked with Ansible's own
``remove_values``. Anything else - another connection, ``become``, ``async``, an ``environment``,
a library (psycopg, kubernetes) this Python lacks - runs the module, as before.

Templating. On ansible-core 2.19 and later, templating ``services: "{{ lb_services }}"`` renders
every value of every service through the template engine and returns a copy with a data tag (the
file and line it came from) on every string; the worker then sends the task's fields, arguments
included, back to the controller pickled with those tags. For 10,000 services that was 3.5 s of
templating and 8 MB, 8 s of pickling and unpickling on a busy 2-core machine. Here ``services``
and ``pools`` are resolved to their container, and when nothing inside can be a template (no
``{{``, ``{%``, ``{#`` or ``#jinja2:`` in any string, only JSON types) the value is copied as plain
Python data. Anything else - a template inside a service, a vaulted value, an omit - goes through
Ansible's own templating as before. Before 2.19 ansible-core does not call ``finalize_task_arg``
and the task is templated as usual.
"""

from __future__ import annotations

import json
import typing as t

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.module_utils.errors import UnsupportedError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.baremetal.lb.plugins.module_utils.allocate_task import (
    ALLOCATE_OPTIONS,
    invocation,
    missing_library,
    run_allocate,
    secrets,
)

display = Display()

# The arguments that can hold thousands of entries.
LARGE_ARGS = frozenset({"services", "pools"})

# A string with any of these might be a template (a superset of what Jinja and Ansible treat as one).
TEMPLATE_MARKS = ("{{", "{%", "{#")
OVERRIDE_HEADER = "#jinja2:"


class NeedsTemplating(Exception):
    """The value holds something only Ansible's templating handles correctly."""


def plain_data(value: t.Any) -> t.Any:
    """A copy of ``value`` in built-in types without data tags; NeedsTemplating if it may hold a template.

    Through JSON, in C: ``json.dumps`` writes a tagged ``str``, ``int`` or ``float`` as its plain value
    and refuses any other type (a vaulted value, ``omit``). A template mark in any string, key or
    value, is in that text as written (JSON escapes no brace or hash, and never writes one brace
    after another outside a string). The copy must equal the original: a tuple, or a key that is
    not a string, would come back changed. For 10,000 services this took 0.05 s where a walk in
    Python over every value took 0.3 s.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        raise NeedsTemplating from None
    if OVERRIDE_HEADER in text or any(mark in text for mark in TEMPLATE_MARKS):
        raise NeedsTemplating
    copy = json.loads(text)
    if copy != value:
        raise NeedsTemplating
    return copy


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
        result: dict[str, t.Any] = super().run(tmp, task_vars)
        del tmp
        if self.runs_on_controller():
            in_process = self.run_in_process()
            if in_process is not None:
                host = (task_vars or {}).get("inventory_hostname")
                display.vvv("baremetal.lb.allocate: ran in-process on the control node", host=host)
                result.update(in_process)
                return result
        # what ansible.builtin.normal does for a module without an action plugin of its own
        wrap_async = self._task.async_val and not self._connection.has_native_async
        result.update(self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def runs_on_controller(self) -> bool:
        """Whether the module would run here, as this user, with this process's environment."""
        if self._connection.transport != "local" or self._play_context.become or self._task.async_val:
            return False
        environment: dict[str, t.Any] = {}
        self._compute_environment_string(environment)  # the task's and its parents' environment, templated
        return not environment

    def run_in_process(self) -> dict[str, t.Any] | None:
        """The module's result, computed here; None when only the module can do it (a library missing here)."""
        args = dict(self._task.args)
        # The spec asks services to be a list of mappings and no more (the core parses each one, once,
        # naming the field: services[3].ports[0].port). ArgumentSpecValidator deep-copies every
        # argument first, 0.2 s for 10,000 services: a list that is already what the spec asks is set
        # aside and validated here; anything else is Ansible's to convert or refuse, with its message.
        services = args.get("services")
        checked_services = isinstance(services, list) and all(isinstance(s, dict) for s in services)
        if checked_services:
            args["services"] = []
        validation = ArgumentSpecValidator(ALLOCATE_OPTIONS).validate(args)
        params: dict[str, t.Any] = validation.validated_parameters
        if checked_services:
            params["services"] = services
        no_log_values: set[str] = set(validation._no_log_values)
        try:
            error = validation.errors[0]
        except IndexError:
            error = None
        if error is not None:
            # AnsibleModule's own message for the same arguments, and it fails even in check mode
            msg = validation.errors.msg
            if isinstance(error, UnsupportedError):
                msg = f"Unsupported parameters for ({self._task.action}) module: {msg}"
            params.setdefault("services", None)
            failed = {"failed": True, "msg": msg, "invocation": invocation(params)}
            return remove_values(failed, no_log_values) if no_log_values else failed
        no_log_values |= secrets(params)
        missing = missing_library(params)
        if missing is not None:
            # the module's interpreter may have it (ansible_python_interpreter); it says so if not
            display.vvv(f"allocate: {missing_required_lib(missing[0])}; running the module")
            return None
        outcome = run_allocate(params, check_mode=bool(self._task.check_mode), diff=bool(self._task.diff))
        # AnsibleModule masks every result; without a secret there is nothing to mask, and that walk
        # over 10,000 allocations is skipped
        return remove_values(outcome, no_log_values) if no_log_values else outcome
