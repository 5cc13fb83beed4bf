"""Bad input gets a clear humasflow error, the same on SQLite and PostgreSQL, and nothing
is written: locked stores, values a database would refuse, concurrent first creations,
broken SOP files, terminal escapes, spreadsheet formulas and impossible times."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import re
import sqlite3
import threading
import time
import zoneinfo
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import humasflow
from humasflow import (
    DefinitionError,
    InputInvalid,
    ItemNotFound,
    Office,
    StorageError,
    StoreLocked,
    load_sop,
    parse_sop,
)
from humasflow.cli import cli
from humasflow.sop import BUNDLED_SOP
from humasflow.storage import schema as t
from humasflow.storage.store import Store
from humasflow.testing import SteerableClock, item_ready_to_post, staffed_office

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def counts(office: Office) -> tuple[int, int, int, int]:
    """Rows that a refused action must not have added: items, events, actors, channels."""
    with office._store.reading() as conn:
        return tuple(int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
                     for table in (t.items, t.events, t.actors, t.channels))  # type: ignore[return-value]


@contextlib.contextmanager
def write_lock(store_url: str) -> Iterator[None]:
    """Another connection holding the lock a write needs, until the block ends."""
    if "://" not in store_url:
        conn = sqlite3.connect(store_url, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn, conn.begin():
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7148101)"))
            if sa.inspect(conn).has_table("orgs"):
                conn.execute(sa.text("SELECT id FROM orgs FOR UPDATE"))
            yield
    finally:
        engine.dispose()


def run(store_url: str, *args: str, clock=None, code: int = 0, timeout: float | None = None):
    """Run the command on ``store_url``; it must end with ``code`` and no traceback."""
    prefix = ["--db", store_url]
    if timeout is not None:
        prefix += ["--busy-timeout", str(timeout)]
    result = CliRunner().invoke(cli, [*prefix, *args],
                                obj={"clock": clock or SteerableClock(), "environ": {}})
    assert result.exit_code == code, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    assert "Traceback" not in result.output
    return result


# -- a locked store -------------------------------------------------------------------------


def test_an_up_to_date_store_opens_and_reads_while_another_connection_writes(
        office, store_url):
    """Opening and reading take no write lock; a write waits the busy timeout, then fails
    with StoreLocked and writes nothing."""
    before = counts(office)
    with write_lock(store_url):
        started = time.monotonic()
        store = Store(store_url, busy_timeout=0.2)
        try:
            second = Office(store, clock=office.clock, environ={})
            assert [a.id for a in second.actors()] == ["admin", "budi", "rina", "sari"]
            with pytest.raises(StoreLocked) as caught:
                second.add_actor("dewi", "Dewi", roles=["staff"], by="admin")
            assert time.monotonic() - started < 10
        finally:
            store.close()
    assert isinstance(caught.value, StorageError)
    assert caught.value.timeout == 0.2
    message = str(caught.value)
    assert "is locked" in message
    assert "0.2 s" in message
    assert "--busy-timeout" in message
    assert "nothing was written" in message
    assert counts(office) == before


def test_a_store_that_must_be_migrated_while_locked_fails_with_store_locked(
        tmp_path, store_url):
    if "://" not in store_url:
        sqlite3.connect(store_url).close()  # an empty database file, to be migrated
    with write_lock(store_url), pytest.raises(StoreLocked):
        Store(store_url, busy_timeout=0.1)
    Store(store_url).close()  # and once the lock is gone, it migrates


def test_the_cli_reads_while_locked_and_a_write_says_what_holds_the_lock(store_url):
    run(store_url, "init", "--admin", "admin", "--name", "Admin")
    run(store_url, "actor", "add", "--by", "admin", "rina", "--name", "Rina", "--role", "staff")
    with write_lock(store_url):
        listed = run(store_url, "actor", "list", timeout=0.2)
        assert "rina" in listed.output
        refused = run(store_url, "actor", "add", "--by", "admin", "sari", "--name", "Sari",
                      "--role", "staff",
                      timeout=0.2, code=1)
    assert "Error: the store" in refused.output
    assert "is locked" in refused.output
    assert "sari" not in run(store_url, "actor", "list").output


def test_the_busy_timeout_is_checked():
    with pytest.raises(ValueError, match="busy_timeout"):
        Store(":memory:", busy_timeout=-1)
    result = CliRunner().invoke(cli, ["--busy-timeout", "-1", "list"])
    assert result.exit_code == 2
    assert "--busy-timeout" in result.output


# -- values one database would refuse and the other keep -----------------------------------


BAD_TEXTS = [
    pytest.param("a\x00b", "NUL", id="nul"),
    pytest.param("a\udcffb", "lone surrogate", id="surrogate"),
]


@pytest.mark.parametrize(("bad", "problem"), BAD_TEXTS)
def test_nul_and_surrogates_are_refused_at_the_boundary(office, bad, problem):
    before = counts(office)
    attempts = [
        ("title", lambda: office.new_item(bad, by="rina")),
        ("text", lambda: office.new_item("ok", by="rina", text=bad)),
        ("link", lambda: office.new_item("ok", by="rina", link=bad)),
        ("variants['outbox']",
         lambda: office.new_item("ok", by="rina", variants={"outbox": bad})),
        ("name", lambda: office.add_actor("dewi", bad, roles=["staff"], by="admin")),
        ("actor_id", lambda: office.add_actor(bad, "Dewi", roles=["staff"], by="admin")),
        ("email", lambda: office.add_actor("dewi", "Dewi", email=bad, roles=["staff"], by="admin")),
        ("name", lambda: office.add_channel(bad, "outbox", settings={"path": "x"}, by="admin")),
        ("settings['path']",
         lambda: office.add_channel("c", "outbox", settings={"path": bad}, by="admin")),
        ("actor", lambda: office.item(1, by=bad)),
    ]
    for field, attempt in attempts:
        with pytest.raises(InputInvalid) as caught:
            attempt()
        assert caught.value.field == field, field
        assert isinstance(caught.value, ValueError)
        assert problem in str(caught.value)
        assert "nothing was written" in str(caught.value)
    item = office.new_item("fine", by="rina")
    with pytest.raises(InputInvalid, match=r"^text contains"):
        office.complete(item.id, by="rina", text=bad)
    with pytest.raises(InputInvalid, match=r"^reason contains"):
        office.cancel(item.id, by="rina", reason=bad)
    after = counts(office)
    assert after[0] == before[0] + 1
    # The one item made: its create event and its creation in the organisation's stream.
    assert after[1:] == (before[1] + 2, *before[2:])
    assert office.item(item.id).version == 1


def test_over_long_values_are_refused_with_the_field_limit_and_length(office):
    before = counts(office)
    cases = [
        ("title", 500, lambda n: office.new_item("x" * n, by="rina")),
        ("actor_id", 200, lambda n: office.add_actor("a" * n, "Dewi", roles=["staff"], by="admin")),
        ("name", 300, lambda n: office.add_actor("dewi", "D" * n, roles=["staff"], by="admin")),
        ("email", 300, lambda n: office.add_actor("dewi", "Dewi", email="e" * n,
                                                   roles=["staff"], by="admin")),
        ("name", 100, lambda n: office.add_channel("c" * n, "outbox", settings={"path": "x"},
                                                   by="admin")),
        ("settings['path']", 2000,
         lambda n: office.add_channel("c", "outbox", settings={"path": "p" * n}, by="admin")),
        ("text", 100_000, lambda n: office.new_item("ok", by="rina", text="t" * n)),
    ]
    for field, limit, attempt in cases:
        with pytest.raises(InputInvalid) as caught:
            attempt(limit + 1)
        error = caught.value
        assert (error.field, error.limit, error.length) == (field, limit, limit + 1)
        assert f"{limit + 1} characters long" in str(error)
        assert str(limit) in str(error)
    assert counts(office) == before
    office.new_item("x" * 500, by="rina")  # the limit itself is fine
    office.add_actor("a" * 200, "D" * 300, email="e" * 291 + "@ub.ac.id", roles=["staff"],
                     by="admin")


@pytest.mark.parametrize("email", ["budi@ub.ac.id, evil@example.com", "Budi <budi@ub.ac.id>",
                                   "budi", "budi@ub", "budi@@ub.ac.id"])
def test_an_actor_has_one_email_address(office, email):
    """Every mail to an actor goes to their address: a list, a display name or no
    address at all is refused before anything is written."""
    before = counts(office)
    with pytest.raises(InputInvalid) as caught:
        office.add_actor("dewi", "Dewi", email=email, roles=["staff"], by="admin")
    assert caught.value.field == "email"
    assert "one email address" in str(caught.value)
    assert counts(office) == before


def test_a_data_error_the_office_does_not_check_is_a_storage_error(store):
    """Past the office's checks, a value the database refuses is a StorageError too."""
    with pytest.raises(StorageError, match="refused a value") as caught, \
            store.writing() as conn:
        conn.execute(t.schema_migrations.insert().values(
            version=2**70, name="n",
            applied_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)))
    assert "nothing was written" in str(caught.value)
    assert store.schema_version == t.MIGRATIONS[-1][0]


