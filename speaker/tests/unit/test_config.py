import os
import subprocess
import sys

import pytest
import yaml
from lbspeaker import config
from lbspeaker.errors import ConfigError

SECRET = "x" * 32


def base(**over):
    doc = {
        "node": "a",
        "nodes": [{"name": "a", "address": "127.0.0.1"}, {"name": "b", "address": "198.51.100.12"}],
        "membership": {"secret": SECRET},
        "interfaces": ["lo"],
        "services": [
            {"name": "default/web", "addresses": ["198.51.100.100", "2001:db8:1::100"]},
            {
                "name": "default/local",
                "addresses": ["198.51.100.101"],
                "external_traffic_policy": "Local",
                "health_check": {"type": "kube_proxy", "url": "http://127.0.0.1:10256/healthz"},
            },
            {"name": "default/bgp", "addresses": ["203.0.113.5"], "mode": "bgp"},
        ],
        "bgp": {"asn": 64501, "router_id": "198.51.100.11", "peers": [{"address": "198.51.100.1", "asn": 64500}]},
    }
    doc.update(over)
    return doc


def bad(doc, field):
    with pytest.raises(ConfigError) as exc:
        config.parse(doc)
    assert exc.value.field == field, str(exc.value)
    return exc.value


def test_parses_into_typed_objects():
    cfg = config.parse(base())
    assert cfg.node == "a"
    assert cfg.membership.interval_ms == config.DEFAULT_INTERVAL_MS
    assert cfg.membership.dead_after_s < 1.0  # default detection well under a second
    assert [s.name for s in cfg.l2_services()] == ["default/web", "default/local"]
    assert str(cfg.services[0].addresses[1]) == "2001:db8:1::100"
    assert cfg.services[1].health_check.type == "kube_proxy"
    assert cfg.bgp is not None
    assert cfg.bgp.asn == 64501
    assert [(str(p.address), p.asn) for p in cfg.bgp.peers] == [("198.51.100.1", 64500)]


def test_unknown_interface_is_named():
    err = bad(base(interfaces=["lo", "nosuch0"]), "interfaces[1]")
    assert err.value == "nosuch0"


def test_unknown_service_interface_is_named():
    doc = base()
    doc["services"][0]["interfaces"] = ["nosuch1"]
    bad(doc, "services[0].interfaces[0]")


def test_duplicate_node_names():
    doc = base(nodes=[{"name": "a", "address": "127.0.0.1"}, {"name": "a", "address": "198.51.100.12"}])
    bad(doc, "nodes[1].name")


def test_missing_secret():
    bad(base(membership={}), "membership.secret")


def test_short_secret_is_refused_without_echoing_it():
    err = bad(base(membership={"secret": "short"}), "membership.secret")
    assert "short" not in str(err)


def test_this_node_must_be_listed():
    bad(base(node="zzz"), "node")


def test_node_address_must_be_local():
    doc = base(nodes=[{"name": "a", "address": "198.51.100.77"}])
    bad(doc, "nodes[0].address")


def test_bad_service_address():
    doc = base()
    doc["services"][0]["addresses"][1] = "2001:db8::zz"
    err = bad(doc, "services[0].addresses[1]")
    assert err.value == "2001:db8::zz"


def test_service_address_must_not_be_a_node_address():
    doc = base()
    doc["services"][0]["addresses"].append("198.51.100.12")
    err = bad(doc, "services[0].addresses[2]")
    assert "nodes[1].address" in str(err)


def test_local_needs_health_check():
    doc = base()
    del doc["services"][1]["health_check"]
    bad(doc, "services[1].health_check")


def test_shared_ip_needs_same_policy():
    doc = base()
    doc["services"][1]["addresses"] = ["198.51.100.100"]
    bad(doc, "services[1].addresses[0]")


def test_shared_ip_same_policy_is_fine():
    doc = base()
    doc["services"].append({"name": "default/dns-udp", "addresses": ["198.51.100.100"]})
    cfg = config.parse(doc)
    assert len(cfg.services) == 4


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("mode",), "l3", "services[0].mode"),
        (("external_traffic_policy",), "local", "services[0].external_traffic_policy"),
        (("name",), "web", "services[0].name"),
        (("color",), "red", "services[0].color"),
    ],
)
def test_service_fields(path, value, field):
    doc = base()
    doc["services"][0][path[0]] = value
    bad(doc, field)


def test_unknown_top_level_key():
    bad(base(extra=1), "extra")


def test_membership_bounds():
    bad(base(membership={"secret": SECRET, "dead_after": 1}), "membership.dead_after")
    bad(base(membership={"secret": SECRET, "interval_ms": "fast"}), "membership.interval_ms")


