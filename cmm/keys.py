"""``cmm keys generate``: a CURVE keypair for the feed and order sockets, in ZeroMQ's certificate format."""
from __future__ import annotations

from feeds.zmqfeed import generate_keypair


def register(groups) -> None:
    keys = groups.add_parser("keys", help="CURVE keys for encrypted, authenticated ZeroMQ sockets")
    commands = keys.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write NAME.key (public) and NAME.key_secret (mode 0600) into DIR")
    gen.add_argument("dir", metavar="DIR")
    gen.add_argument("--name", default="cmm", help="file name of the pair (default: cmm)")
    gen.add_argument("--force", action="store_true", help="replace an existing pair of that name")
    gen.set_defaults(handler=run_generate)


def run_generate(args) -> int:
    public, secret = generate_keypair(args.dir, args.name, force=args.force)
    print(f"wrote {public} (public: give it to peers) and {secret} (secret, mode 0600: keep it here)")
    return 0
