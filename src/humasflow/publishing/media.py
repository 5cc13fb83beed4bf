"""Media hosting and media checks.

Platforms such as Instagram fetch media from a public URL themselves; the media store
on a campus server cannot be fetched. A *media host* copies stored media (after
checking their hash) where a public web server serves them and returns the URL. Pass
one to the office (``Office(..., media_host=FolderMediaHost(...))``; it is called as
``host(media, media_store)``) or implement the ``public_media_url`` hook in a plugin
(e.g. to upload to object storage, reading the bytes with ``office.media.open``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from humasflow.i18n import _
from humasflow.models import Media
from humasflow.publishing.contract import Post, Problem

__all__ = ["MEDIA_FORMATS", "FolderMediaHost", "check_media"]


class FolderMediaHost:
    """Publishes stored media into a folder that a web server serves at ``base_url``.

    Files are copied from the media store (after checking their hash) and named by
    that hash, so the same bytes are published once and a published URL never changes
    its content.

    Args:
        folder: The folder the web server serves.
        base_url: The public URL of that folder, e.g. ``https://media.fisip.ub.ac.id/``.
    """

    def __init__(self, folder: str | Path, base_url: str) -> None:
        if not base_url.startswith("https://") and not base_url.startswith("http://"):
            raise ValueError(_("base_url is {url!r}; give the folder's public http(s) URL")
                             .format(url=base_url))
        self.folder = Path(folder)
        self.base_url = base_url.rstrip("/") + "/"

    def __call__(self, media: Media, store: Any) -> str | None:
        """Publish ``media`` from ``store`` and return its URL (``None`` if not stored).

        Raises:
            MediaUnavailable: The stored bytes are missing or changed.
        """
        if not media.is_stored:
            return None
        name = f"{media.sha256[:32]}{_MIME_ENDING.get(media.mime, '')}"
        target = self.folder / name
        if not target.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            # A temporary name of its own: the channels of one item are posted at once,
            # and may publish the same file at the same moment.
            tmp = self.folder / f".{name}.{uuid.uuid4().hex}.tmp"
            try:
                with store.open(media) as source, tmp.open("wb") as out:
                    shutil.copyfileobj(source, out)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        return self.base_url + name


#: The file name ending of each sniffed type.
_MIME_ENDING: Mapping[str, str] = {
    "image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
    "video/mp4": ".mp4", "video/quicktime": ".mov", "video/webm": ".webm",
}
#: The endings that name each sniffed type, for a channel's ``formats``.
_MIME_ENDINGS: Mapping[str, tuple[str, ...]] = {
    "image/jpeg": (".jpg", ".jpeg"), "image/png": (".png",), "image/gif": (".gif",),
    "image/webp": (".webp",), "video/mp4": (".mp4", ".m4v"), "video/quicktime": (".mov",),
    "video/webm": (".webm",),
}


#: The file name endings recognised for each kind of media.
MEDIA_FORMATS: Mapping[str, tuple[str, ...]] = {
    "image": (".jpg", ".jpeg", ".png", ".webp"),
    "gif": (".gif",),
    "video": (".mp4", ".mov", ".m4v", ".webm"),
}


def check_media(
    post: Post,
    channel: str | None = None,
    *,
    kinds: Collection[str] = ("image", "gif", "video"),
    formats: Mapping[str, Collection[str]] | None = None,
    max_bytes: int | Mapping[str, int] | None = None,
    max_count: int | None = None,
    need_public_url: bool = False,
) -> list[Problem]:
    """Check a post's media against a channel's rules, without any network call.

    Publishers call it from ``validate`` with their platform's limits, so a kind or
    format the platform refuses, or a file that is too large, becomes a
    :class:`~humasflow.publishing.contract.Problem` before approval, not a failed post.
    It reads what the media store recorded (kind and type sniffed from the bytes, the
    stored size), never a file name or a path.

    >>> from humasflow.models import Media
    >>> big = Media("a.png", kind="image", mime="image/png", size=3_000_000, sha256="0" * 64)
    >>> post = Post(item_id=1, channel="ig", title="t", text="", media=(big,))
    >>> [p.rule for p in check_media(post, kinds=("image",), max_bytes=1_000_000)]
    ['max_bytes']

    Args:
        post: The post as the channel receives it (see ``Office.post_for``).
        channel: The channel named in the problems (default ``post.channel``).
        kinds: The media kinds the channel takes (``image``, ``gif``, ``video``).
        formats: Kind → allowed file name endings (default :data:`MEDIA_FORMATS`),
            matched against the type sniffed from the bytes (a pass-through URL: its
            name, if it has a recognisable ending).
        max_bytes: The largest file, in bytes: one limit, or kind → limit.
        max_count: The most media in one post.
        need_public_url: The platform fetches media itself (Instagram): each item
            needs a public URL, a pass-through one or one from the office's media host.

    Returns:
        The problems found, in media order; empty if the media can be posted.
    """
    name = channel or post.channel
    formats = MEDIA_FORMATS if formats is None else formats
    problems: list[Problem] = []
    if max_count is not None and len(post.media) > max_count:
        problems.append(Problem(name, "media", "max_count",
                                _("{count} media attached; at most {limit} per post").format(
                                    count=len(post.media), limit=max_count),
                                limit=max_count, actual=len(post.media)))
    known = {e for endings in MEDIA_FORMATS.values() for e in endings}
    for i, media in enumerate(post.media):
        field = f"media[{i}]"
        kind = media.media_kind
        if not media.is_stored and not media.passthrough:
            problems.append(Problem(name, field, "media_stored",
                                    _("{source!r} is not in the media store").format(
                                        source=media.source),
                                    actual=media.source))
            continue
        if kind not in kinds:
            problems.append(Problem(
                name, field, "media_kind",
                _("{source!r} is a {kind}; this channel takes {kinds}").format(
                    source=media.source, kind=kind, kinds=_words(kinds)),
                limit=tuple(kinds), actual=kind))
            continue
        allowed = tuple(e.lower() for e in formats.get(kind, ()))
        if media.is_stored:
            endings = _MIME_ENDINGS.get(media.mime, ())
            actual = media.mime
        else:
            ending = _ending(media.source)
            endings = (ending,) if ending in known else ()
            actual = ending or "(none)"
        if allowed and endings and not set(endings) & set(allowed):
            problems.append(Problem(
                name, field, "media_format",
                _("{source!r} is {actual}: this channel takes {kind}s as {formats}").format(
                    source=media.source, actual=actual, kind=kind,
                    formats=", ".join(allowed)), limit=allowed, actual=actual))
            continue
        limit = max_bytes.get(kind) if isinstance(max_bytes, Mapping) else max_bytes
        if media.size is not None and limit is not None and media.size > limit:
            problems.append(Problem(
                name, field, "max_bytes",
                _("{source!r} is {size}; a {kind} may be at most {limit} here").format(
                    source=media.source, size=_size(media.size), kind=kind,
                    limit=_size(limit)), limit=limit, actual=media.size))
            continue
        if need_public_url and not media.public_url:
            problems.append(Problem(
                name, field, "public_url",
                _("{source!r} is stored here and the platform fetches media from a "
                  "public URL: give the office a media host (Office(media_host="
                  "FolderMediaHost(...))), install a plugin with the public_media_url hook, "
                  "or set the channel's media_urls = \"pass\" for URLs").format(
                      source=media.source),
                actual=media.source))
    return problems


def _ending(source: str) -> str:
    path = source.split("?", 1)[0].split("#", 1)[0]
    if "://" in path:
        path = path.split("://", 1)[1].partition("/")[2]
    return Path(path).suffix.lower()


def _words(kinds: Collection[str]) -> str:
    kinds = sorted(kinds)
    if not kinds:
        return _("no media")
    if len(kinds) == 1:
        return kinds[0]
    return _("{first} or {last}").format(first=", ".join(kinds[:-1]), last=kinds[-1])


def _size(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}".replace(".0 ", " ")
    return _("{count} bytes").format(count=n)
