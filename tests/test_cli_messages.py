"""Every word the command prints comes from the catalog.

A pseudo-translation wraps each message in ``[[...]]``; once the wrapped text is taken
out, what the command printed holds only data (ids, step keys, times, paths, the post),
never an English word of humasflow's own (state keys such as ``posted`` are data).
"""

from __future__ import annotations

import gettext
import re

import pytest
from click.testing import CliRunner

from humasflow import i18n
from humasflow.cli import cli

#: English words of humasflow's messages, which no data of the demo holds.
ENGLISH = re.compile(
    r"\b(Item|item\(s\)|step|Due|took|LATE|Waits|waits|Timeline|Publications|Audit|events|"
    r"records|Explore|written|Demo store|Media files|Outbox:|Administrator|attempts|"
    r"approved|Approval|by|Title|Assignee|Flags|Published|Scheduled|platform id|last error|"
    r"next retry|to do|Record|Action|Note|Nothing|nothing|OK:|breach|Step|Ended|"
    r"Started|Outcome|Created|State)\b")


class _Pseudo(gettext.NullTranslations):
    def gettext(self, message: str) -> str:
        return f"[[{message}]]"

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return f"[[{singular if n == 1 else plural}]]"


def _unmarked(text: str) -> str:
    """``text`` without its pseudo-translated parts (innermost first: they nest)."""
    inner = re.compile(r"\[\[[^\[\]]*\]\]")
    while True:
        text, count = inner.subn("", text)
        if not count:
            return text


@pytest.fixture
def pseudo(monkeypatch):
    monkeypatch.setattr(i18n, "_catalog", lambda lang: _Pseudo())


def run(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, ["--lang", "id", *args], obj={"environ": {}})
    assert result.exit_code == code, result.output
    return result.output


def test_the_demo_and_its_store_speak_only_through_the_catalog(pseudo, tmp_path):
    db = str(tmp_path / "demo.db")
    outputs = {
        "demo": run("demo", "--db", db),
        "list": run("--db", db, "list"),
        "status": run("--db", db, "status", "1"),
        "log": run("--db", db, "log", "1"),
        "audit": run("--db", db, "audit", "verify"),
        "check-sla": run("--db", db, "check-sla"),
        "run-due": run("--db", db, "run-due"),
        "show": run("--db", db, "show", "1"),
        "report": run("--db", db, "report"),
        "report md": run("--db", db, "report", "--format", "md", "--by", "staff"),
    }
    assert "[[Steps]]" in outputs["report"]
    assert "[[Timeline:]]" in outputs["demo"]
    assert "[[Audit: OK:" in outputs["demo"]
    assert "[[Item {id}: {before} -> {after} by {actor}{took}.]]" not in outputs["demo"]
    assert "[[Item 1: 2 concept -> 3 prepare by rina" in outputs["demo"]
    assert "[[posted]]" in outputs["status"]  # a channel's state, in words
    for command, out in outputs.items():
        left = _unmarked(out)
        assert not ENGLISH.search(left), (command, ENGLISH.search(left), left)


def test_status_labels_line_up_after_the_longest_translation(monkeypatch, tmp_path):
    class Long(_Pseudo):
        def gettext(self, message: str) -> str:
            return "a very long label" if message == "attempts" else message

    db = str(tmp_path / "demo.db")
    run("demo", "--db", db)
    monkeypatch.setattr(i18n, "_catalog", lambda lang: Long())
    lines = [line for line in run("--db", db, "status", "1").splitlines()
             if line.startswith("  ")]
    starts = {len(line) - len(line.split(":", 1)[1].lstrip()) for line in lines}
    assert len(starts) == 1, lines
