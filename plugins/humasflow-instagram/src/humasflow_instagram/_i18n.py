"""The plugin's own gettext catalog (domain ``humasflow_instagram``)."""

from __future__ import annotations

from pathlib import Path

from humasflow.i18n import Translator

__all__ = ["_"]

_ = Translator("humasflow_instagram", Path(__file__).with_name("locale"))
