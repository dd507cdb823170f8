"""The market feed over ZeroMQ: a replaying publisher with a snapshot service, and a gap-proof subscriber.

Wire format: :mod:`feeds.zmqfeed.messages`. Sockets: the feed (XPUB/SUB) on ``tcp://HOST:PORT``,
snapshots (ROUTER/DEALER) on ``PORT + 1``; optionally CURVE-secured (:mod:`.security`).
"""
from feeds.zmqfeed.book import L2Book
from feeds.zmqfeed.publisher import (DEFAULT_BIND, Publisher, PublisherStats, check_files, replay, snapshot_address,
                                     wait_for_subscribers)
from feeds.zmqfeed.security import (ClientKeys, CurveConfig, CurveServer, HandshakeWatch, ServerKeys, generate_keypair,
                       load_client_keys, load_server_keys, plaintext_warning, secure_client)
from feeds.zmqfeed.subscriber import FeedHandlers, Subscriber, SubscriberOptions, SubscriberStats, request_snapshot

__all__ = ["DEFAULT_BIND", "ClientKeys", "CurveConfig", "CurveServer", "FeedHandlers", "HandshakeWatch", "L2Book",
           "check_files",
           "Publisher", "PublisherStats", "ServerKeys", "Subscriber", "SubscriberOptions", "SubscriberStats", "generate_keypair", "load_client_keys",
           "load_server_keys", "plaintext_warning", "replay", "request_snapshot", "secure_client",
           "snapshot_address", "wait_for_subscribers"]
