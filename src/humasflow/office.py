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

import builtins
import contextlib
import datetime as dt
import functools
import json
import os
import re
import shutil
import tempfile
import threading
import uuid
import weakref
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

from humasflow import _input, audit, i18n, plugins
from humasflow import credentials as _credentials
from humasflow import inbox as _inbox
from humasflow._data import plain
from humasflow.credentials import CredentialSource, CredentialWarning
from humasflow.i18n import N_, _
from humasflow.scrubbing import get_logger, remember_secret, scrub

if TYPE_CHECKING:
    import requests

    from humasflow.mail.queue import QueuedMail
    from humasflow.mail.settings import MailSettings
    from humasflow.mail.transport import MailTransport
    from humasflow.notices import Notice
    from humasflow.report import Comparison, Report
from humasflow.actions import STATUSES, SUBJECTS, CorrectiveAction, parse_due
from humasflow.calendar import WorkingCalendar
from humasflow.clock import Clock, system_clock
from humasflow.errors import (
    ActionNotFound,
    ActorInactive,
    ActorNotFound,
    AdminRequired,
    AnchorInvalid,
    AnswerTaken,
    ChannelInactive,
    ConfigurationError,
    ConflictError,
    ContentInvalid,
    CredentialMissing,
    CredentialSourceError,
    DefinitionError,
    InputInvalid,
    ItemNotFound,
    MediaRefused,
    MediaUnavailable,
    NotAllowedNow,
    OrganisationNotFound,
    Refused,
    RoleRequired,
    SOPNotFound,
    StepNotFound,
    StorageError,
)
from humasflow.evaluation import Breach, StepRun, timeline
from humasflow.inbox import Inbox
from humasflow.mediastore import DEFAULT_MAX_BYTES, AttachRules, MediaStore, attach
from humasflow.models import (
    ADMIN_ROLE,
    Actor,
    ChannelConfig,
    ContentItem,
    Event,
    Media,
    PostContent,
    Publication,
    Variant,
    media_tuple,
)
from humasflow.publishing.contract import (
    Post,
    Problem,
    PublisherContext,
    idempotency_key,
    new_session,
)
from humasflow.publishing.dispatch import Dispatcher, PostReport
from humasflow.sop import SOP, Step, bundled_sop, from_data
from humasflow.storage.store import DEFAULT_BUSY_TIMEOUT, Store
from humasflow.workflow import CLOSED_STATES, Engine, Move, payload_problem

__all__ = ["DEFAULT_ORG", "Office", "PostReport", "open"]

