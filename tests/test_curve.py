"""CURVE on the feed, on real loopback sockets and real key files: who gets in, who does not, and bad keys."""
from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq.auth

from common.errors import DataError
from tests.files import save_events
from common.config import ConfigError, convert
from feeds.zmqfeed import (CurveConfig, FeedHandlers, Publisher, Subscriber, SubscriberOptions, generate_keypair,
                           load_client_keys, load_server_keys, plaintext_warning, replay, wait_for_subscribers)
from tests.conftest import REPO
from tests.test_cli import assert_one_line_error, cmm
from tests.test_zmq_feed import depth, free_port_pair, pump, same_book

QUIET_S = 1.0       # how long a refused peer is watched for anything arriving


class Keys:
    """A server keypair, an authorized client ("alice") and one the server never heard of ("mallory")."""

    def __init__(self, root: Path):
        self.root = root
        self.server_public, _ = generate_keypair(str(root / "server"), "server")
        alice_public, _ = generate_keypair(str(root / "alice"), "alice")
        generate_keypair(str(root / "mallory"), "mallory")
        (root / "clients").mkdir()
        (root / "clients" / "alice.key").write_bytes(Path(alice_public).read_bytes())

    def server(self):
        return load_server_keys(CurveConfig(server_secret=str(self.root / "server"),
                                            authorized_clients=str(self.root / "clients")))

    def client(self, name: str):
        return load_client_keys(CurveConfig(client_secret=str(self.root / name), server_public=self.server_public))


@pytest.fixture
def keys(tmp_path) -> Keys:
    return Keys(tmp_path / "keys")


@pytest.fixture
def addr() -> str:
    return f"tcp://127.0.0.1:{free_port_pair()}"


def test_authorized_subscriber_gets_the_feed_and_snapshots(keys, addr):
    with Publisher(addr, heartbeat_s=0.05, curve=keys.server()) as pub:
        for k in range(1, 6):
            pub.publish("X", depth(k))
        with Subscriber(addr, ["X"], SubscriberOptions(curve=keys.client("alice"))) as sub:
            pump(pub, sub, lambda: sub.synced("X"))                  # a late joiner: over the snapshot socket
            assert sub.stats.joins == 1 and sub.streams["X"].seq == 5
            for k in range(6, 11):
                pub.publish("X", depth(k))
            pump(pub, sub, lambda: sub.streams["X"].seq == 10)       # and over the feed socket
            assert sub.stats.batches == 5 and sub.stats.gaps == 0 and same_book(pub, sub)
            assert pub.curve.accepted == 2 and pub.curve.rejected == 0  # the SUB and the DEALER


def test_curve_replay_of_a_file_reaches_an_authorized_subscriber(keys, addr, tmp_path):
    events = np.concatenate([depth(k) for k in range(1, 41)])
    path = tmp_path / "X.npz"
    save_events(path, events)
    with Publisher(addr, heartbeat_s=0.05, curve=keys.server()) as pub, \
            Subscriber(addr, ["X"], SubscriberOptions(curve=keys.client("alice"))) as sub:
        assert wait_for_subscribers(pub, 1, timeout_s=5.0)
        replay(pub, [str(path)], speed=None, batch_events=100)
        pump(pub, sub, lambda: sub.stats.events == len(events))
        assert sub.stats.batches == 20 and same_book(pub, sub)


def _watch(pub: Publisher, sub: Subscriber, notices: list[str], needle: str) -> None:
    """Publish for QUIET_S, and on until the subscriber notices ``needle`` (at most 5 s)."""
    start = time.monotonic()
    k = 0
    while time.monotonic() - start < QUIET_S or not any(needle in n for n in notices):
        assert time.monotonic() - start < 5.0, f"no notice {needle!r}: {notices}"
        k += 1
        pub.publish("X", depth(k))
        pub.service(0.01)
        sub.poll(0.01)


def assert_got_nothing(pub: Publisher, sub: Subscriber) -> None:
    assert (sub.stats.batches, sub.stats.snapshots, sub.streams) == (0, 0, {})
    assert pub.stats.subscriptions == 0 and pub.stats.snapshots_served == 0
    assert pub.curve.accepted == 0 and sub.stats.handshake_failures >= 1


