"""The code before issue 6 against the code here: transitions, posting and import, side by side.

Run by hand::

    .venv/bin/python bench/versus.py                      # SQLite, 5 interleaved rounds
    .venv/bin/python bench/versus.py --rounds 7 --transitions 1000 --posts 60
    .venv/bin/python bench/versus.py --store postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/versus.py --old 2829f91 --new HEAD~3   # two other commits

"Old" is the ``src`` folder of commit ``--old`` (default 2829f91, the last commit before
the media store, the posting claims that check the item and the administrators),
extracted with ``git archive`` into a temporary folder. "New" is this checkout's ``src``
(or ``--new REV``, extracted the same way). Each workload of each version runs in a
process of its own, with ``PYTHONPATH`` pointing at that version's ``src`` (each process
checks that it imported humasflow from there), no entry-point plugins
(``HUMASFLOW_LOAD_PLUGINS=""``) and a fresh store: a SQLite file in a temporary folder,
or a PostgreSQL schema made for that process and dropped after it. The rounds are
interleaved and the order of the two versions flips every round, because the machine is
shared and noisy. Workloads, each written against each version's API where it differs
(``by=`` for set-up calls, ``media_urls = "pass"``, the media store):

walk
    As ``bench/transitions.py``'s humasflow walk: bundled SOP, staff and coordinator, an
    outbox channel (never posted to); items made before the clock starts, five warm-up
    items; each item concept -> prepare -> design -> approve (three ``complete`` calls,
    the design an https URL, and ``approve``): four transitions, each one commit.
post, URL media
    ``Office.post`` of an item at the posting step to ``--channels`` channels whose
    publisher returns at once (no latency: humasflow's own work of a post), the media an
    https URL (the new code is told to pass it through, as the old one did). Items are
    readied before each timed post, outside the clock; two warm-up posts.
post, stored image
    The same with a 1080x1080 PNG file: the old code posts the file by its path; the new
    one attaches it into the media store (at design and production, outside the clock)
    and checks the stored bytes' hash at posting.
import
    ``import humasflow``, and then ``Office`` and ``Store`` (what a program needs to
    open an office), in a fresh interpreter, timed inside it (start-up not included),
    median of ``--imports`` processes per version and round after an untimed one.

Reported per workload and round: ops/s (transitions or posts per wall second), the
process's CPU time per op in µs (every thread's, so a post's channel threads count), and
the ratios new / old of both; then the medians. ops/s ratio < 1 or CPU ratio > 1 means
the new code is slower. Nothing here touches the network (a PostgreSQL server given
with ``--store`` is contacted).
"""

from __future__ import annotations

# ruff: noqa: E402, S603, S607 - imports follow the import path fix; git and this
# interpreter are run on purpose
import os
import sys

# bench/transitions.py would shadow the ``transitions`` library humasflow is built on;
# drop this folder from the import path (the workers run this file too).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import contextlib
import datetime as dt
import gc
import json
import platform
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(_HERE).parent
#: The last commit before issue 6's work (its branches all start here).
OLD_COMMIT = "2829f91"
STAFF, COORDINATOR = "rina", "budi"
MEDIA_URL = "https://cdn.example.ac.id/humas/dies-natalis-47.png"
TEXT = "Selamat Dies Natalis ke-47 FISIP Universitas Brawijaya! #FISIPUB #DiesNatalis"
NOTES = "Canva template 'dies-natalis', logo UB, palet biru; ukuran 1080x1350"
WARMUP_ITEMS = 5
WARMUP_POSTS = 2
WORKLOADS = {"walk": "walk (complete x3, approve)", "post-url": "post, URL media",
             "post-file": "post, stored image"}
IMPORT_SNIPPET = """\
import json, sys, time
t0 = time.perf_counter()
import humasflow
t1 = time.perf_counter()
from humasflow import Office
from humasflow.storage.store import Store
t2 = time.perf_counter()
print(json.dumps({"file": humasflow.__file__, "import": t1 - t0, "ready": t2 - t0}))
"""


