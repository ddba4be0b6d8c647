# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes-style label selectors: ``match_labels`` and ``match_expressions``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .errors import InputError, refuse_unknown_keys
from .fields import sequence, text
from .names import check_label_key, check_label_value

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
SELECTOR_KEYS = frozenset({"match_labels", "match_expressions"})
EXPRESSION_KEYS = frozenset({"key", "operator", "values"})


def parse_labels(data: object, field: str, *, check_names: bool = True) -> dict[str, str]:
    """A mapping of label names to string values (None means empty).

    Names and values follow Kubernetes' label rules; ``check_names=False``
    (data saved by an earlier version, before they were checked) skips that.
    """
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InputError(field, data, "must be a mapping of label names to values")
    labels: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not key:
            raise InputError(f"{field}", key, "label names must be non-empty strings")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InputError(f"{field}.{key}", value, "label values must be strings")
        label_value = str(value)
        if check_names:
            check_label_key(key, field)
            check_label_value(label_value, f"{field}.{key}")
        labels[key] = label_value
    return labels


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        return self.key not in labels or labels[self.key] not in self.values

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key, "operator": self.operator, "values": list(self.values)}


@dataclass(frozen=True)
class LabelSelector:
    match_labels: tuple[tuple[str, str], ...]
    match_expressions: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.match_expressions
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "match_labels": dict(self.match_labels),
            "match_expressions": [r.to_dict() for r in self.match_expressions],
        }


def parse_selector(data: object, field: str, *, check_names: bool = True) -> LabelSelector:
    if not isinstance(data, Mapping):
        raise InputError(field, data, "a selector must be a mapping with match_labels and/or match_expressions")
    refuse_unknown_keys(data, SELECTOR_KEYS, field)
    match_labels = parse_labels(data.get("match_labels"), f"{field}.match_labels", check_names=check_names)
    requirements = []
    for i, expr in enumerate(sequence(data.get("match_expressions"), f"{field}.match_expressions")):
        efield = f"{field}.match_expressions[{i}]"
        if not isinstance(expr, Mapping):
            raise InputError(efield, expr, "must be a mapping with key, operator and values")
        refuse_unknown_keys(expr, EXPRESSION_KEYS, efield)
        key = text(expr.get("key"), f"{efield}.key")
        if check_names:
            check_label_key(key, f"{efield}.key")
        operator = expr.get("operator")
        if operator not in OPERATORS:
            raise InputError(f"{efield}.operator", operator, f"must be one of {', '.join(OPERATORS)}")
        values = expr.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InputError(f"{efield}.values", values, "must be a list of strings")
        if check_names:
            for j, value in enumerate(values):
                check_label_value(value, f"{efield}.values[{j}]")
        if operator in ("In", "NotIn") and not values:
            raise InputError(f"{efield}.values", values, f"operator {operator} needs at least one value")
        if operator in ("Exists", "DoesNotExist") and values:
            raise InputError(f"{efield}.values", values, f"operator {operator} takes no values")
        requirements.append(Requirement(key, operator, tuple(values)))
    if not match_labels and not requirements:
        raise InputError(
            field, data, "an empty selector would match every service; give match_labels or match_expressions"
        )
    return LabelSelector(tuple(sorted(match_labels.items())), tuple(requirements))
