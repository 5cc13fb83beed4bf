"""The media store: media bytes kept under their SHA-256, read back only after a check.

When media are attached to an item (the design, the produced media, a revision), the
office copies their bytes in here; the item keeps only the hash with what was read from
the bytes (type, size, dimensions, duration). The approval and the recheck bind those
hashes, and posting reads the bytes from here, checking the hash first, so what is
posted is what was approved, whatever happens to the original file afterwards.

>>> import tempfile, io
>>> with tempfile.TemporaryDirectory() as folder:
...     store = MediaStore(folder)
...     info = store.add(io.BytesIO(b"GIF89a" + bytes(20)), source="spin.gif")
...     (info.kind, info.mime, info.size, store.read(info.sha256)[:6])
('gif', 'image/gif', 26, b'GIF89a')

Files are written under a temporary name, flushed to disk and renamed into place, so a
stored file is whole or absent; the same bytes are stored once. An application that
keeps media elsewhere (object storage) supplies an object with the same methods through
``Office(media_store=...)`` or the ``media_store`` hook.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import stat
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from humasflow._files import fsync_dir
from humasflow.errors import MediaRefused, MediaUnavailable
from humasflow.i18n import _

if TYPE_CHECKING:
    from humasflow.models import Media

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MediaInfo",
    "MediaRefused",
    "MediaStore",
    "MediaUnavailable",
    "sniff",
]

#: The largest media file a deployment takes unless configured otherwise (512 MiB).
DEFAULT_MAX_BYTES = 512 * 1024 * 1024

_CHUNK = 1 << 20
_HASH = re.compile(r"^[0-9a-f]{64}$")


@attrs.frozen
class MediaInfo:
    """What the store read from one file's bytes.

    Attributes:
        sha256: The SHA-256 of the bytes (hex).
        size: Their length in bytes.
        mime: The type sniffed from the bytes, e.g. ``image/png``.
        kind: ``image``, ``gif`` or ``video``.
        width: The image's (or video's) width in pixels, where it can be read.
        height: The height in pixels, where it can be read.
        duration: A video's duration in seconds, where it can be read.
    """

    sha256: str
    size: int
    mime: str
    kind: str
    width: int | None = None
    height: int | None = None
    duration: float | None = None


def sniff(head: bytes) -> tuple[str, str] | None:
    """The ``(mime, kind)`` the first bytes of a file show, or ``None`` if not media.

    Only the formats the platforms take are known: JPEG, PNG, GIF, WebP, MP4/MOV
    (``ftyp``) and WebM.

    >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n....")
    ('image/png', 'image')
    >>> sniff(b"%PDF-1.7") is None
    True
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", "image"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png", "image"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif", "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp", "image"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return ("video/quicktime" if brand == b"qt  " else "video/mp4"), "video"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm", "video"
    return None


def _hash_of(media: Media | str) -> str:
    sha = media if isinstance(media, str) else media.sha256
    if not sha or not _HASH.match(sha):
        source = media if isinstance(media, str) else media.source
        raise MediaUnavailable(sha or "?" * 64, "missing",
                               _("{source!r} was never stored; attach it again").format(
                                   source=source))
    return sha


