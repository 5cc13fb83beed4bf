"""Shared helpers of the Instagram publisher's tests: media as the office hands them over
(stored, with a media host's public URL), and a publisher wired to the fake."""

from __future__ import annotations

import hashlib
from typing import Any

import requests
from humasflow import ChannelConfig, Media, Post, PublisherContext

from humasflow_instagram import PUBLISHER, InstagramPublisher

TOKEN = "ig-fake-token-test-5c1d"
HOST = "https://media.fisip.example/humas/"


def image(name: str = "poster.jpg", *, width: int = 1080, height: int = 1350,
          size: int = 250_000, mime: str = "image/jpeg", alt: str = "",
          url: str | None = None) -> Media:
    """A stored image with a public URL from the media host."""
    return Media(name, alt=alt, kind="image", mime=mime, sha256=_hash(name), size=size,
                 width=width, height=height, url=HOST + name if url is None else url)


def video(name: str = "reel.mp4", *, duration: float = 30.0, size: int = 20_000_000,
          mime: str = "video/mp4", url: str | None = None) -> Media:
    """A stored video with a public URL from the media host."""
    return Media(name, kind="video", mime=mime, sha256=_hash(name), size=size,
                 duration=duration, url=HOST + name if url is None else url)


def post(*media: Media, text: str = "Selamat Dies Natalis ke-44 FISIP UB! #DiesNatalis",
         **options: Any) -> Post:
    """A post to the channel ``ig``."""
    return Post(item_id=7, channel="ig", title="Dies Natalis", text=text,
                media=media or (image(),), options=options,
                idempotency_key="hf-" + "0" * 32)


def publisher(settings: dict[str, Any] | None = None, *, clock: Any, token: str = TOKEN,
              writable: bool = False, renewed: list[Any] | None = None,
              session: requests.Session | None = None) -> InstagramPublisher:
    """The publisher of channel ``ig``, its waits recorded in ``.waits`` instead of slept."""
    channel = ChannelConfig(name="ig", publisher=PUBLISHER, settings=settings or {})
    sink = renewed if renewed is not None else []
    context = PublisherContext(
        credentials={"token": token}, session=session or requests.Session(), clock=clock,
        channel="ig", credentials_writable=writable,
        on_refresh=lambda name, value, expires: sink.append((name, value, expires)),
        on_expiry=lambda name, at: sink.append((name, at)))
    made = InstagramPublisher(channel, context)
    made.waits = []  # type: ignore[attr-defined]
    made.sleep = made.waits.append  # type: ignore[attr-defined]
    return made


def calls(fake: Any) -> list[tuple[str, str]]:
    """``(method, path without the version)`` of each request the fake answered."""
    out = []
    for method, path, _fields in fake.requests:
        parts = path.split("/", 2)
        out.append((method, parts[2] if len(parts) > 2 and parts[1].startswith("v")
                    else path.lstrip("/")))
    return out


def _hash(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()
