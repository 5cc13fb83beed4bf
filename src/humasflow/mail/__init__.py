"""Approval by email: signed approval requests, replies, notifications and digests.

This package holds what the mail features share. :mod:`humasflow.mail.queue` and
:mod:`humasflow.mail.compose` hold the queue of outgoing mail and the composers that
write each message when it is sent (:mod:`humasflow.mail.request`: the approval
request); :mod:`humasflow.mail.token` signs
the code an approval request carries and checks the code a reply brings back;
:mod:`humasflow.mail.replies` reads a reply, :mod:`humasflow.mail.answers` applies or
refuses it once, and :mod:`humasflow.mail.imap` polls a mailbox for replies.
"""

from humasflow.mail.answers import Outcome, process_message
from humasflow.mail.compose import register_composer
from humasflow.mail.imap import IMAPPoller
from humasflow.mail.queue import QueuedMail
from humasflow.mail.replies import Answer, Reply, read_reply
from humasflow.mail.settings import MailSettings, mail_password, mail_secret
from humasflow.mail.token import (
    TOKEN_PATTERN,
    ApprovalClaims,
    TokenRefused,
    find_tokens,
    message_id,
    sign,
    token_from_message_id,
    verify,
)
from humasflow.mail.transport import MailTransport, MemoryTransport, SMTPTransport

__all__ = [
    "TOKEN_PATTERN",
    "Answer",
    "ApprovalClaims",
    "IMAPPoller",
    "MailSettings",
    "MailTransport",
    "MemoryTransport",
    "Outcome",
    "QueuedMail",
    "Reply",
    "SMTPTransport",
    "TokenRefused",
    "find_tokens",
    "mail_password",
    "mail_secret",
    "message_id",
    "process_message",
    "read_reply",
    "register_composer",
    "sign",
    "token_from_message_id",
    "verify",
]
