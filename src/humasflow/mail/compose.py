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

from collections.abc import Callable, Mapping
from email.message import EmailMessage

__all__ = ["Composer", "composer", "composers", "register_composer"]

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


def _builtin() -> None:
    if "approval_request" not in _COMPOSERS:
        from humasflow.mail.request import compose_approval_request

        _COMPOSERS.setdefault("approval_request", compose_approval_request)
