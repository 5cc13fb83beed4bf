"""humasflow's conformance suite against the Instagram publisher, on the Instagram fake.

A clean post of the suite's valid post (one image) makes five requests: the publishing
limit, the container, its status, ``media_publish`` and the permalink; the fault matrix
injects a crash or a timeout at each of them.
"""

from __future__ import annotations

from typing import ClassVar

import pytest
from humasflow import Media, Post
from humasflow.testing.conformance import PublisherConformance

from humasflow_instagram import PUBLISHER
from humasflow_instagram.testing import InstagramFake

GOOD = "ig-fake-token-good-7f3a"
BAD = "ig-fake-token-revoked-09bc"
POSTER = "https://media.fisip.example/dies-natalis.jpg"


class TestInstagramConformance(PublisherConformance):
    publisher = PUBLISHER  # found through the entry point of this installed distribution
    credentials: ClassVar = {"token": "FISIP_IG_TOKEN"}
    environ: ClassVar = {"FISIP_IG_TOKEN": GOOD}
    bad_environ: ClassVar = {"FISIP_IG_TOKEN": BAD}
    calls_per_post = 5
    invalid_problems: ClassVar = {("text", "max_length")}

    @pytest.fixture
    def wire(self):
        with InstagramFake(GOOD) as fake:
            yield fake

    def channel_settings(self, wire):
        # Instagram fetches media from a public URL itself: the suite's office has no
        # media host, so its post hands Instagram a URL as it is.
        return {"media_urls": "pass", "refresh": "off"}

    def valid_post(self, image: str) -> Post:
        return Post(item_id=0, channel="", title="Dies Natalis",
                    text="Selamat Dies Natalis ke-44 FISIP Universitas Brawijaya! #FISIPUB",
                    media=(Media(POSTER, alt="Poster Dies Natalis"),))

    def invalid_post(self, image: str) -> Post:
        return Post(item_id=0, channel="", title="Dies Natalis", text="x" * 2201,
                    media=(Media(POSTER),))
