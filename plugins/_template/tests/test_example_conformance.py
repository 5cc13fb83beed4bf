"""humasflow's conformance suite against the Example publisher, on a wire fake.

The fake is the Example API as `responses` callbacks: it keeps the posts in memory,
checks the token, and fails a request on demand the way the real API would.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from typing import Any, ClassVar

import pytest
import responses
from humasflow import Media, Post
from humasflow.testing.conformance import PublisherConformance

from humasflow_example import PUBLISHER

API = "https://api.example.invalid"
GOOD = "tok-example-5b7c1e"
BAD = "tok-example-revoked-0a9d"

_FAILURES = {
    "unauthorized": (401, "invalid_token", "The access token is invalid."),
    "rate_limited": (429, "rate_limited", "Too many requests."),
    "server_error": (500, "internal", "Something went wrong."),
}


class ExampleWire:
    """The Example API at the wire (implements the conformance suite's WireFake)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.stored: list[dict[str, Any]] = []
        self.received = 0
        self._failures: list[tuple[str, dt.datetime | None, bool]] = []
        self._ids = itertools.count(100)
        self.mock = responses.RequestsMock(assert_all_requests_are_fired=False)

    def __enter__(self) -> ExampleWire:
        self.mock.__enter__()
        self.mock.add_callback(responses.POST, f"{API}/v1/posts", callback=self._create)
        self.mock.add_callback(responses.GET, re.compile(rf"{re.escape(API)}/v1/posts\b.*"),
                               callback=self._lookup)
        self.mock.add_callback(responses.GET, f"{API}/v1/me", callback=self._me)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.mock.__exit__(*exc)

    # -- the WireFake protocol ---------------------------------------------------------------

    def posts(self) -> list[dict[str, Any]]:
        return list(self.stored)

    def fail_next(self, kind: str, *, reset_at: dt.datetime | None = None,
                  applied: bool = False) -> None:
        self._failures.append((kind, reset_at, applied))

    def count_calls(self) -> int:
        return self.received

    # -- the API ------------------------------------------------------------------------------

    def _answer(self, request: Any, work: Any) -> tuple[int, dict[str, str], str]:
        self.received += 1
        failure = self._failures.pop(0) if self._failures else None
        if failure is not None and not failure[2]:
            return self._failure(*failure[:2])
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            answer = self._failure("unauthorized", None)
        else:
            answer = work(request)
        return self._failure(*failure[:2]) if failure is not None else answer

    def _failure(self, kind: str, reset_at: dt.datetime | None) -> tuple[int, dict[str, str],
                                                                       str]:
        status, code, message = _FAILURES[kind]
        headers = {}
        if kind == "rate_limited" and reset_at is not None:
            headers["X-RateLimit-Reset"] = str(int(reset_at.timestamp()))
        return status, headers, json.dumps({"error": {"code": code, "message": message}})

    def _create(self, request: Any) -> tuple[int, dict[str, str], str]:
        def work(request: Any) -> tuple[int, dict[str, str], str]:
            body = json.loads(request.body)
            post_id = str(next(self._ids))
            post = {"id": post_id, "url": f"https://example.invalid/@fisip/{post_id}",
                    "text": body["text"], "client_ref": body.get("client_ref", "")}
            self.stored.append(post)
            return 201, {}, json.dumps({"id": post_id, "url": post["url"]})
        return self._answer(request, work)

    def _lookup(self, request: Any) -> tuple[int, dict[str, str], str]:
        def work(request: Any) -> tuple[int, dict[str, str], str]:
            ref = request.params.get("client_ref", "")
            found = [p for p in self.stored if p["client_ref"] == ref]
            return 200, {}, json.dumps({"data": found})
        return self._answer(request, work)

    def _me(self, request: Any) -> tuple[int, dict[str, str], str]:
        return self._answer(request, lambda r: (200, {}, json.dumps({"id": "1",
                                                                     "handle": "fisip"})))


class TestExampleConformance(PublisherConformance):
    publisher = PUBLISHER  # found through the entry point of this installed distribution
    credentials: ClassVar = {"token": "EXAMPLE_TOKEN"}
    environ: ClassVar = {"EXAMPLE_TOKEN": GOOD}
    bad_environ: ClassVar = {"EXAMPLE_TOKEN": BAD}
    calls_per_post = 1
    invalid_problems: ClassVar = {("text", "max_length")}

    @pytest.fixture
    def wire(self):
        with ExampleWire(GOOD) as wire:
            yield wire

    def channel_settings(self, wire):
        # Example fetches media from a public URL itself: hand the URLs over as they are.
        return {"media_urls": "pass"}

    def valid_post(self, image: str) -> Post:
        # Example fetches media from a public URL (stored media need a media host).
        return Post(item_id=0, channel="", title="Dies Natalis",
                    text="Selamat Dies Natalis ke-44 FISIP Universitas Brawijaya!",
                    media=(Media("https://media.fisip.example/dies-natalis.png",
                                 alt="Poster Dies Natalis"),))

    def invalid_post(self, image: str) -> Post:
        return Post(item_id=0, channel="", title="Dies Natalis", text="x" * 501,
                    media=(Media("https://media.fisip.example/dies-natalis.png"),))
