# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugin copies plain service lists and leaves anything template-like to Ansible."""

from __future__ import annotations

import pytest
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
