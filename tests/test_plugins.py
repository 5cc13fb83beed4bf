"""Plugins: event hooks run after the commit with the right arguments and cannot undo an
action; misspelled hooks fail loudly; publishers register through the same path as
third-party plugins; entry points are discovered, and HUMASFLOW_LOAD_PLUGINS limits them."""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path

import pluggy
import pytest
from click.testing import CliRunner

from humasflow import ConfigurationError, hookimpl, hookspecs, plugins
from humasflow.cli import cli
from humasflow.testing import fake_publisher_plugin, item_ready_to_post, plugin_registered


class Recorder:
    """Records every event hook call, and what a fresh read of the store showed then."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def _committed(self, office, item):
        """The item's events as another connection sees them: only committed ones."""
        return [(e.seq, e.action) for e in office._store.events(office.org, f"item:{item.id}")]

    @hookimpl
    def item_created(self, office, item, event):
        self.calls.append(("item_created", item.id, item.state, item.version, event.seq,
                           event.action, self._committed(office, item)))

    @hookimpl
    def transition_done(self, office, item, event):
        self.calls.append(("transition_done", item.id, item.state, item.version,
                           (event.seq, event.action, event.from_state, event.to_state),
                           self._committed(office, item)))

    @hookimpl
    def step_entered(self, office, item, step, at):
        self.calls.append(("step_entered", item.id, step.key, step.number, at))


@pytest.fixture
def recorder():
    r = Recorder()
    with plugin_registered(r):
        yield r


def test_hooks_report_creation_and_moves_after_the_commit(office, clock, recorder):
    item = office.new_item("Kait", by="rina")
    assert recorder.calls == [
        ("item_created", item.id, "concept", 1, 1, "create", [(1, "create")]),
        ("step_entered", item.id, "concept", 2, clock()),
    ]
    recorder.calls.clear()
    clock.advance(minutes=3)
    item = office.complete(item.id, by="rina", text="Konsep")
    assert recorder.calls == [
        ("transition_done", item.id, "prepare", 2, (2, "complete", "concept", "prepare"),
         [(1, "create"), (2, "complete")]),
        ("step_entered", item.id, "prepare", 3, clock()),
    ]


def test_a_move_that_keeps_the_step_enters_no_step(office, recorder):
    item = office.new_item("Kait", by="rina")
    recorder.calls.clear()
    office.revise(item.id, by="rina", text="Revisi")
    assert [c[0] for c in recorder.calls] == ["transition_done"]
    assert recorder.calls[0][4] == (2, "revise", "concept", "concept")


def test_a_refused_action_fires_no_hook(office, recorder):
    item = office.new_item("Kait", by="rina")
    recorder.calls.clear()
    with pytest.raises(Exception, match="staff"):
        office.complete(item.id, by="budi", text="Konsep")
    assert recorder.calls == []


class Exploding:
    @hookimpl
    def transition_done(self, office, item, event):
        raise RuntimeError("plugin bug")


def test_a_failing_hook_does_not_undo_the_recorded_action(office, caplog):
    item = office.new_item("Kait", by="rina")
    with plugin_registered(Exploding()), caplog.at_level(logging.ERROR, logger="humasflow"):
        moved = office.complete(item.id, by="rina", text="Konsep")
    assert moved.state == "prepare"
    assert office.item(item.id).state == "prepare"
    assert [e.action for e in office.history(item.id)] == ["create", "complete"]
    assert office.verify().ok
    assert "transition_done" in caplog.text
    assert "plugin bug" in caplog.text


# -- the contract is checked ------------------------------------------------------------------


def fresh_manager() -> pluggy.PluginManager:
    """A plugin manager built like humasflow.plugins.pm."""
    pm = pluggy.PluginManager("humasflow")
    pm.add_hookspecs(hookspecs)
    return pm


class Misspelled:
    @hookimpl
    def item_creatd(self, office, item, event):  # sic
        pass


class WrongArgument:
    @hookimpl
    def item_created(self, office, item, evnt):  # sic
        pass


def test_a_misspelled_hook_name_fails_check_pending():
    pm = fresh_manager()
    pm.register(Misspelled())
    with pytest.raises(pluggy.PluginValidationError, match="item_creatd"):
        pm.check_pending()


def test_a_hook_with_an_unknown_argument_is_refused_at_registration():
    with pytest.raises(pluggy.PluginValidationError, match="evnt"):
        fresh_manager().register(WrongArgument())


def test_every_hookspec_has_a_one_line_docstring():
    specs = [getattr(hookspecs, n) for n in dir(hookspecs)
             if hasattr(getattr(hookspecs, n), "humasflow_spec")]
    assert len(specs) >= 7
    for spec in specs:
        assert spec.__doc__
        assert "\n" not in spec.__doc__.strip()


