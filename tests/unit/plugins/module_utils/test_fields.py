# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The field readers: one wording per rule, and every refusal names the field and the value."""

from __future__ import annotations

import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError
from ansible_collections.baremetal.lb.plugins.module_utils.fields import boolean, integer, mapping, sequence, text


def refused(read, *args, **kwargs) -> InputError:
    with pytest.raises(InputError) as caught:
        read(*args, **kwargs)
    return caught.value


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: integer("7", "a.port", 1, 65535), "a.port: must be an integer from 1 to 65535 (got '7')"),
        (lambda: integer(True, "a.port", 1, 65535), "a.port: must be an integer from 1 to 65535 (got True)"),
        (lambda: integer(1.5, "a.port", 1, 65535), "a.port: must be an integer from 1 to 65535 (got 1.5)"),
        (lambda: integer(0, "a.port", 1, 65535), "a.port: must be an integer from 1 to 65535 (got 0)"),
        (lambda: integer(65536, "a.port", 1, 65535), "a.port: must be an integer from 1 to 65535 (got 65536)"),
        (lambda: integer(None, "bgp.asn", 1, 2**32 - 1), "bgp.asn: is required (got None)"),
        (lambda: boolean("yes", "peer.multihop"), "peer.multihop: must be true or false (got 'yes')"),
        (lambda: boolean(1, "peer.multihop", False), "peer.multihop: must be true or false (got 1)"),
        (lambda: boolean(None, "peer.multihop"), "peer.multihop: is required (got None)"),
        (lambda: text("", "lease.name", "x"), "lease.name: must be a non-empty string (got '')"),
        (lambda: text("  ", "lease.name"), "lease.name: must be a non-empty string (got '  ')"),
        (lambda: text(7, "lease.name"), "lease.name: must be a non-empty string (got 7)"),
        (lambda: text(None, "nodes[0].name"), "nodes[0].name: is required (got None)"),
        (lambda: mapping([], "status"), "status: must be a mapping (got [])"),
        (lambda: mapping(None, "nodes[1]"), "nodes[1]: must be a mapping (got None)"),
        (lambda: sequence("tor", "bgp.peers"), "bgp.peers: must be a list (got 'tor')"),
        (lambda: sequence({"a": 1}, "bgp.peers"), "bgp.peers: must be a list (got {'a': 1})"),
    ],
)
def test_a_bad_value_is_refused_naming_the_field_and_the_value(call, message):
    error = refused(call)
    assert str(error) == message
    field = message.split(":", 1)[0]
    assert error.field == field


def test_good_values_are_returned_as_written():
    assert integer(1, "f", 1, 65535) == 1
    assert integer(65535, "f", 1, 65535) == 65535
    assert boolean(False, "f", True) is False
    assert text(" padded ", "f") == " padded "
    given = {"a": 1}
    assert mapping(given, "f", {"a", "b"}) is given
    assert sequence(("a", "b"), "f") == ["a", "b"]


def test_none_is_not_given_and_reads_as_the_default():
    assert integer(None, "f", 1, 10, 7) == 7
    assert boolean(None, "f", False) is False
    assert text(None, "f", "127.0.0.1") == "127.0.0.1"
    assert mapping(None, "f", default={}) == {}
    assert sequence(None, "f") == []


def test_a_mapping_refuses_unknown_keys_through_the_one_rule():
    error = refused(mapping, {"adress": "x"}, "status", {"address", "port"})
    assert error.field == "status.adress"
    assert str(error) == (
        "status.adress: unknown key 'adress' (did you mean 'address'?); known keys: address, port (got 'x')"
    )