def run_check(path):
    cmd = [sys.executable, "-m", "lbspeaker.cli", "check", "--config", str(path)]
    return subprocess.run(cmd, check=False, capture_output=True, text=True)


def test_check_command_names_field_and_exits_nonzero(tmp_path):
    doc = base(interfaces=["nosuch0"])
    path = tmp_path / "speaker.yaml"
    path.write_text(yaml.safe_dump(doc))
    res = run_check(path)
    assert res.returncode == 1
    assert "interfaces[0]" in res.stderr and "nosuch0" in res.stderr
    path.write_text(yaml.safe_dump(base()))
    res = run_check(path)
    assert res.returncode == 0, res.stderr


def test_forwarded_service_backends_are_parsed_and_checked():
    doc = base()
    doc["services"].append(
        {
            "name": "default/echo",
            "addresses": ["198.51.100.110"],
            "external_traffic_policy": "Local",
            "ports": [8080],
            "backends": [
                {"node": "a", "address": "198.51.100.11", "port": 9000},
                {"node": "b", "address": "198.51.100.12", "port": 9000},
            ],
        }
    )
    svc = config.parse(doc).services[-1]
    assert [(b.node, b.port) for b in svc.backends] == [("a", 9000), ("b", 9000)]
    assert [p.port for p in svc.ports] == [8080]
    # Local with backends needs no separate health check: the backends' own checks decide
    assert svc.health_check is None

    doc["services"][-1]["backends"][1]["port"] = 70000
    bad(doc, "services[3].backends[1].port")
    doc["services"][-1]["backends"][1] = {"node": "zz", "address": "198.51.100.12", "port": 9000}
    bad(doc, "services[3].backends[1].node")


@pytest.mark.parametrize(
    ("over", "field", "message"),
    [
        ({"membership": {"secret": SECRET, "port": "7474"}}, "membership.port",
         "must be an integer from 1 to 65535"),
        ({"status": {"port": 0}}, "status.port", "must be an integer from 1 to 65535"),
        ({"status": {"adress": "127.0.0.1"}}, "status.adress", "unknown key 'adress' (did you mean 'address'?)"),
        ({"servics": []}, "servics", "unknown key 'servics' (did you mean 'services'?)"),
        ({"nodes": [{"name": " ", "address": "127.0.0.1"}]}, "nodes[0].name", "must be a non-empty string"),
        ({"node": None}, "node", "is required"),
        ({"status": []}, "status", "must be a mapping"),
        ({"services": "default/web"}, "services", "must be a list"),
        ({"bgp": {"asn": 64501, "router_id": "198.51.100.11",
                  "peers": [{"address": "198.51.100.1", "asn": 64500, "multihop": "yes"}]}},
         "bgp.peers[0].multihop", "must be true or false"),
        ({"bgp": {"asn": 64501, "router_id": "198.51.100.11",
                  "peers": [{"address": "198.51.100.1", "asn": 64500, "hold": 90}]}},
         "bgp.peers[0].hold", "unknown key 'hold'"),
        ({"bgp": {"asn": 64501, "router_id": "198.51.100.11", "listen_port": 0}}, "bgp.listen_port",
         "must be an integer from 1 to 65535"),
    ],
)
def test_fields_are_refused_in_the_cores_words(over, field, message):
    err = bad(base(**over), field)
    assert message in err.message, str(err)


def test_previous_secret_counts_from_the_files_mtime_and_a_missing_file_is_none(tmp_path):
    previous = tmp_path / "membership.previous.secret"
    doc = base(membership={"secret": SECRET, "previous_secret_file": str(previous)})
    assert config.parse(doc).membership.previous_secret is None  # never rotated
    previous.write_text("y" * 32 + "\n")
    os.utime(previous, (1_000_000, 1_000_000))
    m = config.parse(doc).membership
    assert (m.previous_secret, m.previous_until) == (b"y" * 32, 1_000_000 + config.DEFAULT_PREVIOUS_SECRET_WINDOW_S)
    doc["membership"]["previous_secret_window_s"] = 600
    assert config.parse(doc).membership.previous_until == 1_000_600
    # the same secret as the current one is no previous secret
    previous.write_text(SECRET)
    assert config.parse(doc).membership.previous_secret is None


def test_bad_previous_secrets_are_named(tmp_path):
    short = tmp_path / "short"
    short.write_text("short")
    err = bad(base(membership={"secret": SECRET, "previous_secret_file": str(short)}),
              "membership.previous_secret_file")
    assert "short" not in str(err).replace(str(short), "")
    bad(base(membership={"secret": SECRET, "previous_secret_file": str(tmp_path)}), "membership.previous_secret_file")
    bad(base(membership={"secret": SECRET, "previous_secret_window_s": 5}), "membership.previous_secret_window_s")