def test_item_numbers_no_store_can_hold_are_not_found(office):
    for number in (0, -1, 2**63, 10**30):
        with pytest.raises(ItemNotFound):
            office.item(number)
    with pytest.raises(ItemNotFound):
        office.act(10**30, "complete", by="rina", text="x")
    with pytest.raises(TypeError):
        office.item(1.5)  # type: ignore[arg-type]


# -- concurrent first creations -------------------------------------------------------------


def race(each, action) -> list[BaseException]:
    """Run ``action(x)`` for each ``x`` in its own thread, all released at once; return
    what they raised."""
    barrier = threading.Barrier(len(each))
    errors: list[BaseException] = []

    def go(x) -> None:
        barrier.wait()
        try:
            action(x)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(x,)) for x in each]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_first_creations_of_one_org_actor_or_channel_all_succeed(
        store_url, tmp_path, attempt):
    stores = [Store(store_url) for _ in range(6)]
    try:
        org = f"race{attempt}"
        assert race(stores, lambda s: Office(s, org, environ={})) == []
        offices = [Office(s, org, clock=SteerableClock(), environ={}) for s in stores]
        offices[0].establish(by="admin")
        offices[0].bootstrap_admin("admin", "Admin")
        assert race(offices, lambda o: o.add_actor("dewi", "Dewi", roles=["staff"],
                                                   by="admin")) == []
        assert race(offices, lambda o: o.add_channel(
            "outbox", "outbox", settings={"path": str(tmp_path / "out")}, by="admin")) == []
        assert [a.id for a in offices[0].actors()] == ["admin", "dewi"]
        assert list(offices[0].channels()) == ["outbox"]
        assert stores[0].orgs().count(org) == 1
        assert offices[0].verify().ok
    finally:
        for s in stores:
            s.close()


