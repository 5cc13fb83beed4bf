"""Instagram's rules for a post, checked without any network call.

The numbers come from Instagram's content-publishing reference (2026): a caption of at
most 2,200 characters, at most 20 @mentions, hashtags capped (30 in the reference, 5 as
Instagram announced in December 2025: configurable, default 5); a carousel of 2 to 10
images or videos; feed images JPEG, at most 8 MiB, aspect ratio 4:5 to 1.91:1; reels
MP4/MOV of 3 s to 15 min and at most 300 MB (?); stories images up to 8 MiB or videos of
3 to 60 s and at most 100 MB (?); carousel videos 3 to 60 s (?). Numbers marked (?) are
from the reference's media specifications and may move: a wrong one shows as the
platform's own refusal, with its words, when the container is made.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from humasflow import Media, Post, Problem, unknown_options
from humasflow.publishing.media import check_media

from humasflow_instagram._i18n import _

__all__ = [
    "KINDS",
    "MAX_CAPTION",
    "MAX_MENTIONS",
    "OPTIONS",
    "kind_of",
    "private_host",
    "validate_post",
]

KINDS = ("image", "carousel", "reel", "story")
OPTIONS = ("kind", "share_to_feed", "thumb_offset")
MAX_CAPTION = 2200
MAX_MENTIONS = 20
CAROUSEL = (2, 10)
MIB = 1 << 20
IMAGE_MAX = 8 * MIB
FEED_RATIO = (4 / 5, 1.91)
#: kind → (shortest, longest) video in seconds, and the largest file.
VIDEO_LIMITS: Mapping[str, tuple[float, float, int]] = {
    "reel": (3, 15 * 60, 300 * 1000 * 1000),
    "story": (3, 60, 100 * 1000 * 1000),
    "carousel": (3, 60, 100 * 1000 * 1000),
}
_IMAGE_FORMATS = {"image": (".jpg", ".jpeg")}
_VIDEO_FORMATS = {"video": (".mp4", ".mov")}

# A hashtag or mention as Instagram links it: '#' or '@' not inside a word.
_HASHTAG = re.compile(r"(?<![\w&])#(\w+)")
_MENTION = re.compile(r"(?<![\w.])@([A-Za-z0-9_](?:[A-Za-z0-9_.]*[A-Za-z0-9_])?)")


def kind_of(post: Post) -> str:
    """The kind of post: the ``kind`` option, else one image → ``image``, one video →
    ``reel``, several media → ``carousel``."""
    kind = post.options.get("kind")
    if isinstance(kind, str) and kind:
        return kind
    if len(post.media) > 1:
        return "carousel"
    if post.media and post.media[0].media_kind == "video":
        return "reel"
    return "image"


def validate_post(post: Post, channel: str, *, max_hashtags: int) -> list[Problem]:
    """Every rule the post breaks on this channel (see the module docstring)."""
    problems = unknown_options(post, OPTIONS)
    problems = [Problem(channel, p.field, p.rule, p.message, p.limit, p.actual)
                for p in problems]
    kind = post.options.get("kind")
    if kind is not None and kind not in KINDS:
        problems.append(Problem(channel, "options.kind", "option_value", _(
            "the kind {kind!r} is not an Instagram post kind; give one of {kinds}").format(
                kind=kind, kinds=", ".join(KINDS)), limit=KINDS, actual=kind))
        return problems
    kind = kind_of(post)
    problems.extend(_options(post, channel, kind))
    problems.extend(_caption(post, channel, kind, max_hashtags))
    problems.extend(_media(post, channel, kind))
    return problems


def _options(post: Post, channel: str, kind: str) -> list[Problem]:
    problems = []
    for name in ("share_to_feed", "thumb_offset"):
        if name in post.options and kind != "reel":
            problems.append(Problem(channel, f"options.{name}", "option_kind", _(
                "the option {name!r} is for reels; this post is a {kind}").format(
                    name=name, kind=kind), actual=kind))
    share = post.options.get("share_to_feed")
    if share is not None and not isinstance(share, bool):
        problems.append(Problem(channel, "options.share_to_feed", "option_value", _(
            "share_to_feed is {value!r}; give true or false").format(value=share),
            actual=share))
    offset = post.options.get("thumb_offset")
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int)
                               or offset < 0):
        problems.append(Problem(channel, "options.thumb_offset", "option_value", _(
            "thumb_offset is {value!r}; give the cover frame's time in the video, in "
            "milliseconds (0 or more)").format(value=offset), actual=offset))
    elif offset is not None and post.media and post.media[0].duration is not None and (
            offset >= post.media[0].duration * 1000):
        problems.append(Problem(channel, "options.thumb_offset", "option_value", _(
            "thumb_offset is {value} ms, but the video lasts {seconds:.1f} s").format(
                value=offset, seconds=post.media[0].duration), actual=offset))
    return problems


def _caption(post: Post, channel: str, kind: str, max_hashtags: int) -> list[Problem]:
    problems = []
    text = post.text
    if len(text) > MAX_CAPTION:
        problems.append(Problem(channel, "text", "max_length", _(
            "the caption has {count} characters; Instagram takes at most {limit}").format(
                count=len(text), limit=MAX_CAPTION), limit=MAX_CAPTION, actual=len(text)))
    hashtags = _HASHTAG.findall(text)
    if len(hashtags) > max_hashtags:
        problems.append(Problem(channel, "text", "max_hashtags", _(
            "the caption has {count} hashtags; this channel takes at most {limit} (the "
            "channel setting max_hashtags)").format(count=len(hashtags), limit=max_hashtags),
            limit=max_hashtags, actual=len(hashtags)))
    mentions = _MENTION.findall(text)
    if len(mentions) > MAX_MENTIONS:
        problems.append(Problem(channel, "text", "max_mentions", _(
            "the caption mentions {count} accounts; Instagram takes at most {limit}").format(
                count=len(mentions), limit=MAX_MENTIONS), limit=MAX_MENTIONS,
            actual=len(mentions)))
    return problems


def _media(post: Post, channel: str, kind: str) -> list[Problem]:
    media = post.media
    if not media:
        return [Problem(channel, "media", "required", _(
            "an Instagram post needs media: attach the design or the video"))]
    problems: list[Problem] = []
    if kind == "image":
        problems += _count(channel, media, 1, 1, kind)
        problems += _each(post, channel, media[:1], ("image",), feed=True)
    elif kind == "carousel":
        low, high = CAROUSEL
        problems += _count(channel, media, low, high, kind)
        problems += _each(post, channel, media[:high], ("image", "video"), feed=True,
                          video_kind="carousel")
    elif kind == "reel":
        problems += _count(channel, media, 1, 2, kind)
        problems += _each(post, channel, media[:1], ("video",), video_kind="reel")
        if len(media) == 2:
            problems += _each(post, channel, media[1:2], ("image",), offset=1)
    else:  # story
        problems += _count(channel, media, 1, 1, kind)
        problems += _each(post, channel, media[:1], ("image", "video"), video_kind="story")
    return problems


def _count(channel: str, media: Sequence[Media], low: int, high: int,
           kind: str) -> list[Problem]:
    count = len(media)
    if low <= count <= high:
        return []
    if kind == "carousel":
        message = _("a carousel takes {low} to {high} images or videos; {count} are attached")
    elif kind == "reel":
        message = _("a reel takes one video, and optionally one image as its cover; "
                    "{count} media are attached")
    else:
        message = _("an Instagram {kind} takes one media file; {count} are attached")
    return [Problem(channel, "media", "max_count" if count > high else "min_count",
                    message.format(low=low, high=high, count=count, kind=kind),
                    limit=high if count > high else low, actual=count)]


def _each(post: Post, channel: str, media: Sequence[Media], kinds: Sequence[str], *,
          feed: bool = False, video_kind: str = "", offset: int = 0) -> list[Problem]:
    problems: list[Problem] = []
    for i, item in enumerate(media, start=offset):
        field = f"media[{i}]"
        one = Post(item_id=post.item_id, channel=channel, title=post.title, text="",
                   media=(item,))
        found = check_media(one, channel, kinds=kinds,
                            formats={**_IMAGE_FORMATS, **_VIDEO_FORMATS},
                            max_bytes={"image": IMAGE_MAX,
                                       "video": VIDEO_LIMITS.get(video_kind, (0, 0, 0))[2]
                                       or VIDEO_LIMITS["reel"][2]})
        for problem in found:
            problems.append(Problem(channel, field, problem.rule, problem.message,
                                    problem.limit, problem.actual))
        if found:
            continue
        if item.media_kind == "image" and feed:
            problems += _ratio(channel, field, item)
        if item.media_kind == "video" and video_kind:
            problems += _duration(channel, field, item, video_kind)
        problems += _public(channel, field, item)
    return problems


def _ratio(channel: str, field: str, media: Media) -> list[Problem]:
    if not media.width or not media.height:
        return []
    ratio = media.width / media.height
    low, high = FEED_RATIO
    # Rounded as Instagram states them (4:5 is 0.8, 1.91:1): a 1080 by 1350 design fits.
    if round(ratio, 3) < low or round(ratio, 3) > high:
        return [Problem(channel, field, "aspect_ratio", _(
            "{source!r} is {width}\u00d7{height} (aspect ratio {ratio:.2f}:1); an Instagram feed "
            "image must be between 4:5 (0.80:1) and 1.91:1: crop it").format(
                source=media.source, width=media.width, height=media.height, ratio=ratio),
            limit=FEED_RATIO, actual=round(ratio, 3))]
    return []


def _duration(channel: str, field: str, media: Media, kind: str) -> list[Problem]:
    if media.duration is None:
        return []
    low, high, _size = VIDEO_LIMITS[kind]
    if low <= media.duration <= high:
        return []
    return [Problem(channel, field, "duration", _(
        "{source!r} lasts {seconds:.1f} s; a video in an Instagram {kind} lasts {low:g} s to "
        "{high:g} s").format(source=media.source, seconds=media.duration, kind=kind, low=low,
                             high=high), limit=(low, high), actual=media.duration)]


def _public(channel: str, field: str, media: Media) -> list[Problem]:
    url = media.public_url
    if not url:
        return [Problem(channel, field, "public_url", _(
            "{source!r} is in this office's media store, but Instagram fetches media from "
            "a public URL and the office has no media host: add a [media.host] table with "
            "folder and base_url to the configuration file, pass "
            "Office(media_host=FolderMediaHost(folder, base_url)), or install a plugin "
            "with the public_media_url hook (see the Media page of the documentation)"
        ).format(source=media.source), actual=media.source)]
    host = private_host(url)
    if host:
        return [Problem(channel, field, "public_url", _(
            "{url!r} is on {host}, an address Instagram cannot reach from the internet: "
            "give the media host a public base_url").format(url=url, host=host),
            actual=url)]
    return []


def private_host(url: str) -> str:
    """The host of ``url`` if Instagram certainly cannot fetch from it (a loopback,
    private or link-local address, ``localhost``, a name without a dot or under
    ``.local``/``.internal``/``.lan``), else ``""``."""
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return url
    if not host:
        return url
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or "." not in host or host.endswith(
                (".localhost", ".local", ".internal", ".lan", ".intranet")):
            return host
        return ""
    return host if not address.is_global else ""


def as_bool(value: Any, default: bool) -> bool:
    """An option's boolean value (``None`` → ``default``)."""
    return default if value is None else bool(value)