# -- the workers: run in a process of their own, on one version's src ---------------------


def _new_api() -> bool:
    """Whether the imported humasflow is the code with administrators (``by=`` required
    on the set-up calls, the media store), not the code before."""
    from humasflow import Office

    return hasattr(Office, "bootstrap_admin")


def _office(target: str, folder: Path, *, media_store: bool = False) -> Any:
    from humasflow import Office
    from humasflow.storage.store import Store
    from humasflow.testing import SteerableClock, staffed_office

    options: dict[str, Any] = {}
    if media_store:
        options = {"media_store": folder / "media", "media_roots": [folder]}
    office = Office(Store(target), f"bench-{uuid.uuid4().hex[:8]}", clock=SteerableClock(),
                    environ={}, **options)
    if _new_api():
        office.establish(by="Dekan")
    else:
        office.establish()  # type: ignore[call-arg]  # the old code's API: by= optional
    staffed_office(office)
    return office


def _add_channel(office: Any, name: str, kind: str, settings: dict[str, Any], *,
                 pass_urls: bool) -> None:
    if _new_api():
        if pass_urls:
            settings = {**settings, "media_urls": "pass"}
        office.add_channel(name, kind, settings=settings, by="admin")
    else:
        office.add_channel(name, kind, settings=settings)


def _close(office: Any) -> None:
    close = getattr(office, "close", None)
    if close is not None:
        close()
    else:
        office.store.close()