# -- SOP files ------------------------------------------------------------------------------


def bundled_text() -> str:
    from importlib import resources

    return resources.files("humasflow").joinpath("sops", BUNDLED_SOP).read_text("utf-8")


@pytest.mark.parametrize("duration", ["999999999999d", "3000000d", "31d", "745h", "44641m"])
def test_standard_times_beyond_the_limit_are_refused_naming_file_key_and_limit(
        tmp_path, duration):
    text = bundled_text()
    assert 'standard_time = "5m"' in text
    path = tmp_path / "sop.toml"
    path.write_text(text.replace('standard_time = "5m"', f'standard_time = "{duration}"', 1))
    with pytest.raises(DefinitionError) as caught:
        load_sop(path)
    error = caught.value
    assert error.source == str(path)
    assert error.path.endswith(".standard_time")
    assert "30 days" in str(error)
    assert duration in str(error)


def test_the_longest_standard_time_keeps_new_items_working(tmp_path):
    store = Store(str(tmp_path / "h.db"))
    try:
        office = Office(store, clock=SteerableClock(), environ={})
        office.establish(parse_sop(bundled_text().replace(
            'standard_time = "5m"', 'standard_time = "30d"', 1)), by="admin")
        staffed_office(office)
        item = office.new_item("ok", by="rina")
        assert item.due_at is not None
        assert item.due_at - item.created_at == dt.timedelta(days=30)
    finally:
        store.close()


@pytest.mark.parametrize("content", [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe",
    b"format = 1\n\xc3\x28 = 2\n",
    "format = 1\n".encode("utf-16"),
])
def test_a_binary_sop_file_is_a_definition_error(tmp_path, content):
    path = tmp_path / "sop.toml"
    path.write_bytes(content)
    with pytest.raises(DefinitionError) as caught:
        load_sop(path)
    assert caught.value.source == str(path)
    assert "UTF-8" in str(caught.value) or "TOML" in str(caught.value)


def test_nul_and_over_long_header_texts_in_an_sop_are_definition_errors():
    number = bundled_text().split('number = "', 1)[1].split('"', 1)[0]
    with pytest.raises(DefinitionError, match=r"sop\.number: contains a NUL"):
        parse_sop(bundled_text().replace(number, "a\\u0000b", 1), source="s.toml")
    with pytest.raises(DefinitionError, match=r"sop\.number: is 201 characters"):
        parse_sop(bundled_text().replace(number, "N" * 201, 1))


