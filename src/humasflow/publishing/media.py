"""Media hosting: giving local files a public URL.

Platforms such as Instagram fetch media from a public URL themselves; a file on a
staff laptop or a campus intranet cannot be fetched. A *media host* copies a local file
where a public web server serves it and returns its URL. Pass one to the office
(``Office(..., media_host=FolderMediaHost(...))``) or implement the
``public_media_url`` hook in a plugin (e.g. to upload to object storage).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from humasflow.models import Media

__all__ = ["FolderMediaHost"]


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
        digest = hashlib.sha256(source.read_bytes()).hexdigest()[:32]
        name = f"{digest}{source.suffix.lower()}"
        target = self.folder / name
        if not target.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(target.suffix + ".tmp")
            shutil.copyfile(source, tmp)
            tmp.replace(target)
        return self.base_url + name
