"""CURVE encryption and key authentication for any of our ZeroMQ sockets (feed, snapshots, orders).

Keys are ZeroMQ's standard certificate files, as ``zmq.auth`` writes and reads them:
``NAME.key`` holds a public key (give it to peers), ``NAME.key_secret`` the
keypair (keep it; mode 0600). A server holds its keypair and a directory of
the ``.key`` files of the clients it lets in; a client holds its own keypair
and the server's ``.key``.

Encryption alone would let anyone with *some* keypair in, so a server always
runs a ZAP handler (``zmq.auth``'s thread) on its context that admits only the
listed client keys and counts and logs every refusal. A plaintext client never
gets that far: ZeroMQ drops it at the greeting for offering the wrong mechanism.

Every bad key file (missing, unreadable, not a certificate, a key of the wrong
kind) is a :class:`~common.errors.DataError` naming the file and what was expected.
"""
from __future__ import annotations

import contextlib
import glob
import ipaddress
import logging
import os
import shutil
import tempfile

import msgspec
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from common.errors import DataError
from common.config import Table

log = logging.getLogger("feeds.zmqfeed.security")

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"


class CurveConfig(Table):
    """Paths to key files; a ``[curve]`` TOML table parses into it. Unset fields: that side is plaintext.

    A server sets ``server_secret`` (its ``.key_secret``, or a directory holding
    exactly one) and ``authorized_clients`` (a directory of ``.key`` files); a
    client sets ``client_secret`` and ``server_public`` (the server's ``.key``,
    or a directory holding exactly one).
    """

    server_secret: str | None = None
    authorized_clients: str | None = None
    client_secret: str | None = None
    server_public: str | None = None


class ServerKeys(msgspec.Struct, frozen=True):
    public: bytes                   # z85, as ZeroMQ takes them
    secret: bytes
    clients: frozenset[bytes]       # the public keys let in


class ClientKeys(msgspec.Struct, frozen=True):
    public: bytes
    secret: bytes
    server: bytes                   # the server's public key


def _key_files(directory: str, suffix: str) -> list[str]:
    return sorted(glob.glob(os.path.join(glob.escape(directory), "*" + suffix)))


def _key_file(path: str, suffix: str, field: str) -> str:
    """``path`` itself, or the one ``*suffix`` file in the directory ``path``."""
    if not os.path.isdir(path):
        if not os.path.exists(path):
            raise DataError(f"no such key file (expected a {suffix} file or a directory holding one)",
                            path=path, field=field)
        return path
    found = _key_files(path, suffix)
    if len(found) != 1:
        raise DataError(f"expected exactly one {suffix} file in this directory, found {len(found)}",
                        path=path, field=field)
    return found[0]


def valid_z85_key(key: bytes | None) -> bool:
    """A CURVE key as ZeroMQ takes it: 40 characters of Z85."""
    return key is not None and len(key) == 40 and all(c in z85.Z85CHARS for c in key)


def _read_key_file(path: str, *, secret: bool, field: str) -> tuple[bytes, bytes | None]:
    """(public, secret) keys of a certificate file; ``secret`` True requires the secret key too."""
    expected = (f"a ZeroMQ CURVE secret key file ({SECRET_SUFFIX}, from `cmm keys generate`)" if secret else
                f"a ZeroMQ CURVE public key file ({PUBLIC_SUFFIX}, from `cmm keys generate`)")
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (ValueError, IndexError):          # IndexError: a "public-key" line without "="
        raise DataError(f"no public-key line: expected {expected}", path=path, field=field) from None
    except OSError as e:
        raise DataError(f"cannot read key file: {e.strerror or e}", path=path, field=field) from None
    if not valid_z85_key(public):
        raise DataError(f"public-key is not a 40-character Z85 key: expected {expected}", path=path, field=field)
    if secret:
        if secret_key is None:
            raise DataError(f"no secret-key line (a public key file?): expected {expected}", path=path, field=field)
        if not valid_z85_key(secret_key):
            raise DataError(f"secret-key is not a 40-character Z85 key: expected {expected}", path=path,
                            field=field)
        if zmq.curve_public(secret_key) != public:
            raise DataError("secret-key does not belong to the file's public-key", path=path, field=field)
    return public, secret_key


