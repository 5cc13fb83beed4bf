"""A fake social platform on 127.0.0.1, and a three-step publisher for it.

:class:`FakePlatform` is a real HTTP server in a thread of the test process. It keeps
its accounts' posts in memory and answers JSON the way a platform API does, errors
included (401, 403, 400, 404, 429 with a reset header, 5xx). Another process (a worker
that a test kills) can post to it too.

Its API, modelled on Instagram's container flow (all under ``/v1``, bearer token)::

    GET  /me                              → {"account"}                      (check)
    POST /accounts/{a}/media              {url | filename, data}  → 201 {"id"}
    POST /accounts/{a}/containers         {text, media_ids, link, client_ref}
                                          → 201 {"id", "status": "READY"}
    GET  /accounts/{a}/containers/{id}    → {"id", "status", "post_id"}
    POST /accounts/{a}/containers/{id}/publish   → 201 {"id", "url"}    (the post)
    GET  /accounts/{a}/posts?client_ref=  → {"data": [post, ...]}            (lookup)
    GET  /accounts/{a}/posts/{id}         → post

Media and containers are invisible; only ``publish`` makes a public post. Like X, the
platform has no duplicate guard: publishing a container twice makes two posts, so a
blind retry shows up in :meth:`FakePlatform.posts`.

:class:`StepPublisher` posts to it in three calls (upload each media file, create a
container, publish it), saving each created id with ``progress.save`` and using those
ids, then the ``client_ref`` lookup, to reconcile. Register it for a test with
``plugin_registered(FakePlatformPlugin())``; a channel then names the publisher
``fake-platform`` (or ``fake-platform-nolookup``, the same without ``reconcile``).
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import re
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import requests

from humasflow.errors import (
    AuthenticationFailed,
    ConfigurationError,
    ContentRejected,
    OutcomeUnknown,
    PlatformError,
    PublishError,
    RateLimited,
)
from humasflow.hookspecs import hookimpl
from humasflow.models import ChannelConfig
from humasflow.publishing.contract import Post, Problem, PublisherContext, Receipt

__all__ = [
    "FakePlatform",
    "FakePlatformPlugin",
    "PlatformRequest",
    "StepPublisher",
    "StepPublisherWithoutLookup",
]

_ERRORS = {
    "unauthorized": (401, "invalid_token", "the access token is invalid or expired"),
    "forbidden": (403, "forbidden", "the token may not post for this account"),
    "rate_limited": (429, "rate_limited", "too many requests"),
    "server_error": (500, "internal", "something went wrong"),
    "unavailable": (503, "unavailable", "the service is temporarily unavailable"),
    "bad_gateway": (502, "", ""),
}


@attrs.frozen
class PlatformRequest:
    """A request the platform received."""

    method: str
    path: str
    account: str | None
    body: Mapping[str, Any]


@attrs.define
class _Rule:
    kind: str
    path: str
    reset_at: dt.datetime | None
    applied: bool
    action: Callable[[PlatformRequest], None] | None = None


class FakePlatform:
    """A social platform on 127.0.0.1 that keeps its posts in memory.

    Args:
        accounts: Account name → the access token that may post for it.
        host: The loopback address to listen on.

    Use it as a context manager (or :meth:`start`/:meth:`stop`); :attr:`url` is its
    base URL once started.

    >>> with FakePlatform({"fisip": "tok-1"}) as platform:
    ...     requests.get(platform.url + "/v1/me", timeout=5,
    ...                  headers={"Authorization": "Bearer tok-1"}).json()
    {'account': 'fisip'}
    """

    def __init__(self, accounts: Mapping[str, str] | None = None, *,
                 host: str = "127.0.0.1") -> None:
        self.accounts = dict(accounts or {"fisip": "tok-fisip"})
        self.host = host
        self.requests: list[PlatformRequest] = []
        self._posts: list[dict[str, Any]] = []
        self._media: dict[str, dict[str, Any]] = {}
        self._containers: dict[str, dict[str, Any]] = {}
        self._rules: list[_Rule] = []
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- running ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:40123``."""
        if self._server is None:
            raise RuntimeError("the fake platform is not started; use it in a with block")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakePlatform:
        """Listen on a free port and answer in a background thread."""
        platform = self

        class Handler(_Handler):
            pass

        Handler.platform = platform
        self._server = _Server((self.host, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="fake-platform", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and close the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FakePlatform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what tests look at and steer ---------------------------------------------------

    def posts(self, account: str | None = None) -> list[dict[str, Any]]:
        """The public posts (of ``account``, or all), oldest first."""
        with self._lock:
            return [dict(p) for p in self._posts if account in (None, p["account"])]

    def calls(self, path: str = "") -> list[PlatformRequest]:
        """The requests received whose path contains ``path``."""
        with self._lock:
            return [r for r in self.requests if path in r.path]

    def count_calls(self) -> int:
        """How many requests the platform received."""
        with self._lock:
            return len(self.requests)

    def fail_next(self, kind: str, *, path: str = "", reset_at: dt.datetime | None = None,
                  applied: bool = False) -> None:
        """Answer the next request (whose path matches ``path``) with an error.

        Args:
            kind: ``unauthorized`` (401), ``forbidden`` (403), ``rate_limited`` (429
                with ``x-rate-limit-reset``), ``server_error`` (500), ``unavailable``
                (503) or ``bad_gateway`` (502 with an HTML body).
            path: Only a request whose path matches this regular expression.
            reset_at: For ``rate_limited``: when the limit resets (default: in 15 min).
            applied: Carry the request out first, then answer with the error (a
                server that fails after doing the work).
        """
        if kind not in _ERRORS:
            raise ValueError(f"unknown failure {kind!r}; known: {', '.join(_ERRORS)}")
        with self._lock:
            self._rules.append(_Rule(kind, path, reset_at, applied))

    def on_applied(self, action: Callable[[PlatformRequest], None], *, path: str = "") -> None:
        """Call ``action`` once, after the next request (whose path matches the regular
        expression ``path``) was carried out and before it is answered (e.g. to kill
        the client)."""
        with self._lock:
            self._rules.append(_Rule("", path, None, True, action))

    def revoke(self, account: str) -> None:
        """Make the account's token invalid from now on."""
        with self._lock:
            self.accounts[account] = f"revoked-{next(self._ids)}"

    def delete_post(self, post_id: str) -> None:
        """Remove a post, as its owner would on the platform's website."""
        with self._lock:
            self._posts = [p for p in self._posts if p["id"] != post_id]

    # -- the API ---------------------------------------------------------------------------

    def _handle(self, method: str, target: str, headers: Mapping[str, str],
                raw: bytes) -> tuple[int, dict[str, str], bytes]:
        split = urlsplit(target)
        path, query = split.path, parse_qs(split.query)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return _json(400, _error("bad_json", "the body is not JSON"))
        token = headers.get("Authorization", "").removeprefix("Bearer ").strip()
        with self._lock:
            account = next((a for a, t in self.accounts.items() if t == token), None)
            request = PlatformRequest(method, path, account, body)
            self.requests.append(request)
            rule = next((r for r in self._rules if re.search(r.path, path)), None)
            if rule is not None:
                self._rules.remove(rule)
        if rule is not None and not rule.applied:
            return self._failure(rule)
        if account is None:
            answer = _json(401, _error("invalid_token", "the access token is invalid or "
                                       "expired; get a new one"))
        else:
            with self._lock:
                answer = self._route(method, path, query, body, account)
        if rule is not None:
            if rule.action is not None:
                rule.action(request)
            else:
                return self._failure(rule)
        return answer

    def _failure(self, rule: _Rule) -> tuple[int, dict[str, str], bytes]:
        status, code, message = _ERRORS[rule.kind]
        if rule.kind == "bad_gateway":
            return status, {"Content-Type": "text/html"}, b"<html>502 Bad Gateway</html>"
        headers: dict[str, str] = {}
        if rule.kind == "rate_limited":
            reset = rule.reset_at or dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=15)
            headers["x-rate-limit-reset"] = str(int(reset.timestamp()))
        status, base, body = _json(status, _error(code, message))
        return status, {**base, **headers}, body

    def _route(self, method: str, path: str, query: Mapping[str, list[str]],
               body: Mapping[str, Any], account: str) -> tuple[int, dict[str, str], bytes]:
        if method == "GET" and path == "/v1/me":
            return _json(200, {"account": account})
        m = re.fullmatch(r"/v1/accounts/([^/]+)/(media|containers|posts)(?:/([^/]+))?"
                         r"(/publish)?", path)
        if m is None:
            return _json(404, _error("not_found", f"no endpoint {method} {path}"))
        if m.group(1) != account:
            return _json(403, _error("forbidden", "this token may not act for account "
                                     f"{m.group(1)!r}"))
        what, ident, publish = m.group(2), m.group(3), m.group(4)
        if (what, ident, method) == ("media", None, "POST"):
            return self._create_media(account, body)
        if (what, ident, method) == ("containers", None, "POST"):
            return self._create_container(account, body)
        if what == "containers" and ident is not None:
            container = self._containers.get(ident)
            if container is None or container["account"] != account:
                return _json(404, _error("not_found", f"no container {ident!r}"))
            if publish and method == "POST":
                return self._publish(container)
            if not publish and method == "GET":
                return _json(200, {k: container[k] for k in ("id", "status", "post_id")})
        if what == "posts" and method == "GET" and not publish:
            if ident is None:
                ref = (query.get("client_ref") or [""])[0]
                found = [p for p in self._posts if p["account"] == account
                         and (not ref or p["client_ref"] == ref)]
                return _json(200, {"data": found})
            post = next((p for p in self._posts if p["id"] == ident
                         and p["account"] == account), None)
            if post is None:
                return _json(404, _error("not_found", f"no post {ident!r}"))
            return _json(200, post)
        return _json(404, _error("not_found", f"no endpoint {method} {path}"))

    def _create_media(self, account: str, body: Mapping[str, Any]) -> tuple[int, dict[str, str],
                                                                             bytes]:
        if not body.get("url") and not body.get("data"):
            return _json(400, _error("media_missing", "give the media's url or data"))
        media_id = f"m-{next(self._ids)}"
        self._media[media_id] = {"id": media_id, "account": account,
                                 "url": body.get("url", ""), "alt": body.get("alt", "")}
        return _json(201, {"id": media_id})

    def _create_container(self, account: str,
                          body: Mapping[str, Any]) -> tuple[int, dict[str, str], bytes]:
        text = str(body.get("text", ""))
        if len(text) > 500:
            return _json(400, _error("text_too_long", "the text is longer than 500 "
                                     "characters"))
        media_ids = list(body.get("media_ids") or [])
        unknown = [m for m in media_ids if m not in self._media]
        if unknown:
            return _json(400, _error("media_unknown", f"no media {unknown[0]!r}"))
        container_id = f"c-{next(self._ids)}"
        self._containers[container_id] = {
            "id": container_id, "account": account, "status": "READY", "post_id": None,
            "text": text, "media_ids": media_ids, "link": str(body.get("link", "")),
            "client_ref": str(body.get("client_ref", ""))}
        return _json(201, {"id": container_id, "status": "READY"})

    def _publish(self, container: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        post_id = f"p-{next(self._ids)}"
        post = {"id": post_id, "account": container["account"], "text": container["text"],
                "media_ids": container["media_ids"], "link": container["link"],
                "client_ref": container["client_ref"], "container_id": container["id"],
                "url": f"{self.url}/@{container['account']}/{post_id}"}
        self._posts.append(post)
        container.update(status="PUBLISHED", post_id=post_id)
        return _json(201, {"id": post_id, "url": post["url"]})


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-request is part of the tests, not an error to print.
        pass


class _Handler(BaseHTTPRequestHandler):
    platform: FakePlatform

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, headers, body = self.platform._handle(self.command, self.path,
                                                      dict(self.headers), raw)
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client is gone (killed on purpose)

    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


# -- the publisher ------------------------------------------------------------------------


class StepPublisher:
    """Posts to a :class:`FakePlatform` in three kinds of call, and reconciles.

    Settings: ``base_url`` (the platform's URL), ``account``, ``timeout`` (seconds,
    default 10), ``max_length`` (default 500). Credentials: ``token``.

    The flow and its retry safety:

    1. ``POST /media`` for each media file → ``progress.save(media_ids=[...])``.
    2. ``POST /containers`` → ``progress.save(container_id=...)``.
    3. ``POST /containers/{id}/publish`` → the public post;
       ``progress.save(post_id=..., url=...)``.

    Media and containers are invisible, so failing or repeating steps 1 and 2 is safe
    (a timeout there is a :class:`PlatformError`, retried). Before step 3 a retry
    reads the saved container: ``PUBLISHED`` means the post is there. A timeout in
    step 3 is an :class:`OutcomeUnknown`, settled by :meth:`reconcile`.
    """

    def __init__(self, channel: ChannelConfig, context: PublisherContext) -> None:
        self.channel = channel.name
        settings = channel.settings
        missing = [k for k in ("base_url", "account") if not settings.get(k)]
        if missing:
            raise ConfigurationError(f"channel {channel.name!r} needs the setting "
                                     f"{missing[0]!r} for the fake platform")
        self.base_url = str(settings["base_url"]).rstrip("/")
        self.account = str(settings["account"])
        self.timeout = float(settings.get("timeout", 10))
        self.max_length = int(settings.get("max_length", 500))
        self._token = context.credentials.get("token", "")
        self._session = context.session
        self._clock = context.clock
        self._media = context.media

    def __repr__(self) -> str:
        return f"<{type(self).__name__} channel={self.channel!r} account={self.account!r}>"

    # -- the contract -----------------------------------------------------------------------

    def validate(self, post: Post) -> list[Problem]:
        """Check length and media without any network call."""
        problems = []
        if not post.text.strip():
            problems.append(Problem(self.channel, "text", "required", "the post has no text"))
        if len(post.text) > self.max_length:
            problems.append(Problem(self.channel, "text", "max_length",
                                    f"the text has {len(post.text)} characters; the platform "
                                    f"takes at most {self.max_length}",
                                    limit=self.max_length, actual=len(post.text)))
        if len(post.media) > 4:
            problems.append(Problem(self.channel, "media", "max_count",
                                    f"{len(post.media)} media files; at most 4",
                                    limit=4, actual=len(post.media)))
        for i, media in enumerate(post.media):
            if not media.public_url and not media.is_stored:
                problems.append(Problem(self.channel, f"media[{i}]", "media_stored",
                                        f"{media.source!r} is not in the media store",
                                        actual=media.source))
        return problems

    def publish(self, post: Post, progress: Any) -> Receipt:
        """Upload, create the container, publish it; resume from ``progress``."""
        if progress.get("post_id"):
            return self._published(str(progress["post_id"]), progress, unknown=PlatformError)
        container_id = progress.get("container_id")
        if container_id:
            found = self._container(str(container_id), unknown=PlatformError)
            if found is not None and found["status"] == "PUBLISHED":
                return self._published(str(found["post_id"]), progress, unknown=PlatformError)
            if found is None:
                container_id = None  # gone (expired): make a new one
        if not container_id:
            media_ids = list(progress.get("media_ids") or [])
            for media in post.media[len(media_ids):]:
                body: dict[str, Any] = {"alt": media.alt, "kind": media.media_kind}
                if media.public_url:
                    body["url"] = media.public_url
                else:
                    data = self._media.read(media)  # checks the hash first
                    body.update(filename=Path(media.source).name,
                                data=base64.b64encode(data).decode())
                answer = self._call("POST", f"/v1/accounts/{self.account}/media", body,
                                    unknown=PlatformError)
                media_ids.append(str(answer["id"]))
                progress.save(media_ids=media_ids)
            answer = self._call("POST", f"/v1/accounts/{self.account}/containers",
                                {"text": post.text, "media_ids": media_ids, "link": post.link,
                                 "client_ref": self.client_ref(post)}, unknown=PlatformError)
            container_id = str(answer["id"])
            progress.save(container_id=container_id)
        answer = self._call("POST",
                            f"/v1/accounts/{self.account}/containers/{container_id}/publish",
                            {}, unknown=OutcomeUnknown)
        progress.save(post_id=str(answer["id"]), url=str(answer.get("url", "")))
        return Receipt(str(answer["id"]), str(answer.get("url", "")))

    def reconcile(self, post: Post, progress: Any) -> Receipt | None:
        """Find the post by its saved ids, else by its ``client_ref``.

        Returns:
            The post's receipt if it is on the platform, ``None`` if it certainly is not.

        Raises:
            OutcomeUnknown: The platform could not be asked.
        """
        if progress.get("post_id"):
            return self._published(str(progress["post_id"]), progress, unknown=OutcomeUnknown)
        if progress.get("container_id"):
            found = self._container(str(progress["container_id"]), unknown=OutcomeUnknown)
            if found is not None and found["status"] == "PUBLISHED":
                return self._published(str(found["post_id"]), progress,
                                       unknown=OutcomeUnknown)
        answer = self._call("GET", f"/v1/accounts/{self.account}/posts",
                            params={"client_ref": self.client_ref(post)}, unknown=OutcomeUnknown)
        found_posts = answer.get("data") or []
        if found_posts:
            first = found_posts[0]
            return Receipt(str(first["id"]), str(first.get("url", "")))
        return None

    def check(self) -> None:
        """Ask the platform who the token belongs to."""
        answer = self._call("GET", "/v1/me", unknown=PlatformError)
        if answer.get("account") != self.account:
            raise AuthenticationFailed(
                f"{self.channel}: the token belongs to account {answer.get('account')!r}, "
                f"not {self.account!r}; set the token of the right account",
                channel=self.channel, credential="token")

    # -- helpers ----------------------------------------------------------------------------

    def client_ref(self, post: Post) -> str:
        """The reference stored with the post, so that a lookup can find it."""
        return f"humasflow:{post.item_id}:{post.channel}"

    def _container(self, container_id: str, *,
                   unknown: type[PublishError]) -> Mapping[str, Any] | None:
        return self._lookup(f"/v1/accounts/{self.account}/containers/{container_id}",
                            unknown=unknown)

    def _published(self, post_id: str, progress: Any, *,
                   unknown: type[PublishError]) -> Receipt:
        answer = self._lookup(f"/v1/accounts/{self.account}/posts/{post_id}", unknown=unknown)
        if answer is None:
            raise OutcomeUnknown(
                f"{self.channel}: post {post_id} was made but is not on the platform any "
                "more (deleted?); check the account and confirm by hand",
                channel=self.channel)
        return Receipt(post_id, str(answer.get("url", "")))

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None, *,
              params: Mapping[str, str] | None = None,
              unknown: type[PublishError]) -> Mapping[str, Any]:
        """One request whose target must exist; see :meth:`_request`."""
        answer = self._request(method, path, body, params=params, unknown=unknown)
        if answer is None:
            # A vanished container or media id: making them again is harmless.
            raise PlatformError(f"{self.channel}: {method} {path}: not found on the "
                                "platform (expired?); it will be tried again",
                                channel=self.channel, code=404)
        return answer

    def _lookup(self, path: str, *, unknown: type[PublishError]) -> Mapping[str, Any] | None:
        """``GET path``, or ``None`` if the platform has no such thing."""
        return self._request("GET", path, unknown=unknown)

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None = None, *,
                 params: Mapping[str, str] | None = None,
                 unknown: type[PublishError]) -> Mapping[str, Any] | None:
        """One request, its answer classified into the error tree (404 → ``None``).

        ``unknown`` is raised when the request may have been carried out and its answer
        is lost: :class:`PlatformError` where repeating is harmless, else
        :class:`OutcomeUnknown`.
        """
        what = f"{method} {path}"
        try:
            response = self._session.request(
                method, self.base_url + path, json=body, params=params, timeout=self.timeout,
                headers={"Authorization": f"Bearer {self._token}"})
        except requests.ConnectTimeout:
            raise PlatformError(f"{self.channel}: the platform did not accept a connection "
                                f"for {what}; nothing was sent, it will be retried",
                                channel=self.channel, code="connect_timeout") from None
        except requests.RequestException as exc:
            raise unknown(f"{self.channel}: no answer to {what} ({type(exc).__name__}); the "
                          "platform may have carried it out", channel=self.channel) from None
        with response:
            status = response.status_code
            try:
                data = response.json()
            except ValueError:
                data = None
        error = data.get("error") if isinstance(data, dict) else None
        message = (error or {}).get("message") or response.reason or ""
        if status in (401, 403):
            raise AuthenticationFailed(
                f"{self.channel}: the platform refused the token ({status}: {message}); "
                "renew the access token of the account and set it again",
                channel=self.channel, credential="token")
        if status == 404:
            return None
        if status == 429:
            reset_at = _reset_time(response.headers.get("x-rate-limit-reset"))
            when = f"after {reset_at.isoformat()}" if reset_at else "later"
            raise RateLimited(f"{self.channel}: the platform's rate limit is reached; it is "
                              f"tried again {when}", channel=self.channel, reset_at=reset_at)
        if status >= 500:
            raise PlatformError(f"{self.channel}: the platform failed ({status}: {message}); "
                                "it will be retried", channel=self.channel, code=status)
        if status >= 400:
            raise ContentRejected(f"{self.channel}: the platform refused the post ({status}: "
                                  f"{message}); change it and post again",
                                  channel=self.channel)
        if not isinstance(data, dict):
            raise PlatformError(f"{self.channel}: {what} answered {status} without JSON",
                                channel=self.channel, code=status)
        return data


class StepPublisherWithoutLookup(StepPublisher):
    """:class:`StepPublisher` for a platform that cannot be searched: no ``reconcile``,
    so an unknown outcome waits for a person."""

    reconcile = None  # type: ignore[assignment]


def _reset_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromtimestamp(int(float(value)), dt.timezone.utc)
    except (ValueError, OverflowError):
        return None


class FakePlatformPlugin:
    """Registers ``fake-platform`` (:class:`StepPublisher`) and ``fake-platform-nolookup``
    (:class:`StepPublisherWithoutLookup`)."""

    @hookimpl
    def register_publishers(self, register: Callable[..., None]) -> None:
        register("fake-platform", StepPublisher)
        register("fake-platform-nolookup", StepPublisherWithoutLookup)
