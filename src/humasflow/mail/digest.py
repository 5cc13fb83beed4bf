"""The daily digest: what waits for the coordinator, what is late, what was posted, and
the record's anchor.

:meth:`Office.queue_digest <humasflow.office.Office.queue_digest>` takes the anchor
when it queues the digest; this composer writes the rest when the digest is sent, in
the coordinator's language, from the office as it is then. The anchor travels twice:
in the text (its sequence number and digest, to read) and as an attached JSON file
that ``humasflow audit verify --anchor FILE`` reads as it is.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

from humasflow import i18n
from humasflow.i18n import _
from humasflow.mail.compose import actor_name, local_time, short_title, step_name, text_message
from humasflow.models import Actor, ContentItem

__all__ = ["anchor_file_name", "compose_digest"]

_RULE = "-" * 60


def anchor_file_name(anchor: Mapping[str, Any]) -> str:
    """The name the anchor is attached under: ``humasflow-anchor-<org>-<seq>.json``."""
    org = "".join(c if c.isalnum() or c in "-_" else "-" for c in str(anchor.get("org")))
    return f"humasflow-anchor-{org}-{anchor.get('seq')}.json"


def _short(title: str) -> str:
    return short_title(title, 60)


def _waiting(office: Any, recipient: Actor, now: dt.datetime, zone: dt.tzinfo) -> list[str]:
    words = {"failed": _("a channel failed"), "unknown": _("a channel to check"),
             "waiting": _("a channel to post by hand"), "late": _("late"),
             "action": _("a corrective action overdue"), "approve": _("to approve"),
             "scheduled": _("scheduled today")}
    lines = []
    for entry in office.inbox(recipient.id, now=now, zone=zone):
        what = words.get(entry.kind, entry.kind)
        line = f"- #{entry.item_id} {_short(entry.title)}: {what}"
        if entry.channel:
            line += f" ({entry.channel})"
        if entry.late_by is not None:
            line += ", " + _("{late} late").format(
                late=i18n.format_duration(entry.late_by, words=True))
        elif entry.due_at is not None:
            line += ", " + _("due {when}").format(when=local_time(entry.due_at, zone))
        lines.append(line)
    return lines or [_("Nothing waits for you.")]


def _late(office: Any, now: dt.datetime) -> list[str]:
    lines = []
    for breach in office.overdue(now):
        item = breach.item
        where = step_name(office, item.sop_revision, breach.step)
        lines.append(_("- #{id} {title}: {step}, {late} late, assignee {assignee}").format(
            id=item.id, title=_short(item.title), step=where,
            late=i18n.format_duration(breach.late_by, words=True),
            assignee=actor_name(office, item.assignee) if item.assignee else _("nobody")))
    return lines or [_("Nothing is late.")]


def _posted(office: Any, since: dt.datetime, until: dt.datetime) -> list[str]:
    lines = []
    for item, found in office.posted_between(since, until):
        urls = [f"{name}: {url}" for name, url in found.items()]
        lines.append(f"- #{item.id} {_short(item.title)}"
                     + (" \u2014 " + ", ".join(urls) if urls else ""))
    return lines or [_("Nothing was posted.")]


def compose_digest(office: Any, item: ContentItem | None, recipient: Actor, language: str,
                   data: Mapping[str, Any], settings: Any,
                   secret: bytes | None) -> EmailMessage | None:
    """The digest to one coordinator, with the anchor taken when it was queued."""
    anchor = data.get("anchor") or {}
    zone = zoneinfo.ZoneInfo(office.sop().header.timezone)
    until = dt.datetime.fromisoformat(str(data["until"]))
    since = dt.datetime.fromisoformat(str(data["since"]))
    now = office.now()
    day = i18n.format_date(until.astimezone(zone))
    name = anchor_file_name(anchor)
    lines = [_("Dear {name},").format(name=recipient.name), "",
             _("This is the daily digest of {org} for {day}.").format(org=office.org,
                                                                      day=day),
             "", _RULE, _("Waiting for you"), _RULE, *_waiting(office, recipient, now, zone),
             "", _RULE, _("Late"), _RULE, *_late(office, now),
             "", _RULE, _("Posted since {when}").format(when=local_time(since, zone)), _RULE,
             *_posted(office, since, until),
             "", _RULE, _("The record's anchor"), _RULE,
             _("Keep this email: it holds the record's anchor, taken at {when}. Checked "
               "against it, any later rewrite of the record is found:").format(
                   when=local_time(until, zone)),
             "    humasflow " + ("" if office.org == "default" else f"--org {office.org} ")
             + "audit verify --anchor " + name,
             _("Sequence number {seq}, digest {digest}").format(
                 seq=anchor.get("seq"), digest=anchor.get("digest")), "",
             _("This email was sent by humasflow for {org}.").format(org=office.org)]
    text = "\n".join(lines) + "\n"
    message = text_message(_("Daily digest of {org}: {day}").format(org=office.org, day=day),
                           text, language=language, to=recipient.email, settings=settings)
    message.add_attachment(json.dumps(anchor, indent=2, sort_keys=True).encode("utf-8"),
                           maintype="application", subtype="json", filename=name)
    message["Content-Language"] = language
    return message
