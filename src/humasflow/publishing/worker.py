"""The worker: posts what is due, for every organisation in a store, until stopped.

A worker is a loop around :meth:`Dispatcher.run_due
<humasflow.publishing.dispatch.Dispatcher.run_due>`: every ``poll_interval`` it posts the
scheduled items whose time has come and retries the channels whose retry time came.
Run as many workers as you like, on one machine or several, against one store: each
channel is claimed exclusively before its platform call, so no post goes out twice.

>>> from humasflow.publishing.worker import Worker
>>> worker = Worker("humasflow.db")                 # doctest: +SKIP
>>> worker.run()                                     # doctest: +SKIP

From cron, one pass and done::

    from humasflow.publishing.worker import run_due
    run_due("humasflow.db")

Progress goes to the ``humasflow.worker`` logger.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

import requests

from humasflow.clock import Clock, system_clock
from humasflow.credentials import CredentialSource
from humasflow.models import Media
from humasflow.office import Office
from humasflow.publishing.dispatch import Dispatcher, PostReport
from humasflow.scrubbing import get_logger
from humasflow.storage.store import Store

__all__ = ["Worker", "run_due"]

log = get_logger("humasflow.worker")

#: The longest a signal waits to end the default sleep between passes.
_SIGNAL_GRANULARITY = 0.5


class Worker:
    """Posts due items of every organisation in a store (or of the given ones).

    Args:
        store: A :class:`~humasflow.storage.store.Store`, or a SQLite path or database
            URL to open one.
        clock: Returns the current time (aware, UTC).
        worker_id: Names this worker in claims and in the record (default: host,
            process id and a random suffix).
        orgs: Only these organisations (default: every organisation, looked up on
            each pass, so new ones are picked up).
        poll_interval: The wait between two passes (a :class:`~datetime.timedelta` or
            seconds).
        sleep: How to wait between passes (tests pass a fake). With the default
            :func:`time.sleep` a stop request ends the wait early.
        environ: Environment variables channel credentials are read from.
        credentials: The credential source, or the path of a secrets file (see
            :class:`~humasflow.office.Office`); default as for the office.
        batch: The most items of one organisation handled in one pass.
        media_host: Gives stored media a public URL (see
            :class:`~humasflow.publishing.media.FolderMediaHost`).
        session_factory: Makes the HTTP session handed to publishers.
        media_store: The media store posts are read from (as for
            :class:`~humasflow.office.Office`; default: beside a SQLite file).
    """

    def __init__(
        self,
        store: Store | str | Path,
        *,
        clock: Clock = system_clock,
        worker_id: str | None = None,
        orgs: Iterable[str] | None = None,
        poll_interval: dt.timedelta | float = dt.timedelta(seconds=30),
        sleep: Callable[[float], Any] = time.sleep,
        environ: Mapping[str, str] | None = None,
        credentials: CredentialSource | str | os.PathLike[str] | None = None,
        batch: int = 100,
        media_host: Callable[[Media, Any], str | None] | None = None,
        session_factory: Callable[[], requests.Session] = requests.Session,
        media_store: Any = None,
    ) -> None:
        if isinstance(poll_interval, dt.timedelta):
            poll_interval = poll_interval.total_seconds()
        if poll_interval < 0:
            raise ValueError(f"poll_interval is {poll_interval!r}; give a wait >= 0")
        if batch < 1:
            raise ValueError(f"batch is {batch!r}; give at least 1")
        self.store = store if isinstance(store, Store) else Store(store)
        self.clock = clock
        self.worker_id = worker_id or (
            f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
        self.orgs = None if orgs is None else tuple(orgs)
        self.poll_interval = float(poll_interval)
        self.sleep = sleep
        self.environ = environ
        self.credentials = credentials
        self.batch = batch
        self.media_host = media_host
        self.session_factory = session_factory
        self.media_store = media_store
        self._dispatchers: dict[str, Dispatcher] = {}
        self._offices: dict[str, Office] = {}
        self._signalled = False

    def __repr__(self) -> str:
        return f"<Worker {self.worker_id!r} store={self.store.engine.url!r}>"

    # -- one pass -----------------------------------------------------------------------

    def run_once(self, now: dt.datetime | None = None) -> list[PostReport]:
        """Post what is due now in every organisation; return what each item went through.

        Each report's :attr:`~humasflow.publishing.dispatch.PostReport.outcomes` and
        ``closed`` say what this worker did; an item another worker handled meanwhile
        comes back with neither (and is not logged at INFO).

        One organisation's failure (its store unreachable, a broken plugin) is logged
        and does not stop the others.

        Args:
            now: Judge what is due at this time (default: the clock's time).
        """
        reports: list[PostReport] = []
        for org in self._orgs():
            try:
                done = self._dispatcher(org).run_due(now, limit=self.batch)
            except Exception:
                log.exception("worker %s: posting for organisation %r failed; "
                              "trying again on the next pass", self.worker_id, org)
                continue
            for report in done:
                if report.outcomes or report.closed:
                    log.info("%s", _describe(report))
                else:
                    # Due when the pass began, but another worker had it meanwhile.
                    log.debug("worker %s: item %s of %s had nothing left for it",
                              self.worker_id, report.item.id, report.item.org)
            reports.extend(done)
        return reports

    def _orgs(self) -> list[str]:
        known = self.store.orgs()
        if self.orgs is None:
            return known
        missing = [o for o in self.orgs if o not in known]
        if missing:
            log.warning("worker %s: no organisation %s in the store; skipped",
                        self.worker_id, ", ".join(repr(o) for o in missing))
        return [o for o in self.orgs if o in known]

    def _dispatcher(self, org: str) -> Dispatcher:
        dispatcher = self._dispatchers.get(org)
        if dispatcher is None:
            office = Office(self.store, org, clock=self.clock, environ=self.environ,
                            credentials=self.credentials,
                            session_factory=self.session_factory, media_host=self.media_host,
                            media_store=self.media_store)
            self._offices[org] = office
            dispatcher = self._dispatchers[org] = office.dispatcher(worker_id=self.worker_id)
        return dispatcher

    def posts_through(self, office: object) -> bool:
        """Whether ``office`` is one this worker posts through (a hook's ``office``
        argument tells this worker's outcomes from other workers' in the same process)."""
        return any(office is mine for mine in self._offices.values())

    # -- the loop -------------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        max_loops: int | None = None,
        on_report: Callable[[PostReport], Any] | None = None,
    ) -> int:
        """Run passes until stopped; return how many passes ran.

        It stops when ``stop`` is set, after ``max_loops`` passes, on SIGTERM or SIGINT
        (Ctrl-C), or on :class:`KeyboardInterrupt`. A signal lets the current pass finish
        (its posts are recorded); a second Ctrl-C interrupts at once, and a post cut off
        that way is recorded as in flight until its lease runs out, then reconciled.
        Signal handlers are installed only when called from the main thread, and the
        previous ones are restored on return.

        Args:
            stop: Set it (from another thread) to stop after the current pass.
            max_loops: Stop after this many passes.
            on_report: Called with each :class:`PostReport`; its errors are logged.
        """
        stop = stop or threading.Event()
        self._signalled = False
        restore = self._install_signal_handlers()
        loops = 0
        log.info("worker %s started (every %gs)", self.worker_id, self.poll_interval)
        try:
            while not self._stopping(stop):
                for report in self.run_once():
                    if on_report is not None:
                        try:
                            on_report(report)
                        except Exception:
                            log.exception("worker %s: on_report failed", self.worker_id)
                loops += 1
                if (max_loops is not None and loops >= max_loops) or self._stopping(stop):
                    break
                self._wait(stop)
        except KeyboardInterrupt:
            log.info("worker %s interrupted", self.worker_id)
        finally:
            restore()
        log.info("worker %s stopped after %d passes", self.worker_id, loops)
        return loops

    def _stopping(self, stop: threading.Event) -> bool:
        return self._signalled or stop.is_set()

    def _wait(self, stop: threading.Event) -> None:
        if self.sleep is not time.sleep:
            self.sleep(self.poll_interval)
            return
        # A signal handler must not take locks (the main thread may hold the one it
        # needs), so it only sets a flag; wake up often enough to notice it.
        deadline = time.monotonic() + self.poll_interval
        while not self._stopping(stop):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            stop.wait(min(left, _SIGNAL_GRANULARITY))

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

        def handle(signum: int, frame: FrameType | None) -> None:
            self._signalled = True
            # A second Ctrl-C interrupts at once.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            log.info("worker %s: %s received; stopping after this pass (Ctrl-C again "
                     "to stop at once)", self.worker_id, signal.Signals(signum).name)

        for signum in previous:
            signal.signal(signum, handle)

        def restore() -> None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

        return restore


def run_due(
    target: Store | str | Path,
    *,
    now: dt.datetime | None = None,
    orgs: Iterable[str] | None = None,
    clock: Clock = system_clock,
    environ: Mapping[str, str] | None = None,
    credentials: CredentialSource | str | os.PathLike[str] | None = None,
    worker_id: str | None = None,
    batch: int = 100,
    media_host: Callable[[Media, Any], str | None] | None = None,
    media_store: Any = None,
) -> list[PostReport]:
    """One pass over a store: post what is due in every organisation (for cron).

    Args:
        target: A :class:`~humasflow.storage.store.Store`, or a SQLite path or database
            URL (opened and closed again).
        now: Judge what is due at this time (default: the clock's time).
        orgs, clock, environ, credentials, worker_id, batch, media_host, media_store: As for
            :class:`Worker`.

    Returns:
        What each due item went through.
    """
    store = target if isinstance(target, Store) else Store(target)
    try:
        worker = Worker(store, clock=clock, worker_id=worker_id, orgs=orgs, environ=environ,
                        credentials=credentials, batch=batch, media_host=media_host,
                        media_store=media_store)
        return worker.run_once(now)
    finally:
        if store is not target:
            store.close()


def _describe(report: PostReport) -> str:
    """What this worker did to one item: only its own outcomes, never another worker's."""
    item = report.item
    by_state: dict[str, list[str]] = {}
    for name, pub in sorted(report.outcomes.items()):
        by_state.setdefault(pub.state, []).append(name)
    channels = "; ".join(f"{state}: {', '.join(names)}"
                         for state, names in sorted(by_state.items()))
    outcome = ("closed" if report.closed else "open" if item.is_open
               else "closed by another worker")
    return (f"item {item.id} of {item.org} ({item.title!r}) {outcome}; "
            f"{channels or 'no channel changed'}")
