"""The publisher contract: what a publisher plugin must provide.

A plugin registers a *factory* through the ``register_publishers`` hook::

    @hookimpl
    def register_publishers(register):
        register("mastodon", MastodonPublisher)

The factory is called as ``factory(channel, context)`` with the
:class:`~humasflow.models.ChannelConfig` and a :class:`PublisherContext`, and returns an
object with these methods:

``validate(post) -> list[Problem]``
    Check the post against the platform's rules without any network call. An empty
    list means it can be posted.
``publish(post, progress) -> Receipt``
    Post it and return the platform's id and public URL. A publisher that needs several
    calls (upload, create, publish) calls ``progress.save(key=value)`` after each call
    that creates something on the platform, so that ``reconcile`` can find it after a
    crash. Raise a subclass of
    :class:`~humasflow.errors.PublishError`: ``AuthenticationFailed`` (credential
    refused), ``ContentRejected`` (the platform refused the content), ``RateLimited``
    (with ``reset_at``), ``PlatformError`` (transient/server) or ``OutcomeUnknown``
    (the request may have reached the platform), or ``WaitingForPerson`` (no API: a
    person posts by hand). Any other exception is treated as an unknown outcome.
``reconcile(post, progress) -> Receipt | None`` (optional)
    After an unknown outcome: look the post up on the platform. Return its receipt if
    it is there, ``None`` if it is certainly not there (it may then be posted again),
    or raise ``OutcomeUnknown`` if it cannot tell. Without ``reconcile`` a person
    confirms (``humasflow confirm``).
``check() -> None``
    Verify the credentials without posting; raise ``AuthenticationFailed`` if refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from humasflow.clock import Clock, system_clock
from humasflow.models import Media

if TYPE_CHECKING:
    import requests

__all__ = ["Post", "Problem", "Publisher", "PublisherContext", "Receipt"]


@attrs.frozen
class Problem:
    """One reason a post cannot go to a channel.

    Attributes:
        channel: The channel name.
        field: The part of the post (``text``, ``media[0]``, ``link``…).
        rule: A short rule name (``max_length``, ``file_exists``…).
        message: What is wrong, in words.
        limit: The allowed limit, where there is one.
        actual: The value found.
    """

    channel: str
    field: str
    rule: str
    message: str
    limit: Any = None
    actual: Any = None

    def __str__(self) -> str:
        return f"{self.channel}: {self.field}: {self.message}"


@attrs.frozen
class Receipt:
    """What a platform answered to a successful post."""

    platform_id: str
    url: str = ""


@attrs.frozen
class Post:
    """One item's post as one channel receives it.

    Attributes:
        item_id: The content item's number.
        channel: The channel name.
        title: The item's title.
        text: The text for this channel (its variant, if any).
        media: The media to attach (produced media, else the design), each with its
            ``sha256``, ``mime``, ``kind``, ``size`` (and ``width``/``height``/
            ``duration`` where known); read the bytes through
            :attr:`PublisherContext.media`. ``url`` is a public URL of the stored bytes
            when a media host gave one; pass-through media carry only their URL.
        link: A link to share, if any.
    """

    item_id: int
    channel: str
    title: str
    text: str
    media: tuple[Media, ...] = ()
    link: str = ""


@attrs.frozen
class PublisherContext:
    """What the core hands a publisher factory: its I/O and secrets.

    Attributes:
        credentials: Credential name → value, read from the environment variables the
            channel names. Never stored, logged or shown.
        session: The HTTP session to use (tests swap the wire through it).
        clock: The clock.
        media: The media store the post's media are read from:
            ``with context.media.open(media) as f: ...`` (a binary file),
            ``context.media.read(media)`` (bytes) or ``context.media.path(media)`` (a
            read-only local file), each after checking the bytes' hash
            (:class:`~humasflow.errors.MediaUnavailable` if they changed). ``None``
            when the office has no media store configured.
    """

    credentials: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    session: requests.Session = attrs.field(factory=lambda: new_session(), repr=False)
    clock: Clock = system_clock
    media: Any = attrs.field(default=None, repr=False)


def new_session() -> requests.Session:
    """A new HTTP session (``requests`` is imported on first use, not at import time)."""
    import requests

    return requests.Session()


@runtime_checkable
class Publisher(Protocol):
    """The methods every publisher has."""

    def validate(self, post: Post) -> list[Problem]:
        """Return the problems that stop ``post`` from going to this channel."""

    def publish(self, post: Post, progress: Any) -> Receipt:
        """Post it; return the platform's id and URL, or raise a PublishError."""

    def check(self) -> None:
        """Verify the credentials without posting."""
