"""The data humasflow works on: attrs classes without I/O.

Items are read from the store as snapshots; every change goes through
:class:`~humasflow.office.Office`, which records it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = [
    "ADMIN_ROLE",
    "Actor",
    "ChannelConfig",
    "ContentItem",
    "Event",
    "Media",
    "PostContent",
    "Publication",
    "Variant",
]


#: The built-in administrator role. It is part of no SOP: administrators add and change
#: actors and their roles, channels and SOP revisions.
ADMIN_ROLE = "admin"


def _frozenset(value: Any) -> frozenset[str]:
    return frozenset(value)


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value)


@attrs.frozen
class Media:
    """A media file of a post, as stored in the media store, with its alt text.

    Media enter an item through the office, which copies their bytes into the media
    store (:mod:`humasflow.mediastore`) and fills in what the bytes are. Approvals and
    rechecks bind :attr:`sha256`, never :attr:`source`.

    Attributes:
        source: The file path or ``http(s)://`` URL it was attached from (for display).
        alt: The alternative text read by screen readers.
        kind: ``"image"``, ``"video"`` or ``"gif"``, sniffed from the bytes.
        url: A public URL of the stored bytes, filled in by a media host when posting.
        sha256: The SHA-256 of the bytes in the media store (hex); empty if not stored.
        size: The number of bytes.
        mime: The type sniffed from the bytes (``image/png``, ``video/mp4``…).
        width: The width in pixels, where it could be read.
        height: The height in pixels, where it could be read.
        duration: A video's duration in seconds, where it could be read.
        passthrough: The URL is handed to the platforms as it is, not fetched and stored
            (a channel setting asks for it); the approval covers the URL, not bytes.
        missing: Recorded by path before the media store existed, and the file was gone
            when the store was migrated: it cannot be posted.
    """

    source: str
    alt: str = ""
    kind: str = ""
    url: str = ""
    sha256: str = ""
    size: int | None = None
    mime: str = ""
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    passthrough: bool = False
    missing: bool = False

    @property
    def is_url(self) -> bool:
        """Whether the media were attached from a URL."""
        return self.source.startswith(("http://", "https://"))

    @property
    def is_stored(self) -> bool:
        """Whether the bytes are in the media store."""
        return bool(self.sha256)

    @property
    def public_url(self) -> str:
        """The URL a platform can fetch the media from, or ``""``.

        A media host's URL of the stored bytes, or a pass-through URL. A URL the media
        were fetched from is not used again: its bytes may have changed since.
        """
        return self.url or (self.source if self.passthrough else "")

    @property
    def media_kind(self) -> str:
        """``kind``, or a guess from the name for media not stored: image, gif or video."""
        if self.kind:
            return self.kind
        name = self.source.lower().split("?")[0]
        if name.endswith(".gif"):
            return "gif"
        if name.endswith((".mp4", ".mov", ".m4v", ".webm")):
            return "video"
        return "image"

    def binding(self) -> dict[str, Any]:
        """What an approval or a recheck binds of the media: the bytes' hash, not a path."""
        if self.passthrough:
            return {"url": self.source, "passthrough": True, "alt": self.alt}
        if self.sha256:
            return {"sha256": self.sha256, "alt": self.alt}
        return {"source": self.source, "alt": self.alt, "stored": False}

    def to_dict(self) -> dict[str, Any]:
        """Return the media as plain data."""
        data: dict[str, Any] = {"source": self.source, "alt": self.alt, "kind": self.kind}
        if self.url:
            data["url"] = self.url
        if self.sha256:
            data.update(sha256=self.sha256, size=self.size, mime=self.mime)
            for key in ("width", "height", "duration"):
                if getattr(self, key) is not None:
                    data[key] = getattr(self, key)
        if self.passthrough:
            data["passthrough"] = True
        if self.missing:
            data["missing"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Media:
        """Build media from :meth:`to_dict` data."""
        return cls(source=data["source"], alt=data.get("alt", ""), kind=data.get("kind", ""),
                   url=data.get("url", ""), sha256=data.get("sha256", ""),
                   size=data.get("size"), mime=data.get("mime", ""),
                   width=data.get("width"), height=data.get("height"),
                   duration=data.get("duration"),
                   passthrough=bool(data.get("passthrough", False)),
                   missing=bool(data.get("missing", False)))


def media_tuple(value: Any) -> tuple[Media, ...]:
    """One media or several, each a :class:`Media`, a path/URL or a ``to_dict`` mapping."""
    if type(value) is tuple and all(type(m) is Media for m in value):
        return value  # already media (every copy of an item passes its media here)
    if isinstance(value, (str, Media)):
        value = [value]
    return tuple(m if isinstance(m, Media) else Media.from_dict(m) if isinstance(m, Mapping)
                 else Media(str(m)) for m in value)


def _positions(value: Any) -> tuple[int, ...] | None:
    return None if value is None else tuple(value)


#: The keys a variant given as a mapping may have.
VARIANT_KEYS = frozenset({"text", "media", "options"})


@attrs.frozen
class Variant:
    """What one channel gets instead of the common post: its text, its choice of the
    item's media, and options for its publisher.

    The coordinator approves the variants with the concept (they are part of
    :attr:`PostContent.digest`), and each channel's publisher validates its own variant
    before approval and again before posting.

    Attributes:
        text: The text for this channel; ``None`` keeps the post's text.
        media: Positions (from 0) of the item's media to attach on this channel, in
            this order; ``None`` attaches them all, ``()`` none. The positions are the
            same for the design and the produced media.
        options: Publisher options, e.g. ``{"thread": True}`` or ``{"poll": {...}}`` on
            X, ``{"kind": "reel", "share_to_feed": True}`` on Instagram; what each
            publisher takes is in its documentation, and it refuses what it does not know.
    """

    text: str | None = None
    media: tuple[int, ...] | None = attrs.field(default=None, converter=_positions)
    options: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def of(cls, value: Any) -> Variant:
        """A variant from its text, a mapping with ``text``/``media``/``options``, or a
        variant.

        Raises:
            TypeError: The value has another shape.
        """
        if isinstance(value, Variant):
            return value
        if isinstance(value, str):
            return cls(text=value)
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - VARIANT_KEYS)
            if unknown:
                raise TypeError(f"a variant takes {', '.join(sorted(VARIANT_KEYS))}; "
                                f"not {unknown[0]!r}")
            return cls(text=value.get("text"), media=value.get("media"),
                       options=dict(value.get("options") or {}))
        raise TypeError(f"a variant is a text or a mapping with "
                        f"{', '.join(sorted(VARIANT_KEYS))}, not {type(value).__name__}")

    def to_data(self) -> str | dict[str, Any]:
        """Plain data: just the text when that is all the variant changes."""
        if self.media is None and not self.options and self.text is not None:
            return self.text
        data: dict[str, Any] = {}
        if self.text is not None:
            data["text"] = self.text
        if self.media is not None:
            data["media"] = list(self.media)
        if self.options:
            data["options"] = dict(self.options)
        return data


