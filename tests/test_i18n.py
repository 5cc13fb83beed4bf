"""Indonesian and English: the catalogs are complete, and the command speaks the language
asked for by ``--lang`` (before or after the command's name), ``HUMASFLOW_LANG``, the
configuration file or the SOP, in that order; English otherwise.

Every message is extracted from the source the way ``python -m humasflow._catalogs``
does (humasflow's marked messages, the command's help texts, click's own messages), so a
message added without a translation fails here.
"""

from __future__ import annotations

import datetime as dt
import string

import click
import pytest
from click.testing import CliRunner

from humasflow import _catalogs, i18n
from humasflow.cli import cli


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_every_message_has_an_indonesian_translation():
    gaps = _catalogs.missing("id")
    assert not gaps, f"{len(gaps)} messages have no Indonesian translation, e.g. {gaps[:10]}"


def test_translations_keep_every_placeholder():
    wrong = []
    for message in _catalogs.read_catalog("id"):
        if not message.id or not message.string:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        expected = set().union(*map(fields, ids))
        for translated in strings:
            if translated and fields(translated) - expected:
                wrong.append((ids[0], translated))
        if len(ids) == 1 and strings[0] and fields(strings[0]) != expected:
            wrong.append((ids[0], strings[0]))
    assert not wrong, wrong[:5]


def test_the_compiled_catalog_is_up_to_date():
    compiled = _catalogs.compiled(_catalogs.read_catalog("id"))
    assert _catalogs.po_path("id").with_suffix(".mo").read_bytes() == compiled, (
        "run `python -m humasflow._catalogs` to compile the catalog")


def test_the_language_is_a_context_of_its_own():
    assert i18n.language() == "en"
    with i18n.use("id"):
        assert i18n.language() == "id"
        assert i18n._("Usage:") != "Usage:"
        with i18n.use("en"):
            assert i18n._("Usage:") == "Usage:"
    assert i18n.language() == "en"
    with pytest.raises(ValueError, match="speaks en, id"):
        i18n.set_language("fr")
    assert i18n.normalise("id_ID.UTF-8") == "id"
    assert i18n.normalise("en-GB") == "en"


def test_durations_and_dates_read_naturally_in_both():
    delta = dt.timedelta(days=2, hours=3)
    assert i18n.format_duration(delta) == "2d03h"
    assert i18n.format_duration(dt.timedelta(hours=2), words=True) == "2 hours"
    assert i18n.format_date(dt.date(2026, 12, 2)) == "2 December 2026"
    with i18n.use("id"):
        assert i18n.format_duration(delta) == "2h03j"
        assert i18n.format_duration(dt.timedelta(hours=2), words=True) == "2 jam"
        assert i18n.format_date(dt.date(2026, 12, 2)) == "2 Desember 2026"


def invoke(*args: str, env=None, code: int = 0):
    result = CliRunner().invoke(cli, list(args), env=env, obj={"environ": {}})
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def test_help_speaks_indonesian_when_asked_anywhere_on_the_line():
    english = invoke("--help")
    assert "Usage:" in english
    assert "Options:" in english
    for args in (["--lang", "id", "--help"], ["sop", "show", "--help", "--lang", "id"],
                 ["--lang=id", "list", "--help"]):
        out = invoke(*args)
        assert "Usage:" not in out, out
        assert "Penggunaan:" in out, out
        assert "Show this message and exit." not in out
    assert "Penggunaan:" in invoke("--help", env={"HUMASFLOW_LANG": "id"})
    # click's own messages speak it too, and are English again afterwards.
    out = invoke("--lang", "id", "lsit", code=2)
    assert "No such command" not in out
    assert "No such command" in invoke("lsit", code=2)
    assert click.core._("Usage:") == "Usage:"


def test_lang_works_after_the_command_name(tmp_path):
    invoke("init", "--admin", "admin", "--name", "Admin")
    english = invoke("sop", "show")
    indonesian = invoke("sop", "show", "--lang", "id")
    assert "Standard time" in english
    assert "Waktu" in indonesian
    assert indonesian == invoke("--lang", "id", "sop", "show")


