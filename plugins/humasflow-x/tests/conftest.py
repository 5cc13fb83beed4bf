"""Fixtures of the X publisher's tests: a fake X at the wire, a media store, publishers."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import requests
from humasflow import ChannelConfig, Media, PublisherContext
from humasflow.mediastore import MediaStore
from humasflow.testing import SteerableClock, sample_image, sample_video

from humasflow_x import PUBLISHER, XPublisher
from humasflow_x.testing import FAKE_OAUTH1 as OAUTH1
from humasflow_x.testing import FakeX


@pytest.fixture
def clock() -> SteerableClock:
    return SteerableClock()


@pytest.fixture
def fake(clock):
    with FakeX(clock=clock).mock() as fake:
        yield fake


@pytest.fixture
def media_store(tmp_path) -> MediaStore:
    return MediaStore(tmp_path / "media")


class Stored:
    """Puts files in the media store and returns them as the office hands them over."""

    def __init__(self, store: MediaStore, folder: Path) -> None:
        self.store = store
        self.folder = folder

    def bytes(self, data: bytes, name: str, alt: str = "") -> Media:
        info = self.store.add(io.BytesIO(data), source=name)
        return Media(name, alt=alt, kind=info.kind, sha256=info.sha256, size=info.size,
                     mime=info.mime, width=info.width, height=info.height,
                     duration=info.duration)

    def image(self, alt: str = "Poster Dies Natalis", *, name: str = "poster.png",
              colour: tuple[int, int, int] = (0, 51, 102)) -> Media:
        path = sample_image(self.folder / name, colour=colour)
        return self.bytes(Path(path).read_bytes(), name, alt)

    def video(self, seconds: float = 3.0, *, padding: int = 0, alt: str = "") -> Media:
        path = Path(sample_video(self.folder / "clip.mp4", seconds=seconds))
        return self.bytes(path.read_bytes() + bytes(padding), "clip.mp4", alt)


@pytest.fixture
def stored(media_store, tmp_path) -> Stored:
    return Stored(media_store, tmp_path)


@pytest.fixture
def make(clock, media_store):
    """``make(settings=..., credentials=..., writable=..., session=...)`` → XPublisher."""
    made: list[Any] = []

    def make(settings: dict[str, Any] | None = None,
             credentials: dict[str, str] | None = None, *, writable: bool = False,
             session: requests.Session | None = None, refreshed: list[Any] | None = None,
             expiries: list[Any] | None = None) -> XPublisher:
        context = PublisherContext(
            credentials=dict(OAUTH1 if credentials is None else credentials),
            session=session or requests.Session(), clock=clock, media=media_store,
            channel="x", credentials_writable=writable,
            on_refresh=(lambda *a: refreshed.append(a)) if refreshed is not None else None,
            on_expiry=(lambda *a: expiries.append(a)) if expiries is not None else None)
        publisher = XPublisher(ChannelConfig(name="x", publisher=PUBLISHER,
                                             settings=dict(settings or {})), context)
        publisher.sleep = lambda seconds: made.append(seconds)
        publisher.slept = made  # type: ignore[attr-defined]
        return publisher

    return make
