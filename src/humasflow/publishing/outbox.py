"""The outbox publisher: posts into a local folder. The embedded default.

Each post becomes a folder ``<path>/item-<id>-<channel>-<idempotency key>/`` holding
``post.json`` and copies of its media, read from the media store after checking their
hash. The idempotency key makes the name
unique beyond the store: two stores writing into one outbox folder (two faculties,
staging and production, a rebuilt database) never take each other's posts as their
own. It needs no credentials and no network, so a PR office can try humasflow, and a
deployment can hand posts to another system, safely.

A post is written into a hidden temporary folder and renamed into place in one step, so
the folder exists (with its ``post.json``) exactly when the post was made. That makes
the outbox searchable: after a crash, :meth:`OutboxPublisher.reconcile` looks for the
folder, and the channel settles itself, posted or posted again, without a person. (A
system that takes posts out of the outbox should not do so within the dispatcher's
lease of them being written, or a crash in that window looks like "not posted".)

Settings: ``path`` (default ``"outbox"``), made absolute when the channel is configured
(relative to the directory of whoever configures it), so the posting process's working
directory does not matter. A channel variant's
options are written into ``post.json`` as they are, for the system that takes the posts
out.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from humasflow.errors import ContentRejected
from humasflow.hookspecs import hookimpl
from humasflow.i18n import _
from humasflow.models import ChannelConfig, Media
from humasflow.publishing.contract import (
    Post,
    Problem,
    PublisherContext,
    Receipt,
    check_settings,
)

__all__ = ["OutboxPublisher"]


class OutboxPublisher:
    """Writes each post as JSON, with its media, into a local folder."""

    def __init__(self, channel: ChannelConfig, context: PublisherContext) -> None:
        self.channel = channel.name
        self.path = Path(str(channel.settings.get("path", "outbox")))
        self.clock = context.clock
        self.media = context.media

    @staticmethod
    def prepare_settings(settings: dict[str, Any]) -> dict[str, Any]:
        """Make ``path`` absolute and refuse settings the outbox does not take (called
        when the channel is configured)."""
        check_settings("outbox", settings, ["path"])
        path = Path(str(settings.get("path", "outbox"))).expanduser()
        return {**settings, "path": str(path.absolute())}

    def validate(self, post: Post) -> list[Problem]:
        """Require text or media, and every media stored (or passed through as a URL)."""
        problems = []
        if not post.text and not post.media:
            problems.append(Problem(self.channel, "text", "required",
                                    _("the post has neither text nor media")))
        for i, media in enumerate(post.media):
            if not media.is_stored and not media.passthrough:
                problems.append(Problem(self.channel, f"media[{i}]", "media_stored",
                                        _("{source!r} is not in the media store").format(
                                            source=media.source),
                                        actual=media.source))
        return problems

    def publish(self, post: Post, progress: Any = None) -> Receipt:
        """Write the post; the folder's name is the platform id."""
        name = self._name(post)
        folder = self.path / name
        tmp = self.path / f".{name}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        media: list[dict[str, Any]] = []
        for i, m in enumerate(post.media):
            entry = m.to_dict()
            if m.is_stored:
                if self.media is None:
                    raise ContentRejected(_("the office has no media store to read "
                                            "{source!r} from").format(source=m.source),
                                          channel=self.channel)
                target = f"{i:02d}-{_file_name(m)}"
                with self.media.open(m) as source, (tmp / target).open("wb") as out:
                    shutil.copyfileobj(source, out)
                entry["file"] = target
            media.append(entry)
        body = {"item": post.item_id, "channel": post.channel,
                "idempotency_key": post.idempotency_key, "title": post.title,
                "text": post.text, "link": post.link, "media": media,
                "options": dict(post.options),
                "posted_at": self.clock().isoformat()}
        (tmp / "post.json").write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n",
                                       "utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
        return self._receipt(folder)

    def reconcile(self, post: Post, progress: Any = None) -> Receipt | None:
        """Look for the post's folder after an unknown outcome.

        Returns:
            The post's receipt if its folder holds a ``post.json``, else ``None``: the
            rename that makes a post is atomic, so a missing folder (or a left-over
            hidden temporary one) means it certainly was not made.
        """
        folder = self.path / self._name(post)
        if (folder / "post.json").is_file():
            written = json.loads((folder / "post.json").read_text("utf-8"))
            if written.get("idempotency_key", "") == post.idempotency_key:
                return self._receipt(folder)
        return None

    def check(self) -> None:
        """The outbox needs no credentials; check the folder can be written."""
        self.path.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _name(post: Post) -> str:
        name = f"item-{post.item_id}-{post.channel}"
        return f"{name}-{post.idempotency_key}" if post.idempotency_key else name

    @staticmethod
    def _receipt(folder: Path) -> Receipt:
        return Receipt(platform_id=folder.name, url=folder.resolve().as_uri())


def _file_name(media: Media) -> str:
    """The original name's stem, with the ending of the type sniffed from the bytes."""
    stem = Path(media.source.split("?", 1)[0]).stem or media.sha256[:16]
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80]
    return stem + _ENDINGS.get(media.mime, "")


_ENDINGS = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif",
            "image/webp": ".webp", "video/mp4": ".mp4", "video/quicktime": ".mov",
            "video/webm": ".webm"}


@hookimpl
def register_publishers(register: Any) -> None:
    register("outbox", OutboxPublisher)
