"""Fan-out: posting one item to three channels costs about one platform call, not three.

Run by hand::

    .venv/bin/python bench/fanout.py                       # 3 channels x 200 ms, 5 runs
    .venv/bin/python bench/fanout.py --latency 0.5 --runs 9
    .venv/bin/python bench/fanout.py --store postgresql://postgres@127.0.0.1/test

What is measured, in one process, on a SQLite file in a temporary folder (or the store
given): ``Office.post`` of an item that is at the posting step, to channels whose
publisher sleeps a fixed time per post (a stand-in for a platform's latency; no network).
Each run posts a fresh item; the wall time covers everything ``post`` does: the checks,
validation, one claim and one result per channel (each its own commit), the events, and
closing the item.

fan-out
    ``Office.post`` as shipped: the channels are posted concurrently.
one at a time
    The same, through ``Office.dispatcher(max_threads=1)``: the measured baseline of
    posting channel after channel.
no latency
    Fan-out with publishers that return at once: humasflow's own cost of a post.

Reported: the median wall time of each, and the ratios ``wall / slowest channel`` (1.0 =
as fast as the slowest platform allows; the target is close to 1) and ``wall / sum of
latencies`` (1.0 = no better than one after the other). Fan-out adds humasflow's own
work (checks, and the commits of the claims before and the results after the calls) to
the slowest channel: a fixed cost, so ``wall / slowest`` nears 1 as latency grows. The
``cpu ms`` column is the process's CPU time during the post (every thread's), the median
of the runs: humasflow's own work without the waits, less noisy than the wall time. Runs
are interleaved so that a noisy neighbour hurts every variant alike.
"""

from __future__ import annotations

# ruff: noqa: E402 - the imports below come after the import path fix
import os
import sys

# bench/transitions.py would shadow the ``transitions`` library humasflow is built on;
# drop this folder from the import path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import collections
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event as sa_event

from humasflow import Office
from humasflow.hookspecs import hookimpl
from humasflow.publishing.contract import Receipt
from humasflow.storage.store import Store
from humasflow.testing import SteerableClock, plugin_registered, sample_image, staffed_office


class _Sleepy:
    """A publisher whose every post takes ``latency`` seconds."""

    def __init__(self, channel: Any, context: Any) -> None:
        self.channel = channel.name
        self.latency = float(channel.settings["latency"])

    def validate(self, post: Any) -> list[Any]:
        return []

    def publish(self, post: Any, progress: Any = None) -> Receipt:
        time.sleep(self.latency)
        return Receipt(platform_id=f"{post.item_id}-{self.channel}")

    def check(self) -> None:
        pass


class _Plugin:
    @hookimpl
    def register_publishers(self, register: Any) -> None:
        register("sleepy", _Sleepy)


def _ready(office: Office, channels: list[str], poster: str) -> int:
    item = office.new_item("Fan-out", by="rina", channels=channels)
    office.complete(item.id, by="rina", text="Selamat Dies Natalis FISIP UB")
    office.complete(item.id, by="rina", notes="Canva")
    office.complete(item.id, by="rina", media=[poster])
    office.approve(item.id, by="budi")
    office.complete(item.id, by="rina", media=[poster])
    office.pass_recheck(item.id, by="sari")
    return item.id


