# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Vars plugin baremetal.lb.services: lb_services from a YAML file of its own, read as plain data."""

from __future__ import annotations

DOCUMENTATION = r"""
name: services
short_description: Read C(lb_services) from C(host_vars/NAME.lb_services.yml), fast
version_added: 0.1.0
description:
  - Sets the inventory variable C(lb_services) of a host or group from the file
    C(host_vars/HOST.lb_services.yml) or C(group_vars/GROUP.lb_services.yml) (or C(.yaml), C(.json)) beside the
    inventory (and the playbook), the directories ansible.builtin.host_group_vars reads. Only one of the
    three may exist for a host or group; two are refused, naming both.
  - The file is a YAML mapping with the one key C(lb_services), a list of services as
    M(baremetal.lb.allocate) takes them.
  - It is read as plain data, as JSON if it is JSON (Python's C parser), else with PyYAML's safe C
    loader. ansible-core's own loader records the file, line and column of every value, which for
    10,000 services took about 4 s of a playbook run with YAML and 1 s with JSON
    (docs/allocation.md, "Scale").
  - Because the file is plain data, a C({{ template }}) in it is not rendered, vault-encrypted values
    and YAML tags such as C(!unsafe) are refused, and dates must be quoted. Keep such values in the
    ordinary vars files.
  - Checks what it can without costing time, naming the file, the field and the value. The file must be a
    mapping with only C(lb_services), a list of mappings, each with only keys a service has,
    holding only strings, numbers, booleans, nulls, lists and mappings. M(baremetal.lb.allocate) and
    M(baremetal.lb.validate) check the services themselves (C(services[3].ports[0].port) is
    C(lb_services[3]) of the file, when the task is given C({{ lb_services }})).
  - A file for a group sets C(lb_services) for every host in it; a host's own file replaces it (lists
    are not merged). For the same host or group, the plugin listed later in C(vars_plugins_enabled)
    wins over the other's C(lb_services).
  - Enable it beside the built-in plugin, in C(ansible.cfg)
    C(vars_plugins_enabled = host_group_vars,baremetal.lb.services), or with C(ANSIBLE_VARS_ENABLED).
options:
  stage:
    ini:
      - key: stage
        section: vars_baremetal_lb_services
    env:
      - name: BAREMETAL_LB_SERVICES_VARS_STAGE
extends_documentation_fragment:
  - ansible.builtin.vars_plugin_staging
"""

EXAMPLES = r"""
# ansible.cfg
# [defaults]
# vars_plugins_enabled = host_group_vars,baremetal.lb.services

# inventory/group_vars/lb_controllers.lb_services.yml
lb_services:
  - namespace: shop
    name: web
    ports: [{port: 443, protocol: TCP}]
  - namespace: shop
    name: api
    sharing_key: shop-edge
"""

import json
import math
import os
import typing as t

import yaml
from ansible.errors import AnsibleParserError
from ansible.inventory.group import InventoryObjectType
from ansible.plugins.vars import BaseVarsPlugin
from ansible.utils.path import basedir
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError, refuse_unknown_keys
from ansible_collections.baremetal.lb.plugins.module_utils.service import SERVICE_KEYS

# libyaml's parser when PyYAML has it (ansible-core's own loader uses it too)
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

VARIABLE = "lb_services"
SUFFIXES = (".lb_services.yml", ".lb_services.yaml", ".lb_services.json")
SUBDIRS = {InventoryObjectType.HOST: "host_vars", InventoryObjectType.GROUP: "group_vars"}
PLAIN_TYPES = (str, int, float, bool, type(None))

# Parsed files by path, kept while the file's size and modification time stay the same: Ansible
# asks a vars plugin again for every task, and host_group_vars keeps its files the same way.
_PARSED: dict[str, tuple[tuple[int, int], list[dict[str, t.Any]]]] = {}


