"""SIGHUP reload: what it takes in place, and what it refuses (the speaker keeps running on the old config)."""

import asyncio

import yaml
from lbspeaker import config as config_mod
from lbspeaker.daemon import Speaker

SECRET = "s" * 32


def document(kubernetes=None, services=()):
    doc = {
        "node": "node1",
        "nodes": [{"name": "node1", "address": "127.0.0.1"}, {"name": "node2", "address": "198.51.100.12"}],
        "membership": {"secret": SECRET},
        "interfaces": ["lo"],
        "services": [{"name": f"default/{s}", "addresses": [ip]} for s, ip in services],
    }
    if kubernetes is not None:
        doc["kubernetes"] = kubernetes
    return doc


def speaker_from(tmp_path, doc):
    # load() checks that node1's address is this host's and that the interfaces exist: loopback is both
    path = tmp_path / "speaker.yaml"
    path.write_text(yaml.safe_dump(doc))
    return Speaker(str(path), config_mod.load(str(path))), path


def reload_with(speaker, path, doc):
    path.write_text(yaml.safe_dump(doc))
    speaker._reload()


def cluster(pools):
    return {"kubeconfig": "/etc/lb-speaker/kubeconfig", "pools": pools}


LAN = [{"name": "lan", "addresses": ["198.51.100.100-198.51.100.109"]}]
WAN = [{"name": "wan", "addresses": ["203.0.113.0/28"]}]


def test_a_changed_kubernetes_section_is_refused_and_the_old_one_kept(tmp_path):
    speaker, path = speaker_from(tmp_path, document(cluster(LAN)))
    before = speaker.config
    reload_with(speaker, path, document(cluster(WAN)))
    assert speaker.last_reload_ok is False
    assert speaker.config is before and speaker.config.kubernetes == before.kubernetes


def test_adding_or_removing_the_kubernetes_section_is_refused(tmp_path):
    speaker, path = speaker_from(tmp_path, document())
    reload_with(speaker, path, document(cluster(LAN)))
    assert speaker.last_reload_ok is False and speaker.config.kubernetes is None
    speaker, path = speaker_from(tmp_path, document(cluster(LAN)))
    reload_with(speaker, path, document())
    assert speaker.last_reload_ok is False and speaker.config.kubernetes is not None


def test_a_broken_file_is_refused_and_a_good_one_after_it_taken(tmp_path):
    speaker, path = speaker_from(tmp_path, document(cluster(LAN)))
    path.write_text("node: [unclosed")
    speaker._reload()
    assert speaker.last_reload_ok is False
    # the same kubernetes section with a service changed reloads (the refusal is of the section only);
    # _reload schedules the BGP reconfiguration on the running loop, so run it inside one

    async def reload_in_loop():
        reload_with(speaker, path, document(cluster(LAN), services=[("web", "203.0.113.20")]))
        await asyncio.sleep(0)

    asyncio.run(reload_in_loop())
    assert speaker.last_reload_ok is True
    assert [s.name for s in speaker.config.services] == ["default/web"]
