"""Before and after an SOP revision: the items of revision 1 against those of
revision 2 (whose concept step has a longer standard time), step by step, with sample
sizes and the note that a small sample shows no trend; on SQLite and PostgreSQL, in
every format and from the command line."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from importlib import resources

import pytest
from click.testing import CliRunner

from humasflow.cli import cli
from humasflow.errors import InputInvalid
from humasflow.office import Office
from humasflow.report import render_comparison
from humasflow.sop import BUNDLED_SOP, parse_sop
from humasflow.storage.store import Store
from humasflow.testing import SteerableClock, staffed_office

M = dt.timedelta(minutes=1)
DAY = dt.date(2026, 1, 5)  # the steerable clock starts on this Monday, 09:00 Jakarta


def concepts(office, clock, minutes):
    """One new item per entry, its concept completed after that many minutes."""
    for n in minutes:
        item = office.new_item(f"Item {n}", by="rina")
        clock.advance(minutes=n)
        office.complete(item.id, by="rina", text="Selamat!")


def revised_sop():
    text = resources.files("humasflow").joinpath("sops", BUNDLED_SOP).read_text("utf-8")
    assert text.count('standard_time = "5m"') == 2  # concept (first) and post
    return parse_sop(text.replace('standard_time = "5m"', 'standard_time = "10m"', 1))


@pytest.fixture
def revisions(office, clock):
    """Three items under revision 1 (concept 3, 7, 11 minutes; standard 5), four under
    revision 2 (concept 4, 6, 8, 12 minutes; standard 10)."""
    first = office.current_revision()
    concepts(office, clock, [3, 7, 11])
    second = office.establish(revised_sop(), by="admin", effective=clock())
    concepts(office, clock, [4, 6, 8, 12])
    return first, second


def test_each_step_before_and_after_with_its_own_standard(office, revisions):
    first, second = revisions
    found = office.compare_revisions(DAY, DAY)
    assert (found.previous, found.revision) == (first, second)
    concept = next(c for c in found.steps if c.step == "concept")
    assert (concept.before.completions, concept.after.completions) == (3, 4)
    assert (concept.before.standard, concept.after.standard) == (5 * M, 10 * M)
    assert (concept.before.durations.median, concept.after.durations.median) == (7 * M, 6 * M)
    assert (concept.before.within, concept.after.within) == (1, 3)
    assert concept.median_change == -M
    assert concept.within_change == pytest.approx(3 / 4 - 1 / 3)
    assert concept.too_small  # 3 and 4 completions, fewer than the default 10
    prepare = next(c for c in found.steps if c.step == "prepare")
    assert (prepare.before.completions, prepare.after.completions) == (0, 0)
    assert prepare.median_change is None
    assert prepare.within_change is None
    # The same answer when the revision is named; the reports are each revision's own.
    named = office.compare_revisions(DAY, DAY, second)
    assert named.steps == found.steps
    assert named.before.filters == {"revision": first}


def test_the_sample_size_decides_whether_a_trend_can_be_read(office, revisions):
    concept = next(c for c in office.compare_revisions(DAY, DAY, min_sample=3).steps
                   if c.step == "concept")
    assert not concept.too_small
    concept = next(c for c in office.compare_revisions(DAY, DAY, min_sample=4).steps
                   if c.step == "concept")
    assert concept.too_small  # revision 1 has only 3


def test_wrong_revisions_are_refused(office, revisions):
    first, _second = revisions
    with pytest.raises(InputInvalid, match="first SOP revision"):
        office.compare_revisions(DAY, DAY, first)
    with pytest.raises(InputInvalid, match="no SOP revision"):
        office.compare_revisions(DAY, DAY, 99)
    with pytest.raises(InputInvalid, match="min_sample"):
        office.compare_revisions(DAY, DAY, min_sample=0)


def test_every_format(office, revisions):
    found = office.compare_revisions(DAY, DAY)
    table = render_comparison(found)
    assert "SOP revision 2 against revision 1" in table
    line = next(x for x in table.splitlines() if x.startswith("2 concept"))
    assert line.split()[:5] == ["2", "concept", "3", "5m", "7m"]
    assert "-1m" in line
    assert "+41.7 points" in line
    assert "too few to read a trend" in line
    prepare = next(x for x in table.splitlines() if x.startswith("3 prepare"))
    assert "nothing to compare" in prepare
    assert "Only: revision" not in table  # both sides are named instead
    md = render_comparison(found, "md")
    assert "| 2 concept | 3 | 5m | 7m | 33.3% | 4 | 10m | 6m | 75% | -1m |" in md
    rows = list(csv.reader(io.StringIO(render_comparison(found, "csv"))))
    concept = next(r for r in rows if r[1] == "2 concept")
    assert concept[2:10] == ["3", "5m", "7m", "33.3%", "4", "10m", "6m", "75%"]
    page = render_comparison(found, "html")
    assert "<td>2 concept</td><td>3</td><td>5m</td><td>7m</td>" in page
    assert "matplotlib" not in page  # a comparison has no charts to miss
    data = json.loads(render_comparison(found, "json"))
    step = next(s for s in data["steps"] if s["step"] == "concept")
    assert (step["before"]["median"], step["after"]["median"]) == (420.0, 360.0)
    assert step["median_change"] == -60.0
    assert step["too_small"] is True
    assert (data["previous"], data["revision"], data["min_sample"]) == (1, 2, 10)


def test_from_the_command_line_in_both_languages(tmp_path):
    path = str(tmp_path / "humas.db")
    clock = SteerableClock()
    store = Store(path)
    office = Office(store, clock=clock, environ={})
    office.establish(by="Dekan")
    staffed_office(office)
    concepts(office, clock, [3, 7, 11])
    office.establish(revised_sop(), by="admin", effective=clock())
    concepts(office, clock, [4, 6, 8, 12])
    store.close()

    def run(*args, lang="en", code=0):
        result = CliRunner().invoke(
            cli, ["--lang", lang, "--db", path, "report", "--since", "2026-01-01",
                  "--until", "2026-01-31", *args],
            obj={"clock": clock, "environ": {}})
        assert result.exit_code == code, result.output
        return result.output

    out = run("--compare", "2")
    assert "too few to read a trend (fewer than 10 on a side)" in out
    assert json.loads(run("--compare", "2", "--format", "json"))["revision"] == 2
    out = run("--compare", "2", lang="id")
    assert "terlalu sedikit" in out
    assert "first SOP revision" in run("--compare", "1", code=1)
    assert "--compare cannot be combined" in run("--compare", "2", "--by", "staff", code=1)
