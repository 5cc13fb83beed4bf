"""The clock seam: domain code asks an injected clock, never ``datetime.now()``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

__all__ = ["Clock", "system_clock"]

#: A clock is any callable returning the current time as an aware UTC datetime.
Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    """The real time, in UTC."""
    return dt.datetime.now(dt.timezone.utc)