def test_unknown_client_key_is_refused_counted_and_logged(keys, addr, caplog):
    caplog.set_level(logging.WARNING, logger="feeds.zmqfeed.security")
    mallory, notices = keys.client("mallory"), []
    with Publisher(addr, heartbeat_s=0.05, curve=keys.server()) as pub, \
            Subscriber(addr, ["X"], SubscriberOptions(curve=mallory), FeedHandlers(on_notice=notices.append)) as sub:
        _watch(pub, sub, notices, "the server refused our CURVE key (ZAP status 400)")
        assert_got_nothing(pub, sub)
        assert pub.curve.rejected >= 1
    refusals = [r.getMessage() for r in caplog.records if "refused client key" in r.getMessage()]
    assert refusals == [f"CURVE: refused client key {mallory.public.decode()}: not among the authorized keys"]


def test_plaintext_subscriber_gets_nothing_from_a_curve_publisher(keys, addr):
    notices = []
    with Publisher(addr, heartbeat_s=0.05, curve=keys.server()) as pub, \
            Subscriber(addr, ["X"], handlers=FeedHandlers(on_notice=notices.append)) as sub:
        _watch(pub, sub, notices, "security mismatch: one side uses CURVE, the other plaintext")
        assert_got_nothing(pub, sub)
        assert pub.curve.rejected == 0        # dropped at the greeting: no key was ever offered


def test_a_wrong_server_key_gets_nothing(keys, addr):
    alice = keys.client("alice")
    impostor = load_client_keys(CurveConfig(client_secret=str(keys.root / "alice"),
                                            server_public=str(keys.root / "mallory")))
    assert impostor.server != alice.server
    notices = []
    with Publisher(addr, heartbeat_s=0.05, curve=keys.server()) as pub, \
            Subscriber(addr, ["X"], SubscriberOptions(curve=impostor), FeedHandlers(on_notice=notices.append)) as sub:
        _watch(pub, sub, notices, "handshake failed: a wrong server public key")
        assert_got_nothing(pub, sub)


def test_curve_config_reads_from_a_toml_table():
    table = {"client_secret": "k/me.key_secret", "server_public": "k/server.key"}
    assert convert(table, CurveConfig, "x.toml", "curve") == CurveConfig(**table)
    with pytest.raises(ConfigError, match="curve: Object contains unknown field `server_key`"):
        convert({"server_key": "k"}, CurveConfig, "x.toml", "curve")


@pytest.mark.parametrize("content,needle", [
    (None, "no such key file"),
    (b"", "no public-key line"),
    (b"\xff\xfe garbage\n", "no public-key line"),
    (b'curve\n    public-key = "short"\n', "not a 40-character Z85 key"),
])
def test_bad_client_key_file_is_one_error_naming_it(keys, tmp_path, content, needle):
    bad = tmp_path / "bad.key_secret"
    if content is not None:
        bad.write_bytes(content)
    with pytest.raises(DataError, match=needle) as e:
        load_client_keys(CurveConfig(client_secret=str(bad), server_public=keys.server_public))
    assert e.value.path == str(bad) and e.value.field == "client_secret"


def test_a_public_key_where_a_secret_one_belongs_is_refused(keys):
    with pytest.raises(DataError, match="no secret-key line"):
        load_client_keys(CurveConfig(client_secret=keys.server_public, server_public=keys.server_public))


def test_keys_generate_writes_loadable_private_keys_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "k"
    proc = cmm("keys", "generate", out, "--name", "alice")
    assert proc.returncode == 0, proc.stderr
    public, secret = out / "alice.key", out / "alice.key_secret"
    assert f"wrote {public}" in proc.stdout and str(secret) in proc.stdout
    assert os.stat(secret).st_mode & 0o777 == 0o600
    pub_key, sec_key = zmq.auth.load_certificate(secret)
    assert zmq.auth.load_certificate(public) == (pub_key, None) and zmq.curve_public(sec_key) == pub_key
    assert sorted(p.name for p in out.iterdir()) == ["alice.key", "alice.key_secret"]   # no temp left behind
    assert_one_line_error(cmm("keys", "generate", out, "--name", "alice"), str(public), "--force")
    assert zmq.auth.load_certificate(secret) == (pub_key, sec_key)
    assert cmm("keys", "generate", out, "--name", "alice", "--force").returncode == 0
    assert zmq.auth.load_certificate(secret)[0] != pub_key


