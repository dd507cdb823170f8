"""Binance's public market data live: a websocket connector that builds each book as Binance documents it,
publishes it on our ZeroMQ feed, and records the raw lines our Binance reader converts.

- :mod:`.markets`: endpoints and stream names of spot and USD-M futures.
- :mod:`.rest`: REST depth snapshots and exchange info, within Binance's rate limits.
- :mod:`.stream`: one symbol's messages: de-duplication, the book sequencer, events.
- :mod:`.recorder`: the raw capture, gzip, rotated, fsynced, renamed into place.
- :mod:`.connector`: websocket connections, reconnects, the 24-hour rollover, publishing, the status line.

Needs the ``websockets`` package (a dependency of the project).
"""
