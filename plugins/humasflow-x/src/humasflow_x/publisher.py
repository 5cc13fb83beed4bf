"""The X publisher: validate, publish (a post or a thread), reconcile, check.

A post is one call to ``POST /2/tweets`` (``tweepy.Client.create_tweet``) after its
media are uploaded; a thread is one such call per part, each replying to the one
before. Every call that makes something public is guarded the same way::

    progress.save(sending={"part": i, "at": now})   # before the call
    create_tweet(...)                               # the only public call
    progress.save(parts=[..., new id], sending=None)  # before anything else

so an attempt that stopped anywhere resumes from the last recorded part, and one that
stopped between the two saves looks part ``i`` up among the account's recent posts
before it sends it again. X keeps no client reference, so the look-up matches the exact
text, the number of media and the post it replies to, within the attempt's time.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import requests
import tweepy
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
    Receipt,
    unknown_options,
)
from humasflow.publishing.contract import check_settings
from humasflow.publishing.media import check_media
from humasflow.scrubbing import get_logger
from twitter_text import extract_urls

from humasflow_x import text as texts
from humasflow_x._i18n import _
from humasflow_x.auth import Credentials
from humasflow_x.media import Uploader
from humasflow_x.wire import PLACEHOLDER, Duplicate, Wire, raise_for_status, translate

__all__ = ["OPTIONS", "SETTINGS", "Account", "Part", "XPublisher"]

log = get_logger("humasflow_x")

#: The per-post options (a channel variant's ``options``).
OPTIONS = ("poll", "reply_to", "thread")
#: The channel settings this publisher takes.
SETTINGS = ("api_url", "chunk_size", "links", "processing_max_wait", "thread",
            "thread_max_parts", "timeout", "upload_timeout", "video_max_bytes",
            "video_max_seconds")

MB = 1024 * 1024
IMAGE_MAX_BYTES = 5 * MB
GIF_MAX_BYTES = 15 * MB
VIDEO_MAX_BYTES = 512 * MB
VIDEO_MIN_SECONDS = 0.5
VIDEO_MAX_SECONDS = 140.0
MAX_IMAGES = 4
ALT_MAX = 1000
POLL_OPTIONS = (2, 4)
POLL_OPTION_MAX = 25
POLL_MINUTES = (5, 10080)
FORMATS = {"image": (".jpg", ".jpeg", ".png", ".webp"), "gif": (".gif",),
           "video": (".mp4", ".mov", ".m4v")}
#: How far before a part's "sending" mark a look-up searches (clocks differ a little).
LOOKUP_SLACK = dt.timedelta(minutes=2)
#: How often one media request is sent before its transient failure is the attempt's.
UPLOAD_TRIES = 3
#: Media ids live ``expires_after_secs``; one this close to it is uploaded again.
MEDIA_SLACK = dt.timedelta(minutes=10)

_STATUS_URL = re.compile(r"^https?://(?:www\.|mobile\.)?(?:x|twitter)\.com/[^/]+/status/(\d+)")


@attrs.frozen
class Part:
    """One post of what the publisher sends: its text, and whether it carries the
    post's media and its poll."""

    text: str
    media: bool = False
    poll: bool = False


@attrs.frozen
class Account:
    """Whom the channel posts as: X's user id and @username, and the auth kind."""

    user_id: str
    username: str
    name: str
    auth: str


