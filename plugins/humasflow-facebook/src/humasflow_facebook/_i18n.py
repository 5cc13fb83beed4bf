"""The plugin's own gettext catalog (``humasflow_facebook``), in the language of the
moment: ``python -m humasflow._catalogs --domain humasflow_facebook --package-dir
plugins/humasflow-facebook/src/humasflow_facebook`` keeps it."""

from __future__ import annotations

from pathlib import Path

from humasflow.i18n import Translator

__all__ = ["_"]

_ = Translator("humasflow_facebook", Path(__file__).with_name("locale"))
