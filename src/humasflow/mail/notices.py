"""Notifications by email: the built-in ``notify`` plugin and a composer for each kind.

A :class:`~humasflow.notices.Notice` queues one message per recipient (in the mail
queue, sent by ``humasflow mail send``), when the office sends mail. Each is composed
when it is sent, in the recipient's language, from what the notice recorded and the
item as it is then: a rejection with its reason, a recheck returned with its findings,
a post with its public URLs, a channel that needs a person with what to do, a breach
with how late the item is, a credential with when it expires.
"""

from __future__ import annotations

import datetime as dt
import functools
import zoneinfo
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from typing import Any

from humasflow import i18n
from humasflow.hookspecs import hookimpl
from humasflow.i18n import _
from humasflow.mail.compose import (
    actor_name,
    local_time,
    short_title,
    step_name,
    text_message,
)
from humasflow.models import Actor, ContentItem
from humasflow.notices import Notice

__all__ = ["COMPOSERS", "notify"]


@hookimpl
def notify(office: Any, notice: Notice) -> None:
    """Queue the notice as an email to each recipient, if the office sends mail."""
    from humasflow.mail.compose import composer

    if not office.mail_enabled or composer(notice.kind) is None:
        return  # no mail, or a kind nobody composes an email for
    office.queue_mail(notice.kind, to=[a.id for a in notice.to],
                      item_id=notice.item.id if notice.item is not None else None,
                      data={**notice.data, "at": notice.at.isoformat()})


def _zone(office: Any, item: ContentItem | None) -> dt.tzinfo:
    sop = office.sop(item.sop_revision) if item is not None else office.sop()
    return zoneinfo.ZoneInfo(sop.header.timezone)


def _title(item: ContentItem) -> str:
    return short_title(item.title)


def _step(office: Any, item: ContentItem, key: str) -> str:
    return step_name(office, item.sop_revision, key)


def _now_line(office: Any, item: ContentItem) -> str:
    """Where the item is as the message is sent."""
    if item.state in ("posted", "cancelled"):
        words = {"posted": _("posted"), "cancelled": _("cancelled")}[item.state]
        return _("Item {id} is now {state}.").format(id=item.id, state=words)
    return _("Item {id} is now at {step}.").format(id=item.id,
                                                    step=_step(office, item, item.state))


def _message(office: Any, recipient: Actor, language: str, settings: Any, subject: str,
             lines: list[str]) -> EmailMessage:
    text = "\n".join([_("Dear {name},").format(name=recipient.name), "", *lines, "",
                      _("This email was sent by humasflow for {org}.").format(
                          org=office.org)]) + "\n"
    message = text_message(subject, text, language=language, to=recipient.email,
                           settings=settings)
    message["Content-Language"] = language
    return message


def compose_returned(office: Any, item: ContentItem | None, recipient: Actor,
                     language: str, data: Mapping[str, Any], settings: Any,
                     secret: bytes | None, *, rejected: bool) -> EmailMessage | None:
    """A concept rejected at approval (with the reason), or produced content returned by
    the recheck (with the findings), to the item's authors."""
    if item is None or item.state == "cancelled":
        return None  # cancelled since: there is nothing to revise any more
    head = {"name": actor_name(office, data.get("by")), "id": item.id, "title": _title(item)}
    step = _step(office, item, data.get("returned_to") or item.state)
    if rejected:
        subject = _("Rejected: item {id}: {title}").format(**head)
        lines = [_("{name} rejected the concept of item {id} \u201c{title}\u201d.").format(
                     **head), "", _("Reason:"),
                 "    " + (data.get("reason") or _("(no reason given)")), "",
                 _("It went back to {step}: revise it there and complete the step again, "
                   "and the coordinator is asked again.").format(step=step)]
    else:
        subject = _("Rework: item {id}: {title}").format(**head)
        lines = [_("{name} rechecked item {id} \u201c{title}\u201d and returned it for "
                   "rework.").format(**head), "", _("Findings:"),
                 "    " + (data.get("findings") or _("(none given)")), "",
                 _("It went back to {step}: produce it again as approved, then it is "
                   "rechecked again.").format(step=step)]
    lines.append(_now_line(office, item))
    if data.get("via") == "email":
        lines.append(_("The answer came by email."))
    return _message(office, recipient, language, settings, subject, lines)


def compose_posted(office: Any, item: ContentItem | None, recipient: Actor,
                   language: str, data: Mapping[str, Any], settings: Any,
                   secret: bytes | None) -> EmailMessage | None:
    """Where the posted item is, channel by channel."""
    if item is None:
        return None
    lines = [_("Item {id} \u201c{title}\u201d is posted.").format(id=item.id,
                                                                  title=_title(item)), ""]
    for channel, result in sorted((data.get("channels") or {}).items()):
        if result.get("state") == "skipped":
            lines.append(f"- {channel}: " + _("skipped by the coordinator"))
        elif result.get("url"):
            lines.append(f"- {channel}: {result['url']}")
        else:
            lines.append(f"- {channel}: " + _("posted (no public address)"))
    return _message(office, recipient, language, settings, _(
        "Posted: item {id}: {title}").format(id=item.id, title=_title(item)), lines)


