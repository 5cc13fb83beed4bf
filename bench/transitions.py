"""Durable transitions per second through the public API, as a ratio to a raw driver floor.

Run by hand::

    .venv/bin/python bench/transitions.py                 # SQLite, 1000 transitions x 3 rounds
    .venv/bin/python bench/transitions.py --transitions 2000 --rounds 5
    .venv/bin/python bench/transitions.py --store postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/transitions.py --profile       # + where humasflow spends its time

What is compared, in the same process, each run on a fresh store (a SQLite file in a
temporary folder, or a PostgreSQL schema of its own that is dropped afterwards). Per
commit, each side does:

raw floor (``sqlite3`` or ``psycopg``)
    ``BEGIN`` (``BEGIN IMMEDIATE`` on SQLite); ``SELECT * FROM items WHERE id=? AND org=?``
    (``FOR UPDATE`` on PostgreSQL): the read any state machine on stored state must do;
    one ``UPDATE items SET`` (every column but the item's identity, as ``Store.apply`` does
    on a step change) ``WHERE id=? AND org=? AND version=?`` (the optimistic-lock check;
    the row count is checked); one ``INSERT INTO events``; ``COMMIT``. The values are the
    byte-exact row images a sample humasflow walk stored, into tables with humasflow's
    columns, types and indexes (SQLite: its DDL; PostgreSQL: ``CREATE TABLE ... (LIKE ...
    INCLUDING ALL)``). Foreign keys are not enforced on either (no transition changes a
    foreign-key column). No state machine, no role check, no hashing: the bare writes.

python-statemachine model
    What an embedder would write instead with ``python-statemachine``, persisted in its
    documented pattern (a model object holding the state in a field, a machine bound to
    it per action, ``send`` the event, save the model): the floor's transaction (same
    read, same UPDATE with the version check, same INSERT of the same row images) with a
    machine built on the loaded row in between, whose transitions carry a role condition.
    It computes no hash chain, digests nor validation, and writes what the floor writes.

raw floor + step visit row
    The floor's transaction with one more statement: the ``INSERT INTO step_visits`` of
    the row humasflow writes when an item leaves a step (the evaluation report's stays;
    every walk transition leaves a step). The table and its indexes are humasflow's, the
    row images the sample's. It shows what that row costs per commit, which the floor
    above does not pay; the headline ratio stays against the floor without it.

humasflow walk
    ``Office`` on a ``Store`` with its defaults (SQLite: WAL + ``synchronous=FULL``),
    bundled SOP, two actors. Each item walks concept -> prepare -> design -> approve:
    three ``complete`` calls by the staff member (text, notes, a design at an https URL so
    no media file is touched) and one ``approve`` by the coordinator (four-eyes). Four
    transitions per item, each one transaction: item and actor read in it, the guards,
    the item updated under the version check, the hash-chained event inserted, and the
    step visit the move ends inserted. On
    PostgreSQL the update (with the step visit a step change ends) and the event's
    insert are one statement, the update in a ``WITH`` clause and the insert taking its
    row: one round trip to the server fewer than the floor, which sends them apart as
    hand-written persistence usually does. On SQLite, where a statement is a call in
    the same process, they are separate statements as in the floor.

humasflow revise
    ``Office.revise`` of the concept text in place (same step, no step change).

Items are created before the clock starts. Rounds are interleaved (and the order flips
every round) because these machines are shared and noisy; the medians are reported. The
ratio is ``ops/s / floor ops/s`` (1.0 = no overhead beyond the floor's statements and the
fsync of each commit; the targets are >= 0.6 on SQLite and >= 0.65 on PostgreSQL).

Nothing here touches the network (a PostgreSQL server given with ``--store`` is contacted).
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
import contextlib
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
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy
import transitions as transitions_lib

import humasflow
from humasflow.storage.store import Store
from humasflow.testing import SteerableClock, staffed_office

TARGETS = {"sqlite": 0.6, "postgresql": 0.65}
STAFF, COORDINATOR = "rina", "budi"
MEDIA_URL = "https://cdn.example.ac.id/humas/dies-natalis-47.png"
TEXT = "Selamat Dies Natalis ke-47 FISIP Universitas Brawijaya! #FISIPUB #DiesNatalis"
NOTES = "Canva template 'dies-natalis', logo UB, palet biru; ukuran 1080x1350"
WARMUP_ITEMS = 5


# -- where each run's store lives -------------------------------------------------------


class Backend:
    """Fresh stores for the runs: SQLite files in temporary folders, or PostgreSQL schemas
    made for one run and dropped after it."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.postgres = bool(url and url.startswith("postgresql"))
        self.name = "postgresql" if self.postgres else "sqlite"
        if url and not self.postgres:
            raise SystemExit("--store takes a PostgreSQL URL; SQLite runs use temp files")
        self._admin = sqlalchemy.create_engine(url) if self.postgres and url else None

    @contextlib.contextmanager
    def fresh(self) -> Iterator[tuple[str, str | None, Path]]:
        """(humasflow store target, PostgreSQL schema or None, temp folder)."""
        with tempfile.TemporaryDirectory(prefix="humasflow-bench-") as tmp:
            folder = Path(tmp)
            if self._admin is None:
                yield str(folder / "humasflow.db"), None, folder
                return
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            with self._admin.begin() as conn:
                conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
            try:
                yield f"{self.url}?options=-csearch_path%3D{schema}", schema, folder
            finally:
                with self._admin.begin() as conn:
                    conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))

    def connect(self, target: str, schema: str | None) -> Any:
        """A raw driver connection in autocommit mode (transactions are sent by hand)."""
        if schema is None:
            conn = sqlite3.connect(target, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            return conn
        import psycopg

        assert self._admin is not None
        url = self._admin.url.set(drivername="postgresql")
        conn = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True,
                               options=f"-csearch_path={schema}")
        return conn

    def close(self) -> None:
        if self._admin is not None:
            self._admin.dispose()


