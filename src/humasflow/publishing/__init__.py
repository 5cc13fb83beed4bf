"""Publishing: the publisher contract, channels, and the built-in publishers."""

from humasflow.publishing.contract import (
    Post,
    Problem,
    Publisher,
    PublisherContext,
    Receipt,
)

__all__ = ["Post", "Problem", "Publisher", "PublisherContext", "Receipt"]
