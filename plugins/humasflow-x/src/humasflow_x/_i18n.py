"""The plugin's own gettext catalog (``humasflow_x``), in humasflow's language of the
moment (see :class:`humasflow.i18n.Translator`)."""

from __future__ import annotations

from pathlib import Path

from humasflow.i18n import Translator

__all__ = ["_"]

_ = Translator("humasflow_x", Path(__file__).with_name("locale"))
