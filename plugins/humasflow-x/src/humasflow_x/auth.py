"""The channel's credentials: OAuth 1.0a user context or an OAuth 2.0 user token.

A channel names one of two sets of credentials (each a reference into the office's
credential source, never a value):

OAuth 1.0a user context (tokens that do not expire)
    ``consumer_key``, ``consumer_secret``, ``access_token``, ``access_token_secret``.
OAuth 2.0 user token (Authorization Code with PKCE)
    ``access_token``; for refreshing, ``refresh_token`` and ``client_id`` (and
    ``client_secret`` for a confidential client); optionally ``expires_at``, when the
    access token expires (ISO 8601 or Unix seconds).

An OAuth 2.0 access token lasts two hours and each refresh token works once. The
publisher refreshes only where the credential source keeps the renewed tokens (a secrets
file, a vault: ``context.credentials_writable``): a refreshed token that the source
cannot keep is lost with the process, and the old refresh token no longer works.
Elsewhere it reports the expiry it knows and refuses, before any call, a token that has
expired, saying by when to renew it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import requests
import tweepy
from humasflow import AuthenticationFailed, ConfigurationError, PlatformError, PublisherContext
from humasflow.scrubbing import remember_secret
from requests.auth import AuthBase, HTTPBasicAuth

from humasflow_x._i18n import _
from humasflow_x.wire import Bearer, Wire

__all__ = ["OAUTH1", "OAUTH2", "TOKEN_URL", "Credentials"]

OAUTH1 = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
OAUTH2 = ("access_token", "refresh_token", "client_id", "client_secret", "expires_at")
TOKEN_URL = "https://api.x.com/2/oauth2/token"  # noqa: S105 - a URL, not a secret
#: Refresh this long before the access token expires.
MARGIN = dt.timedelta(minutes=5)


class Credentials:
    """The channel's credentials, their auth object, and the OAuth 2.0 refresh.

    Raises:
        ConfigurationError: The channel names neither set completely.
    """

    def __init__(self, context: PublisherContext, *, required: bool = True) -> None:
        self._context = context
        self._values: Mapping[str, str] = context.credentials
        self.channel = context.channel
        for name, value in self._values.items():
            if name != "expires_at":
                remember_secret(value)  # scrubbed from every log line and message
        names = set(self._values)
        if "consumer_key" in names or "consumer_secret" in names:
            self.kind = "oauth1"
            missing = [n for n in OAUTH1 if n not in names]
        else:
            self.kind = "oauth2"
            missing = [] if "access_token" in names else ["access_token"]
        if required and missing:
            raise ConfigurationError(_(
                "channel {channel!r}: the X publisher needs the credentials {missing} "
                "(OAuth 1.0a: {oauth1}; OAuth 2.0: access_token, and refresh_token and "
                "client_id to refresh it)").format(
                    channel=self.channel, missing=", ".join(missing),
                    oauth1=", ".join(OAUTH1)))

    def __repr__(self) -> str:
        return f"<Credentials {self.kind} channel={self.channel!r}>"

    @property
    def label(self) -> str:
        """The auth kind in words."""
        return "OAuth 1.0a user context" if self.kind == "oauth1" else "OAuth 2.0 user token"

    def _get(self, name: str) -> str:
        return str(self._context.credentials.get(name) or "")

    def auth(self) -> AuthBase:
        """The ``requests`` auth that signs a request as the channel's account."""
        if self.kind == "oauth1":
            handler = tweepy.OAuth1UserHandler(
                self._get("consumer_key"), self._get("consumer_secret"),
                self._get("access_token"), self._get("access_token_secret"))
            signed: AuthBase = handler.apply_auth()
            return signed
        return Bearer(self._get("access_token"))

    @property
    def can_refresh(self) -> bool:
        """An OAuth 2.0 token with what a refresh needs, on a source that keeps it."""
        return (self.kind == "oauth2" and bool(self._get("refresh_token"))
                and bool(self._get("client_id")) and self._context.credentials_writable)

    def expires_at(self) -> dt.datetime | None:
        """When the OAuth 2.0 access token expires, if the channel says."""
        value = self._get("expires_at").strip()
        if self.kind != "oauth2" or not value:
            return None
        try:
            if value.replace(".", "", 1).isdigit():
                return dt.datetime.fromtimestamp(float(value), dt.timezone.utc)
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except (ValueError, OverflowError, OSError):
            raise ConfigurationError(_(
                "channel {channel!r}: the credential expires_at is not a time; give ISO "
                "8601 (2026-01-05T11:00:00+07:00) or Unix seconds").format(
                    channel=self.channel)) from None
        return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)

    def ensure_fresh(self, wire: Wire, now: dt.datetime) -> None:
        """Before a call: refresh a token that is about to expire, where it can be kept;
        refuse an expired one that cannot be refreshed, saying by when to renew."""
        if self.kind != "oauth2":
            return
        expires = self.expires_at()
        if expires is not None:
            self._context.credential_expires("access_token", expires)
        if expires is None or now < expires - MARGIN:
            return
        if self.can_refresh:
            self.refresh(wire, now)
            return
        raise AuthenticationFailed(_(
            "{channel}: the OAuth 2.0 access token expires at {when} and cannot be "
            "refreshed here ({why}); renew it by {when}: authorise the app again and set "
            "the new access token (and expires_at)").format(
                channel=self.channel, when=expires.isoformat(), why=self._why_not()),
            channel=self.channel, credential="access_token")

    def _why_not(self) -> str:
        if not self._get("refresh_token") or not self._get("client_id"):
            return _("the channel names no refresh_token and client_id")
        return _("the credential source cannot keep a renewed token; keep the channel's "
                 "credentials in a secrets file for humasflow to refresh them")

    def refresh(self, wire: Wire, now: dt.datetime) -> None:
        """Exchange the refresh token for new tokens and hand them back at once.

        Raises:
            AuthenticationFailed: X refused the refresh token.
            PlatformError: X did not answer (the refresh is tried again later).
        """
        auth: AuthBase | None = None
        data = {"grant_type": "refresh_token", "refresh_token": self._get("refresh_token"),
                "client_id": self._get("client_id")}
        if self._get("client_secret"):
            auth = HTTPBasicAuth(self._get("client_id"), self._get("client_secret"))
        try:
            response = wire.request("POST", TOKEN_URL, data=data, auth=auth or _NoAuth())
        except requests.RequestException as exc:
            # The new refresh token may have been issued and lost: the old one may now be
            # spent. Nothing better can be done than to say so.
            raise PlatformError(_(
                "{channel}: no answer from X to the token refresh ({error}); if it keeps "
                "failing, authorise the app again").format(
                    channel=self.channel, error=type(exc).__name__),
                channel=self.channel, code="refresh") from None
        with response:
            try:
                body: Any = response.json()
            except ValueError:
                body = {}
        if response.status_code >= 500:
            raise PlatformError(_("{channel}: X failed to refresh the token ({status})")
                                .format(channel=self.channel, status=response.status_code),
                                channel=self.channel, code=response.status_code)
        if response.status_code != 200 or not isinstance(body, dict) or not body.get(
                "access_token"):
            raise AuthenticationFailed(_(
                "{channel}: X refused the refresh token ({status}); authorise the app "
                "again and set new tokens").format(channel=self.channel,
                                                   status=response.status_code),
                channel=self.channel, credential="refresh_token")
        expires = now + dt.timedelta(seconds=int(body.get("expires_in") or 7200))
        remember_secret(str(body.get("refresh_token") or ""))
        remember_secret(str(body["access_token"]))
        if body.get("refresh_token"):
            self._context.refresh_credential("refresh_token", str(body["refresh_token"]))
        self._context.refresh_credential("access_token", str(body["access_token"]),
                                         expires_at=expires)
        if "expires_at" in self._context.credentials:
            self._context.refresh_credential("expires_at", expires.isoformat())
        wire.set_auth(self.auth())


class _NoAuth(AuthBase):
    """No signature (a public client's refresh): keeps the wire's own auth off."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request
