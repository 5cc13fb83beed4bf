"""Media hosting: giving local files a public URL.

Platforms such as Instagram fetch media from a public URL themselves; a file on a
staff laptop or a campus intranet cannot be fetched. A *media host* copies a local file
where a public web server serves it and returns its URL. Pass one to the office
(``Office(..., media_host=FolderMediaHost(...))``) or implement the
``public_media_url`` hook in a plugin (e.g. to upload to object storage).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Collection, Mapping
from pathlib import Path

from humasflow.models import Media
from humasflow.publishing.contract import Post, Problem

__all__ = ["MEDIA_FORMATS", "FolderMediaHost", "check_media"]


class FolderMediaHost:
    """Copies media into a folder that a web server publishes at ``base_url``.

    Files are named by their content hash, so the same file is stored once and a
    published URL never changes its content.

    Args:
        folder: The folder the web server serves.
        base_url: The public URL of that folder, e.g. ``https://media.fisip.ub.ac.id/``.
    """

    def __init__(self, folder: str | Path, base_url: str) -> None:
        if not base_url.startswith("https://") and not base_url.startswith("http://"):
            raise ValueError(f"base_url is {base_url!r}; give the folder's public http(s) URL")
        self.folder = Path(folder)
        self.base_url = base_url.rstrip("/") + "/"

    def __call__(self, media: Media) -> str | None:
        """Publish ``media`` (a local file) and return its URL; ``None`` if it is missing."""
        source = Path(media.source)
        if media.is_url or not source.is_file():
            return None
        digest = hashlib.sha256()
        with source.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):  # videos need not fit in memory
                digest.update(chunk)
        name = f"{digest.hexdigest()[:32]}{source.suffix.lower()}"
        target = self.folder / name
        if not target.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            # A temporary name of its own: the channels of one item are posted at once,
            # and may publish the same file at the same moment.
            tmp = self.folder / f".{name}.{uuid.uuid4().hex}.tmp"
            try:
                shutil.copyfile(source, tmp)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        return self.base_url + name


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

    Publishers call it from ``validate`` with their platform's limits, so a missing
    file, a kind or format the platform refuses, or a file that is too large becomes a
    :class:`~humasflow.publishing.contract.Problem` before approval, not a failed post.

    >>> from humasflow.models import Media
    >>> post = Post(item_id=1, channel="ig", title="t", text="", media=(Media("a.pdf"),))
    >>> [p.rule for p in check_media(post, kinds=("image",))]
    ['file_exists']

    Args:
        post: The post as the channel receives it (see ``Office.post_for``).
        channel: The channel named in the problems (default ``post.channel``).
        kinds: The media kinds the channel takes (``image``, ``gif``, ``video``).
        formats: Kind → allowed file name endings (default :data:`MEDIA_FORMATS`).
            A URL without a recognisable ending is not checked.
        max_bytes: The largest local file, in bytes: one limit, or kind → limit.
        max_count: The most media in one post.
        need_public_url: The platform fetches media itself (Instagram): each item
            needs a public URL, from its source or from the office's media host.

    Returns:
        The problems found, in media order; empty if the media can be posted.
    """
    name = channel or post.channel
    formats = MEDIA_FORMATS if formats is None else formats
    problems: list[Problem] = []
    if max_count is not None and len(post.media) > max_count:
        problems.append(Problem(name, "media", "max_count",
                                f"{len(post.media)} media attached; at most {max_count} "
                                "per post", limit=max_count, actual=len(post.media)))
    for i, media in enumerate(post.media):
        field = f"media[{i}]"
        kind = media.media_kind
        local = None if media.is_url else Path(media.source)
        if local is not None and not local.is_file():
            problems.append(Problem(name, field, "file_exists",
                                    f"no file at {media.source!r}", actual=media.source))
            continue
        if kind not in kinds:
            problems.append(Problem(
                name, field, "media_kind",
                f"{media.source!r} is a {kind}; this channel takes {_words(kinds)}",
                limit=tuple(kinds), actual=kind))
            continue
        ending = _ending(media.source)
        allowed = tuple(e.lower() for e in formats.get(kind, ()))
        known = {e for endings in MEDIA_FORMATS.values() for e in endings}
        if allowed and (local is not None or ending in known) and ending not in allowed:
            problems.append(Problem(
                name, field, "media_format",
                f"{media.source!r}: this channel takes {kind}s as "
                f"{', '.join(allowed)}", limit=allowed, actual=ending or "(none)"))
            continue
        limit = max_bytes.get(kind) if isinstance(max_bytes, Mapping) else max_bytes
        if local is not None and limit is not None:
            size = local.stat().st_size
            if size > limit:
                problems.append(Problem(
                    name, field, "max_bytes",
                    f"{media.source!r} is {_size(size)}; a {kind} may be at most "
                    f"{_size(limit)} here", limit=limit, actual=size))
                continue
        if need_public_url and not media.public_url:
            problems.append(Problem(
                name, field, "public_url",
                f"{media.source!r} is a local file and the platform fetches media from a "
                "public URL: give the office a media host (Office(media_host="
                "FolderMediaHost(...))) or install a plugin with the public_media_url hook",
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
        return "no media"
    return kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} or {kinds[-1]}"


def _size(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{n} bytes"
