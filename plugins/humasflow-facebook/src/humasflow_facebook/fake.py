"""A fake Graph API on 127.0.0.1, for tests and for trying the publisher without Facebook.

:class:`FakeGraphAPI` is a real HTTP server in a thread. It answers the part of the
Graph API the publisher uses, with the bodies, status codes and headers Facebook
documents (errors included), keeps the Page's posts in memory, and records every
request. Point a channel at it with the settings ``graph_url`` and ``video_url``::

    with FakeGraphAPI() as graph:
        office.add_channel("facebook", "facebook", settings={
            "page_id": graph.page_id, "graph_url": graph.url, "video_url": graph.url},
            credentials={"page_token": "FISIP_FB_PAGE_TOKEN"}, by="admin")

Any version path is answered (``/v25.0/...``); :attr:`FakeGraphAPI.versions` lists the
versions the requests used. Unpublished photos stay invisible until a feed post
attaches them; only a published photo, a feed post or a video makes a public post,
and like Facebook the fake has no guard against a second identical post except its
506 for a repeat of the Page's latest message.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
from collections.abc import Mapping
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from humasflow_facebook import _marker
from humasflow_facebook._wire import PERMISSIONS

__all__ = ["FAKE_PAGE_TOKEN", "FakeGraphAPI"]

#: The Page token the fake accepts unless told otherwise (clearly not a real one).
FAKE_PAGE_TOKEN = "fake-page-token-0000"  # noqa: S105 (a fake, by name and value)

_FAILURES: Mapping[str, tuple[int, dict[str, Any]]] = {
    "unauthorized": (400, {"message": "Error validating access token: Session has expired "
                                      "on Monday, 05-Jan-26 01:00:00 PST.",
                           "type": "OAuthException", "code": 190, "error_subcode": 463}),
    "rate_limited": (400, {"message": "(#32) Page request limit reached",
                           "type": "OAuthException", "code": 32}),
    "server_error": (500, {"message": "An unexpected error has occurred. Please retry "
                                      "your request later.",
                           "type": "OAuthException", "is_transient": True, "code": 2}),
}


class FakeGraphAPI:
    """The fake Graph API (see the module docstring).

    Args:
        page_id: The Page's id.
        page_name: The Page's name.
        tokens: The Page tokens it accepts.
        user_tokens: The user tokens it accepts for the Resumable Upload API.
        app_id: The app id of ``/{app-id}/uploads``.
        scopes: The permissions ``debug_token`` reports.
        expires_at: The token's expiry ``debug_token`` reports (Unix time, 0: never).
        debug_token: Whether ``debug_token`` answers for a Page token.
        strip_markers: Drop zero-width characters from messages, as a platform that
            normalises text would.
    """

    def __init__(self, *, page_id: str = "104123456789012",
                 page_name: str = "FISIP Universitas Brawijaya",
                 tokens: tuple[str, ...] = (FAKE_PAGE_TOKEN,),
                 user_tokens: tuple[str, ...] = (), app_id: str = "987654321",
                 scopes: tuple[str, ...] = PERMISSIONS, expires_at: int = 0,
                 debug_token: bool = True, strip_markers: bool = False) -> None:
        self.page_id = page_id
        self.page_name = page_name
        self.tokens = set(tokens)
        self.user_tokens = set(user_tokens)
        self.app_id = app_id
        self.scopes = list(scopes)
        self.expires_at = expires_at
        self.debug_token = debug_token
        self.strip_markers = strip_markers
        #: ``(method, path, params)`` of every request, oldest first.
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        #: The Graph API version of every request's path.
        self.versions: list[str] = []
        self.photos: dict[str, dict[str, Any]] = {}
        self.uploads: dict[str, dict[str, Any]] = {}
        self._posts: list[dict[str, Any]] = []
        self._answers: list[tuple[int, dict[str, str], bytes, bool, float]] = []
        self._ids = itertools.count(1001)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- running ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321/``."""
        if self._server is None:
            raise RuntimeError("the fake Graph API is not running; use it in a with block")
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def __enter__(self) -> FakeGraphAPI:
        handler = type("Handler", (_Handler,), {"graph": self})
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="fake-graph-api", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- what tests read and steer ------------------------------------------------------------

    def posts(self) -> list[dict[str, Any]]:
        """The Page's public posts, oldest first: ``id`` (a video's is the video id),
        ``url``, ``kind`` (feed, photo, album, video), ``message``, ``link``, ``photos``,
        ``title``, ``created_time``."""
        with self._lock:
            return [dict(p) for p in self._posts]

    def count_calls(self) -> int:
        """How many requests it received."""
        with self._lock:
            return len(self.requests)

    def fail_next(self, kind: str, *, reset_at: dt.datetime | None = None,
                  applied: bool = False) -> None:
        """Answer the next request as Facebook does for ``kind``: ``unauthorized`` (code
        190, subcode 463), ``rate_limited`` (code 32 with ``X-Business-Use-Case-Usage``:
        10 minutes to wait, counted from a ``Date`` 10 minutes before ``reset_at``) or
        ``server_error`` (500, code 2). With ``applied``, carry the request out first."""
        status, error = _FAILURES[kind]
        headers: dict[str, str] = {}
        if kind == "rate_limited":
            minutes = 10
            usage = {"type": "pages", "call_count": 100, "total_cputime": 21,
                     "total_time": 34, "estimated_time_to_regain_access": minutes}
            headers["X-Business-Use-Case-Usage"] = json.dumps({self.page_id: [usage]})
            headers["X-App-Usage"] = json.dumps({"call_count": 100, "total_time": 34,
                                                 "total_cputime": 21})
            if reset_at is not None:
                headers["Date"] = _http_date(reset_at - dt.timedelta(minutes=minutes))
        self.answer_next(status, {"error": {**error, "fbtrace_id": "AbCdEfFakeTrace"}},
                         headers=headers, applied=applied)

    def answer_next(self, status: int, body: Any, *, headers: Mapping[str, str] | None = None,
                    applied: bool = False, content_type: str = "application/json",
                    delay: float = 0.0) -> None:
        """Answer the next request with ``status`` and ``body`` (JSON unless ``body`` is
        ``str``/``bytes``: then as it is, with ``content_type``), after ``delay``
        seconds. With ``applied``, carry the request out first."""
        if isinstance(body, (bytes, str)):
            raw = body.encode() if isinstance(body, str) else body
        else:
            raw = json.dumps(body).encode()
        all_headers = {"Content-Type": content_type, **dict(headers or {})}
        with self._lock:
            self._answers.append((status, all_headers, raw, applied, delay))

    def delay_next(self, seconds: float) -> None:
        """Carry the next request out, then wait ``seconds`` before answering (a client
        with a shorter timeout sees a read timeout after the work was done)."""
        with self._lock:
            self._answers.append((0, {}, b"", True, seconds))

    # -- the API ----------------------------------------------------------------------------------

    def _handle(self, method: str, target: str, headers: Mapping[str, str],
                body: bytes) -> tuple[int, dict[str, str], bytes, float]:
        parts = urlsplit(target)
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        files: dict[str, bytes] = {}
        ctype = headers.get("Content-Type", headers.get("content-type", ""))
        raw = b""
        if ctype.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(body.decode(), keep_blank_values=True)
            params.update({k: v[-1] for k, v in form.items()})
        elif ctype.startswith("multipart/form-data"):
            message = BytesParser(policy=HTTP).parsebytes(
                b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                decoded = part.get_payload(decode=True)
                payload = decoded if isinstance(decoded, bytes) else b""
                if part.get_filename() is not None:
                    files[str(name)] = payload
                else:
                    params[str(name)] = payload.decode()
        else:
            raw = body
        auth = headers.get("Authorization", headers.get("authorization", ""))
        token = params.get("access_token") or auth.removeprefix("OAuth ").strip()
        segments = [s for s in parts.path.split("/") if s]
        with self._lock:
            self.requests.append((method, parts.path, {k: v for k, v in params.items()
                                                       if k != "access_token"}))
            version = segments[0] if segments and segments[0].startswith("v") else ""
            if version:
                self.versions.append(version)
                segments = segments[1:]
            planned = self._answers.pop(0) if self._answers else None
            if planned is not None and not planned[3]:
                status, out_headers, out, _applied, delay = planned
                return status, out_headers, out, delay
            status, answer = self._route(method, segments, params, files, raw, token, headers)
            out_headers = {"Content-Type": "application/json; charset=UTF-8"}
            out = json.dumps(answer).encode()
            if planned is not None:
                p_status, p_headers, p_out, _applied, delay = planned
                if p_status:
                    return p_status, p_headers, p_out, delay
                return status, out_headers, out, delay
            return status, out_headers, out, 0.0

    def _route(self, method: str, path: list[str], params: dict[str, str],
               files: dict[str, bytes], raw: bytes, token: str,
               headers: Mapping[str, str]) -> tuple[int, Any]:
        if path and path[0].startswith("upload:"):
            if token not in self.user_tokens:
                return _oauth(190, 467, "Invalid OAuth access token - Cannot parse access "
                                        "token")
            return self._upload(method, path[0], raw, headers)
        if path == [self.app_id, "uploads"] and method == "POST":
            if token not in self.user_tokens:
                return _oauth(190, 467, "Invalid OAuth access token - Cannot parse access "
                                        "token")
            session = f"upload:{next(self._ids)}"
            self.uploads[session] = {"length": int(params.get("file_length", "0")),
                                     "type": params.get("file_type", ""), "data": b""}
            return 200, {"id": session}
        if token not in self.tokens:
            return _oauth(190, 463, "Error validating access token: Session has expired on "
                                    "Monday, 05-Jan-26 01:00:00 PST.")
        if path == ["debug_token"]:
            if not self.debug_token:
                return 400, {"error": {"message": "(#100) You must provide an app access "
                                                  "token, or a user access token that is an "
                                                  "owner or developer of the app",
                                       "type": "OAuthException", "code": 100,
                                       "fbtrace_id": "AbCdEfFakeTrace"}}
            return 200, {"data": {"app_id": self.app_id, "type": "PAGE",
                                  "application": "humasflow", "expires_at": self.expires_at,
                                  "data_access_expires_at": 0, "is_valid": True,
                                  "profile_id": self.page_id, "scopes": self.scopes,
                                  "user_id": "100000000000001"}}
        if path == [self.page_id] and method == "GET":
            return 200, {"id": self.page_id, "name": self.page_name}
        if len(path) == 2 and path[0] == self.page_id:
            edge = path[1]
            if method == "POST" and edge == "feed":
                return self._feed(params)
            if method == "POST" and edge == "photos":
                return self._photo(params, files)
            if method == "POST" and edge == "videos":
                return self._video(params, files)
            if method == "GET" and edge == "published_posts":
                return self._list(params, [p for p in self._posts], "message")
            if method == "GET" and edge == "videos":
                return self._list(params, [p for p in self._posts if p["kind"] == "video"],
                                  "description")
        if len(path) == 1 and method == "GET":
            for post in self._posts:
                if path[0] in (post["id"], post["post_id"]):
                    return 200, self._public(post, "message")
        return 400, {"error": {"message": "Unsupported request - method type: "
                                          f"{method.lower()}", "type": "GraphMethodException",
                               "code": 100, "error_subcode": 33,
                               "fbtrace_id": "AbCdEfFakeTrace"}}

    def _text(self, params: Mapping[str, str], name: str) -> str:
        text = params.get(name, "")
        if self.strip_markers:
            text = _marker.strip(text)
        return text

    def _new_post(self, kind: str, message: str, **extra: Any) -> dict[str, Any]:
        if message and self._posts and self._posts[-1]["message"] == message:
            raise _Duplicate
        number = next(self._ids)
        post_id = f"{self.page_id}_{number}"
        post = {"id": post_id, "post_id": post_id, "kind": kind, "message": message,
                "url": f"https://www.facebook.com/{self.page_id}/posts/{number}",
                "created_time": _graph_time(dt.datetime.now(dt.timezone.utc)),
                "link": "", "photos": [], "title": "", **extra}
        self._posts.append(post)
        return post

    def _feed(self, params: Mapping[str, str]) -> tuple[int, Any]:
        photos = []
        for i in itertools.count():
            field = params.get(f"attached_media[{i}]")
            if field is None:
                break
            fbid = str(json.loads(field).get("media_fbid", ""))
            photo = self.photos.get(fbid)
            if photo is None or photo["published"] or photo["attached"]:
                return 400, {"error": {"message": "(#100) param attached_media must be "
                                                  "unpublished photos of this Page",
                                       "type": "OAuthException", "code": 100,
                                       "fbtrace_id": "AbCdEfFakeTrace"}}
            photos.append(fbid)
        message = self._text(params, "message")
        try:
            post = self._new_post("album" if photos else "feed", message,
                                  link=params.get("link", ""), photos=photos)
        except _Duplicate:
            return _duplicate()
        for fbid in photos:
            self.photos[fbid]["attached"] = True
        return 200, {"id": post["id"]}

    def _photo(self, params: Mapping[str, str], files: Mapping[str, bytes]) -> tuple[int, Any]:
        if "source" not in files and not params.get("url"):
            return 400, {"error": {"message": "(#324) Requires upload file",
                                   "type": "OAuthException", "code": 324,
                                   "fbtrace_id": "AbCdEfFakeTrace"}}
        photo_id = str(next(self._ids))
        published = params.get("published", "true") != "false"
        self.photos[photo_id] = {"id": photo_id, "published": published, "attached": False,
                                 "bytes": files.get("source", b""), "url": params.get("url", ""),
                                 "alt": params.get("alt_text_custom", "")}
        if not published:
            return 200, {"id": photo_id}
        try:
            post = self._new_post("photo", self._text(params, "message"), photos=[photo_id])
        except _Duplicate:
            return _duplicate()
        return 200, {"id": photo_id, "post_id": post["id"]}

    def _video(self, params: Mapping[str, str], files: Mapping[str, bytes]) -> tuple[int, Any]:
        handle = params.get("fbuploader_video_file_chunk", "")
        if "source" in files:
            data = files["source"]
        elif params.get("file_url"):
            data = b""
        elif handle and any(u.get("handle") == handle for u in self.uploads.values()):
            data = next(u["data"] for u in self.uploads.values() if u.get("handle") == handle)
        else:
            return 400, {"error": {"message": "(#100) No file was uploaded",
                                   "type": "OAuthException", "code": 100,
                                   "error_subcode": 1363030, "fbtrace_id": "AbCdEfFakeTrace"}}
        video_id = str(next(self._ids))
        post = self._new_post("video", self._text(params, "description"),
                              title=params.get("title", ""), size=len(data))
        post.update(id=video_id, description=post["message"],
                    url=f"https://www.facebook.com/{self.page_id}/videos/{video_id}")
        return 200, {"id": video_id}

    def _upload(self, method: str, session: str, raw: bytes,
                headers: Mapping[str, str]) -> tuple[int, Any]:
        upload = self.uploads.get(session)
        if upload is None:
            return 400, {"error": {"message": "Invalid upload session", "type":
                                   "OAuthException", "code": 100,
                                   "fbtrace_id": "AbCdEfFakeTrace"}}
        if method == "GET":
            return 200, {"id": session, "file_offset": len(upload["data"])}
        offset = int(headers.get("file_offset", headers.get("File-Offset", "0")) or 0)
        if offset != len(upload["data"]):
            return 400, {"error": {"message": "Invalid file_offset", "type": "OAuthException",
                                   "code": 100, "fbtrace_id": "AbCdEfFakeTrace"}}
        upload["data"] += raw
        if len(upload["data"]) < upload["length"]:
            return 200, {"id": session, "file_offset": len(upload["data"])}
        upload["handle"] = f"4:{session[7:]}:ZmFrZQ=="
        return 200, {"h": upload["handle"]}

    def _list(self, params: Mapping[str, str], posts: list[dict[str, Any]],
              field: str) -> tuple[int, Any]:
        since = int(params.get("since", "0") or 0)
        limit = int(params.get("limit", "25") or 25)
        start = int(params.get("after", "0") or 0)
        chosen = [p for p in reversed(posts)
                  if _parse(p["created_time"]).timestamp() >= since]
        page = chosen[start:start + limit]
        body: dict[str, Any] = {"data": [self._public(p, field) for p in page]}
        if start + limit < len(chosen):
            body["paging"] = {"cursors": {"after": str(start + limit)},
                              "next": f"{self.url}next?after={start + limit}"}
        return 200, body

    def _public(self, post: Mapping[str, Any], field: str) -> dict[str, Any]:
        out = {"id": post["id"], "created_time": post["created_time"],
               "permalink_url": post["url"]}
        if post["message"]:
            out[field] = post["message"]
        return out


class _Duplicate(Exception):
    pass


def _duplicate() -> tuple[int, Any]:
    return 400, {"error": {"message": "(#506) Duplicate status message",
                           "type": "OAuthException", "code": 506,
                           "fbtrace_id": "AbCdEfFakeTrace"}}


def _oauth(code: int, subcode: int, message: str) -> tuple[int, Any]:
    return 400, {"error": {"message": message, "type": "OAuthException", "code": code,
                           "error_subcode": subcode, "fbtrace_id": "AbCdEfFakeTrace"}}


def _graph_time(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _parse(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")


def _http_date(when: dt.datetime) -> str:
    from email.utils import format_datetime
    return format_datetime(when.astimezone(dt.timezone.utc), usegmt=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (a timeout under test) is not an error to print


class _Handler(BaseHTTPRequestHandler):
    graph: FakeGraphAPI
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, headers, body, delay = self.graph._handle(self.command, self.path,
                                                          dict(self.headers), raw)
        if delay:
            time.sleep(delay)
        try:
            self.send_response_only(status)
            self.send_header("Date", headers.pop("Date", self.date_time_string()))
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass
        self.close_connection = True

    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass
