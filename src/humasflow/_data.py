"""Turning values into plain, JSON-able data for the record."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from humasflow.models import Media, Variant


def plain(value: Any) -> Any:
    """Return ``value`` as JSON-able data: mappings, lists, strings, numbers.

    Media become their dicts, aware datetimes ISO text in UTC, dates ISO text.
    """
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Media):
        return value.to_dict()
    if isinstance(value, Variant):
        return plain(value.to_data())
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc)
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return value
