"""Notifications: who is told what, when something happens to an item.

The office's event hooks say what happened; this built-in plugin turns the ones a
person must hear about into a :class:`Notice` (what, about which item, to whom) and
hands each to the ``notify`` hook. humasflow's own ``notify`` queues an email in each
recipient's language (:mod:`humasflow.mail.notify`, when the office sends mail); an app
implements ``notify`` to tell people its own way (a chat message, a web notification)::

    from humasflow import hookimpl

    class Chat:
        @hookimpl
        def notify(self, office, notice):
            for actor in notice.to:
                chat.send(actor.id, f"{notice.kind}: item {notice.item.id}")

============================ ============================================ =====================
kind                         when                                         to
============================ ============================================ =====================
``rejected``                 the coordinator rejected a concept           the item's authors
                                                                          and assignee
``rework``                   the recheck returned the produced content    the item's authors
                                                                          and assignee
``posted``                   every channel of an item is settled          the authors, the
                                                                          coordinators
``channel_failed``           a channel failed and is not retried          who post it
``channel_unknown``          a channel may have posted and the worker     who post it
                             will not look it up, or waits to be posted
                             by hand: a person must confirm it
``breach``                   an item ran past its step's standard time    the coordinators
``credential_expiring``      a channel's credential expires within the    the administrators
                             week (once as it nears, once when expired)
============================ ============================================ =====================

"Who post it" are the item's authors, its assignee and whoever scheduled its post. The
person who rejected or returned an item is not told about it, nor is an inactive actor.
A failed channel that is retried automatically tells nobody yet; its last failure does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from humasflow.hookspecs import hookimpl
from humasflow.models import Actor, ContentItem, Event, Publication

if TYPE_CHECKING:
    from humasflow.credentials import CredentialWarning
    from humasflow.office import Office
    from humasflow.sop import Step

__all__ = ["KINDS", "Notice"]

#: Every kind of notice humasflow gives.
KINDS = ("rejected", "rework", "posted", "channel_failed", "channel_unknown", "breach",
         "credential_expiring")


@attrs.frozen
class Notice:
    """Something a person must hear about.

    Attributes:
        kind: One of :data:`KINDS` (an app may give its own kinds).
        org: The organisation.
        to: Who is told (active actors, each with their language).
        at: When it happened.
        item: The item it is about, if any.
        data: What the kind says besides the item: ``reason`` (``rejected``),
            ``findings`` (``rework``), ``channels`` (``posted``: each channel's state
            and URL), ``channel``, ``error`` (``channel_failed``, ``channel_unknown``),
            ``step``, ``due_at``, ``late_by_seconds`` (``breach``), ``channel``,
            ``credential``, ``expires_at``, ``expired`` (``credential_expiring``), and
            ``by`` (the actor whose action caused it) where there is one.
    """

    kind: str
    org: str
    to: tuple[Actor, ...]
    at: dt.datetime
    item: ContentItem | None = None
    data: Mapping[str, Any] = attrs.field(factory=dict)


def _recipients(office: Office, ids: Iterable[str | None] = (), *,
                roles: Iterable[str | None] = (), admins: bool = False,
                leave_out: str | None = None) -> tuple[Actor, ...]:
    """The active actors named, holding one of ``roles`` (or administrators), in order;
    nobody when no notice would reach anyone (no mail, no other ``notify`` plugin): the
    actors are not read for nothing."""
    if not _heard(office):
        return ()
    wanted = [i for i in dict.fromkeys(ids) if i]
    wanted_roles = {r for r in roles if r}
    chosen: dict[str, Actor] = {}
    actors = {a.id: a for a in office.actors()}
    for actor_id in wanted:
        if actor_id in actors:
            chosen[actor_id] = actors[actor_id]
    for actor in actors.values():
        if (wanted_roles & set(actor.roles)) or (admins and actor.is_admin):
            chosen.setdefault(actor.id, actor)
    return tuple(a for a in chosen.values() if a.active and a.id != leave_out)


def _heard(office: Office) -> bool:
    """Whether a notice would reach anyone: the office sends mail, or a plugin other
    than humasflow's mail implements ``notify``."""
    from humasflow import plugins

    return office.mail_enabled or any(impl.plugin_name != "humasflow.mail.notices"
                                      for impl in plugins.pm.hook.notify.get_hookimpls())


