"""A fake Instagram Graph API at the wire, for tests and demonstrations.

:class:`InstagramFake` answers the content-publishing endpoints the way Instagram's
reference documents them (paths, JSON bodies, the Graph error shape and its codes), on
``responses`` callbacks, so the publisher's real code runs and only the network is
replaced. It keeps one professional account: its containers (``IN_PROGRESS`` →
``FINISHED``, ``ERROR``, ``EXPIRED``, ``PUBLISHED``), its published media, the publishing
limit of the moving 24 hours, and the tokens it accepts. Like Instagram, it fetches
media itself, and refuses URLs on addresses the internet cannot reach (or listed in
``unreachable``).

It also implements the conformance suite's wire fake (``posts()``, ``fail_next(kind,
reset_at=, applied=)``, ``count_calls()``). Nothing here reaches a real platform: every
request to the fake's host is answered by the fake, and ``responses`` refuses any other.

Needs the ``responses`` package (``pip install 'humasflow-instagram[test]'``)::

    with InstagramFake(token="ig-fake-token-1") as fake:
        ...   # post with a channel whose credential "token" holds ig-fake-token-1
        fake.posts()
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import responses
from humasflow.testing import SteerableClock

from humasflow_instagram import API_VERSION, HOSTS
from humasflow_instagram._rules import private_host

__all__ = ["InstagramFake"]

_Answer = tuple[int, dict[str, str], str]

#: The conformance suite's failure kinds as Instagram answers them.
_FAILURES: Mapping[str, tuple[int, dict[str, Any]]] = {
    "unauthorized": (400, {"message": "Invalid OAuth access token - Cannot parse access "
                                      "token", "type": "OAuthException", "code": 190}),
    "rate_limited": (400, {"message": "Application request limit reached",
                           "type": "OAuthException", "code": 4, "is_transient": True}),
    "server_error": (500, {"message": "An unexpected error has occurred. Please retry your "
                                      "request later.", "type": "OAuthException", "code": 2,
                           "is_transient": True}),
}
_LIMIT = {"message": "Application request limit reached", "type": "OAuthException",
          "code": 9, "error_subcode": 2207042, "is_transient": False,
          "error_user_title": "Maximum posts reached",
          "error_user_msg": "You reached maximum number of posts that is allowed to be "
                            "published by Content Publishing API."}
_NOT_READY = {"message": "Media ID is not available", "type": "OAuthException", "code": 9007,
              "error_subcode": 2207027, "is_transient": False,
              "error_user_title": "Media not ready for publishing",
              "error_user_msg": "The media is not ready for publishing, please wait for a "
                                "moment"}
_EXPIRED = {"message": "The media you are trying to access has expired. Please try to "
                       "upload again.", "type": "OAuthException", "code": -2,
            "error_subcode": 2207020, "is_transient": False}
_FETCH = {"message": "Media download has failed. The media URI doesn't meet our "
                     "requirements.", "type": "OAuthException", "code": 9004,
          "error_subcode": 2207052, "is_transient": False,
          "error_user_title": "Media download failed",
          "error_user_msg": "The media could not be fetched from this URI: {url}. Please "
                            "check the URI and try again."}


class InstagramFake:
    """One Instagram professional account behind a fake Graph API.

    Args:
        token: The access token the fake accepts.
        login: ``"instagram"`` (graph.instagram.com) or ``"facebook"``
            (graph.facebook.com): where it answers, unless ``base_url`` is given.
        base_url: Answer here instead.
        version: The Graph API version in its paths.
        user_id: The account's id; ``me`` resolves to it as well.
        username: The account's username.
        clock: The time it stamps media with and judges the 24 hours by (default: a
            :class:`~humasflow.testing.SteerableClock`, which the conformance suite's
            clock also starts at).
        video_polls: How many status reads a video container stays ``IN_PROGRESS``.
        quota_total: The publishing limit per 24 hours.
        unreachable: Hosts whose URLs it cannot fetch (besides private addresses).
        permissions: What ``/me/permissions`` lists as granted (Facebook Login).

    Attributes:
        containers: Container id → its fields, ``status_code`` and ``status``.
        media: The published media, oldest first.
        requests: ``(method, path, fields)`` of every request it answered.
    """

    def __init__(self, token: str = "ig-fake-token-0001", *, login: str = "instagram",
                 base_url: str | None = None, version: str = API_VERSION,
                 user_id: str = "17841400000000001", username: str = "fisipub",
                 clock: Callable[[], dt.datetime] | None = None, video_polls: int = 2,
                 quota_total: int = 50, unreachable: tuple[str, ...] = (),
                 permissions: tuple[str, ...] = ("instagram_basic",
                                                 "instagram_content_publish",
                                                 "pages_read_engagement")) -> None:
        self.tokens = {token}
        self.base_url = (base_url or HOSTS[login]).rstrip("/")
        self.version = version
        self.user_id = user_id
        self.username = username
        self.clock = clock or SteerableClock()
        self.video_polls = video_polls
        self.quota_total = quota_total
        self.unreachable = set(unreachable)
        self.permissions = permissions
        self.containers: dict[str, dict[str, Any]] = {}
        self.media: list[dict[str, Any]] = []
        self.history: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.refreshed: list[str] = []
        self._failures: list[tuple[str, dt.datetime | None, bool]] = []
        self._full_until: dt.datetime | None = None
        self._ids = itertools.count(1)
        self.mock = responses.RequestsMock(assert_all_requests_are_fired=False)

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> InstagramFake:
        self.mock.__enter__()
        pattern = re.compile(rf"{re.escape(self.base_url)}/.*")
        for method in (responses.GET, responses.POST):
            self.mock.add_callback(method, pattern, callback=self._answer)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.mock.__exit__(*exc)

    # -- the conformance suite's wire fake ------------------------------------------------------

    def posts(self) -> list[dict[str, Any]]:
        """The media published through the API during this fake's life, oldest first."""
        return [{"id": m["id"], "url": m["permalink"], **m} for m in self.media]

    def fail_next(self, kind: str, *, reset_at: dt.datetime | None = None,
                  applied: bool = False) -> None:
        """Answer the next request as Instagram does for ``kind`` (``unauthorized``,
        ``rate_limited``, ``server_error``); with ``applied``, carry it out first.

        ``rate_limited`` on a ``content_publishing_limit`` read answers the limit as
        used up, with the account's posts of the window such that one leaves it at
        ``reset_at``; on any other call, code 4 with the estimated time to regain access
        in the ``X-Business-Use-Case-Usage`` header.
        """
        if kind not in _FAILURES:
            raise ValueError(f"unknown failure kind {kind!r}; known: {sorted(_FAILURES)}")
        self._failures.append((kind, reset_at, applied))

    def count_calls(self) -> int:
        """How many requests the fake received."""
        return len(self.requests)

    # -- steering -------------------------------------------------------------------------------

    def expire(self, container: str) -> None:
        """Let ``container`` expire, as it does 24 hours after it was made."""
        self.containers[container]["status_code"] = "EXPIRED"

    def fill_quota(self, until: dt.datetime) -> None:
        """Use the account's publishing limit up: the oldest post of the window leaves it
        at ``until``."""
        self._full_until = until

    # -- the API --------------------------------------------------------------------------------

    def _answer(self, request: Any) -> _Answer:
        url = urlsplit(request.url)
        query = dict(parse_qsl(url.query))
        body = dict(parse_qsl(request.body)) if isinstance(request.body, str) else (
            dict(parse_qsl(request.body.decode())) if request.body else {})
        fields = {**query, **body}
        path = url.path
        self.requests.append((request.method, path, fields))
        failure = self._failures.pop(0) if self._failures else None
        if failure is not None and not failure[2]:
            return self._failure(path, *failure[:2])
        token = query.get("access_token") or request.headers.get(
            "Authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            answer = self._error(400, _FAILURES["unauthorized"][1],
                                 {"WWW-Authenticate": 'OAuth "Facebook Platform" '
                                                      '"invalid_token" "Invalid OAuth '
                                                      'access token"'})
        else:
            answer = self._route(request.method, path, fields)
        return self._failure(path, *failure[:2]) if failure is not None else answer

    def _route(self, method: str, path: str, fields: dict[str, str]) -> _Answer:
        if path == "/refresh_access_token":
            return self._refresh(fields)
        prefix = f"/{self.version}/"
        if not path.startswith(prefix):
            return self._error(400, {"message": f"Unknown path components: {path}",
                                     "type": "OAuthException", "code": 2500})
        parts = path[len(prefix):].split("/")
        node, edge = parts[0], (parts[1] if len(parts) > 1 else "")
        if node == "me" and edge == "permissions":
            return self._ok({"data": [{"permission": p, "status": "granted"}
                                      for p in self.permissions]})
        if node == "me":
            node = self.user_id
        if node == self.user_id:
            if method == "POST" and edge == "media":
                return self._create(fields)
            if method == "POST" and edge == "media_publish":
                return self._publish(fields)
            if edge == "content_publishing_limit":
                return self._limit()
            if edge in ("media", "stories"):
                return self._list(edge, fields)
            if not edge:
                return self._ok({"id": self.user_id, "user_id": self.user_id,
                                 "username": self.username})
        if method == "GET" and not edge:
            if node in self.containers:
                return self._container(node)
            for media in (*self.media, *self.history):
                if media["id"] == node:
                    return self._ok({"id": media["id"], "permalink": media["permalink"]})
        return self._error(400, {"message": f"Unsupported request - method type: "
                                            f"{method.lower()}", "type": "GraphMethodException",
                                 "code": 100, "error_subcode": 33})

    def _create(self, fields: dict[str, str]) -> _Answer:
        kind = fields.get("media_type", "IMAGE")
        for key in ("image_url", "cover_url"):
            url = fields.get(key)
            if url and not self._fetchable(url):
                error = dict(_FETCH, error_user_msg=str(_FETCH["error_user_msg"]).format(
                    url=url))
                return self._error(400, error)
        if kind == "CAROUSEL":
            children = [c for c in fields.get("children", "").split(",") if c]
            if not 2 <= len(children) <= 10 or any(c not in self.containers
                                                   for c in children):
                return self._error(400, {"message": "Invalid parameter", "code": 100,
                                         "type": "OAuthException", "error_subcode": 2207028,
                                         "error_user_msg": "The carousel needs 2 to 10 "
                                                           "valid children."})
        elif not fields.get("image_url") and not fields.get("video_url"):
            return self._error(400, {"message": "The parameter image_url or video_url is "
                                                "required", "type": "OAuthException",
                                     "code": 100})
        container = f"1790{next(self._ids):013d}"
        video = fields.get("video_url")
        status, text = "FINISHED", "Finished: Media has been uploaded and it is ready to be "\
                                   "published."
        polls = 0
        if video:
            polls = self.video_polls
            status, text = "IN_PROGRESS", "In Progress: Media is still being processed."
            if not self._fetchable(video):
                polls, status, text = 0, "ERROR", "2207052"
        self.containers[container] = {"fields": dict(fields), "status_code": status,
                                      "status": text, "polls": polls,
                                      "created_at": self.clock()}
        return self._ok({"id": container})

    def _container(self, container: str) -> _Answer:
        state = self.containers[container]
        if state["status_code"] == "IN_PROGRESS":
            state["polls"] -= 1
            if state["polls"] < 0:
                state["status_code"] = "FINISHED"
                state["status"] = "Finished: Media has been uploaded and it is ready to be " \
                                  "published."
        if state["status_code"] in ("FINISHED", "IN_PROGRESS") and (
                self.clock() - state["created_at"] > dt.timedelta(hours=24)):
            state["status_code"] = "EXPIRED"
        answer = {"id": container, "status_code": state["status_code"]}
        if state["status_code"] == "ERROR" or state["status"]:
            answer["status"] = state["status"]
        return self._ok(answer)

    def _publish(self, fields: dict[str, str]) -> _Answer:
        container = fields.get("creation_id", "")
        state = self.containers.get(container)
        if state is None:
            return self._error(400, {"message": "Invalid parameter", "type": "OAuthException",
                                     "code": 100, "error_subcode": 2207006,
                                     "error_user_msg": "The media was not found."})
        if self._used() >= self.quota_total:
            return self._error(400, _LIMIT)
        if state["status_code"] == "EXPIRED":
            return self._error(400, _EXPIRED)
        if state["status_code"] in ("IN_PROGRESS", "ERROR"):
            return self._error(400, _NOT_READY)
        # Like Instagram's API, nothing stops a second media_publish of a container the
        # caller did not check: a blind retry shows here as a second post.
        number = next(self._ids)
        media_id = f"1800{number:013d}"
        kind = state["fields"].get("media_type", "IMAGE")
        media = {"id": media_id, "media_type": kind, "container": container,
                 "caption": state["fields"].get("caption", ""),
                 "timestamp": self.clock().strftime("%Y-%m-%dT%H:%M:%S+0000"),
                 "at": self.clock(),
                 "permalink": (f"https://www.instagram.com/stories/{self.username}/{media_id}/"
                               if kind == "STORIES" else
                               f"https://www.instagram.com/p/FISIP{number:06d}/")}
        if kind == "CAROUSEL":
            media["children"] = state["fields"].get("children", "").split(",")
        self.media.append(media)
        state["status_code"] = "PUBLISHED"
        state["status"] = "Published: Media has been successfully published."
        return self._ok({"id": media_id})

    def _used(self) -> int:
        since = self.clock() - dt.timedelta(hours=24)
        return sum(1 for m in self.media if m["at"] > since)

    def _limit(self) -> _Answer:
        usage = self._used()
        if self._full_until is not None:
            if self.clock() >= self._full_until:
                self._full_until = None
            else:
                usage = self.quota_total
                self._make_history(self._full_until)
        return self._ok({"data": [{"quota_usage": usage, "config": {
            "quota_total": self.quota_total, "quota_duration": 86400}}]})

    def _make_history(self, until: dt.datetime) -> None:
        """Posts made earlier through the API, the oldest of which leaves the window at
        ``until``."""
        if self.history:
            return
        oldest = until - dt.timedelta(hours=24)
        for i in range(self.quota_total):
            at = oldest + dt.timedelta(seconds=60 * i)
            media_id = f"1700{i:013d}"
            self.history.append({"id": media_id, "caption": f"older post {i}",
                                 "media_type": "IMAGE", "at": at,
                                 "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S+0000"),
                                 "permalink": f"https://www.instagram.com/p/OLD{i:06d}/"})

    def _list(self, edge: str, fields: dict[str, str]) -> _Answer:
        limit = int(fields.get("limit") or 25)
        stories = edge == "stories"
        every = [m for m in (*self.media, *self.history)
                 if (m["media_type"] == "STORIES") == stories]
        newest = sorted(every, key=lambda m: m["at"], reverse=True)[:limit]
        wanted = [f for f in fields.get("fields", "id").split(",") if f]
        return self._ok({"data": [{k: m[k] for k in wanted if k in m} for m in newest]})

    def _refresh(self, fields: dict[str, str]) -> _Answer:
        if fields.get("grant_type") != "ig_refresh_token":
            return self._error(400, {"message": "Unsupported grant_type",
                                     "type": "OAuthException", "code": 100})
        new = f"ig-fake-token-renewed-{len(self.refreshed) + 1:04d}"
        self.tokens.add(new)
        self.refreshed.append(new)
        return self._ok({"access_token": new, "token_type": "bearer", "expires_in": 5183944})

    def _fetchable(self, url: str) -> bool:
        host = (urlsplit(url).hostname or "").lower()
        return not private_host(url) and host not in self.unreachable

    # -- answers --------------------------------------------------------------------------------

    def _failure(self, path: str, kind: str, reset_at: dt.datetime | None) -> _Answer:
        status, error = _FAILURES[kind]
        headers: dict[str, str] = {}
        if kind == "rate_limited":
            if path.endswith("/content_publishing_limit") and reset_at is not None:
                # This answer only: the limit is used up, and the window's posts are such
                # that the oldest leaves it at reset_at.
                self._make_history(reset_at)
                return self._ok({"data": [{"quota_usage": self.quota_total, "config": {
                    "quota_total": self.quota_total, "quota_duration": 86400}}]})
            if reset_at is not None:
                seconds = (reset_at - self.clock()).total_seconds()
                minutes = max(1, -(-int(seconds) // 60))
                headers["X-Business-Use-Case-Usage"] = json.dumps({self.user_id: [{
                    "type": "instagram", "call_count": 100, "total_cputime": 40,
                    "total_time": 60, "estimated_time_to_regain_access": minutes}]})
        return self._error(status, error, headers)

    @staticmethod
    def _ok(body: Mapping[str, Any]) -> _Answer:
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    @staticmethod
    def _error(status: int, error: Mapping[str, Any],
               headers: Mapping[str, str] | None = None) -> _Answer:
        body = {"error": {**error, "fbtrace_id": "AbCdEfFakeTrace01"}}
        return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body)
