# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes' rules for names, checked once where a name enters the core.

The names end up in Kubernetes objects (``service_manifest``) or in the
controller's view of the cluster, so they follow Kubernetes' own validation
(``k8s.io/apimachinery/pkg/util/validation``): a name Kubernetes would refuse
is refused here, before anything is saved, with the field and the rule.

- namespaces: DNS labels (RFC 1123), as ``IsDNS1123Label``;
- Service names: DNS labels (RFC 1035), as ``IsDNS1035Label``;
- other object names (pools, advertisements, workloads): DNS subdomains
  (RFC 1123), as ``IsDNS1123Subdomain``;
- label names and values: ``IsQualifiedName`` and ``IsValidLabelValue``.

Plain Python, no Ansible imports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class NameRule:
    pattern: re.Pattern[str]
    max_length: int
    description: str

    def check(self, value: object, field: str) -> str:
        """``value`` if it follows the rule, else InputError naming the field, the rule and the value."""
        if not isinstance(value, str) or len(value) > self.max_length or not self.pattern.fullmatch(value):
            raise InputError(field, value, f"must be {self.description}")
        return value


_LABEL_1123 = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"

NAMESPACE = NameRule(
    re.compile(_LABEL_1123),
    63,
    "a DNS label (RFC 1123): lowercase letters, digits and '-', starting and ending with a letter or digit, "
    "at most 63 characters",
)
SERVICE_NAME = NameRule(
    re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?"),
    63,
    "a DNS label (RFC 1035): lowercase letters, digits and '-', starting with a letter and ending with a "
    "letter or digit, at most 63 characters",
)
OBJECT_NAME = NameRule(
    re.compile(rf"{_LABEL_1123}(\.{_LABEL_1123})*"),
    253,
    "a DNS subdomain (RFC 1123): lowercase letters, digits, '-' and '.', each '.'-separated part starting "
    "and ending with a letter or digit, at most 253 characters",
)
LABEL_VALUE = NameRule(
    re.compile(rf"({_QUALIFIED_NAME})?"),
    63,
    "a label value: empty, or letters, digits, '-', '_' and '.', starting and ending with a letter or digit, "
    "at most 63 characters",
)
LABEL_KEY_DESCRIPTION = (
    "a label name: an optional DNS subdomain prefix (at most 253 characters) and '/', then a name of letters, "
    "digits, '-', '_' and '.', starting and ending with a letter or digit, at most 63 characters "
    "(for example app or example.com/tier)"
)
_LABEL_KEY_NAME = re.compile(_QUALIFIED_NAME)


def check_namespace(value: object, field: str) -> str:
    return NAMESPACE.check(value, field)


def check_service_name(value: object, field: str) -> str:
    return SERVICE_NAME.check(value, field)


def check_object_name(value: object, field: str) -> str:
    return OBJECT_NAME.check(value, field)


def check_label_value(value: object, field: str) -> str:
    return LABEL_VALUE.check(value, field)


def check_label_key(value: object, field: str) -> str:
    """A label name (``IsQualifiedName``): ``[prefix/]name``."""
    if isinstance(value, str):
        prefix, slash, name = value.rpartition("/")
        prefix_ok = not slash or (len(prefix) <= 253 and OBJECT_NAME.pattern.fullmatch(prefix) is not None)
        if prefix_ok and len(name) <= 63 and _LABEL_KEY_NAME.fullmatch(name):
            return value
    raise InputError(field, value, f"must be {LABEL_KEY_DESCRIPTION}")
