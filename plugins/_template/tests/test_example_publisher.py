"""The Example publisher at the wire, with `responses`: requests, answers, errors."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json

import pytest
import requests
import responses
from humasflow import (
    AuthenticationFailed,
    ChannelConfig,
    ContentRejected,
    Media,
    OutcomeUnknown,
    PlatformError,
    Post,
    PublisherContext,
    RateLimited,
    Receipt,
    plugins,
)
from humasflow.testing import MemoryProgress

from humasflow_example import PUBLISHER, ExamplePublisher

API = "https://api.example.invalid"
TOKEN = "tok-example-5b7c1e"
POSTER = Media("https://media.fisip.example/poster.png", alt="Poster", passthrough=True)


@pytest.fixture
def publisher() -> ExamplePublisher:
    channel = ChannelConfig(name="example", publisher=PUBLISHER)
    context = PublisherContext(credentials={"token": TOKEN}, session=requests.Session())
    return ExamplePublisher(channel, context)


@pytest.fixture
def post() -> Post:
    return Post(item_id=7, channel="example", title="Dies Natalis", text="Selamat!",
                media=(POSTER,))


@pytest.fixture
def api():
    with responses.RequestsMock() as mock:
        yield mock


def test_the_entry_point_registers_the_publisher():
    """Installed (pip install -e .), humasflow finds it through its entry point."""
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="humasflow")}
    assert names.get(PUBLISHER) == "humasflow_example"
    assert plugins.publisher_factories()[PUBLISHER] is ExamplePublisher


def test_publish_sends_one_json_request_with_the_token_and_a_timeout(publisher, post, api):
    api.post(f"{API}/v1/posts", status=201,
             json={"id": "42", "url": "https://example.invalid/@fisip/42"})
    progress = MemoryProgress()

    receipt = publisher.publish(post, progress)

    assert receipt == Receipt("42", "https://example.invalid/@fisip/42")
    [call] = api.calls
    assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(call.request.body) == {
        "text": "Selamat!", "media_urls": [POSTER.url or POSTER.source], "link": "",
        "client_ref": "humasflow:7:example"}
    assert progress == {"sent": "humasflow:7:example"}  # saved before the call


def test_every_request_has_a_timeout(publisher, post, api, monkeypatch):
    seen = []
    original = requests.Session.request

    def request(self, *args, **kwargs):
        seen.append(kwargs.get("timeout"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", request)
    api.get(f"{API}/v1/me", json={"id": "1", "handle": "fisip"})
    api.get(f"{API}/v1/posts", json={"data": []})
    api.post(f"{API}/v1/posts", status=201, json={"id": "1", "url": "https://x.invalid/1"})
    publisher.check()
    publisher.reconcile(post, MemoryProgress())
    publisher.publish(post, MemoryProgress())
    assert seen == [10.0, 10.0, 10.0]


def test_a_retry_after_a_lost_answer_looks_first(publisher, post, api):
    api.get(f"{API}/v1/posts", json={"data": [{"id": "42", "url": "https://x.invalid/42"}]})

    receipt = publisher.publish(post, MemoryProgress(sent="humasflow:7:example"))

    assert receipt.platform_id == "42"
    assert [c.request.method for c in api.calls] == ["GET"]  # not posted again


@pytest.mark.parametrize(("status", "error"), [
    (401, AuthenticationFailed), (403, AuthenticationFailed), (400, ContentRejected),
    (422, ContentRejected), (500, PlatformError), (503, PlatformError)])
def test_answers_are_classified(publisher, post, api, status, error):
    api.post(f"{API}/v1/posts", status=status,
             json={"error": {"code": "x", "message": "nope"}})
    with pytest.raises(error) as raised:
        publisher.publish(post, MemoryProgress())
    assert raised.value.channel == "example"
    assert TOKEN not in str(raised.value)


def test_a_rate_limit_says_when_it_resets(publisher, post, api):
    api.post(f"{API}/v1/posts", status=429, headers={"X-RateLimit-Reset": "1767600000"},
             json={"error": {"code": "rate_limited", "message": "slow down"}})
    with pytest.raises(RateLimited) as raised:
        publisher.publish(post, MemoryProgress())
    assert raised.value.reset_at == dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.timezone.utc)


def test_a_lost_answer_to_the_post_is_an_unknown_outcome(publisher, post, api):
    api.post(f"{API}/v1/posts", body=requests.ReadTimeout("read timed out"))
    with pytest.raises(OutcomeUnknown):
        publisher.publish(post, MemoryProgress())


def test_reconcile_finds_the_post_or_says_it_is_absent(publisher, post, api):
    api.get(f"{API}/v1/posts", json={"data": []})
    assert publisher.reconcile(post, MemoryProgress()) is None
    api.replace(responses.GET, f"{API}/v1/posts", json={"data": [{"id": "9", "url": "u://9"}]})
    assert publisher.reconcile(post, MemoryProgress()) == Receipt("9", "u://9")


def test_reconcile_that_cannot_ask_raises_outcome_unknown(publisher, post, api):
    api.get(f"{API}/v1/posts", status=502, body="<html>bad gateway</html>")
    with pytest.raises(PlatformError):
        publisher.reconcile(post, MemoryProgress())
    api.replace(responses.GET, f"{API}/v1/posts", body=requests.ConnectionError("reset"))
    with pytest.raises(OutcomeUnknown):
        publisher.reconcile(post, MemoryProgress())


def test_validate_needs_no_network_and_names_field_and_rule(publisher):
    bad = Post(item_id=1, channel="example", title="t", text="x" * 501,
               media=(Media("/home/rina/poster.png"),))
    problems = publisher.validate(bad)
    assert {(p.channel, p.field, p.rule) for p in problems} == {
        ("example", "text", "max_length"), ("example", "media[0]", "public_url")}


def test_the_token_never_shows_in_repr(publisher):
    assert TOKEN not in repr(publisher)
