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

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from humasflow.clock import Clock, system_clock
from humasflow.models import Media

if TYPE_CHECKING:
    import requests

__all__ = ["Post", "Problem", "Publisher", "PublisherContext", "Receipt", "unknown_options"]


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
        media: The media to attach (produced media, else the design), as the
            channel's variant chooses them.
        link: A link to share, if any.
        options: The channel variant's publisher options (thread, poll, reel, album…).
            A publisher reports options it does not know from ``validate`` (see
            :func:`unknown_options`), so a mistyped option is caught before approval.
    """

    item_id: int
    channel: str
    title: str
    text: str
    media: tuple[Media, ...] = ()
    link: str = ""
    options: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class PublisherContext:
    """What the core hands a publisher factory: its I/O and secrets.

    Attributes:
        credentials: Credential name → value, read from the environment variables the
            channel names. Never stored, logged or shown.
        session: The HTTP session to use (tests swap the wire through it).
        clock: The clock.
    """

    credentials: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    session: requests.Session = attrs.field(factory=lambda: new_session(), repr=False)
    clock: Clock = system_clock


def unknown_options(post: Post, known: Iterable[str]) -> list[Problem]:
    """The problems for options of ``post`` that the publisher does not take.

    >>> post = Post(item_id=1, channel="x", title="t", text="hi", options={"thred": True})
    >>> [str(p) for p in unknown_options(post, ["thread", "poll"])]
    ["x: options.thred: this channel takes no option 'thred'; it takes poll, thread"]
    """
    known = sorted(known)
    takes = f"it takes {', '.join(known)}" if known else "it takes no options"
    return [Problem(post.channel, f"options.{name}", "option",
                    f"this channel takes no option {name!r}; {takes}", limit=tuple(known),
                    actual=name)
            for name in sorted(post.options) if name not in known]


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
