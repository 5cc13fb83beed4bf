"""The conformance suite run against humasflow's own publishers.

Rule: every publisher humasflow ships or documents passes
:class:`~humasflow.testing.conformance.PublisherConformance`; a check that cannot apply
is named with its reason and shows as skipped, never as passed.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from humasflow import plugins
from humasflow.models import Media
from humasflow.publishing.contract import Post
from humasflow.testing import FakePlatform, FakePlatformPlugin
from humasflow.testing.conformance import CHECKS, PublisherConformance, WireFake

TOKEN = "tok-fisip-4f9a2c81"
REVOKED = "tok-revoked-77e1b0d3"


class OutboxWire:
    """The outbox's "platform" is its folder: a post is a folder with ``post.json``
    (a hidden temporary folder is a write in progress, not a post)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def posts(self) -> list[dict[str, Any]]:
        if not self.folder.is_dir():
            return []
        found = []
        for entry in sorted(self.folder.iterdir()):
            if entry.name.startswith(".") or not (entry / "post.json").is_file():
                continue
            body = json.loads((entry / "post.json").read_text("utf-8"))
            found.append({**body, "id": entry.name, "url": entry.resolve().as_uri()})
        return found

    def fail_next(self, kind: str, *, reset_at: Any = None, applied: bool = False) -> None:
        raise NotImplementedError("a local folder answers no HTTP errors")

    def count_calls(self) -> int:
        return 0  # no requests: the outbox writes files


class TestOutboxConformance(PublisherConformance):
    publisher = "outbox"
    calls_per_post = 0
    invalid_problems: ClassVar = {("media[0]", "media_stored")}
    not_applicable: ClassVar = {
        "authentication": "the outbox has no credentials for a platform to refuse",
        "rate_limit": "a local folder has no rate limit",
        "server_error": "there is no server; a failing disk raises OSError: an unknown "
                        "outcome, settled by looking for the post's folder (reconcile)",
        "server_error_after_send": "there is no server",
        "timeout": "the outbox makes no network call that could time out",
        "check_bad_credentials": "the outbox takes no credentials",
        "secrets": "the outbox takes no credentials, so there is no secret to leak",
    }

    @pytest.fixture
    def wire(self, tmp_path: Path) -> OutboxWire:
        return OutboxWire(tmp_path / "outbox")

    def channel_settings(self, wire: OutboxWire) -> dict[str, Any]:
        return {"path": str(wire.folder)}

    def invalid_post(self, image: str) -> Post:
        # Media the office never stored (not in the media store) cannot be posted.
        return Post(item_id=0, channel="", title="Dies Natalis", text="",
                    media=(Media(str(Path(image).with_name("missing.png"))),))


class _FakePlatformSuite(PublisherConformance):
    plugin = FakePlatformPlugin()
    credentials: ClassVar = {"token": "FAKE_PLATFORM_TOKEN"}
    environ: ClassVar = {"FAKE_PLATFORM_TOKEN": TOKEN}
    bad_environ: ClassVar = {"FAKE_PLATFORM_TOKEN": REVOKED}
    calls_per_post = 3  # upload the poster, create the container, publish it
    invalid_problems: ClassVar = {("text", "max_length")}

    @pytest.fixture
    def wire(self):
        with FakePlatform({"fisip": TOKEN}) as platform:
            yield platform

    @pytest.fixture
    def conformance_store_url(self, store_url: str) -> str:
        return store_url  # SQLite and PostgreSQL (tests/conftest.py)

    def channel_settings(self, wire: FakePlatform) -> dict[str, Any]:
        return {"base_url": wire.url, "account": "fisip"}

    def invalid_post(self, image: str) -> Post:
        return Post(item_id=0, channel="", title="Dies Natalis", text="x" * 501,
                    media=(Media(image),))


class TestStepPublisherConformance(_FakePlatformSuite):
    publisher = "fake-platform"


class TestStepPublisherWithoutLookupConformance(_FakePlatformSuite):
    """Without ``reconcile`` every unknown outcome goes to a person; still never twice."""

    publisher = "fake-platform-nolookup"


def test_the_fake_platform_is_a_wire_fake():
    assert isinstance(FakePlatform(), WireFake)
    assert isinstance(OutboxWire(Path()), WireFake)


def test_checks_are_listed_once():
    assert len(set(CHECKS)) == len(CHECKS)


def test_the_template_plugin_is_found_through_its_entry_point():
    """The template distribution, installed (pip install -e plugins/_template), is found."""
    entry_points = importlib.metadata.entry_points(group="humasflow")
    assert "example" in {ep.name for ep in entry_points}, (
        "humasflow-example is not installed: .venv/bin/pip install -e plugins/_template")
    assert "example" in plugins.publisher_factories()
    names = {p["name"] for p in plugins.get_plugins()}
    assert "example" in names
