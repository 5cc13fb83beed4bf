"""Loading plugins: one plugin manager, built-ins first, then entry points.

Built-in plugins take the same path as third-party ones. Set ``HUMASFLOW_LOAD_PLUGINS``
to a comma-separated list of entry-point names to load only those entry points (an
empty value loads none).

An installed plugin that cannot be loaded (its module is gone, it fails on import, or it
implements a hook humasflow does not have) never takes humasflow down: it is set aside,
every other plugin loads, and a :class:`PluginWarning` names the distribution, the
entry point and what to do (:func:`logging.captureWarnings` routes it to a log).
:func:`broken_plugins` lists what was set aside; ``humasflow plugins`` shows it.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pluggy

from humasflow import hookspecs
from humasflow.errors import ConfigurationError
from humasflow.i18n import _

__all__ = [
    "DEFAULT_PLUGINS",
    "BrokenPlugin",
    "PluginWarning",
    "broken_plugins",
    "get_plugins",
    "pm",
    "publisher_factories",
]

DEFAULT_PLUGINS: tuple[str, ...] = (
    "humasflow.publishing.outbox",
    "humasflow.publishing.manual",
    "humasflow.notices",
    "humasflow.mail.notices",
)

#: The entry-point group humasflow's plugins declare.
GROUP = "humasflow"

pm = pluggy.PluginManager("humasflow")
pm.add_hookspecs(hookspecs)
_loaded = False
_loading = threading.Lock()
_broken: list[BrokenPlugin] = []
#: Entry-point name -> "distribution version", for ``humasflow plugins``.
_sources: dict[str, str] = {}


class PluginWarning(UserWarning):
    """An installed plugin could not be loaded and was left out."""


@attrs.frozen
class BrokenPlugin:
    """An installed entry point that could not be loaded, and was left out.

    Attributes:
        entry_point: The entry point's name (``example``).
        value: What it points at (``humasflow_example``).
        distribution: The distribution that declares it (``humasflow-example``).
        version: That distribution's version.
        error: What went wrong (``ModuleNotFoundError: No module named 'humasflow_example'``).
    """

    entry_point: str
    value: str
    distribution: str
    version: str
    error: str

    @property
    def message(self) -> str:
        """One line: which plugin, what went wrong, and what to do."""
        return _("the plugin '{entry_point}' ({value}) of the distribution {dist} {version} "
                 "cannot be loaded and is left out ({error}); if you renamed or moved its "
                 "package, reinstall the distribution (pip install -e FOLDER), or remove it: "
                 "pip uninstall {dist}").format(
            entry_point=self.entry_point, value=self.value, dist=self.distribution,
            version=self.version, error=self.error)


def load_plugins() -> None:
    """Register the built-ins and the installed entry points (once, thread-safe).

    A built-in that fails to load raises (that is a bug in humasflow). An entry point
    that fails (an import error, a hook with a misspelt name or argument) is left out:
    the others load, and one :class:`PluginWarning` per broken entry point is issued
    once, after loading, naming the distribution and the fix.
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
        pm.check_pending()  # the built-ins: a misspelt hook here must fail loudly
        wanted = os.environ.get("HUMASFLOW_LOAD_PLUGINS")
        names = None if wanted is None else {
            w.strip() for w in wanted.split(",") if w.strip()}
        broken = _load_entry_points(names)
        _broken[:] = broken
        _loaded = True
    for plugin in broken:
        warnings.warn(plugin.message, PluginWarning, stacklevel=2)


def _entry_points() -> Iterator[tuple[Any, str, str]]:
    """Every entry point of the ``humasflow`` group, with its distribution's name and
    version (a distribution found twice on the path is read once)."""
    seen: set[str] = set()
    for dist in list(importlib.metadata.distributions()):
        name = str(dist.metadata["name"] or "?")
        if name in seen:
            continue
        seen.add(name)
        for ep in dist.entry_points:
            if ep.group == GROUP:
                yield ep, name, str(dist.version)


def _load_entry_points(names: set[str] | None) -> list[BrokenPlugin]:
    """Load and register the entry points (all, or those named); return the broken ones."""
    broken: list[BrokenPlugin] = []
    for ep, dist, version in _entry_points():
        if (names is not None and ep.name not in names) or pm.has_plugin(ep.name) \
                or pm.is_blocked(ep.name):
            continue

        def set_aside(exc: BaseException, ep: Any = ep, dist: str = dist,
                      version: str = version) -> None:
            broken.append(BrokenPlugin(
                entry_point=ep.name, value=str(getattr(ep, "value", "") or ""),
                distribution=dist, version=version,
                error=f"{type(exc).__name__}: {' '.join(str(exc).split())}"))

        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # any failure in someone else's plugin: leave it out
            if pm.has_plugin(ep.name):  # registered before a hook was refused
                pm.unregister(name=ep.name)
            set_aside(exc)
            continue
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            pm.unregister(name=ep.name)
            set_aside(exc)
            continue
        _sources[ep.name] = f"{dist} {version}"
    return broken


def broken_plugins() -> list[BrokenPlugin]:
    """The installed entry points that could not be loaded (and were left out)."""
    load_plugins()
    return list(_broken)


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
        result.append({"name": plugin_name, "hooks": hooks,
                       "distribution": _sources.get(plugin_name, "")})
    return result