def compose_channel(office: Any, item: ContentItem | None, recipient: Actor,
                    language: str, data: Mapping[str, Any], settings: Any,
                    secret: bytes | None) -> EmailMessage | None:
    """A channel that needs a person: failed for good, unknown, or posted by hand."""
    if item is None or item.state == "cancelled":
        return None  # cancelled since: the channel is no one's to settle any more
    channel = str(data.get("channel") or "?")
    pub = office.publications(item.id).get(channel) if item.post.channels else None
    if pub is not None and pub.state in ("posted", "skipped"):
        return None  # settled since: nothing to do any more
    state = data.get("state")
    head = {"id": item.id, "title": _title(item), "channel": channel}
    if state == "failed":
        subject = _("Posting failed: item {id} on {channel}").format(**head)
        lines = [_("Posting item {id} \u201c{title}\u201d to {channel} failed and is "
                   "not retried automatically.").format(**head),
                 "", _("The error, as the record keeps it (in its language):"),
                 "    " + (data.get("error") or "?"), "",
                 _("Fix the cause, then retry it: humasflow retry {id} {channel} --as "
                   "YOUR-ID (or skip the channel, as the coordinator).").format(**head)]
    elif state == "waiting":
        subject = _("To post by hand: item {id} on {channel}").format(**head)
        lines = [_("Item {id} \u201c{title}\u201d waits to be posted to {channel} by "
                   "hand.").format(**head)]
        if data.get("error"):
            lines += ["", "    " + str(data["error"])]
        lines += ["", _("Post it, then confirm it with its address: humasflow confirm "
                        "{id} {channel} --url URL --as YOUR-ID").format(**head)]
    else:
        subject = _("Check the platform: item {id} on {channel}").format(**head)
        lines = [_("The last attempt to post item {id} \u201c{title}\u201d to {channel} "
                   "may have reached the platform, but no answer came back.").format(
                       **head),
                 "", _("What happened:"), "    " + (data.get("error") or "?"), "",
                 _("Look on the platform. If it is there, confirm it with its address: "
                   "humasflow confirm {id} {channel} --url URL --attempt {attempt} --as "
                   "YOUR-ID; if it is not, confirm that it is absent and it is posted "
                   "again: humasflow confirm {id} {channel} --not-posted --attempt "
                   "{attempt} --as YOUR-ID").format(
                       **head, attempt=data.get("attempts", pub.attempts if pub else 0))]
    return _message(office, recipient, language, settings, subject, lines)


def compose_breach(office: Any, item: ContentItem | None, recipient: Actor,
                   language: str, data: Mapping[str, Any], settings: Any,
                   secret: bytes | None) -> EmailMessage | None:
    """A breach of a standard time, to the coordinators."""
    if item is None or item.state == "cancelled":
        return None  # cancelled since: nobody is late with it any more
    zone = _zone(office, item)
    step = str(data.get("step") or item.state)
    late = dt.timedelta(seconds=int(data.get("late_by_seconds") or 0))
    due = dt.datetime.fromisoformat(data["due_at"]) if data.get("due_at") else None
    lines = [_("Item {id} \u201c{title}\u201d ran past the standard time of {step}.").format(
                 id=item.id, title=_title(item), step=_step(office, item, step)), ""]
    if due is not None:
        lines.append(_("It was due at {when}; it was {late} late when this was "
                       "found.").format(when=local_time(due, zone),
                                        late=i18n.format_duration(late, words=True)))
    lines.append(_("Assignee: {name}").format(
        name=actor_name(office, data.get("assignee")) if data.get("assignee") else _("nobody")))
    if item.state != step:
        lines += ["", _now_line(office, item)]
    return _message(office, recipient, language, settings, _(
        "Late: item {id}: {title}").format(id=item.id, title=_title(item)), lines)


def compose_credential(office: Any, item: ContentItem | None, recipient: Actor,
                       language: str, data: Mapping[str, Any], settings: Any,
                       secret: bytes | None) -> EmailMessage | None:
    """A channel credential about to expire, to the administrators."""
    expires = dt.datetime.fromisoformat(str(data["expires_at"]))
    head = {"channel": data.get("channel") or "?", "credential": data.get("credential"),
            "reference": data.get("reference"),
            "when": local_time(expires, _zone(office, None))}
    if data.get("expired"):
        subject = _("Expired: the credential of channel {channel}").format(**head)
        first = _("The credential {credential!r} of channel {channel} ({reference}) "
                  "expired at {when}. Posts to the channel fail until it is renewed.")
    else:
        subject = _("Expiring: the credential of channel {channel}").format(**head)
        first = _("The credential {credential!r} of channel {channel} ({reference}) "
                  "expires at {when}. Renew it before then, or posts to the channel fail.")
    lines = [first.format(**head), "",
             _("Renew it on the platform, put the new value in the credential source, "
               "then check: humasflow channels check")]
    return _message(office, recipient, language, settings, subject, lines)


#: The composer of each notice kind.
COMPOSERS: Mapping[str, Callable[..., EmailMessage | None]] = {
    "rejected": functools.partial(compose_returned, rejected=True),
    "rework": functools.partial(compose_returned, rejected=False),
    "posted": compose_posted,
    "channel_failed": compose_channel,
    "channel_unknown": compose_channel,
    "breach": compose_breach,
    "credential_expiring": compose_credential,
}
