"""An optional HMAC-SHA256 over a bundle's manifest, for users who need to know who exported a bundle.

The manifest's sha256s and digest only say the files are the ones it lists:
anyone who can write the directory can rewrite them all. A signature made
with a secret key cannot be rewritten without that key. The exporter signs
when ``CMM_BUNDLE_KEY_FILE`` names a key file (:func:`bundle.manifest.write_manifest`),
``cmm keys sign-bundle`` signs a bundle already exported, and
:func:`bundle.loader.load_bundle`, with that variable set, refuses a bundle whose ``manifest.sig``
is missing or was made with another key or over another manifest. Without it,
nothing is signed or checked. The manifest lists every file's sha256, so
signing it signs them all.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from common.atomic import atomic_write
from common.errors import DataError

SIGNATURE = "manifest.sig"
KEY_ENV = "CMM_BUNDLE_KEY_FILE"
MIN_KEY_BYTES = 32           # HMAC-SHA256's own block of entropy: a shorter secret is guessable sooner
_SCHEME = "hmac-sha256:"


def key_from_env() -> bytes | None:
    """The key in the file ``CMM_BUNDLE_KEY_FILE`` names, or None when it is unset or empty."""
    path = os.environ.get(KEY_ENV)
    return read_key(path) if path else None


def read_key(path: str) -> bytes:
    """A key file's bytes, all of them: a secret of at least :data:`MIN_KEY_BYTES`."""
    try:
        key = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read the bundle key ({KEY_ENV}): {e.strerror}", path=path) from None
    if len(key) < MIN_KEY_BYTES:
        raise DataError(f"a bundle key of {len(key)} bytes; expected at least {MIN_KEY_BYTES} "
                        f"(e.g. head -c 32 /dev/urandom > FILE)", path=path, field=KEY_ENV)
    return key


def _mac(directory: Path, key: bytes) -> str:
    return _SCHEME + hmac.new(key, (directory / "manifest.json").read_bytes(), hashlib.sha256).hexdigest()


def sign(directory: str | Path, key: bytes) -> None:
    """Write ``manifest.sig``, the HMAC of ``manifest.json`` under ``key`` (atomically)."""
    directory = Path(directory)
    with atomic_write(directory / SIGNATURE) as f:
        f.write((_mac(directory, key) + "\n").encode())


def check(directory: str | Path, key: bytes) -> None:
    """DataError unless ``manifest.sig`` is the HMAC of ``manifest.json`` under ``key``."""
    directory = Path(directory)
    path = directory / SIGNATURE
    try:
        found = path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        raise DataError(f"the bundle is not signed, and {KEY_ENV} asks for a signed one", path=str(path)) \
            from None
    if not hmac.compare_digest(found.encode(), _mac(directory, key).encode()):
        raise DataError(f"the signature does not match manifest.json under the key in {KEY_ENV}: the bundle "
                        "was exported with another key, or changed since", path=str(path))
