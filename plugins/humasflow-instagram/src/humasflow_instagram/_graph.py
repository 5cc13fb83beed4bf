"""The Graph API at the wire: one request, and every way it can fail as humasflow's errors.

Both Instagram hosts answer errors in the Graph shape::

    {"error": {"message", "type", "code", "error_subcode", "is_transient",
               "error_user_title", "error_user_msg", "fbtrace_id"}}

and the class of an error is in its ``code`` (and ``error_subcode``), not in the HTTP
status: an expired token is a 400 with code 190. How each is mapped:

======================================  ==============================================
code / subcode                          raised
======================================  ==============================================
190, 102 (token invalid or expired)     ``AuthenticationFailed`` (renew the token)
10, 200-299 (permission missing)        ``AuthenticationFailed`` (which permissions)
9 / 2207042 (publishing limit)          :class:`PublishingLimitReached` (RateLimited)
4, 17, 32, 613, 80001-80014             ``RateLimited`` (``reset_at`` from the
                                        ``X-Business-Use-Case-Usage`` /
                                        ``X-App-Usage`` headers' estimated time)
4 / 2207051 (activity restricted)       ``ContentRejected``
1, 2, -1, -2, ``is_transient``, 5xx     ``PlatformError``, or ``OutcomeUnknown`` on a
                                        call that may have made the post public
2207020, 2207008 (container expired)    :class:`ContainerExpired` (recreated)
2207027 (container not ready)           ``PlatformError`` (tried again later)
9004 / 2207052 (media not fetched)      ``ContentRejected`` naming the URL
any other 4xx                           ``ContentRejected`` with the platform's words
======================================  ==============================================

A request that never connected (``ConnectTimeout``) is a ``PlatformError``: nothing was
sent. A request that may have arrived and got no answer raises the ``unknown`` class the
caller names: ``OutcomeUnknown`` for ``media_publish``, ``PlatformError`` where a repeat
is harmless (containers are invisible until published).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any

import requests
from humasflow import (
    AuthenticationFailed,
    ContentRejected,
    PlatformError,
    PublishError,
    RateLimited,
)

from humasflow_instagram._i18n import _

__all__ = ["ContainerExpired", "Graph", "GraphFailure", "PublishingLimitReached"]

#: Codes of the Graph API's throttling errors.
_THROTTLING = {4, 17, 32, 613, *range(80001, 80015)}
#: Codes of transient errors ("try again").
_TRANSIENT = {1, 2, -1, -2}
#: Subcodes that say a container can no longer be used: make a new one.
_EXPIRED = {2207020, 2207008}
#: Subcodes that say the media could not be fetched from its URL.
_FETCH_FAILED = {2207052, 2207003}


class GraphFailure:
    """The ``error`` object of a Graph answer, read defensively."""

    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error") if isinstance(body, Mapping) else None
        error = error if isinstance(error, Mapping) else {}
        self.status = status
        self.has_error = bool(error)
        self.code = _int(error.get("code"))
        self.subcode = _int(error.get("error_subcode"))
        self.transient = bool(error.get("is_transient"))
        self.message = str(error.get("message") or "")
        self.user_message = str(error.get("error_user_msg") or "")
        self.trace = str(error.get("fbtrace_id") or "")

    def words(self) -> str:
        """What the platform said, for a person: its user message, else its message."""
        text = self.user_message or self.message
        codes = f"code {self.code}" if self.code is not None else f"HTTP {self.status}"
        if self.subcode is not None:
            codes += f"/{self.subcode}"
        return f"{text} ({codes})" if text else codes


class PublishingLimitReached(RateLimited):
    """Instagram's publishing limit (code 9, subcode 2207042): posts per moving 24 h."""


class ContainerExpired(PlatformError):
    """The container can no longer be published (it expired): make a new one."""


