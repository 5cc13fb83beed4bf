"""humasflow-example: a publisher for the fictional Example API at ``example.invalid``.

Copy this distribution to start a publisher for a real platform (see README.md). The
Example API takes a post in one call::

    POST {base_url}/v1/posts   {"text", "media_urls", "link", "client_ref"}
        → 201 {"id", "url"}
    GET  {base_url}/v1/posts?client_ref=...   → {"data": [post, ...]}   (lookup)
    GET  {base_url}/v1/me                     → {"id", "handle"}       (check)

with a bearer token, errors as ``{"error": {"code", "message"}}``, and a 429 that
carries the reset time in ``X-RateLimit-Reset`` (Unix seconds).

Channel settings: ``base_url`` (default ``https://api.example.invalid``), ``timeout``
(seconds, default 10). Credentials: ``token``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import requests
from humasflow import (
    AuthenticationFailed,
    ChannelConfig,
    ContentRejected,
    OutcomeUnknown,
    PlatformError,
    Post,
    Problem,
    PublisherContext,
    PublishError,
    RateLimited,
    Receipt,
    hookimpl,
    unknown_options,
)

__all__ = ["PUBLISHER", "ExamplePublisher", "register_publishers"]

__version__ = "0.1.0"

#: The name channels use for this publisher (``office.add_channel(..., PUBLISHER, ...)``);
#: the tests take it from here. Rename it with the entry point in ``pyproject.toml``.
PUBLISHER = "example"

MAX_LENGTH = 500
MAX_MEDIA = 4


class ExamplePublisher:
    """Posts to the Example API; looks a post up by its ``client_ref`` to reconcile."""

    def __init__(self, channel: ChannelConfig, context: PublisherContext) -> None:
        self.channel = channel.name
        self.base_url = str(channel.settings.get("base_url", "https://api.example.invalid"))
        self.base_url = self.base_url.rstrip("/")
        self.timeout = float(channel.settings.get("timeout", 10))
        # The secret stays in a private attribute that no message or repr shows.
        self._token = context.credentials.get("token", "")
        self._session = context.session

    def __repr__(self) -> str:
        return f"<ExamplePublisher channel={self.channel!r} base_url={self.base_url!r}>"

    def validate(self, post: Post) -> list[Problem]:
        """Check the post against the Example API's rules, without any network call."""
        # Example has no per-post options: a channel variant that sets one is a mistake
        # (a publisher with options lists the names it takes here instead).
        problems = unknown_options(post, ())
        if not post.text.strip():
            problems.append(Problem(self.channel, "text", "required", "the post has no text"))
        if len(post.text) > MAX_LENGTH:
            problems.append(Problem(
                self.channel, "text", "max_length",
                f"the text has {len(post.text)} characters; Example takes {MAX_LENGTH}",
                limit=MAX_LENGTH, actual=len(post.text)))
        if len(post.media) > MAX_MEDIA:
            problems.append(Problem(self.channel, "media", "max_count",
                                    f"{len(post.media)} media files; Example takes "
                                    f"{MAX_MEDIA}", limit=MAX_MEDIA, actual=len(post.media)))
        for i, media in enumerate(post.media):
            if not media.public_url:
                problems.append(Problem(
                    self.channel, f"media[{i}]", "public_url",
                    f"{media.source!r} has no public URL; Example fetches media itself, so "
                    "configure a media host (see humasflow.publishing.media) or set the "
                    "channel's media_urls = \"pass\"",
                    actual=media.source))
        return problems

    def publish(self, post: Post, progress: Any) -> Receipt:
        """Post it once. A retry after an answer was lost looks for the post first."""
        ref = client_ref(post)
        if progress.get("sent"):
            # An earlier attempt sent the post and may have made it (a 5xx after the
            # work was done): never send it again without looking.
            found = self._find(ref, unknown=PlatformError)
            if found is not None:
                return found
        progress.save(sent=ref)
        answer = self._request("POST", "/v1/posts", json={
            "text": post.text, "media_urls": [m.public_url for m in post.media],
            "link": post.link, "client_ref": ref}, unknown=OutcomeUnknown)
        return Receipt(str(answer["id"]), str(answer.get("url", "")))

    def reconcile(self, post: Post, progress: Any) -> Receipt | None:
        """Look the post up by its ``client_ref``: found, certainly absent, or raise."""
        return self._find(client_ref(post), unknown=OutcomeUnknown)

    def check(self) -> None:
        """Ask the API whose token this is; raises AuthenticationFailed if refused."""
        self._request("GET", "/v1/me", unknown=PlatformError)

    # -- the wire ---------------------------------------------------------------------------

    def _find(self, ref: str, *, unknown: type[PublishError]) -> Receipt | None:
        answer = self._request("GET", "/v1/posts", params={"client_ref": ref},
                               unknown=unknown)
        found = answer.get("data") or []
        if not found:
            return None
        return Receipt(str(found[0]["id"]), str(found[0].get("url", "")))

    def _request(self, method: str, path: str, *, unknown: type[PublishError],
                 json: Mapping[str, Any] | None = None,
                 params: Mapping[str, str] | None = None) -> Mapping[str, Any]:
        """Send one request and turn every way it can fail into humasflow's errors.

        Args:
            unknown: What a lost answer means: ``OutcomeUnknown`` for a call that may
                have posted, ``PlatformError`` for one that is harmless to repeat.
        """
        what = f"{method} {path}"
        try:
            response = self._session.request(
                method, self.base_url + path, json=json, params=params, timeout=self.timeout,
                headers={"Authorization": f"Bearer {self._token}"})
        except requests.ConnectTimeout:
            # No connection was made, so nothing was sent: safe to try again.
            raise PlatformError(f"{self.channel}: Example did not accept a connection for "
                                f"{what}; it will be tried again", channel=self.channel,
                                code="connect_timeout") from None
        except requests.RequestException as exc:
            # `from None`: the request exception's text is not needed, and what is not
            # shown cannot leak.
            raise unknown(f"{self.channel}: no answer from Example to {what} "
                          f"({type(exc).__name__}); the request may have been carried out",
                          channel=self.channel) from None
        with response:
            status = response.status_code
            try:
                body = response.json()
            except ValueError:
                body = None
        error = body.get("error") if isinstance(body, dict) else None
        message = str((error or {}).get("message") or response.reason or "")
        if status in (401, 403):
            raise AuthenticationFailed(
                f"{self.channel}: Example refused the token ({status}: {message}); create a "
                "new token in Example's settings and set it again", channel=self.channel,
                credential="token")
        if status == 429:
            reset_at = _reset_at(response.headers.get("X-RateLimit-Reset"))
            when = reset_at.isoformat() if reset_at else "later"
            raise RateLimited(f"{self.channel}: Example's rate limit is reached; it resets "
                              f"at {when}", channel=self.channel, reset_at=reset_at)
        if status >= 500:
            raise PlatformError(f"{self.channel}: Example failed ({status}: {message})",
                                channel=self.channel, code=status)
        if status >= 400:
            raise ContentRejected(f"{self.channel}: Example refused the post ({status}: "
                                  f"{message}); change the post and try again",
                                  channel=self.channel)
        if not isinstance(body, dict):
            raise PlatformError(f"{self.channel}: Example answered {what} without JSON",
                                channel=self.channel, code=status)
        return body


def client_ref(post: Post) -> str:
    """The reference sent with a post, so that a lookup finds exactly this post: its
    idempotency key, which no other item, channel or store shares (an item number alone
    repeats across stores)."""
    return post.idempotency_key or f"humasflow:{post.item_id}:{post.channel}"


def _reset_at(value: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(int(float(value or "")), dt.timezone.utc)
    except (ValueError, OverflowError):
        return None


@hookimpl
def register_publishers(register: Callable[..., None]) -> None:
    """Register the publisher under its name, :data:`PUBLISHER`."""
    register(PUBLISHER, ExamplePublisher)
