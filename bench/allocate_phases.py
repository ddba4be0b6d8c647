"""Run ansible-playbook with wall-clock timers around the phases of one task.

Used by bench/allocate (``BENCH_PHASES=1``) to say where the time of an
``allocate`` task goes on the user's path; not a test. Usage:

    python allocate_phases.py LOG ansible-playbook-arguments...

Each timed call appends ``phase seconds`` to LOG, from the controller and
from the worker process Ansible forks for the task; bench/allocate sums them
per phase. A call nested in another timed call is counted in both.
"""

from __future__ import annotations

import functools
import multiprocessing.queues
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

from ansible.cli.playbook import main as playbook_main
from ansible.executor.task_executor import TaskExecutor
from ansible.executor.task_queue_manager import TaskQueueManager
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.task import Task
from ansible.plugins.action import ActionBase
from ansible.plugins.strategy import StrategyBase
from ansible.vars.manager import VariableManager

LOG = sys.argv[1]


def _record(phase: str, seconds: float) -> None:
    with open(LOG, "a", encoding="utf-8") as log:
        log.write(f"{phase} {seconds:.6f} {os.getpid()}\n")


def timed(owner: Any, name: str, phase: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            _record(phase, time.perf_counter() - start)

    setattr(owner, name, wrapper)


def timed_pickler() -> None:
    """The result crosses from the worker to the controller pickled on a multiprocessing queue."""
    base = multiprocessing.queues._ForkingPickler  # type: ignore[attr-defined]

    class TimedPickler(base):  # type: ignore[misc,valid-type]
        @classmethod
        def dumps(cls, obj: Any, protocol: Any = None) -> Any:
            start = time.perf_counter()
            try:
                return base.dumps(obj, protocol)
            finally:
                _record("pickle result (worker)", time.perf_counter() - start)

    def loads(data: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return base.loads(data, *args, **kwargs)
        finally:
            _record("unpickle result (controller)", time.perf_counter() - start)

    TimedPickler.loads = staticmethod(loads)
    multiprocessing.queues._ForkingPickler = TimedPickler  # type: ignore[attr-defined]


def main() -> int:
    timed(DataLoader, "load_from_file", "parse vars/playbook files (controller)")
    timed(Task, "post_validate", "template task args (worker)")
    timed(ActionBase, "_configure_module", "build AnsiballZ payload (worker)")
    timed(ActionBase, "_low_level_execute_command", "run module process (worker)")
    timed(ActionBase, "_parse_returned_data", "parse module JSON (worker)")
    timed(TaskExecutor, "run", "task executor total (worker)")
    timed(StrategyBase, "_process_pending_results", "process results, callbacks, register (controller)")
    timed(VariableManager, "set_nonpersistent_facts", "register (controller)")
    timed(TaskQueueManager, "send_callback", "callbacks (controller)")
    timed_pickler()
    sys.argv = ["ansible-playbook", *sys.argv[2:]]
    try:
        return playbook_main()
    finally:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        _record("controller peak RSS MiB", usage.ru_maxrss / 1024)


if __name__ == "__main__":
    sys.exit(main())
