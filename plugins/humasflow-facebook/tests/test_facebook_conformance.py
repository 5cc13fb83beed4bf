"""humasflow's conformance suite against the Facebook publisher, on the fake Graph API.

Two runs of the suite: a one-photo post (the suite's own valid post: one call), and an
album of three photos (three unpublished uploads, then the feed call that makes the
post public), so the fault matrix crashes and times out after each photo upload too.
Text and link posts, videos and every error class are tested at the wire in
test_facebook_publisher.py (the SOP always posts a design, so the suite's items carry
media).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from humasflow import Media, Post
from humasflow.testing import sample_image
from humasflow.testing.conformance import PublisherConformance

from humasflow_facebook import PUBLISHER
from humasflow_facebook.fake import FAKE_PAGE_TOKEN, FakeGraphAPI

BAD = "fake-page-token-revoked-1111"


class TestFacebookPhotoConformance(PublisherConformance):
    publisher = PUBLISHER
    credentials: ClassVar = {"page_token": "FISIP_FB_PAGE_TOKEN"}
    environ: ClassVar = {"FISIP_FB_PAGE_TOKEN": FAKE_PAGE_TOKEN}
    bad_environ: ClassVar = {"FISIP_FB_PAGE_TOKEN": BAD}
    calls_per_post = 1
    invalid_problems: ClassVar = {("text", "max_length")}

    @pytest.fixture
    def wire(self):
        with FakeGraphAPI() as graph:
            yield graph

    def channel_settings(self, wire: Any) -> dict[str, Any]:
        return {"page_id": wire.page_id, "graph_url": wire.url, "video_url": wire.url}

    def invalid_post(self, image: str) -> Post:
        return Post(item_id=0, channel="", title="Dies Natalis", text="x" * 64_000,
                    media=(Media(image),))


class TestFacebookAlbumConformance(TestFacebookPhotoConformance):
    calls_per_post = 4

    def valid_post(self, image: str) -> Post:
        folder = Path(image).parent
        others = [sample_image(folder / f"album-{i}.png", size=(8 + i, 6)) for i in (1, 2)]
        return Post(item_id=0, channel="", title="Wisuda",
                    text="Wisuda FISIP UB periode I 2026",
                    media=(Media(image, alt="Poster wisuda"),
                           *(Media(str(p), alt=f"Foto {i}") for i, p in enumerate(others, 1))))
