import asyncio
import hmac
import ipaddress
import json
import socket
import threading
import time
import zlib
from dataclasses import replace

import pytest
from lbspeaker import membership
from lbspeaker.config import Config, MembershipConfig, NodeConfig, StatusConfig
from lbspeaker.membership import HEARTBEAT, LEAVING, BadMessage, Membership, Message
from lbspeaker.metrics import Metrics

SECRET = b"s" * 32


def test_roundtrip():
    msg = Message(HEARTBEAT, "node1", 123, 7, frozenset({"a/b", "c/d"}))
    assert membership.decode(membership.encode(msg, SECRET), SECRET) == msg


def test_wrong_secret_is_bad_mac():
    data = membership.encode(Message(HEARTBEAT, "node1", 1, 1, frozenset()), SECRET)
    with pytest.raises(BadMessage) as exc:
        membership.decode(data, b"t" * 32)
    assert exc.value.reason == "bad_mac"


def test_tampered_payload_is_bad_mac():
    data = bytearray(membership.encode(Message(HEARTBEAT, "node1", 1, 1, frozenset({"a/b"})), SECRET))
    data[30] ^= 1
    with pytest.raises(BadMessage) as exc:
        membership.decode(bytes(data), SECRET)
    assert exc.value.reason in ("bad_mac", "malformed")


@pytest.mark.parametrize("cut", [0, 10, 40, -1])
def test_truncated_is_malformed(cut):
    data = membership.encode(Message(HEARTBEAT, "node1", 1, 1, frozenset()), SECRET)
    with pytest.raises(BadMessage):
        membership.decode(data[:cut], SECRET)


def make_config():
    nodes = (
        NodeConfig("node1", ipaddress.ip_address("198.51.100.11")),
        NodeConfig("node2", ipaddress.ip_address("198.51.100.12")),
    )
    return Config("node1", nodes, MembershipConfig(SECRET, 7946, 50, 4), (), StatusConfig(), ())


def test_receiver_drops_replay_unknown_and_bad_mac_and_counts():
    async def scenario():
        metrics = Metrics()
        changes = []
        m = Membership(make_config(), frozenset, changes.append, metrics)
        src = ("198.51.100.12", 7946)
        hb = membership.encode(Message(HEARTBEAT, "node2", 10, 1, frozenset({"a/b"})), SECRET)
        m.datagram_received(hb, src)
        assert m.peers["node2"].alive and changes == [True]
        assert m.live()["node2"] == frozenset({"a/b"})
        m.datagram_received(hb, src)  # replay
        old_incarnation = membership.encode(Message(HEARTBEAT, "node2", 9, 99, frozenset()), SECRET)
        m.datagram_received(old_incarnation, src)  # replay of an earlier life
        m.datagram_received(membership.encode(Message(HEARTBEAT, "node9", 1, 1, frozenset()), SECRET), src)
        m.datagram_received(membership.encode(Message(HEARTBEAT, "node2", 10, 5, frozenset()), b"x" * 32), src)
        spoofed = membership.encode(Message(HEARTBEAT, "node2", 10, 6, frozenset()), SECRET)
        m.datagram_received(spoofed, ("198.51.100.99", 7946))  # right name, wrong address
        m.datagram_received(b"garbage", src)
        assert metrics.get("heartbeats_dropped_total", reason="replay") == 2
        assert metrics.get("heartbeats_dropped_total", reason="unknown_node") == 2
        assert metrics.get("heartbeats_dropped_total", reason="bad_mac") == 1
        assert metrics.get("heartbeats_dropped_total", reason="malformed") == 1
        assert m.live()["node2"] == frozenset({"a/b"})  # nothing dropped changed the view
        m.datagram_received(membership.encode(Message(LEAVING, "node2", 10, 2, frozenset()), SECRET), src)
        assert "node2" not in m.live() and changes[-1] is False
        # a restart (new incarnation) brings it back
        m.datagram_received(membership.encode(Message(HEARTBEAT, "node2", 11, 1, frozenset()), SECRET), src)
        assert "node2" in m.live() and changes[-1] is True

    asyncio.run(scenario())