def test_bad_key_options_get_one_line(keys, tmp_path, addr):
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a certificate\n")
    tail = ["feed", "tail", addr, "--duration", "1"]
    assert_one_line_error(cmm(*tail, "--curve-key", garbage, "--curve-server", keys.server_public),
                          str(garbage), "--curve-key", ".key_secret")
    assert_one_line_error(cmm(*tail, "--curve-key", keys.root / "alice"), "--curve-server", "--curve-key")
    npz = tmp_path / "X.npz"
    save_events(npz, depth(1))
    replay_ = ["feed", "replay", npz, "--bind", addr, "--exit-at-end", "--curve-server-key", keys.root / "server"]
    assert_one_line_error(cmm(*replay_, "--curve-clients", garbage), str(garbage), "--curve-clients", "directory")
    (tmp_path / "nobody").mkdir()
    assert_one_line_error(cmm(*replay_, "--curve-clients", tmp_path / "nobody"), "--curve-clients", "no .key files")


def test_plaintext_bind_beyond_loopback_warns(tmp_path):
    path = tmp_path / "X.npz"
    save_events(path, depth(1))
    port = free_port_pair()
    proc = cmm("feed", "replay", path, "--bind", f"tcp://0.0.0.0:{port}", "--speed", "max", "--exit-at-end")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"cmm: warning: --bind tcp://0.0.0.0:{port} is reachable from other machines and CURVE is off: "
        f"anyone who can connect can read it (see `cmm keys generate`)"]
    assert "plaintext" in proc.stdout


def test_cmm_feed_replay_with_curve_serves_alice_and_refuses_mallory(keys, addr, tmp_path):
    events = np.concatenate([depth(k) for k in range(1, 21)])
    path = tmp_path / "X.npz"
    save_events(path, events)
    proc = subprocess.Popen([sys.executable, "-m", "cmm", "feed", "replay", str(path), "--bind", addr,
                             "--speed", "max", "--wait-subscribers", "1", "--heartbeat-s", "0.05",
                             "--curve-server-key", str(keys.root / "server"),
                             "--curve-clients", str(keys.root / "clients")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with Subscriber(addr, ["X"], SubscriberOptions(curve=keys.client("alice"))) as alice:
            pump(None, alice, lambda: alice.stats.events == len(events), timeout=30)   # includes start-up
        with Subscriber(addr, ["X"], SubscriberOptions(curve=keys.client("mallory"))) as mallory:
            pump(None, mallory, lambda: mallory.stats.handshake_failures >= 1)
            assert (mallory.stats.batches, mallory.stats.snapshots) == (0, 0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "CURVE, 1 client key(s) admitted" in out
    at_end = re.findall(r"CURVE handshakes: (\d+) admitted, (\d+) refused", out)[-1]    # the Ctrl-C summary
    admitted, refused = map(int, at_end)
    assert admitted >= 1 and refused >= 1, out
    mallory_key = keys.client("mallory").public.decode()
    assert f"refused client key {mallory_key}" in err and "warning: --bind" not in err


@pytest.mark.parametrize("endpoint,local", [
    ("tcp://127.0.0.1:5555", True), ("tcp://127.3.2.1:5555", True), ("tcp://[::1]:5555", True),
    ("tcp://localhost:5555", True), ("ipc:///tmp/feed", True), ("tcp://0.0.0.0:5555", False),
    ("tcp://*:5555", False), ("tcp://[::]:5555", False), ("tcp://10.1.2.3:5555", False), ("tcp://eth0:5555", False),
])
def test_which_binds_count_as_loopback(endpoint, local):
    assert (plaintext_warning("--bind", endpoint) is None) == local


def test_key_files_and_key_dirs_that_cannot_be_used_are_one_line(tmp_path):
    bad = tmp_path / "bad.key"
    bad.write_text("metadata\ncurve\n    public-keyX\n")          # a key line without "="
    assert_one_line_error(cmm("feed", "tail", "tcp://127.0.0.1:1", "--duration", "1", "--curve-key", bad,
                              "--curve-server", bad), "bad.key")
    (tmp_path / "k").mkdir()
    assert cmm("keys", "generate", tmp_path / "k", "--name", "x").returncode == 0
    (tmp_path / "k" / "x.key").unlink()
    (tmp_path / "k" / "x.key").mkdir()                          # a directory where the public key goes
    assert_one_line_error(cmm("keys", "generate", tmp_path / "k", "--name", "x", "--force"), "x.key")
