"""Answers by email: a coordinator's reply approves or rejects, once, or is refused.

:func:`process_message` takes one raw reply (from the IMAP poller, ``humasflow mail
process``, or an app that receives mail its own way) and returns an :class:`Outcome`:

``accepted``
    The answer was applied through :meth:`Office.approve` / :meth:`Office.reject`
    with ``via="email"``, the reply's ``Message-ID`` and its sender in the event.
``duplicate``
    This reply was processed before (by this poller or another): nothing happens.
refused, with a reason
    ``authentication`` (the receiving server did not pass the sender's DKIM/SPF/DMARC),
    ``no_token``, ``malformed``, ``signature``, ``expired`` (the approval code),
    ``replayed`` (the request was answered already), ``unknown_item``,
    ``unknown_sender``, ``not_coordinator``, ``not_waiting`` (the item is not at the
    approval step), ``changed`` (the content changed since the request was sent),
    ``author`` (the sender wrote the item and the SOP wants four eyes), ``no_answer``,
    ``reason_missing`` (a rejection without a reason), ``refused`` (the SOP refused the
    action for another reason, given in the answer).

Every outcome but ``duplicate`` is recorded (a refusal as a ``mail_refused`` event in
the item's record, or the organisation's when no item is known), together with the
reply's claim in one transaction, and the sender gets an answer saying what happened
and what to do, in the language of their keyword, else ``[mail] language``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Literal

import attrs

from humasflow import i18n
from humasflow.errors import (
    AnswerTaken,
    ConflictError,
    FourEyesRequired,
    MailError,
    NotAllowedNow,
    OrganisationNotFound,
    Refused,
    RoleRequired,
)
from humasflow.i18n import _
from humasflow.mail.replies import Reply, authentication, read_reply
from humasflow.mail.settings import MailSettings
from humasflow.mail.token import ApprovalClaims, TokenRefused, verify
from humasflow.mail.transport import MailTransport
from humasflow.models import Actor, ContentItem, Event

__all__ = ["REASONS", "Outcome", "process_message", "reply_key"]

log = logging.getLogger(__name__)

#: Every reason a reply is refused for.
REASONS = ("authentication", "no_token", "malformed", "signature", "expired", "replayed",
           "unknown_item", "unknown_sender", "not_coordinator", "not_waiting", "changed",
           "author", "no_answer", "reason_missing", "refused")

Status = Literal["accepted", "refused", "duplicate"]


@attrs.frozen
class Outcome:
    """What became of one reply.

    Attributes:
        status: ``"accepted"``, ``"refused"`` or ``"duplicate"``.
        reason: ``"accepted"``, ``"duplicate"``, or one of :data:`REASONS`.
        message_id: The reply's ``Message-ID``.
        sender: The reply's sender ("" when it had none that can be trusted).
        org: The organisation the reply was recorded in.
        item_id: The item it answered, when known.
        action: ``"approve"`` or ``"reject"`` when the reply gave an answer.
        event: The recorded event (``None`` for a duplicate).
        answered: Whether the answer to the sender was handed to the transport.
        detail: A refusal's explanation (the message the sender was sent).
    """

    status: Status
    reason: str
    message_id: str = ""
    sender: str = ""
    org: str = ""
    item_id: int | None = None
    action: str | None = None
    event: Event | None = None
    answered: bool = False
    detail: str = ""

    @property
    def accepted(self) -> bool:
        """Whether the answer was applied."""
        return self.status == "accepted"


def reply_key(reply: Reply, raw: bytes) -> str:
    """The key a reply is processed once under: the digest of its ``Message-ID``, or of
    the whole message when it has none."""
    basis = reply.message_id.strip().encode("utf-8") if reply.message_id else bytes(raw)
    return hashlib.sha256(basis).hexdigest()


@attrs.define
class _Case:
    """What is known of a reply while it is checked."""

    office: Any
    reply: Reply
    key: str
    claims: ApprovalClaims | None = None
    item: ContentItem | None = None
    actor: Actor | None = None
    step: str = ""
    role: str = ""


def process_message(office: Any, raw: bytes, *, settings: MailSettings, secret: bytes,
                    transport: MailTransport | None, now: dt.datetime | None = None,
                    ) -> Outcome:
    """Process one raw reply: apply its answer once, or refuse and record it.

    Args:
        office: The :class:`~humasflow.office.Office` replies are answered in (an item
            of another organisation of the same store is answered in that one).
        raw: The message, as RFC 5322 bytes.
        settings: The ``[mail]`` settings (``authserv_id``, ``sender``, ``language``).
        secret: The signing secret (:func:`~humasflow.mail.settings.mail_secret`).
        transport: Where the answer to the sender goes (``None``: no answer is sent).
        now: The time tokens are checked at (default: the office's clock).

    Returns:
        The :class:`Outcome`. Refusals are outcomes, not exceptions.

    Raises:
        ValueError: ``raw`` is not bytes.
        StorageError: The store could not be written; nothing was recorded, and the
            reply can be processed again.
    """
    reply = read_reply(raw)
    key = reply_key(reply, raw)
    if office.mail_reply_outcome(key) is not None:
        return Outcome("duplicate", "duplicate", reply.message_id, reply.sender, office.org)
    when = now or office.now()
    case = _Case(office, reply, key)
    reason = _check(case, raw, settings, secret, when)
    if reason is None:
        return _accept(case, settings, transport)
    return _refuse(case, reason, settings, transport)


def _check(case: _Case, raw: bytes, settings: MailSettings, secret: bytes,
           now: dt.datetime) -> str | None:
    reply = case.reply
    if settings.authserv_id and not authentication(raw, settings.authserv_id).passed:
        return "authentication"
    if not reply.tokens:
        return "no_token"
    reason = _token(case, secret, now)
    if case.claims is not None:
        _find_item(case, case.claims)
    if reason is not None:
        return reason
    assert case.claims is not None
    if case.item is None:
        return "unknown_item"
    if case.office.mail_token_used(case.claims.nonce):
        return "replayed"
    if not reply.sender:
        return "unknown_sender"
    engine = case.office.engine(case.item.sop_revision)
    case.step = engine.approval_step.key
    case.role = engine.approval_step.actor or ""
    actor = _actor(case.office, reply.sender, case.role)
    if actor is None:
        return "unknown_sender"
    case.actor = actor
    if case.role and not actor.has_role(case.role):
        return "not_coordinator"
    if reply.answer is None:
        return "reason_missing" if reply.reason_missing else "no_answer"
    if case.item.state != case.step:
        return "not_waiting"
    if case.claims.sop_revision != case.item.sop_revision \
            or not case.claims.binds(case.item.post.digest):
        return "changed"
    if engine.sop.header.four_eyes and actor.id in case.item.authors:
        return "author"
    return None


def _token(case: _Case, secret: bytes, now: dt.datetime) -> str | None:
    """Reads the first token that verifies; else the first token's refusal."""
    first: TokenRefused | None = None
    for token in case.reply.tokens:
        try:
            case.claims = verify(secret, token, now=now)
        except TokenRefused as refused:
            first = first or refused
            continue
        return None
    assert first is not None
    case.claims = first.claims  # what an expired token claimed, to record it there
    return first.reason


def _find_item(case: _Case, claims: ApprovalClaims) -> None:
    found = case.office.find_key(claims.item_key)
    if found is None:
        return
    org, item_id = found
    if org != case.office.org:
        try:
            case.office = case.office.for_org(org, create=False)
        except OrganisationNotFound:
            return
    case.item = case.office.item(item_id)


def _actor(office: Any, sender: str, role: str) -> Actor | None:
    """The active actor whose email is ``sender`` (one holding ``role`` first)."""
    matches = [a for a in office.actors()
               if a.active and a.email and a.email.strip().lower() == sender]
    matches.sort(key=lambda a: not (role and a.has_role(role)))
    return matches[0] if matches else None


def _accept(case: _Case, settings: MailSettings, transport: MailTransport | None) -> Outcome:
    reply, item, actor, claims = case.reply, case.item, case.actor, case.claims
    assert reply.answer is not None
    assert item is not None
    assert actor is not None
    assert claims is not None
    action = reply.answer.action
    note = reply.answer.reason if action == "reject" else _("approved by email")
    for attempt in range(2):
        try:
            recorded = case.office.answer_by_email(
                item.id, action, by=actor, note=note, message_id=reply.message_id,
                sender=reply.sender, reply_key=case.key, nonce=claims.nonce)
            break
        except AnswerTaken as taken:
            if taken.what == "message":
                return Outcome("duplicate", "duplicate", reply.message_id, reply.sender,
                               case.office.org, item.id, action)
            return _refuse(case, "replayed", settings, transport)
        except FourEyesRequired:
            return _refuse(case, "author", settings, transport)
        except RoleRequired:
            return _refuse(case, "not_coordinator", settings, transport)
        except NotAllowedNow:
            return _refuse(case, "not_waiting", settings, transport)
        except ConflictError:

            if attempt:
                return _refuse(case, "not_waiting", settings, transport)
            case.item = item = case.office.item(item.id)  # changed meanwhile: look again
            if item.state != case.step or not claims.binds(item.post.digest):
                return _refuse(case, "not_waiting" if item.state != case.step
                               else "changed", settings, transport)
        except Refused as refused:
            return _refuse(case, "refused", settings, transport, error=str(refused))
    event = case.office.history(recorded.id)[-1]
    with i18n.use(_language(reply, settings)):
        if action == "approve":
            text = _("Item {item} ({title}) is approved. Thank you.")
        else:
            text = _("Item {item} ({title}) is rejected with your reason; it returns to "
                     "the staff.")
        text = text.format(item=item.id, title=_title(item))
    answered = _answer(transport, settings, reply, text)
    return Outcome("accepted", "accepted", reply.message_id, reply.sender, case.office.org,
                   item.id, action, event, answered, text)


def _refuse(case: _Case, reason: str, settings: MailSettings,
            transport: MailTransport | None, *, error: str = "") -> Outcome:
    reply = case.reply
    item = case.item
    renewed = reason == "expired" and _renew(case)
    with i18n.use(_language(reply, settings)):
        text = _explain(case, "renewed" if renewed else reason, error)
    detail: dict[str, Any] = {}
    if case.claims is not None:
        detail["nonce"] = case.claims.nonce
    if reply.answer is not None:
        detail["answer"] = reply.answer.action
    if error:
        detail["error"] = error
    event = case.office.refuse_email(
        reply_key=case.key, message_id=reply.message_id, sender=reply.sender, reason=reason,
        item_id=item.id if item is not None else None, detail=detail)
    if event is None:
        return Outcome("duplicate", "duplicate", reply.message_id, reply.sender,
                       case.office.org, item.id if item else None)
    answered = _answer(transport, settings, reply, text)
    return Outcome("refused", reason, reply.message_id, reply.sender, case.office.org,
                   item.id if item is not None else None,
                   reply.answer.action if reply.answer else None, event, answered, text)


def _renew(case: _Case) -> bool:
    """For a reply to an expired request: queue a new request to its sender, if they
    may still answer it and none is waiting to be sent to them already."""
    office, item, sender = case.office, case.item, case.reply.sender
    if item is None or not sender or not office.mail_enabled:
        return False
    engine = office.engine(item.sop_revision)
    step = engine.approval_step
    if item.state != step.key or item.step_started_at is None:
        return False
    actor = _actor(office, sender, step.actor or "")
    if actor is None or (step.actor and not actor.has_role(step.actor)) \
            or (engine.sop.header.four_eyes and actor.id in item.authors):
        return False
    if any(row.kind == "approval_request" and row.item_id == item.id
           and row.recipient == actor.id for row in office.mail_queue("queued")):
        return False
    return bool(office.queue_mail("approval_request", to=[actor.id], item_id=item.id, data={
        "step": step.key, "entered_at": item.step_started_at.isoformat(),
        "version": item.version}))


def _title(item: ContentItem) -> str:
    text = " ".join((item.title or item.post.text or "").split())
    return text if len(text) <= 60 else text[:59] + "…"


def _explain(case: _Case, reason: str, error: str) -> str:
    item = case.item
    ref = str(item.id) if item is not None else "?"
    how = _("Write SETUJU (or APPROVE) to approve, or TOLAK <reason> (or REJECT <reason>) "
            "to reject, on the first line of your reply, above the quoted request.")
    texts = {
        "authentication": _(
            "Your reply was not accepted: the receiving mail server could not confirm "
            "that it came from {sender} (DKIM, SPF and DMARC did not pass). Reply from "
            "your own mailbox at your institution, not through a forwarding service."),
        "no_token": _(
            "Your email carries no approval code. Reply to the approval request itself "
            "and keep the quoted request (or its code line) in your reply."),
        "malformed": _(
            "The approval code in your reply is damaged. Reply to the approval request "
            "again without editing the code line."),
        "signature": _(
            "The approval code in your reply was not issued by this office, or it was "
            "altered. Reply to the original approval request."),
        "expired": _(
            "The approval request for item {item} has expired. Ask the office for a new "
            "request, or answer in humasflow."),
        "renewed": _(
            "The approval request for item {item} has expired. A new request is on its "
            "way to you: answer that one, or answer in humasflow."),
        "replayed": _(
            "The approval request for item {item} was answered already; a request answers "
            "once. Answer the newest request, or in humasflow."),
        "unknown_item": _(
            "The item this approval request asks about no longer exists."),
        "unknown_sender": _(
            "{sender} is not the address of anyone in this office. Reply from the address "
            "humasflow knows for you, or ask an administrator to record this one."),
        "not_coordinator": _(
            "{sender} does not hold the role {role}, which approves items. Ask a "
            "coordinator to answer."),
        "not_waiting": _(
            "Item {item} is not waiting for approval any more (it is at {state}); nothing "
            "was changed."),
        "changed": _(
            "Item {item} changed after this approval request was sent, so your answer "
            "does not apply to it as it is now. Answer the newest request for it."),
        "author": _(
            "You wrote item {item}, and the SOP wants someone else to approve it. Ask "
            "another coordinator to answer."),
        "no_answer": _("The first line of your reply is not an answer.") + " " + how,
        "reason_missing": _(
            "A rejection needs a reason: write it after TOLAK (or REJECT) on the same "
            "line, for example \"TOLAK the date of the event is wrong\"."),
        "refused": _("The answer was not applied: {error}"),
    }
    return texts[reason].format(
        sender=case.reply.sender or "?", item=ref, role=case.role or "?",
        state=item.state if item is not None else "?", error=error)


def _language(reply: Reply, settings: MailSettings) -> str:
    language = reply.language or i18n.normalise(settings.language) or "id"
    return language if language in i18n.LANGUAGES else "id"


def _answer(transport: MailTransport | None, settings: MailSettings, reply: Reply,
            text: str) -> bool:
    """Sends ``text`` to the reply's sender; a mail failure is logged, not raised (the
    outcome is recorded already)."""
    if transport is None or not reply.sender or not settings.sender or reply.automatic \
            or reply.sender in {(settings.sender or "").lower(),
                                (settings.reply_address or "").lower()}:
        return False  # never answer a program, or humasflow's own address
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = reply.sender
    with i18n.use(_language(reply, settings)):
        message["Subject"] = _("humasflow: your answer by email")
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=settings.message_domain)
    if reply.message_id:
        message["In-Reply-To"] = reply.message_id
        message["References"] = reply.message_id
    # Never answered by an auto-responder, and never answered back to humasflow.
    message["Auto-Submitted"] = "auto-replied"
    message.set_content(text + "\n")
    try:
        transport.send(message)
    except MailError as exc:
        log.warning("the answer to %s could not be sent: %s", reply.sender, exc)
        return False
    return True