def test_missed_heartbeats_declare_dead():
    async def scenario():
        changes = []
        m = Membership(make_config(), frozenset, changes.append, Metrics())
        m.datagram_received(
            membership.encode(Message(HEARTBEAT, "node2", 1, 1, frozenset()), SECRET), ("198.51.100.12", 7946)
        )
        m._expire()
        assert "node2" in m.live()
        m.peers["node2"].last_seen -= 0.25  # > 4 x 50 ms
        m._expire()
        assert "node2" not in m.live() and changes[-1] is False

    asyncio.run(scenario())


def test_a_starting_node_is_alive_but_leads_nothing_until_ready():
    """Make before break on rejoin: the covering node keeps the IPs until the
    returning node says it already answers for them."""

    async def scenario():
        changes = []
        m = Membership(make_config(), frozenset, changes.append, Metrics())
        src = ("198.51.100.12", 7946)
        m.datagram_received(membership.encode(Message(HEARTBEAT, "node2", 1, 1, frozenset(), False), SECRET), src)
        assert m.peers["node2"].alive and "node2" not in m.live()
        assert changes == [True]  # joined: the leader re-announces, nobody hands over yet
        m.datagram_received(membership.encode(Message(HEARTBEAT, "node2", 1, 2, frozenset(), False), SECRET), src)
        assert changes == [True]  # nothing changed
        m.datagram_received(membership.encode(Message(HEARTBEAT, "node2", 1, 3, frozenset(), True), SECRET), src)
        assert "node2" in m.live() and changes == [True, False]
        # restarted (new incarnation) before anyone timed it out: out of the election until ready again
        m.datagram_received(membership.encode(Message(HEARTBEAT, "node2", 2, 1, frozenset(), False), SECRET), src)
        assert "node2" not in m.live() and len(changes) == 3

    asyncio.run(scenario())


def test_ready_travels_and_old_payloads_count_as_ready():
    msg = Message(HEARTBEAT, "node1", 1, 1, frozenset({"a/b"}), False)
    assert membership.decode(membership.encode(msg, SECRET), SECRET).ready is False
    # a heartbeat from a speaker before `ready` existed (rolling upgrade)
    body_payload = zlib.compress(json.dumps({"local": ["a/b"]}).encode())
    name = b"node1"
    head = membership.HEADER.pack(membership.MAGIC, HEARTBEAT, 0, len(name), 1, 2, len(body_payload))
    body = head + name + body_payload
    old = membership.decode(body + hmac.digest(SECRET, body, "sha256"), SECRET)
    assert old.ready is True and old.local_healthy == frozenset({"a/b"})
    bad_payload = zlib.compress(json.dumps({"local": [], "ready": "yes"}).encode())
    head = membership.HEADER.pack(membership.MAGIC, HEARTBEAT, 0, len(name), 1, 3, len(bad_payload))
    body = head + name + bad_payload
    with pytest.raises(membership.BadMessage, match="ready must be a boolean"):
        membership.decode(body + hmac.digest(SECRET, body, "sha256"), SECRET)


def test_mark_ready_sends_at_once_and_only_once():
    async def scenario():
        m = Membership(make_config(), frozenset, lambda _joined: None, Metrics())
        sent = []
        m._pacer = object()  # as if started
        m._send_all = sent.append
        m.mark_ready()
        m.mark_ready()
        assert m.ready and sent == [HEARTBEAT]

    asyncio.run(scenario())


def test_families_travel_and_a_change_is_a_membership_change():
    async def scenario():
        changes = []
        m = Membership(make_config(), frozenset, changes.append, Metrics(), families=lambda: frozenset({4}))
        src = ("198.51.100.12", 7946)
        m.datagram_received(membership.encode(Message(HEARTBEAT, "node2", 1, 1, frozenset()), SECRET), src)
        assert m.families_of() == {"node1": frozenset({4}), "node2": frozenset({4, 6})}
        lost_v6 = Message(HEARTBEAT, "node2", 1, 2, frozenset(), True, frozenset({4}))
        m.datagram_received(membership.encode(lost_v6, SECRET), src)
        assert m.families_of()["node2"] == frozenset({4}) and len(changes) == 2

    asyncio.run(scenario())


