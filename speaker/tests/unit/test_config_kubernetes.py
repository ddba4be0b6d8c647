"""The speaker's ``kubernetes:`` section: how to reach the cluster, this node's name, the pools, the class."""

import pytest
from lbspeaker import config
from lbspeaker.controller import config as controller_config
from lbspeaker.errors import ConfigError

SECRET = "x" * 32
POOLS = [{"name": "lan", "addresses": ["198.51.100.100-198.51.100.109"]}]


def doc(kubernetes):
    return {
        "node": "a",
        "nodes": [{"name": "a", "address": "127.0.0.1"}],
        "membership": {"secret": SECRET},
        "interfaces": ["lo"],
        "kubernetes": kubernetes,
    }


def parse(kubernetes):
    return config.parse(doc(kubernetes), check_interfaces=False)


def bad(kubernetes, field):
    with pytest.raises(ConfigError) as exc:
        parse(kubernetes)
    assert exc.value.field == field, str(exc.value)
    return exc.value


def test_without_the_section_the_speaker_follows_no_cluster():
    raw = doc(None)
    del raw["kubernetes"]
    assert config.parse(raw, check_interfaces=False).kubernetes is None


def test_a_kubeconfig_with_defaults():
    cluster = parse({"kubeconfig": "/etc/baremetal-lb/kubeconfig", "pools": POOLS}).kubernetes
    assert cluster.access == config.KubernetesAccess(kubeconfig="/etc/baremetal-lb/kubeconfig")
    assert cluster.node_name == "a"  # the config's node
    assert [p.name for p in cluster.pools] == ["lan"]
    assert cluster.load_balancer_class == "baremetal.lb/speaker"
    assert cluster.serve_unclassed is True


def test_in_cluster_with_everything_given():
    cluster = parse({"in_cluster": True, "node_name": "worker-1.example", "pools": POOLS,
                     "load_balancer_class": "example.com/lb", "serve_unclassed": False}).kubernetes
    assert cluster.access == config.KubernetesAccess(in_cluster=True)
    assert (cluster.node_name, cluster.load_balancer_class, cluster.serve_unclassed) == (
        "worker-1.example", "example.com/lb", False)


@pytest.mark.parametrize(("section", "field", "message"), [
    ("yes", "kubernetes", "must be a mapping"),
    ({"pools": POOLS}, "kubernetes", "give exactly one of kubeconfig: PATH and in_cluster: true"),
    ({"kubeconfig": "/k", "in_cluster": True, "pools": POOLS}, "kubernetes", "give exactly one"),
    ({"kubeconfig": "", "pools": POOLS}, "kubernetes.kubeconfig", "must be a path"),
    ({"kubeconfig": 3, "pools": POOLS}, "kubernetes.kubeconfig", "must be a path"),
    ({"in_cluster": "sure", "pools": POOLS}, "kubernetes.in_cluster", "must be true or false"),
    ({"kubeconfig": "/k", "pools": POOLS, "node_name": "Not_A_Node"}, "kubernetes.node_name", ""),
    ({"kubeconfig": "/k"}, "kubernetes.pools", "must be a list of pools"),
    ({"kubeconfig": "/k", "pools": []}, "kubernetes.pools", "must list the pools"),
    ({"kubeconfig": "/k", "pools": [{"name": "lan", "addresses": ["nonsense"]}]}, "kubernetes.pools[0].addresses[0]",
     ""),
    ({"kubeconfig": "/k", "pools": POOLS, "serve_unclassed": "no"}, "kubernetes.serve_unclassed", "must be true or false"),
    ({"kubeconfig": "/k", "pools": POOLS, "load_balancer_class": ""}, "kubernetes.load_balancer_class", ""),
    ({"kubeconfig": "/k", "pools": POOLS, "namespace": "x"}, "kubernetes.namespace", ""),
])
def test_a_bad_field_is_named_with_its_value(section, field, message):
    error = bad(section, field)
    assert message in str(error)


def test_the_controller_reads_the_same_access_rule():
    with pytest.raises(ConfigError) as exc:
        controller_config.parse({"kubernetes": {"kubeconfig": "/k", "in_cluster": True}, "pools": POOLS})
    assert exc.value.field == "kubernetes"
    with pytest.raises(ConfigError) as exc:
        controller_config.parse({"kubernetes": {"kubeconfig": "/k", "node_name": "a"}, "pools": POOLS})
    assert exc.value.field == "kubernetes.node_name"  # a speaker's key, not the controller's


BGP = {"asn": 64501, "router_id": "127.0.0.1", "peers": [{"name": "tor", "address": "198.51.100.1", "asn": 64500}]}


def test_bgp_advertisements_of_the_cluster_may_name_other_nodes_peers():
    section = {"kubeconfig": "/k", "pools": POOLS, "bgp_advertisements": [{"pools": ["lan"]}]}
    # no bgp section: a node without peers of its own (the role renders none then) announces nothing over BGP
    assert parse(section).kubernetes.advertisements[0].pools == ("lan",)

    # the cluster's advertisements, the same on every node; the bgp section has this node's peers only: spine is
    # another node's peer (the core refuses a name that is nobody's, tests/unit/.../test_announcements.py)
    with_bgp = {**doc({**section, "bgp_advertisements": [{"pools": ["lan"], "peers": ["tor", "spine"]}]}), "bgp": BGP}
    (ad,) = config.parse(with_bgp, check_interfaces=False).kubernetes.advertisements
    assert ad.peers == ("tor", "spine")
    # an advertisement for other nodes names their peers
    other = {**doc({**section, "bgp_advertisements": [{"pools": ["lan"], "peers": ["spine"], "nodes": ["b"]}]}),
             "bgp": BGP}
    assert config.parse(other, check_interfaces=False).kubernetes is not None

    ok = {**doc({**section, "bgp_advertisements": [{"pools": ["lan"], "peers": ["tor", "198.51.100.1"],
                                                    "communities": ["64500:7"], "local_pref": 250}]}), "bgp": BGP}
    (ad,) = config.parse(ok, check_interfaces=False).kubernetes.advertisements
    assert (ad.peers, ad.communities, ad.local_pref) == (("tor", "198.51.100.1"), ("64500:7",), 250)