# -- the humasflow side ------------------------------------------------------------------


def _office(target: str, folder: Path) -> humasflow.Office:
    """An office on a fresh store with the store's default settings."""
    store = Store(target)
    office = humasflow.Office(store, clock=SteerableClock(), environ={})
    office.establish(by="Dekan")
    staffed_office(office)
    # The outbox publisher validates without I/O for https media passed through (as before
    # the media store: nothing is fetched) and is never posted to.
    office.add_channel("outbox", "outbox", settings={"path": str(folder / "outbox"),
                                                   "media_urls": "pass"},
                       by="admin")
    return office


def _close(office: humasflow.Office) -> None:
    office.close()  # and its store's connections


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


def run_humasflow_walk(target: str, folder: Path, n: int) -> Timing:
    office = _office(target, folder)
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
        _close(office)


def run_humasflow_revise(target: str, folder: Path, n: int) -> Timing:
    office = _office(target, folder)
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
        _close(office)


# -- the raw floor ----------------------------------------------------------------------


class Sample:
    """Row images humasflow stored for one item's walk, and its tables' DDL.

    Attributes:
        ddl: SQLite: the CREATE statements of ``items`` and ``events`` and their indexes.
        json_columns: PostgreSQL: the JSON columns of each table (read and written as
            text, so the floor writes the exact text humasflow wrote).
        item0: The ``items`` row right after ``new_item`` (column -> stored value).
        event0: The ``create`` event row.
        steps: For each of the four walk transitions, (items row after it, its event row).
        visits: For each of the four walk transitions, the ``step_visits`` row it wrote
            (the stay at the step it left).
        set_columns: The item columns a step-changing transition updates.
    """

    def __init__(self, backend: Backend, target: str, schema: str | None,
                 folder: Path) -> None:
        office = _office(target, folder)
        item_id = office.new_item("Dies Natalis 0", by=STAFF).id
        actions: list[Callable[[], Any]] = [
            lambda: office.complete(item_id, by=STAFF, text=TEXT),
            lambda: office.complete(item_id, by=STAFF, notes=NOTES),
            lambda: office.complete(item_id, by=STAFF, media=[MEDIA_URL]),
            lambda: office.approve(item_id, by=COORDINATOR, answer="Disetujui (email)"),
        ]
        self.schema = schema
        raw = backend.connect(target, schema)
        try:
            self.json_columns: dict[str, list[str]] = {}
            self.ddl: list[str] = []
            if schema is None:
                self.ddl = [r[0] for r in raw.execute(
                    "SELECT sql FROM sqlite_master WHERE tbl_name IN ('items', 'events', "
                    "'step_visits') "
                    "AND sql IS NOT NULL ORDER BY type DESC, name")]
            else:
                for table in ("items", "events"):
                    self.json_columns[table] = [r[0] for r in raw.execute(
                        "SELECT column_name FROM information_schema.columns WHERE "
                        "table_schema = %s AND table_name = %s AND data_type IN "
                        "('json', 'jsonb')", (schema, table))]
            self.item0, self.event0 = self._rows(raw, item_id, 1)
            self.steps = []
            for k, act in enumerate(actions, start=2):
                act()
                self.steps.append(self._rows(raw, item_id, k))
            mark = "?" if schema is None else "%s"
            cur = raw.execute(f"SELECT * FROM step_visits WHERE item_id = {mark} "
                              "ORDER BY left_at", (item_id,))
            names = [d[0] for d in cur.description]
            self.visits = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
            if len(self.visits) != len(actions):
                raise RuntimeError(f"expected {len(actions)} step visits, found "
                                   f"{len(self.visits)}")
        finally:
            raw.close()
            _close(office)
        # Store.apply on a step change sets every column but the item's identity.
        fixed = {"id", "key", "org", "sop_revision", "created_by", "created_at"}
        self.set_columns = [c for c in self.item0 if c not in fixed]

    def _select(self, table: str, where: str) -> str:
        if self.schema is None:
            return f"SELECT * FROM {table} WHERE {where}"
        json = self.json_columns[table]
        return (f"SELECT *, {', '.join(f'{c}::text AS {c}__text' for c in json)} "
                f"FROM {table} WHERE {where}")

    def _rows(self, raw: Any, item_id: int, seq: int) -> tuple[dict[str, Any],
                                                             dict[str, Any]]:
        mark = "?" if self.schema is None else "%s"
        item = self._fetch(raw, "items", f"id = {mark}", (item_id,))
        event = self._fetch(raw, "events", f"stream = {mark} AND seq = {mark}",
                            (f"item:{item_id}", seq))
        event.pop("id")
        return item, event

    def _fetch(self, raw: Any, table: str, where: str, params: tuple) -> dict[str, Any]:
        cur = raw.execute(self._select(table, where), params)
        names = [d[0] for d in cur.description]
        row = dict(zip(names, cur.fetchone(), strict=True))
        for c in self.json_columns.get(table, []):
            row[c] = row.pop(f"{c}__text")
        return row

    def marks(self, table: str, columns: list[str]) -> list[str]:
        """The bind marks for ``columns`` (JSON text cast back to JSON on PostgreSQL)."""
        if self.schema is None:
            return ["?"] * len(columns)
        json = self.json_columns[table]
        return ["%s::json" if c in json else "%s" for c in columns]