def test_a_peer_that_had_us_dead_makes_us_re_announce():
    """bench/chaos: a reload flood delayed node1's heartbeats past dead_after; node3
    took node1's IPv6 IP with an unsolicited NA and gave it back 12 ms later, but
    node1 saw nothing and never re-announced: the client kept node3's MAC, 28 s black
    hole. The peer's count of our deaths tells us to re-announce (joined=True)."""

    async def scenario():
        changes = []
        m = Membership(make_config(), frozenset, changes.append, Metrics())
        src = ("198.51.100.12", 7946)
        m.datagram_received(membership.encode(Message(HEARTBEAT, "node2", 1, 1, frozenset()), SECRET), src)
        assert changes == [True]
        had_us_dead = Message(HEARTBEAT, "node2", 1, 2, frozenset(), lost=(("node1", 1),))
        m.datagram_received(membership.encode(had_us_dead, SECRET), src)
        assert changes == [True, True]  # re-announce, though node2 never looked dead to us
        m.datagram_received(membership.encode(Message(HEARTBEAT, "node2", 1, 3, frozenset(), lost=(("node1", 1),)),
                                              SECRET), src)
        assert changes == [True, True]  # the same count again: nothing new
        # node2 restarts (its counts start again from 0), then loses us once: re-announce again
        m.datagram_received(membership.encode(Message(LEAVING, "node2", 1, 4, frozenset()), SECRET), src)
        m.datagram_received(membership.encode(Message(HEARTBEAT, "node2", 2, 1, frozenset()), SECRET), src)
        m.datagram_received(membership.encode(Message(HEARTBEAT, "node2", 2, 2, frozenset(), lost=(("node1", 1),)),
                                              SECRET), src)
        assert changes[-1] is True and len(changes) == 5

    asyncio.run(scenario())


def test_our_count_of_a_peers_deaths_travels_in_heartbeats():
    async def scenario():
        m = Membership(make_config(), frozenset, lambda _joined: None, Metrics())
        src = ("198.51.100.12", 7946)
        m.datagram_received(membership.encode(Message(HEARTBEAT, "node2", 1, 1, frozenset()), SECRET), src)
        m.peers["node2"].last_seen -= 0.25
        m._expire()
        sent = []

        class Sock:
            def sendto(self, data, addr):
                sent.append(membership.decode(data, SECRET))

        m.sock = Sock()
        m._send_all(HEARTBEAT)
        assert sent[0].lost == (("node2", 1),)

    asyncio.run(scenario())


def test_lost_counts_round_trip_and_bad_ones_are_malformed():
    msg = Message(HEARTBEAT, "node1", 1, 1, frozenset(), lost=(("node2", 3), ("node3", 1)))
    assert membership.decode(membership.encode(msg, SECRET), SECRET) == msg
    name = b"node1"
    for bad in ({"node2": -1}, {"node2": True}, ["node2"], {"node2": "1"}):
        payload = zlib.compress(json.dumps({"local": [], "lost": bad}).encode())
        head = membership.HEADER.pack(membership.MAGIC, HEARTBEAT, 0, len(name), 1, 3, len(payload))
        body = head + name + payload
        with pytest.raises(membership.BadMessage, match="lost must map"):
            membership.decode(body + hmac.digest(SECRET, body, "sha256"), SECRET)


