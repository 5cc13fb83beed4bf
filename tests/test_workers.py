"""Workers: passes over every organisation, a loop that stops cleanly, and several
worker processes on one store posting each channel exactly once.

The loop's tests steer the clock through the injected sleep; the process test runs real
interpreters on a SQLite file and on PostgreSQL.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import os
import runpy
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from humasflow import Office
from humasflow.clock import system_clock
from humasflow.publishing.dispatch import Dispatcher
from humasflow.publishing.worker import Worker, run_due
from humasflow.storage import Store
from humasflow.testing import (
    FakePublisher,
    SteerableClock,
    fake_publisher_plugin,
    plugin_registered,
    staffed_office,
)

S = dt.timedelta(seconds=1)


@pytest.fixture
def fake(office):
    plugin = fake_publisher_plugin()
    with plugin_registered(plugin):
        office.add_channel("x", "fake", settings={"media_urls": "pass"}, by="admin")
        office.add_channel("fb", "fake", settings={"media_urls": "pass"}, by="admin")
        yield plugin


def ready(office, channels=("x", "fb"), title="Dies Natalis") -> int:
    """An item at the posting step (design at a URL: no local file involved)."""
    item = office.new_item(title, by="rina", channels=list(channels))
    office.complete(item.id, by="rina", text=f"{title}: selamat!")
    office.complete(item.id, by="rina", notes="Canva")
    office.complete(item.id, by="rina", media=["https://cdn.example/poster.jpg"])
    office.approve(item.id, by="budi")
    office.complete(item.id, by="rina", media=["https://cdn.example/poster.jpg"])
    office.pass_recheck(item.id, by="sari")
    return item.id


def scheduled(office, at, **kwargs) -> int:
    item_id = ready(office, **kwargs)
    office.schedule(item_id, at, by="rina")
    return item_id


@pytest.fixture
def other(office, fake, clock):
    """A second organisation in the same store, with its own channel."""
    o = Office(office._store, "fkg", clock=clock, environ={})
    o.establish(by="Dekan")
    staffed_office(o)
    o.add_channel("x", "fake", settings={"media_urls": "pass"}, by="admin")
    return o


def count(plugin, name) -> int:
    return len(plugin.publishers.setdefault(name, FakePublisher(channel=name)).posted)


# -- one pass -----------------------------------------------------------------------------------


def test_a_pass_posts_what_is_due_in_every_organisation(office, other, fake, clock):
    mine = scheduled(office, clock())
    theirs = scheduled(other, clock(), channels=["x"])
    later = scheduled(office, clock() + dt.timedelta(hours=1))
    worker = Worker(office._store, clock=clock, worker_id="worker-1")

    reports = worker.run_once()

    assert sorted((r.item.org, r.item.id) for r in reports) == sorted(
        [("default", mine), ("fkg", theirs)])
    assert all(r.done for r in reports)
    assert office.item(later).state == "post"
    posted = [e for e in office.history(mine) if e.action == "channel_posted"]
    # The record names who had it posted, and the worker that did it.
    assert {(e.actor, e.data["worker"]) for e in posted} == {("rina", "worker-1")}
    assert worker.run_once() == []


def test_a_pass_can_be_limited_to_some_organisations(office, other, fake, clock, caplog):
    mine = scheduled(office, clock())
    theirs = scheduled(other, clock(), channels=["x"])
    worker = Worker(office._store, clock=clock, orgs=["fkg", "fib"])

    with caplog.at_level(logging.WARNING, logger="humasflow.worker"):
        reports = worker.run_once()

    assert [(r.item.org, r.item.id) for r in reports] == [("fkg", theirs)]
    assert office.item(mine).state == "post"
    assert "no organisation 'fib'" in caplog.text
    assert "fib" not in office._store.orgs()  # a worker creates no organisation


def test_a_pass_judges_what_is_due_at_the_time_it_is_given(office, fake, clock):
    item_id = scheduled(office, clock() + dt.timedelta(hours=1))
    worker = Worker(office._store, clock=clock)
    assert worker.run_once() == []
    (report,) = worker.run_once(clock() + dt.timedelta(hours=1))
    assert report.item.id == item_id
    assert report.done


def test_one_organisation_failing_does_not_stop_the_others(
        office, other, fake, clock, caplog, monkeypatch):
    scheduled(office, clock())
    theirs = scheduled(other, clock(), channels=["x"])
    original = Dispatcher.run_due

    def run_due(self, now=None, *, limit=100):
        if self.office.org == "default":
            raise RuntimeError("the default organisation's plugin is broken")
        return original(self, now, limit=limit)

    monkeypatch.setattr(Dispatcher, "run_due", run_due)
    with caplog.at_level(logging.ERROR, logger="humasflow.worker"):
        reports = Worker(office._store, clock=clock).run_once()

    assert [r.item.id for r in reports] == [theirs]
    assert "posting for organisation 'default' failed" in caplog.text
    assert "plugin is broken" in caplog.text  # with its traceback


def test_each_item_handled_is_logged(office, fake, clock, caplog):
    item_id = scheduled(office, clock())
    with caplog.at_level(logging.INFO, logger="humasflow.worker"):
        Worker(office._store, clock=clock).run_once()
    assert f"item {item_id} of default ('Dies Natalis') closed; posted: fb, x" in caplog.text


def test_a_report_says_what_this_worker_did_not_what_another_did(office, fake, clock,
                                                                  caplog):
    """Rule: an item another worker posted meanwhile comes back with no outcome, is not
    logged as this worker's, and only the worker that posted a channel counts it."""
    first = scheduled(office, clock(), channels=["x"], title="First")
    second = scheduled(office, clock(), channels=["x"], title="Second")
    other = Worker(office._store, clock=clock, worker_id="other")

    class CutIn(FakePublisher):
        """While this worker posts the first item, another worker posts the second."""

        def publish(self, post, progress=None):
            if post.item_id == first:
                other.run_once()
            return super().publish(post, progress)

    fake.publishers["x"] = CutIn(channel="x")
    mine = Worker(office._store, clock=clock, worker_id="mine")
    with caplog.at_level(logging.INFO, logger="humasflow.worker"):
        reports = {r.item.id: r for r in mine.run_once()}

    assert len(fake.publishers["x"].posted) == 2
    assert (reports[first].posted, reports[first].closed) == (["x"], True)
    assert reports[second].done  # posted, by the other worker:
    assert (reports[second].outcomes, reports[second].closed) == ({}, False)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert lines == [f"item {second} of default ('Second') closed; posted: x",  # other's
                     f"item {first} of default ('First') closed; posted: x"]