# -- publishers -----------------------------------------------------------------------------


def test_a_plugin_registers_a_publisher_and_receives_the_post(office, image):
    with pytest.raises(ConfigurationError, match="'fake'"):
        office.add_channel("fb", "fake", by="admin")
    plugin = fake_publisher_plugin()
    with plugin_registered(plugin):
        assert {"outbox", "fake"} <= set(plugins.publisher_factories())
        office.add_channel("fb", "fake", by="admin")
        item = item_ready_to_post(office, text="Selamat Dies Natalis", media=[image],
                                  channels=["fb"])
        report = office.post(item.id, by="rina")
    assert report.done
    [post] = plugin.publishers["fb"].posted
    assert (post.item_id, post.channel, post.text) == (item.id, "fb", "Selamat Dies Natalis")
    assert report.publications["fb"].platform_id == "fake-1"
    assert "fake" not in plugins.publisher_factories()


def test_two_plugins_registering_the_same_publisher_name_are_refused():
    with plugin_registered(fake_publisher_plugin(), "one"), \
            plugin_registered(fake_publisher_plugin(), "two"), \
            pytest.raises(ConfigurationError, match="'fake'"):
        plugins.publisher_factories()


class Impostor:
    @hookimpl
    def register_publishers(self, register):
        register("outbox", object)


def test_a_plugin_cannot_take_a_built_in_publishers_name():
    with plugin_registered(Impostor()), pytest.raises(ConfigurationError, match="'outbox'"):
        plugins.publisher_factories()


# -- entry points -----------------------------------------------------------------------------


class FakeEntryPoint:
    def __init__(self, name: str, plugin: object, group: str = "humasflow") -> None:
        self.name = name
        self.group = group
        self._plugin = plugin

    def load(self) -> object:
        return self._plugin


class FakeDistribution:
    def __init__(self, *entry_points: FakeEntryPoint) -> None:
        self.entry_points = list(entry_points)
        self.metadata = {"name": "humasflow-fake"}
        self.version = "1.0"


class PublisherPlugin:
    def __init__(self, publisher: str) -> None:
        self.publisher = publisher

    @hookimpl
    def register_publishers(self, register):
        register(self.publisher, object)


@pytest.fixture
def fresh_plugins(monkeypatch):
    """humasflow.plugins with a fresh manager, nothing loaded, and fake distributions."""
    monkeypatch.setattr(plugins, "pm", fresh_manager())
    monkeypatch.setattr(plugins, "_loaded", False)
    monkeypatch.setattr(plugins, "_broken", [])
    monkeypatch.setattr(plugins, "_sources", {})
    entry_points = [FakeEntryPoint("alpha", PublisherPlugin("alpha-pub")),
                    FakeEntryPoint("beta", PublisherPlugin("beta-pub")),
                    FakeEntryPoint("elsewhere", PublisherPlugin("nope"), group="pytest11")]
    dists = [FakeDistribution(*entry_points[:2]), FakeDistribution(entry_points[2])]
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: iter(dists))
    return monkeypatch


def test_entry_points_of_the_humasflow_group_are_loaded_after_the_built_ins(fresh_plugins):
    plugins.load_plugins()
    names = [name for name, _ in plugins.pm.list_name_plugin()]
    assert names[:len(plugins.DEFAULT_PLUGINS)] == list(plugins.DEFAULT_PLUGINS)
    assert set(names) == {*plugins.DEFAULT_PLUGINS, "alpha", "beta"}
    assert {"alpha-pub", "beta-pub", "outbox"} <= set(plugins.publisher_factories())
    assert "nope" not in plugins.publisher_factories()
    listed = {p["name"]: p["hooks"] for p in plugins.get_plugins()}
    assert listed["alpha"] == ["register_publishers"]


def test_plugins_are_loaded_once(fresh_plugins):
    plugins.load_plugins()
    plugins.load_plugins()
    assert len(plugins.pm.get_plugins()) == len(plugins.DEFAULT_PLUGINS) + 2


@pytest.mark.parametrize(("setting", "loaded"), [
    ("beta", {"beta"}),
    (" alpha , beta ", {"alpha", "beta"}),
    ("", set()),
    ("gamma", set()),
])
def test_humasflow_load_plugins_limits_the_entry_points(fresh_plugins, setting, loaded):
    fresh_plugins.setenv("HUMASFLOW_LOAD_PLUGINS", setting)
    plugins.load_plugins()
    names = {name for name, _ in plugins.pm.list_name_plugin()}
    assert names == {*plugins.DEFAULT_PLUGINS} | loaded
    assert "outbox" in plugins.publisher_factories()  # built-ins always load


