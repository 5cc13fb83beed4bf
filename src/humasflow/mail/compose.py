"""Composers: what turns a queued row into the message its recipient reads.

A composer is registered for a kind of message with :func:`register_composer` and is
called when the row is sent, not when it is queued, inside
``i18n.use(language)``, so the message speaks the recipient's language as it is then
(:attr:`Actor.language <humasflow.models.Actor.language>`, else ``[mail] language``,
else Indonesian) and says what is true then::

    def compose(office, item, recipient, language, data, settings, secret):
        if item is not None and item.state != "approve_concept":
            return None                  # no longer relevant: the row becomes obsolete
        message = EmailMessage()
        message["Subject"] = _("Item {id} is waiting").format(id=item.id)
        message.set_content(...)
        return message                   # To, From, Date, Message-ID filled if missing

    register_composer("my_kind", compose)

A composer may raise :class:`~humasflow.errors.MailError` (``permanent=True``: the row
is given up) or any other error (the attempt counts as failed and is retried later).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Mapping
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from humasflow import i18n
from humasflow.i18n import _

__all__ = ["Composer", "actor_name", "composer", "composers", "local_time",
           "register_composer", "short_title", "step_name", "text_message"]

#: ``fn(office, item, recipient, language, data, settings, secret) -> EmailMessage |
#: None``.
Composer = Callable[..., "EmailMessage | None"]

_COMPOSERS: dict[str, Composer] = {}


def register_composer(kind: str, fn: Composer) -> None:
    """Use ``fn`` to compose the queued messages of ``kind`` (replacing any before)."""
    if not isinstance(kind, str) or not kind.strip():
        raise ValueError(f"a composer needs a kind (a non-empty string), got {kind!r}")
    if not callable(fn):
        raise TypeError(f"the composer of {kind!r} must be callable, got {fn!r}")
    _COMPOSERS[kind] = fn


def composer(kind: str) -> Composer | None:
    """The composer registered for ``kind``, if any."""
    _builtin()
    return _COMPOSERS.get(kind)


def composers() -> Mapping[str, Composer]:
    """Every registered composer, by kind."""
    _builtin()
    return dict(_COMPOSERS)


def actor_name(office: Any, actor_id: str | None) -> str:
    """The name of the actor ``actor_id`` (their id if the store no longer has them)."""
    if not actor_id:
        return "?"
    try:
        return str(office.actor(actor_id).name or actor_id)
    except Exception:  # an actor id the record keeps but the store lost: show the id
        return actor_id


def short_title(title: str | None, width: int = 70) -> str:
    """A title on one line, cut to ``width`` characters."""
    text = " ".join((title or "").split()) or _("(no title)")
    return text if len(text) <= width else text[:width - 1] + "\u2026"


def step_name(office: Any, revision: int, key: str) -> str:
    """``step 5: <activity>`` in the current language (the key, for a step the revision
    does not have)."""
    try:
        step = office.sop(revision).step(key)
    except Exception:  # a step key the revision no longer has: name the key
        return key
    return _("step {number}: {activity}").format(number=step.number,
                                                 activity=step.activity.get(i18n.language()))


def local_time(at: dt.datetime, zone: dt.tzinfo) -> str:
    """``at`` as the recipient reads it: the date in their language, the time, the zone."""
    local = at.astimezone(zone)
    return f"{i18n.format_date(local)} {local:%H:%M} {local.tzname() or ''}".strip()


def text_message(subject: str, text: str, *, language: str, to: str, settings: Any,
                 reply_to: str | None = None) -> EmailMessage:
    """A message with ``text`` as its plain body and the same text as its HTML body
    (for mail programs that show only HTML), from ``settings.sender``, marked as sent by
    a program so that auto-responders stay quiet."""
    message = EmailMessage()
    message["Subject"] = subject
    if settings.sender:
        message["From"] = settings.sender
    message["To"] = to.strip()
    if reply_to:
        message["Reply-To"] = reply_to
    message["Date"] = formatdate(usegmt=True)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(
        f'<html lang="{language}"><body><pre style="font-family: sans-serif; '
        f'white-space: pre-wrap">{html.escape(text)}</pre></body></html>\n', subtype="html")
    return message


def _builtin() -> None:
    if "approval_request" not in _COMPOSERS:
        from humasflow.mail.digest import compose_digest
        from humasflow.mail.notices import COMPOSERS
        from humasflow.mail.request import compose_approval_request

        _COMPOSERS.setdefault("digest", compose_digest)
        for kind, fn in COMPOSERS.items():
            _COMPOSERS.setdefault(kind, fn)
        _COMPOSERS.setdefault("approval_request", compose_approval_request)