class RawTransitions:
    """The floor's transaction on a raw driver connection; ``decide`` (if given) is
    called with the item row read in the transaction and the step, between the read and
    the writes (the python-statemachine run's machine). With ``visits``, each transition
    also inserts the ``step_visits`` row humasflow writes when an item leaves a step."""

    def __init__(self, backend: Backend, target: str, schema: str | None, n: int,
                 sample: Sample, *, visits: bool = False) -> None:
        self.conn = conn = backend.connect(target, schema)
        self.postgres = schema is not None
        if self.postgres:
            assert sample.schema is not None
            for table in ("items", "events", "step_visits"):
                conn.execute(f"CREATE TABLE {table} (LIKE {sample.schema}.{table} "
                             "INCLUDING ALL)")
        else:
            for ddl in sample.ddl:
                conn.execute(ddl)
        mark = "%s" if self.postgres else "?"
        self.begin = "BEGIN" if self.postgres else "BEGIN IMMEDIATE"
        items = n // 4
        item_cols = list(sample.item0)
        event_cols = list(sample.event0)
        insert_item = (f"INSERT INTO items ({', '.join(item_cols)}) "
                       f"VALUES ({', '.join(sample.marks('items', item_cols))})")
        self.insert_event = (f"INSERT INTO events ({', '.join(event_cols)}) "
                             f"VALUES ({', '.join(sample.marks('events', event_cols))})")
        sets = zip(sample.set_columns, sample.marks("items", sample.set_columns), strict=True)
        self.update_item = (f"UPDATE items SET {', '.join(f'{c} = {m}' for c, m in sets)} "
                            f"WHERE id = {mark} AND org = {mark} AND version = {mark}")
        self.select_item = (f"SELECT * FROM items WHERE id = {mark} AND org = {mark}"
                            + (" FOR UPDATE" if self.postgres else ""))
        visit_cols = list(sample.visits[0])
        self.insert_visit = (f"INSERT INTO step_visits ({', '.join(visit_cols)}) "
                             f"VALUES ({', '.join([mark] * len(visit_cols))})")
        self.visits = [[visit[c] for c in visit_cols] for visit in sample.visits] \
            if visits else None
        self.visit_item_at = visit_cols.index("item_id")
        # The items exist before the clock starts, as in the humasflow runs.
        conn.execute(self.begin)
        for item_id in range(1, items + WARMUP_ITEMS + 1):
            # The item's key is unique per item, like its id.
            conn.execute(insert_item, [item_id if c == "id" else f"key-{item_id}"
                                       if c == "key" else sample.item0[c] for c in item_cols])
            conn.execute(self.insert_event, [f"item:{item_id}" if c == "stream"
                                             else sample.event0[c] for c in event_cols])
        conn.execute("COMMIT")
        self.updates = [[after[c] for c in sample.set_columns] for after, _ in sample.steps]
        self.events = [[event[c] for c in event_cols] for _, event in sample.steps]
        self.stream_at = event_cols.index("stream")
        self.state_at = sample.set_columns.index("state")
        self.org = sample.item0["org"]
        self.items = items

    def transition(self, item_id: int, step: int,
                   decide: Callable[[Any, int], str] | None = None) -> None:
        conn = self.conn
        event = list(self.events[step])
        event[self.stream_at] = f"item:{item_id}"
        update = self.updates[step]
        conn.execute(self.begin)
        try:
            row = conn.execute(self.select_item, (item_id, self.org)).fetchone()
            if row is None:
                raise RuntimeError(f"no item {item_id}")
            if decide is not None:
                update = list(update)
                update[self.state_at] = decide(row, step)
            cur = conn.execute(self.update_item, [*update, item_id, self.org, step + 1])
            if cur.rowcount != 1:
                raise RuntimeError(f"version check failed for item {item_id}")
            conn.execute(self.insert_event, event)
            if self.visits is not None:
                visit = list(self.visits[step])
                visit[self.visit_item_at] = item_id
                conn.execute(self.insert_visit, visit)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def run(self, decide: Callable[[Any, int], str] | None = None) -> Timing:
        for item_id in range(1, WARMUP_ITEMS + 1):
            for step in range(4):
                self.transition(item_id, step, decide)
        try:
            return _timed(self.items * 4,
                          lambda k: self.transition(WARMUP_ITEMS + 1 + k // 4, k % 4, decide))
        finally:
            self.conn.close()


def run_raw_floor(backend: Backend, target: str, schema: str | None, n: int,
                  sample: Sample, *, visits: bool = False) -> Timing:
    return RawTransitions(backend, target, schema, n, sample, visits=visits).run()


# -- the python-statemachine model --------------------------------------------------------


def _statemachine_walk(sample: Sample) -> tuple[type, list[str]]:
    """A python-statemachine machine of the walk's steps, with the roles as conditions,
    and the trigger of each step."""
    from statemachine import State, StateMachine

    states = [sample.item0["state"], *(after["state"] for after, _ in sample.steps)]

    class Walk(StateMachine):  # type: ignore[misc]
        # (named apart from the steps: ``prepare`` is a python-statemachine hook name)
        at_concept = State(initial=True, value=states[0])
        at_prepare = State(value=states[1])
        at_design = State(value=states[2])
        at_approve = State(value=states[3])
        at_produce = State(value=states[4], final=True)  # where this walk ends

        complete = (at_concept.to(at_prepare, cond="is_staff")
                    | at_prepare.to(at_design, cond="is_staff")
                    | at_design.to(at_approve, cond="is_staff"))
        approved = at_approve.to(at_produce, cond="is_coordinator")

        def is_staff(self) -> bool:
            return "staff" in self.model.roles

        def is_coordinator(self) -> bool:
            return "coordinator" in self.model.roles

    return Walk, ["complete", "complete", "complete", "approved"]


class _Model:
    """The embedder's model object: the stored row's state, and who acts."""

    def __init__(self, state: str, roles: frozenset[str]) -> None:
        self.state = state
        self.roles = roles


def run_statemachine(backend: Backend, target: str, schema: str | None, n: int,
                     sample: Sample) -> Timing:
    machine, triggers = _statemachine_walk(sample)
    raw = RawTransitions(backend, target, schema, n, sample)
    state_at = list(sample.item0).index("state")
    roles = [frozenset({"staff"})] * 3 + [frozenset({"coordinator"})]

    def decide(row: Any, step: int) -> str:
        model = _Model(row[state_at], roles[step])
        machine(model, state_field="state").send(triggers[step])
        return model.state

    return raw.run(decide)


# -- reporting --------------------------------------------------------------------------


def _profile(backend: Backend, n: int) -> None:
    with backend.fresh() as (target, _, folder):
        profiler = cProfile.Profile()
        profiler.enable()
        run_humasflow_walk(target, folder, n)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(40)
    print("\ncProfile of one humasflow walk run (own time, includes item creation):")
    print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transitions", type=int, default=1000,
                        help="transitions per timed run (a multiple of 4; default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--store", help="a PostgreSQL URL (default: SQLite files); each run "
                        "gets a schema of its own, dropped afterwards")
    parser.add_argument("--no-revise", action="store_true", help="skip the revise workload")
    parser.add_argument("--no-statemachine", action="store_true",
                        help="skip the python-statemachine run")
    parser.add_argument("--no-visit-floor", action="store_true",
                        help="skip the floor run that also inserts the step visit row")
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of one humasflow walk run")
    args = parser.parse_args(argv)
    n = max(4, args.transitions - args.transitions % 4)
    if not args.no_statemachine:
        try:
            import statemachine  # noqa: F401
        except ImportError:
            raise SystemExit("python-statemachine is not installed: pip install -e "
                             "'.[bench]', or give --no-statemachine") from None
    backend = Backend(args.store)
    try:
        with backend.fresh() as (target, schema, folder):
            sample = Sample(backend, target, schema, folder)
            _rounds(backend, sample, n, args)
    finally:
        backend.close()
    return 0


def _rounds(backend: Backend, sample: Sample, n: int, args: argparse.Namespace) -> None:
    floor_name = f"raw {'psycopg' if backend.postgres else 'sqlite3'} floor"
    runs: dict[str, Callable[[str, str | None, Path], Timing]] = {
        floor_name: lambda t, s, p: run_raw_floor(backend, t, s, n, sample),
        "humasflow walk (complete x3, approve)": lambda t, s, p: run_humasflow_walk(t, p, n),
    }
    visits_name = f"{floor_name} + step visit row"
    if not args.no_visit_floor:
        runs[visits_name] = lambda t, s, p: run_raw_floor(backend, t, s, n, sample,
                                                          visits=True)
    if not args.no_statemachine:
        runs["python-statemachine, same rows"] = (
            lambda t, s, p: run_statemachine(backend, t, s, n, sample))
    if not args.no_revise:
        runs["humasflow revise in place"] = lambda t, s, p: run_humasflow_revise(t, p, n)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    latencies: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}

    names = list(runs)
    for r in range(args.rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            with backend.fresh() as (target, schema, folder):
                gc.collect()
                total, cpu_s, each = runs[name](target, schema, folder)
            rates[name].append(len(each) / total)
            latencies[name].extend(each)
            cpu[name].append(cpu_s / len(each))
            print(f"  round {r + 1}: {name:<40} {len(each) / total:9.1f} ops/s", flush=True)

    floor = statistics.median(rates[floor_name])
    psm_name = "python-statemachine, same rows"
    psm = statistics.median(rates[psm_name]) if psm_name in rates else None
    print()
    psm_version = "-"
    if psm is not None:
        import statemachine

        psm_version = statemachine.__version__
    where = (f"PostgreSQL {backend.url and sqlalchemy.engine.make_url(backend.url).host}, "
             "one schema per run" if backend.postgres else
             f"SQLite {sqlite3.sqlite_version} file in a temp folder, journal_mode=WAL, "
             "synchronous=FULL")
    print(f"humasflow durable transitions - {dt.date.today().isoformat()} - "
          f"Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, "
          f"transitions {transitions_lib.__version__}, python-statemachine "
          f"{psm_version}")
    print(f"{where}; one commit per transition; {n} transitions per run, "
          f"{args.rounds} interleaved rounds")
    print()
    header = (f"{'run':<40} {'ops/s per round':<26} {'median ops/s':>12} "
              f"{'p50 us':>8} {'p95 us':>8} {'cpu us':>7} {'ratio':>6} {'vs psm':>6}")
    print(header)
    print("-" * len(header))
    for name in names:
        per_round = " ".join(f"{x:8.0f}" for x in rates[name])
        median = statistics.median(rates[name])
        lat = sorted(latencies[name])
        p50 = lat[len(lat) // 2] * 1e6
        p95 = lat[int(len(lat) * 0.95)] * 1e6
        vs_psm = f"{median / psm:6.3f}" if psm else "     -"
        print(f"{name:<40} {per_round:<26} {median:12.1f} {p50:8.0f} {p95:8.0f} "
              f"{statistics.median(cpu[name]) * 1e6:7.0f} {median / floor:6.3f} {vs_psm}")
    print()
    walk = statistics.median(rates[names[1]]) / floor
    target = TARGETS[backend.name]
    verdict = "met" if walk >= target else "NOT met"
    print("per commit: floor = BEGIN, SELECT item, UPDATE item (version check), INSERT "
          "event, COMMIT; python-statemachine = the same plus a machine on the read row; "
          "humasflow = SELECT item+actor, guards, UPDATE (version check), INSERT "
          "hash-chained event with the row digests, INSERT step visit at a step change "
          "(on PostgreSQL one statement, the UPDATE in a WITH clause; the channels are "
          "read once and kept while the organisation's version is unchanged)")
    print("p50/p95 us: wall time of one transition; cpu us: this process's CPU time per "
          "transition (median of the rounds): the work without the fsync waits")
    print(f"ratio = ops/s / floor ops/s; vs psm = ops/s / python-statemachine ops/s; target "
          f">= {target} for the walk: {verdict} ({walk:.3f})")
    if visits_name in rates:
        with_visit = statistics.median(rates[visits_name])
        print(f"'+ step visit row': the floor's transaction plus the INSERT INTO step_visits "
              f"humasflow makes when an item leaves a step (every walk transition does); "
              f"the walk runs at {statistics.median(rates[names[1]]) / with_visit:.3f} of it, "
              f"the visit row costs the floor {1 - with_visit / floor:.1%} of its rate")
    if args.profile:
        _profile(backend, n)


if __name__ == "__main__":
    sys.exit(main())