def _first_non_json(value: t.Any, field: str) -> tuple[str, t.Any] | None:
    """The path and value of the first thing in ``value`` that JSON cannot hold; None if none."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{field}.{key}", key
            found = _first_non_json(item, f"{field}.{key}")
            if found:
                return found
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _first_non_json(item, f"{field}[{i}]")
            if found:
                return found
        return None
    if isinstance(value, PLAIN_TYPES) and not (isinstance(value, float) and not math.isfinite(value)):
        return None
    return field, value


def check_services_file(data: t.Any) -> list[dict[str, t.Any]]:
    """The services of a parsed ``*.lb_services.yml``; InputError naming the field and value if it is not one."""
    if not isinstance(data, dict):
        raise InputError("(the file)", data, f"must be a mapping with the one key {VARIABLE}")
    refuse_unknown_keys(data, frozenset({VARIABLE}), "")
    services = data.get(VARIABLE)
    if not isinstance(services, list):
        raise InputError(VARIABLE, services, "must be a list of services")
    for i, service in enumerate(services):
        if not isinstance(service, dict):
            raise InputError(f"{VARIABLE}[{i}]", service, "must be a mapping (a service)")
        refuse_unknown_keys(service, SERVICE_KEYS, f"{VARIABLE}[{i}]")
    try:
        # in C: json.dumps refuses other types, NaN and infinity; a key that is not a string comes back changed
        plain = json.loads(json.dumps(services, allow_nan=False)) == services
    except (TypeError, ValueError):
        plain = False
    if not plain:
        found = _first_non_json(services, VARIABLE)
        if found is not None:
            raise InputError(
                found[0],
                found[1],
                "is not plain data (strings, numbers, booleans, null, lists, "
                "mappings with string keys; quote dates; no YAML tags)",
            )
    return services


def read_services_file(path: str) -> list[dict[str, t.Any]]:
    """The services of one file, parsed once while it is unchanged; AnsibleParserError naming the file."""
    try:
        stat = os.stat(path)  # the file may have gone since it was found
    except OSError as exc:
        raise AnsibleParserError(f"{path}: cannot read it: {exc}") from None
    stamp = (stat.st_size, stat.st_mtime_ns)
    cached = _PARSED.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise AnsibleParserError(f"{path}: cannot read it: {exc}") from None
    try:
        # JSON first, as ansible-core reads vars files: YAML written as JSON parses 50 times faster so
        data = json.loads(text)
    except ValueError:
        try:
            data = yaml.load(text, Loader=SafeLoader)  # a safe loader (libyaml's when present)
        except yaml.YAMLError as exc:
            raise AnsibleParserError(f"{path}: cannot read it as YAML: {exc}") from None
    try:
        services = check_services_file(data)
    except InputError as exc:
        raise AnsibleParserError(f"{path}: {exc}") from None
    _PARSED[path] = (stamp, services)
    return services


class VarsModule(BaseVarsPlugin):
    is_stateless = True

    def get_vars(self, loader: t.Any, path: str, entities: t.Any, cache: bool = True) -> dict[str, t.Any]:
        super().get_vars(loader, path, entities)
        if not isinstance(entities, list):
            entities = [entities]
        directory = os.path.realpath(basedir(path))
        data: dict[str, t.Any] = {}
        for entity in entities:
            subdir = SUBDIRS.get(getattr(entity, "base_type", None))
            if subdir is None:
                raise AnsibleParserError(f"Supplied entity must be Host or Group, got {type(entity)} instead")
            if entity.name.startswith(os.path.sep):  # as host_group_vars: a chroot-style host name
                continue
            found = [
                candidate
                for candidate in (os.path.join(directory, subdir, entity.name + suffix) for suffix in SUFFIXES)
                if os.path.isfile(candidate)
            ]
            if len(found) > 1:
                raise AnsibleParserError(
                    f"{' and '.join(found)}: only one lb_services file may be given for {entity.name}; "
                    "remove all but one"
                )
            if found:
                # entities come in precedence order (groups, then the host): a later one replaces
                data[VARIABLE] = read_services_file(found[0])
        return data