DEFAULT_ORG = "default"
#: What a channel name may be: it names folders and appears in keys, so never a path.
CHANNEL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
log = get_logger("humasflow")

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
        environ: Environment variables channel credentials are read from (an
            environment source; the default source is ``os.environ``).
        credentials: The credential source (see :mod:`humasflow.credentials`): an
            object such as :class:`~humasflow.credentials.SecretsFile`, or the path of a
            secrets file. Default: ``environ`` if given, else the secrets file named by
            ``HUMASFLOW_SECRETS``, else a plugin's ``credential_source``, else the
            environment.
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
        create: Create the organisation if the store does not hold it yet (default);
            with ``False`` an unknown ``org`` raises
            :class:`~humasflow.errors.OrganisationNotFound`, so a misspelt id opens
            nothing instead of a new, empty organisation.
        calendar: The organisation's working calendar, used when an SOP measures its
            standard times in working time (``clock = "working"``). Default:
            Monday-Friday 07:30-16:00 with Indonesia's public holidays, in the zone of
            the current SOP.
        mail: The mail settings (the ``[mail]`` section of the configuration file, see
            :class:`~humasflow.mail.settings.MailSettings`). With neither ``mail`` nor
            ``mail_transport`` (nor a ``mail_transport`` hook) the office sends no mail
            and queues none.
        mail_transport: How mail leaves (an object with ``send(message)``, see
            :class:`~humasflow.mail.transport.MailTransport`). Default: the
            ``mail_transport`` hook's answer, else SMTP to ``mail.host``.
    """

    def __init__(
        self,
        store: Store,
        org: str = DEFAULT_ORG,
        *,
        clock: Clock = system_clock,
        environ: Mapping[str, str] | None = None,
        credentials: CredentialSource | str | os.PathLike[str] | None = None,
        session_factory: Callable[[], requests.Session] = new_session,
        media_host: Callable[[Media, Any], str | None] | None = None,
        media_store: Any = None,
        media_roots: Sequence[str | os.PathLike[str]] = (),
        media_max_bytes: int = DEFAULT_MAX_BYTES,
        create: bool = True,
        calendar: WorkingCalendar | None = None,
        mail: MailSettings | None = None,
        mail_transport: MailTransport | None = None,
    ) -> None:
        _check_org(org)
        self._calendar = calendar
        self.mail = mail
        self._mail_transport = mail_transport
        self._mail_on = mail is not None or mail_transport is not None or bool(
            plugins.pm.hook.mail_transport.get_hookimpls())
        if not isinstance(store, Store):
            store = Store(store)  # a SQLite path or a database URL
        self._store = store
        self.org = org
        self.clock = clock
        self.environ = os.environ if environ is None else environ
        plugins.load_plugins()
        self.credentials: CredentialSource = _credentials.resolve_source(
            credentials, environ,
            lambda: plugins.pm.hook.credential_source(org=org))
        # Renewed credentials the source could not keep, for this process's lifetime.
        self._renewed: dict[str, str] = {}
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
        # The channels an action last read, with the organisation's stream version then.
        self._channels_seen: tuple[int | None, Mapping[str, ChannelConfig]] | None = None
        if create:
            store.ensure_org(org)
        else:
            known = store.orgs()
            if org not in known:
                raise OrganisationNotFound(org, known)
        if store.pending_media_import(org) and self._media_or_none() is not None:
            from humasflow._media_import import import_media

            import_media(self, self._store)

    def __repr__(self) -> str:
        return f"<Office org={self.org!r} store={self.location!r}>"

    @property
    def location(self) -> str:
        """Where the store is: the SQLite file or the database URL, without its password
        (given as ``user:password@`` or as a ``password=`` query parameter) or any other
        secret-looking query parameter."""
        return str(self._store.target)

    @property
    def busy_timeout(self) -> float:
        """Seconds a write waits for another writer's lock."""
        return float(self._store.busy_timeout)

    @property
    def schema_version(self) -> int:
        """The schema version the store is at."""
        return self._store.schema_version

    @property
    def store_uuid(self) -> str:
        """The store's identity (a UUID made when it was created)."""
        return self._store.uuid

    def events(self, stream: str | None = None) -> list[Event]:
        """The organisation's record: every event (by stream, then sequence), or one
        stream's (``"org"``, ``"item:<id>"``). Read-only: the office is the only writer."""
        return list(self._store.events(self.org, stream))

    def organisations(self) -> list[str]:
        """The ids of every organisation in the store."""
        return self._store.orgs()

    def for_org(self, org: str, *, create: bool = True) -> Office:
        """The office of another organisation on the same store (its connections shared),
        with this office's clock, credential source, HTTP session, media host and media
        store; ``create=False`` refuses an organisation the store does not hold."""
        return Office(self._store, org, clock=self.clock, credentials=self.credentials,
                      session_factory=self.session_factory, media_host=self.media_host,
                      media_store=self._media_store, media_roots=self.media_roots,
                      media_max_bytes=self.media_max_bytes, create=create,
                      calendar=self._calendar, mail=self.mail,
                      mail_transport=self._mail_transport)

    def close(self) -> None:
        """Release the store's connections."""
        self._store.close()
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
        url = self._store.engine.url
        if url.get_backend_name() == "sqlite":
            database = url.database
            if database and database != ":memory:":
                path = Path(database)
                return MediaStore(path.with_name(f"{path.stem}-media"))
            # An in-memory store keeps its media as long as the office lives.
            folder = tempfile.mkdtemp(prefix="humasflow-media-")
            self._media_tmp = weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)
            return MediaStore(folder)
        raise ConfigurationError(_(
            "the store {store!r} is not a SQLite file, "
            "so there is no folder beside it for media: configure a media store shared by "
            "every server (Office(media_store=FOLDER), humasflow.open(..., media=FOLDER), "
            "--media-store / HUMASFLOW_MEDIA, or the media_store hook)").format(
                store=url.render_as_string(hide_password=True)))

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
        problem = payload_problem("media", media)
        if problem:
            raise TypeError(f"media= {problem}, got {type(media).__name__} {media!r:.60}")
        if channels is None:
            channels = list(self.channels())
        return self._attach(media, channels, item_id="(none)", step="-", action="attach")

    def _attach(self, media: Any, channels: Sequence[str] | Callable[[], Sequence[str]], *,
                item_id: str | Callable[[], tuple[str, str]], step: str = "",
                action: str, configured: Mapping[str, ChannelConfig] | None = None,
                ) -> tuple[Media, ...]:
        """Copy each media's bytes into the media store before any step runs on them.

        ``channels`` and ``item_id`` may be callables, read only when needed (a URL to
        decide on, a refusal to report), so attaching local files costs no extra read.
        ``configured`` are the channels already read, if they were.

        Raises:
            ContentInvalid: A file breaks an attach rule (each problem names it).
        """
        wanted = media_tuple(media)
        if not wanted:
            return wanted
        passthrough = False
        if any(m.is_url and not m.passthrough for m in wanted):
            passthrough = _passes_through(
                self.channels() if configured is None else configured, channels)
        # Only bytes need the media store, and the rules of where they may come from:
        # URLs passed through are recorded as they are.
        needs_store = any(not (m.passthrough or (passthrough and m.is_url)) for m in wanted)
        store = self.media if needs_store else None
        rules = AttachRules(roots=(Path.cwd().resolve(), *self.media_roots),
                            max_bytes=self.media_max_bytes) if needs_store else _PASS_RULES
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

    def now(self) -> dt.datetime:
        """The current time from the office's clock, as an aware UTC datetime."""
        return self._now()

    def _now(self) -> dt.datetime:
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the clock returned a naive datetime; return an aware UTC one")
        now = now.astimezone(dt.timezone.utc)
        if not _input.EARLIEST <= now < _input.LATEST:
            # Due times and leases are added to it: they must not overflow.
            _input.moment("the clock's time", now)
        return now

    def _actor_id(self, by: str | Actor, field: str = "by") -> str:
        """The actor id in ``by``; one no store could hold is refused or not found."""
        actor_id = by.id if isinstance(by, Actor) else by
        if not isinstance(actor_id, str):
            raise TypeError(f"{field} must be an actor's id or an Actor, got "
                            f"{type(actor_id).__name__}")
        _input.text(field, actor_id)  # NUL and lone surrogates are refused
        if len(actor_id) > _input.ACTOR_ID:
            raise ActorNotFound(actor_id[:40] + "...", self.org)
        return actor_id

    def _item_id(self, item_id: Any) -> int:
        return _input.item_id(item_id, self.org)

    # -- the SOP (step 1: establishment) ----------------------------------------------------

    def establish(
        self,
        sop: SOP | None = None,
        *,
        by: str | Actor,
        effective: dt.date | dt.datetime | None = None,
        note: str = "",
    ) -> int:
        """Register a revision of the SOP (step 1); return its revision id.

        The organisation's first revision may be established before it has an
        administrator (that is part of setting it up, as :func:`open` does); ``by`` then
        names who approved it (e.g. the dean). Every later revision needs ``by`` to be an
        active administrator.

        Args:
            sop: The definition (default: the bundled FISIP UB SOP).
            by: Who establishes it: an administrator's id (or, for the first revision of
                an organisation without administrator, the approver's name).
            effective: From when it applies (default: the document's effective date; a
                proposal from :meth:`propose_revision` has none and applies from now).
                A proposal's header gets this date.
            note: Why (kept in the record), e.g. the evaluation that led to it.

        Raises:
            AdminRequired: ``by`` is not an active administrator.
            DefinitionError: The SOP defines a role named ``"admin"`` (built in).
        """
        sop = sop or bundled_sop()
        if not isinstance(sop, SOP):
            raise TypeError(f"sop must be an SOP (from load_sop(path) or parse_sop(text)), "
                            f"got {type(sop).__name__}")
        if ADMIN_ROLE in sop.roles:
            raise DefinitionError(sop.source, "roles", _(
                "defines the role {role!r}, which is humasflow's built-in administrator "
                "role").format(role=ADMIN_ROLE), _("another key for that role"))
        by = by.id if isinstance(by, Actor) else by
        if not by or not by.strip():
            raise ValueError(_("by is empty: say who establishes the revision"))
        _input.ident("by", by.id if isinstance(by, Actor) else by, _input.ACTOR_ID)
        # A proposal without a date of its own applies from now, unless told otherwise.
        effective = effective or sop.header.effective or self._now()
        if isinstance(effective, dt.datetime):
            _input.moment("effective", effective)
        elif not isinstance(effective, dt.date):
            raise TypeError(f"effective must be a date or an aware datetime, got "
                            f"{type(effective).__name__} {effective!r:.60}")
        if not isinstance(effective, dt.datetime):
            # A date is a day of the SOP's own calendar: it starts at midnight in its zone.
            zone = zoneinfo.ZoneInfo(sop.header.timezone)
            effective = _input.moment(
                "effective", dt.datetime.combine(effective, dt.time(), tzinfo=zone))
        if sop.header.effective is None:
            # The revision's header says from when it applies, as a signed document does.
            day = effective.astimezone(zoneinfo.ZoneInfo(sop.header.timezone)).date()
            sop = from_data({**sop.data, "sop": {**sop.data["sop"], "effective": day.isoformat()}},
                            source=sop.source)
        now = self._now()
        data = plain(sop.data)
        with self._store.writing() as conn:
            self._store.lock_org(conn, self.org)
            if self._has_admin(conn) or self._store.sop_revisions(self.org, conn):
                self._administrator(by, N_("establish an SOP revision"), conn)
            rev = self._store.add_sop_revision(conn, {
                "org": self.org, "number": sop.header.number, "title": sop.header.title.id,
                "definition": data, "digest": sop.digest, "established_by": by,
                "established_at": now, "effective_from": effective})
            self._store.append_org_event(conn, Event(
                org=self.org, stream="org", seq=0, at=now, actor=by, action="establish",
                note=note, data={"revision": rev, "number": sop.header.number, "digest": sop.digest,
                      "title": sop.header.title.id, "effective": effective.isoformat(),
                      "established_by": by}))
        return rev

    def sop(self, revision: int | None = None) -> SOP:
        """The SOP of a revision (default: the one new items start under now)."""
        rev = revision if revision is not None else self.current_revision()
        if isinstance(rev, bool) or not isinstance(rev, int):
            raise TypeError(f"revision must be a revision's number, got {type(rev).__name__}")
        if not 0 < rev <= _input.MAX_ID:
            raise SOPNotFound(self.org, revision=rev)
        if rev not in self._revisions:
            row = self._store.sop_revision(rev)
            if row is None or row["org"] != self.org:
                raise SOPNotFound(self.org, revision=rev)
            self._revisions[rev] = from_data(row["definition"], source=f"revision {rev}")
        return self._revisions[rev]

    def current_revision(self) -> int:
        """The id of the latest revision already in effect."""
        now = self._now()
        revisions = [r for r in self._store.sop_revisions(self.org) if r["effective_from"] <= now]
        if not revisions:
            raise SOPNotFound(self.org, in_effect=True)
        return int(revisions[-1]["id"])

    def revisions(self) -> list[Mapping[str, Any]]:
        """Every registered revision (id, number, digest, established_by, effective_from…)."""
        return [{k: v for k, v in r.items() if k != "definition"}
                for r in self._store.sop_revisions(self.org)]

    def propose_revision(self, changes: Iterable[Any], *,
                         revision: int | None = None) -> SOP:
        """A new SOP made from a revision (default: the current one) by a list of change
        objects (see :mod:`humasflow.revision`), checked by the SOP loader. Nothing is
        stored: establish the result with :meth:`establish`.

        Raises:
            ValueError: A change names no step of the SOP.
            DefinitionError: The result is not a valid SOP.
        """
        from humasflow.revision import propose

        return propose(self.sop(revision), changes)

    def revision_diff(self, old: int | SOP, new: int | SOP) -> Any:
        """The :class:`~humasflow.revision.RevisionDiff` between two revisions (ids, or
        SOPs such as a proposal)."""
        from humasflow.revision import diff

        return diff(old if isinstance(old, SOP) else self.sop(old),
                    new if isinstance(new, SOP) else self.sop(new))

    def revision_history(self) -> list[dict[str, Any]]:
        """Every revision, oldest first, with who established it, when, from when it
        applies, the note recorded with it, and how many items started under it."""
        notes = {int(e.data.get("revision", 0)): e.note for e in self._store.events(
            self.org, "org") if e.action == "establish"}
        counts: dict[int, int] = {}
        for item in self._store.items(self.org):
            counts[item.sop_revision] = counts.get(item.sop_revision, 0) + 1
        return [{**r, "note": notes.get(int(r["id"]), ""), "items": counts.get(int(r["id"]), 0)}
                for r in self.revisions()]

    def engine(self, revision: int) -> Engine:
        """The state machine of a revision."""
        engine = self._engines.get(revision)
        if engine is None:
            engine = self._engines[revision] = _engine_for(self.sop(revision), revision)
        return engine

    # -- actors and channels ------------------------------------------------------------------

    def _administrator(self, by: str | Actor, action: str, conn: Any = None) -> Actor:
        """The stored actor ``by`` if an active administrator, else :class:`AdminRequired`."""
        actor_id = by.id if isinstance(by, Actor) else by
        found = self._store.actor(self.org, actor_id, conn)
        if found is None:
            reason = _("there is no actor {actor_id!r} in organisation {org!r}").format(
                actor_id=actor_id, org=self.org)
        elif not found.active:
            reason = _("the actor is deactivated")
        elif ADMIN_ROLE not in found.roles:
            reason = _("they do not hold the role {role!r}").format(role=ADMIN_ROLE)
        else:
            return found
        raise AdminRequired(action=action, actor_id=actor_id, reason=reason)

    def _has_admin(self, conn: Any = None) -> bool:
        return any(a.is_admin for a in self._store.actors(self.org, conn))

    def administrators(self) -> list[Actor]:
        """The organisation's active administrators."""
        return [a for a in self.actors() if a.is_admin]

    def acting(self, by: str | Actor, action: str = "act") -> Actor:
        """The stored actor ``by``, who must be active to ``action``.

        Raises:
            ActorNotFound: No such actor in this organisation.
            ActorInactive: The actor was deactivated.
        """
        actor = self.actor(by)
        if not actor.active:
            raise ActorInactive(actor_id=actor.id, action=action)
        return actor

    def bootstrap_admin(self, actor_id: str, name: str, *, email: str = "") -> Actor:
        """Make the organisation's first administrator (only while it has none).

        An existing actor of that id keeps their roles and gains ``"admin"``.

        Raises:
            Refused: The organisation already has an active administrator: ask them.
        """
        if not actor_id.strip():
            raise ValueError(_("actor_id is empty: give the administrator a stable id"))
        _input.email("email", email)
        if not name.strip():
            raise ValueError(_("name is empty: give the administrator's name"))
        with self._store.writing() as conn:
            self._store.lock_org(conn, self.org)
            admins = [a.id for a in self._store.actors(self.org, conn) if a.is_admin]
            if admins:
                raise Refused(
                    _("organisation {org!r} already has an administrator "
                      "({admins}); ask them to add or change actors").format(
                          org=self.org, admins=", ".join(admins)),
                    item_id="-", step="-", action="bootstrap_admin")
            existing = self._store.actor(self.org, actor_id, conn)
            roles = (existing.roles if existing else frozenset()) | {ADMIN_ROLE}
            actor = Actor(id=actor_id, name=name, email=email or (existing.email if existing
                                                                   else ""),
                          roles=roles, org=self.org, active=True,
                          language=existing.language if existing else None)
            self._store.put_actor(conn, actor)
            self._store.append_org_event(conn, Event(
                org=self.org, stream="org", seq=0, at=self._now(), actor=actor_id,
                action="bootstrap_admin", data=actor.to_dict()))
        return actor

    def add_actor(
        self, actor_id: str, name: str, *, email: str = "", roles: Iterable[str] = (),
        by: str | Actor, language: str | None = None,
    ) -> Actor:
        """Add an actor to the organisation, or replace their name, email and roles.

        Args:
            actor_id: A stable id (e.g. a username).
            name: Their name.
            email: Their email address.
            roles: Roles of the organisation's SOP, and/or ``"admin"``.
            by: An active administrator.
            language: The language of the mail they are sent, ``"id"`` or ``"en"``
                (default: what they had, else the office's ``[mail] language``).

        Raises:
            AdminRequired: ``by`` is not an active administrator.
            ValueError: ``language`` is not ``"id"`` or ``"en"``.
        """
        _input.ident("actor_id", actor_id, _input.ACTOR_ID)
        if isinstance(roles, str):
            raise TypeError(f"roles must be a list of role keys, got the string {roles!r}; "
                            f"write roles=[{roles!r}]")
        _input.ident("name", name, _input.NAME)
        _input.email("email", email)
        roles = [_input.ident(f"roles[{i}]", r, _input.ROLES) for i, r in enumerate(roles)]
        _input.text("roles", ",".join(sorted(set(roles))), _input.ROLES)
        _input.ident("by", by.id if isinstance(by, Actor) else by, _input.ACTOR_ID)
        if language is not None and language not in i18n.LANGUAGES:
            raise ValueError(_(
                "language {language!r} is not one humasflow writes mail in; use one of: "
                "{languages}").format(language=language, languages=", ".join(i18n.LANGUAGES)))
        if not actor_id.strip():
            raise ValueError(_("actor_id is empty: give the actor a stable id (e.g. a "
                               "username)"))
        roles = frozenset(roles)
        known = {role for rev in self._store.sop_revisions(self.org)
                 for role in self.sop(int(rev["id"])).roles}
        unknown = sorted(roles - known - {ADMIN_ROLE}) if known else []
        if unknown:
            raise ValueError(_(
                "role {role!r} is not a role of this organisation's SOP; "
                "roles: {roles}").format(role=unknown[0],
                                         roles=", ".join(sorted(known | {ADMIN_ROLE}))))
        with self._store.writing() as conn:
            self._store.lock_org(conn, self.org)
            admin = self._administrator(by, N_("add or change actors"), conn)
            existing = self._store.actor(self.org, actor_id, conn)
            if language is None and existing is not None:
                language = existing.language
            actor = Actor(id=actor_id, name=name, email=email, roles=roles, org=self.org,
                          active=existing.active if existing else True, language=language)
            if existing is not None and existing.is_admin and not actor.is_admin:
                self._keep_an_admin(conn, actor_id, N_("remove the role 'admin' from"))
            self._store.put_actor(conn, actor)
            self._store.append_org_event(conn, Event(
                org=self.org, stream="org", seq=0, at=self._now(), actor=admin.id,
                action="actor", data=actor.to_dict()))
        return actor

    def _keep_an_admin(self, conn: Any, actor_id: str, what: str) -> None:
        others = [a for a in self._store.actors(self.org, conn) if a.is_admin and a.id != actor_id]
        if not others:
            raise Refused(
                _("cannot {what} {actor_id!r}: they are the organisation's last active "
                  "administrator; make another administrator first").format(
                      what=_(what), actor_id=actor_id),
                item_id="-", step="-", action="administer")

    def deactivate_actor(self, actor_id: str, *, by: str | Actor, reason: str = "") -> Actor:
        """Deactivate an actor: they stay in the record but cannot act or be assigned.

        Raises:
            AdminRequired: ``by`` is not an active administrator.
            ActorNotFound: No such actor.
            Refused: They are the last active administrator.
        """
        return self._set_actor_active(actor_id, False, by=by, reason=reason)

    def activate_actor(self, actor_id: str, *, by: str | Actor, reason: str = "") -> Actor:
        """Reactivate a deactivated actor (administrator)."""
        return self._set_actor_active(actor_id, True, by=by, reason=reason)

    def _set_actor_active(self, actor_id: str, active: bool, *, by: str | Actor,
                          reason: str) -> Actor:
        verb = "activate" if active else "deactivate"
        with self._store.writing() as conn:
            self._store.lock_org(conn, self.org)
            admin = self._administrator(
                by, N_("activate actors") if active else N_("deactivate actors"), conn)
            existing = self._store.actor(self.org, actor_id, conn)
            if existing is None:
                raise ActorNotFound(actor_id, self.org)
            if not active and existing.is_admin:
                self._keep_an_admin(conn, actor_id, N_("deactivate"))
            actor = attrs.evolve(existing, active=active)
            self._store.put_actor(conn, actor)
            self._store.append_org_event(conn, Event(
                org=self.org, stream="org", seq=0, at=self._now(), actor=admin.id,
                action=f"actor_{verb}d", note=reason, data=actor.to_dict()))
        return actor

    def actor(self, actor: str | Actor) -> Actor:
        """The stored actor (roles as the store holds them, not as the caller says).

        Raises:
            ActorNotFound: No such actor in this organisation.
        """
        actor_id = self._actor_id(actor, "actor")
        found = self._store.actor(self.org, actor_id)
        if found is None:
            raise ActorNotFound(actor_id, self.org)
        return found

    def actors(self) -> list[Actor]:
        """Every actor of the organisation."""
        return self._store.actors(self.org)

    def add_channel(
        self,
        name: str,
        publisher: str,
        *,
        settings: Mapping[str, Any] | None = None,
        credentials: Mapping[str, str] | None = None,
        by: str | Actor,
    ) -> ChannelConfig:
        """Configure a target channel (administrator).

        Args:
            name: The channel's name, used in posts' ``channels``: letters, digits,
                ``-`` and ``_``, at most 64 characters.
            publisher: A registered publisher (``outbox``, or a plugin's).
            settings: The publisher's settings (never a secret). A publisher whose
                factory has a ``prepare_settings(settings)`` function gets to settle
                them here (the outbox makes its ``path`` absolute).
            credentials: Credential name → credential reference: the environment
                variable (or secrets-file key) that holds it, like ``X_ACCESS_TOKEN``.
                Values are read from the office's credential source when posting and
                never stored.
            by: An active administrator.

        Raises:
            ConfigurationError: The name is not a slug, or the publisher is not
                registered.
            SecretInConfiguration: A reference or a setting looks like a secret.
            AdminRequired: ``by`` is not an active administrator.
        """
        _input.ident("name", name, _input.CHANNEL)
        _input.ident("publisher", publisher, _input.PUBLISHER)
        _input.ident("by", by.id if isinstance(by, Actor) else by, _input.ACTOR_ID)
        _input.strings("settings", dict(settings or {}), _input.SETTING)
        _input.strings("credentials", dict(credentials or {}), _input.ACTOR_ID)
        if not CHANNEL_NAME.fullmatch(name):
            raise ConfigurationError(_(
                "channel name {name!r} is not allowed: use 1 to 64 letters, digits, "
                "'-' or '_' (no spaces, dots or slashes), e.g. 'instagram' or "
                "'x-main'").format(name=name))
        factories = plugins.publisher_factories()
        if publisher not in factories:
            raise ConfigurationError(_(
                "channel {name!r}: no publisher named {publisher!r} is installed; "
                "installed: {installed}").format(name=name, publisher=publisher,
                                                 installed=", ".join(sorted(factories))))
        _credentials.check_channel_config(name, settings or {}, credentials or {})
        settings = dict(settings or {})
        prepare = getattr(factories[publisher], "prepare_settings", None)
        if prepare is not None:
            settings = dict(prepare(settings))
        with self._store.writing() as conn:
            self._store.lock_org(conn, self.org)
            admin = self._administrator(by, N_("add or change channels"), conn)
            existing = self._store.channels(self.org, conn).get(name)
            channel = ChannelConfig(name=name, publisher=publisher, settings=settings,
                                    credentials=dict(credentials or {}), org=self.org,
                                    active=existing.active if existing else True)
            self._store.put_channel(conn, channel)
            self._store.append_org_event(conn, Event(
                org=self.org, stream="org", seq=0, at=self._now(), actor=admin.id,
                action="channel", data=plain(channel.to_dict())))
        return channel

    def deactivate_channel(self, name: str, *, by: str | Actor,
                           reason: str = "") -> ChannelConfig:
        """Deactivate a channel: it stays in the record, is no default target of new
        items, and is not posted to (administrator).

        Raises:
            AdminRequired: ``by`` is not an active administrator.
            ConfigurationError: No such channel.
        """
        return self._set_channel_active(name, False, by=by, reason=reason)

    def activate_channel(self, name: str, *, by: str | Actor,
                         reason: str = "") -> ChannelConfig:
        """Reactivate a deactivated channel (administrator)."""
        return self._set_channel_active(name, True, by=by, reason=reason)

    def _set_channel_active(self, name: str, active: bool, *, by: str | Actor,
                            reason: str) -> ChannelConfig:
        verb = "activate" if active else "deactivate"
        with self._store.writing() as conn:
            self._store.lock_org(conn, self.org)
            admin = self._administrator(
                by, N_("activate channels") if active else N_("deactivate channels"), conn)
            known = self._store.channels(self.org, conn)
            if name not in known:
                raise ConfigurationError(_no_channel(name, self.org, known))
            channel = attrs.evolve(known[name], active=active)
            self._store.put_channel(conn, channel)
            self._store.append_org_event(conn, Event(
                org=self.org, stream="org", seq=0, at=self._now(), actor=admin.id,
                action=f"channel_{verb}d", note=reason, data=plain(channel.to_dict())))
        return channel

    def channels(self) -> dict[str, ChannelConfig]:
        """The organisation's channels by name."""
        return self._store.channels(self.org)

    # -- items --------------------------------------------------------------------------------

    def new_item(
        self,
        title: str,
        *,
        by: str | Actor,
        text: str = "",
        media: Sequence[Media | str] = (),
        link: str = "",
        variants: Mapping[str, str | Mapping[str, Any] | Variant] | None = None,
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
        actor = self.acting(by, N_("create items"))
        _input.text("title", title, _input.TITLE)
        if not title.strip():
            raise ValueError(_("title is empty: give the item a short title"))
        _check_post_fields({"text": text, "media": media, "link": link,
                            "variants": variants or {},
                            "channels": channels if channels is not None else ()})
        if assignee is not None:
            self._actor_id(assignee, "assignee")
        rev = self.current_revision()
        engine = self.engine(rev)
        first = engine.sop.lifecycle[0]
        assert first.actor is not None
        if not actor.has_role(first.actor):
            raise RoleRequired(item_id="(new)", step=first.key, action="create",
                               actor_id=actor.id, role=first.actor)
        if channels is None:
            channels = [name for name, c in self.channels().items() if c.active]
        elif isinstance(channels, str) or not isinstance(channels, Iterable):
            raise TypeError(f"channels must be a list of channel names, got "
                            f"{type(channels).__name__} {channels!r:.60}")
        else:
            self._check_channels(channels)
        if assignee is not None and assignee != actor.id:
            assigned = self.acting(assignee, N_("be assigned items"))
            if not assigned.has_role(first.actor):
                raise RoleRequired(item_id="(new)", step=first.key, action="be assigned",
                                   actor_id=assigned.id, role=first.actor)
        problem = payload_problem("media", media)
        if problem:
            raise TypeError(f"media= {problem}, got {type(media).__name__} {media!r:.60}")
        stored = self._attach(media, channels, item_id="(new)", step=first.key,
                              action="create")
        post = PostContent(text=text.strip(), media=stored, link=link,
                           variants=dict(variants or {}), channels=tuple(channels))
        now = self._now()
        authors = frozenset({actor.id}) if (text or media) else frozenset()
        item = ContentItem(
            id=0, key=str(uuid.uuid4()), org=self.org, title=title.strip(), state=first.key,
            version=1,
            sop_revision=rev, post=post, authors=authors, assignee=assignee or actor.id,
            created_by=actor.id, created_at=now, step_started_at=now,
            due_at=self._due(engine.sop, first.standard_time, now))
        event = Event(org=self.org, stream="", seq=1, at=now, actor=actor.id, action="create",
                      to_state=first.key,
                      data={"title": item.title, "revision": rev, "post": post.to_dict(),
                            "key": item.key, "assignee": item.assignee})
        with self._store.writing() as conn:
            new_id, sealed = self._store.create_item(conn, item, event)
        item = attrs.evolve(item, id=new_id)
        self._hook("item_created", item=item, event=sealed)
        self._hook("step_entered", item=item, step=first, at=now)
        return item

    def _check_channels(self, channels: Sequence[str], *, action: str = "create",
                        item_id: str = "(new)") -> None:
        known = self.channels()
        for name in channels:
            if name not in known:
                raise ConfigurationError(_no_channel(name, self.org, known, add=True))
            if not known[name].active:
                raise ChannelInactive(channel=name, action=action, item_id=item_id,
                                      step="-")

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
        found = self._store.item(self.org, self._item_id(item_id))
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

        Raises:
            StepNotFound: A state is no step of the organisation's SOP revisions (nor
                ``posted``, ``cancelled`` or ``open``): a misspelt state is not an empty
                list.
            ActorNotFound: ``assignee`` (or ``by``) is not an actor of the organisation.
        """
        if by is not None:
            self.actor(by)
        _check_limit(limit)
        if assignee is not None:
            self.actor(assignee)
        states: list[str] = []
        if state == "open":
            states = self._open_states()
        elif isinstance(state, str):
            states = [state]
        elif state is not None:
            states = list(state)
        if states and state != "open":
            self.check_states(states)
        return self._store.items(self.org, states=states, assignee=assignee,
                                overdue_at=self._now() if overdue else None, limit=limit)

    def _open_states(self) -> list[str]:
        return sorted({s.key for rev in self._store.sop_revisions(self.org)
                       for s in self.sop(int(rev["id"])).lifecycle})

    def states(self) -> list[str]:
        """Every state an item of the organisation can be in: the content steps of its
        SOP revisions (the latest revision's first, in its order), ``posted`` and
        ``cancelled``."""
        keys: list[str] = []
        for rev in reversed(self._store.sop_revisions(self.org)):
            keys += [s.key for s in self.sop(int(rev["id"])).lifecycle if s.key not in keys]
        return [*keys, *CLOSED_STATES]

    def check_states(self, states: Iterable[str]) -> None:
        """Refuse a state that no step of the organisation's SOP has.

        Raises:
            StepNotFound: One of ``states`` is unknown (the error lists the valid ones).
        """
        valid = self.states()
        for state in states:
            if not isinstance(state, str):
                raise TypeError(f"state must be a step's key, got {type(state).__name__}")
            if state not in valid:
                raise StepNotFound(state, self.org, valid)

    def assign(self, item_id: int, assignee: str, *, by: str | Actor) -> ContentItem:
        """Make ``assignee`` responsible for the item.

        ``by`` must be an administrator, hold the SOP's approving (coordinator) role, or
        be the item's current assignee; ``assignee`` must be active and hold the role of
        the item's current step or of its first step (the staff who carry items); the
        item must be open.

        Raises:
            RoleRequired: ``by`` may not assign, or ``assignee`` lacks the role.
            ActorInactive: ``by`` or ``assignee`` is deactivated.
            NotAllowedNow: The item is closed.
        """
        actor = self.acting(by, N_("assign items"))
        target = self.acting(self._actor_id(assignee, "assignee"), N_("be assigned items"))
        item = self.item(item_id)
        engine = self.engine(item.sop_revision)
        if not item.is_open:
            raise NotAllowedNow(item_id=str(item.id), step=item.state, action="assign",
                                allowed=engine.allowed(item.state))
        coordinator = engine.approval_step.actor
        assert coordinator is not None
        if not (actor.is_admin or actor.has_role(coordinator) or actor.id == item.assignee):
            raise RoleRequired(item_id=str(item.id), step=item.state, action="assign",
                               actor_id=actor.id, role=coordinator)
        step = engine.step(item.state)
        staff = engine.sop.lifecycle[0].actor
        roles = {r for r in (step.actor if step else None, staff) if r}
        if not roles & target.roles:
            raise RoleRequired(item_id=str(item.id), step=item.state, action="be assigned",
                               actor_id=target.id, role=step.actor if step and step.actor
                               else str(staff))
        with self._store.writing() as conn:
            self._store.set_assignee(conn, self.org, item.id, assignee)
            self._store.append_item_event(conn, Event(
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
        actor_id = self._actor_id(by)
        item_id = self._item_id(item_id)
        _input.text("note", note)
        _check_post_fields(payload)
        if "channels" in payload and not payload_problem("channels", payload["channels"]):
            # A misspelt channel is refused now, as new_item() refuses it, not at approval.
            self._check_channels(list(payload["channels"]), action=action,
                                 item_id=str(item_id))
        deciding: tuple[Media, ...] = ()
        if action in ("complete", "revise") and "media" in payload \
                and not payload_problem("media", payload["media"]):
            # Attach = ingest: the bytes are in the media store before the step runs, and
            # outside the write transaction (a URL may take a while to fetch).
            wanted = media_tuple(payload["media"])
            if all(m.is_url for m in wanted) and any(not m.passthrough for m in wanted):
                # Whether URLs are fetched or passed through depends on the channels,
                # which the transaction reads anyway: it decides there (passing them
                # through touches no file), and URLs to fetch are fetched outside it,
                # before it runs again.
                deciding = wanted
            else:
                payload["media"] = self._attach(
                    wanted, lambda: self._targets(item_id, payload), action=action,
                    item_id=lambda: self._where(item_id))
        while True:
            try:
                recorded, sealed, entered = self._act(item_id, action, actor_id, note,
                                                      expected_version, payload, deciding)
            except _FetchFirst as fetch:
                payload["media"] = self._attach(
                    deciding, fetch.targets, action=action, configured=fetch.configured,
                    item_id=fetch.item_id, step=fetch.step)
                deciding = ()
                continue
            self._after(recorded, sealed, entered)
            return recorded

    def _targets(self, item_id: int, payload: Mapping[str, Any]) -> Sequence[str]:
        """The channels an action's payload targets: its own, or the item's."""
        given = payload["channels"] if "channels" in payload \
            else self.item(item_id).post.channels
        return given if isinstance(given, (list, tuple)) else ()

    def _where(self, item_id: int) -> tuple[str, str]:
        """The item's id and step, for a refusal that names them."""
        item = self.item(item_id)
        return str(item.id), item.state

    def _act(self, item_id: int, action: str, actor_id: str, note: str,
             expected_version: int | None, payload: dict[str, Any],
             deciding: tuple[Media, ...], *, extra: Mapping[str, Any] | None = None,
             claim: Callable[[Any], None] | None = None,
             ) -> tuple[ContentItem, Event, Step | None]:
        """One transition in one transaction: read, check the guards, write, commit.

        ``deciding`` are media whose URLs pass through or are fetched depending on the
        channels: with every URL passing through they are attached here; otherwise
        :class:`_FetchFirst` says what to fetch, and nothing is written.
        """
        with self._store.writing() as conn:
            if claim is not None:
                # First, so a second claimant waits here for the first to finish.
                claim(conn)
            actor, found, org_version = self._store.snapshot_with_org(conn, self.org, item_id,
                                                                      actor_id)
            if actor is None:
                raise ActorNotFound(actor_id, self.org)
            if found is None:
                raise ItemNotFound(str(item_id), self.org)
            item, head = found
            if not actor.active:
                raise ActorInactive(actor_id=actor.id, action=action, item_id=str(item.id),
                                    step=item.state)
            if expected_version is not None and expected_version != item.version:
                raise ConflictError(str(item.id), expected_version)
            engine = self.engine(item.sop_revision)
            self._check_not_live(item, engine, action, conn)

            def configured() -> Mapping[str, ChannelConfig]:
                # Read only if needed, and only if they may have changed: every change of
                # a channel advances the organisation's stream, whose version is read
                # with the item.
                seen = self._channels_seen
                if seen is not None and seen[0] == org_version:
                    return seen[1]
                channels = self._store.channels(self.org, conn)
                self._channels_seen = (org_version, channels)
                return channels

            if deciding:
                given = payload.get("channels", item.post.channels)
                targets = tuple(given) if isinstance(given, (list, tuple)) else ()
                if not _passes_through(configured(), targets):
                    raise _FetchFirst(configured(), targets, str(item.id), item.state)
                payload = {**payload, "media": self._attach(
                    deciding, targets, action=action, configured=configured(),
                    item_id=lambda: (str(item.id), item.state))}
            validate = None
            if action in ("complete", "approve"):
                # Read the channels only if the step validates (design and approval).
                validate = self._validator(configured)
            move = engine.run(item, action, actor, note=note, payload=payload,
                              validate=validate)
            return self._write(conn, engine, item, head, move, actor, extra)

    def _record(self, engine: Engine, before: ContentItem, head: str, move: Move,
                actor: Actor, extra: Mapping[str, Any] | None = None) -> ContentItem:
        """Write a move computed from a snapshot read earlier (optimistic check)."""
        with self._store.writing() as conn:
            recorded, sealed, entered = self._write(conn, engine, before, head, move, actor,
                                                    extra)
        self._after(recorded, sealed, entered)
        return recorded

    def _write(self, conn: Any, engine: Engine, before: ContentItem, head: str, move: Move,
               actor: Actor, extra: Mapping[str, Any] | None = None,
               ) -> tuple[ContentItem, Event, Step | None]:
        now = self._now()
        new_step = move.to_state != move.from_state
        step = engine.step(move.to_state)
        # The item as recorded, made once: its next version, and a new step's times.
        if new_step:
            standard = step.standard_time if step else None
            item = attrs.evolve(move.item, version=before.version + 1, step_started_at=now,
                                due_at=self._due(engine.sop, standard, now))
        else:
            item = attrs.evolve(move.item, version=before.version + 1)
        # The engine hands over plain data already; only the caller's extra needs it.
        data = {**move.data, **plain(extra or {})}
        event = Event(org=self.org, stream="", seq=0, at=now, actor=actor.id,
                      action=move.action, from_state=move.from_state, to_state=move.to_state,
                      note=move.note, data=data)
        sealed = self._store.apply(conn, item, before.version, head, event, new_step=new_step)
        assert sealed.seq == item.version
        if self._mail_on and step is not None and step.output == "approval" \
                and (new_step or move.action == "revise"):
            # Entering the step, or a concept revised while it waits: the coordinators
            # are asked about the content as it is now.
            self._queue_approval_request(conn, engine, item)
        return item, sealed, step if new_step else None

    def _queue_approval_request(self, conn: Any, engine: Engine, item: ContentItem) -> int:
        """Queue the approval request to the step's coordinators, in the transaction
        that records the item entering the step."""
        step = engine.approval_step
        four_eyes = engine.sop.header.four_eyes
        to = [a for a in self._store.actors(self.org, conn)
              if step.actor and a.has_role(step.actor)
              and not (four_eyes and a.id in item.authors)]
        self._store.obsolete_mail(conn, self.org, "approval_request", item.id,
                                  _("replaced by a newer approval request"))
        return self._queue_rows(conn, "approval_request", to, item.id, {
            "step": step.key, "entered_at": _iso(item.step_started_at),
            "version": item.version})

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
                expected_version: int | None = None, via: str | None = None,
                evidence: Mapping[str, str] | None = None) -> ContentItem:
        """Approve the concept as it stands now (coordinator; not its author).

        ``via`` says how the answer came (``"email"``: the "jawaban email" of the SOP)
        and ``evidence`` what shows it (``message_id``, ``sender``); both are recorded
        in the event's data.
        """
        _input.text("answer", answer)
        if via is None and evidence is None:
            return self.act(item_id, "approve", by=by, note=answer,
                            expected_version=expected_version)
        return self._decide(item_id, "approve", by, answer, expected_version,
                            _via(via, evidence))

    def reject(self, item_id: int, *, by: str | Actor, reason: str,
               expected_version: int | None = None, via: str | None = None,
               evidence: Mapping[str, str] | None = None) -> ContentItem:
        """Reject the concept with a reason; it returns to the step the SOP names
        (``via`` and ``evidence`` as for :meth:`approve`)."""
        _input.text("reason", reason)
        if via is None and evidence is None:
            return self.act(item_id, "reject", by=by, note=reason,
                            expected_version=expected_version)
        return self._decide(item_id, "reject", by, reason, expected_version,
                            _via(via, evidence))

    def _decide(self, item_id: int, action: str, by: str | Actor, note: str,
                expected_version: int | None, extra: Mapping[str, Any],
                claim: Callable[[Any], None] | None = None) -> ContentItem:
        actor_id = self._actor_id(by)
        item_id = self._item_id(item_id)
        recorded, sealed, entered = self._act(item_id, action, actor_id, note,
                                              expected_version, {}, (), extra=extra,
                                              claim=claim)
        self._after(recorded, sealed, entered)
        return recorded

    # -- sending mail -----------------------------------------------------------------------

    @property
    def mail_enabled(self) -> bool:
        """Whether the office sends mail (it has mail settings or a transport)."""
        return self._mail_on

    def queue_mail(self, kind: str, *, to: Iterable[str], item_id: int | None = None,
                   data: Mapping[str, Any] | None = None, conn: Any = None) -> int:
        """Queue a message of ``kind`` to each actor ``to`` names; it is composed (by the
        composer registered for ``kind``, see :mod:`humasflow.mail.compose`) and sent by
        :meth:`send_mail`.

        Inactive actors, actors with no email address and ids named twice are skipped.
        With ``conn`` (an open write transaction of this office's store) the rows are
        written in it: they exist only if it commits. An office without mail queues
        nothing.

        Returns:
            How many rows were queued.
        """
        if not self._mail_on:
            return 0
        if not isinstance(kind, str) or not kind.strip():
            raise ValueError(_("kind is empty: say what kind of message to queue"))
        if isinstance(to, str):
            raise TypeError(f"to must be a list of actor ids, got the string {to!r}; "
                            f"write to=[{to!r}]")
        wanted = list(dict.fromkeys(to))

        def write(c: Any) -> int:
            if len(wanted) == 1:
                found = self._store.actor(self.org, wanted[0], c)
                actors = [found] if found is not None else []
            else:
                known = {a.id: a for a in self._store.actors(self.org, c)}
                actors = [known[a] for a in wanted if a in known]
            return self._queue_rows(c, kind, actors, item_id, data)

        if conn is not None:
            return write(conn)
        with self._store.writing() as c:
            return write(c)

    def _queue_rows(self, conn: Any, kind: str, actors: Iterable[Actor],
                    item_id: int | None, data: Mapping[str, Any] | None) -> int:
        """Queue one row per actor who can receive mail (active, with an address)."""
        payload = plain(data or {})
        default = (self.mail.language if self.mail is not None else None) or "id"
        now = self._now()
        rows = [{"org": self.org, "kind": kind, "item_id": item_id, "recipient": a.id,
                 "address": a.email.strip(), "language": a.language or default,
                 "data": payload, "created_at": now, "attempts": 0, "next_attempt_at": now,
                 "status": "queued"}
                for a in actors if a.active and a.email.strip()]
        return self._store.queue_mail(conn, rows)

    @property
    def mail_transport(self) -> MailTransport | None:
        """How this office's mail leaves: the one given, else the ``mail_transport``
        hook's answer, else SMTP to ``mail.host`` (``None`` when there is none).

        Raises:
            ConfigurationError: ``mail.username`` is set but the credential source
                does not hold its password.
        """
        if self._mail_transport is None:
            found = plugins.pm.hook.mail_transport(office=self)
            if found is None and self.mail is not None and self.mail.host:
                from humasflow.mail.settings import mail_password
                from humasflow.mail.transport import SMTPTransport

                found = SMTPTransport(self.mail, mail_password(self.credentials, self.mail))
            self._mail_transport = found
        return self._mail_transport

    def mail_queue(self, status: str | None = None, *, limit: int = 100,
                   ) -> list[QueuedMail]:
        """The organisation's mail queue, newest first (``status``: only those)."""
        from humasflow.mail.queue import STATUSES, QueuedMail

        _check_limit(limit)
        if status is not None and status not in STATUSES:
            raise ValueError(_("status {status!r} is not a mail status; use one of: "
                               "{statuses}").format(status=status,
                                                    statuses=", ".join(STATUSES)))
        return [QueuedMail.from_row(r)
                for r in self._store.mail_rows(self.org, status=status, limit=limit)]

    def send_mail(self, *, now: dt.datetime | None = None, limit: int = 100,
                  ) -> list[QueuedMail]:
        """Compose and send the queued messages that are due (at most ``limit``).

        Each row is claimed first, so two senders at once never send one twice. A
        message that fails is retried later (after 1, 5, 15, 60 minutes, then every few
        hours), a permanent refusal or a 12th failure gives it up (``failed``), and a
        message no longer relevant (the item moved on) becomes ``obsolete``; nothing
        raises for one message.

        Returns:
            The rows attempted, as they stand after the attempt.

        Raises:
            ConfigurationError: The office has no way to send mail (no transport, no
                ``mail.host``), or its login's password is missing.
        """
        from humasflow.mail.queue import CLAIM, QueuedMail
        from humasflow.mail.settings import MailSettings

        _check_limit(limit)
        at = _utc(now) or self._now()
        transport = self.mail_transport
        if transport is None:
            raise ConfigurationError(_(
                "this office has no way to send mail: set mail.host (and mail.sender) in "
                "the [mail] section of the configuration file, or give the office a "
                "mail transport (see docs/mail.md)"))
        settings = self.mail or MailSettings()
        secret: list[bytes | None] = []
        sent: list[QueuedMail] = []
        batch = getattr(transport, "batch", None)  # one connection for all, if it can
        with batch() if callable(batch) else contextlib.nullcontext():
            for row in self._store.due_mail(self.org, at, limit):
                if not self._store.claim_mail(row["id"], row["attempts"], at, at + CLAIM):
                    continue  # another sender has it
                values = self._deliver(QueuedMail.from_row(row), transport, settings,
                                       secret, at)
                self._store.finish_mail(row["id"], values)
                sent.append(QueuedMail.from_row({**row, **values}))
        return sent

    def _mail_secret(self, settings: MailSettings, cache: list[bytes | None]) -> bytes | None:
        if not cache:
            from humasflow.mail.settings import mail_secret

            try:
                cache.append(mail_secret(self.credentials, settings))
            except ConfigurationError:
                cache.append(None)
        return cache[0]

    def _deliver(self, row: QueuedMail, transport: MailTransport, settings: MailSettings,
                 secret: list[bytes | None], at: dt.datetime) -> dict[str, Any]:
        """One attempt at one claimed row: the values to record."""
        from humasflow.errors import MailError
        from humasflow.mail.compose import composer
        from humasflow.mail.queue import MAX_ATTEMPTS, backoff

        attempts = row.attempts + 1
        obsolete = {"status": "obsolete", "attempts": row.attempts, "next_attempt_at": at}
        try:
            fn = composer(row.kind)
            if fn is None:
                raise MailError(_("no composer is registered for mail of kind {kind!r}")
                                .format(kind=row.kind), permanent=True)
            recipient = self._store.actor(self.org, row.recipient)
            if recipient is None or not recipient.active or not recipient.email.strip():
                return {**obsolete, "last_error": _("the recipient is no longer active or "
                                                    "has no email address")}
            item = None
            if row.item_id is not None:
                item = self._store.item(self.org, row.item_id)
                if item is None:
                    return {**obsolete, "last_error": _("the item no longer exists")}
            language = (i18n.normalise(recipient.language) or i18n.normalise(
                settings.language) or "id")
            with i18n.use(language):
                message = fn(self, item, recipient, language, row.data, settings,
                             self._mail_secret(settings, secret))
            if message is None:
                return {**obsolete, "last_error": None}
            _address(message, recipient.email.strip(), settings)
            transport.send(message)
        except Exception as exc:  # one message's failure never stops the others
            permanent = isinstance(exc, MailError) and exc.permanent
            error = scrub(str(exc) or type(exc).__name__)[:2000]
            log.warning("mail %s to %s failed (attempt %s): %s", row.id, row.recipient,
                        attempts, error)
            if permanent or attempts >= MAX_ATTEMPTS:
                return {"status": "failed", "attempts": attempts, "next_attempt_at": at,
                        "last_error": error}
            return {"status": "queued", "attempts": attempts,
                    "next_attempt_at": at + backoff(attempts), "last_error": error}
        return {"status": "sent", "attempts": attempts, "next_attempt_at": at,
                "sent_at": at, "last_error": None,
                "message_id": str(message["Message-ID"] or "")[:998] or None}

    # -- emailed answers ------------------------------------------------------------------

    def find_key(self, key: str) -> tuple[str, int] | None:
        """The organisation and number of the item whose global key is ``key``."""
        return self._store.item_by_key(key)

    def mail_reply_outcome(self, reply_key: str) -> str | None:
        """The outcome recorded for a processed reply (``reply_key``: its Message-ID's
        digest), or ``None`` if it was not processed."""
        return self._store.mail_reply(reply_key)

    def mail_token_used(self, nonce: str) -> bool:
        """Whether an accepted emailed answer used the approval token ``nonce``."""
        return self._store.token_used(nonce)

    def answer_by_email(self, item_id: int, action: str, *, by: str | Actor, note: str,
                        message_id: str, sender: str, reply_key: str,
                        nonce: str) -> ContentItem:
        """Approve or reject as an emailed reply says, once.

        The reply (``reply_key``) and its approval token (``nonce``) are claimed in the
        transaction that records the answer: if either was claimed before, nothing is
        written.

        Raises:
            AnswerTaken: The reply was processed, or the token used, already.
            Refused: As :meth:`approve` and :meth:`reject`.
        """
        if action not in ("approve", "reject"):
            raise ValueError(f"an emailed answer approves or rejects, not {action!r}")
        _input.text("note", note)
        at = self._now()

        def claim(conn: Any) -> None:
            if not self._store.claim_mail_reply(conn, key=reply_key, org=self.org,
                                                message_id=message_id, item_id=item_id,
                                                outcome="accepted", at=at):
                raise AnswerTaken("message")
            if not self._store.claim_mail_token(conn, nonce=nonce, org=self.org,
                                                item_id=item_id, reply_key=reply_key, at=at):
                raise AnswerTaken("token")

        return self._decide(item_id, action, by, note, None,
                            _via("email", {"message_id": message_id, "sender": sender}),
                            claim)

    def refuse_email(self, *, reply_key: str, message_id: str, sender: str, reason: str,
                     item_id: int | None = None,
                     detail: Mapping[str, Any] | None = None) -> Event | None:
        """Record that an emailed reply was refused, and why, once.

        The event (``mail_refused``) goes to the item's record when the reply names a
        known item of this organisation, else to the organisation's. It holds the
        reason, the Message-ID, the sender and ``detail``, never the reply's text.

        Returns:
            The event, or ``None`` if the reply was processed already (nothing written).
        """
        at = self._now()
        data = {"via": "email", "reason": reason, "message_id": message_id[:998],
                "sender": sender, **plain(detail or {})}
        with self._store.writing() as conn:
            if not self._store.claim_mail_reply(conn, key=reply_key, org=self.org,
                                                message_id=message_id, item_id=item_id,
                                                outcome=reason, at=at):
                return None
            event = Event(org=self.org, stream="", seq=0, at=at, actor="humasflow",
                          action="mail_refused", note="", data=data)
            if item_id is not None:
                return self._store.append_item_event(conn, event, item_id)
            return self._store.append_org_event(conn, event)

    def pass_recheck(self, item_id: int, *, by: str | Actor, note: str = "",
                     expected_version: int | None = None) -> ContentItem:
        """Record a passed recheck of the produced content."""
        return self.act(item_id, "pass", by=by, note=note, expected_version=expected_version)

    def rework(self, item_id: int, *, by: str | Actor, findings: str,
               expected_version: int | None = None) -> ContentItem:
        """Record a failed recheck with findings; it returns to production."""
        _input.text("findings", findings)
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
        _input.text("reason", reason)
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
                _("item {item_id} is at the posting step {step!r}: post it with "
                  "Office.post(), which publishes to its channels and then completes the "
                  "step").format(item_id=item.id, step=item.state),
                item_id=str(item.id), step=item.state, action=action)
        if action in ("revise", "cancel"):
            live = [c for c, p in self._store.publications(self.org, item.id, conn).items()
                    if p.state in ("posted", "in_flight", "unknown", "waiting")]
            if live:
                raise Refused(
                    _("item {item_id} cannot {action}: it is posted, or may be, on "
                      "{channels}; settle those channels first (confirm or skip)").format(
                          item_id=item.id, action=action, channels=", ".join(live)),
                    item_id=str(item.id), step=item.state, action=action)

    # -- publishing ---------------------------------------------------------------------------

    def _publisher(self, channel: ChannelConfig, *, credentials_required: bool = True) -> Any:
        factories = plugins.publisher_factories()
        factory = factories.get(channel.publisher)
        if factory is None:
            raise ConfigurationError(_(
                "channel {channel!r} uses the publisher {publisher!r}, which is "
                "not installed; installed: {installed}").format(
                    channel=channel.name, publisher=channel.publisher,
                    installed=", ".join(sorted(factories))))
        credentials = {}
        for key, var in channel.credentials.items():
            try:
                value = self.credential_value(var)
            except CredentialSourceError:
                if credentials_required:
                    raise
                value = None
            if not value and credentials_required:
                source = self.credentials
                raise CredentialMissing(channel.name, var, None if isinstance(
                    source, _credentials.EnvironmentSource) else _credentials.described(source))
            # Validation needs no network, so it works where the secrets are not set.
            credentials[key] = value or ""
            remember_secret(value)
        context = PublisherContext(
            credentials=credentials, session=self.session_factory(), clock=self.clock,
            channel=channel.name, media=self._media_or_none(),
            credentials_writable=bool(getattr(self.credentials, "writable", False)),
            on_refresh=functools.partial(self._credential_renewed, channel),
            on_expiry=functools.partial(self._credential_expires, channel))
        return factory(channel, context)

    def credential_value(self, reference: str) -> str | None:
        """The value of a credential reference, from the credential source (or as a
        publisher renewed it in this process, if the source could not keep it)."""
        renewed = self._renewed.get(reference)
        return renewed if renewed is not None else self.credentials.get(reference)

    # -- credentials that rotate ------------------------------------------------------

    def _credential_renewed(self, channel: ChannelConfig, name: str, value: str,
                            expires_at: dt.datetime | None) -> None:
        """A publisher renewed a credential: keep it, and record that (not the value)."""
        reference = channel.credentials[name]
        remember_secret(value)
        source = self.credentials
        stored = False
        try:
            source.put(reference, value)
            stored = bool(source.writable)
        except CredentialSourceError as exc:
            log.warning("channel %r renewed its credential %r (%s), but %s; until then this "
                        "process uses the renewed value", channel.name, name, reference,
                        scrub(str(exc)))
        except Exception as exc:
            log.warning("channel %r renewed its credential %r (%s), but %s could not store "
                        "it: %s: %s; until it is updated there this process uses the renewed "
                        "value", channel.name, name, reference, source.description,
                        type(exc).__name__, scrub(str(exc), [value]))
        if stored:
            self._renewed.pop(reference, None)
        else:
            self._renewed[reference] = value
        now = self._now()
        expires = _utc(expires_at)
        with self._store.writing() as conn:
            self._store.append_org_event(conn, Event(
                org=self.org, stream="org", seq=0, at=now, actor=f"channel:{channel.name}",
                action="credential_rotated",
                data={"channel": channel.name, "credential": name, "reference": reference,
                      "expires_at": expires.isoformat() if expires else None,
                      "stored": stored, "source": source.description}))
            self._store.put_credential_expiry(conn, self.org, reference, {
                "channel": channel.name, "credential": name, "expires_at": expires,
                "updated_at": now, "rotated_at": now})
        self._validating.clear()

    def _credential_expires(self, channel: ChannelConfig, name: str, at: dt.datetime) -> None:
        """A publisher learnt when a credential expires: keep it (recorded if it changed)."""
        reference = channel.credentials[name]
        expires = _utc(at)
        assert expires is not None
        expires = expires.replace(microsecond=0)
        known = self._store.credential_expiries(self.org).get(reference)
        if known is not None and known["expires_at"] == expires:
            return
        now = self._now()
        with self._store.writing() as conn:
            self._store.append_org_event(conn, Event(
                org=self.org, stream="org", seq=0, at=now, actor=f"channel:{channel.name}",
                action="credential_expiry",
                data={"channel": channel.name, "credential": name, "reference": reference,
                      "expires_at": expires.isoformat()}))
            self._store.put_credential_expiry(conn, self.org, reference, {
                "channel": channel.name, "credential": name, "expires_at": expires,
                "updated_at": now})

    def credential_warnings(self, within: dt.timedelta = dt.timedelta(days=7),
                            now: dt.datetime | None = None) -> list[CredentialWarning]:
        """The channels' credentials that expire within ``within`` (or have expired),
        soonest first, as far as their publishers reported an expiry time.

        Args:
            within: How far ahead to look (default: a week).
            now: Judge at this time (default: the clock's).
        """
        now = now or self._now()
        known = self._store.credential_expiries(self.org)
        warnings = []
        for channel in self.channels().values():
            for name, reference in sorted(channel.credentials.items()):
                row = known.get(reference)
                if row is None or row["expires_at"] is None:
                    continue
                expires = row["expires_at"]
                if expires - now <= within:
                    warnings.append(CredentialWarning(
                        channel=channel.name, credential=name, reference=reference,
                        expires_at=expires, expired=expires <= now))
        return sorted(warnings, key=lambda w: (w.expires_at, w.channel, w.credential))

    def post_for(self, item: ContentItem, channel: str, *, check: bool = True) -> Post:
        """The post as ``channel`` receives it, built from the media store.

        Each stored media's bytes are checked against their hash first, and given a
        public URL if a media host is configured (see the ``public_media_url`` hook).

        Raises:
            MediaUnavailable: A media file is not in the media store (never stored,
                missing since a migration, or deleted) or its bytes changed.
        """
        media = []
        for m in item.post.media_for(channel, item.media_to_post):
            if m.passthrough:
                media.append(m)
                continue
            if not m.is_stored or m.missing:
                raise MediaUnavailable(m.sha256 or "0" * 64, "missing",
                                       _("{source!r} of item {item_id}").format(
                                           source=m.source, item_id=item.id))
            if check:
                self.media.verify(m)
            url = self._media_url(m, channel)
            if url:
                m = attrs.evolve(m, url=url)
            media.append(m)
        return Post(item_id=item.id, channel=channel, title=item.title,
                    text=item.post.text_for(channel), media=tuple(media), link=item.post.link,
                    options=item.post.options_for(channel),
                    idempotency_key=idempotency_key(self._store.uuid, item.key, channel))

    def _media_url(self, media: Media, channel: str) -> str | None:
        if self.media_host is not None:
            return self.media_host(media, self.media)
        url: str | None = plugins.pm.hook.public_media_url(office=self, media=media,
                                                           channel=channel)
        return url

    def validate(self, item: ContentItem, post: PostContent | None = None) -> list[Problem]:
        """Check the item's post against every target channel's publisher."""
        return self._validator(self.channels)(item, post or item.post)

    def post_warnings(self, item: int | ContentItem) -> list[Problem]:
        """What the item's post breaks at its target channels so far, from any step on.

        The same check as at the design and approval steps (each channel's publisher
        validates the post, without network), leaving out what a later step still
        supplies (problems of the rule ``required``, such as media before the design
        step). A concept too long for a channel shows here at the concept step, long
        before the design step refuses it. A publisher that cannot check the post (not
        installed, or failing while it is made) is one problem, not an error: warnings
        never stop what shows them. Nothing is written.
        """
        found = item if isinstance(item, ContentItem) else self.item(item)
        if not found.is_open or not found.post.channels:
            return []
        try:
            problems = self.validate(found)
        except (ConfigurationError, MediaUnavailable) as exc:
            return [Problem("-", "channels", "configured", scrub(str(exc)))]
        except Exception as exc:  # a plugin's factory or validate: shown, never raised
            return [Problem("-", "channels", "check", scrub(_(
                "the channels' publishers could not check the post: {error}: {message}")
                .format(error=type(exc).__name__, message=exc)))]
        return [p for p in problems if p.rule != "required"]

    def _validator(self, channels: Callable[[], Mapping[str, ChannelConfig]],
                   ) -> Callable[[ContentItem, PostContent], list[Problem]]:
        def validate(item: ContentItem, post: PostContent) -> list[Problem]:
            problems: list[Problem] = []
            if not post.channels:
                return [Problem("-", "channels", "required",
                                _("the post has no target channel"))]
            configured = channels()
            probe = item if post is item.post else attrs.evolve(item, post=post)
            problems.extend(_variant_problems(post, probe.media_to_post))
            media_problems = _stored_problems(probe.media_to_post)
            for name in post.channels:
                channel = configured.get(name)
                if channel is None:
                    problems.append(Problem(name, "channels", "configured",
                                            _("no channel named {name!r} is configured")
                                            .format(name=name)))
                    continue
                if not channel.active:
                    problems.append(Problem(name, "channels", "active",
                                            _("channel {name!r} is deactivated")
                                            .format(name=name)))
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

    def publisher(self, channel: str | ChannelConfig) -> Any:
        """The channel's publisher, built with its credentials (for checks and tests).

        Raises:
            ConfigurationError: No such channel, or its publisher is not installed.
            CredentialMissing: A credential the channel names is not set.
        """
        if isinstance(channel, str):
            found = self.channels().get(channel)
            if found is None:
                self._check_channels([channel])
            assert found is not None
            channel = found
        return self._publisher(channel)

    def dispatcher(self, **options: Any) -> Dispatcher:
        """A :class:`~humasflow.publishing.dispatch.Dispatcher` for this office."""
        return Dispatcher(_PostingDesk(self), **options)

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
        return self.dispatcher().post(self._item_id(item_id), self.acting(by, "post"))

    def schedule(self, item_id: int, at: dt.datetime | None, *, by: str | Actor,
                 allow_past: bool = False) -> ContentItem:
        """Have the item posted at ``at`` by :meth:`run_due` (cron) or a worker.

        Scheduling an item again changes its time; ``at=None`` removes the schedule
        (see :meth:`unschedule`). Each is recorded as an event (``schedule`` with the new
        ``post_at`` and the ``previous`` one, or ``unschedule``). While the item waits
        for its time it is not overdue (see
        :attr:`~humasflow.models.ContentItem.deadline`).

        Args:
            at: An aware :class:`~datetime.datetime`. A local time that does not exist in
                its zone (skipped when daylight saving starts) or happens twice (when it
                ends) is refused: give those with an explicit UTC offset.
            allow_past: Take a time before the current minute (the item is then posted
                at the next pass); without it such a time is refused.

        Raises:
            TypeError: ``at`` is not a datetime (a date, a string).
            InputInvalid: ``at`` is naive, out of range, in a gap or in a fold, or in the
                past without ``allow_past``.
            Refused: Not at the posting step, the wrong role, or a stale approval.
        """
        if at is None:
            return self.unschedule(item_id, by=by)
        _input.moment("at", at)
        return self.dispatcher().schedule(self._item_id(item_id), at,
                                          self.acting(by, "schedule"), allow_past=allow_past)

    def unschedule(self, item_id: int, *, by: str | Actor) -> ContentItem:
        """Remove the item's schedule (recorded as an ``unschedule`` event); it then
        waits at the posting step to be posted or scheduled again.

        Raises:
            Refused: The item has no schedule, is not at the posting step, or ``by``
                does not hold the posting step's role.
        """
        return self.dispatcher().unschedule(self._item_id(item_id),
                                            self.acting(by, "unschedule"))

    def run_due(self, now: dt.datetime | None = None, *, limit: int = 100) -> list[PostReport]:
        """Post what is due now (scheduled items, channels whose retry time came)."""
        if now is not None:
            _input.moment("now", now)
        _check_limit(limit)
        return self.dispatcher().run_due(now, limit=limit)

    def confirm(self, item_id: int, channel: str, *, by: str | Actor, url: str | None = None,
                platform_id: str | None = None, not_posted: bool = False,
                attempt: int | None = None) -> PostReport:
        """Settle a channel a person checked on the platform: posted at ``url``, or not.

        ``attempt``: the attempt number the person checked (``Publication.attempts`` as
        shown to them); if the channel was tried again since, nothing is recorded. The
        answer never settles a later attempt than the one read when it is recorded.

        Raises:
            InputInvalid: ``url`` is not an ``http(s)://`` address with a host, or
                ``attempt`` is not a number of 0 or more (nothing is written).
            Refused: The channel was tried again after ``attempt``, or while confirming.
        """
        _input.ident("channel", channel, _input.CHANNEL)
        if url is not None:
            _input.web_url("url", url)
        if platform_id is not None:
            _input.ident("platform_id", platform_id, _input.PLATFORM_ID)
        if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)
                                    or attempt < 0):
            raise InputInvalid("attempt", _("is {value!r}, not an attempt number").format(
                value=attempt), _("give the attempt you checked, as the channel's status "
                                  "shows it (0 or more)"))
        return self.dispatcher().confirm(self._item_id(item_id), channel,
                                         self.acting(by, "confirm"), url=url,
                                         platform_id=platform_id, not_posted=not_posted,
                                         attempt=attempt)

    def retry(self, item_id: int, channel: str | None = None, *,
              by: str | Actor) -> PostReport:
        """Post a failed channel again now, once its cause is fixed (a renewed token):
        ``channel``, or every failed channel of the item when it is ``None``.

        Checked like :meth:`post` (the posting step, its role, a fresh approval);
        recorded as a ``channel_retry`` event per channel, then the attempt's outcome.

        Raises:
            Refused: The channel is not ``failed`` (an ``unknown`` one may be posted
                already: confirm it instead), the item has no failed channel, or the
                posting step's checks fail.
        """
        if channel is not None:
            _input.ident("channel", channel, _input.CHANNEL)
        return self.dispatcher().retry(self._item_id(item_id), channel,
                                       self.acting(by, "retry"))

    def skip(self, item_id: int, channel: str, *, by: str | Actor, reason: str) -> PostReport:
        """Drop one channel of the item (coordinator), so the others can close it."""
        _input.ident("channel", channel, _input.CHANNEL)
        _input.text("reason", reason)
        return self.dispatcher().skip(self._item_id(item_id), channel, self.acting(by, "skip"),
                                      reason=reason)

    def status(self, item_id: int) -> PostReport:
        """The item with each target channel's record."""
        item = self.item(item_id)
        return PostReport(item=item, publications=self._store.publications(self.org, item.id))

    def check_channels(self, *, summaries: dict[str, str] | None = None
                       ) -> dict[str, Exception | None]:
        """Verify every channel's credentials through its publisher, without posting.

        Returns each channel's error (``None`` when it passed); one channel's failure,
        whatever its kind (a refused token, an unreachable platform), never stops the
        others from being checked.

        Args:
            summaries: If given, filled with channel → the one line a publisher's
                ``check()`` returned about what it read (an account's name, a token's
                expiry), for the channels that passed and said something.
        """
        results: dict[str, Exception | None] = {}
        for name, channel in self.channels().items():
            try:
                said = self._publisher(channel).check()
            except Exception as exc:
                results[name] = exc
            else:
                results[name] = None
                if summaries is not None and isinstance(said, str) and said.strip():
                    summaries[name] = scrub(" ".join(said.split()))
        return results

    def publications(self, item_id: int) -> dict[str, Publication]:
        """Each target channel's record for the item."""
        self.item(item_id)
        return self._store.publications(self.org, self._item_id(item_id))

    def _log_failure(self, item_id: int, exc: Exception) -> None:  # scrubbed by the filter
        log.warning("item %s of %s could not be posted: %s", item_id, self.org, exc)

    # -- records, standard times ------------------------------------------------------------

    @property
    def calendar(self) -> WorkingCalendar:
        """The working calendar standard times in working time are measured with."""
        if self._calendar is None:
            zone = (self.sop().header.timezone if self._store.sop_revisions(self.org)
                    else "Asia/Jakarta")
            self._calendar = WorkingCalendar(timezone=zone)
        return self._calendar

    def _due(self, sop: SOP, standard: dt.timedelta | None,
             start: dt.datetime) -> dt.datetime | None:
        """When a step entered at ``start`` is due, on the SOP's clock."""
        if not standard:
            return None
        if sop.header.clock == "working":
            return self.calendar.add(start, standard)
        return start + standard

    def late_by(self, item: ContentItem, now: dt.datetime) -> dt.timedelta | None:
        """How late ``item`` is at its current step at ``now``, on its SOP's clock (working
        time when the SOP measures its standard times so, as the report does), or
        ``None`` when it is not late."""
        deadline = item.deadline
        if not item.is_overdue(now) or deadline is None:
            return None
        if self.sop(item.sop_revision).header.clock == "working":
            return self.calendar.working_time(deadline, now)
        return now - deadline

    def report(self, since: dt.datetime | dt.date, until: dt.datetime | dt.date, *,
               by: str | None = None, revision: int | None = None,
               channel: str | None = None, staff: str | None = None,
               now: dt.datetime | None = None) -> Report:
        """The evaluation report of a period (SOP step 9); see :mod:`humasflow.report`."""
        from humasflow.report import build_report

        return build_report(self, self._store, since, until, by=by, revision=revision,
                            channel=channel, staff=staff,
                            now=_input.moment("now", now) if now is not None else self._now())

    def compare_revisions(self, since: dt.datetime | dt.date, until: dt.datetime | dt.date,
                          revision: int | None = None, *, channel: str | None = None,
                          staff: str | None = None, min_sample: int | None = None,
                          now: dt.datetime | None = None) -> Comparison:
        """The period's steps for the items of ``revision`` (default: the current one)
        against those of the revision before it, step by step: sample sizes, medians,
        shares within the standard and their changes ("did the change help?"); see
        :class:`~humasflow.report.Comparison`. A side with fewer than ``min_sample``
        (default :data:`~humasflow.report.MIN_SAMPLE`) completions is marked too small
        to read a trend from."""
        from humasflow.report import MIN_SAMPLE, build_comparison

        return build_comparison(
            self, since, until, revision=revision, channel=channel, staff=staff,
            min_sample=MIN_SAMPLE if min_sample is None else min_sample,
            now=_input.moment("now", now) if now is not None else self._now())

    def history(self, item_id: int) -> list[Event]:
        """The item's events, oldest first."""
        self.item(item_id)
        return list(self._store.events(self.org, f"item:{self._item_id(item_id)}"))

    def timeline(self, item_id: int) -> list[StepRun]:
        """Each step visit of the item with its start, end and standard time."""
        item = self.item(item_id)
        return timeline(self.sop(item.sop_revision), self.history(item_id))

    def overdue(self, now: dt.datetime | None = None) -> list[Breach]:
        """The open items whose current step is past its standard time.

        An item waiting at the posting step for its scheduled time is not late: its
        :attr:`~humasflow.models.ContentItem.deadline` is that time plus the step's
        standard time, and the breach's ``due_at`` is that deadline.
        """
        now = _input.moment("now", now) if now is not None else self._now()
        breaches = []
        for item in self._store.items(self.org, overdue_at=now):
            deadline = item.deadline
            assert deadline is not None
            late_by = self.late_by(item, now)
            breaches.append(Breach(item=item, step=item.state, due_at=deadline,
                                   late_by=now - deadline if late_by is None else late_by))
        return sorted(breaches, key=lambda b: b.due_at)

    def inbox(self, actor_id: str | Actor, now: dt.datetime | None = None, *,
              zone: dt.tzinfo | None = None) -> Inbox:
        """What waits for one person, most urgent first (see :mod:`humasflow.inbox`):
        channels that failed, are unknown or wait for a person; approvals they may give
        (not their own items under four eyes); items late at a step whose role they
        hold; posts scheduled for today.

        Args:
            actor_id: Whose inbox.
            now: Judge at this time (default: the clock's).
            zone: The zone whose day is "today" (default: the current SOP's zone).

        Raises:
            ActorNotFound: No such actor in this organisation.
            ActorInactive: The actor was deactivated.
        """
        now = _input.moment("now", now) if now is not None else self._now()
        actor = self.acting(actor_id, "have an inbox")
        if zone is None:
            zone = zoneinfo.ZoneInfo(self.sop().header.timezone)
        return _inbox.build(self, actor, now, zone)

    def check_sla(self, now: dt.datetime | None = None) -> list[Breach]:
        """Fire ``standard_time_breached`` once for each new breach; return them.

        Call it from a scheduler (cron, a worker loop); it starts no thread.
        """
        now = _input.moment("now", now) if now is not None else self._now()
        fired = []
        for breach in self.overdue(now):
            if self._store.mark_breach(self.org, breach.item.id, breach.item.version):
                step = self.sop(breach.item.sop_revision).step(breach.step)
                self._hook("standard_time_breached", item=breach.item, step=step,
                           due_at=breach.due_at, now=now)
                fired.append(breach)
        return fired

    def check_credentials(self, within: dt.timedelta = dt.timedelta(days=7),
                          now: dt.datetime | None = None) -> list[CredentialWarning]:
        """Fire ``credential_expiring`` for each channel whose credential expires within
        ``within``, once as it comes near and once more when it has expired; return
        those warnings. A credential several channels share warns for each of them; a
        renewed one with a new expiry time warns again when that one comes near.

        Call it from a scheduler, with :meth:`check_sla` (``humasflow check-sla`` runs
        both).
        """
        now = _input.moment("now", now) if now is not None else self._now()
        by_reference: dict[str, list[CredentialWarning]] = {}
        for warning in self.credential_warnings(within, now):
            by_reference.setdefault(warning.reference, []).append(warning)
        fired = []
        for reference, warnings in by_reference.items():
            expires = warnings[0].expires_at
            # The stage it is at: near its expiry, or expired.
            since = expires if expires <= now else expires - within
            if self._store.mark_credential_warned(self.org, reference, expires, since, now):
                for warning in warnings:
                    self._hook("credential_expiring", warning=warning)
                    fired.append(warning)
        return fired

    def posted_between(self, since: dt.datetime, until: dt.datetime,
                       ) -> list[tuple[ContentItem, dict[str, str]]]:
        """The items posted after ``since`` until ``until``, oldest first, each with its
        channels' public URLs (``{channel: url}``); read in two queries."""
        return self._store.posted_between(self.org, _input.moment("since", since),
                                          _input.moment("until", until))

    def notify(self, notice: Notice) -> None:
        """Hand ``notice`` to the ``notify`` hook (humasflow's mail, an app's own way).

        humasflow gives its own notices (see :mod:`humasflow.notices`); an app may give
        its own kinds the same way. A failing plugin is logged, never raised, and does
        not keep the notice from the others.
        """
        self._hook("notify", notice=notice)

    def queue_digest(self, *, now: dt.datetime | None = None, force: bool = False,
                     by: str = "humasflow") -> int:
        """Queue the daily digest to the coordinators: what waits, what is late, what was
        posted, and the record's anchor.

        The anchor (see :meth:`anchor`) is taken now, in the transaction that queues the
        digest, and travels in it (in its text and as an attached JSON file), so each
        coordinator's mailbox keeps a copy outside the database: ``humasflow audit verify
        --anchor FILE`` against any of them catches a later rewrite of the record. What
        waits and what is late are read when the digest is sent, in each coordinator's
        language. One digest a day (in the SOP's time zone) unless ``force``.

        Returns:
            How many digests were queued (0: one was queued today already, or the office
            sends no mail, or no coordinator has an address).
        """
        if not self._mail_on:
            return 0
        at = _input.moment("now", now) if now is not None else self._now()
        zone = zoneinfo.ZoneInfo(self.sop().header.timezone)
        role = self.engine(self.current_revision()).approval_step.actor
        with self._store.writing() as conn:
            # Two senders at once (two servers on one PostgreSQL store) queue one digest:
            # the second waits here for the first to commit, then sees it.
            self._store.lock_org(conn, self.org)
            last = self._store.last_mail(conn, self.org, "digest")
            if last is not None and not force and last["created_at"].astimezone(
                    zone).date() == at.astimezone(zone).date():
                return 0
            to = [a for a in self._store.actors(self.org, conn) if role and a.has_role(role)]
            if not any(a.active and a.email.strip() for a in to):
                return 0
            sealed = self._store.checkpoint(conn, Event(
                org=self.org, stream="org", seq=0, at=at, actor=by, action="checkpoint",
                note="daily digest"))
            anchor = self._anchor_of(sealed, at)
            # The window starts where the last digest's ended, so nothing posted falls
            # between two digests or is told twice.
            since = _last_until(last) or at - dt.timedelta(days=1)
            return self._queue_rows(conn, "digest", to, None, {
                "anchor": anchor, "since": since.isoformat(), "until": at.isoformat()})

    def verify(self, *, anchor: Mapping[str, Any] | str | os.PathLike[str] | None = None,
               progress: Callable[[int], None] | None = None,
               visits: bool = False) -> audit.AuditReport:
        """Check the organisation's whole record.

        No event was edited, deleted, inserted or reordered; every row (items, channel
        records, actors, channels, SOP revisions) is what the latest event that wrote it
        says; every item's creation is in the organisation's stream; every checkpoint's
        stream heads are still there. With ``anchor`` (what :meth:`anchor` returned, or
        the file it was written to) the record must also still extend that anchor.
        ``progress`` is called with the number of events checked so far (every thousand,
        and at the end). With ``visits`` the step visits the evaluation report reads
        (derived from the events, not part of the record) are derived again and must be
        the ones stored.

        Raises:
            AnchorInvalid: The anchor cannot be read, or is another organisation's.
        """
        found = None if anchor is None else self._load_anchor(anchor)
        events, heads, tables = self._store.record(self.org, visits=visits)
        return audit.verify(events, heads, tables, anchor=found, progress=progress)

    def anchor(self, *, by: str = "humasflow") -> dict[str, Any]:
        """Record a checkpoint of every stream's length and head in the organisation's
        stream, and return the anchor to keep outside the database.

        The anchor is a small JSON-able document: ``org``, ``store`` (the store's UUID),
        ``location`` (its file or URL, without a password), ``time``, the
        checkpoint's ``seq`` and ``hash`` in the organisation's stream, and ``digest``
        (of every stream's head). ``verify(anchor=...)`` proves the record still
        extends it, so a rewrite of the whole database is caught.
        """
        now = self._now()
        with self._store.writing() as conn:
            sealed = self._store.checkpoint(conn, Event(
                org=self.org, stream="org", seq=0, at=now, actor=by, action="checkpoint"))
        return self._anchor_of(sealed, now)

    def _anchor_of(self, sealed: Event, now: dt.datetime) -> dict[str, Any]:
        return {"humasflow_anchor": 1, "org": self.org,
                "store": self._store.uuid, "location": self.location,
                "time": now.isoformat(), "seq": sealed.seq, "hash": sealed.hash,
                "digest": sealed.data["digest"], "streams": len(sealed.data["streams"])}

    def _load_anchor(self, anchor: Mapping[str, Any] | str | os.PathLike[str],
                     ) -> Mapping[str, Any]:
        source = "(given)"
        if not isinstance(anchor, Mapping):
            source = os.fspath(anchor)
            try:
                with builtins.open(source, encoding="utf-8") as handle:
                    anchor = json.load(handle)
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise AnchorInvalid(source, _("cannot be read ({error})").format(
                    error=exc)) from exc
            if not isinstance(anchor, Mapping):
                raise AnchorInvalid(source, _("is not a JSON object"))
        if not isinstance(anchor.get("seq"), int) or not isinstance(anchor.get("hash"), str):
            raise AnchorInvalid(source, _("has no integer 'seq' and text 'hash'"))
        if anchor.get("org") != self.org:
            raise AnchorInvalid(source, _("is organisation {other!r}'s, not {org!r}'s").format(
                other=anchor.get("org"), org=self.org))
        return anchor

    def export(self, out: IO[str], *, format: str = "jsonl",
               item_id: int | None = None) -> int:
        """Write the record (every event, or one item's) as ``jsonl`` or ``csv``."""
        stream = None if item_id is None else f"item:{self._item_id(item_id)}"
        events = self._store.events(self.org, stream)
        if format == "jsonl":
            return audit.export_jsonl(events, out)
        if format == "csv":
            return audit.export_csv(events, out)
        raise ValueError(_("format is {format!r}; use 'jsonl' or 'csv'").format(format=format))

    # -- corrective actions (SOP step 10) -------------------------------------------------------

    def _acting_in(self, conn: Any, by: str | Actor, action: str) -> Actor:
        actor_id = self._actor_id(by)
        actor = self._store.actor(self.org, actor_id, conn)
        if actor is None:
            raise ActorNotFound(actor_id, self.org)
        if not actor.active:
            raise ActorInactive(actor_id=actor.id, action=action)
        return actor

    def _coordinating_roles(self) -> set[str]:
        """The roles that record and close corrective actions: those that approve."""
        return {s.actor for s in self.sop().steps if s.output == "approval" and s.actor}

    def may_control(self, actor: Actor) -> bool:
        """Whether ``actor`` records and closes corrective actions (the coordinating
        role, or an administrator)."""
        return actor.is_admin or bool(set(actor.roles) & self._coordinating_roles())

    def _refuse_action(self, actor_id: str, what: str) -> Refused:
        return Refused(_("{actor_id!r} cannot {what}: only the coordinating role ({roles}) "
                         "or an administrator may").format(
                             actor_id=actor_id, what=_(what),
                             roles=", ".join(sorted(self._coordinating_roles())) or "-"),
                       item_id="-", step="-", action="control")

    def add_action(self, *, subject: str, target: str, finding: str, action: str,
                   owner: str | Actor, due: dt.date | str, by: str | Actor) -> CorrectiveAction:
        """Record a corrective action (the coordinating role or an administrator).

        Args:
            subject: ``report`` (target: ``SINCE/UNTIL``), ``breach`` (``ITEM/STEP``) or
                ``item`` (``ITEM``).
            target: What it is recorded against.
            finding: What went wrong.
            action: What is to be done.
            owner: The actor who carries it out.
            due: By when (a date, or ``YYYY-MM-DD``).
            by: Who records it.

        Raises:
            ValueError: A field is empty or malformed (the message names it).
            ActorNotFound: ``owner`` or ``by`` is not an actor here.
            ItemNotFound: The item (of an ``item`` or ``breach`` target) does not exist.
            Refused: ``by`` may not record actions.
        """
        if subject not in SUBJECTS:
            raise ValueError(_("subject is {value!r}; use one of: {allowed}").format(
                value=subject, allowed=", ".join(SUBJECTS)))
        due_date = parse_due(due)
        for field, value in (("finding", finding), ("action", action)):
            if not str(value).strip():
                raise ValueError(_("{field} is empty: say what was found and what is to be "
                                   "done").format(field=field))
        target = self._action_target(subject, str(target))
        owner_actor = self.acting(owner, "own a corrective action")
        now = self._now()
        with self._store.writing() as conn:
            self._store.lock_org(conn, self.org)
            actor = self._acting_in(conn, by, "record a corrective action")
            if not self.may_control(actor):
                raise self._refuse_action(actor.id, N_("record a corrective action"))
            number = max((int(r["id"]) for r in self._store.actions(self.org, conn)),
                         default=0) + 1
            row = self._store.put_action(conn, {
                "org": self.org, "id": number, "subject": subject, "target": target,
                "finding": str(finding), "action": str(action), "owner": owner_actor.id,
                "due": due_date, "status": "open", "closing_note": "", "created_by": actor.id,
                "created_at": now, "updated_at": now})
            made = CorrectiveAction.from_row(row)
            self._store.append_org_event(conn, Event(
                org=self.org, stream="org", seq=0, at=now, actor=actor.id,
                action="corrective_action", data=made.to_dict()))
        return made

    def _action_target(self, subject: str, target: str) -> str:
        target = target.strip()
        if subject == "report":
            parts = target.split("/")
            if len(parts) != 2:
                raise ValueError(_("target {value!r}: a report's target is its period, "
                                   "SINCE/UNTIL, e.g. 2026-01-01/2026-01-31").format(
                                       value=target))
            since, until = (parse_due(p, "target") for p in parts)
            return f"{since.isoformat()}/{until.isoformat()}"
        item_part, _sep, step = target.partition("/")
        if not item_part.isdigit():
            raise ValueError(_("target {value!r}: name the item by its number (12) or a "
                               "breach as ITEM/STEP (12/approve)").format(value=target))
        item = self.item(int(item_part))
        if subject == "breach":
            if not step:
                raise ValueError(_("target {value!r}: a breach is ITEM/STEP, e.g. "
                                   "12/approve").format(value=target))
            self.sop(item.sop_revision).step(step)
            return f"{item.id}/{step}"
        return str(item.id)

    def action(self, action_id: int) -> CorrectiveAction:
        """One corrective action.

        Raises:
            ActionNotFound: No such action in this organisation.
        """
        for row in self._store.actions(self.org):
            if str(row["id"]) == str(action_id):
                return CorrectiveAction.from_row(row)
        raise ActionNotFound(str(action_id), self.org)

    def actions(self, *, status: str | None = None, owner: str | None = None,
                subject: str | None = None, overdue: bool = False,
                today: dt.date | None = None) -> list[CorrectiveAction]:
        """The corrective actions, oldest first, optionally filtered.

        Args:
            status: Only those with this status.
            owner: Only this actor's.
            subject: Only those against a ``report``, ``breach`` or ``item``.
            overdue: Only open actions past their due date.
            today: The date overdue is judged on (default: today in the calendar's zone).
        """
        if status is not None and status not in STATUSES:
            raise ValueError(_("status is {value!r}; use one of: {allowed}").format(
                value=status, allowed=", ".join(STATUSES)))
        day = today or self.action_today()
        found = [CorrectiveAction.from_row(r) for r in self._store.actions(self.org)]
        return [a for a in found
                if (status is None or a.status == status)
                and (owner is None or a.owner == owner)
                and (subject is None or a.subject == subject)
                and (not overdue or a.is_overdue(day))]

    def action_today(self, now: dt.datetime | None = None) -> dt.date:
        """Today's date in the working calendar's zone (what due dates are read in)."""
        return (now or self._now()).astimezone(self.calendar.zone).date()

    def change_action(self, action_id: int, *, by: str | Actor, action: str | None = None,
                      owner: str | Actor | None = None, due: dt.date | str | None = None,
                      status: str | None = None, note: str = "") -> CorrectiveAction:
        """Change an action's text, owner, due date or status; each change is an event.

        The owner may change the text and due date; changing the owner or the status
        takes the coordinating role or an administrator.

        Raises:
            ActionNotFound: No such action.
            ValueError: A bad status or date.
            Refused: ``by`` may not make this change.
        """
        if status is not None and status not in STATUSES:
            raise ValueError(_("status is {value!r}; use one of: {allowed}").format(
                value=status, allowed=", ".join(STATUSES)))
        changes: dict[str, Any] = {}
        if action is not None:
            if not action.strip():
                raise ValueError(_("action is empty: say what is to be done"))
            changes["action"] = action
        if due is not None:
            changes["due"] = parse_due(due)
        if owner is not None:
            changes["owner"] = self.acting(owner, "own a corrective action").id
        if status is not None:
            changes["status"] = status
            if status != "open":
                changes["closing_note"] = note
        return self._update_action(action_id, changes, by=by, note=note,
                                   event="corrective_action_changed")

    def close_action(self, action_id: int, *, by: str | Actor, note: str,
                     status: str = "done") -> CorrectiveAction:
        """Close an action as ``done`` (or ``dropped``) with a closing note.

        Raises:
            ActionNotFound: No such action.
            ValueError: The note is empty or the status is not a closing one.
            Refused: ``by`` is neither the coordinating role nor an administrator.
        """
        if status not in ("done", "dropped"):
            raise ValueError(_("status is {value!r}; an action closes as 'done' or "
                               "'dropped'").format(value=status))
        if not note.strip():
            raise ValueError(_("note is empty: say what was done (or why it was dropped)"))
        return self._update_action(action_id, {"status": status, "closing_note": note},
                                   by=by, note=note, event="corrective_action_closed")

    def _update_action(self, action_id: int, changes: Mapping[str, Any], *, by: str | Actor,
                       note: str, event: str) -> CorrectiveAction:
        now = self._now()
        with self._store.writing() as conn:
            self._store.lock_org(conn, self.org)
            actor = self._acting_in(conn, by, "change a corrective action")
            rows = {str(r["id"]): r for r in self._store.actions(self.org, conn)}
            row = rows.get(str(action_id))
            if row is None:
                raise ActionNotFound(str(action_id), self.org)
            controlling = self.may_control(actor)
            if not controlling and (actor.id != row["owner"] or
                                    {"owner", "status"} & set(changes)):
                raise self._refuse_action(actor.id, N_("change this corrective action"))
            values = {**row, **changes, "updated_at": now}
            changed = CorrectiveAction.from_row(self._store.put_action(conn, values))
            self._store.append_org_event(conn, Event(
                org=self.org, stream="org", seq=0, at=now, actor=actor.id, action=event,
                note=note, data=changed.to_dict()))
        return changed

    def export_actions(self, out: IO[str], *, format: str = "csv", **filters: Any) -> int:
        """Write the (filtered, see :meth:`actions`) actions as ``csv`` or ``json``."""
        from humasflow.actions import export_actions_csv, export_actions_json

        found = self.actions(**filters)
        if format == "csv":
            return export_actions_csv(found, out)
        if format == "json":
            return export_actions_json(found, out)
        raise ValueError(_("format is {format!r}; use 'csv' or 'json'").format(format=format))

    # -- hooks ----------------------------------------------------------------------------------

    def _hook(self, name: str, **kwargs: Any) -> None:
        """Call every implementation of an event hook, each on its own, newest first (as
        pluggy orders them): one that fails is logged and the others still run."""
        caller = getattr(plugins.pm.hook, name)
        impls = caller.get_hookimpls()
        if not impls:
            return  # nobody listens
        given = {"office": self, **kwargs}
        if any(impl.hookwrapper or impl.wrapper for impl in impls):
            # A wrapper wraps the others: pluggy runs them together, as one call.
            try:
                caller(**given)
            except Exception:
                log.exception("a humasflow plugin failed in hook %s", name)
            return
        for impl in reversed(impls):
            try:
                impl.function(*[given[arg] for arg in impl.argnames])
            except Exception:
                # The action is already committed; a failing hook must not look like a
                # failed action, nor keep the event from the other plugins. It is
                # logged with its traceback instead.
                log.exception("a humasflow plugin failed in hook %s (%s)", name,
                              impl.plugin_name)


