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
``check() -> str | None``
    Verify the credentials without posting; raise ``AuthenticationFailed`` if refused.
    It may return one line about what it read (the account's name, the token's
    expiry), which ``humasflow channels check`` prints after OK.

A factory may also offer ``prepare_settings(settings) -> settings`` (a static method of
the publisher class): :meth:`~humasflow.office.Office.add_channel` calls it once, and
stores what it returns (the outbox makes its ``path`` absolute).

A publisher whose platform hands out new tokens (an OAuth refresh) gives the new value
back with ``context.refresh_credential(name, value, expires_at=…)``; one that learns
when a credential expires reports it with ``context.credential_expires(name, at)``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from humasflow.clock import Clock, system_clock
from humasflow.errors import ConfigurationError
from humasflow.i18n import _
from humasflow.models import Media

if TYPE_CHECKING:
    import requests

__all__ = [
    "CHANNEL_SETTINGS",
    "Post",
    "Problem",
    "Publisher",
    "PublisherContext",
    "Receipt",
    "check_settings",
    "idempotency_key",
    "unknown_options",
]


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
            channel's variant chooses them, each with its ``sha256``, ``mime``,
            ``kind``, ``size`` (and ``width``/``height``/``duration`` where known);
            read the bytes through :attr:`PublisherContext.media`. ``url`` is a public
            URL of the stored bytes when a media host gave one; pass-through media
            carry only their URL.
        link: A link to share, if any.
        options: The channel variant's publisher options (thread, poll, reel, album…).
            A publisher reports options it does not know from ``validate`` (see
            :func:`unknown_options`), so a mistyped option is caught before approval.
        idempotency_key: This post's identity beyond the store: the same for every
            attempt at this item on this channel, different for every other item,
            channel and store (see :func:`idempotency_key`). Reconcile by it, and hand
            it to the platform as a client reference where it takes one.
    """

    item_id: int
    channel: str
    title: str
    text: str
    media: tuple[Media, ...] = ()
    link: str = ""
    options: Mapping[str, Any] = attrs.field(factory=dict)
    idempotency_key: str = ""


def idempotency_key(store_uuid: str, item_key: str, channel: str) -> str:
    """The idempotency key of an item's post on a channel.

    ``"hf-"`` and 32 lowercase hex digits (the first 128 bits of a SHA-256 of the
    store's UUID, the item's globally unique key and the channel name): 35 characters
    of ``[a-z0-9-]``, so it fits platforms' client-reference fields and file names.
    """
    blob = "\x00".join(("humasflow-post", store_uuid, item_key, channel))
    return "hf-" + hashlib.sha256(blob.encode()).hexdigest()[:32]


@attrs.frozen
class PublisherContext:
    """What the core hands a publisher factory: its I/O and secrets.

    Attributes:
        credentials: Credential name → value, read through the office's credential
            source (the environment, a secrets file, a vault). Never stored, logged or
            shown: humasflow scrubs these values from every message it records.
        session: The HTTP session to use (tests swap the wire through it).
        clock: The clock.
        channel: The channel's name.
        on_refresh: Called by :meth:`refresh_credential` (set by the office).
        on_expiry: Called by :meth:`credential_expires` (set by the office).
        credentials_writable: Whether the office's credential source keeps a renewed
            credential durably (a secrets file, a vault): a publisher whose platform
            hands out single-use refresh tokens (an OAuth 2.0 refresh) refreshes only
            then, since a refreshed token the source cannot keep is lost when the
            process ends, and the old one no longer works.
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
    channel: str = ""
    credentials_writable: bool = False
    on_refresh: Callable[[str, str, dt.datetime | None], Any] | None = attrs.field(
        default=None, repr=False)
    on_expiry: Callable[[str, dt.datetime], Any] | None = attrs.field(default=None,
                                                                     repr=False)

    def refresh_credential(self, name: str, value: str, *,
                           expires_at: dt.datetime | None = None) -> None:
        """Hand back a renewed credential (e.g. after an OAuth token refresh).

        The office writes it to its credential source if that source is writable (a
        secrets file), else keeps it for this process and warns that the environment
        must be updated; either way the rotation is recorded in the organisation's
        record without the value, with ``expires_at`` if given. From now on
        :attr:`credentials` holds the new value.

        Args:
            name: The credential's name in the channel (``"access_token"``).
            value: The new value.
            expires_at: When it expires (aware), if the platform said.

        Raises:
            ConfigurationError: ``name`` is not one of the channel's credentials, or the
                value is empty.
        """
        self._check_name(name)
        if not isinstance(value, str) or not value:
            raise ConfigurationError(_("channel {channel!r}: the renewed credential "
                                       "{name!r} is empty").format(channel=self.channel,
                                                                   name=name))
        _check_aware(expires_at, "expires_at")
        if self.on_refresh is not None:
            self.on_refresh(name, value, expires_at)
        if isinstance(self.credentials, MutableMapping):
            self.credentials[name] = value

    def credential_expires(self, name: str, at: dt.datetime) -> None:
        """Report when a credential expires, so people are warned in time
        (``Office.credential_warnings()``, ``humasflow channels check``).

        Raises:
            ConfigurationError: ``name`` is not one of the channel's credentials.
        """
        self._check_name(name)
        _check_aware(at, "at")
        if self.on_expiry is not None:
            self.on_expiry(name, at)

    def _check_name(self, name: str) -> None:
        if name not in self.credentials:
            if self.credentials:
                message = _("channel {channel!r} has no credential {name!r}; its "
                            "credentials: {known}")
            else:
                message = _("channel {channel!r} has no credential {name!r}; its "
                            "credentials: none")
            raise ConfigurationError(message.format(
                channel=self.channel, name=name, known=", ".join(sorted(self.credentials))))