WORKERS = 4


def test_worker_threads_count_each_post_once(store_url, office, fake, clock, caplog):
    """Rule: summed over several workers at once, the reports and the logs count every
    post exactly once, and every item as closed by one worker."""
    items = [scheduled(office, clock(), title=f"Item {n}") for n in range(12)]
    workers = [Worker(Store(store_url), clock=clock, worker_id=f"w{n}")
               for n in range(WORKERS)]
    reports: dict[str, list] = {w.worker_id: [] for w in workers}
    start = threading.Barrier(WORKERS)

    def work(w: Worker) -> None:
        start.wait()
        while w.store.due_for_posting(None, clock()):
            reports[w.worker_id].extend(w.run_once())

    try:
        with caplog.at_level(logging.INFO, logger="humasflow.worker"):
            threads = [threading.Thread(target=work, args=(w,)) for w in workers]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
    finally:
        for w in workers:
            w.store.close()

    made = count(fake, "x") + count(fake, "fb")
    assert made == 2 * len(items)  # nothing posted twice
    every = [r for found in reports.values() for r in found]
    assert sum(len(r.posted) for r in every) == made
    assert sum(r.closed for r in every) == len(items)
    assert all(office.item(i).state == "posted" for i in items)
    logged = [r.getMessage() for r in caplog.records
              if r.levelno == logging.INFO and r.getMessage().startswith("item ")]
    posted_in_logs = sum(len(line.split("posted: ")[1].split("; ")[0].split(", "))
                         for line in logged if "posted: " in line)
    assert posted_in_logs == made
    assert sum(line.split(" (")[1].split(") ")[1].startswith("closed;")
               for line in logged) == len(items)


def test_run_due_is_one_pass_for_cron(store_url, office, fake, clock):
    item_id = scheduled(office, clock())
    (report,) = run_due(store_url, clock=clock, worker_id="cron")
    assert report.item.id == item_id
    assert report.done
    assert run_due(office._store, clock=clock) == []


