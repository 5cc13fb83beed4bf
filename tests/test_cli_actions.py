"""``humasflow actions``: corrective actions from the command line, in English and
Indonesian; wrong input and people who may not act get a one-line error."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from click.testing import CliRunner

from humasflow.cli import cli
from humasflow.office import Office
from humasflow.storage.store import Store
from humasflow.testing import SteerableClock, staffed_office


@pytest.fixture
def db(store_url, tmp_path):
    """A store (SQLite or PostgreSQL) with the usual cast and one item."""
    clock = SteerableClock()
    store = Store(store_url)
    media = tmp_path / "media-store" if store.is_postgres else None
    office = Office(store, clock=clock, environ={}, media_store=media)
    office.establish(by="Dekan")
    staffed_office(office)
    office.new_item("Dies Natalis", by="rina")
    store.close()
    return store_url, clock, media


def run(db, *args, lang="en", code=0):
    url, clock, media = db
    env = {"HUMASFLOW_MEDIA_STORE": str(media)} if media else {}
    result = CliRunner().invoke(cli, ["--lang", lang, "--db", url, "actions", *args],
                                obj={"clock": clock, "environ": env})
    assert result.exit_code == code, result.output
    return result.output


def add(db, *extra, code=0, lang="en"):
    return run(db, "add", "--report", "2026-01-01/2026-01-31", "--finding",
               "approvals wait two days", "--action", "=daily approval slot", "--owner",
               "rina", "--due", "2026-02-02", *extra, code=code, lang=lang)


def test_add_list_show_change_close(db):
    assert "Recorded corrective action 1, owner rina, due 2026-02-02" in add(db, "--as", "budi")
    run(db, "add", "--breach", "1/concept", "--finding", "late", "--action", "remind",
        "--owner", "sari", "--due", "2026-03-01", "--as", "admin")
    table = run(db, "list")
    assert "report 2026-01-01/2026-01-31" in table
    assert "breach 1/concept" in table
    assert "Finding: approvals wait two days" in run(db, "show", "1")
    assert "due 9 February 2026" in run(db, "change", "1", "--due", "2026-02-09", "--as", "rina")
    assert "closed: done" in run(db, "close", "1", "--note", "slot in place", "--as", "budi")
    assert "Closing note: slot in place" in run(db, "show", "1")
    rows = list(csv.DictReader(io.StringIO(run(db, "list", "--format", "csv"))))
    assert [r["status"] for r in rows] == ["done", "open"]
    assert rows[0]["action"] == "'=daily approval slot"
    data = json.loads(run(db, "list", "--status", "open", "--format", "json"))
    assert [a["id"] for a in data] == [2]


def test_show_writes_dates_and_times_as_the_cli_does(db):
    # The record keeps UTC; show writes the SOP's zone and the language's month names.
    add(db, "--as", "budi")
    _url, clock, _media = db
    recorded = clock.now.astimezone(dt.timezone(dt.timedelta(hours=7)))
    english = run(db, "show", "1")
    assert "Owner: rina, due 2 February 2026" in english
    assert f"Recorded by budi at {recorded:%Y-%m-%d %H:%M} WIB" in english
    assert "T" not in english.split("Recorded by budi at ")[1].splitlines()[0]
    indonesian = run(db, "show", "1", lang="id")
    assert "tenggat 2 Februari 2026" in indonesian
    assert f"Dicatat oleh budi pada {recorded:%Y-%m-%d %H:%M} WIB" in indonesian


def test_overdue_is_marked_and_filtered(db):
    add(db, "--as", "budi")
    _url, clock, _media = db
    assert run(db, "list", "--overdue").startswith("No corrective actions")
    clock.set(dt.datetime(2026, 2, 3, 3, 0, tzinfo=dt.timezone.utc))  # 10:00 in Jakarta
    assert "(overdue)" in run(db, "list", "--overdue")


def test_errors_are_one_line_and_translated(db):
    out = add(db, "--as", "rina", code=1)
    assert "only the coordinating role (coordinator) or an administrator may" in out
    out = add(db, "--as", "rina", code=1, lang="id")
    assert "hanya peran koordinator" in out
    assert "is not a date" in run(db, "add", "--item", "1", "--finding", "f", "--action",
                                  "a", "--owner", "rina", "--due", "tomorrow", "--as",
                                  "budi", code=1)
    assert "exactly one of --report" in run(db, "add", "--finding", "f", "--action", "a",
                                            "--owner", "rina", "--due", "2026-02-02",
                                            "--as", "budi", code=1)
    assert "no corrective action '7'" in run(db, "show", "7", code=1)
    assert "tidak ada tindakan perbaikan '7'" in run(db, "show", "7", code=1, lang="id")
    assert "nothing to change" in run(db, "change", "7", "--as", "budi", code=1)