def _variants(value: Any) -> dict[str, Variant]:
    return {str(name): Variant.of(v) for name, v in dict(value or {}).items()}


@attrs.frozen
class PostContent:
    """What will be posted.

    Attributes:
        text: The post text (the concept, once settled).
        media: The design media approved with the concept.
        link: An optional link to share.
        variants: Per-channel :class:`Variant` (its text, media choice and publisher
            options); a plain text is a variant that only replaces ``text``.
        channels: The names of the target channels.
    """

    text: str = ""
    media: tuple[Media, ...] = attrs.field(default=(), converter=media_tuple)
    link: str = ""
    variants: Mapping[str, Variant] = attrs.field(factory=dict, converter=_variants)
    channels: tuple[str, ...] = attrs.field(default=(), converter=_tuple)

    def text_for(self, channel: str) -> str:
        """Return the text to post on ``channel``."""
        variant = self.variants.get(channel)
        return self.text if variant is None or variant.text is None else variant.text

    def media_for(self, channel: str, media: tuple[Media, ...]) -> tuple[Media, ...]:
        """Return the media of ``media`` (the design or the produced media) that
        ``channel`` attaches; positions out of range are left out (validation reports
        them)."""
        variant = self.variants.get(channel)
        if variant is None or variant.media is None:
            return media
        return tuple(media[i] for i in variant.media if 0 <= i < len(media))

    def options_for(self, channel: str) -> Mapping[str, Any]:
        """Return the publisher options of ``channel``'s variant."""
        variant = self.variants.get(channel)
        return {} if variant is None else dict(variant.options)

    def to_dict(self) -> dict[str, Any]:
        """Return the post as plain (JSON-able) data."""
        return {
            "text": self.text,
            "media": [m.to_dict() for m in self.media],
            "link": self.link,
            "variants": {name: v.to_data() for name, v in sorted(self.variants.items())},
            "channels": list(self.channels),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PostContent:
        """Build a post from :meth:`to_dict` data."""
        return cls(
            text=data.get("text", ""),
            media=tuple(Media.from_dict(m) for m in data.get("media", ())),
            link=data.get("link", ""),
            variants=dict(data.get("variants", {})),
            channels=tuple(data.get("channels", ())),
        )

    @property
    def digest(self) -> str:
        """A SHA-256 of everything the coordinator approves.

        It covers the text, the link, the per-channel variants, the channels and the
        design media by the hashes of their bytes (:meth:`Media.binding`), not their
        paths: the same bytes attached from another path keep the approval, other bytes
        under the same name do not.
        """
        return _digest({
            "text": self.text, "link": self.link,
            "variants": {name: v.to_data() for name, v in sorted(self.variants.items())},
            "channels": list(self.channels),
            "media": [m.binding() for m in self.media],
        })


def _digest(data: Mapping[str, Any]) -> str:
    blob = json.dumps(data, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


@attrs.frozen
class Actor:
    """A person who acts on items, with the roles they hold in one organisation.

    A deactivated actor (``active=False``) stays in the record but cannot act, be
    assigned or administer.
    """

    id: str
    name: str
    email: str = ""
    roles: frozenset[str] = attrs.field(default=frozenset(), converter=_frozenset)
    org: str = "default"
    active: bool = True
    #: The language of the mail they are sent (``"id"`` or ``"en"``); ``None``: the
    #: office's (``[mail] language``).
    language: str | None = None

    @property
    def is_admin(self) -> bool:
        """Whether the actor is an active administrator (:data:`ADMIN_ROLE`)."""
        return self.active and ADMIN_ROLE in self.roles

    def to_dict(self) -> dict[str, Any]:
        """Return the actor's row as plain data (as recorded in the organisation's events)."""
        data: dict[str, Any] = {"id": self.id, "name": self.name, "email": self.email,
                                "roles": sorted(self.roles), "active": self.active}
        if self.language is not None:
            data["language"] = self.language  # only when set: older records stay as they were
        return data

    def has_role(self, role: str) -> bool:
        """Whether the actor holds ``role``."""
        return role in self.roles


@attrs.frozen
class ContentItem:
    """A snapshot of one content item as stored.

    Attributes:
        id: The item's number (unique in its store only).
        org: The organisation it belongs to.
        title: A short title for lists.
        state: The key of the current step, ``"posted"`` or ``"cancelled"``.
        version: Incremented by every recorded action (optimistic locking).
        sop_revision: The SOP revision the item started under (pinned).
        post: The content to be posted.
        produced: The produced media (the production step's output).
        outputs: The other step outputs (notes, approval answer, recheck result…).
        authors: Who wrote the concept or design (for the four-eyes rule).
        approved_digest: The :attr:`PostContent.digest` the coordinator approved.
        assignee: The staff member responsible.
        created_by: Who created the item.
        created_at: When it was created.
        step_started_at: When the current step started.
        due_at: When the current step's standard time runs out.
        key: A globally unique key (a UUID) made at creation.
        post_at: When the item is to be posted (set at the posting step by a schedule,
            or by a post now), if it is.
        post_by: On whose authority it is posted then.
    """

    id: int
    org: str
    title: str
    state: str
    version: int
    sop_revision: int
    post: PostContent
    produced: tuple[Media, ...] = attrs.field(default=(), converter=media_tuple)
    outputs: Mapping[str, Any] = attrs.field(factory=dict)
    authors: frozenset[str] = attrs.field(default=frozenset(), converter=_frozenset)
    approved_digest: str | None = None
    assignee: str | None = None
    created_by: str = ""
    created_at: dt.datetime | None = None
    step_started_at: dt.datetime | None = None
    due_at: dt.datetime | None = None
    key: str = ""
    post_at: dt.datetime | None = None
    post_by: str | None = None

    @property
    def is_open(self) -> bool:
        """Whether the item still moves through the SOP."""
        return self.state not in ("posted", "cancelled")

    @property
    def is_approved(self) -> bool:
        """Whether the current content is the content that was approved."""
        return self.approved_digest is not None and self.approved_digest == self.post.digest

    def is_scheduled(self, now: dt.datetime) -> bool:
        """Whether the open item waits for a posting time still to come at ``now``."""
        return self.is_open and self.post_at is not None and self.post_at > now

    @property
    def deadline(self) -> dt.datetime | None:
        """When the current step is late: its standard time's end (:attr:`due_at`), or,
        for an item that waits for a later posting time, that time plus the step's
        standard time (waiting for its slot is not being late)."""
        if self.due_at is None or self.post_at is None:
            return self.due_at
        standard = (self.due_at - self.step_started_at if self.step_started_at is not None
                    else dt.timedelta(0))
        return max(self.due_at, self.post_at + standard)

    def is_overdue(self, now: dt.datetime) -> bool:
        """Whether the current step has run past its :attr:`deadline` at ``now``."""
        deadline = self.deadline
        return self.is_open and deadline is not None and now > deadline

    @property
    def media_to_post(self) -> tuple[Media, ...]:
        """The produced media if any, else the approved design media."""
        return self.produced or self.post.media

    @property
    def content_digest(self) -> str:
        """A SHA-256 of everything posting depends on: the post, the produced media, the
        step outputs (approval answer, recheck result) and the approved digest.

        A channel is claimed only while the stored item still has the digest that the
        posting checks saw, so a revise, rework or cancel that commits in between stops
        the post instead of being overtaken by it.
        """
        return content_digest(self.post.to_dict(), [m.to_dict() for m in self.produced],
                              self.outputs, self.approved_digest)

    @property
    def final_digest(self) -> str:
        """A SHA-256 of what will be posted: the final text, variants, link, channels and
        the produced media's hashes (else the design's). A passed recheck binds it."""
        return _digest({
            "text": self.post.text, "link": self.post.link,
            "variants": {name: v.to_data()
                         for name, v in sorted(self.post.variants.items())},
            "channels": list(self.post.channels),
            "media": [m.binding() for m in self.media_to_post],
        })

    @property
    def recheck_digest(self) -> str | None:
        """The :attr:`final_digest` the last passed recheck bound, if any."""
        recheck = self.outputs.get("recheck")
        if isinstance(recheck, Mapping) and recheck.get("result") == "pass":
            digest = recheck.get("digest")
            return str(digest) if digest else None
        return None


@attrs.frozen
class Event:
    """One entry of the append-only, hash-chained record.

    Attributes:
        stream: ``"item:<id>"`` for an item's history, ``"org"`` for the organisation's.
        seq: The position in the stream, from 1.
        at: When it happened (UTC).
        actor: Who did it.
        action: What was done (``create``, ``complete``, ``approve``, ``reject``…).
        from_state: The step before.
        to_state: The step after.
        note: A reason, finding or answer, if any.
        data: Other facts (outputs supplied, channel results…).
        prev_hash: The hash of the previous event in the stream.
        hash: This event's hash.
    """

    org: str
    stream: str
    seq: int
    at: dt.datetime
    actor: str
    action: str
    from_state: str | None = None
    to_state: str | None = None
    note: str = ""
    data: Mapping[str, Any] = attrs.field(factory=dict)
    prev_hash: str = ""
    hash: str = ""

    def body(self) -> dict[str, Any]:
        """Return the fields the hash covers, as plain data."""
        return _event_body(self.org, self.stream, self.seq, self.at, self.actor, self.action,
                           self.from_state, self.to_state, self.note, self.data,
                           self.prev_hash)

    def compute_hash(self) -> str:
        """Return the SHA-256 of :meth:`body` in canonical JSON."""
        return _event_hash(self.body())

    def sealed(self) -> Event:
        """Return a copy with :attr:`hash` filled in."""
        return attrs.evolve(self, hash=self.compute_hash())

    def sealed_as(self, *, stream: str, seq: int, prev_hash: str,
                  data: Mapping[str, Any]) -> tuple[Event, str]:
        """Return a copy placed in ``stream`` at ``seq`` after ``prev_hash``, with
        ``data``, sealed (``evolve(...).sealed()`` in one copy), and the canonical JSON
        of ``data`` that the hash covers (a store may write that text as it is)."""
        data_json = _HASHED(data)
        # The canonical JSON of body(), put together from the data's text: sorted keys,
        # each value encoded as json.dumps encodes it inside the body (texts by the
        # encoder's own string function, the optional states as null).
        enc = _JSON_TEXT
        from_state = "null" if self.from_state is None else enc(self.from_state)
        to_state = "null" if self.to_state is None else enc(self.to_state)
        blob = (f'{{"action":{enc(self.action)},"actor":{enc(self.actor)},'
                f'"at":{enc(_utc_iso(self.at))},"data":{data_json},'
                f'"from_state":{from_state},"note":{enc(self.note)},'
                f'"org":{enc(self.org)},"prev_hash":{enc(prev_hash)},"seq":{int(seq)!r},'
                f'"stream":{enc(stream)},"to_state":{to_state}}}')
        sealed = Event(org=self.org, stream=stream, seq=seq, at=self.at, actor=self.actor,
                       action=self.action, from_state=self.from_state,
                       to_state=self.to_state, note=self.note, data=data,
                       prev_hash=prev_hash,
                       hash=hashlib.sha256(blob.encode()).hexdigest())
        return sealed, data_json


def _event_body(org: str, stream: str, seq: int, at: dt.datetime, actor: str, action: str,
                from_state: str | None, to_state: str | None, note: str,
                data: Mapping[str, Any], prev_hash: str) -> dict[str, Any]:
    return {
        "org": org,
        "stream": stream,
        "seq": seq,
        "at": _utc_iso(at),
        "actor": actor,
        "action": action,
        "from_state": from_state,
        "to_state": to_state,
        "note": note,
        "data": data,
        "prev_hash": prev_hash,
    }


_HASHED = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode
#: How that encoder writes a text (``ensure_ascii=False``).
_JSON_TEXT = json.encoder.encode_basestring


def _event_hash(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(_HASHED(body).encode()).hexdigest()


@attrs.frozen
class ChannelConfig:
    """A target channel: a name bound to a publisher, its settings and credentials.

    Attributes:
        name: The channel's name, e.g. ``"instagram"`` or ``"outbox"``.
        publisher: The registered publisher's name.
        settings: Publisher settings (page id, folder, API version…).
        credentials: Credential name → the environment variable that holds it.
            Only variable names are stored, never values.
        active: A deactivated channel is no default target and is not posted to.
    """

    name: str
    publisher: str
    settings: Mapping[str, Any] = attrs.field(factory=dict)
    credentials: Mapping[str, str] = attrs.field(factory=dict)
    org: str = "default"
    active: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Return the channel's row as plain data (as recorded in the organisation's
        events; credentials are variable names, never values)."""
        return {"name": self.name, "publisher": self.publisher,
                "settings": dict(self.settings), "credentials": dict(self.credentials),
                "active": self.active}


@attrs.frozen
class Publication:
    """The record of posting one item to one channel.

    Attributes:
        item_id: The content item.
        channel: The channel name.
        state: ``pending`` (not tried yet, or confirmed absent), ``in_flight`` (an
            attempt is under way), ``posted``, ``failed`` (retried at
            ``next_attempt_at`` if set, else waiting for a person), ``unknown`` (the
            request may have reached the platform: reconciled or confirmed by a
            person, never re-posted blindly), ``waiting`` (a person posts it by hand
            and confirms) or ``skipped`` (the coordinator dropped the channel).
        attempts: How many attempts were started.
        platform_id: The post's id on the platform.
        url: The post's public URL.
        error_class: The class of the last error, e.g. ``RateLimited``.
        error_message: What the last error said.
        updated_at: When the record last changed.
        next_attempt_at: When a failed attempt is retried automatically.
        claimed_by: The worker holding an in-flight attempt.
        lease_until: When an in-flight attempt counts as interrupted.
        progress: What a multi-step publisher saved on the way.
    """

    item_id: int
    channel: str
    state: str
    attempts: int = 0
    platform_id: str | None = None
    url: str | None = None
    error_class: str | None = None
    error_message: str | None = None
    updated_at: dt.datetime | None = None
    next_attempt_at: dt.datetime | None = None
    claimed_by: str | None = None
    lease_until: dt.datetime | None = None
    progress: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def is_settled(self) -> bool:
        """Whether this channel needs nothing more (posted or skipped)."""
        return self.state in ("posted", "skipped")


def content_digest(post: Mapping[str, Any], produced: Any, outputs: Mapping[str, Any],
                   approved_digest: str | None) -> str:
    """The :attr:`ContentItem.content_digest` of an item's stored (plain) values."""
    blob = json.dumps({"post": post, "produced": produced, "outputs": outputs,
                       "approved": approved_digest},
                      sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


#: The JSON :func:`content_digest` writes, for values encoded one by one.
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                              default=str).encode


def content_digest_of_json(post: str, produced: str, outputs: str,
                           approved_digest: str | None) -> str:
    """:func:`content_digest` from the canonical JSON (sorted keys, no spaces) of the
    post, the produced media and the outputs, where a write has it already: the same
    text, so the same digest, without encoding them again."""
    blob = (f'{{"approved":{_CANONICAL(approved_digest)},"outputs":{outputs},'
            f'"post":{post},"produced":{produced}}}')
    return hashlib.sha256(blob.encode()).hexdigest()


def _utc_iso(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")
