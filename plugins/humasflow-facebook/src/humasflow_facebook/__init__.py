"""humasflow-facebook: post to a Facebook Page through the Graph API, with facebook-sdk.

What it posts, and how (``{v}`` is the channel's ``graph_version``, default
:data:`DEFAULT_VERSION`)::

    text, text + link   POST /{v}/{page}/feed     message, link         → {"id": post}
    one photo           POST /{v}/{page}/photos   url | source, message, alt_text_custom
                                                  → {"id": photo, "post_id": post}
    several photos      POST /{v}/{page}/photos   published=false (each, invisible)
                        POST /{v}/{page}/feed     message, attached_media[i]
    a video             POST /{v}/{page}/videos   (graph-video host) source | file_url,
                                                  title, description → {"id": video}
    a large video       POST /{v}/{app}/uploads, POST /{v}/upload:{session} (the
                        Resumable Upload API), then /videos with
                        fbuploader_video_file_chunk

Only the last call of each row makes the post public. Before it the publisher saves
``sent_at`` with ``progress.save``; every id it creates (photo uploads, the upload
session, the file handle, the post) is saved right after the call that created it. An
attempt that finds ``sent_at`` from an earlier one looks the post up first, and posts
only if it is certainly not there.

The post carries its idempotency key as an invisible marker at the end of its message
(see :mod:`humasflow_facebook._marker`); :meth:`FacebookPublisher.reconcile` reads the
Page's recent published posts (or its videos) and takes only the post with this
marker.

Channel settings: ``page_id`` (required), ``graph_version``, ``timeout``,
``upload_timeout``, ``graph_url``, ``video_url``, ``app_id``, ``resumable_over``,
``marker``. Credentials: ``page_token`` (required), ``user_token`` (only for the
Resumable Upload API). Post options: ``title`` (a video's title).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import facebook
import requests
from humasflow import (
    AuthenticationFailed,
    ChannelConfig,
    ConfigurationError,
    ContentRejected,
    Media,
    OutcomeUnknown,
    PlatformError,
    Post,
    Problem,
    PublisherContext,
    PublishError,
    RateLimited,
    Receipt,
    hookimpl,
    unknown_options,
)
from humasflow.publishing.contract import check_settings
from humasflow.publishing.media import check_media

from humasflow_facebook import _marker
from humasflow_facebook._i18n import _
from humasflow_facebook._wire import (
    PERMISSIONS,
    BadAnswer,
    GraphSession,
    classify,
    usage_reset,
)

__all__ = [
    "DEFAULT_VERSION",
    "PUBLISHER",
    "SETTINGS",
    "FacebookPublisher",
    "register_publishers",
]

__version__ = "0.1.0"

#: The name channels use for this publisher; the entry point's name too.
PUBLISHER = "facebook"
#: The Graph API version used unless the channel's ``graph_version`` says otherwise
#: (released February 2026, available until July 2028).
DEFAULT_VERSION = "v25.0"
#: The settings the publisher takes (besides every channel's).
SETTINGS = ("app_id", "graph_url", "graph_version", "marker", "page_id", "resumable_over",
            "timeout", "upload_timeout", "video_url")

GRAPH_URL = "https://graph.facebook.com/"
VIDEO_URL = "https://graph-video.facebook.com/"
#: The longest message of a Page post, in characters.
MAX_MESSAGE = 63_206
#: The most photos this publisher attaches to one post.
MAX_PHOTOS = 10
#: The largest photo Facebook takes.
MAX_PHOTO_BYTES = 4 * 1024 * 1024
#: The largest video Facebook takes.
MAX_VIDEO_BYTES = 10 * 1024**3
#: The longest video title.
MAX_TITLE = 255
#: Videos larger than this go through the Resumable Upload API (setting ``resumable_over``).
RESUMABLE_OVER = 100 * 1024 * 1024
PHOTO_FORMATS = {"image": (".jpg", ".jpeg", ".png", ".webp"), "gif": (".gif",),
                 "video": (".mp4", ".mov", ".m4v")}
OPTIONS = ("title",)

_VERSION = re.compile(r"^v?(\d{1,3})\.(\d{1,2})$")
#: Read back that many pages of published posts (100 each) at most.
_LOOKUP_PAGES = 5
#: Look for a post this long before the first attempt was saved (clock differences).
_SLACK = dt.timedelta(minutes=10)

T = TypeVar("T")


class FacebookPublisher:
    """Posts an item to a Facebook Page with the Page's access token.

    Args:
        channel: The channel (its ``settings`` as described in the module docstring).
        context: The core's I/O: ``session`` (every call goes through it, with a
            timeout), ``credentials`` (``page_token``, optionally ``user_token``),
            ``media`` (the bytes of the post's media) and ``clock``.

    Raises:
        ConfigurationError: A setting is missing or malformed.
    """

    def __init__(self, channel: ChannelConfig, context: PublisherContext) -> None:
        settings = FacebookPublisher.prepare_settings(channel.settings)
        self.channel = channel.name
        self.page_id = str(settings["page_id"])
        self.version = _version(settings.get("graph_version", DEFAULT_VERSION))
        self.timeout = float(settings.get("timeout", 30))
        self.upload_timeout = float(settings.get("upload_timeout", 600))
        self.app_id = str(settings.get("app_id", ""))
        self.resumable_over = int(settings.get("resumable_over", RESUMABLE_OVER))
        self.use_marker = bool(settings.get("marker", True))
        self._named = frozenset(channel.credentials)
        self._context = context
        self._media = context.media
        self._clock = context.clock
        self._wire = GraphSession(
            context.session, graph_url=str(settings.get("graph_url", GRAPH_URL)),
            video_url=str(settings.get("video_url", VIDEO_URL)), timeout=self.timeout,
            upload_timeout=self.upload_timeout)
        self._graph = facebook.GraphAPI(access_token=self._token or None,
                                        timeout=self.timeout, session=self._wire)
        # facebook-sdk's constructor only takes versions up to 3.1; its methods format
        # the attribute into each path, so the current version is set afterwards.
        self._graph.version = self.version

    @property
    def _token(self) -> str:
        return str(self._context.credentials.get("page_token", ""))

    def __repr__(self) -> str:
        return (f"<FacebookPublisher channel={self.channel!r} page={self.page_id!r} "
                f"version={self.version!r}>")

    # -- settings -------------------------------------------------------------------------

    @staticmethod
    def prepare_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
        """Check the channel's settings once, when the channel is configured.

        Raises:
            ConfigurationError: An unknown setting, or one whose value cannot work.
        """
        check_settings(PUBLISHER, settings, SETTINGS)
        out = dict(settings)
        page = str(out.get("page_id", "")).strip()
        if not page.isdigit():
            raise ConfigurationError(_(
                "the facebook publisher needs the setting page_id: the Page's numeric id "
                "(Page → About → Page transparency, or GET /me/accounts); got {value!r}"
            ).format(value=out.get("page_id", "")))
        out["page_id"] = page
        out["graph_version"] = _version(out.get("graph_version", DEFAULT_VERSION))
        for key in ("timeout", "upload_timeout"):
            if key in out and not _positive(out[key]):
                raise ConfigurationError(_(
                    "the facebook setting {key} is {value!r}; give a number of seconds "
                    "above 0").format(key=key, value=out[key]))
        for key in ("graph_url", "video_url"):
            if key in out:
                parts = urlsplit(str(out[key]))
                if parts.scheme not in ("http", "https") or not parts.netloc:
                    raise ConfigurationError(_(
                        "the facebook setting {key} is {value!r}; give an http(s) URL"
                    ).format(key=key, value=out[key]))
        if "resumable_over" in out and (not isinstance(out["resumable_over"], int)
                                        or out["resumable_over"] < 1):
            raise ConfigurationError(_(
                "the facebook setting resumable_over is {value!r}; give a size in bytes"
            ).format(value=out["resumable_over"]))
        if "app_id" in out and not str(out["app_id"]).isdigit():
            raise ConfigurationError(_(
                "the facebook setting app_id is {value!r}; give the app's numeric id"
            ).format(value=out["app_id"]))
        if "marker" in out and not isinstance(out["marker"], bool):
            raise ConfigurationError(_(
                "the facebook setting marker is {value!r}; give true or false").format(
                    value=out["marker"]))
        return out

    # -- validate -------------------------------------------------------------------------

    def validate(self, post: Post) -> list[Problem]:
        """Check the post against the Page's rules, without any network call."""
        name = self.channel
        problems = unknown_options(post, OPTIONS)
        title = post.options.get("title")
        if title is not None and (not isinstance(title, str) or len(title) > MAX_TITLE):
            problems.append(Problem(name, "options.title", "title", _(
                "the video title must be text of at most {limit} characters").format(
                    limit=MAX_TITLE), limit=MAX_TITLE, actual=title))
        limit = MAX_MESSAGE - (_marker.LENGTH if self.use_marker else 0)
        if len(post.text) > limit:
            problems.append(Problem(name, "text", "max_length", _(
                "the text has {count} characters; a Facebook post takes at most {limit}"
            ).format(count=len(post.text), limit=limit), limit=limit,
                actual=len(post.text)))
        if not post.text.strip() and not post.media and not post.link:
            problems.append(Problem(name, "text", "required", _(
                "the post has no text, link or media; Facebook needs at least one")))
        if post.link:
            parts = urlsplit(post.link)
            if (parts.scheme not in ("http", "https") or not parts.netloc
                    or any(c.isspace() for c in post.link)):
                problems.append(Problem(name, "link", "link_form", _(
                    "the link {link!r} is not a full http(s) URL (https://host/path)"
                ).format(link=post.link), actual=post.link))
            if post.media:
                problems.append(Problem(name, "link", "link_with_media", _(
                    "Facebook shows a link preview or media, not both: drop the link, or "
                    "put it in the text")))
        problems.extend(check_media(
            post, name, kinds=("image", "gif", "video"), formats=PHOTO_FORMATS,
            max_bytes={"image": MAX_PHOTO_BYTES, "gif": MAX_PHOTO_BYTES,
                       "video": MAX_VIDEO_BYTES}))
        videos = [i for i, m in enumerate(post.media) if m.media_kind == "video"]
        photos = len(post.media) - len(videos)
        if videos and photos:
            problems.append(Problem(name, f"media[{videos[0]}]", "video_with_photos", _(
                "a Facebook post carries one video or photos, not both; post the video "
                "in an item of its own"), actual=len(post.media)))
        elif len(videos) > 1:
            problems.append(Problem(name, "media", "max_count", _(
                "{count} videos attached; a Facebook post carries one").format(
                    count=len(videos)), limit=1, actual=len(videos)))
        elif photos > MAX_PHOTOS:
            problems.append(Problem(name, "media", "max_count", _(
                "{count} photos attached; at most {limit} per post").format(
                    count=photos, limit=MAX_PHOTOS), limit=MAX_PHOTOS, actual=photos))
        if len(videos) == 1 and not post.media[videos[0]].public_url:
            video = post.media[videos[0]]
            if (video.size or 0) > self.resumable_over and not (
                    self.app_id and "user_token" in self._named):
                problems.append(Problem(name, f"media[{videos[0]}]", "resumable_upload", _(
                    "the video is larger than {limit} bytes and goes through Facebook's "
                    "Resumable Upload API, which needs the channel's app_id setting and "
                    "a user_token credential (see the humasflow-facebook README)").format(
                        limit=self.resumable_over), limit=self.resumable_over,
                    actual=video.size))
        return problems

    # -- publish --------------------------------------------------------------------------

    def publish(self, post: Post, progress: Any) -> Receipt:
        """Post it once; an attempt after a lost answer looks the post up first."""
        self._need_token()
        if progress.get("post_id"):
            return Receipt(str(progress["post_id"]), str(progress.get("url", "")))
        if progress.get("sent_at"):
            found = self._find(post, progress, unknown=PlatformError)
            if found is not None:
                progress.save(post_id=found.platform_id, url=found.url)
                return found
        kind = _kind(post)
        if kind == "video":
            receipt = self._post_video(post, progress)
        elif kind == "photo":
            receipt = self._post_photo(post, progress)
        else:
            photo_ids = self._upload_photos(post, progress) if kind == "album" else []
            receipt = self._post_feed(post, progress, photo_ids)
        if receipt is None:  # a duplicate of this very post: it is there already
            found = self._find(post, progress, unknown=OutcomeUnknown)
            if found is None:
                raise ContentRejected(_(
                    "{channel}: Facebook refused the post as a duplicate of the Page's "
                    "previous post, which is not this item's; change the text").format(
                        channel=self.channel), channel=self.channel)
            receipt = found
        progress.save(post_id=receipt.platform_id, url=receipt.url)
        return receipt

    def reconcile(self, post: Post, progress: Any) -> Receipt | None:
        """After an unknown outcome: the post's receipt if it is on the Page, ``None``
        if it is certainly not, or raise ``OutcomeUnknown`` if that cannot be told."""
        if progress.get("post_id"):
            return Receipt(str(progress["post_id"]), str(progress.get("url", "")))
        if not progress.get("sent_at"):
            # The call that makes a post public was never sent.
            return None
        self._need_token()
        return self._find(post, progress, unknown=OutcomeUnknown)

    def check(self) -> str:
        """Read the Page's name and the token's permissions and expiry; post nothing.

        Returns:
            A one-line summary (``humasflow channels check`` prints it).

        Raises:
            AuthenticationFailed: The token is refused, is not this Page's, or lacks a
                permission.
        """
        self._need_token()
        page = self._call(_("reading the Page"), lambda: self._graph.get_object(
            self.page_id, fields="id,name"))
        name = str(page.get("name", ""))
        try:
            debug = self._graph.request(f"{self.version}/debug_token",
                                        {"input_token": self._token})
        except (facebook.GraphAPIError, BadAnswer, requests.RequestException):
            # debug_token needs an app token or a token of the app's own people; a Page
            # token of anyone else cannot read it, which says nothing against posting.
            return _("Page {name!r} ({page}); the token's expiry and permissions could not "
                     "be read (debug_token refused it)").format(name=name, page=self.page_id)
        data = debug.get("data") or {}
        return self._judge_token(name, data)

    # -- the kinds of post ------------------------------------------------------------------

    def _post_feed(self, post: Post, progress: Any, photo_ids: list[str]) -> Receipt | None:
        data: dict[str, Any] = {"message": self._message(post)}
        if post.link:
            data["link"] = post.link
        for i, photo in enumerate(photo_ids):
            # facebook-sdk sends lists as they are: the Graph API wants one field each.
            data[f"attached_media[{i}]"] = f'{{"media_fbid":"{photo}"}}'
        answer = self._public(post, progress, _("posting to the Page feed"),
                              lambda: self._graph.put_object(self.page_id, "feed", **data))
        if answer is None:
            return None
        post_id = str(answer["id"])
        return Receipt(post_id, self._post_url(post_id))

    def _post_photo(self, post: Post, progress: Any) -> Receipt | None:
        media = post.media[0]
        data = {"message": self._message(post), "published": "true"}
        if media.alt:
            data["alt_text_custom"] = media.alt
        answer = self._public(post, progress, _("posting the photo"),
                              lambda: self._photo(media, data))
        if answer is None:
            return None
        post_id = str(answer.get("post_id") or answer["id"])
        return Receipt(post_id, self._post_url(post_id))

    def _upload_photos(self, post: Post, progress: Any) -> list[str]:
        """Upload the album's photos unpublished (invisible, so a repeat is harmless),
        saving each id before the next call."""
        photo_ids = list(progress.get("photo_ids", []))
        for media in post.media[len(photo_ids):]:
            data = {"published": "false"}
            if media.alt:
                data["alt_text_custom"] = media.alt
            answer = self._call(_("uploading a photo"), _bind(self._photo, media, data))
            photo_ids.append(str(answer["id"]))
            progress.save(photo_ids=list(photo_ids))
        return photo_ids

    def _photo(self, media: Media, data: dict[str, str]) -> Any:
        if media.public_url:
            return self._graph.put_object(self.page_id, "photos", url=media.public_url, **data)
        with self._media.open(media) as f:
            return self._graph.put_photo((_file_name(media), f, media.mime or None),
                                         album_path=f"{self.page_id}/photos", **data)

    def _post_video(self, post: Post, progress: Any) -> Receipt | None:
        media = post.media[0]
        data: dict[str, Any] = {"description": self._message(post),
                                "title": str(post.options.get("title") or post.title)}
        path = f"{self.version}/{self.page_id}/videos"
        what = _("posting the video")
        send_bytes = False
        if media.public_url:
            data["file_url"] = media.public_url
        elif (media.size or 0) > self.resumable_over:
            data["fbuploader_video_file_chunk"] = self._upload_video(media, progress)
        else:
            send_bytes = True

        def send() -> Any:
            if not send_bytes:
                return self._graph.request(path, post_args=data)
            with self._media.open(media) as f:
                return self._graph.request(path, post_args=data, files={
                    "source": (_file_name(media), f, media.mime or None)})

        def on_video_host() -> Any:
            with self._wire.video_host():
                return send()

        answer = self._public(post, progress, what, on_video_host)
        if answer is None:
            return None
        video_id = str(answer["id"])
        return Receipt(video_id, f"https://www.facebook.com/{self.page_id}/videos/{video_id}")

    def _upload_video(self, media: Media, progress: Any) -> str:
        """Upload a large video with the Resumable Upload API; returns the file handle.
        The session id is saved before any byte is sent, so a later attempt resumes at
        the offset Facebook reports instead of starting again."""
        if progress.get("video_handle"):
            return str(progress["video_handle"])
        user_token = str(self._context.credentials.get("user_token", ""))
        if not (self.app_id and user_token):
            raise ContentRejected(_(
                "{channel}: the video needs Facebook's Resumable Upload API: set the "
                "channel's app_id and a user_token credential").format(channel=self.channel),
                channel=self.channel)
        base = f"{self._wire.graph_url}{self.version}/"
        session = str(progress.get("upload_session", ""))
        if not session:
            answer = self._call(_("starting the video upload"), lambda: self._wire.send(
                "POST", f"{base}{self.app_id}/uploads", params={
                    "file_name": _file_name(media), "file_length": str(media.size or 0),
                    "file_type": media.mime or "video/mp4", "access_token": user_token}),
                )
            session = str(answer["id"])
            progress.save(upload_session=session)
            offset = 0
        else:
            state = self._call(_("resuming the video upload"), lambda: self._wire.send(
                "GET", f"{base}{session}", headers={"Authorization": f"OAuth {user_token}"}),
                )
            offset = int(state.get("file_offset", 0))

        def upload() -> Any:
            with self._media.open(media) as f:
                f.seek(offset)
                return self._wire.send("POST", f"{base}{session}", data=f,
                                       headers={"Authorization": f"OAuth {user_token}",
                                                "file_offset": str(offset)})

        answer = self._call(_("uploading the video"), upload)
        handle = str(answer["h"])
        progress.save(video_handle=handle)
        return handle

    # -- the public call, the lookup ------------------------------------------------------------

    def _public(self, post: Post, progress: Any, what: str,
                call: Callable[[], T]) -> T | None:
        """The call that makes the post public: ``sent_at`` is saved first (the first
        attempt's time is kept, for the lookup's window). ``None`` for a 506 duplicate
        after an earlier attempt of this post (the caller looks it up)."""
        if not progress.get("sent_at"):
            progress.save(sent_at=self._clock().isoformat(), kind=_kind(post))
        try:
            return self._call(what, call, lost=OutcomeUnknown)
        except ContentRejected as exc:
            if getattr(exc, "graph_code", None) == 506 and self.use_marker:
                return None
            raise

    def _find(self, post: Post, progress: Any, *,
              unknown: type[PublishError]) -> Receipt | None:
        """Look this post up on the Page: by its marker, else (marker off) by its exact
        text in the time window since the first attempt."""
        since = _parse_time(progress.get("sent_at")) or self._clock()
        since -= _SLACK
        key = post.idempotency_key
        marked = self.use_marker and bool(_marker.marker(key))
        text = post.text.strip()
        look = _("looking the post up on the Page")
        if (progress.get("kind") or _kind(post)) == "video":
            entries = self._entries(f"{self.page_id}/videos", {
                "fields": "id,description,created_time,permalink_url", "limit": "50"},
                "description", look, unknown)
        else:
            entries = self._entries(f"{self.page_id}/published_posts", {
                "fields": "id,message,created_time,permalink_url",
                "since": str(int(since.timestamp())), "limit": "100"}, "message", look,
                unknown)
        lookalike = None
        for entry in entries:
            message = str(entry.get("text") or "")
            created = _parse_time(entry.get("created_time"))
            if created is not None and created < since:
                continue
            if marked and _marker.find(message) == key:
                return self._entry_receipt(entry)
            if _marker.strip(message).strip() == text and _marker.find(message) is None:
                if not marked:
                    return self._entry_receipt(entry)
                lookalike = entry
        if lookalike is not None:
            raise OutcomeUnknown(_(
                "{channel}: the Page has a post with this item's text ({id}) but without "
                "its marker, so it may be another's; look at the Page and confirm it "
                "(humasflow confirm ... --url, or --not-posted)").format(
                    channel=self.channel, id=lookalike.get("id")), channel=self.channel)
        return None

    def _entries(self, path: str, args: dict[str, str], field: str, what: str,
                 unknown: type[PublishError]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for _page in range(_LOOKUP_PAGES):
            answer = self._call(what, _bind(self._graph.request, f"{self.version}/{path}",
                                            dict(args)), lost=unknown)
            for entry in answer.get("data") or []:
                if isinstance(entry, dict):
                    found.append({**entry, "text": entry.get(field)})
            after = ((answer.get("paging") or {}).get("cursors") or {}).get("after")
            if not after or not (answer.get("paging") or {}).get("next"):
                break
            args["after"] = str(after)
        return found

    def _entry_receipt(self, entry: Mapping[str, Any]) -> Receipt:
        post_id = str(entry["id"])
        url = str(entry.get("permalink_url") or "")
        if url.startswith("/"):
            url = "https://www.facebook.com" + url
        if "_" not in post_id and not url:
            url = f"https://www.facebook.com/{self.page_id}/videos/{post_id}"
        return Receipt(post_id, url or self._post_url(post_id))

    # -- one call -------------------------------------------------------------------------

    def _call(self, what: str, call: Callable[[], T], *,
              lost: type[PublishError] = PlatformError) -> T:
        """Make one Graph call and turn every way it can fail into humasflow's errors.

        Args:
            lost: What a lost answer means: ``OutcomeUnknown`` for the call that may
                make the post public (and for a reconcile's lookup), ``PlatformError``
                for a call that is harmless to repeat.
        """
        failure: PublishError
        try:
            return call()
        except requests.ConnectTimeout:
            failure = PlatformError(_(
                "{channel}: Facebook did not accept a connection while {what}; nothing was "
                "sent, it is tried again").format(channel=self.channel, what=what),
                channel=self.channel, code="connect_timeout")
        except requests.RequestException as exc:
            kind = type(exc).__name__
            if lost is OutcomeUnknown:
                failure = OutcomeUnknown(_(
                    "{channel}: no answer from Facebook while {what} ({kind}); the post may "
                    "be on the Page: it is looked up before anything is sent again").format(
                        channel=self.channel, what=what, kind=kind), channel=self.channel)
            else:
                failure = lost(_(
                    "{channel}: no answer from Facebook while {what} ({kind}); it is tried "
                    "again").format(channel=self.channel, what=what, kind=kind),
                    channel=self.channel)
        except BadAnswer as exc:
            failure = self._bad_answer(exc, what)
        except facebook.GraphAPIError as exc:
            result = exc.result if isinstance(exc.result, dict) else {}
            error = result.get("error")
            if isinstance(error, dict):
                failure = classify(error, channel=self.channel, what=what,
                                   headers=self._wire.last_headers, now=self._clock)
            else:
                failure = PlatformError(_(
                    "{channel}: Facebook answered {what} in a form facebook-sdk cannot read "
                    "(HTTP {status})").format(channel=self.channel, what=what,
                                              status=self._wire.last_status),
                    channel=self.channel, code=self._wire.last_status)
        # Raised outside the handler: the request's exception (whose text may hold a URL
        # with the token) is neither cause nor context of what humasflow records.
        raise failure

    def _bad_answer(self, exc: BadAnswer, what: str) -> PublishError:
        status = exc.status
        if status == 429:
            reset_at = usage_reset(exc.headers, self._clock)
            return RateLimited(_("{channel}: Facebook is throttling the calls ({what}); HTTP "
                                 "429 without a Graph error").format(channel=self.channel,
                                                                     what=what),
                               channel=self.channel, reset_at=reset_at)
        if status in (401, 403):
            return AuthenticationFailed(_(
                "{channel}: Facebook refused the call while {what} (HTTP {status} without "
                "a Graph error); check the Page token and the graph_url setting").format(
                    channel=self.channel, what=what, status=status),
                channel=self.channel, credential="page_token")
        return PlatformError(_(
            "{channel}: Facebook answered HTTP {status} {reason} without a Graph error "
            "while {what} (a gateway or server failure); it is tried again later").format(
                channel=self.channel, status=status, reason=exc.reason, what=what),
            channel=self.channel, code=status)

    # -- helpers --------------------------------------------------------------------------

    def _need_token(self) -> None:
        if not self._token:
            raise AuthenticationFailed(_(
                "{channel}: the channel has no page_token credential; name the variable "
                "that holds the Page access token (credentials={{\"page_token\": ...}})"
            ).format(channel=self.channel), channel=self.channel, credential="page_token")

    def _message(self, post: Post) -> str:
        text = post.text.strip()
        return text + (_marker.marker(post.idempotency_key) if self.use_marker else "")

    def _post_url(self, post_id: str) -> str:
        page, _sep, story = post_id.partition("_")
        if story:
            return f"https://www.facebook.com/{page}/posts/{story}"
        return f"https://www.facebook.com/{post_id}"

    def _judge_token(self, name: str, data: Mapping[str, Any]) -> str:
        what = _("checking the Page token")
        if data.get("is_valid") is False:
            found = data.get("error")
            error: Mapping[str, Any] = found if isinstance(found, dict) else {}
            raise classify({"code": 190, "message": error.get("message", ""),
                            "error_subcode": error.get("subcode")},
                           channel=self.channel, what=what, headers={}, now=self._clock)
        kind = str(data.get("type", ""))
        if kind and kind != "PAGE":
            raise AuthenticationFailed(_(
                "{channel}: the token is a {kind} token; humasflow posts with the Page's "
                "own token (GET /me/accounts with a user token lists it)").format(
                    channel=self.channel, kind=kind), channel=self.channel,
                credential="page_token")
        profile = str(data.get("profile_id", "") or "")
        if profile and profile != self.page_id:
            raise AuthenticationFailed(_(
                "{channel}: the token belongs to Page {other}, not to Page {page}").format(
                    channel=self.channel, other=profile, page=self.page_id),
                channel=self.channel, credential="page_token")
        scopes = data.get("scopes")
        if isinstance(scopes, list):
            missing = [p for p in PERMISSIONS if p not in scopes]
            if missing:
                raise AuthenticationFailed(_(
                    "{channel}: the Page token lacks the permission {names}; make a new "
                    "one with {needed} granted").format(
                        channel=self.channel, names=", ".join(missing),
                        needed=", ".join(PERMISSIONS)),
                    channel=self.channel, credential="page_token")
        expires = int(data.get("expires_at") or 0)
        if expires > 0:
            at = dt.datetime.fromtimestamp(expires, dt.timezone.utc)
            self._context.credential_expires("page_token", at)
            expiry = _("the token expires at {time}").format(time=at.isoformat())
        else:
            expiry = _("the token does not expire")
        granted = ", ".join(sorted(scopes)) if isinstance(scopes, list) else "?"
        return _("Page {name!r} ({page}); {expiry}; permissions: {granted}").format(
            name=name, page=self.page_id, expiry=expiry, granted=granted)


def _bind(call: Callable[..., T], *args: Any) -> Callable[[], T]:
    """``call`` with ``args``, called later (a lambda in a loop would see the last)."""
    return lambda: call(*args)


def _kind(post: Post) -> str:
    if not post.media:
        return "text"
    if post.media[0].media_kind == "video":
        return "video"
    return "photo" if len(post.media) == 1 else "album"


def _version(value: Any) -> str:
    match = _VERSION.match(str(value).strip())
    if match is None:
        raise ConfigurationError(_(
            "the facebook setting graph_version is {value!r}; give a Graph API version "
            "such as {default!r}").format(value=value, default=DEFAULT_VERSION))
    return f"v{int(match.group(1))}.{int(match.group(2))}"


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _file_name(media: Media) -> str:
    ending = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif",
              "image/webp": ".webp", "video/mp4": ".mp4",
              "video/quicktime": ".mov"}.get(media.mime, "")
    return f"{(media.sha256 or 'media')[:16]}{ending}"


def _parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    text = str(value)
    # Graph writes "2026-01-05T02:00:00+0000"; Python before 3.11 wants "+00:00".
    text = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


@hookimpl
def register_publishers(register: Callable[..., None]) -> None:
    """Register the publisher under its name, :data:`PUBLISHER`."""
    register(PUBLISHER, FacebookPublisher)
