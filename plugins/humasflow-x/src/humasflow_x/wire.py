"""The wire to X: auth, timeouts, the API host, and X's answers as humasflow's errors.

Every request, tweepy's and the media uploader's, goes through the session the core
hands the publisher (``context.session``), through :class:`Wire`, which adds the
channel's timeout (tweepy sets none), signs the request with the channel's auth
(OAuth 1.0a user context, or an OAuth 2.0 user token), and, where a setting points the
channel at another host (a local fake X), rewrites the API host.

tweepy's ``Client`` is given a placeholder bearer token: it logs the headers it sends
at debug level, so the real token is only added here, below tweepy's logging.

X's answers (RFC 7807 problem bodies; tweepy raises subclasses of
``tweepy.HTTPException``) become humasflow's errors in :func:`translate`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import requests
import tweepy
from humasflow import (
    AuthenticationFailed,
    ContentRejected,
    PlatformError,
    PublishError,
    RateLimited,
)
from humasflow.scrubbing import get_logger
from requests.auth import AuthBase

from humasflow_x._i18n import _

__all__ = ["API_HOSTS", "PLACEHOLDER", "Bearer", "Duplicate", "Wire", "raise_for_status",
           "translate"]

#: The hosts X answers on: tweepy calls the first, the v2 media endpoints the second.
API_HOSTS = ("https://api.twitter.com", "https://api.x.com")

#: What tweepy's Client gets as its bearer token: never a credential.
PLACEHOLDER = "humasflow-x-signs-below-tweepy"

_DUPLICATE = "duplicate content"

#: The libraries on the wire that log what they send at debug level (tweepy its
#: headers, requests-oauthlib its client with the consumer key and token): their lines
#: go through humasflow's scrubbing filter, which removes every credential value.
LIBRARY_LOGGERS = ("tweepy.client", "requests_oauthlib.oauth1_auth",
                   "oauthlib.oauth1.rfc5849", "oauthlib.oauth1.rfc5849.signature",
                   "oauthlib.common")
for _name in LIBRARY_LOGGERS:
    get_logger(_name)


class Bearer(AuthBase):
    """An OAuth 2.0 user access token, as a ``requests`` auth that shows no secret."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "<Bearer token>"