class MediaStore:
    """Media files in a folder, each named by the SHA-256 of its bytes.

    Args:
        root: The folder (created when the first file is stored).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()

    def __repr__(self) -> str:
        return f"<MediaStore {str(self.root)!r}>"

    def _file(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    # -- writing ------------------------------------------------------------------------

    def add(self, stream: IO[bytes], *, source: str = "", max_bytes: int | None = None,
            ) -> MediaInfo:
        """Copy the bytes of ``stream`` in; return what they are.

        Args:
            stream: A binary stream, read to its end.
            source: The original file name or URL, for messages only.
            max_bytes: Refuse more bytes than this.

        Raises:
            MediaRefused: The bytes are not a known media type, or too many.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{uuid.uuid4().hex}.tmp"
        digest = hashlib.sha256()
        size = 0
        head = b""
        try:
            with tmp.open("wb") as out:
                for chunk in iter(lambda: stream.read(_CHUNK), b""):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise MediaRefused(
                            source, "max_bytes",
                            _("{source!r} is larger than {limit}, the largest media file this "
                              "deployment takes").format(source=source, limit=_size(max_bytes)),
                            limit=max_bytes, actual=size)
                    if len(head) < 64:
                        head += chunk[:64]
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            found = sniff(head)
            if found is None:
                raise MediaRefused(
                    source, "media_type",
                    _("{source!r} is not an image or video this library knows: its bytes are "
                      "not JPEG, PNG, GIF, WebP, MP4/MOV or WebM (the file name does not "
                      "count)").format(source=source),
                    actual=head[:12].hex())
            sha = digest.hexdigest()
            target = self._file(sha)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(tmp, 0o444)
                os.replace(tmp, target)
                fsync_dir(target.parent)
        finally:
            tmp.unlink(missing_ok=True)
        return self.info(sha)

    # -- reading ------------------------------------------------------------------------

    def exists(self, media: Media | str) -> bool:
        """Whether the store holds a file under the media's hash (not checked)."""
        return self._file(_hash_of(media)).is_file()

    @contextlib.contextmanager
    def open(self, media: Media | str) -> Iterator[IO[bytes]]:
        """Open the stored bytes for reading, after checking their hash.

        Use it as a context manager: ``with store.open(media) as f: ...``.

        Raises:
            MediaUnavailable: The file is missing or its bytes changed.
        """
        sha = _hash_of(media)
        try:
            f = self._file(sha).open("rb")
        except FileNotFoundError:
            raise MediaUnavailable(sha, "missing", str(self.root)) from None
        with f:
            digest = hashlib.sha256()
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
            if digest.hexdigest() != sha:
                raise MediaUnavailable(sha, "changed", str(self.root))
            f.seek(0)
            yield f

    def read(self, media: Media | str) -> bytes:
        """The stored bytes, after checking their hash."""
        with self.open(media) as f:
            return f.read()

    def path(self, media: Media | str) -> Path:
        """The stored file's path, after checking its hash (for tools that need a path).

        The file is read-only; never write to it.
        """
        sha = _hash_of(media)
        with self.open(sha):
            pass
        return self._file(sha)

    def verify(self, media: Media | str) -> None:
        """Check the stored bytes against their hash.

        Raises:
            MediaUnavailable: The file is missing or its bytes changed.
        """
        with self.open(media):
            pass

    def info(self, media: Media | str) -> MediaInfo:
        """What the stored bytes are (type, size, dimensions), after checking their hash."""
        sha = _hash_of(media)
        with self.open(sha) as f:
            return describe(f, sha)


def describe(f: IO[bytes], sha256: str) -> MediaInfo:
    """Read type, size, dimensions and duration from a binary file open at its start."""
    head = f.read(64)
    found = sniff(head)
    if found is None:
        raise MediaUnavailable(sha256, "changed", _("not a media type"))
    mime, kind = found
    f.seek(0, io.SEEK_END)
    size = f.tell()
    f.seek(0)
    width = height = None
    duration = None
    if kind in ("image", "gif"):
        width, height = _image_size(f)
    elif mime in ("video/mp4", "video/quicktime"):
        duration = _mp4_duration(f, size)
    return MediaInfo(sha256=sha256, size=size, mime=mime, kind=kind, width=width,
                     height=height, duration=duration)


def _image_size(f: IO[bytes]) -> tuple[int | None, int | None]:
    try:
        from PIL import Image
        # Only the header is read: no decompression bomb is decoded.
        with Image.open(f) as image:
            width, height = image.size
    except Exception:
        return None, None
    finally:
        f.seek(0)
    return int(width), int(height)


def _mp4_duration(f: IO[bytes], size: int) -> float | None:
    """The duration in the ``moov/mvhd`` box of an MP4/MOV file, if found."""
    try:
        return _find_mvhd(f, 0, size, depth=0)
    except (OSError, struct.error, ValueError):
        return None
    finally:
        f.seek(0)


