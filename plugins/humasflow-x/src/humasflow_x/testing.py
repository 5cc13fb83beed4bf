"""A fake X for tests and trials: the endpoints the publisher uses, answering as X does.

:class:`FakeX` keeps one account's posts and media in memory and answers like X's API v2
(bodies, RFC 7807 errors, rate-limit headers): ``GET /2/users/me``, ``POST /2/tweets``
(with X's duplicate-content refusal), ``GET /2/users/{id}/tweets`` (texts as X shows
them: URLs as t.co links, a link for attached media, ``&`` escaped), the v2 media
upload (simple; initialize / append / finalize / status with ``pending →
in_progress → succeeded`` or ``failed``), ``POST /2/media/metadata`` and the OAuth 2.0
token refresh. It checks the OAuth 1.0a signature (HMAC-SHA1) or the OAuth 2.0 token
of every request.

Two ways to put it on the wire:

- :meth:`FakeX.mock`: ``responses`` callbacks on ``api.twitter.com`` and ``api.x.com``
  (tests; needs the ``responses`` package);
- :meth:`FakeX.serve`: a real HTTP server on 127.0.0.1; point a channel at it with the
  setting ``api_url`` (a trial run, another process).

>>> fake = FakeX()
>>> fake.username, len(fake.posts())
('fisip_ub', 0)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.parser
import email.policy
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import attrs

__all__ = ["FAKE_CREDENTIALS", "FAKE_OAUTH1", "FAKE_OAUTH2", "FakeX"]

#: Clearly fake credentials the fake accepts by default (OAuth 1.0a and OAuth 2.0).
FAKE_CREDENTIALS = {
    "consumer_key": "fake-consumer-key-0001",
    "consumer_secret": "fake-consumer-secret-0002",
    "access_token": "fake-access-token-0003",
    "access_token_secret": "fake-access-secret-0004",
    "oauth2_token": "fake-oauth2-token-0005",
    "refresh_token": "fake-refresh-token-0006",
    "client_id": "fake-client-id-0007",
}

#: A channel's OAuth 1.0a credentials with the fake values (credential name → value).
FAKE_OAUTH1 = {k: FAKE_CREDENTIALS[k] for k in ("consumer_key", "consumer_secret",
                                                "access_token", "access_token_secret")}
#: A channel's OAuth 2.0 credentials with the fake values.
FAKE_OAUTH2 = {"access_token": FAKE_CREDENTIALS["oauth2_token"],
               "refresh_token": FAKE_CREDENTIALS["refresh_token"],
               "client_id": FAKE_CREDENTIALS["client_id"]}

HOSTS = ("https://api.twitter.com", "https://api.x.com")

_FAILURES: dict[str, tuple[int, dict[str, Any]]] = {
    "unauthorized": (401, {"title": "Unauthorized", "type": "about:blank", "status": 401,
                           "detail": "Unauthorized"}),
    "rate_limited": (429, {"title": "Too Many Requests", "type": "about:blank",
                           "status": 429, "detail": "Too Many Requests"}),
    "server_error": (503, {"title": "Service Unavailable", "type": "about:blank",
                           "status": 503, "detail": "Service Unavailable"}),
    "forbidden": (403, {"title": "Forbidden", "type": "about:blank", "status": 403,
                        "detail": "Your client app is not configured with the appropriate "
                                  "oauth1 app permissions for this endpoint."}),
    "not_enrolled": (403, {"client_id": "1", "title": "Client Forbidden",
                           "type": "https://api.twitter.com/2/problems/client-forbidden",
                           "reason": "client-not-enrolled", "registration_url":
                           "https://developer.x.com/en/portal/dashboard",
                           "detail": "When authenticating requests to the Twitter API v2 "
                                     "endpoints, you must use keys and tokens from a "
                                     "Twitter developer App that is attached to a Project."}),
    "bad_request": (400, {"errors": [{"message": "Your media IDs are invalid."}],
                          "title": "Invalid Request", "detail": "One or more parameters to "
                          "your request was invalid.", "type":
                          "https://api.twitter.com/2/problems/invalid-request"}),
}
DUPLICATE = {"detail": "You are not allowed to create a Tweet with duplicate content.",
             "type": "about:blank", "title": "Forbidden", "status": 403}


@attrs.define
class _Rule:
    kind: str
    path: str
    reset_at: dt.datetime | None
    applied: bool
    headers: dict[str, str] = attrs.field(factory=dict)


class FakeX:
    """One X account, in memory.

    Args:
        username: The account's @username.
        user_id: Its numeric id.
        credentials: What it accepts (default :data:`FAKE_CREDENTIALS`).
        clock: The time posts are stamped with (default: the real UTC time).
        processing: The states a chunked upload goes through after ``finalize``
            (default ``pending``, ``in_progress``, ``succeeded``; end with ``failed`` to
            refuse it).
    """

    def __init__(self, *, username: str = "fisip_ub", user_id: str = "1600000000000000001",
                 credentials: Mapping[str, str] | None = None,
                 clock: Callable[[], dt.datetime] | None = None,
                 processing: tuple[str, ...] = ("pending", "in_progress", "succeeded"),
                 ) -> None:
        self.username = username
        self.user_id = user_id
        self.credentials = dict(credentials or FAKE_CREDENTIALS)
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.processing = processing
        self.tweets: list[dict[str, Any]] = []
        self.media: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.refreshes = 0
        self._rules: list[_Rule] = []
        self._ids = itertools.count(1880000000000000001)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # -- steering and looking --------------------------------------------------------------

    def posts(self) -> list[dict[str, Any]]:
        """The public posts, oldest first, a thread counted as one post: each with the
        ``id`` the publisher's receipt carries (a thread's part ids joined by commas) and
        its ``url``. A part posted twice shows as a post of its own."""
        with self._lock:
            children: dict[str | None, list[dict[str, Any]]] = {}
            own = {t["id"] for t in self.tweets}
            for tweet in self.tweets:
                parent = tweet["reply_to"] if tweet["reply_to"] in own else None
                children.setdefault(parent, []).append(tweet)
            found = []
            for root in children.get(None, []):
                chain = [root]
                while children.get(chain[-1]["id"]):
                    chain.append(children[chain[-1]["id"]][0])
                found.append(self._entry(chain))
            for parent, replies in children.items():
                if parent is not None:
                    found.extend(self._entry([extra]) for extra in replies[1:])
            return found

    def _entry(self, chain: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": ",".join(t["id"] for t in chain),
                "url": f"https://x.com/{self.username}/status/{chain[0]['id']}",
                "texts": [t["text"] for t in chain],
                "media": [list(t["media_ids"]) for t in chain]}

    def thread(self) -> list[dict[str, Any]]:
        """Every post, oldest first, as stored (``id``, ``text``, ``media_ids``,
        ``reply_to``, ``poll``, ``created_at``)."""
        with self._lock:
            return [dict(t) for t in self.tweets]

    def fail_next(self, kind: str, *, reset_at: dt.datetime | None = None,
                  applied: bool = False, path: str = "",
                  headers: Mapping[str, str] | None = None) -> None:
        """Answer the next request (whose path matches the regular expression ``path``)
        as X does for ``kind``: ``unauthorized`` (401), ``forbidden`` (403, app
        permissions), ``not_enrolled`` (403, no Project), ``duplicate`` (403),
        ``rate_limited`` (429 with ``x-rate-limit-reset`` at ``reset_at``; more headers
        in ``headers``), ``server_error`` (503), ``bad_request`` (400). With ``applied``,
        carry the request out first."""
        if kind not in _FAILURES and kind != "duplicate":
            raise ValueError(f"unknown failure {kind!r}")
        with self._lock:
            self._rules.append(_Rule(kind, path, reset_at, applied, dict(headers or {})))

    def count_calls(self) -> int:
        """How many requests reached the fake."""
        with self._lock:
            return len(self.requests)

    def revoke(self) -> None:
        """Make every credential invalid from now on."""
        with self._lock:
            self.credentials = {k: f"revoked-{v}" for k, v in self.credentials.items()}

    # -- on the wire -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def mock(self) -> Iterator[FakeX]:
        """Answer every request to X's hosts through ``responses``, inside the block."""
        import responses

        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
            for host in HOSTS:
                for method in ("GET", "POST", "DELETE"):
                    mock.add_callback(method, re.compile(re.escape(host) + r"/.*"),
                                      callback=self._responses)
            yield self

    def _responses(self, request: Any) -> tuple[int, dict[str, str], bytes]:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        return self.handle(request.method, request.url, dict(request.headers), body)

    @contextlib.contextmanager
    def serve(self, host: str = "127.0.0.1") -> Iterator[str]:
        """Answer on a local HTTP server inside the block; yields its base URL (the
        channel setting ``api_url``)."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                base = f"http://{self.headers.get('Host', host)}"
                status, headers, body = fake.handle(self.command, base + self.path,
                                                    dict(self.headers), raw)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer((host, 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, name="fake-x", daemon=True)
        thread.start()
        try:
            yield f"http://{host}:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)

    # -- the API -------------------------------------------------------------------------------

    def handle(self, method: str, url: str, headers: Mapping[str, str],
               body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Answer one request (``url`` absolute) as X does."""
        split = urlsplit(url)
        path = split.path
        with self._lock:
            self.requests.append((method, path))
            rule = next((r for r in self._rules if re.search(r.path, path)), None)
            if rule is not None:
                self._rules.remove(rule)
        if rule is not None and not rule.applied:
            return self._failure(rule)
        if path == "/2/oauth2/token":
            answer = self._token(headers, body)
        elif not self._authorised(method, url, headers, body):
            answer = _json(401, _FAILURES["unauthorized"][1])
        else:
            with self._lock:
                answer = self._route(method, path, parse_qs(split.query), headers, body)
        if rule is not None:
            return self._failure(rule)
        return answer

    def _failure(self, rule: _Rule) -> tuple[int, dict[str, str], bytes]:
        if rule.kind == "duplicate":
            return _json(403, DUPLICATE)
        status, body = _FAILURES[rule.kind]
        extra = dict(rule.headers)
        if rule.kind == "rate_limited":
            reset = rule.reset_at or self.clock() + dt.timedelta(minutes=15)
            extra.setdefault("x-rate-limit-limit", "100")
            extra.setdefault("x-rate-limit-remaining", "0")
            extra.setdefault("x-rate-limit-reset", str(int(reset.timestamp())))
        status, base, payload = _json(status, body)
        return status, {**base, **extra}, payload

    def _authorised(self, method: str, url: str, headers: Mapping[str, str],
                    body: bytes) -> bool:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        if value.startswith("Bearer "):
            return value[7:] == self.credentials.get("oauth2_token")
        if not value.startswith("OAuth "):
            return False
        from oauthlib.common import Request  # type: ignore[import-untyped]
        from oauthlib.oauth1.rfc5849 import signature  # type: ignore[import-untyped]

        params = dict(signature.collect_parameters(headers={"Authorization": value},
                                                   exclude_oauth_signature=False))
        if (params.get("oauth_consumer_key") != self.credentials.get("consumer_key")
                or params.get("oauth_token") != self.credentials.get("access_token")):
            return False
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"),
                            "")
        form = body.decode() if content_type.startswith(
            "application/x-www-form-urlencoded") else None
        request = Request(url, method, form, {"Authorization": value})
        request.params = signature.collect_parameters(
            uri_query=urlsplit(url).query, body=form, headers={"Authorization": value})
        request.signature = params.get("oauth_signature", "")
        return bool(signature.verify_hmac_sha1(
            request, self.credentials.get("consumer_secret"),
            self.credentials.get("access_token_secret")))

    def _route(self, method: str, path: str, query: Mapping[str, list[str]],
               headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        if (method, path) == ("GET", "/2/users/me"):
            return _json(200, {"data": {"id": self.user_id, "name": "FISIP UB",
                                        "username": self.username}})
        if (method, path) == ("POST", "/2/tweets"):
            return self._create(json.loads(body or b"{}"))
        found = re.fullmatch(r"/2/users/(\d+)/tweets", path)
        if found and method == "GET":
            return self._timeline(found.group(1), query)
        if path == "/2/media/upload" and method == "POST":
            return self._simple_upload(headers, body)
        if path == "/2/media/upload" and method == "GET":
            return self._status(query)
        if path == "/2/media/upload/initialize" and method == "POST":
            return self._initialize(json.loads(body or b"{}"))
        found = re.fullmatch(r"/2/media/upload/(\d+)/(append|finalize)", path)
        if found and method == "POST":
            if found.group(2) == "append":
                return self._append(found.group(1), headers, body)
            return self._finalize(found.group(1))
        if path == "/2/media/metadata" and method == "POST":
            return self._metadata(json.loads(body or b"{}"))
        return _json(404, {"title": "Not Found Error", "type":
                           "https://api.twitter.com/2/problems/resource-not-found",
                           "detail": f"no endpoint {method} {path}"})

    def _create(self, body: Mapping[str, Any]) -> tuple[int, dict[str, str], bytes]:
        text = str(body.get("text") or "")
        media_ids = list((body.get("media") or {}).get("media_ids") or [])
        reply = (body.get("reply") or {}).get("in_reply_to_tweet_id")
        for media_id in media_ids:
            media = self.media.get(str(media_id))
            if media is None or media["state"] != "succeeded":
                return _json(400, _FAILURES["bad_request"][1])
        if reply is not None and str(reply) not in {t["id"] for t in self.tweets}:
            return _json(400, {"errors": [{"parameters": {"reply.in_reply_to_tweet_id":
                                                          [str(reply)]},
                                           "message": "The post you are replying to does "
                                                      "not exist or is not visible."}],
                               "title": "Invalid Request", "detail": "One or more "
                               "parameters to your request was invalid.",
                               "type": "https://api.twitter.com/2/problems/invalid-request"})
        if text and any(t["text"] == text for t in self.tweets):
            return _json(403, DUPLICATE)
        post_id = str(next(self._ids))
        self.tweets.append({"id": post_id, "text": text, "media_ids": media_ids,
                            "reply_to": str(reply) if reply is not None else None,
                            "poll": body.get("poll"), "created_at": self.clock()})
        return _json(201, {"data": {"id": post_id, "text": text,
                                    "edit_history_tweet_ids": [post_id]}})

    def _timeline(self, user_id: str, query: Mapping[str, list[str]],
                  ) -> tuple[int, dict[str, str], bytes]:
        if user_id != self.user_id:
            return _json(200, {"meta": {"result_count": 0}})
        start = _when((query.get("start_time") or [""])[0])
        since = (query.get("since_id") or [""])[0]
        found = [t for t in reversed(self.tweets)
                 if (start is None or t["created_at"] >= start)
                 and (not since or int(t["id"]) > int(since))]
        limit = int((query.get("max_results") or ["10"])[0])
        page = found[:limit]
        data = [self._shown(t) for t in page]
        meta: dict[str, Any] = {"result_count": len(data)}
        if data:
            meta.update(newest_id=data[0]["id"], oldest_id=data[-1]["id"])
        return _json(200, {"data": data, "meta": meta} if data else {"meta": meta})

    def _shown(self, tweet: Mapping[str, Any]) -> dict[str, Any]:
        """A post as the timeline shows it: URLs as t.co links, a link for its media."""
        from twitter_text import extract_urls

        text = tweet["text"]
        for n, url in enumerate(sorted(set(extract_urls(text)), key=len, reverse=True)):
            text = text.replace(url, f"https://t.co/fake{n:04d}")
        if tweet["media_ids"]:
            text = f"{text} https://t.co/media{tweet['id'][-4:]}"
        shown: dict[str, Any] = {
            "id": tweet["id"], "text": text.replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;"), "edit_history_tweet_ids": [tweet["id"]],
            "created_at": tweet["created_at"].strftime("%Y-%m-%dT%H:%M:%S.000Z")}
        if tweet["media_ids"]:
            shown["attachments"] = {"media_keys": [f"3_{m}" for m in tweet["media_ids"]]}
        if tweet["reply_to"]:
            shown["referenced_tweets"] = [{"type": "replied_to", "id": tweet["reply_to"]}]
        return shown

    def _new_media(self, kind: str, size: int, state: str) -> dict[str, Any]:
        media_id = str(next(self._ids))
        media = {"id": media_id, "kind": kind, "size": size, "state": state, "alt": "",
                 "chunks": {}, "steps": list(self.processing[1:])}
        self.media[media_id] = media
        return media

    def _simple_upload(self, headers: Mapping[str, str],
                       body: bytes) -> tuple[int, dict[str, str], bytes]:
        fields = _multipart(headers, body)
        data = fields.get("media")
        if not data:
            return _json(400, {"errors": [{"message": "media is required"}],
                               "title": "Invalid Request", "detail": "media is required",
                               "type": "https://api.twitter.com/2/problems/invalid-request"})
        category = fields.get("media_category", b"tweet_image").decode()
        media = self._new_media(category, len(data), "succeeded")
        return _json(200, {"data": {"id": media["id"], "media_key": f"3_{media['id']}",
                                    "size": len(data), "expires_after_secs": 86400,
                                    "image": {"image_type": "image/png", "w": 1, "h": 1}}})

    def _initialize(self, body: Mapping[str, Any]) -> tuple[int, dict[str, str], bytes]:
        media = self._new_media(str(body.get("media_category", "")),
                                int(body.get("total_bytes") or 0), "initialized")
        return _json(200, {"data": {"id": media["id"], "media_key": f"7_{media['id']}",
                                    "expires_after_secs": 86400}})

    def _append(self, media_id: str, headers: Mapping[str, str],
                body: bytes) -> tuple[int, dict[str, str], bytes]:
        media = self.media.get(media_id)
        fields = _multipart(headers, body)
        if media is None or "media" not in fields or "segment_index" not in fields:
            return _json(400, {"errors": [{"message": "invalid append"}],
                               "title": "Invalid Request", "detail": "invalid append",
                               "type": "https://api.twitter.com/2/problems/invalid-request"})
        segment = int(fields["segment_index"])
        if not 0 <= segment <= 999:
            return _json(400, {"title": "Invalid Request", "detail": "segment_index must be "
                               "0-999", "type": "about:blank"})
        media["chunks"][segment] = fields["media"]
        return _json(200, {"data": {"expires_at": int(self.clock().timestamp()) + 86400}})

    def _finalize(self, media_id: str) -> tuple[int, dict[str, str], bytes]:
        media = self.media.get(media_id)
        if media is None:
            return _json(400, {"title": "Invalid Request", "detail": "unknown media",
                               "type": "about:blank"})
        received = sum(len(c) for c in media["chunks"].values())
        if received != media["size"]:
            return _json(400, {"title": "Invalid Request", "detail": f"File size mismatch: "
                               f"{received} of {media['size']} bytes", "type": "about:blank"})
        media["state"] = self.processing[0] if self.processing else "succeeded"
        return _json(200, {"data": self._media_data(media)})

    def _status(self, query: Mapping[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        media = self.media.get((query.get("media_id") or [""])[0])
        if (query.get("command") or [""])[0] != "STATUS" or media is None:
            return _json(400, {"title": "Invalid Request", "detail": "unknown media",
                               "type": "about:blank"})
        if media["state"] not in ("succeeded", "failed") and media["steps"]:
            media["state"] = media["steps"].pop(0)
        return _json(200, {"data": self._media_data(media)})

    def _media_data(self, media: Mapping[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {"id": media["id"], "media_key": f"7_{media['id']}",
                                "size": media["size"], "expires_after_secs": 86400}
        state = media["state"]
        info: dict[str, Any] = {"state": state}
        if state in ("pending", "in_progress"):
            info["check_after_secs"] = 2 if state == "pending" else 5
            info["progress_percent"] = 0 if state == "pending" else 50
        if state == "succeeded":
            info["progress_percent"] = 100
        if state == "failed":
            info.update(progress_percent=100, error={
                "code": 1, "name": "InvalidMedia", "message": "Unsupported video format"})
        data["processing_info"] = info
        return data

    def _metadata(self, body: Mapping[str, Any]) -> tuple[int, dict[str, str], bytes]:
        media = self.media.get(str(body.get("id")))
        alt = ((body.get("metadata") or {}).get("alt_text") or {}).get("text")
        if media is None or not isinstance(alt, str) or len(alt) > 1000:
            return _json(400, {"title": "Invalid Request", "detail": "invalid media "
                               "metadata", "type": "about:blank"})
        media["alt"] = alt
        return _json(200, {"data": {"id": media["id"],
                                    "associated_metadata": {"alt_text": {"text": alt}}}})

    def _token(self, headers: Mapping[str, str],
               body: bytes) -> tuple[int, dict[str, str], bytes]:
        form = dict(parse_qsl(body.decode()))
        with self._lock:
            if (form.get("grant_type") != "refresh_token"
                    or form.get("refresh_token") != self.credentials.get("refresh_token")
                    or form.get("client_id") != self.credentials.get("client_id")):
                return _json(400, {"error": "invalid_request", "error_description":
                                   "Value passed for the token was invalid."})
            self.refreshes += 1
            n = self.refreshes
            self.credentials["oauth2_token"] = f"fake-oauth2-token-renewed-{n:04d}"
            self.credentials["refresh_token"] = f"fake-refresh-token-renewed-{n:04d}"
            return _json(200, {"token_type": "bearer", "expires_in": 7200,
                               "access_token": self.credentials["oauth2_token"],
                               "scope": "tweet.read tweet.write users.read media.write "
                                        "offline.access",
                               "refresh_token": self.credentials["refresh_token"]})


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(
        body).encode()


def _when(value: str) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _multipart(headers: Mapping[str, str], body: bytes) -> dict[str, bytes]:
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if not content_type.startswith("multipart/form-data"):
        return {}
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    fields: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if name:
            fields[str(name)] = payload if isinstance(payload, bytes) else b""
    return fields
