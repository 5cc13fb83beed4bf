"""The approval request: the email a coordinator answers with SETUJU or TOLAK."""

from __future__ import annotations

from collections.abc import Mapping
from email.message import EmailMessage
from typing import Any

from humasflow.mail.settings import MailSettings
from humasflow.models import Actor, ContentItem

__all__ = ["compose_approval_request"]


def compose_approval_request(office: Any, item: ContentItem | None, recipient: Actor,
                             language: str, data: Mapping[str, Any], settings: MailSettings,
                             secret: bytes | None) -> EmailMessage | None:
    """The approval request for ``item`` to ``recipient`` (``None`` when the item is no
    longer waiting for it)."""
    raise NotImplementedError
