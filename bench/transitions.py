"""Durable transitions per second through the public API, as a ratio to a raw SQLite floor.

Run by hand::

    .venv/bin/python bench/transitions.py                 # 1000 transitions x 3 rounds
    .venv/bin/python bench/transitions.py --transitions 2000 --rounds 5
    .venv/bin/python bench/transitions.py --profile       # + where humasflow spends its time

What is compared, in the same process and the same temporary folder:

raw sqlite3 floor
    The standard library's ``sqlite3`` writing exactly the rows humasflow writes for the
    same transitions: per transition ``BEGIN IMMEDIATE``; one ``UPDATE items SET`` (every
    column but the item's identity, as ``Store.apply`` does on a step change) ``WHERE
    id=? AND org=? AND version=?`` (the optimistic-lock check; the row count is checked);
    one ``INSERT INTO events``; ``COMMIT``. The tables are created from the DDL humasflow
    itself produced (same columns, types and indexes), and the values are the byte-exact
    row images a sample humasflow walk stored. The connection uses the store's pragmas:
    ``journal_mode=WAL``, ``synchronous=FULL``; foreign keys are not enforced (the
    ``sqlite3`` default; no transition changes a foreign-key column).

humasflow walk
    ``Office`` on a SQLite file (``Store`` defaults: WAL + ``synchronous=FULL``), bundled
    SOP, two actors. Each item walks concept -> prepare -> design -> approve: three
    ``complete`` calls by the staff member (text, notes, a design at an https URL so no
    media file is touched) and one ``approve`` by the coordinator (four-eyes). Four
    transitions per item, each one commit.

humasflow revise
    ``Office.revise`` of the concept text in place (same step, no step change).

Items are created before the clock starts. Rounds are interleaved (and the order flips
every round) because these machines are shared and noisy; the medians are reported. The
ratio is ``humasflow ops/s / floor ops/s`` (1.0 = no overhead beyond the row writes and
the fsync of each commit; the target is >= 0.5).

Nothing here touches the network.
"""

from __future__ import annotations

# ruff: noqa: E402, S608 - imports follow the import path fix; SQL is built from the DDL
import os
import sys

# This file's name is the name of the ``transitions`` library humasflow is built on; drop
# this folder from the import path so ``import transitions`` finds the library, not us.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import cProfile
import datetime as dt
import gc
import io
import platform
import pstats
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy
import transitions as transitions_lib

import humasflow
from humasflow.storage.store import Store
from humasflow.testing import SteerableClock, staffed_office

TARGET = 0.5
STAFF, COORDINATOR = "rina", "budi"
MEDIA_URL = "https://cdn.example.ac.id/humas/dies-natalis-47.png"
TEXT = "Selamat Dies Natalis ke-47 FISIP Universitas Brawijaya! #FISIPUB #DiesNatalis"
NOTES = "Canva template 'dies-natalis', logo UB, palet biru; ukuran 1080x1350"
WARMUP_ITEMS = 5


# -- the humasflow side ------------------------------------------------------------------


def _office(folder: Path) -> humasflow.Office:
    """An office on a fresh SQLite file with the store's default pragmas."""
    store = Store(folder / "humasflow.db")
    office = humasflow.Office(store, clock=SteerableClock(), environ={})
    office.establish(by="Dekan")
    staffed_office(office)
    # The outbox publisher validates without I/O for https media passed through (as before
    # the media store: nothing is fetched) and is never posted to.
    office.add_channel("outbox", "outbox", settings={"path": str(folder / "outbox"),
                                                   "media_urls": "pass"},
                       by="admin")
    return office


def _walk(office: humasflow.Office, item_id: int) -> None:
    office.complete(item_id, by=STAFF, text=TEXT)
    office.complete(item_id, by=STAFF, notes=NOTES)
    office.complete(item_id, by=STAFF, media=[MEDIA_URL])
    office.approve(item_id, by=COORDINATOR, answer="Disetujui, lanjut produksi (email)")


Timing = tuple[float, float, list[float]]


def _timed(n: int, step: Callable[[int], None]) -> Timing:
    """Run ``step(0..n-1)``; return the wall seconds, the CPU seconds of this process and
    each call's wall seconds."""
    each: list[float] = []
    clock = time.perf_counter
    cpu = time.process_time()
    start = clock()
    for i in range(n):
        t0 = clock()
        step(i)
        each.append(clock() - t0)
    return clock() - start, time.process_time() - cpu, each


