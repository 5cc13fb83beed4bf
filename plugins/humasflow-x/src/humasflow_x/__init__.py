"""humasflow-x: the X (Twitter) publisher for humasflow.

Posts through tweepy's ``Client.create_tweet`` (the v2 ``POST /2/tweets``): text, up to
4 images or 1 GIF or 1 video (each with alt text, uploaded through X's v2 media
endpoints), a poll, a reply, and, as a channel or post option, a long text as a
numbered thread. See the README for the credentials, settings and options.

A channel uses it as the publisher ``x``::

    office.add_channel("x", "x", credentials={
        "consumer_key": "X_CONSUMER_KEY", "consumer_secret": "X_CONSUMER_SECRET",
        "access_token": "X_ACCESS_TOKEN", "access_token_secret": "X_ACCESS_TOKEN_SECRET",
    }, by="admin")
"""

from __future__ import annotations

from collections.abc import Callable

from humasflow import hookimpl

from humasflow_x.publisher import OPTIONS, SETTINGS, Account, Part, XPublisher, status_url
from humasflow_x.text import split_thread, weighted_length

__all__ = ["OPTIONS", "PUBLISHER", "SETTINGS", "Account", "Part", "XPublisher",
           "register_publishers", "split_thread", "status_url", "weighted_length"]

__version__ = "0.1.0"

#: The name channels use for this publisher, and the entry point's name.
PUBLISHER = "x"


@hookimpl
def register_publishers(register: Callable[..., None]) -> None:
    """Register :class:`XPublisher` under :data:`PUBLISHER`."""
    register(PUBLISHER, XPublisher)
