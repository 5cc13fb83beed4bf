"""humasflow's conformance suite against the X publisher, on a fake X at the wire.

Two runs: a post with one image (OAuth 1.0a), and a 3-part thread with two images
(OAuth 2.0 user token), whose fault matrix hits every call of the thread: the account
look-up, each upload and alt text, and each part's create call.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from humasflow import Media, Post
from humasflow.testing import SteerableClock, conformance
from humasflow.testing.conformance import PublisherConformance

from humasflow_x import PUBLISHER
from humasflow_x.testing import FAKE_CREDENTIALS, FakeX

OAUTH1 = {"consumer_key": "X_CONSUMER_KEY", "consumer_secret": "X_CONSUMER_SECRET",
          "access_token": "X_ACCESS_TOKEN", "access_token_secret": "X_ACCESS_TOKEN_SECRET"}
GOOD1 = {"X_CONSUMER_KEY": FAKE_CREDENTIALS["consumer_key"],
         "X_CONSUMER_SECRET": FAKE_CREDENTIALS["consumer_secret"],
         "X_ACCESS_TOKEN": FAKE_CREDENTIALS["access_token"],
         "X_ACCESS_TOKEN_SECRET": FAKE_CREDENTIALS["access_token_secret"]}
BAD1 = {**GOOD1, "X_ACCESS_TOKEN": "fake-access-token-revoked-9999"}

THREAD_TEXT = " ".join(
    f"Kalimat {n} tentang rangkaian acara Dies Natalis ke-44 FISIP Universitas Brawijaya."
    for n in range(1, 10))


@pytest.fixture
def fake_x(monkeypatch):
    """A fake X whose clock is the suite's clock: the conformance harness makes its
    SteerableClock after the wire, so the fake hands it the one it stamps posts with."""
    clock = SteerableClock()
    monkeypatch.setattr(conformance, "SteerableClock", lambda: clock)
    with FakeX(clock=clock).mock() as fake:
        yield fake


class TestXConformance(PublisherConformance):
    publisher = PUBLISHER
    credentials: ClassVar = OAUTH1
    environ: ClassVar = GOOD1
    bad_environ: ClassVar = BAD1
    # GET /2/users/me, the image, its alt text, POST /2/tweets.
    calls_per_post = 4
    invalid_problems: ClassVar = {("text", "max_length")}

    @pytest.fixture
    def wire(self, fake_x):
        return fake_x

    def invalid_post(self, image: str) -> Post:
        return Post(item_id=0, channel="", title="Dies Natalis", text="x" * 281,
                    media=(Media(image, alt="Poster"),))


class TestXThreadConformance(PublisherConformance):
    publisher = PUBLISHER
    credentials: ClassVar = {"access_token": "X_OAUTH2_TOKEN"}
    environ: ClassVar = {"X_OAUTH2_TOKEN": FAKE_CREDENTIALS["oauth2_token"]}
    bad_environ: ClassVar = {"X_OAUTH2_TOKEN": "fake-oauth2-token-expired-9999"}
    # GET /2/users/me, 2 × (image, alt text), 3 × POST /2/tweets.
    calls_per_post = 8
    invalid_problems: ClassVar = {("text", "thread_split")}

    @pytest.fixture
    def wire(self, fake_x):
        return fake_x

    def channel_settings(self, wire: Any) -> dict[str, Any]:
        return {"thread": True}

    def valid_post(self, image: str) -> Post:
        return Post(item_id=0, channel="", title="Dies Natalis", text=THREAD_TEXT,
                    media=(Media(image, alt="Poster Dies Natalis"),
                           Media(image, alt="Poster Dies Natalis, versi kedua")))

    def invalid_post(self, image: str) -> Post:
        return Post(item_id=0, channel="", title="Dies Natalis", text="#" + "a" * 300,
                    media=(Media(image, alt="Poster"),))

    def test_the_valid_post_is_a_three_part_thread(self, harness) -> None:
        publisher = harness.publisher()
        assert len(publisher.plan(harness.post())) == 3

    def test_no_double_post(self, harness, fault) -> None:
        super().test_no_double_post(harness, fault)
        # Every part once, each replying to the one before, the images on the first.
        thread = harness.wire.thread()
        assert len(thread) == 3, thread
        assert [t["reply_to"] for t in thread] == [None, thread[0]["id"], thread[1]["id"]]
        assert [len(t["media_ids"]) for t in thread] == [2, 0, 0]
        assert [t["text"][-4:] for t in thread] == [" 1/3", " 2/3", " 3/3"]