def _both_or_neither(config: CurveConfig, a: str, b: str) -> bool:
    set_a, set_b = getattr(config, a) is not None, getattr(config, b) is not None
    if set_a != set_b:
        given, missing = (a, b) if set_a else (b, a)
        raise DataError(f"must be set together with {given} (CURVE needs both)", field=missing)
    return set_a


def load_server_keys(config: CurveConfig) -> ServerKeys | None:
    """The server side of ``config`` read and checked; None when it sets no server keys (plaintext)."""
    if not _both_or_neither(config, "server_secret", "authorized_clients"):
        return None
    path = _key_file(config.server_secret, SECRET_SUFFIX, "server_secret")
    public, secret = _read_key_file(path, secret=True, field="server_secret")
    directory = config.authorized_clients
    if not os.path.isdir(directory):
        raise DataError(f"not a directory (expected a directory of clients' {PUBLIC_SUFFIX} files)",
                        path=directory, field="authorized_clients")
    files = _key_files(directory, PUBLIC_SUFFIX)
    if not files:
        raise DataError(f"no {PUBLIC_SUFFIX} files: every client would be refused", path=directory,
                        field="authorized_clients")
    clients = frozenset(_read_key_file(f, secret=False, field="authorized_clients")[0] for f in files)
    return ServerKeys(public=public, secret=secret, clients=clients)


def load_client_keys(config: CurveConfig) -> ClientKeys | None:
    """The client side of ``config`` read and checked; None when it sets no client keys (plaintext)."""
    if not _both_or_neither(config, "client_secret", "server_public"):
        return None
    public, secret = _read_key_file(_key_file(config.client_secret, SECRET_SUFFIX, "client_secret"),
                                   secret=True, field="client_secret")
    server, _ = _read_key_file(_key_file(config.server_public, PUBLIC_SUFFIX, "server_public"),
                              secret=False, field="server_public")
    return ClientKeys(public=public, secret=secret, server=server)


class CurveServer:
    """The ZAP handler of one context: admits the listed client keys only, and counts both outcomes.

    ZeroMQ asks a context's ZAP handler about every handshake on that context's
    CURVE server sockets, so one instance serves all of them. Start it before
    the sockets bind; :meth:`stop` it before the context terminates.
    """

    def __init__(self, ctx: zmq.Context, keys: ServerKeys):
        self.keys = keys
        self.accepted = 0
        self.rejected = 0
        self._logged: set[bytes] = set()
        self._auth = ThreadAuthenticator(ctx, log=log)
        self._auth.start()
        self._auth.configure_curve_callback("*", self)

    def callback(self, domain: str, client_key: bytes) -> bool:
        """zmq.auth's credentials hook (its thread): is this client's public key (z85) listed?"""
        if client_key in self.keys.clients:
            self.accepted += 1
            return True
        self.rejected += 1
        if client_key not in self._logged:      # a refused peer retries every reconnect interval
            self._logged.add(client_key)
            log.warning("CURVE: refused client key %s: not among the authorized keys", client_key.decode())
        return False

    def secure(self, sock: zmq.Socket) -> None:
        """Make ``sock`` (of this context, not yet bound) a CURVE server with our keypair."""
        sock.curve_secretkey = self.keys.secret
        sock.curve_publickey = self.keys.public
        sock.curve_server = True

    def stop(self) -> None:
        self._auth.stop()


def secure_client(sock: zmq.Socket, keys: ClientKeys) -> None:
    """Make ``sock`` (not yet connected) a CURVE client of the server whose public key ``keys`` names."""
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_serverkey = keys.server


HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