def test_the_worker_names_itself_and_checks_its_settings(office):
    worker = Worker(office._store)
    host, pid, _ = worker.worker_id.rsplit(":", 2)
    assert (host, pid) == (socket.gethostname(), str(os.getpid()))
    assert Worker(office._store, poll_interval=dt.timedelta(minutes=2)).poll_interval == 120
    with pytest.raises(ValueError, match="batch"):
        Worker(office._store, batch=0)
    with pytest.raises(ValueError, match="poll_interval"):
        Worker(office._store, poll_interval=-1)


# -- the loop -----------------------------------------------------------------------------------


class Sleeper:
    """An injected sleep that moves the steerable clock instead of waiting."""

    def __init__(self, clock: SteerableClock, then=None) -> None:
        self.clock = clock
        self.waits: list[float] = []
        self.then = then

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds=seconds)
        if self.then is not None:
            self.then()


def test_the_loop_posts_items_as_they_fall_due(office, fake, clock):
    item_id = scheduled(office, clock() + 45 * S)
    sleep = Sleeper(clock)
    seen = []
    worker = Worker(office._store, clock=clock, sleep=sleep, poll_interval=30)

    passes = worker.run(max_loops=3, on_report=seen.append)

    assert passes == 3
    assert sleep.waits == [30, 30]  # no wait after the last pass
    assert [r.item.id for r in seen] == [item_id]
    assert seen[0].done


def test_a_failing_report_callback_does_not_stop_the_loop(office, fake, clock, caplog):
    scheduled(office, clock())

    def on_report(report):
        raise RuntimeError("the dashboard is down")

    worker = Worker(office._store, clock=clock, sleep=Sleeper(clock))
    with caplog.at_level(logging.ERROR, logger="humasflow.worker"):
        assert worker.run(max_loops=2, on_report=on_report) == 2
    assert "on_report failed" in caplog.text


def test_setting_stop_ends_the_loop_after_the_current_pass(office, fake, clock):
    scheduled(office, clock())
    stop = threading.Event()
    sleep = Sleeper(clock)
    worker = Worker(office._store, clock=clock, sleep=sleep)
    assert worker.run(stop, on_report=lambda report: stop.set()) == 1
    assert sleep.waits == []


def test_stop_ends_the_default_wait_early_and_a_thread_installs_no_handler(office, clock):
    worker = Worker(office._store, clock=clock, poll_interval=dt.timedelta(hours=1))
    passed, stop, result = threading.Event(), threading.Event(), []
    run_once = worker.run_once

    def counted(now=None):
        reports = run_once(now)
        passed.set()
        return reports

    worker.run_once = counted
    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=lambda: result.append(worker.run(stop)))
    thread.start()
    assert passed.wait(30)
    stop.set()  # the worker is now in its hour-long wait
    thread.join(30)
    assert not thread.is_alive()
    assert result == [1]
    assert signal.getsignal(signal.SIGTERM) is before


needs_main_thread = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signal handlers are installed from the main thread only")


@needs_main_thread
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_loop_after_the_current_pass(office, fake, clock, signum):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    scheduled(office, clock() + 30 * S)
    seen = []
    sleep = Sleeper(clock, then=lambda: signal.raise_signal(signum))
    worker = Worker(office._store, clock=clock, sleep=sleep, poll_interval=30)

    passes = worker.run(max_loops=10, on_report=seen.append)

    assert passes == 1
    assert seen == []  # the item fell due during the wait; no further pass ran
    assert {s: signal.getsignal(s) for s in before} == before


@needs_main_thread
def test_keyboard_interrupt_ends_the_loop_cleanly(office, clock):
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

    def interrupt(seconds):
        raise KeyboardInterrupt

    assert Worker(office._store, clock=clock, sleep=interrupt).run() == 1
    assert {s: signal.getsignal(s) for s in before} == before


# -- several worker processes on one store --------------------------------------------------------

