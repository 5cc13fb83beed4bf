"""The approval request: the email a coordinator answers with SETUJU or TOLAK.

It is composed when it is sent, in the coordinator's language, from the item as it is
then: the concept, the post as each channel will show it (variants included), the
design media (attached, or linked when larger than ``[mail] attach_max_bytes``), the
validation result, the standard time and when it runs out, and how to answer. It
carries a signed approval code (:mod:`humasflow.mail.token`) binding the content it
shows, as its ``Message-ID`` and on a line of its body, so the reply is read by
:func:`humasflow.mail.answers.process_message`. An item that left the approval step, or
entered it again since the request was queued (a newer request is queued then), is not
asked about: the row becomes obsolete.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from email.message import EmailMessage
from pathlib import PurePosixPath
from typing import Any

from humasflow import i18n
from humasflow.errors import MailError
from humasflow.i18n import _
from humasflow.mail.compose import local_time, text_message
from humasflow.mail.settings import MailSettings
from humasflow.mail.token import ApprovalClaims, message_id, sign
from humasflow.models import Actor, ContentItem, Media

__all__ = ["compose_approval_request", "media_name"]

_RULE = "-" * 60


def media_name(media: Media, position: int) -> str:
    """A file name for ``media``: the last part of where it came from."""
    name = PurePosixPath(media.source.split("?", 1)[0].replace("\\", "/")).name
    return name or f"media-{position + 1}"


def _size(size: int | None) -> str:
    if size is None:
        return "?"
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def compose_approval_request(office: Any, item: ContentItem | None, recipient: Actor,
                             language: str, data: Mapping[str, Any], settings: MailSettings,
                             secret: bytes | None) -> EmailMessage | None:
    """The approval request for ``item`` to ``recipient`` (``None`` when the item is no
    longer waiting for this request).

    Raises:
        MailError: The signing secret is missing (retried: an administrator can add
            it), or the sender address is not set.
    """
    if item is None:
        return None
    engine = office.engine(item.sop_revision)
    step = engine.approval_step
    if item.state != step.key:
        return None
    entered = data.get("entered_at")
    if entered and item.step_started_at is not None \
            and entered != item.step_started_at.isoformat():
        return None  # it entered the step again since: that newer request goes instead
    if secret is None:
        raise MailError(_(
            "the approval request cannot be signed: the credential source does not hold "
            "the signing secret {name} (at least 32 characters); add it, and the request "
            "is sent at its next attempt").format(name=settings.secret))
    if not settings.sender:
        raise MailError(_("mail.sender is not set: say which address humasflow sends "
                          "from"))
    now = office.now()
    claims = ApprovalClaims(item_key=item.key, sop_revision=item.sop_revision,
                            digest=item.post.digest,
                            expires=now + dt.timedelta(days=settings.token_days))
    token = sign(secret, claims)
    sop = engine.sop
    zone = zoneinfo.ZoneInfo(sop.header.timezone)
    attachments, media_lines = _media(office, item, settings)

    title = " ".join((item.title or "").split()) or _("(no title)")
    lines = [_("Dear {name},").format(name=recipient.name), ""]
    lines.append(_("Item {id} \u201c{title}\u201d is waiting for your approval (step "
                   "{number}: {activity}).").format(
                       id=item.id, title=title, number=step.number,
                       activity=step.activity.get(language)))
    lines += ["", _("How to answer: reply to this email and write your answer on the "
                    "first line, above the quoted message:"),
              "    " + _("SETUJU (or APPROVE) to approve the concept as shown below;"),
              "    " + _("TOLAK <reason> (or REJECT <reason>) to reject it, with the "
                         "reason on the same line."),
              _("Keep the approval code at the end of this email in your reply. You can "
                "also answer in humasflow.")]
    lines += ["", *_times(office, item, step.standard_time, zone, now)]
    lines += ["", _RULE, _("Concept"), _RULE, item.post.text or _("(no text)")]
    if item.post.link:
        lines.append(_("Link: {link}").format(link=item.post.link))
    lines += ["", _RULE, _("The post on each channel"), _RULE]
    lines += _channels(office, item, media_lines)
    lines += ["", _RULE, _("Design media"), _RULE]
    lines += [line for _m, line in media_lines] or [_("(none)")]
    lines += ["", _RULE, _("Validation"), _RULE, *_validation(office, item)]
    lines += ["", _("Approval code (do not change it):"), "    " + token,
              _("The code can be used until {when}.").format(
                  when=local_time(claims.expires, zone)), "",
              _("This email was sent by humasflow for {org}.").format(org=item.org)]
    text = "\n".join(lines) + "\n"

    subject = _("Approval needed: item {id}: {title}").format(
        id=item.id, title=title if len(title) <= 70 else title[:69] + "\u2026")
    message = text_message(subject, text, language=language, to=recipient.email,
                           settings=settings, reply_to=settings.reply_address)
    message["Message-ID"] = message_id(token, settings.message_domain)
    for name, mime, content in attachments:
        maintype, _slash, subtype = (mime or "application/octet-stream").partition("/")
        message.add_attachment(content, maintype=maintype,
                               subtype=subtype or "octet-stream", filename=name)
    message["Content-Language"] = language  # after the body: setting it clears Content-*
    return message


def _times(office: Any, item: ContentItem, standard: dt.timedelta | None,
           zone: dt.tzinfo, now: dt.datetime) -> list[str]:
    if standard is None:
        return [_("This step has no standard time.")]
    working = office.sop(item.sop_revision).header.clock == "working"
    lines = [(_("Standard time: {duration} (working time).") if working
              else _("Standard time: {duration}.")).format(
                  duration=i18n.format_duration(standard, words=True))]
    deadline = item.deadline
    if deadline is not None:
        late = office.late_by(item, now)
        if late is not None:
            lines.append(_("It ran out at {when}: {late} late.").format(
                when=local_time(deadline, zone), late=i18n.format_duration(late, words=True)))
        else:
            lines.append(_("It runs out at {when}.").format(when=local_time(deadline, zone)))
    return lines


def _media(office: Any, item: ContentItem, settings: MailSettings,
           ) -> tuple[list[tuple[str, str, bytes]], list[tuple[Media, str]]]:
    """The design media to attach, and a line for each saying where it is."""
    attachments: list[tuple[str, str, bytes]] = []
    lines: list[tuple[Media, str]] = []
    urls = _public_urls(office, item)
    for position, media in enumerate(item.post.media):
        name = media_name(media, position)
        what = f"{position + 1}. {name} ({media.mime or media.media_kind}, " \
               f"{_size(media.size)})"
        if media.passthrough:
            lines.append((media, what + ": " + _("at {url}").format(url=media.source)))
            continue
        if media.is_stored and not media.missing and media.size is not None \
                and media.size <= settings.attach_max_bytes:
            try:
                with office.media.open(media) as stream:
                    content = stream.read()
            except Exception as exc:  # shown in the request, never a reason not to ask
                lines.append((media, what + ": " + _("not attached: {error}").format(
                    error=exc)))
                continue
            attachments.append((name, media.mime, content))
            lines.append((media, what + ": " + _("attached")))
            continue
        url = urls.get(media.sha256 or "")
        if url:
            lines.append((media, what + ": " + _("not attached (too large), at {url}")
                          .format(url=url)))
        else:
            lines.append((media, what + ": " + _("not attached (too large); open it in "
                                                 "humasflow")))
    return attachments, lines


def _public_urls(office: Any, item: ContentItem) -> dict[str, str]:
    """The public URLs the media host or the ``public_media_url`` hook give the stored
    design media (by hash), as the channels would get them."""
    found: dict[str, str] = {}
    for channel in item.post.channels or ("-",):
        try:
            post = office.post_for(item, channel, check=False)
        except Exception:  # noqa: S112 - a missing file is shown as not attached
            continue
        for media in post.media:
            if media.sha256 and media.url:
                found.setdefault(media.sha256, media.url)
    return found


def _channels(office: Any, item: ContentItem, media_lines: list[tuple[Media, str]]
              ) -> list[str]:
    if not item.post.channels:
        return [_("(no target channel)")]
    configured = office.channels()
    lines: list[str] = []
    for channel in item.post.channels:
        config = configured.get(channel)
        head = f"[{channel}]" + (f" ({config.publisher})" if config is not None else "")
        lines += ["", head, item.post.text_for(channel) or _("(no text)")]
        chosen = item.post.media_for(channel, item.post.media)
        if chosen != item.post.media:
            names = [media_name(m, item.post.media.index(m)) for m in chosen]
            lines.append(_("Media on this channel: {names}").format(
                names=", ".join(names) or _("none")))
        elif item.post.media:
            lines.append(_("Media on this channel: all design media"))
        options = item.post.options_for(channel)
        if options:
            lines.append(_("Options: {options}").format(
                options=", ".join(f"{k}={v}" for k, v in sorted(options.items()))))
    return lines[1:]


def _validation(office: Any, item: ContentItem) -> list[str]:
    problems = office.post_warnings(item)
    if not problems:
        return [_("Every target channel accepts the post as it is.")]
    return [_("What the channels' checks found:"), *(f"- {p}" for p in problems)]
