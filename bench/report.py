"""The evaluation report against a raw aggregate query over the same rows.

Run by hand::

    .venv/bin/python bench/report.py                      # 1,000,000 events, SQLite
    .venv/bin/python bench/report.py --items 5000         # 5,000 items (~43,000 events)
    .venv/bin/python bench/report.py --runs 3 \
        --store postgresql+psycopg://postgres@127.0.0.1:5432/test

A SQLite store is built once and kept under ``~/.cache/humasflow-bench`` (keyed by its
size, the synthetic records' version and the schema version, so that a re-run reads it
instead of writing a million events again; ``--rebuild`` makes it anew). A PostgreSQL
store is filled in a schema of its own that is dropped afterwards.

What is measured, in one process, on a SQLite file in a temporary folder (or the store
given, in a schema of its own that is dropped afterwards): a month of synthetic records
(each item created, moved through the seven content steps, one in five rejected once,
one in ten reworked once, and posted; 85% of the visits take 1-5 minutes, the others
5-60), written straight into the tables, and their step visits derived from the events
as migration 12 derives them for a store written before it (the report reads the step
visits and item rows; it does not check hashes).

report
    ``Office.report`` for the month, wall clock: every part of the report (steps with
    nearest-rank percentiles, decisions and reasons, lead time, weeks, channels,
    breaches). On PostgreSQL it reads on two connections sharing one snapshot (the
    step counts on one while the breaches are read and made on the other) and turns
    JIT compilation off for its transactions.
raw query
    One hand-written SQL query over the same events: per step, the count, mean and
    maximum duration of the visits that ended in the month (``lead`` over each stream).
    The floor the report was set against (issue 11): what the report computes from
    without the step visits kept as rows. On PostgreSQL it runs with the server's
    settings (JIT on, as by default), and once more with JIT off (``raw, no JIT``):
    the report is given against both.

What the report does beyond the raw query (so the ratio is not like for like): it
reads the visits that ended in the month from ``step_visits`` several times (on SQLite
by walking its index by step and duration, once per step; on PostgreSQL through the
table): the counts, maxima and shares within the standard per step, each outcome and
each week counted by a filter; the reasons of the visits sent back; the nearest ranks
(``percentile_disc`` on PostgreSQL, an index walk to each rank on SQLite); the breaches
(here about 122,000 rows, each returned to Python as a ``StepBreach`` with its item's
title, sorted by overrun); the visits still open at the end; the posted items for the
lead times and the weeks; the items created per week; and the channel records. Both
run with the database's default settings (no extra memory for sorts on either side).

Reported: the median wall time of each and the ratio ``report / raw query``. Runs are
interleaved so that a noisy neighbour hurts both alike.
"""

from __future__ import annotations

# ruff: noqa: E402 - the imports below come after the import path fix
import os
import sys

# bench/transitions.py would shadow the ``transitions`` library; drop this folder.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import datetime as dt
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from humasflow.office import Office
from humasflow.storage import schema as t
from humasflow.storage.store import Store
from humasflow.testing import SteerableClock, staffed_office

START = dt.datetime(2026, 1, 1, 1, 0, tzinfo=dt.timezone.utc)
STEPS = ("concept", "prepare", "design", "approve", "produce", "recheck", "post")


#: The synthetic records' version: change it when ``fill`` writes other records.
RECORDS = 2


