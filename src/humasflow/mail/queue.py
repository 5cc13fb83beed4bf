"""The mail queue: messages waiting to be sent, sent, or given up on.

Something worth a message queues one row per recipient with :meth:`Office.queue_mail
<humasflow.office.Office.queue_mail>`: an item entering its approval step in the
transaction that records it (if that fails, nothing is queued; if mail fails later,
what was recorded stands), a notification right after the action commits.
:meth:`Office.send_mail <humasflow.office.Office.send_mail>` then composes each due row
in its recipient's language and hands it to the transport.

A row's status is ``queued`` (waiting for its next attempt), ``sending`` (a sender
holds it; a sender that crashed lets it go when its claim runs out), ``sent``,
``failed`` (a permanent refusal, or too many attempts) or ``obsolete`` (no longer worth
sending: the item moved on, the recipient left).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["BACKOFF", "CLAIM", "MAX_ATTEMPTS", "STATUSES", "QueuedMail", "backoff"]

#: Every status a row can have.
STATUSES = ("queued", "sending", "sent", "failed", "obsolete")
#: How long after the n-th failed attempt the next one is due (the last repeats).
BACKOFF = (dt.timedelta(minutes=1), dt.timedelta(minutes=5), dt.timedelta(minutes=15),
           dt.timedelta(hours=1), dt.timedelta(hours=3), dt.timedelta(hours=6))
#: Attempts after which a message that keeps failing is given up (``failed``).
MAX_ATTEMPTS = 12
#: How long a sender holds a row it is sending before another may take it.
CLAIM = dt.timedelta(minutes=10)


def backoff(attempts: int) -> dt.timedelta:
    """The wait before the next attempt after ``attempts`` failed ones (1 or more)."""
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


@attrs.frozen
class QueuedMail:
    """One row of the mail queue.

    Attributes:
        id: The row's number.
        org: The organisation.
        kind: What the message is (``"approval_request"``, or a kind a composer was
            registered for with :func:`humasflow.mail.compose.register_composer`).
        item_id: The item it is about, if any.
        recipient: The recipient's actor id.
        address: Their address when it was queued (sent to their address at send time).
        language: Their language when it was queued (composed in the one they have
            at send time).
        data: What the composer is given besides the item.
        created_at: When it was queued.
        attempts: Attempts made so far.
        next_attempt_at: When the next attempt is due (while ``sending``: when the
            sender's claim runs out).
        sent_at: When it was handed to the transport.
        status: One of :data:`STATUSES`.
        last_error: Why the last attempt failed (secrets scrubbed).
        message_id: The ``Message-ID`` it was sent with.
    """

    id: int
    org: str
    kind: str
    item_id: int | None
    recipient: str
    address: str
    language: str
    data: Mapping[str, Any]
    created_at: dt.datetime
    attempts: int
    next_attempt_at: dt.datetime
    sent_at: dt.datetime | None
    status: str
    last_error: str | None
    message_id: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> QueuedMail:
        """The row as the store reads it."""
        names = {f.name for f in attrs.fields(cls)}
        values = {k: v for k, v in row.items() if k in names}
        values["data"] = dict(values.get("data") or {})
        return cls(**values)