class Wire:
    """What tweepy's ``Client.session`` and the media uploader send through.

    Args:
        session: The session the core handed the publisher.
        auth: The channel's auth (``requests`` auth object), or ``None``.
        timeout: Seconds for connecting and for each read.
        api_url: Another base URL for every X host (a local fake X), or ``""``.
    """

    def __init__(self, session: requests.Session, auth: AuthBase | None, timeout: float,
                 api_url: str = "") -> None:
        self._session = session
        self._auth = auth
        self.timeout = timeout
        self.api_url = api_url.rstrip("/")

    def __repr__(self) -> str:
        return f"<Wire timeout={self.timeout} api_url={self.api_url!r}>"

    def set_auth(self, auth: AuthBase | None) -> None:
        """Sign from now on with ``auth`` (after an OAuth 2.0 refresh)."""
        self._auth = auth

    def url(self, url: str) -> str:
        """``url`` on the configured host."""
        if self.api_url:
            for host in API_HOSTS:
                if url.startswith(host):
                    return self.api_url + url[len(host):]
        return url

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Send one request: timeout, auth and host added (tweepy's session interface)."""
        headers = dict(kwargs.pop("headers", None) or {})
        if headers.get("Authorization") == f"Bearer {PLACEHOLDER}":
            del headers["Authorization"]
        if kwargs.get("auth") is None:
            kwargs["auth"] = self._auth
        kwargs.setdefault("timeout", self.timeout)
        return self._session.request(method, self.url(url), headers=headers, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        """``request("POST", url, ...)``."""
        return self.request("POST", url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        """``request("GET", url, ...)``."""
        return self.request("GET", url, **kwargs)


class Duplicate(ContentRejected):
    """X refused a post as a duplicate of one the account already made (403)."""


def raise_for_status(response: requests.Response) -> None:
    """Raise tweepy's exception for an error answer, as tweepy's Client does, so that the
    media endpoints' errors are translated like the post endpoints'."""
    status = response.status_code
    if 200 <= status < 300:
        return
    error: type[tweepy.HTTPException] = {
        400: tweepy.BadRequest, 401: tweepy.Unauthorized, 403: tweepy.Forbidden,
        404: tweepy.NotFound, 429: tweepy.TooManyRequests}.get(
            status, tweepy.TwitterServerError if status >= 500 else tweepy.HTTPException)
    raise error(response)


def translate(exc: BaseException, *, channel: str, what: str, auth_kind: str,
              now: dt.datetime, unknown: type[PublishError] = PlatformError) -> PublishError:
    """The humasflow error for an exception from a call to X.

    Args:
        exc: What tweepy, ``requests`` or :func:`raise_for_status` raised.
        channel: The channel's name.
        what: The call, in words (``"creating post 2 of 3"``).
        auth_kind: ``"oauth1"`` or ``"oauth2"``, to say which credential to renew.
        now: The current time (a reset time in the past is no reset time).
        unknown: What a lost answer means: :class:`OutcomeUnknown` for a call that may
            have posted, :class:`PlatformError` for one that is harmless to repeat.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return PlatformError(_("{channel}: X did not accept a connection while {what}; "
                               "nothing was sent, it will be tried again").format(
                                   channel=channel, what=what),
                             channel=channel, code="connect_timeout")
    if isinstance(exc, requests.RequestException):
        return unknown(_("{channel}: no answer from X while {what} ({error}); the request "
                         "may have been carried out").format(
                             channel=channel, what=what, error=type(exc).__name__),
                       channel=channel)
    if not isinstance(exc, tweepy.HTTPException):
        return unknown(_("{channel}: unexpected failure while {what} ({error})").format(
            channel=channel, what=what, error=type(exc).__name__), channel=channel)
    response = exc.response
    status = int(getattr(response, "status_code", 0) or 0)
    detail = "; ".join(str(m) for m in exc.api_messages) or str(
        getattr(response, "reason", "") or status)
    body = _json(response)
    if status == 401:
        if auth_kind == "oauth1":
            renew = _("the access token and secret (or the consumer key and secret) were "
                      "refused: generate them again in the X developer portal (Keys and "
                      "tokens) and set them in the channel's credential source")
            credential = "access_token"
        else:
            renew = _("the OAuth 2.0 access token was refused (they last 2 hours): "
                      "authorise the app again, or give the channel a refresh token and a "
                      "credential source that can keep it")
            credential = "access_token"
        return AuthenticationFailed(_("{channel}: X refused the credentials while {what} "
                                      "({detail}); {renew}").format(
                                          channel=channel, what=what, detail=detail,
                                          renew=renew),
                                    channel=channel, credential=credential)
    if status == 403:
        if _DUPLICATE in detail.lower():
            return Duplicate(_("{channel}: X refused the post as duplicate content while "
                               "{what}").format(channel=channel, what=what), channel=channel)
        return AuthenticationFailed(_("{channel}: X refused this for lack of access while "
                                      "{what} ({detail}); {level}").format(
                                          channel=channel, what=what, detail=detail,
                                          level=_access_level(detail, body, auth_kind)),
                                    channel=channel, credential="access_token")
    if status == 429:
        reset_at = reset_time(response.headers, now)
        when = reset_at.isoformat() if reset_at else _("an unknown time")
        return RateLimited(_("{channel}: X's rate limit is reached while {what}; it resets "
                             "at {when}").format(channel=channel, what=what, when=when),
                           channel=channel, reset_at=reset_at)
    if status >= 500:
        return PlatformError(_("{channel}: X failed while {what} ({status}: {detail}); it "
                               "will be tried again").format(
                                   channel=channel, what=what, status=status, detail=detail),
                             channel=channel, code=status)
    if 400 <= status < 500:
        return ContentRejected(_("{channel}: X refused the request while {what} ({status}: "
                                 "{detail}); change the post and try again").format(
                                     channel=channel, what=what, status=status,
                                     detail=detail), channel=channel)
    return unknown(_("{channel}: X answered {status} while {what}").format(
        channel=channel, status=status, what=what), channel=channel)


def reset_time(headers: Mapping[str, str], now: dt.datetime) -> dt.datetime | None:
    """When a 429 ends: the 15-minute window's ``x-rate-limit-reset`` or, for a limit
    per 24 hours that is used up, ``x-user-limit-24hour-reset`` /
    ``x-app-limit-24hour-reset``: whichever of those is latest. A daily limit whose
    ``-remaining`` header is above 0 is not the one that was hit and is left out."""
    found: list[dt.datetime] = []
    for prefix in ("x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour"):
        value = headers.get(f"{prefix}-reset")
        if value is None:
            continue
        remaining = headers.get(f"{prefix}-remaining")
        if prefix != "x-rate-limit" and remaining not in (None, "", "0"):
            continue
        try:
            found.append(dt.datetime.fromtimestamp(int(float(value)), dt.timezone.utc))
        except (ValueError, OverflowError, OSError):
            continue
    later = [t for t in found if t > now]
    return max(later) if later else None


def _json(response: Any) -> Mapping[str, Any]:
    try:
        body = response.json()
    except (ValueError, AttributeError):
        return {}
    return body if isinstance(body, dict) else {}


def _access_level(detail: str, body: Mapping[str, Any], auth_kind: str) -> str:
    """What access the app lacks, from X's 403 answer."""
    text = f"{detail} {body.get('reason', '')} {body.get('type', '')}".lower()
    if "client-not-enrolled" in text or "client-forbidden" in text:
        return _("the app is not attached to a Project with access to the X API v2 (or "
                 "the plan does not include this endpoint): in the X developer portal, add "
                 "the app to a Project on a plan that allows posting")
    if "oauth1" in text or ("permission" in text and auth_kind == "oauth1"):
        return _("the app's permissions are not \"Read and write\": in the X developer "
                 "portal set User authentication settings → App permissions to Read and "
                 "write, then generate the access token and secret again (old tokens keep "
                 "the old permissions)")
    if auth_kind == "oauth2":
        return _("the OAuth 2.0 token lacks a scope: authorise the app again with the "
                 "scopes tweet.read tweet.write users.read media.write offline.access")
    return _("the app or the account may not do this: check the app's permissions (Read "
             "and write) and the account's standing in the X developer portal")