class Graph:
    """Requests to one Instagram host, with the channel's token and timeout.

    Args:
        session: The session the core handed the publisher.
        base_url: ``https://graph.instagram.com`` or ``https://graph.facebook.com``.
        version: The Graph API version (``v24.0``).
        token: The access token (sent in the ``Authorization`` header, never in a URL).
        timeout: Seconds for each call.
        channel: The channel's name, for the errors.
        clock: The clock, for rate-limit reset times.
    """

    def __init__(self, *, session: requests.Session, base_url: str, version: str,
                 token: str, timeout: float, channel: str,
                 clock: Callable[[], dt.datetime]) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.version = version
        self._token = token
        self.timeout = timeout
        self.channel = channel
        self.clock = clock

    def __repr__(self) -> str:
        return f"<Graph {self.base_url}/{self.version} channel={self.channel!r}>"

    @property
    def token(self) -> str:
        """The token in use (kept out of every repr and message)."""
        return self._token

    @token.setter
    def token(self, value: str) -> None:
        self._token = value

    def url(self, path: str, *, versioned: bool = True) -> str:
        """The URL of ``path`` on this host."""
        prefix = f"{self.base_url}/{self.version}" if versioned else self.base_url
        return f"{prefix}/{path.lstrip('/')}"

    def get(self, path: str, *, params: Mapping[str, str] | None = None,
            unknown: type[PublishError] = PlatformError, risky: bool = False,
            versioned: bool = True, token_in_query: bool = False) -> dict[str, Any]:
        """``GET`` ``path``; see :meth:`request`."""
        return self.request("GET", path, params=params, unknown=unknown, risky=risky,
                            versioned=versioned, token_in_query=token_in_query)

    def post(self, path: str, *, data: Mapping[str, str],
             unknown: type[PublishError] = PlatformError,
             risky: bool = False) -> dict[str, Any]:
        """``POST`` form ``data`` to ``path``; see :meth:`request`."""
        return self.request("POST", path, data=data, unknown=unknown, risky=risky)

    def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                data: Mapping[str, str] | None = None,
                unknown: type[PublishError] = PlatformError, risky: bool = False,
                versioned: bool = True, token_in_query: bool = False) -> dict[str, Any]:
        """Send one request and return its JSON object, or raise humasflow's error.

        Args:
            unknown: What a lost answer means: ``OutcomeUnknown`` for a call that may
                have made a post public, ``PlatformError`` where a repeat is harmless.
            risky: A 5xx (or a transient error) may also have made the post public:
                raise ``unknown`` for it too.
            versioned: Put the API version in the path (``refresh_access_token`` has
                none).
            token_in_query: Send the token as ``access_token`` (where the endpoint
                documents only that).
        """
        what = f"{method} /{path.lstrip('/')}"
        headers = {}
        query = dict(params or {})
        if token_in_query:
            query["access_token"] = self._token
        else:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            response = self.session.request(
                method, self.url(path, versioned=versioned), params=query or None,
                data=data, headers=headers, timeout=self.timeout)
        except requests.ConnectTimeout:
            raise PlatformError(_("{channel}: Instagram did not accept a connection for "
                                  "{what}; nothing was sent, it will be tried again").format(
                                      channel=self.channel, what=what),
                                channel=self.channel, code="connect_timeout") from None
        except requests.RequestException as exc:
            # `from None`: a requests exception can carry the URL, and a URL can carry a
            # token (refresh_access_token).
            raise unknown(_("{channel}: no answer from Instagram to {what} ({error}); the "
                            "request may have been carried out").format(
                                channel=self.channel, what=what, error=type(exc).__name__),
                          channel=self.channel) from None
        with response:
            status = response.status_code
            try:
                body = response.json()
            except ValueError:
                body = None
            answer_headers = dict(response.headers)
        if status < 400 and isinstance(body, dict) and "error" not in body:
            return body
        raise self.error(status, body, answer_headers, what=what, unknown=unknown,
                         risky=risky)

    def error(self, status: int, body: Any, headers: Mapping[str, str], *, what: str,
              unknown: type[PublishError], risky: bool) -> PublishError:
        """The humasflow error for a Graph error answer (see the module's table); its
        ``subcode`` attribute is the Graph ``error_subcode`` (or ``None``)."""
        failure = GraphFailure(status, body)
        error = self._classify(failure, headers, what=what, unknown=unknown, risky=risky)
        error.subcode = failure.subcode  # type: ignore[attr-defined]
        return error

    def _classify(self, failure: GraphFailure, headers: Mapping[str, str], *, what: str,
                  unknown: type[PublishError], risky: bool) -> PublishError:
        status = failure.status
        channel = self.channel
        code, subcode = failure.code, failure.subcode
        said = failure.words()
        if not failure.has_error and status not in (401, 403):
            return _error(unknown if risky else PlatformError, _(
                "{channel}: Instagram answered {what} with HTTP {status} and no Graph JSON; "
                "it will be tried again").format(channel=channel, what=what, status=status),
                channel=channel, code=status)
        if code in (190, 102) or (code is None and status == 401):
            return AuthenticationFailed(_(
                "{channel}: Instagram refused the access token ({said}); renew it (see the "
                "Instagram publisher's README, 'Keep the token alive') and store the new "
                "one where the channel's credential 'token' points").format(
                    channel=channel, said=said), channel=channel, credential="token")
        if code == 10 or (code is not None and 200 <= code <= 299) or (
                code is None and status == 403):
            return AuthenticationFailed(_(
                "{channel}: the access token lacks a permission Instagram needs for {what} "
                "({said}); log in again granting instagram_business_basic and "
                "instagram_business_content_publish (Instagram Login) or instagram_basic, "
                "instagram_content_publish and pages_read_engagement (Facebook Login)").format(
                    channel=channel, what=what, said=said), channel=channel,
                credential="token")
        if code == 9 and subcode == 2207042:
            return PublishingLimitReached(_(
                "{channel}: the account reached Instagram's limit of posts per 24 hours "
                "({said})").format(channel=channel, said=said), channel=channel)
        if subcode == 2207051:
            return ContentRejected(_(
                "{channel}: Instagram restricted this action ({said}); if it is not spam, "
                "tell Instagram through the app, then post again").format(
                    channel=channel, said=said), channel=channel)
        if code in _THROTTLING:
            reset_at = self.reset_at(headers)
            when = reset_at.isoformat() if reset_at else _("after a pause")
            return RateLimited(_(
                "{channel}: Instagram is throttling this app ({said}); it will be tried "
                "again {when}").format(channel=channel, said=said, when=when),
                channel=channel, reset_at=reset_at)
        if subcode in _EXPIRED:
            return ContainerExpired(_(
                "{channel}: the Instagram container expired ({said}); a new one is "
                "made").format(channel=channel, said=said), channel=channel,
                code=subcode)
        if subcode == 2207027:
            return PlatformError(_(
                "{channel}: the Instagram container is not ready yet ({said}); it will "
                "be tried again").format(channel=channel, said=said), channel=channel,
                code=subcode)
        if status >= 500 or code in _TRANSIENT or failure.transient:
            if subcode in _FETCH_FAILED:
                pass  # a media fetch failure: the content, below
            else:
                return _error(unknown if risky else PlatformError, _(
                    "{channel}: Instagram failed on {what} ({said}); it will be tried "
                    "again").format(channel=channel, what=what, said=said),
                    channel=channel, code=status if code is None else code)
        return ContentRejected(_("{channel}: Instagram refused {what}: {said}; change "
                                 "the post and try again").format(
                                     channel=channel, what=what, said=said),
                               channel=channel)

    def reset_at(self, headers: Mapping[str, str]) -> dt.datetime | None:
        """When throttling ends, from the usage headers' ``estimated_time_to_regain_access``
        (minutes), or ``None`` if they do not say."""
        minutes = 0
        for name, value in headers.items():
            if name.lower() not in ("x-business-use-case-usage", "x-app-usage"):
                continue
            try:
                usage = json.loads(value)
            except ValueError:
                continue
            for entry in _entries(usage):
                minutes = max(minutes, _int(entry.get("estimated_time_to_regain_access")) or 0)
        if not minutes:
            return None
        return self.clock() + dt.timedelta(minutes=minutes)


def _error(cls: type[PublishError], message: str, *, channel: str,
           code: int | str) -> PublishError:
    """``cls(message)``, with the platform's ``code`` where the class keeps one."""
    if issubclass(cls, PlatformError):
        return cls(message, channel=channel, code=code)
    return cls(message, channel=channel)


def _entries(usage: Any) -> list[Mapping[str, Any]]:
    if isinstance(usage, Mapping):
        if "estimated_time_to_regain_access" in usage:
            return [usage]
        found: list[Mapping[str, Any]] = []
        for value in usage.values():
            found.extend(_entries(value))
        return found
    if isinstance(usage, list):
        return [e for v in usage for e in _entries(v)]
    return []


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