def fill(store: Store, org: str, revision: int, items: int, seed: int = 11,
         target: int = 0) -> int:
    """Write ``items`` synthetic items and their events (or as many items as make
    ``target`` events, when given); return the number of events."""
    rng = random.Random(seed)  # noqa: S311 - synthetic records, repeatable, not secrets
    item_rows: list[dict] = []
    event_rows: list[dict] = []
    written = 0

    def flush() -> None:
        nonlocal written
        with store.engine.begin() as conn:
            if item_rows:
                conn.execute(t.items.insert(), item_rows)
            for chunk in range(0, len(event_rows), 20000):
                conn.execute(t.events.insert(), event_rows[chunk:chunk + 20000])
        written += len(event_rows)
        item_rows.clear()
        event_rows.clear()

    n = 0
    while (written + len(event_rows) < target) if target else n < items:
        n += 1
        at = START + dt.timedelta(minutes=rng.randrange(0, 29 * 24 * 60))
        created = at
        moves = [("create", None, "concept", "")]
        path = list(STEPS)
        if rng.random() < 0.2:
            path[4:4] = ["design", "approve"]
        if rng.random() < 0.1:
            path[-1:-1] = ["produce", "recheck"]
        for here, nxt in zip(path, [*path[1:], "posted"], strict=True):
            action = "complete"
            note = ""
            if here == "approve":
                action = "approve" if nxt == "produce" else "reject"
                note = "" if action == "approve" else rng.choice(("logo", "typo", "size"))
            elif here == "recheck":
                action = "pass" if nxt == "post" else "rework"
                note = "" if action == "pass" else "colour"
            # Leaving the posting step is a "complete", as humasflow records it.
            moves.append((action, here, nxt, note))
        events = []
        for seq, (action, before, after, note) in enumerate(moves, start=1):
            if seq > 1:
                # Most visits within their standard time (5-15 minutes), some well over.
                at += dt.timedelta(seconds=rng.randrange(60, 300) if rng.random() < 0.85
                                   else rng.randrange(300, 3600))
            events.append({"org": org, "stream": f"item:{n}", "seq": seq, "at": at,
                           "actor": "rina", "action": action, "from_state": before,
                           "to_state": after, "note": note, "data": {},
                           "prev_hash": "", "hash": f"{n}-{seq}"})
        event_rows += events
        item_rows.append({"id": n, "org": org, "sop_revision": revision, "title": f"Item {n}",
                          "state": "posted", "version": len(events), "head_hash": "",
                          "post": {}, "produced": [], "outputs": {}, "authors": [],
                          "created_by": "rina", "created_at": created,
                          "step_started_at": at, "key": str(uuid.uuid4())})
        if len(event_rows) >= 200000:
            flush()
    flush()
    return written


_RAW = """
    WITH moves AS (
        SELECT stream, seq, at, to_state FROM events
        WHERE org = :org AND stream LIKE 'item:%'
          AND (action = 'create' OR from_state IS DISTINCT FROM to_state)),
    visits AS (
        SELECT to_state AS step, at AS s,
               lead(at) OVER (PARTITION BY stream ORDER BY seq) AS e FROM moves)
    SELECT step, count(*), avg(SECONDS), max(SECONDS) FROM visits
    WHERE e >= :since AND e < :until GROUP BY step"""