def _handshake_reason(event: int, value: int) -> str:
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return f"the server refused our CURVE key (ZAP status {value})"
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL and value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return "security mismatch: one side uses CURVE, the other plaintext"
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return f"handshake failed: ZMTP protocol error {value:#x}"
    return "handshake failed: a wrong server public key, or CURVE on one side only?"


class HandshakeWatch:
    """Why a connecting socket's handshakes fail, told once per reason and endpoint.

    ZeroMQ hides a refused handshake from the application: without this a client
    with the wrong key, or plaintext against a CURVE server, only sees silence.
    Register :attr:`monitors` with the caller's poller and :meth:`read` the ready ones.
    """

    def __init__(self, *socks: zmq.Socket):
        self._socks = socks
        self.monitors = [s.get_monitor_socket(HANDSHAKE_FAILED) for s in socks]   # before connect: see them all
        self.failures = 0
        self._told: set[str] = set()

    def read(self, monitor: zmq.Socket) -> list[str]:
        """Count the failures waiting on ``monitor``; return the lines not told before."""
        lines = []
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return lines
            self.failures += 1
            line = f"{event['endpoint'].decode(errors='replace')}: {_handshake_reason(event['event'], event['value'])}"
            if line not in self._told:
                self._told.add(line)
                lines.append(line)

    def close(self) -> None:
        for sock, monitor in zip(self._socks, self.monitors):
            sock.disable_monitor()
            monitor.close(0)


def is_loopback(endpoint: str) -> bool:
    """Whether an endpoint is reachable from this machine only (ipc, inproc, tcp on 127.x or ::1; not ``*``)."""
    if not endpoint.startswith("tcp://"):
        return True
    host = endpoint.removeprefix("tcp://").rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False        # "*", an interface name or a host name: may be reachable from outside


def plaintext_warning(option: str, endpoint: str) -> str | None:
    """The warning for binding ``endpoint`` without CURVE, or None when it is loopback only."""
    if is_loopback(endpoint):
        return None
    return (f"warning: {option} {endpoint} is reachable from other machines and CURVE is off: "
            f"anyone who can connect can read it (see `cmm keys generate`)")


def generate_keypair(directory: str, name: str, force: bool = False) -> tuple[str, str]:
    """Write ``NAME.key`` and ``NAME.key_secret`` (mode 0600) into ``directory``; return their paths.

    ``zmq.auth`` writes the files (ZeroMQ's certificate format) into a private
    temp directory beside them; each is then fsynced and renamed into place, so
    neither file is ever seen half written nor the secret one readable by others.
    Nothing it creates is writable by others whatever the umask: under umask 000
    a world-writable key directory or public key would let anyone swap the key
    peers trust. A stricter umask is kept.
    """
    if not name or os.sep in name or (os.altsep and os.altsep in name) or "\0" in name or name.startswith("."):
        raise DataError(f"expected a plain file name, got {name!r}", field="--name")
    public, secret = (os.path.join(directory, name + s) for s in (PUBLIC_SUFFIX, SECRET_SUFFIX))
    existing = [p for p in (public, secret) if os.path.exists(p)]
    if existing and not force:
        raise DataError("key file exists; refusing to overwrite it (--force replaces the keypair)",
                        path=existing[0])
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory)
            _not_writable_by_others(directory)
        tmp = tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=directory)   # mode 0700
    except OSError as e:
        raise DataError(f"cannot create the key directory: {e.strerror}", path=directory) from None
    try:
        written = zmq.auth.create_certificates(tmp, name)
        _not_writable_by_others(written[0])
        os.chmod(written[1], 0o600)
        for src, dst in zip(written, (public, secret)):
            with open(src, "rb") as f:
                os.fsync(f.fileno())
            os.replace(src, dst)
    except OSError as e:
        raise DataError(f"cannot write the keypair: {e.strerror or e}", path=e.filename or directory) from None
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    return public, secret


def _not_writable_by_others(path: str) -> None:
    """Clear the group and world write bits the umask left on a file or directory we created."""
    os.chmod(path, os.stat(path).st_mode & 0o7777 & ~0o022)
