"""humasflow-instagram: post to an Instagram professional account.

The Instagram Graph API's content-publishing flow, with ``requests`` on the session
humasflow hands the publisher::

    GET  /{user}/content_publishing_limit?fields=quota_usage,config   (before posting)
    POST /{user}/media           image_url | video_url, media_type, caption, alt_text,
                                 is_carousel_item, children, share_to_feed, cover_url …
                                 → {"id": container}
    GET  /{container}?fields=status_code,status     IN_PROGRESS → FINISHED | ERROR …
    POST /{user}/media_publish   creation_id=container  → {"id": media}   (the post)
    GET  /{media}?fields=id,permalink                → the receipt's URL

on ``graph.instagram.com`` (Instagram Login) or ``graph.facebook.com`` (Facebook Login),
the version in the path a setting. Every container id is saved with ``progress.save``
before the next call; after an unknown outcome the container's ``status_code`` decides
(``PUBLISHED``: the post is there, it is never published again).

Channel settings (all optional but ``user_id`` with Facebook Login): ``login``
(``"instagram"`` or ``"facebook"``), ``user_id``, ``account`` (the username ``check``
expects), ``api_version`` (default :data:`API_VERSION`), ``timeout`` (seconds, 10),
``max_hashtags`` (5), ``poll_interval`` (seconds, 2), ``poll_timeout`` (seconds, 300),
``refresh`` (``"auto"`` or ``"off"``), ``base_url`` (another host, e.g. a local fake).
Credential: ``token``. Post options: ``kind`` (``image``, ``carousel``, ``reel``,
``story``), ``share_to_feed`` and ``thumb_offset`` (reels).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from humasflow import (
    AuthenticationFailed,
    ChannelConfig,
    ConfigurationError,
    ContentRejected,
    OutcomeUnknown,
    PlatformError,
    Post,
    Problem,
    PublisherContext,
    PublishError,
    RateLimited,
    Receipt,
    check_settings,
    hookimpl,
)
from humasflow.models import Media
from humasflow.scrubbing import get_logger

from humasflow_instagram._graph import ContainerExpired, Graph, PublishingLimitReached
from humasflow_instagram._i18n import _
from humasflow_instagram._rules import as_bool, kind_of, validate_post

__all__ = [
    "API_VERSION",
    "HOSTS",
    "PUBLISHER",
    "SETTINGS",
    "InstagramPublisher",
    "register_publishers",
]

__version__ = "0.1.0"

#: The name channels use for this publisher.
PUBLISHER = "instagram"
#: The Graph API version used unless a channel's ``api_version`` says otherwise
#: (v24.0 is available until February 2028).
API_VERSION = "v24.0"
#: login → the host of the Instagram API with that login.
HOSTS: Mapping[str, str] = {
    "instagram": "https://graph.instagram.com",
    "facebook": "https://graph.facebook.com",
}
#: The permissions a token needs, by login.
PERMISSIONS: Mapping[str, tuple[str, ...]] = {
    "instagram": ("instagram_business_basic", "instagram_business_content_publish"),
    "facebook": ("instagram_basic", "instagram_content_publish", "pages_read_engagement"),
}
#: The settings this publisher takes (besides every channel's).
SETTINGS = ("account", "api_version", "base_url", "login", "max_hashtags", "poll_interval",
            "poll_timeout", "refresh", "timeout", "user_id")
#: Each container's states (``status_code``).
FINISHED, IN_PROGRESS, ERROR, EXPIRED, PUBLISHED = (
    "FINISHED", "IN_PROGRESS", "ERROR", "EXPIRED", "PUBLISHED")
#: The longest wait between two polls of a container, in seconds.
MAX_POLL_WAIT = 30.0
#: How many of the account's latest media a lookup reads.
LOOKUP_LIMIT = 25
#: A renewed Instagram-Login token lives about this long (when the answer does not say).
TOKEN_LIFETIME = dt.timedelta(days=60)

log = get_logger(__name__)


class InstagramPublisher:
    """Posts images, carousels, reels and stories to one Instagram professional account.

    Args:
        channel: The channel (see the module docstring for its settings).
        context: What humasflow hands a publisher: the credential ``token``, the
            session, the clock and the media store.

    Attributes:
        sleep: How the publisher waits between two polls of a container (tests replace
            it; the waits are bounded by the ``poll_timeout`` setting).
    """

    def __init__(self, channel: ChannelConfig, context: PublisherContext) -> None:
        settings = prepare_settings(channel.settings)
        self.channel = channel.name
        self.login = str(settings["login"])
        self.user_id = str(settings["user_id"])
        self.account = str(settings.get("account", "")).lstrip("@")
        self.max_hashtags = int(settings["max_hashtags"])
        self.poll_interval = float(settings["poll_interval"])
        self.poll_timeout = float(settings["poll_timeout"])
        self.refresh = str(settings["refresh"])
        self._context = context
        self.clock = context.clock
        self.sleep: Callable[[float], None] = time.sleep
        self.graph = Graph(session=context.session, base_url=str(settings["base_url"]),
                           version=str(settings["api_version"]),
                           token=context.credentials.get("token", ""),
                           timeout=float(settings["timeout"]), channel=channel.name,
                           clock=context.clock)

    def __repr__(self) -> str:
        return (f"<InstagramPublisher channel={self.channel!r} login={self.login!r} "
                f"user_id={self.user_id!r} api={self.graph.version!r}>")

    @staticmethod
    def prepare_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
        """Check the channel's settings and fill in the defaults (see
        :func:`prepare_settings`)."""
        return prepare_settings(settings)

    # -- validate -----------------------------------------------------------------------------

    def validate(self, post: Post) -> list[Problem]:
        """Every Instagram rule the post breaks, without any network call: the kind and
        its media count, caption length, hashtags and mentions, each media file's type,
        size, aspect ratio and duration (as the media store read them), and a public URL
        for each (from the office's media host)."""
        return validate_post(post, self.channel, max_hashtags=self.max_hashtags)

    # -- publish ------------------------------------------------------------------------------

    def publish(self, post: Post, progress: Any) -> Receipt:
        """Create the container(s), wait until they are ready, publish, and return the
        media id and permalink. Resumes from what ``progress`` holds: a saved media id
        is the post; a saved container is asked for its status before anything else."""
        if progress.get("media_id"):
            return self._receipt(str(progress["media_id"]), unknown=OutcomeUnknown)
        kind = kind_of(post)
        container = progress.get("container")
        status: str | None = None
        if container:
            status, text = self._status(container)
            if status == PUBLISHED:
                return self._published(post, progress)
            if status in (EXPIRED, ERROR):
                # Never published, and never will be: start again with a new one.
                progress.save(container=None, container_status=status)
                if status == ERROR:
                    raise self._container_error(post, container, text, progress)
                container, status = None, None
        self._check_quota()
        if not container:
            container = self._create(post, kind, progress)
        self._wait(post, container, status, progress)
        try:
            answer = self.graph.post(f"{self.user_id}/media_publish",
                                     data={"creation_id": container},
                                     unknown=OutcomeUnknown, risky=True)
        except PublishingLimitReached as exc:
            raise self._limit_error(exc) from None
        except ContainerExpired:
            progress.save(container=None, container_status=EXPIRED)
            raise
        media_id = str(answer["id"])
        progress.save(media_id=media_id)
        return self._receipt(media_id, unknown=OutcomeUnknown)

    def reconcile(self, post: Post, progress: Any) -> Receipt | None:
        """After an unknown outcome: the post's receipt if its container was published,
        ``None`` if it certainly was not (no container saved, or one that is not
        ``PUBLISHED``), else raise ``OutcomeUnknown``."""
        if progress.get("media_id"):
            return self._receipt(str(progress["media_id"]), unknown=OutcomeUnknown,
                                 failed=OutcomeUnknown)
        container = progress.get("container")
        if not container:
            # Nothing can be public without a container whose id this channel saved: an
            # unsaved one was never handed to media_publish.
            return None
        try:
            status, _text = self._status(container, unknown=OutcomeUnknown)
        except PlatformError as exc:
            raise OutcomeUnknown(str(exc), channel=self.channel) from None
        if status == PUBLISHED:
            return self._published(post, progress)
        return None

    # -- check --------------------------------------------------------------------------------

    def check(self) -> None:
        """Verify the token without posting: the account (id and username, against the
        ``account`` setting), the publishing permission (read through
        ``content_publishing_limit``) and, with Facebook Login, the token's permissions.
        With Instagram Login and a credential source that keeps a renewed token, renew
        the token (``refresh_access_token``) and report when it expires."""
        if self.login == "instagram":
            me = self.graph.get(self.user_id, params={"fields": "user_id,username"})
            found_id = str(me.get("user_id") or me.get("id") or "")
        else:
            me = self.graph.get(self.user_id, params={"fields": "id,username"})
            found_id = str(me.get("id") or "")
        username = str(me.get("username") or "")
        if self.account and username and username.lower() != self.account.lower():
            raise AuthenticationFailed(_(
                "{channel}: the token belongs to the Instagram account @{found}, but the "
                "channel is for @{expected}: use a token of @{expected}, or correct the "
                "channel's account setting").format(
                    channel=self.channel, found=username, expected=self.account),
                channel=self.channel, credential="token")
        self.graph.get(f"{self.user_id}/content_publishing_limit",
                       params={"fields": "quota_usage,config"})
        if self.login == "facebook":
            self._check_permissions()
        log.info("channel %r: Instagram account %s (@%s) may publish", self.channel,
                 found_id, username)
        if self.login == "instagram" and self.refresh == "auto":
            self._renew_token()

    def _check_permissions(self) -> None:
        try:
            answer = self.graph.get("me/permissions")
        except ContentRejected:
            return  # a Page token has no /me/permissions; the reads above passed
        granted = {str(p.get("permission")) for p in answer.get("data", [])
                   if isinstance(p, Mapping) and p.get("status") == "granted"}
        missing = [p for p in PERMISSIONS["facebook"] if p not in granted]
        if missing:
            raise AuthenticationFailed(_(
                "{channel}: the token was not granted {missing}; log in with Facebook Login "
                "again and grant them").format(channel=self.channel,
                                               missing=", ".join(missing)),
                channel=self.channel, credential="token")

    def _renew_token(self) -> None:
        if not self._context.credentials_writable:
            log.warning(
                "channel %r: an Instagram-Login token lives about 60 days and this office's "
                "credential source cannot keep a renewed one, so it is not renewed "
                "automatically: keep the token in a secrets file (humasflow --secrets FILE) "
                "or renew it by hand before it expires", self.channel)
            return
        try:
            answer = self.graph.get("refresh_access_token",
                                    params={"grant_type": "ig_refresh_token"},
                                    versioned=False, token_in_query=True)
        except AuthenticationFailed:
            raise
        except PublishError as exc:
            # A token younger than 24 hours cannot be renewed yet; the token itself works.
            log.warning("channel %r: the Instagram token was not renewed: %s", self.channel,
                        exc)
            return
        token = str(answer.get("access_token") or "")
        if not token:
            return
        seconds = answer.get("expires_in")
        lifetime = (dt.timedelta(seconds=int(seconds)) if isinstance(seconds, int)
                    else TOKEN_LIFETIME)
        expires = self.clock() + lifetime
        self._context.refresh_credential("token", token, expires_at=expires)
        self.graph.token = token

    # -- the flow -----------------------------------------------------------------------------

    def _check_quota(self) -> None:
        """Fail early when the account has used its posts of the moving 24 hours."""
        answer = self.graph.get(f"{self.user_id}/content_publishing_limit",
                                params={"fields": "quota_usage,config"})
        rows = answer.get("data") or [{}]
        row = rows[0] if isinstance(rows[0], Mapping) else {}
        usage = _int(row.get("quota_usage"))
        config = row.get("config")
        config = config if isinstance(config, Mapping) else {}
        total = _int(config.get("quota_total"))
        duration = _int(config.get("quota_duration")) or 86400
        if usage is None or total is None or usage < total:
            return
        reset_at = self._window_frees(usage, duration)
        raise RateLimited(_(
            "{channel}: the account has published {usage} of its {total} posts in the last "
            "{hours:g} hours through the API; the window frees a post at {when}, and it "
            "will be posted then").format(
                channel=self.channel, usage=usage, total=total, hours=duration / 3600,
                when=reset_at.isoformat()), channel=self.channel, reset_at=reset_at)

    def _window_frees(self, usage: int, duration: int) -> dt.datetime:
        """When the oldest post of the moving window leaves it: the ``usage``-th newest
        post's time plus the window (never earlier than the truth: the account's list
        also holds posts made in the app, which the limit does not count). If the list
        cannot be read: the whole window from now."""
        now = self.clock()
        try:
            answer = self.graph.get(f"{self.user_id}/media",
                                    params={"fields": "id,timestamp",
                                            "limit": str(max(usage, 1))})
        except PublishError:
            return now + dt.timedelta(seconds=duration)
        times = sorted((t for t in (_time(m.get("timestamp"))
                                    for m in answer.get("data", []) if isinstance(m, Mapping))
                        if t is not None), reverse=True)
        window = dt.timedelta(seconds=duration)
        if len(times) >= usage:
            frees = times[usage - 1] + window
        elif times:
            frees = times[-1] + window
        else:
            frees = now + window
        return max(frees, now + dt.timedelta(minutes=1))

    def _limit_error(self, exc: PublishingLimitReached) -> RateLimited:
        reset_at = self._window_frees(1, 86400)
        return RateLimited(_("{message}; the window frees a post at {when}").format(
            message=str(exc), when=reset_at.isoformat()), channel=self.channel,
            reset_at=reset_at)

    def _create(self, post: Post, kind: str, progress: Any) -> str:
        """Create the post's container (a carousel's children first) and save its id."""
        if kind == "carousel":
            children = self._children(post, progress)
            fields = {"media_type": "CAROUSEL", "children": ",".join(children),
                      "caption": post.text}
        else:
            fields = self._fields(post, kind)
        answer = self._create_one(fields, post, None)
        container = str(answer["id"])
        progress.save(container=container, container_created_at=self.clock().isoformat(),
                      container_status=None)
        return container

    def _children(self, post: Post, progress: Any) -> list[str]:
        """The carousel's item containers: those an earlier attempt made (still usable),
        then the rest, each saved before the next call; then each waited for."""
        children: list[str | None] = list(progress.get("children") or [])
        children = (children + [None] * len(post.media))[:len(post.media)]
        statuses: dict[str, str | None] = {}
        for i, child in enumerate(children):
            if child is None:
                continue
            status, text = self._status(child)
            if status in (EXPIRED, ERROR):
                children[i] = None
                progress.save(children=list(children))
                if status == ERROR:
                    raise self._container_error(post, child, text, progress, index=i)
            else:
                statuses[child] = status
        for i, media in enumerate(post.media):
            if children[i] is not None:
                continue
            fields = self._item_fields(media)
            fields["is_carousel_item"] = "true"
            answer = self._create_one(fields, post, i)
            children[i] = str(answer["id"])
            progress.save(children=list(children))
        made = [c for c in children if c is not None]
        for i, child in enumerate(made):
            self._wait(post, child, statuses.get(child), progress, index=i, child=True)
        return made

    def _fields(self, post: Post, kind: str) -> dict[str, str]:
        media = post.media[0]
        if kind == "image":
            fields = self._item_fields(media)
            fields["caption"] = post.text
            return fields
        if kind == "reel":
            fields = {"media_type": "REELS", "video_url": media.public_url,
                      "caption": post.text,
                      "share_to_feed": _bool(as_bool(post.options.get("share_to_feed"), True))}
            if len(post.media) > 1:
                fields["cover_url"] = post.media[1].public_url
            if post.options.get("thumb_offset") is not None:
                fields["thumb_offset"] = str(int(post.options["thumb_offset"]))
            return fields
        # A story: no caption (Instagram shows none on stories).
        key = "video_url" if media.media_kind == "video" else "image_url"
        return {"media_type": "STORIES", key: media.public_url}

    @staticmethod
    def _item_fields(media: Media) -> dict[str, str]:
        if media.media_kind == "video":
            return {"media_type": "VIDEO", "video_url": media.public_url}
        fields = {"image_url": media.public_url}
        if media.alt:
            fields["alt_text"] = media.alt
        return fields

    def _create_one(self, fields: Mapping[str, str], post: Post,
                    index: int | None) -> dict[str, Any]:
        # A container is invisible until published: a lost answer is harmless to repeat.
        try:
            return self.graph.post(f"{self.user_id}/media", data=fields)
        except PublishError as exc:
            if getattr(exc, "subcode", None) in (2207052, 2207003):
                raise self._fetch_error(exc, post, fields, index) from None
            raise

    def _fetch_error(self, exc: PublishError, post: Post, fields: Mapping[str, str],
                     index: int | None) -> PublishError:
        url = fields.get("image_url") or fields.get("video_url") or fields.get(
            "cover_url") or "?"
        if index is None:
            urls = [m.public_url for m in post.media]
            index = urls.index(url) if url in urls else 0
        cls = PlatformError if getattr(exc, "subcode", None) == 2207003 else ContentRejected
        return cls(_(
            "{channel}: Instagram could not fetch media[{index}] from {url} ({error}); the "
            "URL must answer with the file to anyone on the internet: check the media "
            "host's base_url and web server").format(
                channel=self.channel, index=index, url=url, error=_reason(exc)),
            channel=self.channel)

    def _status(self, container: str, *,
                unknown: type[PublishError] = PlatformError) -> tuple[str, str]:
        answer = self.graph.get(container, params={"fields": "status_code,status"},
                                unknown=unknown)
        return str(answer.get("status_code") or ""), str(answer.get("status") or "")

    def _wait(self, post: Post, container: str, status: str | None, progress: Any, *,
              index: int | None = None, child: bool = False) -> None:
        """Poll the container until ``FINISHED``, waiting longer each time (from
        ``poll_interval``, doubling, at most 30 s) and saving its status each time (which
        also renews the attempt's lease), for at most ``poll_timeout`` seconds."""
        waited = 0.0
        pause = self.poll_interval
        polls = 0
        while True:
            if status is None:
                status, text = self._status(container)
                polls += 1
            else:
                text = ""
            if status == FINISHED:
                return
            if status == PUBLISHED and not child:
                # Published meanwhile (another attempt): the caller's lookup decides.
                raise OutcomeUnknown(_(
                    "{channel}: the Instagram container {container} was published by another "
                    "attempt; the post is being looked up").format(
                        channel=self.channel, container=container), channel=self.channel)
            if status == ERROR:
                if child:
                    children = list(progress.get("children") or [])
                    progress.save(children=[None if c == container else c for c in children])
                else:
                    progress.save(container=None, container_status=ERROR)
                raise self._container_error(post, container, text, progress, index=index)
            if status == EXPIRED:
                if child:
                    children = list(progress.get("children") or [])
                    progress.save(children=[None if c == container else c for c in children])
                else:
                    progress.save(container=None, container_status=EXPIRED)
                raise ContainerExpired(_(
                    "{channel}: the Instagram container {container} expired before it was "
                    "ready; a new one is made on the next try").format(
                        channel=self.channel, container=container), channel=self.channel,
                    code=EXPIRED)
            if status != IN_PROGRESS:
                raise PlatformError(_(
                    "{channel}: the Instagram container {container} has the unknown status "
                    "{status!r}; it will be asked again").format(
                        channel=self.channel, container=container, status=status),
                    channel=self.channel, code=status or "no_status")
            if waited >= self.poll_timeout:
                raise PlatformError(_(
                    "{channel}: Instagram is still processing the container {container} "
                    "after {seconds:g} s; the next try goes on waiting for it").format(
                        channel=self.channel, container=container, seconds=waited),
                    channel=self.channel, code=IN_PROGRESS)
            progress.save(container_status=IN_PROGRESS, polls=polls)
            pause = min(pause, self.poll_timeout - waited, MAX_POLL_WAIT)
            self.sleep(pause)
            waited += pause
            pause = min(pause * 2, MAX_POLL_WAIT)
            status = None

    def _container_error(self, post: Post, container: str, text: str, progress: Any, *,
                         index: int | None = None) -> ContentRejected:
        subcode = _subcode(text)
        where = "" if index is None else f" (media[{index}])"
        if subcode in ("2207052", "2207003"):
            urls = [m.public_url for m in post.media]
            url = urls[index] if index is not None and index < len(urls) else ", ".join(urls)
            return ContentRejected(_(
                "{channel}: Instagram could not fetch the media{where} from {url} "
                "({status}); the URL must answer with the file to anyone on the internet: "
                "check the media host's base_url and web server, then post again").format(
                    channel=self.channel, where=where, url=url, status=text or ERROR),
                channel=self.channel)
        return ContentRejected(_(
            "{channel}: Instagram could not process the container {container}{where}: "
            "ERROR {status}; correct the media (see Instagram's error codes) and post "
            "again").format(channel=self.channel, container=container, where=where,
                            status=text or "(no status text)"), channel=self.channel)

    # -- the post on the platform ---------------------------------------------------------------

    def _receipt(self, media_id: str, *, unknown: type[PublishError],
                 failed: type[PublishError] = PlatformError) -> Receipt:
        """The receipt of a published media: its id and permalink."""
        try:
            answer = self.graph.get(media_id, params={"fields": "id,permalink"},
                                    unknown=unknown)
        except (PlatformError, RateLimited) as exc:
            if failed is PlatformError:
                raise
            raise failed(str(exc), channel=self.channel) from None
        return Receipt(media_id, str(answer.get("permalink") or _fallback_url(media_id)))

    def _published(self, post: Post, progress: Any) -> Receipt:
        """The media a ``PUBLISHED`` container became: found among the account's latest
        media (stories: its current stories) by caption and time, saved, and returned.
        Raises ``OutcomeUnknown`` when it cannot be told apart: a person confirms it."""
        kind = kind_of(post)
        edge = "stories" if kind == "story" else "media"
        try:
            answer = self.graph.get(f"{self.user_id}/{edge}", params={
                "fields": "id,caption,permalink,timestamp", "limit": str(LOOKUP_LIMIT)},
                unknown=OutcomeUnknown)
        except (PlatformError, RateLimited) as exc:
            raise OutcomeUnknown(str(exc), channel=self.channel) from None
        media = [m for m in answer.get("data", []) if isinstance(m, Mapping) and m.get("id")]
        created = _time(progress.get("container_created_at"))
        if kind != "story":
            media = [m for m in media if str(m.get("caption") or "") == post.text]
        if len(media) > 1 and created is not None:
            since = created - dt.timedelta(minutes=5)
            recent = [m for m in media if (_time(m.get("timestamp")) or since) >= since]
            media = recent or media
        if len(media) != 1:
            found = ", ".join(str(m.get("permalink") or m["id"]) for m in media) or _("none")
            raise OutcomeUnknown(_(
                "{channel}: the Instagram container {container} was published, but the post "
                "cannot be told apart among the account's latest media (matching: {found}); "
                "find it on the account and confirm it with humasflow confirm").format(
                    channel=self.channel, container=progress.get("container"), found=found),
                channel=self.channel)
        media_id = str(media[0]["id"])
        progress.save(media_id=media_id)
        return Receipt(media_id, str(media[0].get("permalink") or _fallback_url(media_id)))


def prepare_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The channel's settings with their defaults, checked (``Office.add_channel`` stores
    what this returns).

    Raises:
        ConfigurationError: An unknown setting, or a value it cannot take (the message
            says which and what to write).
    """
    check_settings(PUBLISHER, settings, SETTINGS)
    out = dict(settings)
    login = out.setdefault("login", "instagram")
    if login not in HOSTS:
        raise _setting("login", login, _("give \"instagram\" (Instagram Login, "
                                          "graph.instagram.com) or \"facebook\" (Facebook "
                                          "Login, graph.facebook.com)"))
    user_id = str(out.get("user_id") or ("me" if login == "instagram" else ""))
    if not user_id:
        raise _setting("user_id", "", _("with Facebook Login give the Instagram "
                                        "professional account's id (a number; see the "
                                        "README, 'Find the account id')"))
    if user_id != "me" and not user_id.isdigit():
        raise _setting("user_id", user_id, _("give the account's numeric id, not its "
                                             "username (the username goes in 'account')"))
    out["user_id"] = user_id
    out.setdefault("base_url", HOSTS[login])
    if not str(out["base_url"]).startswith(("https://", "http://")):
        raise _setting("base_url", out["base_url"], _("give an http(s) URL"))
    version = str(out.setdefault("api_version", API_VERSION))
    if not re.fullmatch(r"v\d+\.\d+", version):
        raise _setting("api_version", version, _("give a Graph API version such as "
                                                 "{version}").format(version=API_VERSION))
    for key, default, low in (("timeout", 10, 0.001), ("poll_interval", 2, 0.0),
                              ("poll_timeout", 300, 0.0)):
        value = out.setdefault(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
            raise _setting(key, value, _("give a number of seconds"))
    hashtags = out.setdefault("max_hashtags", 5)
    if isinstance(hashtags, bool) or not isinstance(hashtags, int) or not 0 <= hashtags <= 30:
        raise _setting("max_hashtags", hashtags, _("give a whole number from 0 to 30"))
    refresh = out.setdefault("refresh", "auto")
    if refresh not in ("auto", "off"):
        raise _setting("refresh", refresh, _("give \"auto\" or \"off\""))
    return out


def _setting(key: str, value: Any, what: str) -> ConfigurationError:
    return ConfigurationError(_("the instagram publisher's setting {key!r} is {value!r}; "
                                "{what}").format(key=key, value=value, what=what))


def _reason(exc: PublishError) -> str:
    return str(exc).split(": ", 1)[-1]


def _subcode(text: str) -> str:
    found = re.search(r"\b(22\d{5})\b", text)
    return found.group(1) if found else ""


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _time(value: Any) -> dt.datetime | None:
    """A Graph timestamp (``2026-01-05T02:00:00+0000``) or an ISO time, aware."""
    if not isinstance(value, str) or not value:
        return None
    for parse in (lambda v: dt.datetime.strptime(v, "%Y-%m-%dT%H:%M:%S%z"),
                  dt.datetime.fromisoformat):
        try:
            found = parse(value)
        except ValueError:
            continue
        return found if found.tzinfo else found.replace(tzinfo=dt.timezone.utc)
    return None


def _fallback_url(media_id: str) -> str:
    # Instagram answers a permalink for every published media; this is only for an
    # answer without one, so that the record still points somewhere.
    return f"https://www.instagram.com/?media_id={media_id}"


@hookimpl
def register_publishers(register: Callable[..., None]) -> None:
    """Register the publisher under its name, :data:`PUBLISHER`."""
    register(PUBLISHER, InstagramPublisher)
