"""Sources of desired state: the config file's, and how several merge."""

import asyncio
import ipaddress
from dataclasses import replace

from lbspeaker.config import Config, MembershipConfig, NodeConfig, ServiceConfig, StatusConfig
from lbspeaker.core.dataplane import HealthCheck
from lbspeaker.desired import DesiredServices, StaticSource, merge

A = ipaddress.ip_address("198.51.100.100")
B = ipaddress.ip_address("203.0.113.10")
CHECK = HealthCheck("tcp", host="127.0.0.1", port=80)


def config(*services):
    nodes = (NodeConfig("node1", ipaddress.ip_address("198.51.100.11")),)
    return Config("node1", nodes, MembershipConfig(b"s" * 32), ("eth0",), StatusConfig(), tuple(services))


def test_static_source_is_the_config_files_services():
    web = ServiceConfig("default/web", (A,))
    api = ServiceConfig("default/api", (B,), mode="bgp")
    state = StaticSource(config(web, api)).snapshot()
    assert state.services == (web, api)
    assert state.l2_services() == (web,) and state.bgp_services() == (api,)
    assert state.allowed_nodes == {} and state.excluded_nodes == {}


def test_static_source_reports_a_reload_that_changes_its_services_once():
    web = ServiceConfig("default/web", (A,))
    source = StaticSource(config(web))
    calls = []
    asyncio.run(source.start(lambda: calls.append(1)))
    source.configure(config(web))
    assert calls == []
    source.configure(config(web, ServiceConfig("default/api", (B,))))
    assert calls == [1] and len(source.snapshot().services) == 2


def test_merge_keeps_the_first_sources_service_and_reports_the_conflict():
    mine = ServiceConfig("default/web", (A,))
    theirs = ServiceConfig("default/web", (B,), mode="bgp")
    other = ServiceConfig("shop/cart", (B,), mode="bgp", external_traffic_policy="Local", health_check=None)
    cluster = DesiredServices(
        (theirs, other), {"default/web": frozenset({"n2"}), "shop/cart": frozenset({"n1"})}, {"n3": "NotReady"}
    )
    merged = merge([("config", DesiredServices((mine,))), ("cluster", cluster)])
    assert merged.state.services == (mine, other)
    assert merged.conflicts == (("default/web", "config", "cluster", False),)  # A here, B there
    same = merge([("config", DesiredServices((mine,))), ("cluster", DesiredServices((replace(theirs, addresses=(A,)),)))])
    assert same.conflicts == (("default/web", "config", "cluster", True),)  # site.yml applied it: the same address
    # the ignored copy's allow-list does not restrict the kept one
    assert merged.state.allowed_nodes == {"shop/cart": frozenset({"n1"})}
    assert merged.state.excluded_nodes == {"n3": "NotReady"}


def test_allowed_here_are_the_local_services_whose_allow_list_names_the_node():
    local = ServiceConfig("shop/cart", (B,), external_traffic_policy="Local", health_check=CHECK)
    cluster = ServiceConfig("shop/web", (A,))
    state = DesiredServices((local, cluster), {"shop/cart": frozenset({"n1"}), "shop/web": frozenset({"n1"})})
    assert state.allowed_here("n1") == frozenset({"shop/cart"})
    assert state.allowed_here("n2") == frozenset()