CHILD = textwrap.dedent('''
    """A worker process for test_workers: posts through a publisher that appends one
    line per platform call to a shared file."""

    import datetime as dt
    import json
    import os
    import sys
    import time

    from humasflow.hookspecs import hookimpl
    from humasflow.publishing.contract import Receipt


    class AppendingPublisher:
        def __init__(self, channel, context):
            self.channel = channel.name
            self.path = channel.settings["log"]

        def validate(self, post):
            return []

        def publish(self, post, progress=None):
            line = f"{post.item_id} {post.channel} {os.getpid()}\\n".encode()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)  # one write(2) with O_APPEND: lines never interleave
            finally:
                os.close(fd)
            time.sleep(0.005)  # a platform takes a moment; lets the workers interleave
            return Receipt(f"{post.item_id}-{post.channel}-{os.getpid()}")

        def check(self):
            pass


    class Plugin:
        @hookimpl
        def register_publishers(self, register):
            register("appending", AppendingPublisher)


    def main(url, folder, name):
        from humasflow.clock import system_clock
        from humasflow.publishing.worker import Worker
        from humasflow.storage import Store
        from humasflow.testing import plugin_registered

        with plugin_registered(Plugin()):
            store = Store(url, migrate=False)
            worker = Worker(store, worker_id=name)
            open(os.path.join(folder, f"ready-{name}"), "w").close()
            go = os.path.join(folder, "go")
            deadline = time.monotonic() + 60
            while not os.path.exists(go):
                if time.monotonic() > deadline:
                    sys.exit("no go signal")
                time.sleep(0.01)
            passes = reports = posted = closed = 0
            deadline = time.monotonic() + 120
            while store.due_for_posting(None, system_clock()):
                if time.monotonic() > deadline:
                    sys.exit("items still due after 120 s")
                done = worker.run_once()
                reports += len(done)
                posted += sum(len(r.posted) for r in done)
                closed += sum(r.closed for r in done)
                passes += 1
            store.close()
        print(json.dumps({"name": name, "passes": passes, "reports": reports,
                          "posted": posted, "closed": closed}))


    if __name__ == "__main__":
        main(*sys.argv[1:])
''')

ITEMS, CHANNELS, PROCESSES = 30, ("a", "b", "c"), 4


@pytest.mark.slow
def test_worker_processes_post_every_channel_exactly_once(store_url, tmp_path):
    script = tmp_path / "child_worker.py"
    script.write_text(CHILD)
    calls = tmp_path / "calls.log"
    plugin = runpy.run_path(str(script), run_name="child_worker")["Plugin"]()

    # Set up in the past on a steerable clock, so the workers' real clock finds it due.
    clock = SteerableClock(system_clock() - dt.timedelta(hours=1))
    store = Store(store_url)
    with plugin_registered(plugin):
        office = Office(store, clock=clock, environ={})
        office.establish(by="Dekan")
        staffed_office(office)
        for name in CHANNELS:
            office.add_channel(name, "appending",
                               settings={"log": str(calls), "media_urls": "pass"}, by="admin")
        items = [scheduled(office, clock(), channels=CHANNELS, title=f"Item {n}")
                 for n in range(ITEMS)]

        env = {**os.environ, "HUMASFLOW_LOAD_PLUGINS": ""}
        children = [subprocess.Popen(
            [sys.executable, str(script), store_url, str(tmp_path), f"worker-{n}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for n in range(PROCESSES)]
        try:
            deadline = time.monotonic() + 60
            while len(list(tmp_path.glob("ready-*"))) < PROCESSES:
                assert time.monotonic() < deadline, "the workers did not start"
                assert all(c.poll() is None for c in children), children[0].stderr.read()
                time.sleep(0.05)
            (tmp_path / "go").touch()  # all at once
            outputs = [c.communicate(timeout=180) for c in children]
        finally:
            for c in children:
                if c.poll() is None:
                    c.kill()
                    c.wait()

        for child, (_, err) in zip(children, outputs, strict=True):
            assert child.returncode == 0, err
            assert "Traceback" not in err, err
        # Each worker's summary counts only its own posts: together, the real number.
        summaries = [json.loads(out) for out, _ in outputs]
        assert sum(s["posted"] for s in summaries) == ITEMS * len(CHANNELS)
        assert sum(s["closed"] for s in summaries) == ITEMS

        lines = [line.split() for line in calls.read_text().splitlines()]
        per_channel = collections.Counter((int(item), channel) for item, channel, _ in lines)
        expected = {(item, channel) for item in items for channel in CHANNELS}
        assert set(per_channel) == expected
        assert [k for k, n in per_channel.items() if n != 1] == []  # nothing posted twice
        pids = {pid for _, _, pid in lines}
        assert len(pids) >= 2, "the posts should have been shared between the workers"

        by_call = {(int(item), channel): pid for item, channel, pid in lines}
        for item_id in items:
            report = office.status(item_id)
            assert report.done, report
            for channel, pub in report.publications.items():
                assert (pub.state, pub.attempts) == ("posted", 1)
                assert pub.platform_id == f"{item_id}-{channel}-{by_call[item_id, channel]}"
        assert store.due_for_posting(None, system_clock()) == []
        assert office.verify().ok
    store.close()
