"""The market feed over ZeroMQ: a replaying publisher with a snapshot service, and a gap-proof subscriber.

Wire format: :mod:`feeds.wire`. Sockets: the feed (XPUB/SUB) on ``tcp://HOST:PORT``,
snapshots (ROUTER/DEALER) on ``PORT + 1``.
"""
from .book import L2Book
from .publisher import DEFAULT_BIND, Publisher, PublisherStats, replay, snapshot_address, wait_for_subscribers
from .subscriber import Subscriber, SubscriberStats, request_snapshot

__all__ = ["DEFAULT_BIND", "L2Book", "Publisher", "PublisherStats", "Subscriber", "SubscriberStats", "replay",
           "request_snapshot", "snapshot_address", "wait_for_subscribers"]