def _moved(text: str, key: str, before: str) -> str:
    """The bundled SOP with the step ``key`` moved in front of the step ``before``."""
    head, *blocks = text.split("[[steps]]")
    blocks = ["[[steps]]" + b for b in blocks]
    moving = next(b for b in blocks if f'key = "{key}"' in b)
    blocks.remove(moving)
    at = next(i for i, b in enumerate(blocks) if f'key = "{before}"' in b)
    blocks.insert(at, moving)
    for n, _ in enumerate(blocks):  # numbers in document order again
        number = blocks[n].split("number = ", 1)[1].split("\n", 1)[0]
        blocks[n] = blocks[n].replace(f"number = {number}", f"number = {n + 1}", 1)
    return head + "".join(blocks)


@pytest.mark.parametrize("output", ["production", "recheck"])
def test_an_sop_whose_production_precedes_its_approval_is_refused_at_load_time(output):
    sop = humasflow.bundled_sop()
    key = sop.step_for_output(output).key  # type: ignore[union-attr]
    approval = sop.step_for_output("approval").key  # type: ignore[union-attr]
    with pytest.raises(DefinitionError) as caught:
        parse_sop(_moved(bundled_text(), key, approval), source="wrong-order.toml")
    message = str(caught.value)
    assert caught.value.source == "wrong-order.toml"
    assert caught.value.path.endswith(".output")
    assert "approval step before production, recheck and publication" in message


# -- the terminal and the spreadsheet -------------------------------------------------------


def test_terminal_escape_sequences_in_user_text_are_shown_escaped(store_url, tmp_path,
                                                                  monkeypatch):
    # A CSV export shown on a terminal is escaped too (written to a file, it is kept).
    monkeypatch.setattr("humasflow.cli._stdout_is_tty", lambda: True)
    clock = SteerableClock()
    nasty = "Dies\x1b[2J\x1b]0;owned\x07 Natalis\u202egnp.exe\x9b31m"
    run(store_url, "init", "--admin", "admin", "--name", "Admin", "--outbox",
        str(tmp_path / "out"), clock=clock)
    run(store_url, "actor", "add", "--by", "admin", "rina", "--name", "Rina", "--role",
        "staff", clock=clock)
    created = run(store_url, "new", nasty, "--as", "rina", "--text", f"text {nasty}",
                  clock=clock)
    item = created.stdout.strip()
    run(store_url, "complete", item, "--as", "rina", "--text", f"new {nasty}", clock=clock)
    outputs = [created.output]
    for args in (["list"], ["show", item], ["log"], ["log", item], ["status", item],
                 ["export", "--format", "csv"]):
        outputs.append(run(store_url, *args, clock=clock).output)
    outputs.append(run(store_url, "new", "x", "--as", nasty, clock=clock, code=1).output)
    refused = run(store_url, "actor", "add", "--by", "admin", "x", "--name", nasty, "--role",
                  "staff",
                  clock=clock, code=1).output
    assert "control character" in refused
    outputs.append(refused)
    for output in outputs:
        for raw in ("\x1b", "\x07", "\u202e", "\x9b"):
            assert raw not in output, output
    shown = "\n".join(outputs[:3])
    assert "\\x1b[2J" in shown
    assert "\\u202e" in shown


def test_csv_exports_neutralise_formulas_and_jsonl_keeps_the_record(office):
    starts = ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]
    item = office.new_item(starts[0], by="rina")
    office.cancel(item.id, by="rina", reason=starts[1])
    office.add_actor("-2+3", "@SUM(A1)", roles=["staff"], by="admin")
    office.new_item("by a formula-named actor", by="-2+3")
    for title in starts[4:]:
        office.new_item(title, by="rina")
    out = io.StringIO()
    office.export(out, format="csv")
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    cells = [value for row in rows for value in row.values()]
    for cell in cells:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert "'+1+1" in cells
    assert "'-2+3" in cells
    lines = io.StringIO()
    office.export(lines, format="jsonl")
    notes = [json.loads(line)["note"] for line in lines.getvalue().splitlines()]
    assert "+1+1" in notes
    assert office.verify().ok


# -- times ----------------------------------------------------------------------------------


@pytest.fixture
def ready(office, image):
    return item_ready_to_post(office, text="Selamat!", media=[image])