def test_the_pacer_thread_finds_peers_and_their_death_and_tells_the_loop_on_its_thread():
    """Two speakers on loopback (127.0.0.1 and 127.0.0.2, no root): heartbeats are
    sent and read by each one's pacer thread; what changed reaches on_change on the
    asyncio loop's thread, and a peer that stops is declared dead."""
    def config(me):
        nodes = (
            NodeConfig("node1", ipaddress.ip_address("127.0.0.1")),
            NodeConfig("node2", ipaddress.ip_address("127.0.0.2")),
        )
        return Config(me, nodes, MembershipConfig(SECRET, 0, 20, 3), (), StatusConfig(), ())

    async def scenario():
        port = _free_udp_port()
        loop_thread = threading.current_thread()
        calls = {"node1": [], "node2": []}
        members = {}
        for me in ("node1", "node2"):
            cfg = config(me)
            cfg = Config(me, cfg.nodes, MembershipConfig(SECRET, port, 20, 3), (), StatusConfig(), ())

            def record(joined, me=me):
                calls[me].append((joined, threading.current_thread() is loop_thread))

            members[me] = Membership(cfg, lambda: frozenset({"apps/web"}), record, Metrics())
        for m in members.values():
            await m.start()
            m.mark_ready()
        try:
            for _unused in range(200):  # at most 2 s
                if all(m.live().keys() == {"node1", "node2"} for m in members.values()):
                    break
                await asyncio.sleep(0.01)
            assert members["node1"].live() == {"node1": frozenset({"apps/web"}), "node2": frozenset({"apps/web"})}
            assert calls["node1"][0] == (True, True)  # joined, told on the loop's thread
            members["node2"].close()  # stops sending, without a LEAVING
            for _unused in range(200):
                if "node2" not in members["node1"].live():
                    break
                await asyncio.sleep(0.01)
            assert "node2" not in members["node1"].live()
            assert calls["node1"][-1] == (False, True)
            assert members["node1"].peers["node2"].lost == 1
            assert members["node1"].sent > 0 and members["node1"].received > 0
        finally:
            for m in members.values():
                m.close()
        assert members["node1"]._pacer is None

    asyncio.run(scenario())


def _free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_rotation_keeps_old_and_new_nodes_talking_until_everyone_has_the_new_secret():
    """node1 has the new secret (the old one in its window), node2 not yet: node2
    accepts node1's old-signed copy, node1 accepts node2's; once node2 signs with the
    new secret, node1 sends once. After the window the old secret is refused."""
    new, old = b"n" * 32, SECRET

    def rotated(until):
        cfg = make_config()
        ms = MembershipConfig(new, 7946, 50, 4, previous_secret=old, previous_until=until)
        return Config("node1", cfg.nodes, ms, (), StatusConfig(), ())

    async def scenario():
        m = Membership(rotated(time.time() + 60), frozenset, lambda _joined: None, Metrics())
        src = ("198.51.100.12", 7946)
        sent = []

        class Sock:
            def sendto(self, data, addr):
                sent.append(data)

        m.sock = Sock()
        m._send_all(HEARTBEAT)
        assert len(sent) == 2  # one peer, two messages
        assert membership.decode(sent[0], old).sequence == 1  # what node2 (old secret) accepts
        with pytest.raises(BadMessage):
            membership.decode(sent[1], old)
        assert membership.decode(sent[1], new).sequence == 2
        m.datagram_received(membership.encode(Message(HEARTBEAT, "node2", 1, 1, frozenset()), old), src)
        assert m.peers["node2"].alive and not m.peers["node2"].on_current_secret
        m.datagram_received(membership.encode(Message(HEARTBEAT, "node2", 1, 2, frozenset()), new), src)
        assert m.peers["node2"].on_current_secret
        sent.clear()
        m._send_all(HEARTBEAT)
        assert len(sent) == 1 and membership.decode(sent[0], new)
        # the window is over: the old secret is refused
        m.configure(rotated(time.time() - 1))
        m.datagram_received(membership.encode(Message(HEARTBEAT, "node2", 1, 3, frozenset()), old), src)
        assert m.peers["node2"].sequence == 2
        assert m.metrics.get("heartbeats_dropped_total", reason="bad_mac") == 1

    asyncio.run(scenario())


@pytest.mark.parametrize("key", [b"k", b"s" * 32, b"x" * 64, bytes(range(200))])
def test_mac_key_is_hmac_sha256(key):
    for data in (b"", b"heartbeat", bytes(range(256)) * 5):
        assert membership.MacKey(key).mac(data) == hmac.digest(key, data, "sha256")


