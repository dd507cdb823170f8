"""``cmm keys generate``: a CURVE keypair for the feed and order sockets, in ZeroMQ's certificate format.
``cmm keys sign-bundle DIR``: sign a model bundle's manifest, so a loader given the key knows who exported it."""
from __future__ import annotations

import os

from common.errors import DataError
from feeds.zmqfeed import generate_keypair


def register(groups) -> None:
    keys = groups.add_parser("keys", help="CURVE keys for encrypted, authenticated ZeroMQ sockets")
    commands = keys.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write NAME.key (public) and NAME.key_secret (mode 0600) into DIR")
    gen.add_argument("dir", metavar="DIR")
    gen.add_argument("--name", default="cmm", help="file name of the pair (default: cmm)")
    gen.add_argument("--force", action="store_true", help="replace an existing pair of that name")
    gen.set_defaults(handler=run_generate)
    sign = commands.add_parser("sign-bundle", help="verify a model bundle, then write its manifest.sig: an HMAC "
                                                   "of manifest.json under a secret key (docs/cmm-models.md)")
    sign.add_argument("dir", metavar="DIR")
    sign.add_argument("--key-file", metavar="FILE", help="the key (32 bytes or more); default: $CMM_BUNDLE_KEY_FILE")
    sign.set_defaults(handler=run_sign_bundle)


def run_generate(args) -> int:
    public, secret = generate_keypair(args.dir, args.name, force=args.force)
    print(f"wrote {public} (public: give it to peers) and {secret} (secret, mode 0600: keep it here)")
    return 0


def run_sign_bundle(args) -> int:
    from bundle.loader import verify
    from bundle.signature import KEY_ENV, SIGNATURE, read_key, sign

    key_file = args.key_file or os.environ.get(KEY_ENV)
    if not key_file:
        raise DataError(f"no key: give --key-file FILE or set {KEY_ENV}", field="--key-file")
    key = read_key(key_file)
    verify(args.dir)
    sign(args.dir, key)
    print(f"signed {os.path.join(args.dir, SIGNATURE)}")
    return 0
