"""Media upload through X's v2 endpoints, on the publisher's session and signing.

tweepy 4.17 has no v2 media method, and the v1.1 upload its ``API`` calls is retired,
so this module does it::

    POST /2/media/upload                  multipart media, media_category → data.id
    POST /2/media/upload/initialize       JSON media_type, total_bytes, media_category
    POST /2/media/upload/{id}/append      multipart media, segment_index (0–999)
    POST /2/media/upload/{id}/finalize    → data.processing_info {state, check_after_secs}
    GET  /2/media/upload?command=STATUS&media_id={id}   until succeeded or failed
    POST /2/media/metadata                JSON {id, metadata: {alt_text: {text}}}

Images go up in one request; videos and GIFs larger than an image may be in chunks of
at most ``chunk_size`` bytes, then X processes them: the status is polled no sooner than
X's ``check_after_secs`` and for at most ``max_wait`` seconds in all. Uploads create
nothing public: they are safe to repeat, and a failed one is retried freely.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, BinaryIO

import requests
from humasflow import ContentRejected, Media, PlatformError

from humasflow_x._i18n import _
from humasflow_x.wire import Wire

__all__ = ["CHUNK_MAX", "MEDIA_URL", "Uploaded", "Uploader"]

MEDIA_URL = "https://api.x.com/2/media"
#: The largest chunk sent in one append (X takes up to 5 MB per segment).
CHUNK_MAX = 4 * 1024 * 1024
CHUNK_MIN = 64 * 1024
#: The most segments of one upload (segment_index is 0–999).
MAX_SEGMENTS = 1000
#: Images up to this size go in one request; larger GIFs and every video in chunks.
SIMPLE_MAX = 5 * 1024 * 1024

_CATEGORY = {"image": "tweet_image", "gif": "tweet_gif", "video": "tweet_video"}

Uploaded = dict[str, Any]
Progress = Callable[[dict[str, Any]], None]
Call = Callable[[str, Callable[[], requests.Response]], requests.Response]


class Uploader:
    """Uploads one post's media.

    Args:
        wire: The signed wire to X.
        call: Sends one request and turns a failure (an error status included) into
            humasflow's errors: ``call(what, send)``.
        sleep: Waits a number of seconds (between status polls).
        chunk_size: Bytes per append, bounded to 64 KiB – 4 MiB.
        max_wait: The longest wait, in seconds, for X to process one file.
        on_progress: Told of each step (``{"media", "state", "sent", "total",
            "percent"}``).
        channel: The channel's name, for messages.
        timeout: Seconds for each request that carries media bytes.
    """

    def __init__(self, wire: Wire, call: Call, *, sleep: Callable[[float], None],
                 chunk_size: int = CHUNK_MAX, max_wait: float = 600.0, max_polls: int = 120,
                 on_progress: Progress | None = None, channel: str = "",
                 timeout: float = 60.0) -> None:
        self.wire = wire
        self.timeout = timeout
        self.call = call
        self.sleep = sleep
        self.chunk_size = max(CHUNK_MIN, min(int(chunk_size), CHUNK_MAX))
        self.max_wait = max_wait
        self.max_polls = max_polls
        self.on_progress = on_progress or (lambda event: None)
        self.channel = channel

    def upload(self, index: int, media: Media, opened: Callable[[], BinaryIO]) -> Uploaded:
        """Upload one file; return X's ``data`` (``id``, ``expires_after_secs``…) once the
        media can be attached."""
        kind = media.media_kind
        size = int(media.size or 0)
        category = _CATEGORY.get(kind, "tweet_image")
        if kind == "image" or (kind == "gif" and size <= SIMPLE_MAX):
            with opened() as handle:
                data = handle.read()
            answer = self._data(self.call(_("uploading media {n}").format(n=index + 1),
                                          lambda: self.wire.post(
                f"{MEDIA_URL}/upload", data={"media_category": category},
                files={"media": (f"media-{index}", data, media.mime or
                                 "application/octet-stream")}, timeout=self.timeout)))
            self.on_progress({"media": index, "state": "uploaded", "sent": len(data),
                              "total": len(data)})
            return self._ready(index, answer)
        return self._chunked(index, media, category, opened)

    def _chunked(self, index: int, media: Media, category: str,
                 opened: Callable[[], BinaryIO]) -> Uploaded:
        total = int(media.size or 0)
        chunk = max(self.chunk_size, math.ceil(total / MAX_SEGMENTS))
        if chunk > CHUNK_MAX:
            raise ContentRejected(_(
                "{channel}: media {n} is {size} bytes, more than {segments} chunks of "
                "{chunk} bytes; X cannot take it").format(
                    channel=self.channel, n=index + 1, size=total, segments=MAX_SEGMENTS,
                    chunk=CHUNK_MAX), channel=self.channel)
        what = _("uploading media {n}").format(n=index + 1)
        started = self._data(self.call(what, lambda: self.wire.post(
            f"{MEDIA_URL}/upload/initialize", json={
                "media_type": media.mime, "total_bytes": total,
                "media_category": category})))
        media_id = str(started["id"])
        sent = 0
        with opened() as handle:
            segment = 0
            while True:
                data = handle.read(chunk)
                if not data:
                    break
                self.call(what, lambda data=data, segment=segment: self.wire.post(  # type: ignore[misc]
                    f"{MEDIA_URL}/upload/{media_id}/append", data={"segment_index": segment},
                    files={"media": (f"media-{index}-{segment}", data,
                                     "application/octet-stream")}, timeout=self.timeout))
                sent += len(data)
                segment += 1
                self.on_progress({"media": index, "state": "uploading", "sent": sent,
                                  "total": total})
        answer = self._data(self.call(what, lambda: self.wire.post(
            f"{MEDIA_URL}/upload/{media_id}/finalize")))
        return self._ready(index, answer)

    def _ready(self, index: int, answer: Uploaded) -> Uploaded:
        """Wait, within bounds, until X has processed the media."""
        waited = 0.0
        polls = 0
        media_id = str(answer["id"])
        while True:
            info = answer.get("processing_info") or {}
            state = info.get("state", "succeeded")
            self.on_progress({"media": index, "state": state,
                              "percent": info.get("progress_percent")})
            if state == "succeeded":
                return answer
            if state == "failed":
                error = info.get("error") or {}
                raise ContentRejected(_(
                    "{channel}: X could not process media {n}: {message}").format(
                        channel=self.channel, n=index + 1,
                        message=error.get("message") or error.get("name") or state),
                    channel=self.channel)
            if waited >= self.max_wait or polls >= self.max_polls:
                raise PlatformError(_(
                    "{channel}: X is still processing media {n} after {seconds:.0f} s; it "
                    "will be looked at again").format(
                        channel=self.channel, n=index + 1, seconds=waited),
                    channel=self.channel, code="processing")
            pause = min(max(float(info.get("check_after_secs") or 1), 1.0),
                        self.max_wait - waited)
            self.sleep(pause)
            waited += pause
            polls += 1
            answer = self._data(self.call(
                _("checking media {n}").format(n=index + 1),
                lambda: self.wire.get(f"{MEDIA_URL}/upload",
                                      params={"command": "STATUS", "media_id": media_id})))

    def status(self, index: int, media_id: str) -> Uploaded:
        """Look at an upload an earlier attempt left processing, and wait for it."""
        answer = self._data(self.call(
            _("checking media {n}").format(n=index + 1),
            lambda: self.wire.get(f"{MEDIA_URL}/upload",
                                  params={"command": "STATUS", "media_id": media_id})))
        return self._ready(index, answer)

    def describe(self, index: int, media_id: str, alt: str) -> None:
        """Set the media's alt text (the v2 media metadata endpoint)."""
        self.call(_("setting the alt text of media {n}").format(n=index + 1),
                  lambda: self.wire.post(f"{MEDIA_URL}/metadata", json={
                      "id": media_id, "metadata": {"alt_text": {"text": alt}}}))

    def _data(self, response: requests.Response) -> Uploaded:
        try:
            body = response.json()
        except ValueError:
            body = None
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or "id" not in data:
            raise PlatformError(_("{channel}: X answered a media request without a media "
                                  "id").format(channel=self.channel),
                                channel=self.channel, code=response.status_code)
        return data
