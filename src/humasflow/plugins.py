"""Loading plugins: one plugin manager, built-ins first, then entry points.

Built-in plugins take the same path as third-party ones. Set ``HUMASFLOW_LOAD_PLUGINS``
to a comma-separated list of entry-point names to load only those entry points (an
empty value loads none).
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from typing import Any

import pluggy

from humasflow import hookspecs
from humasflow.errors import ConfigurationError
from humasflow.i18n import _

__all__ = ["DEFAULT_PLUGINS", "get_plugins", "pm", "publisher_factories"]

DEFAULT_PLUGINS: tuple[str, ...] = (
    "humasflow.publishing.outbox",
    "humasflow.publishing.manual",
)

pm = pluggy.PluginManager("humasflow")
pm.add_hookspecs(hookspecs)
_loaded = False
_loading = threading.Lock()


def load_plugins() -> None:
    """Register the built-ins and the installed entry points (once, thread-safe).

    If loading fails (a broken entry point, a misspelt hook), the error is raised, and
    raised again on the next call: humasflow never runs with half its plugins.
    """
    global _loaded
    if _loaded:
        return
    with _loading:
        if _loaded:
            return
        for name in DEFAULT_PLUGINS:
            if pm.get_plugin(name) is None:
                pm.register(importlib.import_module(name), name)
        wanted = os.environ.get("HUMASFLOW_LOAD_PLUGINS")
        if wanted is None:
            pm.load_setuptools_entrypoints("humasflow")
        else:
            for name in filter(None, (w.strip() for w in wanted.split(","))):
                pm.load_setuptools_entrypoints("humasflow", name=name)
        pm.check_pending()
        _loaded = True


def publisher_factories() -> dict[str, Callable[..., Any]]:
    """Every registered publisher factory by name.

    Raises:
        ConfigurationError: Two plugins register the same publisher name.
    """
    load_plugins()
    found: dict[str, Callable[..., Any]] = {}

    def register(name: str, factory: Callable[..., Any]) -> None:
        if name in found:
            raise ConfigurationError(_("two plugins register a publisher named {name!r}")
                                     .format(name=name))
        found[name] = factory

    pm.hook.register_publishers(register=register)
    return found


def get_plugins() -> list[dict[str, Any]]:
    """The loaded plugins with the hooks each implements (for ``humasflow plugins``)."""
    load_plugins()
    result = []
    for plugin_name, plugin in pm.list_name_plugin():
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        result.append({"name": plugin_name, "hooks": hooks})
    return result
