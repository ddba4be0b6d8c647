# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugin copies plain service lists and leaves anything template-like to Ansible."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from ansible_collections.baremetal.lb.plugins.action import allocate as allocate_action
from ansible_collections.baremetal.lb.plugins.action.allocate import ActionModule, NeedsTemplating, plain_data

try:
    from ansible._internal._templating._engine import TemplateEngine
    from ansible.template import trust_as_template
except ImportError:  # ansible-core < 2.19 does not call finalize_task_arg
    TemplateEngine = None

needs_finalize = pytest.mark.skipif(TemplateEngine is None, reason="ansible-core 2.19+ calls finalize_task_arg")

SERVICES = [
    {"namespace": "shop", "name": "web", "ports": [{"port": 443, "protocol": "TCP"}], "labels": {}},
    {"namespace": "shop", "name": "api", "sharing_key": None, "load_balancer_ips": ["203.0.113.7"]},
]


def test_plain_data_copies_json_types():
    copy = plain_data(SERVICES)
    assert copy == SERVICES
    assert copy is not SERVICES and copy[0] is not SERVICES[0]


@pytest.mark.parametrize(
    "value",
    [
        [{"name": "{{ name }}"}],
        [{"name": "web", "ports": [{"port": "{{ port }}"}]}],
        [{"labels": {"{% if x %}a{% endif %}": "b"}}],
        [{"name": "{# comment #}web"}],
        ["#jinja2: variable_start_string:'[[' \n[[ x ]]"],
        [{"ports": ({"port": 1},)}],  # a tuple is not plain JSON data
        [{"name": object()}],
        [{"labels": {1: "a"}}],  # JSON would write the key as "1"
        [{"ports": [{"port": float("nan")}]}],
    ],
)
def test_plain_data_refuses_anything_template_like(value):
    with pytest.raises(NeedsTemplating):
        plain_data(value)


def engine(variables):
    return TemplateEngine(variables=variables)


def trusted(value):
    return trust_as_template(value)


@needs_finalize
def test_finalize_copies_a_plain_list_as_builtin_types():
    templar = engine({"lb_services": SERVICES})
    value = ActionModule.finalize_task_arg("services", trusted("{{ lb_services }}"), templar, None)
    assert value == SERVICES
    assert value[0]["name"].__class__ is str  # no data tags left


@needs_finalize
def test_finalize_renders_templates_inside_services():
    services = [{"namespace": trusted("{{ team }}"), "name": "web", "ports": [{"port": trusted("{{ port }}")}]}]
    templar = engine({"lb_services": services, "team": "shop", "port": 8080})
    value = ActionModule.finalize_task_arg("services", trusted("{{ lb_services }}"), templar, None)
    assert value == [{"namespace": "shop", "name": "web", "ports": [{"port": 8080}]}]


@needs_finalize
def test_finalize_templates_other_arguments_as_usual():
    templar = engine({"path": "/tmp/ledger"})
    assert ActionModule.finalize_task_arg("ledger", trusted("{{ path }}"), templar, None) == "/tmp/ledger"


class Shell:
    @staticmethod
    def env_prefix(**environment):
        return " ".join(f"{k}={v}" for k, v in environment.items())


class Templar:
    @staticmethod
    def template(value):
        return value


def plugin(transport="local", become=False, async_val=0, environment=None, args=None, check_mode=False, diff=False):
    """An ActionModule with only what runs_on_controller and run_in_process read."""
    action = ActionModule.__new__(ActionModule)
    action._connection = SimpleNamespace(transport=transport, _shell=Shell())
    action._play_context = SimpleNamespace(become=become)
    action._task = SimpleNamespace(
        async_val=async_val,
        environment=environment if environment is not None else [{}],
        args=args or {},
        action="baremetal.lb.allocate",
        check_mode=check_mode,
        diff=diff,
    )
    action._templar = Templar()
    return action


def test_in_process_only_on_the_control_node_as_the_module_would_run():
    assert plugin().runs_on_controller()
    assert not plugin(transport="ssh").runs_on_controller()
    assert not plugin(become=True).runs_on_controller()  # another user: the module, run by become
    assert not plugin(async_val=30).runs_on_controller()
    assert not plugin(environment=[{}, {"PGPASSFILE": "/run/pgpass"}]).runs_on_controller()


def test_in_process_gives_the_module_result(tmp_path):
    ledger = str(tmp_path / "ledger.sqlite3")
    args = {"ledger": ledger, "pools": [{"name": "lan", "addresses": ["198.51.100.7/32"]}], "services": SERVICES}
    predicted = plugin(args=args, check_mode=True, diff=True).run_in_process()
    assert predicted is not None and predicted["changed"] is True
    assert not (tmp_path / "ledger.sqlite3").exists()
    assert set(predicted) == {"invocation", "changed", "pools", "allocations", "failures", "diff", "failed", "msg"}
    assert predicted["msg"].startswith("1 service(s) could not be allocated (shop/api)")


def test_in_process_argument_errors_are_ansibles(tmp_path):
    result = plugin(args={"services": [], "fail_on_error": "maybe"}).run_in_process()
    assert result is not None and result["failed"] is True
    assert result["msg"].startswith("argument 'fail_on_error' is of type str and we were unable to convert to bool")
    result = plugin(args={"services": [], "servics": []}).run_in_process()
    assert result is not None
    assert result["msg"].startswith("Unsupported parameters for (baremetal.lb.allocate) module: servics.")
    result = plugin(args={"ledger": str(tmp_path / "l.sqlite3")}).run_in_process()
    assert result is not None and result["msg"] == "missing required arguments: services"
    # services that are not a list of mappings are Ansible's to convert or refuse, as for the module
    result = plugin(args={"services": "shop/web"}).run_in_process()
    assert result is not None and result["failed"] is True
    refused = "Elements value for option 'services' is of type str and we were unable to convert to dict"
    assert result["msg"].startswith(refused)
    result = plugin(args={"services": [{"name": "web"}, "shop/api"]}).run_in_process()
    assert result is not None and result["failed"] is True
    assert result["msg"].startswith(refused)


def test_in_process_services_reach_the_core_as_given(tmp_path, monkeypatch):
    seen = {}

    def run_allocate(params, check_mode, diff):
        seen["services"] = params["services"]
        return {"changed": False}

    monkeypatch.setattr(allocate_action, "run_allocate", run_allocate)
    services = [{"namespace": "shop", "name": "web"}]
    assert plugin(args={"ledger": str(tmp_path / "l.sqlite3"), "services": services}).run_in_process() == {
        "changed": False
    }
    assert seen["services"] == [{"namespace": "shop", "name": "web"}]


def test_in_process_masks_secrets(tmp_path):
    kubeconfig = {"users": [{"name": "u", "user": {"token": "tok-secret"}}], "clusters": [], "contexts": []}
    args = {"ledger": str(tmp_path / "l.sqlite3"), "services": [], "kubeconfig": kubeconfig, "ledger_password": "pw-x"}
    result = plugin(args=args).run_in_process()
    assert result is not None and result["failed"] is True and result["field"] == "kubeconfig"
    shown = repr(result)
    assert "tok-secret" not in shown and "pw-x" not in shown
    assert (
        result["invocation"]["module_args"]["kubeconfig"]["users"][0]["user"]["token"]
        == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    )  # as AnsibleModule masks it


def test_a_library_missing_here_leaves_it_to_the_module(monkeypatch):
    monkeypatch.setattr(allocate_action, "missing_library", lambda params: ("psycopg", "ImportError"))
    assert plugin(args={"ledger": "postgresql://db.example/lb", "services": []}).run_in_process() is None