def test_a_misspelled_hook_in_an_entry_point_leaves_that_plugin_out(fresh_plugins):
    dists = [FakeDistribution(FakeEntryPoint("typo", Misspelled()),
                              FakeEntryPoint("alpha", PublisherPlugin("alpha-pub")))]
    fresh_plugins.setattr(importlib.metadata, "distributions", lambda: iter(dists))
    with pytest.warns(plugins.PluginWarning, match="item_creatd"):
        plugins.load_plugins()
    names = {name for name, _ in plugins.pm.list_name_plugin()}
    assert names == {*plugins.DEFAULT_PLUGINS, "alpha"}
    assert [b.entry_point for b in plugins.broken_plugins()] == ["typo"]
    plugins.pm.check_pending()  # nothing of the broken plugin is left behind


def test_a_hook_with_a_wrong_argument_in_an_entry_point_leaves_that_plugin_out(fresh_plugins):
    dists = [FakeDistribution(FakeEntryPoint("wrong", WrongArgument()))]
    fresh_plugins.setattr(importlib.metadata, "distributions", lambda: iter(dists))
    with pytest.warns(plugins.PluginWarning, match="evnt"):
        plugins.load_plugins()
    assert not plugins.pm.has_plugin("wrong")
    assert plugins.pm.hook.item_created.get_hookimpls() == []


# -- a broken installed plugin (a real dist-info on sys.path) ------------------------------


def stale_distribution(site: Path, *, name: str = "humasflow-stale",
                       module: str = "humasflow_stale", entry_point: str = "stale") -> Path:
    """A distribution installed in ``site`` whose entry point names ``module``: what an
    editable install leaves after its package folder was renamed."""
    info = site / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n", "utf-8")
    (info / "entry_points.txt").write_text(f"[humasflow]\n{entry_point} = {module}\n",
                                           "utf-8")
    return info


@pytest.fixture
def installed(monkeypatch, tmp_path):
    """A fresh, unloaded plugin manager, and a folder on sys.path to install into (the
    folder and the path are restored afterwards)."""
    monkeypatch.setattr(plugins, "pm", fresh_manager())
    monkeypatch.setattr(plugins, "_loaded", False)
    monkeypatch.setattr(plugins, "_broken", [])
    monkeypatch.setattr(plugins, "_sources", {})
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    return site


def test_a_stale_entry_point_is_left_out_with_one_warning(installed):
    """The guide's old order (install the template, then rename its package) left an
    entry point to a module that no longer exists; every command died of it."""
    stale_distribution(installed)
    with pytest.warns(plugins.PluginWarning) as caught:
        plugins.load_plugins()
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "'stale'" in message
    assert "humasflow-stale 0.1.0" in message
    assert "ModuleNotFoundError: No module named 'humasflow_stale'" in message
    assert "pip uninstall humasflow-stale" in message
    assert "pip install -e" in message
    # Everything else loaded: the built-ins, and the installed template.
    assert {"outbox", "manual", "example"} <= set(plugins.publisher_factories())
    [broken] = plugins.broken_plugins()
    assert (broken.entry_point, broken.value, broken.distribution) == (
        "stale", "humasflow_stale", "humasflow-stale")
    plugins.load_plugins()  # once: no second warning (filterwarnings=error would raise)


def test_a_plugin_that_fails_on_import_is_left_out(installed):
    (installed / "humasflow_crashing.py").write_text("raise RuntimeError('boom at import')\n",
                                                     "utf-8")
    stale_distribution(installed, name="humasflow-crashing", module="humasflow_crashing",
                       entry_point="crashing")
    with pytest.warns(plugins.PluginWarning, match="RuntimeError: boom at import"):
        plugins.load_plugins()
    assert "outbox" in plugins.publisher_factories()


def test_the_cli_runs_with_a_broken_plugin_and_says_so_in_one_line(installed, tmp_path):
    stale_distribution(installed)
    runner = CliRunner()
    db = str(tmp_path / "humasflow.db")
    result = runner.invoke(cli, ["--db", db, "init", "--admin", "tika", "--name", "Tika"])
    assert result.exit_code == 0, result.output
    warning = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warning) == 1, result.stderr
    assert warning[0].startswith("Warning: the plugin 'stale'")
    assert "pip uninstall humasflow-stale" in warning[0]
    assert "Traceback" not in result.output


def test_humasflow_plugins_shows_the_broken_plugin(installed):
    stale_distribution(installed)
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("stale "))
    assert "BROKEN: not loaded (ModuleNotFoundError" in row
    assert "example" in result.stdout  # the plugins that load are listed as before
    assert "Broken: the plugin 'stale'" in result.stdout
    assert result.stderr == ""  # said once, in the listing