def _give(office: Office, notice: Notice) -> None:
    if notice.to:
        office.notify(notice)


def _coordinators(office: Office, item: ContentItem) -> set[str | None]:
    return {office.engine(item.sop_revision).approval_step.actor}


def _posters(item: ContentItem) -> list[str | None]:
    return [*sorted(item.authors), item.assignee, item.post_by]


@hookimpl
def transition_done(office: Office, item: ContentItem, event: Event) -> None:
    """A rejection or a failed recheck tells the item's authors why."""
    if event.action not in ("reject", "rework"):
        return
    kind, key = ("rejected", "reason") if event.action == "reject" else ("rework",
                                                                        "findings")
    data = {key: event.note, "by": event.actor, "step": event.from_state,
            "returned_to": event.to_state}
    if event.data.get("via"):
        data["via"] = event.data["via"]
    _give(office, Notice(kind, office.org, _recipients(
        office, [*sorted(item.authors), item.assignee], leave_out=event.actor), event.at,
        item, data))


def _channel_notice(office: Office, kind: str, item: ContentItem,
                    publication: Publication) -> None:
    data = {"channel": publication.channel, "state": publication.state,
            "error": publication.error_message or "", "error_class":
            publication.error_class or "", "attempts": publication.attempts}
    at = publication.updated_at or office.now()
    _give(office, Notice(kind, office.org, _recipients(office, _posters(item)), at, item,
                         data))


@hookimpl
def channel_failed(office: Office, item: ContentItem, publication: Publication) -> None:
    """A channel that failed and is not retried tells who post it."""
    if publication.next_attempt_at is None:
        _channel_notice(office, "channel_failed", item, publication)


@hookimpl
def channel_unknown(office: Office, item: ContentItem, publication: Publication) -> None:
    """A channel someone must look up or post by hand tells who post it (not one the
    worker will look up on the platform by itself)."""
    if publication.state == "waiting" or publication.next_attempt_at is None:
        _channel_notice(office, "channel_unknown", item, publication)


@hookimpl
def item_posted(office: Office, item: ContentItem, publications: Mapping[str, Any]) -> None:
    """A posted item tells its authors and the coordinators where it is."""
    channels = {name: {"state": p.state, "url": p.url or ""}
                for name, p in sorted(publications.items())}
    _give(office, Notice("posted", office.org, _recipients(
        office, sorted(item.authors), roles=_coordinators(office, item)),
        item.step_started_at or office.now(), item, {"channels": channels}))


@hookimpl
def standard_time_breached(office: Office, item: ContentItem, step: Step,
                           due_at: dt.datetime, now: dt.datetime) -> None:
    """A breach of a standard time tells the coordinators."""
    late = office.late_by(item, now) or (now - due_at)
    _give(office, Notice("breach", office.org, _recipients(
        office, roles=_coordinators(office, item)), now, item, {
            "step": step.key, "due_at": due_at.isoformat(), "assignee": item.assignee or "",
            "late_by_seconds": int(late.total_seconds())}))


@hookimpl
def credential_expiring(office: Office, warning: CredentialWarning) -> None:
    """A credential about to expire tells the administrators."""
    _give(office, Notice("credential_expiring", office.org, _recipients(office, admins=True),
                         office.now(), None, {
                             "channel": warning.channel, "credential": warning.credential,
                             "reference": warning.reference,
                             "expires_at": warning.expires_at.isoformat(),
                             "expired": warning.expired}))
