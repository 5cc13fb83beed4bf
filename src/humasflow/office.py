"""The office: one organisation's view of a store, and every action on its items.

>>> import humasflow
>>> office = humasflow.open(":memory:")            # doctest: +SKIP

Every method is scoped to the office's organisation: items, actors, SOP revisions and
channels of another organisation are invisible to it. Every action runs the SOP's
state machine on a snapshot of the item, then records the move in one transaction
(item update with an optimistic version check + hash-chained event); hooks run after the
commit.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import tempfile
import threading
import weakref
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from humasflow import audit, plugins
from humasflow._data import plain

if TYPE_CHECKING:
    import requests
from humasflow.clock import Clock, system_clock
from humasflow.errors import (
    ActorNotFound,
    ConfigurationError,
    ConflictError,
    ContentInvalid,
    CredentialMissing,
    ItemNotFound,
    MediaRefused,
    MediaUnavailable,
    Refused,
    RoleRequired,
    SOPNotFound,
)
from humasflow.evaluation import Breach, StepRun, timeline
from humasflow.mediastore import DEFAULT_MAX_BYTES, AttachRules, MediaStore, attach
from humasflow.models import (
    Actor,
    ChannelConfig,
    ContentItem,
    Event,
    Media,
    PostContent,
    Publication,
    _media_tuple,
)
from humasflow.publishing.contract import Post, Problem, PublisherContext, new_session
from humasflow.publishing.dispatch import Dispatcher, PostReport
from humasflow.sop import SOP, Step, bundled_sop, from_data
from humasflow.storage.store import Store
from humasflow.workflow import Engine, Move, _payload_problem

__all__ = ["DEFAULT_ORG", "Office", "PostReport", "open"]

DEFAULT_ORG = "default"
log = logging.getLogger("humasflow")

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _engine_for(sop: SOP, revision: int) -> Engine:
    key = f"{sop.digest}:{revision}"
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = Engine(sop, revision)
        return engine


class Office:
    """One organisation's PR office over a :class:`~humasflow.storage.store.Store`.

    Args:
        store: The store.
        org: The organisation (faculty or unit) id; created if new.
        clock: Returns the current time (aware, UTC). Tests pass a steerable clock.
        environ: Where channel credentials are read from (default ``os.environ``).
        session_factory: Makes the HTTP session handed to publishers.
        media_host: Gives stored media a public URL, called as ``media_host(media,
            media_store)`` (see :class:`~humasflow.publishing.media.FolderMediaHost`);
            default: the ``public_media_url`` hook.
        media_store: Where attached media bytes are kept: a
            :class:`~humasflow.mediastore.MediaStore`, an object with its methods, or a
            folder. Default: the ``media_store`` hook's answer, else a folder beside the
            SQLite file (``<file stem>-media/``); a PostgreSQL store needs one configured.
        media_roots: Folders local media files may be attached from, besides the current
            working directory of the process attaching them.
        media_max_bytes: The largest media file attached (default 512 MiB).
    """

    def __init__(
        self,
        store: Store,
        org: str = DEFAULT_ORG,
        *,
        clock: Clock = system_clock,
        environ: Mapping[str, str] | None = None,
        session_factory: Callable[[], requests.Session] = new_session,
        media_host: Callable[[Media, Any], str | None] | None = None,
        media_store: Any = None,
        media_roots: Sequence[str | os.PathLike[str]] = (),
        media_max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.store = store
        self.org = org
        self.clock = clock
        self.environ = os.environ if environ is None else environ
        self.session_factory = session_factory
        self.media_host = media_host
        self.media_roots = tuple(Path(r).expanduser().resolve() for r in media_roots)
        self.media_max_bytes = int(media_max_bytes)
        self._media_store = (MediaStore(os.fspath(media_store))
                             if isinstance(media_store, (str, os.PathLike)) else media_store)
        self._media_tmp: weakref.finalize[Any, Any] | None = None
        self._revisions: dict[int, SOP] = {}
        self._engines: dict[int, Engine] = {}
        # Publishers used only to validate (no network, no secrets), by configuration.
        self._validating: dict[str, Any] = {}
        store.ensure_org(org)
        plugins.load_plugins()
        if store.pending_media_import(org) and self._media_or_none() is not None:
            from humasflow._media_import import import_media

            import_media(self)

    def __repr__(self) -> str:
        url = self.store.engine.url.render_as_string(hide_password=True)
        return f"<Office org={self.org!r} store={url!r}>"

    def close(self) -> None:
        """Release the store's connections."""
        self.store.close()
        if self._media_tmp is not None:
            self._media_tmp()
            self._media_tmp = None

    # -- the media store ----------------------------------------------------------------

    @property
    def media(self) -> Any:
        """The media store (see :mod:`humasflow.mediastore`).

        Raises:
            ConfigurationError: The store is on PostgreSQL and no media store is
                configured (``media_store=`` or the ``media_store`` hook).
        """
        if self._media_store is None:
            found = plugins.pm.hook.media_store(office=self)
            if found is None:
                found = self._default_media_store()
            self._media_store = found
        return self._media_store

    def _default_media_store(self) -> MediaStore:
        url = self.store.engine.url
        if url.get_backend_name() == "sqlite":
            database = url.database
            if database and database != ":memory:":
                path = Path(database)
                return MediaStore(path.with_name(f"{path.stem}-media"))
            # An in-memory store keeps its media as long as the office lives.
            folder = tempfile.mkdtemp(prefix="humasflow-media-")
            self._media_tmp = weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)
            return MediaStore(folder)
        raise ConfigurationError(
            f"the store {url.render_as_string(hide_password=True)!r} is not a SQLite file, "
            "so there is no folder beside it for media: configure a media store shared by "
            "every server (Office(media_store=FOLDER), humasflow.open(..., media=FOLDER), "
            "--media-store / HUMASFLOW_MEDIA, or the media_store hook)")

    def _media_or_none(self) -> Any:
        try:
            return self.media
        except ConfigurationError:
            return None

    def add_media(self, media: Media | str | Sequence[Media | str], *,
                  channels: Sequence[str] | None = None) -> tuple[Media, ...]:
        """Copy media into the media store ahead of an action; return them as stored.

        The items' actions do this themselves (attach = ingest); this is for a caller
        that wants the stored :class:`Media` first (to show their type and size, or to
        build a :class:`~humasflow.publishing.contract.Post` in tests).

        Args:
            media: Paths, URLs or :class:`Media` (their ``alt`` is kept).
            channels: The target channels, which decide whether URLs pass through
                (default: every configured channel).

        Raises:
            ContentInvalid: A file breaks an attach rule.
        """
        problem = _payload_problem("media", media)
        if problem:
            raise TypeError(f"media= {problem}, got {type(media).__name__} {media!r:.60}")
        if channels is None:
            channels = list(self.channels())
        return self._attach(media, channels, item_id="(none)", step="-", action="attach")

    def _attach(self, media: Any, channels: Sequence[str] | Callable[[], Sequence[str]], *,
                item_id: str | Callable[[], tuple[str, str]], step: str = "",
                action: str) -> tuple[Media, ...]:
        """Copy each media's bytes into the media store before any step runs on them.

        ``channels`` and ``item_id`` may be callables, read only when needed (a URL to
        decide on, a refusal to report), so attaching local files costs no extra read.

        Raises:
            ContentInvalid: A file breaks an attach rule (each problem names it).
        """
        wanted = _media_tuple(media)
        if not wanted:
            return wanted
        passthrough = False
        if any(m.is_url and not m.passthrough for m in wanted):
            configured = self.channels()
            passing = {n for n, c in configured.items() if c.settings.get("media_urls") == "pass"}
            # A URL is handed over as it is only if every target channel asks for it (the
            # targets need not be read when every configured channel does).
            if passing and passing == set(configured):
                passthrough = True
            elif passing:
                names = channels() if callable(channels) else channels
                targets = [c for c in names if c in configured]
                passthrough = bool(targets) and set(targets) <= passing
        rules = AttachRules(roots=(Path.cwd().resolve(), *self.media_roots),
                            max_bytes=self.media_max_bytes)
        # Only bytes need the media store: URLs passed through are recorded as they are.
        needs_store = any(not (m.passthrough or (passthrough and m.is_url)) for m in wanted)
        store = self.media if needs_store else None
        attached, problems = [], []
        for i, m in enumerate(wanted):
            try:
                attached.append(attach(store, m, rules, session_factory=self.session_factory,
                                       passthrough=passthrough))
            except MediaRefused as exc:
                problems.append(Problem("-", f"media[{i}]", exc.rule, str(exc),
                                        limit=exc.limit, actual=exc.actual))
        if problems:
            if callable(item_id):
                item_id, step = item_id()
            raise ContentInvalid(item_id=item_id, step=step, action=action, problems=problems)
        return tuple(attached)

    def __enter__(self) -> Office:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _now(self) -> dt.datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the clock returned a naive datetime; return an aware UTC one")
        return now.astimezone(dt.timezone.utc)

    # -- the SOP (step 1: establishment) ----------------------------------------------------

    def establish(
        self,
        sop: SOP | None = None,
        *,
        by: str | None = None,
        effective: dt.date | dt.datetime | None = None,
    ) -> int:
        """Register a revision of the SOP (step 1); return its revision id.

        Args:
            sop: The definition (default: the bundled FISIP UB SOP).
            by: Who established it (default: the approver named in the document).
            effective: From when it applies (default: the document's effective date).
        """
        sop = sop or bundled_sop()
        by = by or sop.header.approved_by_name or "unknown"
        effective = effective or sop.header.effective
        if not isinstance(effective, dt.datetime):
            # A date is a day of the SOP's own calendar: it starts at midnight in its zone.
            zone = zoneinfo.ZoneInfo(sop.header.timezone)
            effective = dt.datetime.combine(effective, dt.time(), tzinfo=zone)
        now = self._now()
        data = plain(sop.data)
        with self.store.writing() as conn:
            rev = self.store.add_sop_revision(conn, {
                "org": self.org, "number": sop.header.number, "title": sop.header.title.id,
                "definition": data, "digest": sop.digest, "established_by": by,
                "established_at": now, "effective_from": effective})
            self.store.append_org_event(conn, Event(
                org=self.org, stream="org", seq=0, at=now, actor=by, action="establish",
                data={"revision": rev, "number": sop.header.number, "digest": sop.digest,
                      "effective": effective.isoformat()}))
        return rev

    def sop(self, revision: int | None = None) -> SOP:
        """The SOP of a revision (default: the one new items start under now)."""
        rev = revision if revision is not None else self.current_revision()
        if rev not in self._revisions:
            row = self.store.sop_revision(rev)
            if row is None or row["org"] != self.org:
                raise SOPNotFound(self.org, f" (revision {rev})")
            self._revisions[rev] = from_data(row["definition"], source=f"revision {rev}")
        return self._revisions[rev]

    def current_revision(self) -> int:
        """The id of the latest revision already in effect."""
        now = self._now()
        revisions = [r for r in self.store.sop_revisions(self.org) if r["effective_from"] <= now]
        if not revisions:
            raise SOPNotFound(self.org, " that is in effect now")
        return int(revisions[-1]["id"])

    def revisions(self) -> list[Mapping[str, Any]]:
        """Every registered revision (id, number, digest, established_by, effective_from…)."""
        return [{k: v for k, v in r.items() if k != "definition"}
                for r in self.store.sop_revisions(self.org)]

    def engine(self, revision: int) -> Engine:
        """The state machine of a revision."""
        engine = self._engines.get(revision)
        if engine is None:
            engine = self._engines[revision] = _engine_for(self.sop(revision), revision)
        return engine

    # -- actors and channels ------------------------------------------------------------------

    def add_actor(
        self, actor_id: str, name: str, *, email: str = "", roles: Iterable[str] = (),
        by: str = "admin",
    ) -> Actor:
        """Add an actor to the organisation, or replace their name, email and roles."""
        actor = Actor(id=actor_id, name=name, email=email, roles=frozenset(roles), org=self.org)
        if not actor_id.strip():
            raise ValueError("actor_id is empty: give the actor a stable id (e.g. a username)")
        known = {role for rev in self.store.sop_revisions(self.org)
                 for role in self.sop(int(rev["id"])).roles}
        unknown = sorted(actor.roles - known) if known else []
        if unknown:
            raise ValueError(
                f"role {unknown[0]!r} is not a role of this organisation's SOP; "
                f"roles: {', '.join(sorted(known))}")
        with self.store.writing() as conn:
            self.store.put_actor(conn, actor)
            self.store.append_org_event(conn, Event(
                org=self.org, stream="org", seq=0, at=self._now(), actor=by,
                action="actor", data={"id": actor.id, "name": name, "email": email,
                                      "roles": sorted(actor.roles)}))
        return actor

    def actor(self, actor: str | Actor) -> Actor:
        """The stored actor (roles as the store holds them, not as the caller says).

        Raises:
            ActorNotFound: No such actor in this organisation.
        """
        actor_id = actor.id if isinstance(actor, Actor) else actor
        found = self.store.actor(self.org, actor_id)
        if found is None:
            raise ActorNotFound(actor_id, self.org)
        return found

    def actors(self) -> list[Actor]:
        """Every actor of the organisation."""
        return self.store.actors(self.org)

    def add_channel(
        self,
        name: str,
        publisher: str,
        *,
        settings: Mapping[str, Any] | None = None,
        credentials: Mapping[str, str] | None = None,
        by: str = "admin",
    ) -> ChannelConfig:
        """Configure a target channel.

        Args:
            name: The channel's name, used in posts' ``channels``.
            publisher: A registered publisher (``outbox``, or a plugin's).
            settings: The publisher's settings.
            credentials: Credential name → environment variable name. Values are read
                from the environment when posting and never stored.

        Raises:
            ConfigurationError: The publisher is not registered.
        """
        factories = plugins.publisher_factories()
        if publisher not in factories:
            raise ConfigurationError(
                f"channel {name!r}: no publisher named {publisher!r} is installed; "
                f"installed: {', '.join(sorted(factories))}")
        for key, var in (credentials or {}).items():
            if not var or not var.replace("_", "").isalnum() or not var[0].isalpha():
                raise ConfigurationError(
                    f"channel {name!r}: credential {key!r} must name an environment variable "
                    f"(like X_ACCESS_TOKEN), got {var!r}; never put the secret itself here")
        channel = ChannelConfig(name=name, publisher=publisher, settings=dict(settings or {}),
                                credentials=dict(credentials or {}), org=self.org)
        with self.store.writing() as conn:
            self.store.put_channel(conn, channel)
            self.store.append_org_event(conn, Event(
                org=self.org, stream="org", seq=0, at=self._now(), actor=by, action="channel",
                data={"name": name, "publisher": publisher, "settings": dict(channel.settings),
                      "credentials": sorted(channel.credentials)}))
        return channel

    def channels(self) -> dict[str, ChannelConfig]:
        """The organisation's channels by name."""
        return self.store.channels(self.org)

    # -- items --------------------------------------------------------------------------------

    def new_item(
        self,
        title: str,
        *,
        by: str | Actor,
        text: str = "",
        media: Sequence[Media | str] = (),
        link: str = "",
        variants: Mapping[str, str] | None = None,
        channels: Sequence[str] | None = None,
        assignee: str | None = None,
    ) -> ContentItem:
        """Create a content item at the SOP's first content step.

        Args:
            title: A short title for lists.
            by: The creating actor; must hold the first step's role.
            text, media, link, variants: A first draft of the post (optional).
            channels: Target channels (default: every configured channel).
            assignee: The staff member responsible (default: ``by``).
        """
        actor = self.actor(by)
        if not title.strip():
            raise ValueError("title is empty: give the item a short title")
        rev = self.current_revision()
        engine = self.engine(rev)
        first = engine.sop.lifecycle[0]
        assert first.actor is not None
        if not actor.has_role(first.actor):
            raise RoleRequired(item_id="(new)", step=first.key, action="create",
                               actor_id=actor.id, role=first.actor)
        if channels is None:
            channels = list(self.channels())
        else:
            self._check_channels(channels)
        problem = _payload_problem("media", media)
        if problem:
            raise TypeError(f"media= {problem}, got {type(media).__name__} {media!r:.60}")
        stored = self._attach(media, channels, item_id="(new)", step=first.key,
                              action="create")
        post = PostContent(text=text.strip(), media=stored, link=link,
                           variants=dict(variants or {}), channels=tuple(channels))
        now = self._now()
        authors = frozenset({actor.id}) if (text or media) else frozenset()
        item = ContentItem(
            id=0, org=self.org, title=title.strip(), state=first.key, version=1,
            sop_revision=rev, post=post, authors=authors, assignee=assignee or actor.id,
            created_by=actor.id, created_at=now, step_started_at=now,
            due_at=now + first.standard_time if first.standard_time else None)
        event = Event(org=self.org, stream="", seq=1, at=now, actor=actor.id, action="create",
                      to_state=first.key,
                      data={"title": item.title, "revision": rev, "post": post.to_dict()})
        with self.store.writing() as conn:
            new_id, sealed = self.store.create_item(conn, item, event)
        item = attrs.evolve(item, id=new_id)
        self._hook("item_created", item=item, event=sealed)
        self._hook("step_entered", item=item, step=first, at=now)
        return item

    def _check_channels(self, channels: Sequence[str]) -> None:
        known = self.channels()
        for name in channels:
            if name not in known:
                raise ConfigurationError(
                    f"no channel named {name!r} in organisation {self.org!r}; configured: "
                    f"{', '.join(sorted(known)) or 'none'} (add one with add_channel())")

    def item(self, item_id: int, *, by: str | Actor | None = None) -> ContentItem:
        """One item of the organisation.

        Args:
            item_id: The item's number.
            by: If given, the reading actor must belong to the organisation.

        Raises:
            ItemNotFound: No such item here (items of other organisations included).
            ActorNotFound: ``by`` is not an actor of this organisation.
        """
        if by is not None:
            self.actor(by)
        found = self.store.item(self.org, int(item_id))
        if found is None:
            raise ItemNotFound(str(item_id), self.org)
        return found

    def items(
        self,
        *,
        state: str | Sequence[str] | None = None,
        overdue: bool = False,
        assignee: str | None = None,
        by: str | Actor | None = None,
        limit: int | None = None,
    ) -> list[ContentItem]:
        """The organisation's items, newest first.

        Args:
            state: Only items at this step (or these steps); ``"open"`` for every open one.
            overdue: Only items whose current step is past its standard time now.
            assignee: Only items this actor is responsible for.
            by: If given, the reading actor must belong to the organisation.
            limit: At most this many.
        """
        if by is not None:
            self.actor(by)
        states: list[str] = []
        if state == "open":
            states = sorted({s.key for rev in self.store.sop_revisions(self.org)
                             for s in self.sop(int(rev["id"])).lifecycle})
        elif isinstance(state, str):
            states = [state]
        elif state is not None:
            states = list(state)
        return self.store.items(self.org, states=states, assignee=assignee,
                                overdue_at=self._now() if overdue else None, limit=limit)

    def assign(self, item_id: int, assignee: str, *, by: str | Actor) -> ContentItem:
        """Make ``assignee`` responsible for the item."""
        actor = self.actor(by)
        self.actor(assignee)
        item = self.item(item_id)
        with self.store.writing() as conn:
            self.store.set_assignee(conn, self.org, item.id, assignee)
            self.store.append_item_event(conn, Event(
                org=self.org, stream="", seq=0, at=self._now(), actor=actor.id,
                action="assign", from_state=item.state, to_state=item.state,
                data={"assignee": assignee, "previous": item.assignee}), item.id)
        return self.item(item_id)

    # -- actions ------------------------------------------------------------------------------

    def allowed(self, item_id: int) -> list[str]:
        """The actions possible on the item now."""
        item = self.item(item_id)
        return self.engine(item.sop_revision).allowed(item.state)

    def act(
        self,
        item_id: int,
        action: str,
        *,
        by: str | Actor,
        note: str = "",
        expected_version: int | None = None,
        **payload: Any,
    ) -> ContentItem:
        """Run one action of the SOP on an item and record it.

        Args:
            item_id: The item's number.
            action: ``complete``, ``approve``, ``reject``, ``pass``, ``rework``,
                ``revise`` or ``cancel``.
            by: The acting actor (their roles are read from the store).
            note: The reason (reject, cancel), answer (approve) or findings (rework).
            expected_version: The version the caller last saw; a different stored
                version raises :class:`ConflictError` (for forms in web apps).
            **payload: The step's output: ``text``, ``notes``, ``media``, ``link``…

        Returns:
            The item as recorded.

        Raises:
            Refused: A subclass saying why the SOP does not allow it.
            ConflictError: The item changed meanwhile; nothing was written.
        """
        actor_id = by.id if isinstance(by, Actor) else by
        if action in ("complete", "revise") and "media" in payload \
                and not _payload_problem("media", payload["media"]):
            # Attach = ingest: the bytes are in the media store before the step runs, and
            # outside the write transaction (a URL may take a while to fetch). The item is
            # read only if a URL or a refusal needs it.
            read: list[ContentItem] = []

            def current() -> ContentItem:
                if not read:
                    read.append(self.item(item_id))
                return read[0]

            def channels() -> Sequence[str]:
                given = payload.get("channels", current().post.channels)
                return given if isinstance(given, (list, tuple)) else ()

            payload["media"] = self._attach(
                payload["media"], channels, action=action,
                item_id=lambda: (str(current().id), current().state))
        # One transition = one transaction: read, check the guards, write, commit.
        with self.store.writing() as conn:
            actor, found = self.store.snapshot(conn, self.org, int(item_id), actor_id)
            if actor is None:
                raise ActorNotFound(actor_id, self.org)
            if found is None:
                raise ItemNotFound(str(item_id), self.org)
            item, head = found
            if expected_version is not None and expected_version != item.version:
                raise ConflictError(str(item.id), expected_version)
            engine = self.engine(item.sop_revision)
            self._check_not_live(item, engine, action, conn)
            validate = None
            if action in ("complete", "approve"):
                # Read the channels only if the step validates (design and approval).
                validate = self._validator(lambda: self.store.channels(self.org, conn))
            move = engine.run(item, action, actor, note=note, payload=payload,
                              validate=validate)
            recorded, sealed, entered = self._write(conn, engine, item, head, move, actor)
        self._after(recorded, sealed, entered)
        return recorded

    def _record(self, engine: Engine, before: ContentItem, head: str, move: Move,
                actor: Actor, extra: Mapping[str, Any] | None = None) -> ContentItem:
        """Write a move computed from a snapshot read earlier (optimistic check)."""
        with self.store.writing() as conn:
            recorded, sealed, entered = self._write(conn, engine, before, head, move, actor,
                                                    extra)
        self._after(recorded, sealed, entered)
        return recorded

    def _write(self, conn: Any, engine: Engine, before: ContentItem, head: str, move: Move,
               actor: Actor, extra: Mapping[str, Any] | None = None,
               ) -> tuple[ContentItem, Event, Step | None]:
        now = self._now()
        new_step = move.to_state != move.from_state
        item = move.item
        step = engine.step(move.to_state)
        if new_step:
            standard = step.standard_time if step else None
            item = attrs.evolve(item, step_started_at=now,
                                due_at=now + standard if standard else None)
        # The engine hands over plain data already; only the caller's extra needs it.
        data = {**move.data, **plain(extra or {})}
        event = Event(org=self.org, stream="", seq=0, at=now, actor=actor.id,
                      action=move.action, from_state=move.from_state, to_state=move.to_state,
                      note=move.note, data=data)
        sealed = self.store.apply(conn, item, before.version, head, event, new_step=new_step)
        return attrs.evolve(item, version=sealed.seq), sealed, step if new_step else None

    def _after(self, item: ContentItem, sealed: Event, entered: Step | None) -> None:
        """Hooks run after the commit: a failing plugin cannot undo a recorded action."""
        self._hook("transition_done", item=item, event=sealed)
        if entered is not None:
            self._hook("step_entered", item=item, step=entered, at=sealed.at)

    def complete(self, item_id: int, *, by: str | Actor, note: str = "",
                 expected_version: int | None = None, **payload: Any) -> ContentItem:
        """Complete the item's current step with its output (see :meth:`act`)."""
        return self.act(item_id, "complete", by=by, note=note,
                        expected_version=expected_version, **payload)

    def approve(self, item_id: int, *, by: str | Actor, answer: str = "",
                expected_version: int | None = None) -> ContentItem:
        """Approve the concept as it stands now (coordinator; not its author)."""
        return self.act(item_id, "approve", by=by, note=answer,
                        expected_version=expected_version)

    def reject(self, item_id: int, *, by: str | Actor, reason: str,
               expected_version: int | None = None) -> ContentItem:
        """Reject the concept with a reason; it returns to the step the SOP names."""
        return self.act(item_id, "reject", by=by, note=reason,
                        expected_version=expected_version)

    def pass_recheck(self, item_id: int, *, by: str | Actor, note: str = "",
                     expected_version: int | None = None) -> ContentItem:
        """Record a passed recheck of the produced content."""
        return self.act(item_id, "pass", by=by, note=note, expected_version=expected_version)

    def rework(self, item_id: int, *, by: str | Actor, findings: str,
               expected_version: int | None = None) -> ContentItem:
        """Record a failed recheck with findings; it returns to production."""
        return self.act(item_id, "rework", by=by, note=findings,
                        expected_version=expected_version)

    def revise(self, item_id: int, *, by: str | Actor, note: str = "",
               expected_version: int | None = None, **changes: Any) -> ContentItem:
        """Change the concept or design; after approval this asks for approval again."""
        return self.act(item_id, "revise", by=by, note=note,
                        expected_version=expected_version, **changes)

    def cancel(self, item_id: int, *, by: str | Actor, reason: str,
               expected_version: int | None = None) -> ContentItem:
        """Cancel an item that is not posted yet, with a reason."""
        return self.act(item_id, "cancel", by=by, note=reason,
                        expected_version=expected_version)

    def _check_not_live(self, item: ContentItem, engine: Engine, action: str,
                        conn: Any = None) -> None:
        """At the posting step, refuse what would bypass or contradict the channels."""
        step = engine.step(item.state)
        if step is None or step.output != "publication":
            return
        if action == "complete":
            # Completing the posting step without posting would close the item although
            # no channel received it: only post() (which records each channel) may.
            raise Refused(
                f"item {item.id} is at the posting step {item.state!r}: post it with "
                "Office.post(), which publishes to its channels and then completes the step",
                item_id=str(item.id), step=item.state, action=action)
        if action in ("revise", "cancel"):
            live = [c for c, p in self.store.publications(self.org, item.id, conn).items()
                    if p.state in ("posted", "in_flight", "unknown", "waiting")]
            if live:
                raise Refused(
                    f"item {item.id} cannot {action}: it is posted, or may be, on "
                    f"{', '.join(live)}; settle those channels first (confirm or skip)",
                    item_id=str(item.id), step=item.state, action=action)

    # -- publishing ---------------------------------------------------------------------------

    def _publisher(self, channel: ChannelConfig, *, credentials_required: bool = True) -> Any:
        factories = plugins.publisher_factories()
        factory = factories.get(channel.publisher)
        if factory is None:
            raise ConfigurationError(
                f"channel {channel.name!r} uses the publisher {channel.publisher!r}, which is "
                f"not installed; installed: {', '.join(sorted(factories))}")
        credentials = {}
        for key, var in channel.credentials.items():
            value = self.environ.get(var)
            if not value and credentials_required:
                raise CredentialMissing(channel.name, var)
            # Validation needs no network, so it works where the secrets are not set.
            credentials[key] = value or ""
        context = PublisherContext(credentials=credentials, session=self.session_factory(),
                                   clock=self.clock, media=self._media_or_none())
        return factory(channel, context)

    def post_for(self, item: ContentItem, channel: str, *, check: bool = True) -> Post:
        """The post as ``channel`` receives it, built from the media store.

        Each stored media's bytes are checked against their hash first, and given a
        public URL if a media host is configured (see the ``public_media_url`` hook).

        Raises:
            MediaUnavailable: A media file is not in the media store (never stored,
                missing since a migration, or deleted) or its bytes changed.
        """
        media = []
        for m in item.media_to_post:
            if m.passthrough:
                media.append(m)
                continue
            if not m.is_stored or m.missing:
                raise MediaUnavailable(m.sha256 or "0" * 64, "missing",
                                       f"{m.source!r} of item {item.id}")
            if check:
                self.media.verify(m)
            url = self._media_url(m, channel)
            if url:
                m = attrs.evolve(m, url=url)
            media.append(m)
        return Post(item_id=item.id, channel=channel, title=item.title,
                    text=item.post.text_for(channel), media=tuple(media), link=item.post.link)

    def _media_url(self, media: Media, channel: str) -> str | None:
        if self.media_host is not None:
            return self.media_host(media, self.media)
        url: str | None = plugins.pm.hook.public_media_url(office=self, media=media,
                                                           channel=channel)
        return url

    def validate(self, item: ContentItem, post: PostContent | None = None) -> list[Problem]:
        """Check the item's post against every target channel's publisher."""
        return self._validator(self.channels)(item, post or item.post)

    def _validator(self, channels: Callable[[], Mapping[str, ChannelConfig]],
                   ) -> Callable[[ContentItem, PostContent], list[Problem]]:
        def validate(item: ContentItem, post: PostContent) -> list[Problem]:
            problems: list[Problem] = []
            if not post.channels:
                return [Problem("-", "channels", "required", "the post has no target channel")]
            configured = channels()
            probe = attrs.evolve(item, post=post)
            media_problems = _stored_problems(probe.media_to_post)
            for name in post.channels:
                channel = configured.get(name)
                if channel is None:
                    problems.append(Problem(name, "channels", "configured",
                                            f"no channel named {name!r} is configured"))
                    continue
                if media_problems:
                    problems.extend(attrs.evolve(p, channel=name) for p in media_problems)
                    continue
                problems.extend(_size_problems(name, channel, probe.media_to_post))
                # No hash check here (it reads every byte): posting checks before upload.
                problems.extend(self._validating_publisher(channel)
                                .validate(self.post_for(probe, name, check=False)))
            return problems
        return validate

    def _validating_publisher(self, channel: ChannelConfig) -> Any:
        key = json.dumps([channel.name, channel.publisher, channel.settings,
                          sorted(channel.credentials)], sort_keys=True, default=str)
        publisher = self._validating.get(key)
        if publisher is None:
            publisher = self._publisher(channel, credentials_required=False)
            self._validating[key] = publisher
        return publisher

    def dispatcher(self, **options: Any) -> Dispatcher:
        """A :class:`~humasflow.publishing.dispatch.Dispatcher` for this office."""
        return Dispatcher(self, **options)

    def post(self, item_id: int, *, by: str | Actor) -> PostReport:
        """Post the item now to every target channel that is not posted yet (last step).

        Each channel's attempt is recorded *in flight* before the platform call and
        completed after it; channels are posted concurrently. When every channel is
        posted (or skipped) the item is closed; otherwise it stays at the posting step
        and :meth:`run_due` or another ``post`` retries only the channels not posted.

        Raises:
            Refused: Not at the posting step, wrong role, approval stale, or the post
                breaks a channel's rules (:class:`ContentInvalid`).
        """
        return self.dispatcher().post(int(item_id), self.actor(by))

    def schedule(self, item_id: int, at: dt.datetime, *, by: str | Actor) -> ContentItem:
        """Have the item posted at ``at`` by :meth:`run_due` (cron) or a worker."""
        return self.dispatcher().schedule(int(item_id), at, self.actor(by))

    def run_due(self, now: dt.datetime | None = None, *, limit: int = 100) -> list[PostReport]:
        """Post what is due now (scheduled items, channels whose retry time came)."""
        return self.dispatcher().run_due(now, limit=limit)

    def confirm(self, item_id: int, channel: str, *, by: str | Actor, url: str | None = None,
                platform_id: str | None = None, not_posted: bool = False) -> PostReport:
        """Settle a channel a person checked on the platform: posted at ``url``, or not."""
        return self.dispatcher().confirm(int(item_id), channel, self.actor(by), url=url,
                                         platform_id=platform_id, not_posted=not_posted)

    def skip(self, item_id: int, channel: str, *, by: str | Actor, reason: str) -> PostReport:
        """Drop one channel of the item (coordinator), so the others can close it."""
        return self.dispatcher().skip(int(item_id), channel, self.actor(by), reason=reason)

    def status(self, item_id: int) -> PostReport:
        """The item with each target channel's record."""
        item = self.item(item_id)
        return PostReport(item=item, publications=self.store.publications(self.org, item.id))

    def check_channels(self) -> dict[str, Exception | None]:
        """Verify every channel's credentials through its publisher, without posting.

        Returns each channel's error (``None`` when it passed); one channel's failure,
        whatever its kind (a refused token, an unreachable platform), never stops the
        others from being checked.
        """
        results: dict[str, Exception | None] = {}
        for name, channel in self.channels().items():
            try:
                self._publisher(channel).check()
            except Exception as exc:
                results[name] = exc
            else:
                results[name] = None
        return results

    def publications(self, item_id: int) -> dict[str, Publication]:
        """Each target channel's record for the item."""
        self.item(item_id)
        return self.store.publications(self.org, int(item_id))

    def _log_failure(self, item_id: int, exc: Exception) -> None:
        log.warning("item %s of %s could not be posted: %s", item_id, self.org, exc)

    # -- records, standard times ------------------------------------------------------------

    def history(self, item_id: int) -> list[Event]:
        """The item's events, oldest first."""
        self.item(item_id)
        return list(self.store.events(self.org, f"item:{int(item_id)}"))

    def timeline(self, item_id: int) -> list[StepRun]:
        """Each step visit of the item with its start, end and standard time."""
        item = self.item(item_id)
        return timeline(self.sop(item.sop_revision), self.history(item_id))

    def overdue(self, now: dt.datetime | None = None) -> list[Breach]:
        """The open items whose current step is past its standard time."""
        now = now or self._now()
        breaches = []
        for item in self.store.items(self.org, overdue_at=now):
            assert item.due_at is not None
            breaches.append(Breach(item=item, step=item.state, due_at=item.due_at,
                                   late_by=now - item.due_at))
        return sorted(breaches, key=lambda b: b.due_at)

    def check_sla(self, now: dt.datetime | None = None) -> list[Breach]:
        """Fire ``standard_time_breached`` once for each new breach; return them.

        Call it from a scheduler (cron, a worker loop); it starts no thread.
        """
        now = now or self._now()
        fired = []
        for breach in self.overdue(now):
            if self.store.mark_breach(self.org, breach.item.id, breach.item.version):
                step = self.sop(breach.item.sop_revision).step(breach.step)
                self._hook("standard_time_breached", item=breach.item, step=step,
                           due_at=breach.due_at, now=now)
                fired.append(breach)
        return fired

    def verify(self) -> audit.AuditReport:
        """Check that no event of this organisation was edited, deleted or reordered."""
        return audit.verify(self.store.events(self.org), self.store.heads(self.org))

    def export(self, out: IO[str], *, format: str = "jsonl",
               item_id: int | None = None) -> int:
        """Write the record (every event, or one item's) as ``jsonl`` or ``csv``."""
        stream = None if item_id is None else f"item:{int(item_id)}"
        events = self.store.events(self.org, stream)
        if format == "jsonl":
            return audit.export_jsonl(events, out)
        if format == "csv":
            return audit.export_csv(events, out)
        raise ValueError(f"format is {format!r}; use 'jsonl' or 'csv'")

    # -- hooks ----------------------------------------------------------------------------------

    def _hook(self, name: str, **kwargs: Any) -> None:
        try:
            getattr(plugins.pm.hook, name)(office=self, **kwargs)
        except Exception:
            # The action is already committed; a failing hook must not look like a
            # failed action. It is logged with its traceback instead.
            log.exception("a humasflow plugin failed in hook %s", name)