def prepare_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Check the channel's settings when the channel is added.

    Raises:
        ConfigurationError: An unknown setting, or a value of the wrong kind.
    """
    check_settings("x", settings, SETTINGS)
    prepared = dict(settings)
    for key in ("timeout", "upload_timeout", "processing_max_wait", "video_max_seconds"):
        if key in prepared:
            prepared[key] = _number(key, prepared[key])
    for key in ("chunk_size", "thread_max_parts", "video_max_bytes"):
        if key in prepared:
            prepared[key] = int(_number(key, prepared[key]))
    if "thread" in prepared and not isinstance(prepared["thread"], bool):
        raise ConfigurationError(_("the X setting thread is {value!r}; give true or false")
                                 .format(value=prepared["thread"]))
    if prepared.get("links", "warn") not in ("warn", "refuse", "allow"):
        raise ConfigurationError(_("the X setting links is {value!r}; give \"warn\", "
                                   "\"refuse\" or \"allow\"").format(value=prepared["links"]))
    return prepared


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigurationError(_("the X setting {key} is {value!r}; give a positive "
                                   "number").format(key=key, value=value))
    return float(value)


class XPublisher:
    """Posts to one X account: text, up to 4 images or a GIF or a video (each with alt
    text), a poll, a reply, or a numbered thread."""

    prepare_settings = staticmethod(prepare_settings)

    def __init__(self, channel: ChannelConfig, context: PublisherContext) -> None:
        settings = channel.settings
        self.channel = channel.name
        self.context = context
        self.timeout = float(settings.get("timeout", 10))
        self.upload_timeout = float(settings.get("upload_timeout", 60))
        self.api_url = str(settings.get("api_url", "") or "")
        self.thread = bool(settings.get("thread", False))
        self.thread_max_parts = int(settings.get("thread_max_parts", 25))
        self.links = str(settings.get("links", "warn"))
        self.video_max_bytes = int(settings.get("video_max_bytes", VIDEO_MAX_BYTES))
        self.video_max_seconds = float(settings.get("video_max_seconds", VIDEO_MAX_SECONDS))
        self.chunk_size = int(settings.get("chunk_size", 4 * MB))
        self.processing_max_wait = float(settings.get("processing_max_wait", 600))
        #: Waits between media status polls (tests replace it).
        self.sleep: Callable[[float], None] = time.sleep
        #: Told of each upload step (``{"media", "state", "sent", "total", "percent"}``).
        self.on_upload: Callable[[dict[str, Any]], None] | None = None
        #: Non-blocking remarks from the last :meth:`validate` (a URL's cost).
        self.notices: list[Problem] = []
        self._credentials = Credentials(context, required=False)
        self._media = context.media
        self._refreshed = False
        self._wire = Wire(context.session, None, self.timeout, self.api_url)
        self._client = tweepy.Client(bearer_token=PLACEHOLDER, return_type=dict)
        self._client.session = self._wire

    def __repr__(self) -> str:
        return (f"<XPublisher channel={self.channel!r} auth={self._credentials.kind} "
                f"thread={self.thread}>")

    # -- validate ---------------------------------------------------------------------------

    def validate(self, post: Post) -> list[Problem]:
        """Check the post against X's rules, without any network call."""
        problems = unknown_options(post, OPTIONS)
        self.notices = []
        full = self.full_text(post)
        options = post.options
        thread = self._thread_on(post)
        if not isinstance(options.get("thread", False), bool):
            problems.append(self._problem("options.thread", "option_value", _(
                "the option thread is {value!r}; give true or false").format(
                    value=options.get("thread"))))
        if not full.strip() and not post.media:
            problems.append(self._problem("text", "required", _("the post has no text and "
                                                                 "no media")))
        length = texts.weighted_length(full)
        if texts.has_invalid_characters(full):
            problems.append(self._problem("text", "characters", _(
                "the text holds a character X refuses (U+FFFE, U+FEFF, U+FFFF or a "
                "directional formatting character U+202A–U+202E); remove it")))
        elif length > texts.MAX_WEIGHTED_LENGTH:
            if thread:
                try:
                    texts.split_thread(full, max_parts=self.thread_max_parts)
                except texts.ThreadSplitError as exc:
                    problems.append(self._problem("text", "thread_split", _(
                        "the text cannot be split into a thread: {reason}").format(
                            reason=_thread_reason(exc, self.thread_max_parts)),
                        actual=exc.parts or exc.word))
            else:
                problems.append(self._problem("text", "max_length", _(
                    "the text has {length} weighted characters (URLs count 23, emoji and "
                    "CJK characters 2); X takes {limit}: shorten it, or set the option "
                    "thread = true to post it as a numbered thread").format(
                        length=length, limit=texts.MAX_WEIGHTED_LENGTH),
                    limit=texts.MAX_WEIGHTED_LENGTH, actual=length))
        if extract_urls(full):
            remark = self._problem("text", "links", _(
                "the post carries a URL: on X's pay-per-use plans a post with a URL costs "
                "far more than one without"))
            if self.links == "refuse":
                problems.append(attrs.evolve(remark, message=remark.message + _(
                    "; this channel refuses them (setting links = \"refuse\")")))
            elif self.links == "warn":
                self.notices.append(remark)
                log.warning("%s", remark)
        problems.extend(self._media_problems(post))
        problems.extend(self._poll_problems(post, thread))
        if "reply_to" in options and _reply_id(options["reply_to"]) is None:
            problems.append(self._problem("options.reply_to", "reply_to", _(
                "reply_to is {value!r}; give the id of an X post (digits) or its URL "
                "(https://x.com/<user>/status/<id>)").format(value=options["reply_to"])))
        return problems

    def _problem(self, field: str, rule: str, message: str, *, limit: Any = None,
                 actual: Any = None) -> Problem:
        return Problem(self.channel, field, rule, message, limit=limit, actual=actual)

    def _media_problems(self, post: Post) -> list[Problem]:
        problems = check_media(post, self.channel, formats=FORMATS, max_bytes={
            "image": IMAGE_MAX_BYTES, "gif": GIF_MAX_BYTES, "video": self.video_max_bytes})
        kinds = [m.media_kind for m in post.media]
        for i, media in enumerate(post.media):
            field = f"media[{i}]"
            if media.passthrough or (media.is_url and not media.is_stored):
                problems.append(self._problem(field, "media_stored", _(
                    "{source!r} is a URL handed over as it is; X takes the file itself, so "
                    "it must be in the media store (leave out the channel's media_urls = "
                    "\"pass\")").format(source=media.source), actual=media.source))
            if len(media.alt) > ALT_MAX:
                problems.append(self._problem(field, "alt_length", _(
                    "the alt text has {length} characters; X takes {limit}").format(
                        length=len(media.alt), limit=ALT_MAX), limit=ALT_MAX,
                    actual=len(media.alt)))
            if media.media_kind == "video" and media.duration is not None and not (
                    VIDEO_MIN_SECONDS <= media.duration <= self.video_max_seconds):
                problems.append(self._problem(field, "duration", _(
                    "the video lasts {seconds:.1f} s; X takes {low}–{high:.0f} s here (set "
                    "video_max_seconds for an account allowed longer videos)").format(
                        seconds=media.duration, low=VIDEO_MIN_SECONDS,
                        high=self.video_max_seconds),
                    limit=(VIDEO_MIN_SECONDS, self.video_max_seconds),
                    actual=media.duration))
        if len(kinds) > 1 and ("gif" in kinds or "video" in kinds):
            problems.append(self._problem("media", "combination", _(
                "{count} media with a GIF or a video; an X post carries up to 4 images, or "
                "1 GIF, or 1 video").format(count=len(kinds)), actual=tuple(kinds)))
        elif len(kinds) > MAX_IMAGES:
            problems.append(self._problem("media", "max_count", _(
                "{count} images; an X post carries at most {limit}").format(
                    count=len(kinds), limit=MAX_IMAGES), limit=MAX_IMAGES,
                actual=len(kinds)))
        return problems

    def _poll_problems(self, post: Post, thread: bool) -> list[Problem]:
        poll = post.options.get("poll")
        if poll is None:
            return []
        field = "options.poll"
        if not isinstance(poll, Mapping):
            return [self._problem(field, "poll", _(
                "the poll is {value!r}; give a table with options (2–4 texts) and "
                "duration_minutes").format(value=poll))]
        problems = []
        unknown = sorted(set(poll) - {"options", "duration_minutes"})
        if unknown:
            problems.append(self._problem(field, "poll", _(
                "the poll takes no {names}; it takes options and duration_minutes").format(
                    names=", ".join(unknown))))
        choices = poll.get("options")
        low, high = POLL_OPTIONS
        if (not isinstance(choices, Sequence) or isinstance(choices, str)
                or not low <= len(choices) <= high):
            problems.append(self._problem(f"{field}.options", "poll_options", _(
                "a poll has 2 to 4 options; give them as a list of texts")))
        else:
            for n, choice in enumerate(choices):
                if not isinstance(choice, str) or not 1 <= len(choice) <= POLL_OPTION_MAX:
                    problems.append(self._problem(f"{field}.options[{n}]", "poll_option", _(
                        "poll option {n} is {value!r}; each option is a text of 1 to 25 "
                        "characters").format(n=n + 1, value=choice),
                        limit=POLL_OPTION_MAX))
        minutes = poll.get("duration_minutes")
        low, high = POLL_MINUTES
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not (
                low <= minutes <= high):
            problems.append(self._problem(f"{field}.duration_minutes", "poll_duration", _(
                "the poll's duration_minutes is {value!r}; give whole minutes from 5 to "
                "10080 (7 days)").format(value=minutes), limit=POLL_MINUTES, actual=minutes))
        if post.media and len(self._plan_or_one(post, thread)) == 1:
            problems.append(self._problem(field, "poll_with_media", _(
                "an X post carries a poll or media, not both; in a thread the poll goes on "
                "the last part and the media on the first")))
        return problems

    def _plan_or_one(self, post: Post, thread: bool) -> list[Part]:
        try:
            return self.plan(post)
        except texts.ThreadSplitError:
            return [Part(self.full_text(post), media=True, poll=True)]

    # -- what is sent -----------------------------------------------------------------------

    @staticmethod
    def full_text(post: Post) -> str:
        """The post's text, with its link at the end if the text does not carry it."""
        text = post.text.strip()
        if post.link and post.link not in text:
            text = f"{text}\n{post.link}" if text else post.link
        return text

    def _thread_on(self, post: Post) -> bool:
        value = post.options.get("thread", self.thread)
        return value if isinstance(value, bool) else self.thread

    def plan(self, post: Post) -> list[Part]:
        """The posts to make: one, or the parts of a thread (media on the first part,
        the poll on the last)."""
        full = self.full_text(post)
        if self._thread_on(post) and texts.weighted_length(full) > texts.MAX_WEIGHTED_LENGTH:
            chunks = texts.split_thread(full, max_parts=self.thread_max_parts)
        else:
            chunks = [full]
        last = len(chunks) - 1
        return [Part(chunk, media=i == 0 and bool(post.media), poll=i == last and
                     "poll" in post.options) for i, chunk in enumerate(chunks)]

    # -- publish ----------------------------------------------------------------------------

    def publish(self, post: Post, progress: Any) -> Receipt:
        """Post it (every part of a thread), resuming from what ``progress`` recorded."""
        problems = self.validate(post)
        if problems:
            raise ContentRejected(_("{channel}: the post breaks X's rules: {problems}")
                                  .format(channel=self.channel,
                                          problems="; ".join(str(p) for p in problems)),
                                  channel=self.channel)
        plan = self.plan(post)
        account = self._account(progress)
        parts: list[str] = list(progress.get("parts") or [])
        reply_to = _reply_id(post.options.get("reply_to")) if "reply_to" in post.options \
            else None
        for index in range(len(parts), len(plan)):
            part = plan[index]
            target = parts[-1] if parts else reply_to
            media_count = len(post.media) if part.media else 0
            sending = progress.get("sending")
            if isinstance(sending, Mapping) and sending.get("part") == index:
                found = self._find(account, part, media_count, target, sending,
                                   unknown=PlatformError)
                if found is not None:
                    parts.append(found)
                    progress.save(parts=parts, sending=None)
                    continue
                if index in (progress.get("duplicates") or ()):
                    raise ContentRejected(_(
                        "{channel}: X refuses part {n} as a duplicate of an earlier post of "
                        "the account, and it is not among this attempt's posts; change the "
                        "text").format(channel=self.channel, n=index + 1),
                        channel=self.channel)
            media_ids = self._upload(post, progress) if part.media else []
            progress.save(sending={"part": index, "at": self._now().isoformat()})
            parts.append(self._create(post, part, index, len(plan), media_ids, target,
                                      progress))
            progress.save(parts=parts, sending=None)
        return self._receipt(account, parts)

    def _create(self, post: Post, part: Part, index: int, total: int, media_ids: list[str],
                target: str | None, progress: Any) -> str:
        what = _("creating the post") if total == 1 else _(
            "creating part {n} of {total} of the thread").format(n=index + 1, total=total)
        poll = post.options.get("poll") if part.poll else None
        try:
            answer = self._call(what, lambda: self._client.create_tweet(
                text=part.text or None, media_ids=media_ids or None,
                poll_options=list(poll["options"]) if poll else None,
                poll_duration_minutes=int(poll["duration_minutes"]) if poll else None,
                in_reply_to_tweet_id=target, user_auth=False), unknown=OutcomeUnknown)
        except Duplicate:
            duplicates = sorted({*(progress.get("duplicates") or ()), index})
            progress.save(duplicates=duplicates)
            raise OutcomeUnknown(_(
                "{channel}: X refused {what} as duplicate content: an earlier attempt may "
                "have posted it; it is looked up before anything is sent again").format(
                    channel=self.channel, what=what), channel=self.channel) from None
        try:
            return str(answer["data"]["id"])
        except (KeyError, TypeError):
            raise OutcomeUnknown(_("{channel}: X answered {what} without a post id; the "
                                   "post may be on X").format(channel=self.channel,
                                                              what=what),
                                 channel=self.channel) from None

    def _upload(self, post: Post, progress: Any) -> list[str]:
        """Upload the post's media (those not uploaded yet) and set their alt texts."""
        if self._media is None:
            raise ContentRejected(_("{channel}: the office has no media store; X takes the "
                                    "media's bytes from it").format(channel=self.channel),
                                  channel=self.channel)
        done: list[dict[str, Any]] = [dict(m) for m in progress.get("media") or ()]
        now = self._now()
        uploader = self._uploader(progress)
        for index, media in enumerate(post.media):
            entry = done[index] if index < len(done) else None
            if entry is not None and (entry.get("sha256") != media.sha256
                                      or _expired(entry, now)):
                entry = None
            if entry is None:
                data = uploader.upload(index, media, self._opener(media))
                expires = now + dt.timedelta(seconds=int(data.get("expires_after_secs")
                                                         or 86400))
                entry = {"id": str(data["id"]), "sha256": media.sha256,
                         "expires_at": expires.isoformat(), "alt": False}
                done[index:index + 1] = [entry]
                progress.save(media=done)
            if media.alt and not entry.get("alt"):
                uploader.describe(index, entry["id"], media.alt)
                entry["alt"] = True
                progress.save(media=done)
        return [str(m["id"]) for m in done[:len(post.media)]]

    def _opener(self, media: Any) -> Callable[[], Any]:
        """Opens the media's bytes in the media store (their hash checked first)."""
        return lambda: self._media.open(media)

    def _uploader(self, progress: Any) -> Uploader:
        def report(event: dict[str, Any]) -> None:
            log.info("channel %r: media %s %s", self.channel, event.get("media", 0) + 1,
                     event.get("state"))
            if self.on_upload is not None:
                self.on_upload(event)

        return Uploader(self._wire, self._send, sleep=self.sleep, chunk_size=self.chunk_size,
                        max_wait=self.processing_max_wait, on_progress=report,
                        channel=self.channel, timeout=self.upload_timeout)

    def _send(self, what: str, send: Callable[[], requests.Response]) -> requests.Response:
        """One media request. Uploads create nothing public, so a transient failure (a
        5xx, no answer) is tried again at once, up to :data:`UPLOAD_TRIES` times."""
        def checked() -> requests.Response:
            response = send()
            raise_for_status(response)
            return response
        for attempt in range(1, UPLOAD_TRIES + 1):
            try:
                result: requests.Response = self._call(what, checked, unknown=PlatformError)
                return result
            except PlatformError:
                if attempt == UPLOAD_TRIES:
                    raise
                self.sleep(float(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    # -- reconcile ----------------------------------------------------------------------------

    def reconcile(self, post: Post, progress: Any) -> Receipt | None:
        """After an unknown outcome: the receipt if every part is on X, ``None`` if the
        rest can be sent (the recorded parts stay; the part being sent was looked up and
        is not there); raises ``OutcomeUnknown`` if X cannot be asked."""
        try:
            return self._reconcile(post, progress)
        except OutcomeUnknown:
            raise
        except PublishError as exc:
            raise OutcomeUnknown(_("{error}; whether the post is on X is not known yet")
                                 .format(error=exc), channel=self.channel) from None

    def _reconcile(self, post: Post, progress: Any) -> Receipt | None:
        plan = self.plan(post)
        account = self._account(progress, unknown=OutcomeUnknown, save=False)
        parts: list[str] = list(progress.get("parts") or [])
        sending = progress.get("sending")
        if len(parts) >= len(plan):
            return self._receipt(account, parts)
        if not isinstance(sending, Mapping):
            return None  # nothing was being sent: the next attempt goes on from the parts
        reply_to = _reply_id(post.options.get("reply_to")) if "reply_to" in post.options \
            else None
        index = len(parts)
        found = self._find(account, plan[index], len(post.media) if plan[index].media else 0,
                           parts[-1] if parts else reply_to, sending, unknown=OutcomeUnknown)
        if found is None:
            return None
        parts.append(found)
        # Parts after it were never sent: the mark is set before each send.
        if len(parts) == len(plan):
            return self._receipt(account, parts)
        return None

    def _find(self, account: Account, part: Part, media_count: int, target: str | None,
              sending: Mapping[str, Any], *, unknown: type[PublishError]) -> str | None:
        """The id of ``part`` among the account's posts since it was being sent."""
        since = _time(sending.get("at")) or self._now()
        start = since - LOOKUP_SLACK
        for tweet in self._recent(account, start, unknown=unknown):
            if _matches(tweet, part.text, media_count, target):
                return str(tweet["id"])
        return None

    def _recent(self, account: Account, start: dt.datetime, *,
                unknown: type[PublishError]) -> Iterator[Mapping[str, Any]]:
        token: str | None = None
        for _page in range(5):
            def page(token: str | None = token) -> Any:
                return self._client.get_users_tweets(
                    account.user_id, start_time=start, max_results=100,
                    pagination_token=token, user_auth=False,
                    tweet_fields=["created_at", "attachments", "referenced_tweets",
                                  "entities"],
                    expansions=["attachments.media_keys"])
            answer = self._call(_("looking the post up"), page, unknown=unknown)
            yield from answer.get("data") or ()
            token = (answer.get("meta") or {}).get("next_token")
            if not token:
                return

    # -- check ------------------------------------------------------------------------------

    def check(self) -> str:
        """Ask X whose credentials these are (``GET /2/users/me``), posting nothing.

        Returns:
            A one-line summary, the account and the auth kind (``humasflow channels
            check`` prints it).
        """
        account = self.account()
        log.info("channel %r posts as @%s (%s)", self.channel, account.username,
                 account.auth)
        return _("posts as @{username} ({auth})").format(username=account.username,
                                                         auth=account.auth)

    def account(self) -> Account:
        """The account the channel posts as, and the auth kind (asks X)."""
        return self._me(unknown=PlatformError)

    # -- helpers ------------------------------------------------------------------------------

    def _account(self, progress: Any, *, unknown: type[PublishError] = PlatformError,
                 save: bool = True) -> Account:
        known = progress.get("user")
        if isinstance(known, Mapping) and known.get("id"):
            return Account(str(known["id"]), str(known.get("username", "")),
                           str(known.get("name", "")), self._credentials.label)
        account = self._me(unknown=unknown)
        if save:
            progress.save(user={"id": account.user_id, "username": account.username,
                                "name": account.name})
        return account

    def _me(self, *, unknown: type[PublishError]) -> Account:
        answer = self._call(_("asking X which account the credentials are for"),
                            lambda: self._client.get_me(user_auth=False), unknown=unknown)
        data = answer.get("data") or {}
        if not data.get("id"):
            raise PlatformError(_("{channel}: X answered GET /2/users/me without a user")
                                .format(channel=self.channel), channel=self.channel)
        return Account(str(data["id"]), str(data.get("username", "")),
                       str(data.get("name", "")), self._credentials.label)

    def _receipt(self, account: Account, parts: Sequence[str]) -> Receipt:
        return Receipt(",".join(parts), status_url(account.username, parts[0]))

    def _prepare(self) -> None:
        """Check the credentials are there, refresh an expiring OAuth 2.0 token, and sign
        the wire with them (once per publisher)."""
        if self._wire._auth is not None:
            return
        Credentials(self.context)  # raises ConfigurationError for a missing credential
        self._wire.set_auth(self._credentials.auth())
        self._credentials.ensure_fresh(self._wire, self._now())
        self._wire.set_auth(self._credentials.auth())

    def _call(self, what: str, send: Callable[[], Any], *,
              unknown: type[PublishError]) -> Any:
        """One request to X, its failure translated; a refused OAuth 2.0 token is
        refreshed once (a 401 means X did nothing, so the request is sent again)."""
        self._prepare()
        try:
            return self._translated(what, send, unknown)
        except AuthenticationFailed:
            if self._refreshed or not self._credentials.can_refresh:
                raise
            self._refreshed = True
            self._credentials.refresh(self._wire, self._now())
            return self._translated(what, send, unknown)

    def _translated(self, what: str, send: Callable[[], Any],
                    unknown: type[PublishError]) -> Any:
        try:
            return send()
        except (requests.RequestException, tweepy.HTTPException) as exc:
            raise translate(exc, channel=self.channel, what=what,
                            auth_kind=self._credentials.kind, now=self._now(),
                            unknown=unknown) from None

    def _now(self) -> dt.datetime:
        return self.context.clock()


def status_url(username: str, post_id: str) -> str:
    """The public URL of a post: ``https://x.com/<username>/status/<id>``."""
    return f"https://x.com/{username or 'i'}/status/{post_id}"


def _reply_id(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if not isinstance(value, str):
        return None
    text = str(value).strip()
    if text.isdigit():
        return text
    found = _STATUS_URL.match(text)
    return str(found.group(1)) if found else None


def _thread_reason(exc: texts.ThreadSplitError, max_parts: int) -> str:
    if exc.word:
        return _("{word!r} is longer than one post, and a URL, hashtag or mention is never "
                 "cut").format(word=exc.word[:40])
    return _("it needs {parts} posts; a thread here has at most {limit} (setting "
             "thread_max_parts)").format(parts=exc.parts, limit=max_parts)


def _time(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None


def _expired(entry: Mapping[str, Any], now: dt.datetime) -> bool:
    expires = _time(entry.get("expires_at"))
    return expires is None or now >= expires - MEDIA_SLACK


_URL_OR_SPACE = re.compile(r"\s+")


def normalised(text: str) -> str:
    """A post's text as compared in a look-up: X shortens every URL to a t.co link,
    adds one for attached media, escapes ``& < >`` and trims white space."""
    text = html.unescape(text)
    for url in sorted(set(extract_urls(text)), key=len, reverse=True):
        text = text.replace(url, "\x00")
    return _URL_OR_SPACE.sub(" ", text).strip()


def _matches(tweet: Mapping[str, Any], text: str, media_count: int,
             target: str | None) -> bool:
    """Whether an X post is the part: its text, media count and reply target."""
    ours, theirs = normalised(text), normalised(str(tweet.get("text", "")))
    keys = (tweet.get("attachments") or {}).get("media_keys") or ()
    if media_count and theirs.endswith("\x00"):
        theirs = theirs[:-1].rstrip()  # the link X adds for the media
    replied = next((str(r.get("id")) for r in tweet.get("referenced_tweets") or ()
                    if r.get("type") == "replied_to"), None)
    return ours == theirs and len(keys) == media_count and replied == target