@pytest.mark.parametrize(("at", "error", "match"), [
    (dt.date(2026, 5, 1), TypeError, "a date has no time of day"),
    ("2026-05-01 09:00", TypeError, "fromisoformat"),
    (1767225600, TypeError, "aware datetime"),
    (dt.datetime(2026, 5, 1, 9, 0), InputInvalid, "naive"),
    (dt.datetime(1, 1, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=14))), InputInvalid,
     "outside the times"),
    (dt.datetime.max.replace(tzinfo=dt.timezone.utc), InputInvalid, "outside the times"),
    (dt.datetime(2026, 3, 8, 2, 30, tzinfo=NEW_YORK), InputInvalid, "clocks skip"),
    (dt.datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK), InputInvalid, "happens twice"),
])
def test_schedule_refuses_what_is_not_one_real_moment(office, ready, at, error, match):
    before = counts(office)
    with pytest.raises(error, match=match) as caught:
        office.schedule(ready.id, at, by="rina")
    assert "at" in str(caught.value)
    assert counts(office) == before
    assert office.item(ready.id).version == ready.version


def test_schedule_takes_a_fold_time_with_an_explicit_offset(office, ready):
    at = dt.datetime(2026, 11, 1, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=-4)))
    office.schedule(ready.id, at, by="rina")
    assert office.history(ready.id)[-1].data["post_at"] == "2026-11-01T05:30:00+00:00"


def test_a_clock_at_the_end_of_time_is_a_clear_error(office):
    office.clock.set(dt.datetime(9999, 12, 31, tzinfo=dt.timezone.utc))  # type: ignore[attr-defined]
    before = counts(office)
    with pytest.raises(InputInvalid, match="the clock's time"):
        office.new_item("late", by="rina")
    assert counts(office) == before
    with pytest.raises(ValueError, match="lease"):
        office.dispatcher(lease=dt.timedelta(days=10**6))


def test_cli_schedule_refuses_dst_gaps_and_asks_for_an_offset_in_a_fold(store_url, tmp_path,
                                                                         image):
    clock = SteerableClock()
    run(store_url, "init", "--admin", "admin", "--name", "Admin", "--outbox",
        str(tmp_path / "out"), clock=clock)
    store = Store(store_url)
    try:
        office = Office(store, clock=clock, environ={})
        staffed_office(office)
        item = item_ready_to_post(office, text="Selamat!", media=[image])
    finally:
        store.close()
    ny = ["--tz", "America/New_York"]
    gap = run(store_url, *ny, "schedule", str(item.id), "--as", "rina", "--at",
              "2026-03-08 02:30", clock=clock, code=1)
    assert "does not exist in America/New_York" in gap.output
    fold = run(store_url, *ny, "schedule", str(item.id), "--as", "rina", "--at",
               "2026-11-01 01:30", clock=clock, code=1)
    assert "happens twice" in fold.output
    assert "01:30-04:00" in fold.output
    bad = run(store_url, "schedule", str(item.id), "--as", "rina", "--at", "tomorrow",
              clock=clock, code=2)
    assert "--at" in bad.output
    ok = run(store_url, *ny, "schedule", str(item.id), "--as", "rina", "--at",
             "2026-11-01 01:30-04:00", clock=clock)
    assert "2026-11-01 01:30" in ok.output
    log = run(store_url, "log", str(item.id), clock=clock).output
    assert log.count("schedule") == 1


# -- the store's path -----------------------------------------------------------------------


def test_a_directory_or_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    text_file = tmp_path / "notes.txt"
    text_file.write_text("this is not a database, just some text\n" * 50)
    with pytest.raises(StorageError, match="is a directory"):
        Store(str(tmp_path))
    with pytest.raises(StorageError, match="target is empty"):
        Store("")
    with pytest.raises(StorageError, match="not a humasflow store"):
        Store(str(text_file))
    assert text_file.read_text().startswith("this is not a database")
    for db, message in ((str(tmp_path), "is a directory"),
                        (str(text_file), "not a humasflow store")):
        for args in (["list"], ["init"]):
            result = run(db, *args, code=1)
            assert message in result.output
    result = run(str(tmp_path / "missing" / "deeper" / "h.db"), "init", code=1)
    assert "cannot open" in result.output
    assert "--db is empty" in run("", "list", code=1).output


def test_item_numbers_beyond_the_store_are_not_found_in_the_cli(store_url):
    run(store_url, "init", "--admin", "admin", "--name", "Admin")
    for command in (["show"], ["status"], ["log"]):
        result = run(store_url, *command, "99999999999999999999999", code=1)
        assert "no content item" in result.output
    result = run(store_url, "sop", "show", "--revision", "99999999999999999999999", code=1)
    assert "no SOP revision" in result.output


