"""What sigtrade's three alpaca-py WebSocket streams share: a reconnect hook and time stamps.

alpaca-py's streams (``StockDataStream``, ``NewsDataStream`` - msgpack; ``TradingStream`` -
JSON) reconnect a dropped connection by themselves but tell nobody. :func:`hooked_stream`
subclasses one so that, after each connection is made (and subscribed), it awaits
``on_connected(n)`` - the live clients back-fill by REST there what the drop lost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pandas as pd

OnConnected = Callable[[int], Awaitable[None]]


def hooked_stream(stream_cls: type, after: str, on_connected: OnConnected) -> type:
    """A subclass of *stream_cls* whose coroutine *after* (``_send_subscribe_msg`` or ``_start_ws``) then awaits ``on_connected(n)``.

    ``n`` counts the connections of the instance: 1 on the first, more after reconnects.
    """

    async def hooked(self: Any) -> None:
        await getattr(super(cls, self), after)()
        self.connects = getattr(self, "connects", 0) + 1
        await on_connected(self.connects)

    cls = type(f"Hooked{stream_cls.__name__}", (stream_cls,), {after: hooked})
    return cls


def utc_ns(value: Any) -> int:
    """A time from Alpaca - msgpack ``Timestamp`` (raw stream frames), datetime, ISO text; naive = UTC - as UTC ns."""
    to_dt = getattr(value, "to_datetime", None)
    ts = pd.Timestamp(to_dt() if to_dt is not None else value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value)