def _counted(store: Store, post: Any) -> collections.Counter[str]:
    """Run ``post()`` once and count what it sends to the database: statements, and
    transactions split into writes (``BEGIN IMMEDIATE`` on SQLite) and reads."""
    counts: collections.Counter[str] = collections.Counter()

    def on_statement(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counts["statements"] += 1

    def on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get("humasflow_write", False)
        counts["write transactions" if write else "read transactions"] += 1

    sa_event.listen(store.engine, "before_cursor_execute", on_statement)
    sa_event.listen(store.engine, "begin", on_begin)
    try:
        post()
    finally:
        sa_event.remove(store.engine, "before_cursor_execute", on_statement)
        sa_event.remove(store.engine, "begin", on_begin)
    counts["transactions"] = counts["write transactions"] + counts["read transactions"]
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per post")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--store", help="a database URL (default: a temporary SQLite file)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="humasflow-bench-") as folder, \
            plugin_registered(_Plugin()):
        store = Store(args.store or Path(folder, "bench.db"))
        office = Office(store, f"bench-{time.time_ns()}", clock=SteerableClock(), environ={},
                        media_store=Path(folder, "media"), media_roots=[folder])
        poster = sample_image(Path(folder, "poster.png"), size=(1080, 1080))
        office.establish(by="Dekan")
        staffed_office(office)
        slow = [f"slow{n}" for n in range(args.channels)]
        fast = [f"fast{n}" for n in range(args.channels)]
        for name in slow:
            office.add_channel(name, "sleepy", settings={"latency": args.latency}, by="admin")
        for name in fast:
            office.add_channel(name, "sleepy", settings={"latency": 0}, by="admin")
        rina = office.actor("rina")

        variants = {
            "fan-out": lambda item: office.post(item, by=rina),
            "one at a time (max_threads=1)":
                lambda item: office.dispatcher(max_threads=1).post(item, rina),
            "no latency (fan-out)": lambda item: office.post(item, by=rina),
        }
        targets = {"fan-out": slow, "one at a time (max_threads=1)": slow,
                   "no latency (fan-out)": fast}
        walls: dict[str, list[float]] = {name: [] for name in variants}
        cpus: dict[str, list[float]] = {name: [] for name in variants}
        order = list(variants)
        for run in range(args.runs + 1):  # the first run warms up and is not counted
            for name in order:
                item = _ready(office, targets[name], poster)
                cpu = time.process_time()
                start = time.perf_counter()
                report = variants[name](item)
                wall = time.perf_counter() - start
                cpu = time.process_time() - cpu
                assert report.done, report
                if run:
                    walls[name].append(wall)
                    cpus[name].append(cpu)
            order.reverse()
        # Counted on one more post, outside the timed runs (the listeners cost time).
        item = _ready(office, fast, poster)
        counts = _counted(store, lambda: office.post(item, by=rina))
        store.close()

    slowest, total = args.latency, args.latency * args.channels
    print(f"humasflow fan-out - {dt.date.today().isoformat()} - {args.channels} channels x "
          f"{args.latency * 1000:.0f} ms - {store.engine.dialect.name} - "
          f"median of {args.runs} runs")
    print()
    header = (f"{'variant':<32} {'median wall':>12} {'slowest':>9} {'sum':>9} "
              f"{'wall/slowest':>13} {'wall/sum':>9} {'cpu ms':>7}")
    print(header)
    print("-" * len(header))
    for name in variants:
        wall = statistics.median(walls[name])
        cpu_ms = statistics.median(cpus[name]) * 1000
        if name.startswith("no latency"):
            print(f"{name:<32} {wall * 1000:>9.1f} ms {'-':>9} {'-':>9} {'-':>13} {'-':>9} "
                  f"{cpu_ms:>7.1f}")
            continue
        print(f"{name:<32} {wall * 1000:>9.1f} ms {slowest * 1000:>6.0f} ms "
              f"{total * 1000:>6.0f} ms {wall / slowest:>13.2f} {wall / total:>9.2f} "
              f"{cpu_ms:>7.1f}")
    print()
    print(f"one post to {args.channels} channels: {counts['transactions']} transactions "
          f"({counts['write transactions']} writes, {counts['read transactions']} reads), "
          f"{counts['statements']} statements")
    own = statistics.median(walls["no latency (fan-out)"])
    added = statistics.median(walls["fan-out"]) - slowest
    print(f"humasflow's own cost of a post (no latency): {own * 1000:.0f} ms. Fan-out took the "
          f"slowest channel + {added * 1000:.0f} ms (checks and commits before and after the "
          "calls), a fixed cost: wall/slowest comes closer to 1 as platforms get slower.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