def raw_query(store: Store, org: str, since: dt.datetime, until: dt.datetime, *,
              jit: bool = True) -> list:
    """The raw query; ``jit=False`` turns PostgreSQL's JIT compilation off for it."""
    sqlite = store.engine.dialect.name == "sqlite"
    seconds = ("(julianday(e) - julianday(s)) * 86400" if sqlite
               else "extract(epoch from e - s)")
    bind = t.UTCDateTime().process_bind_param
    dialect = store.engine.dialect
    text = sa.text(_RAW.replace("SECONDS", seconds))
    with store.engine.connect() as conn:
        if not jit:
            conn.exec_driver_sql("SET LOCAL jit = off")
        return list(conn.execute(text, {"org": org, "since": bind(since, dialect),
                                        "until": bind(until, dialect)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--items", type=int, default=0,
                        help="this many items (instead of --events)")
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="as many items as make this many events (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--store", help="a database URL (default: a SQLite file, cached)")
    parser.add_argument("--rebuild", action="store_true",
                        help="build the cached SQLite store anew")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.items:
            args.events = 0
        size = f"e{args.events}" if args.events else f"i{args.items}"
        cache = (Path.home() / ".cache" / "humasflow-bench"
                 / f"report-{size}-r{RECORDS}-s{t.MIGRATIONS[-1][0]}.db")
        cached = args.store is None and cache.exists() and not args.rebuild
        building = Path(tmp) / "bench.db"
        url = args.store or str(cache if cached else building)
        schema = None
        if args.store and args.store.startswith("postgresql"):
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(args.store)
            with admin.begin() as conn:
                conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
            url = f"{args.store}?options=-csearch_path%3D{schema}"
        store = Store(url)
        complete = False
        try:
            office = Office(store, "bench", clock=SteerableClock(START), environ={},
                            media_store=Path(tmp) / "media")
            if not cached:
                revision = office.establish(by="Dekan",
                                            effective=START - dt.timedelta(days=1))
                staffed_office(office)
                began = time.perf_counter()
                fill(store, "bench", revision, args.items, target=args.events)
                print(f"  (records written in {time.perf_counter() - began:.0f} s)")
                # What migration 12 does for a store written before it: the visits
                # derived from the events in one INSERT … SELECT.
                began = time.perf_counter()
                with store.engine.begin() as conn:
                    derived = t.fill_step_visits(conn, "bench")
                print(f"  ({derived} step visits derived from the events in "
                      f"{time.perf_counter() - began:.1f} s)")
            office.clock = SteerableClock(dt.datetime(2026, 2, 2, tzinfo=dt.timezone.utc))
            with store.engine.connect() as conn:
                count = conn.execute(sa.select(sa.func.count()).select_from(t.events)
                                     .where(t.events.c.org == "bench")).scalar()
                items = conn.execute(sa.select(sa.func.count()).select_from(t.items)
                                     .where(t.items.c.org == "bench")).scalar()
            if schema is not None:
                # As autovacuum would soon after: the planner needs the new rows' statistics.
                with store.engine.begin() as conn:
                    conn.execute(sa.text("ANALYZE"))
            since, until = dt.date(2026, 1, 1), dt.date(2026, 1, 31)
            report = office.report(since, until)
            bounds = (report.since, report.until)
            times: dict[str, list[float]] = {"report": [], "raw query": []}
            if schema is not None:
                times["raw, no JIT"] = []
            for run in range(args.runs):
                begin = time.perf_counter()
                office.report(since, until)
                times["report"].append(time.perf_counter() - begin)
                begin = time.perf_counter()
                raw_query(store, "bench", *bounds)
                times["raw query"].append(time.perf_counter() - begin)
                if schema is not None:
                    begin = time.perf_counter()
                    raw_query(store, "bench", *bounds, jit=False)
                    times["raw, no JIT"].append(time.perf_counter() - begin)
                print(f"  run {run + 1}: report {times['report'][-1] * 1000:.0f} ms, raw "
                      f"query {times['raw query'][-1] * 1000:.0f} ms, "
                      f"{times['report'][-1] / times['raw query'][-1]:.2f}x", flush=True)
            done = sum(s.completions for s in report.steps)
            print(f"{store.engine.dialect.name}: {items} items, {count} events, "
                  f"{done} step visits in the month, {len(report.breaches)} breaches")
            medians = {k: statistics.median(v) for k, v in times.items()}
            for name, value in medians.items():
                print(f"  {name:10} {value * 1000:9.1f} ms")
            print(f"  report / raw query: {medians['report'] / medians['raw query']:.2f}x")
            if schema is not None:
                print(f"  report / raw query without JIT: "
                      f"{medians['report'] / medians['raw, no JIT']:.2f}x")
            complete = True
        finally:
            store.close()
            if args.store is None and not cached and complete:
                # Kept for the next run; moved into place only once complete.
                cache.parent.mkdir(parents=True, exist_ok=True)
                os.replace(building, cache)
            if schema is not None:
                with admin.begin() as conn:
                    conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
                admin.dispose()


if __name__ == "__main__":
    main()