def _check_aware(when: dt.datetime | None, what: str) -> None:
    if when is not None and (not isinstance(when, dt.datetime) or when.tzinfo is None):
        raise ValueError(_("{what} is {when!r}; give an aware datetime (UTC)").format(
            what=what, when=when))


def unknown_options(post: Post, known: Iterable[str]) -> list[Problem]:
    """The problems for options of ``post`` that the publisher does not take.

    >>> post = Post(item_id=1, channel="x", title="t", text="hi", options={"thred": True})
    >>> [str(p) for p in unknown_options(post, ["thread", "poll"])]
    ["x: options.thred: this channel takes no option 'thred'; it takes poll, thread"]
    """
    known = sorted(known)
    if known:
        message = _("this channel takes no option {name!r}; it takes {known}")
    else:
        message = _("this channel takes no option {name!r}; it takes no options")
    return [Problem(post.channel, f"options.{name}", "option",
                    message.format(name=name, known=", ".join(known)), limit=tuple(known),
                    actual=name)
            for name in sorted(post.options) if name not in known]


#: The settings every channel takes, whatever its publisher: read by the office and the
#: dispatcher (``media_urls``, ``media_max_bytes``, ``retry``).
CHANNEL_SETTINGS = ("media_max_bytes", "media_urls", "retry")


def check_settings(publisher: str, settings: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuse a setting that neither the publisher nor every channel takes, so that a
    misspelt key fails when the channel is configured instead of being ignored.

    Call it from a factory's ``prepare_settings(settings)``.

    >>> check_settings("outbox", {"paht": "out"}, ["path"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    humasflow.errors.ConfigurationError: the outbox publisher takes no setting 'paht'; ...

    Raises:
        ConfigurationError: A setting is unknown (the message lists the known ones).
    """
    takes = sorted({*known, *CHANNEL_SETTINGS})
    for key in sorted(settings):
        if key not in takes:
            raise ConfigurationError(_(
                "the {publisher} publisher takes no setting {key!r}; it takes {known}").format(
                    publisher=publisher, key=key, known=", ".join(takes)))


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

    def check(self) -> str | None:
        """Verify the credentials without posting; optionally say what was read."""
