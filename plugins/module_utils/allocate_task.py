# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``allocate`` task, from validated options to its result: one function for both ways it runs.

The module (``plugins/modules/allocate.py``, its own process) and the action plugin
(``plugins/action/allocate.py``, in Ansible's worker on the control node) both call
:func:`run_allocate` with the options after Ansible's argument validation against
:data:`ALLOCATE_OPTIONS`, and return what it returns: the same result, errors and failure
messages either way. No Ansible import here: the caller does argument validation, ``no_log``
masking (:func:`secrets`) and the missing-library message (:func:`missing_library`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .cluster import CLUSTER_OPTIONS, kubeconfig_secrets
from .errors import InputError, LedgerError
from .ledger import LEDGER_OPTIONS, is_postgresql, open_ledger, passwords
from .operations import allocate_services, ensure_pools

ALLOCATE_OPTIONS: dict[str, dict[str, object]] = {
    **LEDGER_OPTIONS,
    **CLUSTER_OPTIONS,
    # Each service is validated by parse_service, which names the field with its index
    # (services[3].ports[0].port) and costs a fraction of Ansible's per-item suboption
    # validation on batches of 100,000 services. The suboptions are documented in the module.
    "services": {"type": "list", "elements": "dict", "required": True},
    # checked by the core like services, with the same messages as address_pool's
    "pools": {"type": "list", "elements": "dict", "default": []},
    "fail_on_error": {"type": "bool", "default": True},
}

CHECK_MODE_HINT = (
    " (check mode: pools that address_pool tasks of this run would save are not in the ledger yet; "
    "give them to this task's pools option to predict the first run)"
)


def secrets(params: Mapping[str, Any]) -> set[str]:
    """Values to mask in whatever the task returns: passwords in the ledger URL, a kubeconfig's credentials.

    Added to the ``no_log_values`` first thing, so that they are masked even when the task fails
    before it reads the option.
    """
    return passwords(params["ledger"]) | kubeconfig_secrets(params["kubeconfig"])


def missing_library(params: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """The Python library the options need and this interpreter lacks, with its import error; None if none.

    Each library is imported only when the options need it: kubernetes and psycopg took 0.4 s and
    0.2 s to import, on every call, most of which use neither.
    """
    if is_postgresql(params["ledger"]):
        from .ledger_postgresql import HAS_PSYCOPG, PSYCOPG_IMPORT_ERROR  # noqa: PLC0415

        if not HAS_PSYCOPG:
            return "psycopg", PSYCOPG_IMPORT_ERROR
    if params["kubeconfig"]:
        from .cluster_client import HAS_KUBERNETES, KUBERNETES_IMPORT_ERROR  # noqa: PLC0415

        if not HAS_KUBERNETES:
            return "kubernetes", KUBERNETES_IMPORT_ERROR
    return None


def invocation(params: Mapping[str, Any]) -> dict[str, object]:
    """What the result echoes as C(invocation): every option but the services, which are counted.

    AnsibleModule would echo all of them; for 10,000 services that doubled the result Ansible parses,
    scrubs, copies and hands to callbacks (docs/allocation.md, "Scale").
    """
    services = params["services"]
    count = len(services) if isinstance(services, list) else 0
    noun = "service" if count == 1 else "services"
    return {"module_args": {**params, "services": f"{count} {noun} (not echoed back; see allocations and failures)"}}


def run_allocate(params: Mapping[str, Any], check_mode: bool, diff: bool) -> dict[str, Any]:
    """Do the task; its result, with ``failed: True`` and ``msg`` when it fails.

    ``params``: the options as Ansible's validation against :data:`ALLOCATE_OPTIONS` leaves them
    (defaults filled in). In check mode the ledger is read and nothing is written.
    """
    try:
        # before the ledger's transaction: its lock is not held while the API answers
        cluster: list[dict[str, Any]] = []
        if params["kubeconfig"]:
            from .cluster_client import read_services  # noqa: PLC0415 - the kubernetes library, only when needed

            cluster = read_services(params["kubeconfig"], params["context"])
        ledger = open_ledger(params["ledger"], params["ledger_password"])
        with ledger.transaction(dry_run=check_mode) as txn:
            pool_changes = ensure_pools(txn, params["pools"])
            outcome = allocate_services(txn, params["services"], cluster)
    except InputError as exc:
        return {"failed": True, "msg": str(exc), "field": exc.field, "invocation": invocation(params)}
    except LedgerError as exc:
        return {"failed": True, "msg": str(exc), "invocation": invocation(params)}

    result: dict[str, Any] = {
        "invocation": invocation(params),
        "changed": outcome.changed or any(c.changed for c in pool_changes),
        "pools": [{**(c.after or {}), "changed": c.changed} for c in pool_changes],
        "allocations": outcome.allocations,
        "failures": outcome.failures,
    }
    if diff:
        # pools under "pool NAME", services under "NAMESPACE/NAME": a space is in neither kind of name
        before = {f"pool {c.after['name']}": c.before for c in pool_changes if c.changed and c.after}
        after = {f"pool {c.after['name']}": c.after for c in pool_changes if c.changed and c.after}
        result["diff"] = {"before": {**before, **outcome.before}, "after": {**after, **outcome.after}}
    if outcome.failures and params["fail_on_error"]:
        names = ", ".join(f"{f['namespace']}/{f['name']}" for f in outcome.failures)
        first = outcome.failures[0]
        hint = CHECK_MODE_HINT if check_mode and not params["pools"] else ""
        result["failed"] = True
        result["msg"] = (
            f"{len(outcome.failures)} service(s) could not be allocated ({names}); "
            f"first: {first['namespace']}/{first['name']}: {first['reason']}{hint}"
        )
    return result
