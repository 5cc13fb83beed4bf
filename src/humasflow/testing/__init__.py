"""Test helpers for plugin authors and embedders.

Beside the helpers here: :mod:`humasflow.testing.platform` (a fake social platform on
127.0.0.1 and a three-step publisher for it), :mod:`humasflow.testing.faults` (crashes
and timeouts at any call of a posting run) and :mod:`humasflow.testing.conformance`
(the test suite every publisher distribution runs; needs pytest).

>>> from humasflow.testing import SteerableClock, temp_office
>>> clock = SteerableClock()
>>> with temp_office(clock=clock) as office:
...     office.sop().header.number
'UN10/F11.07/HK.01.02.a/05'
"""

from __future__ import annotations

import datetime as dt
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from humasflow import plugins
from humasflow.errors import PublishError
from humasflow.hookspecs import hookimpl
from humasflow.models import ChannelConfig, ContentItem, Media
from humasflow.office import DEFAULT_ORG, Office
from humasflow.publishing.contract import Post, Problem, PublisherContext, Receipt
from humasflow.storage.store import Store
from humasflow.testing.faults import Crash, FaultInjector, MemoryProgress
from humasflow.testing.platform import FakePlatform, FakePlatformPlugin, StepPublisher

__all__ = [
    "Crash",
    "FakePlatform",
    "FakePlatformPlugin",
    "FakePublisher",
    "FaultInjector",
    "MemoryProgress",
    "SteerableClock",
    "StepPublisher",
    "fake_publisher_plugin",
    "item_ready_to_post",
    "plugin_registered",
    "sample_image",
    "sample_video",
    "staffed_office",
    "temp_office",
]


class SteerableClock:
    """A clock that stands still until moved.

    Args:
        start: The first time it shows (default 2026-01-05 02:00 UTC, 09:00 in Jakarta).
    """

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.timezone.utc)
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self.now

    def advance(self, delta: dt.timedelta | None = None, **kwargs: float) -> dt.datetime:
        """Move forward by ``delta`` or by ``timedelta(**kwargs)``; return the new time."""
        with self._lock:
            self.now += delta if delta is not None else dt.timedelta(**kwargs)
            return self.now

    def set(self, when: dt.datetime) -> None:
        """Jump to ``when`` (aware)."""
        with self._lock:
            self.now = when


@attrs.define
class FakePublisher:
    """A publisher that records posts in memory and fails on demand.

    Attributes:
        posted: The posts received, in order.
        fail_with: If set, ``publish`` raises it (once, then clears it).
        problems: What ``validate`` returns.
    """

    channel: str = "fake"
    posted: list[Post] = attrs.field(factory=list)
    fail_with: BaseException | None = None
    problems: list[Problem] = attrs.field(factory=list)
    checked: int = 0

    def validate(self, post: Post) -> list[Problem]:
        """Return :attr:`problems`."""
        return list(self.problems)

    def publish(self, post: Post, progress: Any = None) -> Receipt:
        """Record ``post`` or raise :attr:`fail_with`."""
        if self.fail_with is not None:
            exc, self.fail_with = self.fail_with, None
            if isinstance(exc, PublishError) and not exc.channel:
                exc.channel = post.channel
            raise exc
        self.posted.append(post)
        n = len(self.posted)
        return Receipt(platform_id=f"fake-{n}",
                       url=f"https://fake.example/{post.channel}/{n}")

    def check(self) -> None:
        """Count the check."""
        self.checked += 1


class fake_publisher_plugin:
    """A plugin registering the publisher ``fake``, backed by one :class:`FakePublisher`
    per channel name (``plugin.publishers[name]``)."""

    def __init__(self) -> None:
        self.publishers: dict[str, FakePublisher] = {}

    def factory(self, channel: ChannelConfig, context: PublisherContext) -> FakePublisher:
        return self.publishers.setdefault(channel.name, FakePublisher(channel=channel.name))

    @hookimpl
    def register_publishers(self, register: Any) -> None:
        register("fake", self.factory)