def test_the_configuration_and_then_the_sop_choose_the_language(tmp_path):
    invoke("init", "--admin", "admin", "--name", "Admin")
    (tmp_path / "humasflow.toml").write_text('language = "id"\n', encoding="utf-8")
    assert "Waktu" in invoke("sop", "show")
    assert "Standard time" in invoke("--lang", "en", "sop", "show")
    assert "Standard time" in invoke("sop", "show", env={"HUMASFLOW_LANG": "en"})
    (tmp_path / "humasflow.toml").unlink()
    sop = tmp_path / "sop.toml"
    from humasflow.sop import BUNDLED_SOP

    bundled = (_catalogs.PACKAGE / "sops" / BUNDLED_SOP).read_text("utf-8")
    sop.write_text(bundled.replace("four_eyes = true", 'four_eyes = true\nlanguage = "id"'),
                   encoding="utf-8")
    invoke("sop", "register", str(sop), "--by", "admin")
    assert "Waktu" in invoke("sop", "show")
    assert "Standard time" in invoke("sop", "show", "--lang", "en")


def _untranslated(path) -> list[tuple[int, str]]:
    """Text the command may print that does not go through the catalog: string literals
    and f-strings with words in them, outside ``_()``, ``N_()`` and ``ngettext()``."""
    import ast
    import re

    source = path.read_text("utf-8")
    syntax = {n for n, line in enumerate(source.splitlines(), 1) if "# not a message" in line}
    tree = ast.parse(source)
    marked: set[int] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("_", "N_", "ngettext")):
            marked.update(id(n) for n in ast.walk(node))
    shown_by = {"_echo", "_fail", "BadParameter", "ClickException", "UsageError", "_table"}
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in syntax:
            continue  # e.g. Mermaid syntax, a file name: marked as such where it is written
        if isinstance(node, ast.JoinedStr) and id(node) not in marked:
            text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
            if re.search(r"[A-Za-z]{3}", text):
                found.append((node.lineno, text))
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name not in shown_by:
                continue
            for arg in node.args[:1]:
                for sub in ast.walk(arg):
                    if (isinstance(sub, ast.Constant) and isinstance(sub.value, str)
                            and id(sub) not in marked and re.search(r"[A-Za-z]{3}", sub.value)):
                        found.append((sub.lineno, sub.value))
    return found


def test_the_command_prints_no_text_that_bypasses_the_catalog():
    from pathlib import Path

    from humasflow import cli as cli_module

    found = _untranslated(Path(cli_module.__file__))
    assert not found, "\n".join(f"cli.py:{line}: {text!r}" for line, text in found[:40])



def test_a_plugin_keeps_and_uses_a_catalog_of_its_own(tmp_path):
    package = tmp_path / "humasflow_demo"
    package.mkdir()
    (package / "__init__.py").write_text(
        'from humasflow.i18n import Translator\n'
        '_ = Translator("humasflow_demo", __import__("pathlib").Path(__file__).parent / "locale")\n'
        'def hello():\n    return _("The post is ready.")\n', encoding="utf-8")
    compendium = tmp_path / "made-elsewhere.po"
    compendium.write_text('msgid ""\nmsgstr ""\n"Language: id\\n"\n\n'
                          'msgid "The post is ready."\nmsgstr "Unggahan siap."\n',
                          encoding="utf-8")
    before = compendium.read_bytes()
    _catalogs.update([compendium], domain="humasflow_demo", package_dir=package)
    assert compendium.read_bytes() == before  # a compendium is only read
    assert _catalogs.missing("id", domain="humasflow_demo", package_dir=package) == []
    translator = i18n.Translator("humasflow_demo", package / "locale")
    assert translator("The post is ready.") == "The post is ready."
    with i18n.use("id"):
        assert translator("The post is ready.") == "Unggahan siap."
        assert translator.ngettext("one", "many", 2) == "many"