def _timed(n: int, step: Callable[[int], Any],
           ready: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """Run ``step(0..n-1)`` (each after an untimed ``ready(i)``, whose result it gets);
    the wall and CPU seconds of the steps, and each step's wall seconds."""
    each: list[float] = []
    cpu_total = 0.0
    clock, cpu = time.perf_counter, time.process_time
    gc.collect()
    for i in range(n):
        arg = ready(i) if ready is not None else i
        c0, t0 = cpu(), clock()
        step(arg)
        each.append(clock() - t0)
        cpu_total += cpu() - c0
    return {"wall": sum(each), "cpu": cpu_total, "each": each}


def work_walk(target: str, folder: Path, n: int) -> dict[str, Any]:
    office = _office(target, folder)
    _add_channel(office, "outbox", "outbox", {"path": str(folder / "outbox")}, pass_urls=True)
    items = n // 4
    ids = [office.new_item(f"Dies Natalis {i}", by=STAFF).id
           for i in range(items + WARMUP_ITEMS)]
    calls: list[Callable[[int], Any]] = [
        lambda i: office.complete(i, by=STAFF, text=TEXT),
        lambda i: office.complete(i, by=STAFF, notes=NOTES),
        lambda i: office.complete(i, by=STAFF, media=[MEDIA_URL]),
        lambda i: office.approve(i, by=COORDINATOR, answer="Disetujui (email)"),
    ]
    for item_id in ids[:WARMUP_ITEMS]:
        for call in calls:
            call(item_id)
    work = ids[WARMUP_ITEMS:]
    try:
        return _timed(items * 4, lambda k: calls[k % 4](work[k // 4]))
    finally:
        _close(office)


def work_post(target: str, folder: Path, n: int, channels: int, *,
              stored: bool) -> dict[str, Any]:
    new = _new_api()
    office = _office(target, folder, media_store=new and stored)
    if stored:
        from PIL import Image

        media = str(folder / "poster.png")
        Image.new("RGB", (1080, 1080), (0, 51, 102)).save(media)
    else:
        media = MEDIA_URL
    names = [f"fast{c}" for c in range(channels)]
    for name in names:
        _add_channel(office, name, "instant", {"latency": 0}, pass_urls=not stored)
    rina = office.actor(STAFF)

    def ready(_: int) -> int:
        item = office.new_item("Fan-out", by=STAFF, channels=names)
        office.complete(item.id, by=STAFF, text="Selamat Dies Natalis FISIP UB")
        office.complete(item.id, by=STAFF, notes="Canva")
        office.complete(item.id, by=STAFF, media=[media])
        office.approve(item.id, by=COORDINATOR)
        office.complete(item.id, by=STAFF, media=[media])
        office.pass_recheck(item.id, by="sari")
        return int(item.id)

    def post(item_id: int) -> None:
        report = office.post(item_id, by=rina)
        if not report.done:
            raise RuntimeError(f"post of item {item_id} not done: {report}")

    try:
        for i in range(WARMUP_POSTS):
            post(ready(i))
        return _timed(n, post, ready)
    finally:
        _close(office)


class _Instant:
    """A publisher that returns at once: a post's cost is humasflow's own."""

    def __init__(self, channel: Any, context: Any) -> None:
        self.channel = channel.name

    def validate(self, post: Any) -> list[Any]:
        return []

    def publish(self, post: Any, progress: Any = None) -> Any:
        from humasflow.publishing.contract import Receipt

        return Receipt(platform_id=f"{post.item_id}-{self.channel}")

    def check(self) -> None:
        pass


def _worker(args: argparse.Namespace) -> int:
    import humasflow
    from humasflow.hookspecs import hookimpl
    from humasflow.testing import plugin_registered

    class Plugin:
        @hookimpl
        def register_publishers(self, register: Any) -> None:
            register("instant", _Instant)

    folder = Path(args.folder)
    with plugin_registered(Plugin()):
        if args.worker == "walk":
            result = work_walk(args.target, folder, args.transitions)
        else:
            result = work_post(args.target, folder, args.posts, args.channels,
                               stored=args.worker == "post-file")
    result["file"] = humasflow.__file__
    result["new_api"] = _new_api()
    print(json.dumps(result))
    return 0


# -- the parent: the versions, the stores, the rounds --------------------------------------


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def _extract(rev: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"],
                             capture_output=True, check=True).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


class Stores:
    """A fresh store per worker: a SQLite file in a temporary folder, or a PostgreSQL
    schema of its own, dropped afterwards."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self.postgres = bool(url and url.startswith("postgresql"))
        if url and not self.postgres:
            raise SystemExit("--store takes a PostgreSQL URL; SQLite runs use temp files")
        self._admin: Any = None
        if url and self.postgres:
            import sqlalchemy

            self._admin = sqlalchemy.create_engine(url)

    @contextlib.contextmanager
    def fresh(self) -> Iterator[tuple[str, Path]]:
        with tempfile.TemporaryDirectory(prefix="humasflow-versus-") as tmp:
            folder = Path(tmp)
            if self._admin is None:
                yield str(folder / "humasflow.db"), folder
                return
            import sqlalchemy

            schema = f"versus_{uuid.uuid4().hex[:10]}"
            with self._admin.begin() as conn:
                conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
            try:
                yield f"{self.url}?options=-csearch_path%3D{schema}", folder
            finally:
                with self._admin.begin() as conn:
                    conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))

    def describe(self) -> str:
        if self._admin is None:
            import sqlite3

            return (f"SQLite {sqlite3.sqlite_version} file in a temp folder (the store's "
                    "defaults: WAL, synchronous=FULL)")
        with self._admin.connect() as conn:
            import sqlalchemy

            version = conn.execute(sqlalchemy.text("SHOW server_version")).scalar()
        return f"PostgreSQL {version} on {self._admin.url.host}, one schema per process"

    def close(self) -> None:
        if self._admin is not None:
            self._admin.dispose()


def _env(src: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(src), "HUMASFLOW_LOAD_PLUGINS": ""}


def _check_origin(found: str, src: Path) -> None:
    if not Path(found).resolve().is_relative_to(src.resolve()):
        raise SystemExit(f"a worker imported humasflow from {found}, not from {src}")


def _run_worker(src: Path, workload: str, stores: Stores, args: argparse.Namespace,
                ) -> dict[str, Any]:
    with stores.fresh() as (target, folder):
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--worker", workload,
             "--target", target, "--folder", str(folder),
             "--transitions", str(args.transitions), "--posts", str(args.posts),
             "--channels", str(args.channels)],
            env=_env(src), cwd=folder, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"the {workload} worker on {src} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    _check_origin(result["file"], src)
    return result


def _run_import(src: Path, runs: int) -> dict[str, float]:
    got = []
    with tempfile.TemporaryDirectory(prefix="humasflow-versus-") as tmp:
        for _ in range(runs):
            done = subprocess.run([sys.executable, "-c", IMPORT_SNIPPET], env=_env(src),
                                  cwd=tmp, capture_output=True, text=True, check=True)
            got.append(json.loads(done.stdout))
    _check_origin(got[0]["file"], src)
    return {key: statistics.median(g[key] for g in got) for key in ("import", "ready")}


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", default=OLD_COMMIT,
                        help=f"the old commit (default {OLD_COMMIT})")
    parser.add_argument("--new", help="the new commit (default: this checkout's src)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--transitions", type=int, default=800,
                        help="transitions per walk (a multiple of 4; default 800)")
    parser.add_argument("--posts", type=int, default=40, help="timed posts per run (default 40)")
    parser.add_argument("--channels", type=int, default=3, help="channels per post (default 3)")
    parser.add_argument("--imports", type=int, default=3,
                        help="import processes per version and round (0: none; default 3)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated, of {', '.join(WORKLOADS)} (default: all)")
    parser.add_argument("--store", help="a PostgreSQL URL (default: SQLite files); each "
                        "process gets a schema of its own, dropped afterwards")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.transitions = max(4, args.transitions - args.transitions % 4)
    if args.worker:
        return _worker(args)
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")

    stores = Stores(args.store)
    try:
        with tempfile.TemporaryDirectory(prefix="humasflow-versus-src-") as tmp:
            versions = {"old": _extract(args.old, Path(tmp, "old"))}
            if args.new:
                versions["new"] = _extract(args.new, Path(tmp, "new"))
                new_name = _git("rev-parse", "--short", args.new)
            else:
                versions["new"] = ROOT / "src"
                dirty = _git("status", "--porcelain", "--", "src")
                new_name = _git("rev-parse", "--short", "HEAD") + (
                    " + uncommitted changes in src" if dirty else "")
            names = {"old": _git("rev-parse", "--short", args.old), "new": new_name}
            _rounds(versions, names, workloads, stores, args)
    finally:
        stores.close()
    return 0


def _rounds(versions: dict[str, Path], names: dict[str, str], workloads: list[str],
            stores: Stores, args: argparse.Namespace) -> None:
    load_before = _load()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        w: {"old": [], "new": []} for w in [*workloads, "import"]}
    if args.imports:
        for src in versions.values():
            _run_import(src, 1)  # byte-code caches of the extracted sources
    order = ["old", "new"]
    for r in range(args.rounds):
        for workload in workloads:
            for version in order:
                got = _run_worker(versions[version], workload, stores, args)
                results[workload][version].append(got)
                each = got["each"]
                print(f"  round {r + 1}: {WORKLOADS[workload]:<28} {version}: "
                      f"{len(each) / got['wall']:8.1f} ops/s, "
                      f"{got['cpu'] / len(each) * 1e6:7.0f} us CPU/op", flush=True)
        if args.imports:
            for version in order:
                got_import = _run_import(versions[version], args.imports)
                results["import"][version].append(got_import)
                print(f"  round {r + 1}: {'import':<28} {version}: "
                      f"{got_import['import'] * 1000:6.1f} ms, with Office and Store "
                      f"{got_import['ready'] * 1000:6.1f} ms", flush=True)
        order.reverse()
    load_after = _load()

    import sqlalchemy

    print()
    print(f"humasflow old against new - {dt.date.today().isoformat()} - old {names['old']}, "
          f"new {names['new']} - Python {platform.python_version()}, SQLAlchemy "
          f"{sqlalchemy.__version__}")
    print(f"{stores.describe()}; {args.rounds} interleaved rounds (order flipped each "
          f"round); walk {args.transitions} transitions, posts {args.posts} to "
          f"{args.channels} channels per run")
    print(f"load average (1, 5, 15 min): {load_before} before, {load_after} after")
    for workload in workloads:
        _table(WORKLOADS[workload], results[workload])
    if args.imports:
        _import_table(results["import"])
    print()
    print("ops/s: ops per wall second; cpu us: the process's CPU time per op (all threads); "
          "new/old ops/s < 1 or new/old cpu > 1: the new code is slower")


def _table(title: str, runs: dict[str, list[dict[str, Any]]]) -> None:
    def rate(got: dict[str, Any]) -> float:
        return len(got["each"]) / float(got["wall"])

    def cpu(got: dict[str, Any]) -> float:
        return float(got["cpu"]) / len(got["each"]) * 1e6

    def p50(got: dict[str, Any]) -> float:
        return float(statistics.median(got["each"])) * 1e6

    print()
    print(title)
    header = (f"{'round':<8} {'old ops/s':>10} {'new ops/s':>10} {'new/old':>8} "
              f"{'old cpu us':>11} {'new cpu us':>11} {'new/old':>8} "
              f"{'old p50 us':>11} {'new p50 us':>11}")
    print(header)
    print("-" * len(header))
    ratios, cpu_ratios = [], []
    for r, (old, new) in enumerate(zip(runs["old"], runs["new"], strict=True), start=1):
        ratios.append(rate(new) / rate(old))
        cpu_ratios.append(cpu(new) / cpu(old))
        print(f"{r:<8} {rate(old):10.1f} {rate(new):10.1f} {ratios[-1]:8.3f} "
              f"{cpu(old):11.0f} {cpu(new):11.0f} {cpu_ratios[-1]:8.3f} "
              f"{p50(old):11.0f} {p50(new):11.0f}")

    def med(f: Callable[[dict[str, Any]], float], side: str) -> float:
        return statistics.median(f(g) for g in runs[side])

    print(f"{'median':<8} {med(rate, 'old'):10.1f} {med(rate, 'new'):10.1f} "
          f"{statistics.median(ratios):8.3f} {med(cpu, 'old'):11.0f} "
          f"{med(cpu, 'new'):11.0f} {statistics.median(cpu_ratios):8.3f} "
          f"{med(p50, 'old'):11.0f} {med(p50, 'new'):11.0f}")


def _import_table(runs: dict[str, list[dict[str, float]]]) -> None:
    print()
    print("import (ms, in a fresh interpreter, start-up not included; median per round)")
    header = (f"{'round':<8} {'old import':>11} {'new import':>11} {'new/old':>8} "
              f"{'old +Office,Store':>18} {'new +Office,Store':>18} {'new/old':>8}")
    print(header)
    print("-" * len(header))
    rows = list(zip(runs["old"], runs["new"], strict=True))
    for r, (old, new) in enumerate(rows, start=1):
        print(f"{r:<8} {old['import'] * 1000:11.1f} {new['import'] * 1000:11.1f} "
              f"{new['import'] / old['import']:8.3f} {old['ready'] * 1000:18.1f} "
              f"{new['ready'] * 1000:18.1f} {new['ready'] / old['ready']:8.3f}")

    def med(key: str, side: str) -> float:
        return statistics.median(g[key] for g in runs[side]) * 1000

    print(f"{'median':<8} {med('import', 'old'):11.1f} {med('import', 'new'):11.1f} "
          f"{statistics.median(n['import'] / o['import'] for o, n in rows):8.3f} "
          f"{med('ready', 'old'):18.1f} {med('ready', 'new'):18.1f} "
          f"{statistics.median(n['ready'] / o['ready'] for o, n in rows):8.3f}")


if __name__ == "__main__":
    sys.exit(main())