def test_steady_heartbeats_take_the_short_way_and_anything_else_the_full_one():
    """The short way (Membership._steady) only moves sequence and last_seen: it must
    still refuse a replay, a forged MAC, and hand over anything that says something new."""

    async def scenario():
        metrics = Metrics()
        changes = []
        m = Membership(make_config(), frozenset, changes.append, metrics)
        src = ("198.51.100.12", 7946)
        peer = m.peers["node2"]

        def hb(seq, local=frozenset({"a/b"}), secret=SECRET):
            return membership.encode(Message(HEARTBEAT, "node2", 10, seq, local), secret)

        m.datagram_received(hb(1), src)
        assert peer.alive and changes == [True] and peer.tail
        second = hb(2)
        assert m._steady(second, src, time.monotonic())  # the same as the last but its sequence
        assert peer.sequence == 2 and m.received == 2
        peer.last_seen -= 1.0
        m.datagram_received(hb(3), src)
        assert time.monotonic() - peer.last_seen < 0.5 and peer.sequence == 3
        m.datagram_received(second, src)  # replay of a steady one
        assert metrics.get("heartbeats_dropped_total", reason="replay") == 1 and peer.sequence == 3
        forged = bytearray(hb(4))
        forged[-1] ^= 1
        assert not m._steady(bytes(forged), src, time.monotonic())
        m.datagram_received(bytes(forged), src)
        assert metrics.get("heartbeats_dropped_total", reason="bad_mac") == 1 and peer.sequence == 3
        assert not m._steady(hb(4), ("198.51.100.99", 7946), time.monotonic())  # right bytes, wrong address
        # something new (a Local service became healthy) goes the full way and is seen
        m.datagram_received(hb(5, frozenset({"a/b", "c/d"})), src)
        assert m.live()["node2"] == frozenset({"a/b", "c/d"}) and changes == [True, False]
        assert m.received == 4
        # after a secret change nothing is short until the peer was heard on the new secret
        assert m.peers["node2"].tail
        m.configure(replace(make_config(), membership=MembershipConfig(b"n" * 32, 7946, 50, 4)))
        assert not m.peers["node2"].tail and not m.peers["node2"].on_current_secret

    asyncio.run(scenario())


def test_the_pacer_stops_at_once_even_with_a_long_interval():
    async def scenario():
        config = replace(make_config(), membership=MembershipConfig(SECRET, 0, 10000, 3))
        config = replace(config, nodes=(NodeConfig("node1", ipaddress.ip_address("127.0.0.1")), config.nodes[1]))
        m = Membership(config, frozenset, lambda _joined: None, Metrics())
        await m.start()
        await asyncio.sleep(0.05)  # the pacer is in its 10 s wait
        pacer = m._pacer
        started = time.monotonic()
        m.close()
        assert pacer is not None and not pacer.is_alive()
        assert time.monotonic() - started < 1.0
        assert m._wakeup is None  # the pipe is closed

    asyncio.run(scenario())


def test_a_heartbeat_counts_from_when_the_kernel_received_it_not_from_the_tick_that_read_it():
    """Read up to one interval late, a heartbeat stamped with the read time would
    push the peer's deadline that much later: detection dead_after + an interval."""

    async def scenario():
        nodes = (NodeConfig("node1", ipaddress.ip_address("127.0.0.1")),
                 NodeConfig("node2", ipaddress.ip_address("127.0.0.2")))
        config = Config("node1", nodes, MembershipConfig(SECRET, 0, 10000, 3), (), StatusConfig(), ())
        m = Membership(config, frozenset, lambda _joined: None, Metrics())
        await m.start()  # the pacer's first tick, then a 10 s wait
        try:
            await asyncio.sleep(0.05)
            port = m.sock.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
                peer.bind(("127.0.0.2", 0))
                sent = time.monotonic()
                peer.sendto(membership.encode(Message(HEARTBEAT, "node2", 1, 1, frozenset()), SECRET),
                            ("127.0.0.1", port))
                await asyncio.sleep(0.3)
                with m._lock:
                    m._drain()
                read = time.monotonic()
            last_seen = m.peers["node2"].last_seen
            assert m.peers["node2"].alive
            assert sent <= last_seen < sent + 0.1 < read - 0.15, (sent, last_seen, read)
        finally:
            m.close()

    asyncio.run(scenario())