def run_humasflow_walk(folder: Path, n: int) -> Timing:
    office = _office(folder)
    items = n // 4
    ids = [office.new_item(f"Dies Natalis {i}", by=STAFF).id
           for i in range(items + WARMUP_ITEMS)]
    for item_id in ids[:WARMUP_ITEMS]:
        _walk(office, item_id)
    work = ids[WARMUP_ITEMS:]
    calls: list[Callable[[int], Any]] = [
        lambda i: office.complete(i, by=STAFF, text=TEXT),
        lambda i: office.complete(i, by=STAFF, notes=NOTES),
        lambda i: office.complete(i, by=STAFF, media=[MEDIA_URL]),
        lambda i: office.approve(i, by=COORDINATOR, answer="Disetujui (email)"),
    ]
    try:
        return _timed(items * 4, lambda k: calls[k % 4](work[k // 4]))
    finally:
        office.close()


def run_humasflow_revise(folder: Path, n: int) -> Timing:
    office = _office(folder)
    items = max(1, n // 4)
    ids = [office.new_item(f"Dies Natalis {i}", by=STAFF, text=TEXT).id
           for i in range(items + WARMUP_ITEMS)]
    for k, item_id in enumerate(ids[:WARMUP_ITEMS]):
        office.revise(item_id, by=STAFF, text=f"{TEXT} (warm-up {k})")
    work = ids[WARMUP_ITEMS:]
    try:
        return _timed(n, lambda k: office.revise(work[k % items], by=STAFF,
                                                 text=f"{TEXT} (revisi {k})"))
    finally:
        office.close()


# -- the raw floor ----------------------------------------------------------------------


class Sample:
    """Row images humasflow stored for one item's walk, and its tables' DDL.

    Attributes:
        ddl: CREATE statements of ``items`` and ``events`` and their indexes.
        item0: The ``items`` row right after ``new_item`` (column -> stored value).
        event0: The ``create`` event row.
        steps: For each of the four walk transitions, (items row after it, its event row).
        set_columns: The item columns a step-changing transition updates.
    """

    def __init__(self, folder: Path) -> None:
        office = _office(folder)
        item_id = office.new_item("Dies Natalis 0", by=STAFF).id
        db = folder / "humasflow.db"
        actions: list[Callable[[], Any]] = [
            lambda: office.complete(item_id, by=STAFF, text=TEXT),
            lambda: office.complete(item_id, by=STAFF, notes=NOTES),
            lambda: office.complete(item_id, by=STAFF, media=[MEDIA_URL]),
            lambda: office.approve(item_id, by=COORDINATOR, answer="Disetujui (email)"),
        ]
        with sqlite3.connect(db) as raw:
            raw.row_factory = sqlite3.Row
            self.ddl = [r[0] for r in raw.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name IN ('items', 'events') "
                "AND sql IS NOT NULL ORDER BY type DESC, name")]
            self.item0, self.event0 = self._rows(raw, item_id, 1)
            self.steps = []
            for k, act in enumerate(actions, start=2):
                act()
                self.steps.append(self._rows(raw, item_id, k))
        office.close()
        # Store.apply on a step change sets every column but the item's identity.
        fixed = {"id", "key", "org", "sop_revision", "created_by", "created_at"}
        self.set_columns = [c for c in self.item0 if c not in fixed]

    @staticmethod
    def _rows(raw: sqlite3.Connection, item_id: int, seq: int) -> tuple[dict[str, Any],
                                                                        dict[str, Any]]:
        item = dict(raw.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone())
        event = dict(raw.execute("SELECT * FROM events WHERE stream = ? AND seq = ?",
                                 (f"item:{item_id}", seq)).fetchone())
        event.pop("id")
        return item, event


def _raw_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def run_raw_floor(folder: Path, n: int, sample: Sample) -> Timing:
    conn = _raw_connect(folder / "raw.db")
    for ddl in sample.ddl:
        conn.execute(ddl)
    items = n // 4
    item_cols = list(sample.item0)
    event_cols = list(sample.event0)
    insert_item = (f"INSERT INTO items ({', '.join(item_cols)}) "
                   f"VALUES ({', '.join('?' * len(item_cols))})")
    insert_event = (f"INSERT INTO events ({', '.join(event_cols)}) "
                    f"VALUES ({', '.join('?' * len(event_cols))})")
    update_item = (f"UPDATE items SET {', '.join(f'{c} = ?' for c in sample.set_columns)} "
                   "WHERE id = ? AND org = ? AND version = ?")
    # The items exist before the clock starts, as in the humasflow runs.
    conn.execute("BEGIN IMMEDIATE")
    for item_id in range(1, items + WARMUP_ITEMS + 1):
        # The item's key is unique per item, like its id.
        conn.execute(insert_item, [item_id if c == "id" else f"key-{item_id}" if c == "key"
                                   else sample.item0[c] for c in item_cols])
        conn.execute(insert_event, [f"item:{item_id}" if c == "stream" else sample.event0[c]
                                    for c in event_cols])
    conn.execute("COMMIT")
    updates = [[after[c] for c in sample.set_columns] for after, _ in sample.steps]
    events = [[event[c] for c in event_cols] for _, event in sample.steps]
    stream_at = event_cols.index("stream")
    org = sample.item0["org"]

    def transition(item_id: int, step: int) -> None:
        event = list(events[step])
        event[stream_at] = f"item:{item_id}"
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute(update_item, [*updates[step], item_id, org, step + 1])
            if cur.rowcount != 1:
                raise RuntimeError(f"version check failed for item {item_id}")
            conn.execute(insert_event, event)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    for item_id in range(1, WARMUP_ITEMS + 1):
        for step in range(4):
            transition(item_id, step)
    try:
        return _timed(items * 4, lambda k: transition(WARMUP_ITEMS + 1 + k // 4, k % 4))
    finally:
        conn.close()


# -- reporting --------------------------------------------------------------------------


def _profile(n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="humasflow-bench-") as folder:
        profiler = cProfile.Profile()
        profiler.enable()
        run_humasflow_walk(Path(folder), n)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(r"humasflow|sqlalchemy/engine|transitions/core",
                                               30)
    print("\ncProfile of one humasflow walk run (cumulative, includes item creation):")
    print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transitions", type=int, default=1000,
                        help="transitions per timed run (a multiple of 4; default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--no-revise", action="store_true", help="skip the revise workload")
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of one humasflow walk run")
    args = parser.parse_args(argv)
    n = max(4, args.transitions - args.transitions % 4)

    with tempfile.TemporaryDirectory(prefix="humasflow-bench-") as tmp:
        sample = Sample(Path(tmp))

    runs: dict[str, Callable[[Path], Timing]] = {
        "raw sqlite3 floor": lambda p: run_raw_floor(p, n, sample),
        "humasflow walk (complete x3, approve)": lambda p: run_humasflow_walk(p, n),
    }
    if not args.no_revise:
        runs["humasflow revise in place"] = lambda p: run_humasflow_revise(p, n)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    latencies: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}

    names = list(runs)
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            with tempfile.TemporaryDirectory(prefix="humasflow-bench-") as folder:
                gc.collect()
                total, cpu_s, each = runs[name](Path(folder))
            rates[name].append(len(each) / total)
            latencies[name].extend(each)
            cpu[name].append(cpu_s / len(each))
            print(f"  round {r + 1}: {name:<40} {len(each) / total:9.1f} ops/s", flush=True)

    floor = statistics.median(rates[names[0]])
    print()
    print(f"humasflow durable transitions - {dt.date.today().isoformat()} - "
          f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"SQLAlchemy {sqlalchemy.__version__}, transitions {transitions_lib.__version__}")
    print(f"SQLite file in a temp folder, journal_mode=WAL, synchronous=FULL, one commit per "
          f"transition; {n} transitions per run, {args.rounds} interleaved rounds")
    print()
    header = (f"{'run':<40} {'ops/s per round':<26} {'median ops/s':>12} "
              f"{'p50 us':>8} {'p95 us':>8} {'cpu us':>7} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for name in names:
        per_round = " ".join(f"{x:8.0f}" for x in rates[name])
        median = statistics.median(rates[name])
        lat = sorted(latencies[name])
        p50 = lat[len(lat) // 2] * 1e6
        p95 = lat[int(len(lat) * 0.95)] * 1e6
        print(f"{name:<40} {per_round:<26} {median:12.1f} {p50:8.0f} {p95:8.0f} "
              f"{statistics.median(cpu[name]) * 1e6:7.0f} {median / floor:6.3f}")
    print()
    walk = statistics.median(rates[names[1]]) / floor
    verdict = "met" if walk >= TARGET else "NOT met"
    print("p50/p95 us: wall time of one transition; cpu us: this process's CPU time per "
          "transition (median of the rounds): humasflow's own work without the fsync waits")
    print(f"ratio = humasflow ops/s / floor ops/s; target >= {TARGET} for the walk: {verdict} "
          f"({walk:.3f})")
    if args.profile:
        _profile(n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
