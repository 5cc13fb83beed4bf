"""The wire under facebook-sdk: timeouts, the version, the host, the HTTP status, and
the Graph API's errors turned into humasflow's.

facebook-sdk 3.1.0 builds each request (the version in the path, the token in the
query or the form, multipart files) and sends it with ``self.session.request(...)``,
but it sets no timeout, reads no HTTP status, raises a confusing ``GraphAPIError`` on
a body that is not JSON, and cannot reach another host. :class:`GraphSession` is the
session handed to ``facebook.GraphAPI``: it forwards each request to the session the
core gave the publisher, with a timeout, to the configured host, keeps the answer's
status and headers for the error mapping, and raises :class:`BadAnswer` for an answer
facebook-sdk would misread. :func:`classify` maps a Graph error body (its ``code`` and
``error_subcode``, never the HTTP status) to a :class:`~humasflow.errors.PublishError`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import facebook
import requests
from humasflow import (
    AuthenticationFailed,
    ContentRejected,
    PlatformError,
    PublishError,
    RateLimited,
)
from humasflow.i18n import N_

from humasflow_facebook._i18n import _

__all__ = ["PERMISSIONS", "BadAnswer", "GraphSession", "classify", "usage_reset"]

#: What a Page token needs to post and to read the Page's posts back.
PERMISSIONS = ("pages_manage_posts", "pages_read_engagement", "pages_show_list")

#: Why Graph refuses a token, by ``error_subcode`` of code 190.
_TOKEN_REASONS = {
    458: N_("the app is no longer installed for the person who made the token"),
    459: N_("the person who made the token must log in to Facebook and clear a security "
            "checkpoint"),
    460: N_("the person who made the token changed their Facebook password"),
    463: N_("the token has expired"),
    464: N_("the person who made the token has not confirmed their Facebook account"),
    467: N_("the token is no longer valid (logged out, revoked, or replaced)"),
}
_THROTTLING = frozenset({4, 17, 32, 613, *range(80001, 80015)})
_PERMISSION = re.compile(r"\b((?:pages|publish|business|read|manage)_[a-z_]+)\b")


class BadAnswer(Exception):
    """An answer facebook-sdk would misread: not JSON, or an error status without a
    Graph error body.

    Attributes:
        status: The HTTP status.
        reason: The HTTP reason phrase.
        headers: The answer's headers.
    """

    def __init__(self, status: int, reason: str, headers: Mapping[str, str]) -> None:
        self.status = status
        self.reason = reason
        self.headers = dict(headers)
        super().__init__(f"HTTP {status} {reason}")


class GraphSession:
    """The session facebook-sdk sends through (``GraphAPI(session=...)``).

    Args:
        session: The session the core hands the publisher (``context.session``).
        graph_url: The Graph API's base URL (``https://graph.facebook.com/``).
        video_url: The base URL for video uploads (``https://graph-video.facebook.com/``).
        timeout: Seconds for every call.
        upload_timeout: Seconds for a call that sends a file.
    """

    def __init__(self, session: requests.Session, *, graph_url: str, video_url: str,
                 timeout: float, upload_timeout: float) -> None:
        self._session = session
        self.graph_url = graph_url.rstrip("/") + "/"
        self.video_url = video_url.rstrip("/") + "/"
        self.timeout = timeout
        self.upload_timeout = upload_timeout
        self._base = self.graph_url
        #: The last answer's status and headers (for the error mapping).
        self.last_status = 0
        self.last_headers: Mapping[str, str] = {}
        #: Every URL path sent, for tests that check the version used.
        self.paths: list[str] = []

    def __repr__(self) -> str:
        return f"<GraphSession {self.graph_url!r} timeout={self.timeout}>"

    @contextlib.contextmanager
    def video_host(self) -> Iterator[None]:
        """Send the requests inside the block to the video host."""
        self._base = self.video_url
        try:
            yield
        finally:
            self._base = self.graph_url

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Send one request as facebook-sdk asks, and check the answer.

        Raises:
            BadAnswer: The answer is not JSON, or an error status without a Graph error.
            requests.RequestException: The request failed (timeouts included).
        """
        # facebook-sdk reads the module global at call time; whatever it holds, the
        # request goes to the configured host.
        prefix = facebook.FACEBOOK_GRAPH_URL
        if url.startswith(prefix):
            url = self._base + url[len(prefix):]
        sends_file = bool(kwargs.get("files")) or hasattr(kwargs.get("data"), "read")
        kwargs["timeout"] = self.upload_timeout if sends_file else self.timeout
        kwargs.pop("proxies", None)  # the core's session carries the deployment's proxies
        self.paths.append(urlsplit(url).path)
        response = self._session.request(method, url, **kwargs)
        self.last_status, self.last_headers = response.status_code, response.headers
        kind = response.headers.get("content-type", "")
        if "json" not in kind:
            response.close()
            raise BadAnswer(response.status_code, response.reason or "", response.headers)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = None
            if not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
                raise BadAnswer(response.status_code, response.reason or "", response.headers)
        return response

    def send(self, method: str, url: str, **kwargs: Any) -> Mapping[str, Any]:
        """A request facebook-sdk cannot make (raw bytes to the Resumable Upload API),
        checked the same way; returns the JSON body.

        Raises:
            BadAnswer, facebook.GraphAPIError, requests.RequestException.
        """
        response = self.request(method, url, **kwargs)
        body = response.json()
        if isinstance(body, dict) and body.get("error"):
            raise facebook.GraphAPIError(body)
        return body if isinstance(body, dict) else {"data": body}


def classify(error: Mapping[str, Any], *, channel: str, what: str,
             headers: Mapping[str, str], now: Callable[[], dt.datetime]) -> PublishError:
    """The humasflow error for a Graph error body ``{"error": {...}}``.

    Branches on ``code`` and ``error_subcode`` (Graph answers 400 for most errors, and
    a throttled call may come with 400, 403 or 429). The ``fbtrace_id`` is kept in the
    message for a support request.

    Args:
        error: The ``error`` object of the body.
        channel: The channel's name.
        what: What was being done ("posting the photo").
        headers: The answer's headers (for the usage headers of a rate limit).
        now: The clock (when the answer carries no ``Date``).
    """
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    found = _classify(error, code, subcode, channel=channel, what=what, headers=headers,
                      now=now)
    # Kept on the error for a support request, and for the publisher (506: reconcile).
    found.graph_code = code  # type: ignore[attr-defined]
    found.graph_subcode = subcode  # type: ignore[attr-defined]
    found.fbtrace_id = str(error.get("fbtrace_id") or "")  # type: ignore[attr-defined]
    return found


def _classify(error: Mapping[str, Any], code: int | None, subcode: int | None, *,
              channel: str, what: str, headers: Mapping[str, str],
              now: Callable[[], dt.datetime]) -> PublishError:
    message = str(error.get("error_user_msg") or error.get("message") or "").strip()
    trace = str(error.get("fbtrace_id") or "")
    said = _("Facebook said: {message} (code {code}, subcode {subcode}, fbtrace_id "
             "{trace})").format(message=message or "-", code=code, subcode=subcode or "-",
                                trace=trace or "-")
    if code in (190, 102):
        reason = _TOKEN_REASONS.get(subcode or 0, N_("Facebook no longer accepts the token"))
        return AuthenticationFailed(_(
            "{channel}: Facebook refused the Page token while {what}: {reason}. Renew the "
            "Page token (see the humasflow-facebook README: a Page token made from a "
            "long-lived user token does not expire) and set it again. {said}").format(
                channel=channel, what=what, reason=_(reason), said=said),
            channel=channel, credential="page_token")
    if code == 10 or (code is not None and 200 <= code <= 299):
        found = sorted(set(_PERMISSION.findall(message)))
        if found:
            missing = _("the token lacks the permission {names}").format(
                names=", ".join(found))
        else:
            missing = _("the token lacks a permission, or its person may not create "
                        "content on this Page")
        return AuthenticationFailed(_(
            "{channel}: Facebook refused {what}: {missing}. Make a new Page token with "
            "{needed} granted, by a person who can create content on the Page. "
            "{said}").format(channel=channel, what=what, missing=missing,
                             needed=", ".join(PERMISSIONS), said=said),
            channel=channel, credential="page_token")
    if code in _THROTTLING:
        reset_at = usage_reset(headers, now)
        if reset_at is None:
            when = _("Facebook gave no time; it is tried again with a growing wait")
        else:
            when = _("Facebook expects access again at {time}").format(
                time=reset_at.isoformat())
        return RateLimited(_("{channel}: Facebook is throttling the calls ({what}): "
                             "{when}. {said}").format(channel=channel, what=what, when=when,
                                                      said=said),
                           channel=channel, reset_at=reset_at)
    if code in (1, 2) or error.get("is_transient") is True:
        return PlatformError(_("{channel}: Facebook had a temporary failure while {what}; "
                               "it is tried again later. {said}").format(
                                   channel=channel, what=what, said=said),
                             channel=channel, code=code)
    if code == 506:
        return ContentRejected(_(
            "{channel}: Facebook refused {what} as a duplicate of the Page's previous "
            "post, and that post is not this item's; change the text or confirm by hand. "
            "{said}").format(channel=channel, what=what, said=said), channel=channel)
    return ContentRejected(_("{channel}: Facebook refused {what}; change the post and try "
                             "again. {said}").format(channel=channel, what=what, said=said),
                           channel=channel)


def usage_reset(headers: Mapping[str, str],
                now: Callable[[], dt.datetime]) -> dt.datetime | None:
    """When a throttled app or Page may call again, from the usage headers.

    ``X-Business-Use-Case-Usage`` (Page calls) gives ``estimated_time_to_regain_access``
    in minutes for each business use case; ``X-App-Usage`` gives percentages only, so
    it says nothing about the time. The minutes count from the answer's ``Date`` (the
    server's clock), else from ``now``. ``None`` when no header names a wait.
    """
    minutes = 0
    raw = _header(headers, "x-business-use-case-usage")
    if raw:
        try:
            usage = json.loads(raw)
        except ValueError:
            usage = None
        if isinstance(usage, dict):
            for cases in usage.values():
                for case in cases if isinstance(cases, list) else [cases]:
                    if isinstance(case, dict):
                        minutes = max(minutes,
                                      _int(case.get("estimated_time_to_regain_access")) or 0)
    if minutes <= 0:
        return None
    start = _date(_header(headers, "date")) or now()
    return start + dt.timedelta(minutes=minutes)


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return str(value)
    return ""


def _date(value: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
