"""When to try a failed channel again.

Only errors that are safe to retry are retried: ``RateLimited`` after the platform's
reset time, ``PlatformError`` with bounded exponential backoff and jitter. An
authentication or content error, or an unknown outcome, is never retried
automatically.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping
from typing import Any

import attrs

from humasflow.errors import ConfigurationError, PlatformError, PublishError, RateLimited
from humasflow.i18n import _

__all__ = ["RetryPolicy"]


@attrs.frozen
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter.

    Attributes:
        max_attempts: Attempts in all, the first included.
        base_delay: The delay after the first failure; doubled after each further one.
        max_delay: The longest delay between two attempts.
        jitter: The fraction by which a delay is randomly shortened (spreads workers).
        max_reset_wait: The longest wait for a rate-limit reset; a later reset ends
            the retries and asks a person.
    """

    max_attempts: int = 5
    base_delay: dt.timedelta = dt.timedelta(seconds=30)
    max_delay: dt.timedelta = dt.timedelta(minutes=30)
    jitter: float = 0.2
    max_reset_wait: dt.timedelta = dt.timedelta(hours=24)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any] | None) -> RetryPolicy:
        """Build a policy from a channel's ``retry`` settings (seconds for durations).

        Raises:
            ConfigurationError: An unknown key or a value of the wrong kind.
        """
        if not settings:
            return cls()
        known = {"max_attempts", "base_delay", "max_delay", "jitter", "max_reset_wait"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigurationError(
                _("retry setting {key!r} is unknown; known: {known}").format(
                    key=unknown[0], known=", ".join(sorted(known))))
        values: dict[str, Any] = {}
        for key, value in settings.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                if key.endswith(("delay", "wait")):
                    message = _("retry setting {key!r} is {value!r}; expected a number >= 0 "
                                "(seconds)")
                else:
                    message = _("retry setting {key!r} is {value!r}; expected a number >= 0")
                raise ConfigurationError(message.format(key=key, value=value))
            if key in ("base_delay", "max_delay", "max_reset_wait"):
                values[key] = dt.timedelta(seconds=value)
            elif key == "max_attempts":
                if value != int(value) or value < 1:
                    raise ConfigurationError(
                        _("retry setting 'max_attempts' is {value!r}; expected a whole number "
                          ">= 1 (the first attempt included)").format(value=value))
                values[key] = int(value)
            else:
                if value > 1:
                    # A shortening by more than the whole delay would retry in the past.
                    raise ConfigurationError(
                        _("retry setting 'jitter' is {value!r}; expected a fraction from 0 "
                          "to 1").format(value=value))
                values[key] = float(value)
        return cls(**values)

    def next_attempt(
        self,
        error: PublishError,
        attempts: int,
        now: dt.datetime,
        rng: random.Random | None = None,
    ) -> dt.datetime | None:
        """When to try again after ``error`` on attempt number ``attempts``, or ``None``."""
        if not error.retryable or attempts >= self.max_attempts:
            return None
        if isinstance(error, RateLimited) and error.reset_at is not None:
            reset = max(error.reset_at, now)
            return reset if reset - now <= self.max_reset_wait else None
        if not isinstance(error, (PlatformError, RateLimited)):
            return None
        # In whole microseconds: Python's integers do not overflow where a timedelta
        # doubled forty-odd times would.
        grown = _micros(self.base_delay) * 2 ** max(attempts - 1, 0)
        delay = dt.timedelta(microseconds=min(_micros(self.max_delay), grown))
        shorten = (rng or random).uniform(0, self.jitter) if self.jitter else 0.0
        return now + delay * (1 - shorten)


def _micros(delta: dt.timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