def _last_until(row: Mapping[str, Any] | None) -> dt.datetime | None:
    """Where the window of the digest queued as ``row`` ended."""
    until = (row["data"] or {}).get("until") if row is not None else None
    try:
        return dt.datetime.fromisoformat(until) if isinstance(until, str) else None
    except ValueError:
        return None


def _iso(when: dt.datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _address(message: Any, to: str, settings: MailSettings) -> None:
    """Fill the headers a composer may leave out: To, From, Date, Message-ID."""
    from email.utils import formatdate, make_msgid

    if message["To"] is None:
        message["To"] = to
    if message["From"] is None and settings.sender:
        message["From"] = settings.sender
    if message["Date"] is None:
        message["Date"] = formatdate(usegmt=True)
    if message["Message-ID"] is None:
        message["Message-ID"] = make_msgid(domain=settings.message_domain)


def _via(via: str | None, evidence: Mapping[str, str] | None) -> dict[str, Any]:
    """The event data that says how an answer came."""
    _input.text("via", via or "")
    data: dict[str, Any] = {"via": via} if via else {}
    for key, value in (evidence or {}).items():
        _input.text(f"evidence.{key}", value)
        data[str(key)] = value
    return data


def _variant_problems(post: PostContent, media: Sequence[Media]) -> list[Problem]:
    """Variants for channels the post does not target, and media positions it lacks."""
    problems = []
    for name, variant in sorted(post.variants.items()):
        if name not in post.channels:
            if post.channels:
                message = _("there is a variant for {name!r}, which is not a target channel "
                            "of the post; targets: {targets}")
            else:
                message = _("there is a variant for {name!r}, which is not a target channel "
                            "of the post; targets: none")
            problems.append(Problem(
                name, "variants", "target",
                message.format(name=name, targets=", ".join(post.channels)), actual=name))
        for i in variant.media or ():
            if i >= len(media):
                problems.append(Problem(
                    name, "variants.media", "media_index",
                    _("the variant attaches media number {index} (counted from 0), but the "
                      "item has {count} media").format(index=i, count=len(media)),
                    limit=len(media) - 1, actual=i))
    return problems


class _PostingDesk:
    """The office as the dispatcher sees it (:class:`~humasflow.publishing.dispatch.
    PostingOffice`): the few services posting needs, under public names."""

    def __init__(self, office: Office) -> None:
        self._office = office
        self.org = office.org
        self.store = office._store
        self.actor = office.actor
        self.engine = office.engine
        self.sop = office.sop
        self.channels = office.channels
        self.history = office.history
        self.post_for = office.post_for
        self.publisher = office.publisher
        self.now = office.now
        self.record = office._record
        self.write = office._write
        self.recorded = office._after
        self.notify = office._hook
        self.report_failure = office._log_failure

    def item(self, item_id: int) -> ContentItem:
        return self._office.item(item_id)

    def validate(self, item: ContentItem,
                 channels: Mapping[str, ChannelConfig] | None = None) -> list[Problem]:
        if channels is None:
            return self._office.validate(item)
        return self._office._validator(lambda: channels)(item, item.post)


def _no_channel(name: str, org: str, known: Iterable[str], *, add: bool = False) -> str:
    """The message for a channel name the organisation does not have."""
    configured = ", ".join(sorted(known))
    if configured and add:
        message = _("no channel named {name!r} in organisation {org!r}; configured: "
                    "{configured} (add one with `humasflow channel add` or "
                    "Office.add_channel())")
    elif add:
        message = _("no channel named {name!r} in organisation {org!r}; configured: none "
                    "(add one with `humasflow channel add` or Office.add_channel())")
    elif configured:
        message = _("no channel named {name!r} in organisation {org!r}; configured: "
                    "{configured}")
    else:
        message = _("no channel named {name!r} in organisation {org!r}; configured: none")
    return message.format(name=name, org=org, configured=configured)


def _check_org(org: Any) -> None:
    _input.ident("org", org, _input.ORG_ID)
    if not org.strip():
        raise InputInvalid("org", _("is empty"), _("give the organisation a short id"))


def _check_limit(limit: Any) -> None:
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be a whole number, got {type(limit).__name__}")
    if not 0 <= limit <= _input.MAX_ID:
        raise InputInvalid("limit", _("is {limit}").format(limit=limit),
                           _("give a number from 0 up"))


def _check_post_fields(fields: Mapping[str, Any]) -> None:
    """Check the strings of a post's fields (and of step outputs) before anything is
    stored; values of the wrong type are left to the engine's own type checks."""
    limits = {"text": _input.TEXT, "notes": _input.TEXT, "link": _input.LINK}
    for key, value in fields.items():
        if key in limits and isinstance(value, str):
            _input.text(key, value, limits[key])
        elif key == "variants" and isinstance(value, Mapping):
            for name, variant in value.items():
                if isinstance(name, str):
                    _input.ident("variants key", name, _input.CHANNEL)
                    if isinstance(variant, str):
                        _input.text(f"variants[{name!r}]", variant, _input.TEXT)
                    elif isinstance(variant, Mapping) and isinstance(variant.get("text"), str):
                        _input.text(f"variants[{name!r}].text", variant["text"], _input.TEXT)
        elif key == "channels" and isinstance(value, (list, tuple, set, frozenset)):
            for name in value:
                if isinstance(name, str):
                    _input.ident("channels", name, _input.CHANNEL)
        elif key == "media":
            media = [value] if isinstance(value, (str, Media, Mapping)) else value
            if not isinstance(media, (list, tuple)):
                continue
            for i, m in enumerate(media):
                source = m.source if isinstance(m, Media) else m.get("source") \
                    if isinstance(m, Mapping) else m
                alt = m.alt if isinstance(m, Media) else m.get("alt", "") \
                    if isinstance(m, Mapping) else ""
                if isinstance(source, str):
                    _input.ident(f"media[{i}]", source, _input.MEDIA_SOURCE)
                if isinstance(alt, str):
                    _input.text(f"media[{i}].alt", alt, _input.MEDIA_ALT)
                if isinstance(m, Media):
                    _input.ident(f"media[{i}].kind", m.kind, _input.PUBLISHER)
                    _input.ident(f"media[{i}].url", m.url, _input.URL)


def _utc(when: dt.datetime | None) -> dt.datetime | None:
    return None if when is None else when.astimezone(dt.timezone.utc)


def _stored_problems(media: Sequence[Media]) -> list[Problem]:
    problems = []
    for i, m in enumerate(media):
        if m.passthrough:
            continue
        if m.missing:
            problems.append(Problem(
                "-", f"media[{i}]", "media_missing",
                _("{source!r} was recorded by path before the media store, and the file "
                  "was gone when the store was migrated: attach it again (revise)").format(
                      source=m.source),
                actual=m.source))
        elif not m.is_stored:
            problems.append(Problem(
                "-", f"media[{i}]", "media_stored",
                _("{source!r} is not in the media store: attach it through the "
                  "office").format(source=m.source),
                actual=m.source))
    return problems


def _size_problems(name: str, channel: ChannelConfig,
                   media: Sequence[Media]) -> list[Problem]:
    limit = channel.settings.get("media_max_bytes")
    if not isinstance(limit, int) or isinstance(limit, bool):
        return []
    return [Problem(name, f"media[{i}]", "max_bytes",
                    _("{source!r} is {size} bytes; channel {name!r} takes media files of "
                      "at most {limit} bytes").format(source=m.source, size=m.size, name=name,
                                                      limit=limit),
                    limit=limit, actual=m.size)
            for i, m in enumerate(media) if m.size is not None and m.size > limit]


def open(
    target: str = "humasflow.db",
    *,
    org: str = DEFAULT_ORG,
    clock: Clock = system_clock,
    environ: Mapping[str, str] | None = None,
    credentials: CredentialSource | str | os.PathLike[str] | None = None,
    establish: bool = True,
    busy_timeout: float | None = None,
    media: Any = None,
    media_roots: Sequence[str | os.PathLike[str]] = (),
    media_max_bytes: int | None = None,
    media_host: Callable[[Media, Any], str | None] | None = None,
    create: bool = True,
    calendar: WorkingCalendar | None = None,
    mail: MailSettings | None = None,
    mail_transport: MailTransport | None = None,
) -> Office:
    """Open (creating and migrating if needed) a store and return an organisation's office.

    Args:
        target: A SQLite file path, or a URL such as ``postgresql://host/db``.
        org: The organisation id (default ``"default"``).
        clock: The clock.
        environ: Environment variables channel credentials are read from.
        credentials: The credential source, or the path of a secrets file (see
            :class:`Office`).
        media: The media store: a folder or a
            :class:`~humasflow.mediastore.MediaStore` (default: beside a SQLite file;
            required for PostgreSQL unless the ``media_store`` hook gives one).
        media_roots: Folders local media may be attached from, besides the working
            directory.
        media_max_bytes: The largest media file accepted (see :class:`Office`).
        media_host: Gives stored media a public URL (see :class:`Office`).
        establish: Register the bundled SOP if the organisation has no revision and no
            administrator yet (this first establishment is part of setting up;
            everything later needs an administrator, see :meth:`Office.bootstrap_admin`).
        busy_timeout: Seconds a write waits for another writer's lock before it fails
            with :class:`~humasflow.errors.StoreLocked` (default 30; see
            :class:`~humasflow.storage.store.Store`).
        create: Create the SQLite file and the organisation if they do not exist yet
            (default). With ``False`` nothing is created: a SQLite file that does not
            exist raises :class:`~humasflow.errors.StorageError`, an organisation the
            store does not hold :class:`~humasflow.errors.OrganisationNotFound`.
        calendar: The working calendar (see :class:`Office`).
        mail: The mail settings (see :class:`Office`).
        mail_transport: How mail leaves (see :class:`Office`).

    Raises:
        InputInvalid: ``org`` is not an id a store can hold (nothing is created).
    """
    _check_org(org)
    timeout = DEFAULT_BUSY_TIMEOUT if busy_timeout is None else busy_timeout
    if not create and isinstance(target, (str, os.PathLike)):
        text = os.fspath(target)
        if "://" not in text and text != ":memory:" and not Path(text).exists():
            raise StorageError(_(
                "there is no humasflow store at {path!r}; create one with `humasflow "
                "init` (or humasflow.open(..., create=True)), or give the path of an "
                "existing one").format(path=text))
    store = Store(target, busy_timeout=timeout)
    try:
        extra: dict[str, Any] = {}
        if media_max_bytes is not None:
            extra["media_max_bytes"] = media_max_bytes
        office = Office(store, org, clock=clock, environ=environ, credentials=credentials,
                        media_store=media, media_roots=media_roots, media_host=media_host,
                        create=create, calendar=calendar, mail=mail,
                        mail_transport=mail_transport, **extra)
    except BaseException:
        store.close()
        raise
    if establish and not office._store.sop_revisions(org) and not office.administrators():
        # Setting the organisation up: its first revision needs no administrator yet.
        # Once it has one, the administrator establishes what applies.
        office.establish(by=bundled_sop().header.approved_by_name or "unknown")
    return office


#: The rules handed to :func:`~humasflow.mediastore.attach` for media that only pass
#: through (it reads no file and fetches nothing for them, so they are never applied).
_PASS_RULES = AttachRules(roots=())


def _passes_through(configured: Mapping[str, ChannelConfig],
                    channels: Sequence[str] | Callable[[], Sequence[str]]) -> bool:
    """Whether media URLs are handed to ``channels`` as they are (not fetched): only if
    every target channel asks for it (``media_urls = "pass"``). The targets need not be
    read when every configured channel asks for it."""
    passing = {n for n, c in configured.items() if c.settings.get("media_urls") == "pass"}
    if not passing:
        return False
    if passing == set(configured):
        return True
    names = channels() if callable(channels) else channels
    targets = [c for c in names if c in configured]
    return bool(targets) and set(targets) <= passing


class _FetchFirst(Exception):
    """Raised in an action's transaction: its media URLs are to be fetched (the channels
    do not pass them through) before it runs again; nothing was written."""

    def __init__(self, configured: Mapping[str, ChannelConfig], targets: Sequence[str],
                 item_id: str, step: str) -> None:
        super().__init__(item_id)
        self.configured = configured
        self.targets = targets
        self.item_id = item_id
        self.step = step
