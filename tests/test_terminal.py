"""Tables and progress on the terminal, drawn by rich: styled on a terminal, plain text
(never wrapped, no escape codes) in a pipe or with ``NO_COLOR``, and user text escaped
in both."""

from __future__ import annotations

import io

import pytest
from click.testing import CliRunner

from humasflow import cli as cli_module
from humasflow.cli import cli


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), obj={"environ": {}})
    assert result.exit_code == code, (result.output, result.exception)
    return result.output


def test_a_plain_table_is_aligned_and_never_wraps(monkeypatch):
    long = "x" * 300
    table = cli_module._table(("ID", "Title"), [(1, long), (22, "Dies Natalis\nline two")])
    lines = table.split("\n")
    assert lines[0].split() == ["ID", "Title"]
    assert set(lines[1].replace(" ", "")) == {"-"}
    assert long in table
    assert "\x1b" not in table
    assert lines[3].index("Dies") == lines[2].index(long)
    assert lines[4].strip() == "line two"


@pytest.mark.parametrize("no_color", ["", "1"])
def test_on_a_terminal_headings_are_bold_unless_no_color(monkeypatch, no_color):
    monkeypatch.setattr("sys.stdout", _Terminal())
    if no_color:
        monkeypatch.setenv("NO_COLOR", no_color)
    table = cli_module._table(("ID", "Title"), [(1, "Dies Natalis")])
    assert ("\x1b[1m" in table) is not bool(no_color)


@pytest.mark.parametrize("styled", [False, True])
def test_user_text_in_a_table_is_shown_escaped(monkeypatch, styled):
    if styled:
        monkeypatch.setattr("sys.stdout", _Terminal())
    table = cli_module._table(("Title",), [("\x1b[2Jgone [bold]markup[/bold]",)])
    assert "\\x1b[2J" in table
    assert "\x1b[2J" not in table
    assert "[bold]markup[/bold]" in table


def test_verify_reports_progress_and_the_command_stays_plain_off_a_terminal(tmp_path):
    import humasflow
    from humasflow.testing import staffed_office

    office = humasflow.open(str(tmp_path / "p.db"))
    try:
        staffed_office(office)
        for n in range(4):
            office.new_item(f"Item {n}", by="rina")
        seen: list[int] = []
        report = office.verify(progress=seen.append)
        assert report.ok
        assert seen
        assert seen[-1] == report.events
    finally:
        office.close()
    out = invoke("--db", str(tmp_path / "p.db"), "audit", "verify")
    assert out.startswith("OK:")
    assert "\x1b" not in out


def test_progress_is_drawn_on_a_terminal_and_gone_after(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with cli_module._progress("Checking") as advance:
        advance(1000)
        advance(2000)
    assert "Checking" in terminal.getvalue()
