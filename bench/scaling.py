"""Per-transition and query cost as the store grows: 1,000 vs 100,000 vs 1,000,000 items.

Run by hand::

    .venv/bin/python bench/scaling.py                       # sizes 1000,100000,1000000
    .venv/bin/python bench/scaling.py --sizes 1000,100000   # quicker
    .venv/bin/python bench/scaling.py --walks 200 --keep    # keep the databases

For each size, a fresh SQLite file is filled like this:

1. Four template items are made through the public API (``Office.new_item``,
   ``complete``, ``cancel``) with a steerable clock: an *overdue* concept (made a day
   earlier, so its 5-minute standard time has run out), an open *concept*, an item
   waiting at *approve*, and a *cancelled* one.
2. Their ``items`` rows and hash-chained ``events`` rows are cloned with new ids, in one
   transaction, with SQLAlchemy Core ``executemany`` into humasflow's own tables: each
   clone's events are re-sealed for its stream (``item:<id>``), so every clone is a valid
   item whose record passes ``Office.verify()``. Ids are spread: every 10th item is an
   open concept, every 10th (offset 5) waits at approve, 51 are overdue (evenly spread
   over the id range), the rest (about 80%) are cancelled. The load connection is tuned
   for speed (``synchronous=OFF``, a big cache); the file is back in WAL mode afterwards.
3. A ``Store``/``Office`` opened on the file (the store's default pragmas: WAL +
   ``synchronous=FULL``) walks ``--walks`` concept items spread over the id range through
   concept -> prepare -> design -> approve (``complete`` x3 by staff, ``approve`` by the
   coordinator: four durable transitions each), timing every call.
4. It times ``office.items(state="approve", limit=50)``, ``office.overdue()`` (51
   results at every size) and ``office.items(assignee="rina", limit=50)`` (every item is
   assigned to rina: "my items, newest first"), and prints SQLite's query plan for each.

Steps 3 and 4 are interleaved call by call across the sizes, so that the noise of a
shared machine falls on every size alike.

The per-transition median at each size is compared with the smallest size: a ratio near
1 is flat. A query whose ratio grows with the size reads rows it does not return: a
missing or unused index. Nothing here touches the network.
"""

from __future__ import annotations

# ruff: noqa: E402 - the imports below come after the import path fix
import os
import sys

# bench/transitions.py shares its name with the ``transitions`` library; keep this
# folder off the import path so humasflow imports the library.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import datetime as dt
import gc
import platform
import shutil
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import sqlalchemy as sa

import humasflow
from humasflow.models import Event
from humasflow.storage import schema as t
from humasflow.storage.store import Store
from humasflow.testing import SteerableClock, staffed_office

STAFF, COORDINATOR = "rina", "budi"
MEDIA_URL = "https://cdn.example.ac.id/humas/dies-natalis-47.png"
TEXT = "Selamat Dies Natalis ke-47 FISIP Universitas Brawijaya! #FISIPUB #DiesNatalis"
NOTES = "Canva template 'dies-natalis', logo UB, palet biru; ukuran 1080x1350"
T_OLD = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.timezone.utc)
T_NEW = T_OLD + dt.timedelta(days=1)
NOW = T_NEW + dt.timedelta(minutes=1)
OVERDUE = 50  # cloned overdue items; with their template, overdue() finds 51
CHUNK = 20_000
QUERY_BUDGET_S = 4.0
EVENT_FIELDS = [f.name for f in attrs.fields(Event)]


# -- building a store of a given size ------------------------------------------------------


@attrs.frozen
class Template:
    item: dict[str, Any]
    events: tuple[Event, ...]


def _kind(item_id: int, size: int, overdue_ids: frozenset[int]) -> str:
    if item_id in overdue_ids:
        return "overdue"
    return {0: "concept", 5: "approve"}.get(item_id % 10, "closed")


