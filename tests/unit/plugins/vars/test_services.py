# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The services vars plugin: lb_services from NAME.lb_services.yml as plain data, bad files named with field and value."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ansible.errors import AnsibleParserError
from ansible.inventory.group import Group
from ansible.inventory.host import Host
from ansible_collections.baremetal.lb.plugins.vars import services as plugin

WEB = "lb_services:\n  - {namespace: shop, name: web, ports: [{port: 443, protocol: TCP}]}\n"
API = "lb_services:\n  - namespace: shop\n    name: api\n    sharing_key: edge\n"


def write(inventory: Path, relative: str, text: str) -> Path:
    path = inventory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def get_vars(inventory: Path, *entities: object) -> dict[str, object]:
    return plugin.VarsModule().get_vars(None, str(inventory), list(entities))


def test_a_hosts_file_sets_its_lb_services_as_plain_data(tmp_path: Path) -> None:
    write(tmp_path, "host_vars/ctl1.lb_services.yml", WEB)
    found = get_vars(tmp_path, Host("ctl1"))
    assert found == {"lb_services": [{"namespace": "shop", "name": "web", "ports": [{"port": 443, "protocol": "TCP"}]}]}
    service = found["lb_services"][0]  # type: ignore[index]
    assert service["name"].__class__ is str and service["ports"][0]["port"].__class__ is int  # no data tags
    assert get_vars(tmp_path, Host("other")) == {}


def test_a_groups_file_applies_and_the_hosts_own_file_replaces_it(tmp_path: Path) -> None:
    write(tmp_path, "group_vars/lb.lb_services.yaml", API)
    write(tmp_path, "host_vars/ctl1.lb_services.yml", WEB)
    # Ansible passes the groups first, then the host
    assert get_vars(tmp_path, Group("lb"))["lb_services"] == [
        {"namespace": "shop", "name": "api", "sharing_key": "edge"}
    ]
    assert get_vars(tmp_path, Group("lb"), Host("ctl1"))["lb_services"][0]["name"] == "web"  # type: ignore[index]


def test_an_inventory_file_path_looks_beside_it(tmp_path: Path) -> None:
    write(tmp_path, "host_vars/ctl1.lb_services.yml", WEB)
    hosts = write(tmp_path, "hosts", "ctl1\n")
    assert get_vars(hosts, Host("ctl1"))["lb_services"][0]["name"] == "web"  # type: ignore[index]


def test_an_edited_file_is_read_again(tmp_path: Path) -> None:
    path = write(tmp_path, "host_vars/ctl1.lb_services.yml", WEB)
    assert get_vars(tmp_path, Host("ctl1"))["lb_services"][0]["name"] == "web"  # type: ignore[index]
    path.write_text(API)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert get_vars(tmp_path, Host("ctl1"))["lb_services"][0]["name"] == "api"  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- name: web\n", "(the file): must be a mapping with the one key lb_services (got [{'name': 'web'}])"),
        ("lb_servics: []\n", "lb_servics: unknown key 'lb_servics' (did you mean 'lb_services'?)"),
        ("lb_services: {name: web}\n", "lb_services: must be a list of services (got {'name': 'web'})"),
        ("lb_services:\n  - web\n", "lb_services[0]: must be a mapping (a service) (got 'web')"),
        (
            "lb_services:\n  - {name: web}\n  - {name: api, prots: [80]}\n",
            "lb_services[1].prots: unknown key 'prots' (did you mean 'ports'?)",
        ),
        (
            "lb_services:\n  - {name: web, labels: {since: 2024-01-31}}\n",
            "lb_services[0].labels.since: is not plain data",
        ),
        ("lb_services:\n  - {name: web, ports: [.nan]}\n", "lb_services[0].ports[0]: is not plain data"),
        ("lb_services:\n  - {name: web, labels: {1: a}}\n", "lb_services[0].labels.1: is not plain data"),
        ("lb_services:\n  - {name: web, labels: !unsafe {a: b}}\n", "cannot read it as YAML"),
        ("lb_services:\n  - {name: web\n", "cannot read it as YAML"),
    ],
)
def test_a_bad_file_is_named_with_the_field_and_value(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, "host_vars/ctl1.lb_services.yml", text)
    with pytest.raises(AnsibleParserError) as error:
        get_vars(tmp_path, Host("ctl1"))
    message = str(error.value)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_a_yaml_error_gives_the_line(tmp_path: Path) -> None:
    write(tmp_path, "host_vars/ctl1.lb_services.yml", "lb_services:\n  - {name: web}\n  - {name: api\n")
    with pytest.raises(AnsibleParserError, match=r"line [34]"):
        get_vars(tmp_path, Host("ctl1"))


def test_a_json_file_is_read_as_json(tmp_path: Path) -> None:
    write(tmp_path, "host_vars/ctl1.lb_services.json", '{"lb_services": [{"name": "web", "labels": {"tier": "edge"}}]}')
    assert get_vars(tmp_path, Host("ctl1")) == {"lb_services": [{"name": "web", "labels": {"tier": "edge"}}]}
    write(tmp_path, "host_vars/ctl2.lb_services.json", '{"lb_services": [{"name": "web", "prots": [80]}]}')
    with pytest.raises(AnsibleParserError, match=r"ctl2\.lb_services\.json: lb_services\[0\]\.prots: unknown key"):
        get_vars(tmp_path, Host("ctl2"))


@pytest.mark.parametrize(("first", "second"), [(".yml", ".json"), (".yml", ".yaml"), (".yaml", ".json")])
def test_two_files_for_one_name_are_refused_naming_both(tmp_path: Path, first: str, second: str) -> None:
    one = write(tmp_path, f"host_vars/ctl1.lb_services{first}", WEB)
    other = write(tmp_path, f"host_vars/ctl1.lb_services{second}", '{"lb_services": []}' if second == ".json" else API)
    with pytest.raises(AnsibleParserError) as error:
        get_vars(tmp_path, Host("ctl1"))
    message = str(error.value)
    assert str(one) in message and str(other) in message
    assert "only one" in message


def test_a_file_removed_after_it_was_found_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = tmp_path / "host_vars" / "ctl1.lb_services.yml"
    gone.parent.mkdir(parents=True)
    real_isfile = os.path.isfile
    # as if the file was there when looked for and removed before it was read
    monkeypatch.setattr(plugin.os.path, "isfile", lambda path: path == str(gone) or real_isfile(path))
    with pytest.raises(AnsibleParserError) as error:
        get_vars(tmp_path, Host("ctl1"))
    message = str(error.value)
    assert message.startswith(f"{gone}: cannot read it: ")
    assert "No such file" in message
