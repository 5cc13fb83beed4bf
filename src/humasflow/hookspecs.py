"""The whole plugin contract: hooks a plugin may implement.

Registration hooks take a ``register`` callback; event hooks run after the action they
report was committed, so a failing hook never undoes a recorded action.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from humasflow.credentials import CredentialSource, CredentialWarning
    from humasflow.mail.transport import MailTransport
    from humasflow.models import ContentItem, Event, Media, Publication
    from humasflow.notices import Notice
    from humasflow.office import Office
    from humasflow.sop import Step

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("humasflow")
hookimpl = pluggy.HookimplMarker("humasflow")


@hookspec
def register_publishers(register: Callable[..., None]) -> None:
    """Register publishers: ``register(name, factory)``; factory(channel, context) → publisher."""


@hookspec
def item_created(office: Office, item: ContentItem, event: Event) -> None:
    """A content item was created."""


@hookspec
def transition_done(office: Office, item: ContentItem, event: Event) -> None:
    """An action on an item was recorded (``event.action``, from/to state)."""


@hookspec
def step_entered(office: Office, item: ContentItem, step: Step, at: dt.datetime) -> None:
    """An item entered a step of the SOP."""


@hookspec
def standard_time_breached(
    office: Office, item: ContentItem, step: Step, due_at: dt.datetime, now: dt.datetime
) -> None:
    """An item's current step ran past its standard time (reported once per breach)."""


@hookspec
def channel_posted(office: Office, item: ContentItem, publication: Publication) -> None:
    """One channel of an item was posted (``publication.url`` is its public URL)."""


@hookspec
def channel_failed(office: Office, item: ContentItem, publication: Publication) -> None:
    """One channel failed (``publication.next_attempt_at`` says if it is retried)."""


@hookspec
def channel_unknown(office: Office, item: ContentItem, publication: Publication) -> None:
    """One channel's outcome is unknown, or it waits for a person to post by hand."""


@hookspec
def item_posted(office: Office, item: ContentItem, publications: dict[str, Any]) -> None:
    """Every target channel of an item was posted or skipped; the item is done."""


@hookspec
def credential_expiring(office: Office, warning: CredentialWarning) -> None:
    """A channel's credential expires soon, or has expired (reported once at each)."""


@hookspec
def notify(office: Office, notice: Notice) -> None:
    """Tell ``notice.to`` what happened (``notice.kind``), each in their language."""


@hookspec(firstresult=True)
def public_media_url(office: Office, media: Media, channel: str) -> str | None:
    """Return a public URL for stored media (read them with ``office.media.open(media)``)."""


@hookspec(firstresult=True)
def credential_source(org: str) -> CredentialSource | None:
    """Return the credential source (an app's own vault) for an organisation's office."""


@hookspec(firstresult=True)
def media_store(office: Office) -> Any:
    """Return the media store for the office (an object with MediaStore's methods), or None."""


@hookspec(firstresult=True)
def mail_transport(office: Office) -> MailTransport | None:
    """Return how the office's mail leaves (an object with ``send(message)``), or None."""