@contextmanager
def plugin_registered(plugin: object, name: str | None = None) -> Iterator[object]:
    """Register ``plugin`` for the duration of the ``with`` block."""
    plugins.load_plugins()
    registered = plugins.pm.register(plugin, name)
    try:
        yield plugin
    finally:
        plugins.pm.unregister(plugin, registered)


@contextmanager
def temp_office(
    *,
    org: str = DEFAULT_ORG,
    clock: Any = None,
    environ: Mapping[str, str] | None = None,
    url: str | None = None,
    establish: bool = True,
    media_roots: Any = (),
) -> Iterator[Office]:
    """An office on a fresh SQLite file in a temporary folder (or on ``url``).

    The bundled SOP is established unless ``establish=False``. Its media store is in
    the temporary folder too.
    """
    with tempfile.TemporaryDirectory(prefix="humasflow-") as folder:
        store = Store(url or Path(folder, "humasflow.db"))
        try:
            office = Office(store, org, clock=clock or SteerableClock(), environ=environ or {},
                            media_store=Path(folder, "media"), media_roots=media_roots)
            if establish:
                office.establish(by="Dekan")
            yield office
        finally:
            store.close()


def sample_image(path: str | Path, *, size: tuple[int, int] = (8, 6),
                 colour: tuple[int, int, int] = (0, 51, 102), format: str | None = None,
                 ) -> str:
    """Write a small valid image (type from the name: PNG, JPEG, GIF, WebP); return its path.

    Media are sniffed from their bytes when attached, so tests need real image files.
    """
    from PIL import Image

    Image.new("RGB", size, colour).save(path, format=format)
    return str(path)


def sample_video(path: str | Path, *, seconds: float = 3.0) -> str:
    """Write a minimal MP4 header (``ftyp`` and ``moov/mvhd`` with the duration).

    Enough for the media store to sniff a video and read its duration; it does not play.
    """
    import struct

    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", 8 + len(body)) + kind + body

    scale = 1000
    mvhd = box(b"mvhd", b"\0\0\0\0" + struct.pack(">IIII", 0, 0, scale, int(seconds * scale))
               + bytes(80))
    Path(path).write_bytes(box(b"ftyp", b"isom\0\0\2\0isomiso2mp41") + box(b"moov", mvhd))
    return str(path)


def staffed_office(office: Office) -> Office:
    """Add the usual cast to an office: administrator ``admin`` (made with
    :meth:`~humasflow.office.Office.bootstrap_admin` if the organisation has no
    administrator yet), staff ``rina`` and ``sari``, coordinator ``budi``."""
    if not office.administrators():
        office.bootstrap_admin("admin", "Administrator", email="admin@example.ac.id")
    office.add_actor("rina", "Rina Wulandari", email="rina@example.ac.id", roles=["staff"],
                     by="admin")
    office.add_actor("sari", "Sari Dewi", email="sari@example.ac.id", roles=["staff"],
                     by="admin")
    office.add_actor("budi", "Budi Santoso", email="budi@example.ac.id",
                     roles=["coordinator"], by="admin")
    return office


def item_ready_to_post(
    office: Office,
    *,
    text: str,
    media: Any,
    link: str = "",
    channels: Any = None,
    title: str = "Dies Natalis",
) -> ContentItem:
    """Walk a new item through the SOP up to its posting step.

    Needs the cast of :func:`staffed_office`: ``rina`` writes and produces, ``budi``
    approves, ``sari`` rechecks. ``media`` (paths, URLs or :class:`Media`) is both the
    design and the produced media; the office copies their bytes into its media store,
    so paths must name real image or video files (see :func:`sample_image`).
    """
    media = [m if isinstance(m, Media) else Media(str(m)) for m in media]
    item = office.new_item(title, by="rina", channels=channels, link=link)
    office.complete(item.id, by="rina", text=text)
    office.complete(item.id, by="rina", notes="template and assets")
    office.complete(item.id, by="rina", media=media)
    office.approve(item.id, by="budi", answer="OK by email")
    office.complete(item.id, by="rina", media=media)
    return office.pass_recheck(item.id, by="sari")
