"""Approval by email: signed approval requests, replies, notifications and digests.

This package holds what the mail features share. :mod:`humasflow.mail.token` signs
the code an approval request carries and checks the code a reply brings back.
"""

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
    "ApprovalClaims",
    "MailSettings",
    "MailTransport",
    "MemoryTransport",
    "SMTPTransport",
    "TokenRefused",
    "find_tokens",
    "mail_password",
    "mail_secret",
    "message_id",
    "sign",
    "token_from_message_id",
    "verify",
]