def _overdue_ids(size: int) -> frozenset[int]:
    first, span = 5, size - 5
    return frozenset(first + (i * span) // OVERDUE for i in range(OVERDUE))


def _make_templates(path: Path, folder: Path) -> dict[str, Template]:
    """Make the four template items through the API; return their stored rows."""
    clock = SteerableClock(T_OLD)
    store = Store(path)
    office = humasflow.Office(store, clock=clock, environ={})
    office.establish(effective=T_OLD - dt.timedelta(days=30), by="Dekan")
    staffed_office(office)
    office.add_channel("outbox", "outbox", settings={"path": str(folder / "outbox"),
                                                   "media_urls": "pass"},
                       by="admin")
    ids = {"overdue": office.new_item("Dies Natalis (lama)", by=STAFF).id}
    clock.set(T_NEW)
    ids["concept"] = office.new_item("Dies Natalis", by=STAFF).id
    ids["approve"] = office.new_item("Dies Natalis", by=STAFF).id
    office.complete(ids["approve"], by=STAFF, text=TEXT)
    office.complete(ids["approve"], by=STAFF, notes=NOTES)
    office.complete(ids["approve"], by=STAFF, media=[MEDIA_URL])
    ids["closed"] = office.new_item("Dies Natalis", by=STAFF).id
    office.cancel(ids["closed"], by=COORDINATOR, reason="jadwal acara diundur")
    templates = {}
    with store.engine.connect() as conn:
        for kind, item_id in ids.items():
            item = dict(conn.execute(sa.select(t.items).where(t.items.c.id == item_id))
                        .mappings().one())
            rows = conn.execute(sa.select(t.events)
                                .where(t.events.c.stream == f"item:{item_id}")
                                .order_by(t.events.c.seq)).mappings().all()
            events = tuple(Event(**{k: r[k] for k in EVENT_FIELDS}) for r in rows)
            templates[kind] = Template(item=item, events=events)
    store.close()
    assert list(ids.values()) == [1, 2, 3, 4], ids
    return templates


def _clones(templates: dict[str, Template], size: int, overdue_ids: frozenset[int],
            ) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Yield (item rows, event rows) in chunks for ids 5..size."""
    items: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for item_id in range(5, size + 1):
        template = templates[_kind(item_id, size, overdue_ids)]
        stream, prev = f"item:{item_id}", ""
        for event in template.events:
            sealed = attrs.evolve(event, stream=stream, prev_hash=prev).sealed()
            prev = sealed.hash
            events.append(attrs.asdict(sealed, recurse=False))
        items.append({**template.item, "id": item_id, "head_hash": prev,
                      "key": str(uuid.UUID(int=item_id, version=4))})
        if len(items) >= CHUNK:
            yield items, events
            items, events = [], []
    if items:
        yield items, events


def build(path: Path, size: int, folder: Path) -> dict[str, Any]:
    """Create a store of ``size`` items at ``path``; return facts about the load."""
    start = time.perf_counter()
    templates = _make_templates(path, folder)
    overdue_ids = _overdue_ids(size)
    loader = sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)

    @sa.event.listens_for(loader, "connect")
    def _tune(dbapi_conn: Any, record: Any) -> None:
        # Loading only: no fsync, a big page cache, a rollback journal instead of a WAL
        # the size of the database. The timed part reopens the file with the defaults.
        dbapi_conn.execute("PRAGMA journal_mode=DELETE")
        dbapi_conn.execute("PRAGMA synchronous=OFF")
        dbapi_conn.execute("PRAGMA cache_size=-524288")

    n_items = n_events = 0
    with loader.begin() as conn:
        for items, events in _clones(templates, size, overdue_ids):
            conn.execute(t.items.insert(), items)
            conn.execute(t.events.insert(), events)
            n_items += len(items)
            n_events += len(events)
    with loader.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    loader.dispose()
    return {"seconds": time.perf_counter() - start, "clones": n_items,
            "events": n_events, "bytes": path.stat().st_size}


# -- timing ------------------------------------------------------------------------------


def _walk_targets(size: int, count: int) -> list[int]:
    """``count`` open concept items spread evenly over the id range."""
    overdue_ids = _overdue_ids(size)
    concept = [i for i in range(10, size + 1, 10) if _kind(i, size, overdue_ids) == "concept"]
    if len(concept) < count:
        raise SystemExit(f"size {size} has only {len(concept)} open concept items; "
                         f"use fewer --walks or --rounds, or a bigger size")
    if count == 1:
        return concept[:1]
    return [concept[(k * (len(concept) - 1)) // (count - 1)] for k in range(count)]


def _plan(path: Path, statement: str, params: Any) -> str:
    with sqlite3.connect(path) as raw:
        rows = raw.execute(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
    return "; ".join(r[-1] for r in rows)


def _captured(office: humasflow.Office, call: Callable[[], Any]) -> tuple[str, Any]:
    """The last SELECT on items that ``call`` sent to SQLite, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def listener(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
                 executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM items" in statement:
            seen.append((statement, params))

    sa.event.listen(office._store.engine, "before_cursor_execute", listener)
    try:
        call()
    finally:
        sa.event.remove(office._store.engine, "before_cursor_execute", listener)
    return seen[-1]


QUERIES = ("items(state='approve', limit=50)", "overdue()", "items(assignee='rina', limit=50)")


def _steps(office: humasflow.Office) -> list[Callable[[int], Any]]:
    return [
        lambda i: office.complete(i, by=STAFF, text=TEXT),
        lambda i: office.complete(i, by=STAFF, notes=NOTES),
        lambda i: office.complete(i, by=STAFF, media=[MEDIA_URL]),
        lambda i: office.approve(i, by=COORDINATOR, answer="Disetujui (email)"),
    ]


def _queries(office: humasflow.Office) -> dict[str, Callable[[], Any]]:
    return {
        QUERIES[0]: lambda: office.items(state="approve", limit=50),
        QUERIES[1]: lambda: office.overdue(),
        QUERIES[2]: lambda: office.items(assignee=STAFF, limit=50),
    }


def measure(paths: dict[int, Path], targets: dict[int, list[int]],
            repeats: int) -> dict[int, dict[str, Any]]:
    """Time walks and queries on every store, interleaved call by call across the sizes.

    Each store is opened with its defaults (WAL, ``synchronous=FULL``). Interleaving
    spreads the noise of a shared machine over all sizes alike.
    """
    offices = {size: humasflow.Office(Store(path), clock=SteerableClock(NOW),
                                      environ={}) for size, path in paths.items()}
    sizes = list(paths)
    result: dict[int, dict[str, Any]] = {size: {"transitions": []} for size in sizes}
    try:
        steps = {size: _steps(office) for size, office in offices.items()}
        queries = {size: _queries(office) for size, office in offices.items()}
        for size in sizes:  # warm-up: statement compile, connections, caches
            for step in steps[size]:
                step(targets[size][0])
            for name, call in queries[size].items():
                rows = call()
                statement, params = _captured(offices[size], call)
                result[size][name] = {"times": [], "rows": len(rows),
                                      "plan": _plan(paths[size], statement, params)}
        gc.collect()
        walks = len(targets[sizes[0]]) - 1
        for k in range(walks):
            for size in sizes if k % 2 == 0 else sizes[::-1]:
                item_id = targets[size][k + 1]
                for step in steps[size]:
                    t0 = time.perf_counter()
                    step(item_id)
                    result[size]["transitions"].append(time.perf_counter() - t0)
        spent = dict.fromkeys(sizes, 0.0)
        for k in range(repeats):
            for size in sizes if k % 2 == 0 else sizes[::-1]:
                if k >= 3 and spent[size] > QUERY_BUDGET_S:
                    continue  # enough samples of a slow query
                for name, call in queries[size].items():
                    t0 = time.perf_counter()
                    call()
                    elapsed = time.perf_counter() - t0
                    result[size][name]["times"].append(elapsed)
                    spent[size] += elapsed
    finally:
        for office in offices.values():
            office.close()
    return result


def evict(path: Path) -> bool:
    """Ask the kernel to drop the store's pages from the page cache (its file and WAL);
    ``False`` where the platform has no ``posix_fadvise``."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if name.exists():
            fd = os.open(name, os.O_RDONLY)
            try:
                os.fsync(fd)  # only clean pages can be dropped
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    return True


def measure_cold(paths: dict[int, Path], targets: dict[int, list[int]]) -> dict[int, Any]:
    """Time each item's walk right after the store's file left the page cache: the first
    actions of a store opened after a long idle, when its B-tree pages come from disk.

    For each walk: the store is opened, a first read made (the schema check), its pages
    dropped from the cache (every other walk: kept, the control, so that what a newly
    opened store costs anyway is not counted as the cache's), then the four transitions
    timed. Sizes are interleaved. Returns ``{size: {"cold": [...], "kept": [...]}}``.
    """
    sizes = list(paths)
    result: dict[int, Any] = {size: {"cold": [], "kept": []} for size in sizes}
    for k in range(len(targets[sizes[0]])):
        for size in sizes if k % 2 == 0 else sizes[::-1]:
            office = humasflow.Office(Store(paths[size]), clock=SteerableClock(NOW),
                                      environ={})
            try:
                office.item(targets[size][k])
                kind = "kept" if k % 2 else "cold"
                if kind == "cold" and not evict(paths[size]):
                    return {}
                steps = _steps(office)
                t0 = time.perf_counter()
                for step in steps:
                    step(targets[size][k])
                result[size][kind].append((time.perf_counter() - t0) / len(steps))
            finally:
                office.close()
    return result


def verify(path: Path) -> str:
    """Check the cloned records' hash chains through the API.

    The clones are written straight into the tables, not by the office, so no event
    explains their rows (``verify`` reports each one, by design); only the chains of
    their events are checked here.
    """
    office = humasflow.Office(Store(path), clock=SteerableClock(NOW), environ={})
    try:
        report = office.verify()
    finally:
        office.close()
    chains = [f for f in report.findings if not f.table]
    state = "chains intact" if not chains else f"{len(chains)} chain findings, e.g. " \
        f"{chains[0]}"
    return f"{report.events:,} events in {report.streams:,} streams, {state}"


# -- reporting ---------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,100000,1000000",
                        help="comma-separated item counts (default 1000,100000,1000000)")
    parser.add_argument("--walks", type=int, default=75,
                        help="items walked per size, 4 transitions each (default 75)")
    parser.add_argument("--repeats", type=int, default=15,
                        help="timings of each query per size (default 15; fewer for a query "
                             f"that has taken more than {QUERY_BUDGET_S:.0f} s)")
    parser.add_argument("--cold", type=int, default=14,
                        help="walks of a newly opened store, half of them right after its "
                             "pages left the page cache (default 14; 0 for none)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the databases (their folder is printed)")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to create the databases (default: the temp folder)")
    args = parser.parse_args(argv)
    sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    if sizes[0] < 100:
        parser.error("sizes must be at least 100")
    chosen = {size: _walk_targets(size, args.walks + 1 + args.cold) for size in sizes}
    targets = {size: ids[:args.walks + 1] for size, ids in chosen.items()}
    cold_targets = {size: ids[args.walks + 1:] for size, ids in chosen.items()}

    base = Path(tempfile.mkdtemp(prefix="humasflow-scaling-", dir=args.dir))
    print(f"humasflow scaling - {dt.date.today().isoformat()} - Python "
          f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"SQLAlchemy {sa.__version__}")
    print(f"databases in {base}; {args.walks} walks x 4 transitions per size, interleaved "
          f"across sizes; {_load()}")
    started = time.perf_counter()
    paths: dict[int, Path] = {}
    try:
        for size in sizes:
            folder = base / str(size)
            folder.mkdir()
            paths[size] = folder / "humasflow.db"
            load = build(paths[size], size, folder)
            print(f"  built {size:>9,} items in {load['seconds']:6.1f} s "
                  f"({load['events']:,} cloned events, {load['bytes'] / 2**20:,.0f} MiB)",
                  flush=True)
        t0 = time.perf_counter()
        results = measure(paths, targets, args.repeats)
        print(f"  measured in {time.perf_counter() - t0:.1f} s", flush=True)
        cold = measure_cold(paths, cold_targets) if args.cold else {}
        audit = verify(paths[sizes[0]])
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    def median(size: int, key: str) -> float:
        value = results[size][key]
        return statistics.median(value if key == "transitions" else value["times"])

    small = sizes[0]
    print()
    header = (f"{'stored items':>12} | {'transition p50 ms':>17} {'p95 ms':>7} {'ratio':>6} | "
              f"{'items(approve,50) ms':>20} {'ratio':>6} | {'overdue() ms':>12} "
              f"{'rows':>4} {'ratio':>6} | {'items(assignee,50) ms':>21} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for size in sizes:
        pooled = sorted(results[size]["transitions"])
        tr, lst, ovd, mine = (median(size, k) for k in ("transitions", *QUERIES))
        print(f"{size:>12,} | {_ms(tr):>17} {_ms(pooled[int(len(pooled) * 0.95)]):>7} "
              f"{tr / median(small, 'transitions'):6.2f} | {_ms(lst):>20} "
              f"{lst / median(small, QUERIES[0]):6.2f} | {_ms(ovd):>12} "
              f"{results[size][QUERIES[1]]['rows']:>4} {ovd / median(small, QUERIES[1]):6.2f} | "
              f"{_ms(mine):>21} {mine / median(small, QUERIES[2]):6.2f}")
    print()
    print(f"{len(results[small]['transitions'])} transitions per size; timings of each query "
          "per size: " + ", ".join(f"{s:,}: {len(results[s][QUERIES[1]]['times'])}"
                                   for s in sizes))
    print("ms = median; ratio = median at this size / median at the smallest size (1.0 = flat)")
    print("SQLite query plans (EXPLAIN QUERY PLAN of the statement each call sent):")
    for name in QUERIES:
        for plan in sorted({results[s][name]["plan"] for s in sizes}):
            print(f"  {name}: {plan}")
    if cold:
        print()
        print("cold cache: walks right after the store's pages were dropped from the page "
              "cache (posix_fadvise DONTNEED), against walks on a store opened the same way "
              "with its pages kept")
        print(f"{'stored items':>12} | {'cold p50 ms':>11} {'max ms':>7} {'ratio':>6} | "
              f"{'kept p50 ms':>11} | {'cold ÷ kept':>11}")
        small_cold = statistics.median(cold[small]["cold"])
        for size in sizes:
            p50 = statistics.median(cold[size]["cold"])
            kept = statistics.median(cold[size]["kept"])
            print(f"{size:>12,} | {_ms(p50):>11} {_ms(max(cold[size]['cold'])):>7} "
                  f"{p50 / small_cold:6.2f} | {_ms(kept):>11} | {p50 / kept:11.2f}")
        print(f"{len(cold[small]['cold'])} cold and {len(cold[small]['kept'])} kept walks "
              "of 4 transitions per size (ms per transition); ratio = cold median at this "
              "size / at the smallest size")
    elif args.cold:
        print("\ncold cache: not measured (this platform has no posix_fadvise)")
    print(f"audit check of the {small:,}-item store (cloned records included): {audit}")
    print(f"total run time {time.perf_counter() - started:.0f} s; {_load()}")
    if args.keep:
        print(f"kept: {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
