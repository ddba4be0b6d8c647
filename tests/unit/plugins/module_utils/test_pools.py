"""Pools: parsing, sizes, buggy addresses, overlaps, address text."""

from __future__ import annotations

import ipaddress

import pytest
from ansible_collections.baremetal.lb.plugins.module_utils.errors import InputError
from ansible_collections.baremetal.lb.plugins.module_utils.pools import (
    check_no_overlaps,
    format_address,
    is_buggy,
    parse_address,
    parse_pool,
    parse_range,
    parse_stored_address,
)
from hypothesis import given
from hypothesis import strategies as st


@given(st.integers(0, 2**128 - 1))
def test_ipv6_text_matches_ipaddress(value):
    assert format_address(6, value) == str(ipaddress.IPv6Address(value))


@given(st.integers(0, 2**32 - 1))
def test_ipv4_text_matches_ipaddress(value):
    assert format_address(4, value) == str(ipaddress.IPv4Address(value))


@given(st.integers(0, 2**128 - 1), st.integers(0, 2**32 - 1))
def test_stored_addresses_read_back_as_parse_address_reads_them(v6, v4):
    for family, value in ((6, v6), (4, v4)):
        text = format_address(family, value)
        assert parse_stored_address(text, "address") == parse_address(text, "address") == (family, value)


@pytest.mark.parametrize("text", ["not-an-ip", "198.51.100.300", "2001:db8::g", "", "198.51.100.07"])
def test_a_bad_stored_address_gets_parse_addresss_error(text):
    with pytest.raises(InputError) as error:
        parse_stored_address(text, "ledger address")
    assert error.value.field == "ledger address" and error.value.value == text


def test_a_stored_address_in_another_spelling_is_still_read():
    # inet_pton refuses these; parse_address reads them
    assert parse_stored_address(" 198.51.100.7 ", "a") == (4, int(ipaddress.IPv4Address("198.51.100.7")))
    assert parse_stored_address("fe80::1%eth0", "a") == (6, int(ipaddress.IPv6Address("fe80::1")))


@given(st.integers(0, 2**32 - 600), st.integers(0, 600))
def test_usable_count_matches_a_walk(first, span):
    start = format_address(4, first)
    end = format_address(4, first + span)
    pool = parse_pool({"name": "p", "addresses": [f"{start}-{end}"], "avoid_buggy_ips": True})
    walked = sum(1 for v in range(first, first + span + 1) if not is_buggy(4, v))
    assert pool.size(4) == walked


def test_sizes_per_family():
    pool = parse_pool({"name": "p", "addresses": ["198.51.100.0/24", "2001:db8::/120", "203.0.113.5"]})
    assert pool.size(4) == 257
    assert pool.size(6) == 256
    assert pool.families == (4, 6)


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        ("198.51.100.0/30", "198.51.100.0", "198.51.100.3"),
        ("198.51.100.7 - 198.51.100.9", "198.51.100.7", "198.51.100.9"),
        ("2001:db8::/127", "2001:db8::", "2001:db8::1"),
        ("203.0.113.9", "203.0.113.9", "203.0.113.9"),
    ],
)
def test_parse_range(text, first, last):
    rng = parse_range(text, "f")
    assert (format_address(rng.family, rng.first), format_address(rng.family, rng.last)) == (first, last)


def test_overlap_found_past_a_non_overlapping_neighbour():
    """A long range of one pool overlapping a range two entries later (sweep keeps the furthest end)."""
    pools = [
        parse_pool({"name": "a", "addresses": ["198.51.100.0-198.51.100.100"]}),
        parse_pool({"name": "b", "addresses": ["198.51.100.10/32"]}),
        parse_pool({"name": "c", "addresses": ["198.51.100.50/32"]}),
    ]
    with pytest.raises(InputError, match=r"overlaps 198\.51\.100\.0-198\.51\.100\.100 of pool 'a'"):
        check_no_overlaps(pools[::2])
    with pytest.raises(InputError):
        check_no_overlaps(pools)
    check_no_overlaps([pools[1], pools[2]])


def test_overlap_error_names_both_pools_and_both_ranges():
    pools = [
        parse_pool({"name": "lan", "addresses": ["198.51.100.100-198.51.100.120"]}),
        parse_pool({"name": "edge", "addresses": ["203.0.113.0/24", "198.51.100.112/28"]}),
    ]
    with pytest.raises(InputError) as caught:
        check_no_overlaps(pools)
    assert caught.value.field == "pools[1].addresses[1]"
    assert caught.value.message == (
        "198.51.100.112/28 of pool 'edge' overlaps 198.51.100.100-198.51.100.120 of pool 'lan'; "
        "pools never share addresses"
    )


def test_ipv4_and_ipv6_never_overlap_each_other():
    check_no_overlaps(
        [
            parse_pool({"name": "a", "addresses": ["0.0.0.0/8"]}),
            parse_pool({"name": "b", "addresses": ["::/104"]}),
        ]
    )
