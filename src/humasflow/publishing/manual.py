"""The manual publisher: for platforms without an API.

Posting marks the channel as ``waiting``; a person posts by hand and confirms with the
public URL (``humasflow confirm ITEM CHANNEL --url … --as …`` or ``Office.confirm``). Until
then the item stays at the posting step, and it is listed as waiting for a person.

Settings: ``instructions`` (optional text shown to the person, e.g. which account).
"""

from __future__ import annotations

from typing import Any

from humasflow.errors import WaitingForPerson
from humasflow.hookspecs import hookimpl
from humasflow.i18n import _
from humasflow.models import ChannelConfig
from humasflow.publishing.contract import (
    Post,
    Problem,
    PublisherContext,
    Receipt,
    check_settings,
)

__all__ = ["ManualPublisher"]


class ManualPublisher:
    """Asks a person to post, then waits for their confirmation."""

    def __init__(self, channel: ChannelConfig, context: PublisherContext) -> None:
        self.channel = channel.name
        self.instructions = str(channel.settings.get("instructions", ""))

    @staticmethod
    def prepare_settings(settings: dict[str, Any]) -> dict[str, Any]:
        """Refuse settings the manual publisher does not take (a misspelt key)."""
        check_settings("manual", settings, ["instructions"])
        return settings

    def validate(self, post: Post) -> list[Problem]:
        """A person can post anything; nothing to check."""
        return []

    def publish(self, post: Post, progress: Any = None) -> Receipt:
        """Never posts: raises :class:`WaitingForPerson`."""
        if self.instructions:
            message = _("post item {item_id} on {channel} by hand ({instructions}), then "
                        "confirm it: {command}")
        else:
            message = _("post item {item_id} on {channel} by hand, then confirm it: {command}")
        command = (f"humasflow confirm {post.item_id} {self.channel} --url <public URL> "
                   "--as <your id>")
        raise WaitingForPerson(
            message.format(item_id=post.item_id, channel=self.channel,
                           instructions=self.instructions, command=command),
            channel=self.channel)

    def check(self) -> None:
        """No credentials to check."""


@hookimpl
def register_publishers(register: Any) -> None:
    register("manual", ManualPublisher)