def _stored_problems(media: Sequence[Media]) -> list[Problem]:
    problems = []
    for i, m in enumerate(media):
        if m.passthrough:
            continue
        if m.missing:
            problems.append(Problem(
                "-", f"media[{i}]", "media_missing",
                f"{m.source!r} was recorded by path before the media store, and the file "
                "was gone when the store was migrated: attach it again (revise)",
                actual=m.source))
        elif not m.is_stored:
            problems.append(Problem(
                "-", f"media[{i}]", "media_stored",
                f"{m.source!r} is not in the media store: attach it through the office",
                actual=m.source))
    return problems


def _size_problems(name: str, channel: ChannelConfig,
                   media: Sequence[Media]) -> list[Problem]:
    limit = channel.settings.get("media_max_bytes")
    if not isinstance(limit, int) or isinstance(limit, bool):
        return []
    return [Problem(name, f"media[{i}]", "max_bytes",
                    f"{m.source!r} is {m.size} bytes; channel {name!r} takes media files of "
                    f"at most {limit} bytes", limit=limit, actual=m.size)
            for i, m in enumerate(media) if m.size is not None and m.size > limit]


def open(
    target: str = "humasflow.db",
    *,
    org: str = DEFAULT_ORG,
    clock: Clock = system_clock,
    environ: Mapping[str, str] | None = None,
    establish: bool = True,
    media: Any = None,
    media_roots: Sequence[str | os.PathLike[str]] = (),
) -> Office:
    """Open (creating and migrating if needed) a store and return an organisation's office.

    Args:
        target: A SQLite file path, or a URL such as ``postgresql://host/db``.
        org: The organisation id (default ``"default"``).
        clock: The clock.
        environ: Where channel credentials come from.
        establish: Register the bundled SOP if the organisation has none yet.
        media: The media store: a folder or a
            :class:`~humasflow.mediastore.MediaStore` (default: beside a SQLite file;
            required for PostgreSQL unless the ``media_store`` hook gives one).
        media_roots: Folders local media may be attached from, besides the working
            directory.
    """
    office = Office(Store(target), org, clock=clock, environ=environ, media_store=media,
                    media_roots=media_roots)
    if establish and not office.store.sop_revisions(org):
        office.establish()
    return office
