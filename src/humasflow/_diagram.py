"""The state machine classes ``humasflow sop diagram`` draws with (transitions' diagrams),
in a module of their own so that only that command imports them."""

from __future__ import annotations

from typing import Any

from transitions import State
from transitions.extensions.diagrams import GraphMachine

__all__ = ["DiagramMachine", "GraphMachine", "LabelledState"]


class LabelledState(State):
    """A state that carries a display label into transitions' diagrams."""

    def __init__(self, *args: Any, label: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if label:
            self.label = label


class DiagramMachine(GraphMachine):
    state_cls = LabelledState