def test_open_refuses_an_org_no_store_can_hold_before_creating_anything(tmp_path):
    with pytest.raises(InputInvalid, match="org"):
        humasflow.open(str(tmp_path / "h.db"), org="bad\x00org")
    with pytest.raises(InputInvalid, match="org"):
        humasflow.open(str(tmp_path / "h.db"), org="o" * 101)
    assert not Path(tmp_path / "h.db").exists()


def test_a_sqlite_file_of_another_application_is_left_alone(tmp_path):
    other = tmp_path / "contacts.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE contacts (name TEXT)")
    with pytest.raises(StorageError, match=r"not a humasflow store.*contacts"):
        Store(str(other))
    result = run(str(other), "list", code=1)
    assert "not a humasflow store" in result.output
    with sqlite3.connect(other) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert tables == ["contacts"]


def test_wrong_types_and_values_of_arguments_are_clear_errors(office):
    before = counts(office)
    with pytest.raises(TypeError, match="list of channel names"):
        office.new_item("t", by="rina", channels="outbox")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"roles=\['staff'\]"):
        office.add_actor("dewi", "Dewi", roles="staff", by="admin")
    with pytest.raises(TypeError, match="load_sop"):
        office.establish("fisip.toml", by="admin")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="title must be a string"):
        office.new_item(None, by="rina")  # type: ignore[arg-type]
    with pytest.raises(InputInvalid, match="limit"):
        office.items(limit=-1)
    with pytest.raises(InputInvalid, match="outside the times"):
        office.establish(effective=dt.date(1, 1, 1), by="admin")
    with pytest.raises(TypeError, match="str"):
        parse_sop(b"format = 1")  # type: ignore[arg-type]
    assert counts(office) == before


def test_cli_refuses_extreme_times_and_unwritable_outputs(store_url, tmp_path, image):
    clock = SteerableClock()
    run(store_url, "init", "--admin", "admin", "--name", "Admin", "--outbox",
        str(tmp_path / "out"), clock=clock)
    store = Store(store_url)
    try:
        office = Office(store, clock=clock, environ={})
        staffed_office(office)
        item = item_ready_to_post(office, text="Selamat!", media=[image])
    finally:
        store.close()
    for at in ("0001-01-01 00:00", "9999-12-31 23:59"):
        result = run(store_url, "schedule", str(item.id), "--as", "rina", "--at", at,
                     clock=clock, code=1)
        assert "outside the times" in result.output
    result = run(store_url, "export", "--output", str(tmp_path / "no" / "such" / "x.csv"),
                 clock=clock, code=1)
    assert "cannot write --output" in result.output


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(title=st.text(alphabet=st.characters(blacklist_categories=()), min_size=1,
                     max_size=40),
       text=st.text(alphabet=st.characters(blacklist_categories=()), max_size=40))
@example(title="a\ud800", text="")
@example(title="t", text="x\x00")
@example(title="\x1b[2J\u202e", text="")
def test_any_text_is_kept_exactly_or_refused_with_input_invalid(office, title, text):
    """The same rule on both databases: a text is stored as given, or refused up front."""
    before = counts(office)

    def unstorable(value: str) -> bool:
        return any(c == "\x00" or "\ud800" <= c <= "\udfff" for c in value)

    if unstorable(title) or unstorable(text):
        with pytest.raises(InputInvalid) as caught:
            office.new_item(title, by="rina", text=text)
        assert caught.value.field == ("title" if unstorable(title) else "text")
        assert counts(office) == before
        return
    if not title.strip():
        with pytest.raises(ValueError, match="title is empty"):
            office.new_item(title, by="rina", text=text)
        return
    item = office.new_item(title, by="rina", text=text)
    stored = office.item(item.id)
    assert stored.title == title.strip()
    assert stored.post.text == text.strip()
    assert office.history(item.id)[0].data["title"] == title.strip()


def test_every_line_the_command_writes_goes_through_the_printable_helper():
    """New output must use ``_echo`` (which escapes user text), never ``click.echo``."""
    import humasflow.cli

    source = Path(humasflow.cli.__file__).read_text("utf-8")
    assert source.count("click.echo(") == 1  # inside _echo itself
    assert "click.secho(" not in source
    assert not re.search(r"(?<![\w.])print\(", source)