def _find_mvhd(f: IO[bytes], start: int, end: int, depth: int) -> float | None:
    pos = start
    while pos + 8 <= end and depth < 3:
        f.seek(pos)
        header = f.read(8)
        if len(header) < 8:
            return None
        box_size, box_type = struct.unpack(">I4s", header)
        offset = 8
        if box_size == 1:
            box_size = struct.unpack(">Q", f.read(8))[0]
            offset = 16
        elif box_size == 0:
            box_size = end - pos
        if box_size < offset:
            return None
        if box_type == b"moov":
            return _find_mvhd(f, pos + offset, pos + box_size, depth + 1)
        if box_type == b"mvhd":
            version = f.read(4)[0]
            if version == 1:
                f.read(16)
                scale, length = struct.unpack(">IQ", f.read(12))
            else:
                f.read(8)
                scale, length = struct.unpack(">II", f.read(8))
            return round(length / scale, 3) if scale else None
        pos += box_size
    return None


def is_regular(path: Path) -> bool:
    """Whether ``path`` (followed) is a regular file."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _size(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}".replace(".0 ", " ")
    return _("{count} bytes").format(count=n)


#: Folders no media are ever read from, whatever the allowed roots say.
DENIED_ROOTS: tuple[str, ...] = ("/proc", "/sys", "/dev")


@attrs.frozen
class AttachRules:
    """Where media may come from and how large they may be, for one attach.

    Attributes:
        roots: The folders local files must be under (resolved).
        max_bytes: The largest file taken.
        fetch_timeout: Seconds a URL may take to answer and to send each chunk.
        fetch_deadline: Seconds a whole URL download may take.
    """

    roots: tuple[Path, ...]
    max_bytes: int = DEFAULT_MAX_BYTES
    fetch_timeout: float = 10.0
    fetch_deadline: float = 120.0


def attach(store: Any, media: Media, rules: AttachRules, *, session_factory: Any = None,
           passthrough: bool = False) -> Media:
    """Copy one media's bytes into ``store`` and return it with what the bytes are.

    A local path is resolved (symlinks followed) and must be a regular file under one of
    ``rules.roots`` and outside :data:`DENIED_ROOTS`; a URL is fetched once with a
    session from ``session_factory`` (bounded in size and time), unless ``passthrough``;
    media already stored are checked against the store.

    Raises:
        MediaRefused: A rule is broken (the message names the file and the rule).
    """
    if media.passthrough or (passthrough and media.is_url):
        if not media.is_url:
            raise MediaRefused(media.source, "passthrough",
                               _("{source!r} is not an http(s) URL to pass through").format(
                                   source=media.source))
        return attrs.evolve(media, passthrough=True, sha256="", size=None, mime="", url="",
                             width=None, height=None, duration=None, missing=False)
    if media.sha256:
        try:
            info = store.info(media.sha256)
        except MediaUnavailable as exc:
            raise MediaRefused(media.source, "stored",
                               _("{source!r}: {error}").format(source=media.source,
                                                               error=exc)) from exc
        if info.size > rules.max_bytes:
            raise _too_large(media.source, info.size, rules.max_bytes)
        return _with(media, info)
    if "://" in media.source:
        if not media.is_url:
            raise MediaRefused(media.source, "url_scheme",
                               _("{source!r}: only http(s) URLs are fetched").format(
                                   source=media.source))
        return _with(media, _fetch(store, media.source, rules, session_factory))
    path = _local(media.source, rules)
    with path.open("rb") as f:
        info = store.add(f, source=media.source, max_bytes=rules.max_bytes)
    return _with(media, info)


def _with(media: Media, info: MediaInfo) -> Media:
    return attrs.evolve(media, sha256=info.sha256, size=info.size, mime=info.mime,
                         kind=info.kind, width=info.width, height=info.height,
                         duration=info.duration, url="", passthrough=False, missing=False)


def _too_large(source: str, size: int, limit: int) -> MediaRefused:
    return MediaRefused(source, "max_bytes",
                        _("{source!r} is {size}; this deployment takes media files of at most "
                          "{limit}").format(source=source, size=_size(size), limit=_size(limit)),
                        limit=limit, actual=size)


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _local(source: str, rules: AttachRules) -> Path:
    given = Path(source).expanduser()
    try:
        # strict: the file must exist; every symlink and ".." is resolved here, once.
        path = (given if given.is_absolute() else Path.cwd() / given).resolve(strict=True)
    except (OSError, RuntimeError):
        raise MediaRefused(source, "file_exists", _("no file at {source!r}").format(
            source=source), actual=source) from None
    for denied in DENIED_ROOTS:
        if _under(path, Path(denied)):
            raise MediaRefused(source, "denied_root",
                               _("{source!r} resolves to {path!r}, under {denied}: media are "
                                 "never read from /proc, /sys or /dev").format(
                                     source=source, path=str(path), denied=denied),
                               actual=str(path))
    if path.is_dir():
        raise MediaRefused(source, "regular_file",
                           _("{source!r} is a folder; give a media file (an image or a video), "
                             "not the folder that holds it").format(source=source),
                           actual=str(path))
    if not is_regular(path):
        raise MediaRefused(source, "regular_file",
                           _("{source!r} is not a regular file (a folder, device or pipe)")
                           .format(source=source), actual=str(path))
    if not any(_under(path, root) for root in rules.roots):
        raise MediaRefused(
            source, "allowed_root",
            _("{source!r} resolves to {path!r}, outside the folders media may come from "
              "({roots}); move it there or configure its folder "
              "(Office(media_roots=[...]))").format(
                  source=source, path=str(path), roots=", ".join(str(r) for r in rules.roots)),
            limit=[str(r) for r in rules.roots],
            actual=str(path))
    size = path.stat().st_size
    if size > rules.max_bytes:
        raise _too_large(source, size, rules.max_bytes)
    return path


def _fetch(store: Any, url: str, rules: AttachRules, session_factory: Any) -> MediaInfo:
    import time

    if session_factory is None:
        from humasflow.publishing.contract import new_session as session_factory
    session = session_factory()
    # Wall time bounds the download, not the domain clock: it is a network timeout.
    deadline = time.monotonic() + rules.fetch_deadline
    try:
        response = session.get(url, stream=True, timeout=rules.fetch_timeout)
    except Exception as exc:
        raise MediaRefused(url, "fetch", _("{url!r} could not be fetched: {error}").format(
            url=url, error=exc)) from exc
    with contextlib.closing(response):
        if not response.url.startswith(("http://", "https://")):  # pragma: no cover
            raise MediaRefused(url, "url_scheme", _("{url!r} redirected to a non-http URL")
                               .format(url=url))
        if response.status_code != 200:
            raise MediaRefused(url, "fetch", _("{url!r} answered HTTP {status}").format(
                url=url, status=response.status_code), actual=response.status_code)
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > rules.max_bytes:
            raise _too_large(url, int(declared), rules.max_bytes)

        class _Body(io.RawIOBase):
            def __init__(self) -> None:
                self.chunks = response.iter_content(_CHUNK)
                self.left = b""

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                if time.monotonic() > deadline:
                    raise MediaRefused(url, "fetch_time",
                                       _("{url!r} took longer than {seconds:g} s to download")
                                       .format(url=url, seconds=rules.fetch_deadline),
                                       limit=rules.fetch_deadline)
                if not self.left:
                    self.left = next(self.chunks, b"")
                n = min(len(buffer), len(self.left))
                buffer[:n] = self.left[:n]
                self.left = self.left[n:]
                return n

        try:
            info: MediaInfo = store.add(io.BufferedReader(_Body(), _CHUNK), source=url,
                                        max_bytes=rules.max_bytes)
            return info
        except MediaRefused:
            raise
        except Exception as exc:
            raise MediaRefused(url, "fetch", _("{url!r} could not be fetched: {error}").format(
                url=url, error=exc)) from exc
