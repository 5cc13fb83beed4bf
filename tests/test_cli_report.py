"""``humasflow report``: the evaluation report from the command line, in English and
Indonesian, in every format, to standard output or a file; wrong periods and filters
are refused with a message that says what to do."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from humasflow.cli import cli
from humasflow.office import Office
from humasflow.storage.store import Store
from humasflow.testing import SteerableClock, sample_image, staffed_office


@pytest.fixture
def db(tmp_path):
    """A SQLite store with one posted item (one rejection on the way) and one late
    concept, on Monday 5 January 2026 (Jakarta)."""
    path = tmp_path / "humas.db"
    clock = SteerableClock()
    store = Store(str(path))
    office = Office(store, clock=clock, environ={}, media_roots=[tmp_path])
    office.establish(by="Dekan")
    staffed_office(office)
    office.add_channel("outbox", "outbox", settings={"path": str(tmp_path / "outbox")},
                       by="admin")
    image = sample_image(tmp_path / "poster.png")
    item = office.new_item("Dies Natalis", by="rina")
    for minutes, act in ((7, lambda: office.complete(item.id, by="rina", text="Selamat!")),
                         (8, lambda: office.complete(item.id, by="rina", notes="Canva")),
                         (5, lambda: office.complete(item.id, by="rina", media=[image])),
                         (12, lambda: office.reject(item.id, by="budi", reason="logo buram")),
                         (5, lambda: office.complete(item.id, by="rina", media=[image])),
                         (2, lambda: office.approve(item.id, by="budi")),
                         (9, lambda: office.complete(item.id, by="rina", media=[image])),
                         (10, lambda: office.pass_recheck(item.id, by="sari")),
                         (2, lambda: office.post(item.id, by="rina"))):
        clock.advance(minutes=minutes)
        act()
    office.new_item("Wisuda", by="sari")
    clock.advance(minutes=30)
    store.close()
    return str(path), clock


def run(db, *args, lang="en", code=0):
    path, clock = db
    result = CliRunner().invoke(cli, ["--lang", lang, "--db", path, "report", *args],
                                obj={"clock": clock, "environ": {}})
    assert result.exit_code == code, result.output
    return result.output


PERIOD = ("--since", "2026-01-01", "--until", "2026-01-31")


def test_the_table_in_english(db):
    out = run(db, *PERIOD)
    assert out.startswith("Evaluation report of default, 2026-01-01 00:00 to 2026-01-31 23:59")
    assert "Durations in wall-clock time (the SOP's clock)" in out
    assert "2 concept  -      5m        1          7m      7m   7m   0/1 (0%)         1" in out
    assert "logo buram (1)" in out
    assert "Breaches of the standard time" in out


def test_the_table_in_indonesian(db):
    out = run(db, *PERIOD, lang="id")
    assert out.startswith("Laporan evaluasi default, 2026-01-01 00:00 sampai dengan "
                          "2026-01-31 23:59")
    assert "Durasi dalam waktu jam dinding" in out
    assert "ditolak pada persetujuan" in out
    assert "Pelampauan waktu standar" in out
    assert "(masih berjalan)" in out       # the late concept, still open


def test_json_csv_and_markdown(db, tmp_path):
    data = json.loads(run(db, *PERIOD, "--format", "json"))
    assert data["clock"] == "wall"
    concept = next(s for s in data["steps"] if s["step"] == "concept")
    assert (concept["completions"], concept["open"]) == (1, 1)
    assert data["approval"]["reasons"] == [["logo buram", 1]]
    assert data["lead_time"]["count"] == 1
    assert data["lead_time"]["max"] == 60 * 60.0
    rows = list(csv.reader(io.StringIO(run(db, *PERIOD, "--format", "csv", lang="id"))))
    assert rows[0][:2] == ["bagian", "Langkah"]
    md = run(db, *PERIOD, "--format", "md", "--by", "staff")
    assert "| 2 concept | rina | 5m | 1 |" in md
    target = tmp_path / "report.csv"
    result = CliRunner().invoke(cli, ["--db", db[0], "report", *PERIOD, "--format", "csv",
                                      "--output", str(target)],
                                obj={"clock": db[1], "environ": {}})
    assert result.exit_code == 0, result.output
    assert "Wrote the report to" in result.output
    assert target.read_text("utf-8").startswith("section,Step")


def test_the_default_period_is_this_month_until_today(db):
    data = json.loads(run(db, "--format", "json"))
    assert data["since"].startswith("2025-12-31T17:00:00")     # 1 January in Jakarta
    assert data["until"].startswith("2026-01-05T17:00:00")   # the end of 5 January (WIB)


def test_filters_and_refusals(db):
    data = json.loads(run(db, *PERIOD, "--format", "json", "--staff", "sari"))
    assert data["filters"] == {"staff": "sari"}
    assert next(s for s in data["steps"] if s["step"] == "recheck")["completions"] == 1
    out = run(db, "--since", "2026-02-01", "--until", "2026-01-01", code=1)
    assert "until is not after since" in out
    out = run(db, "--since", "2026-02-01", "--until", "2026-01-01", lang="id", code=1)
    assert "tidak lebih akhir daripada since" in out
    out = run(db, *PERIOD, "--channel", "tiktok", code=1)
    assert "no channel of default" in out
    out = run(db, *PERIOD, "--by", "colour", code=2)
    assert "colour" in out
