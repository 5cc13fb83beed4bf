"""Fault injection: make one call of a posting run crash, time out or fail.

A :class:`FaultInjector` hands out HTTP sessions (pass :meth:`FaultInjector.session` as
the office's ``session_factory``) that count every request a publisher sends, and can
make one of them go wrong at a chosen point:

``crash_before_send``
    The process dies before the request leaves: the platform never sees it.
``crash_after_send``
    The platform received and carried out the request; the process dies before it
    reads the answer.
``crash_before_save``
    The answer arrived; the process dies before it writes anything more (the
    publisher's ``progress.save`` or the dispatcher's record of the outcome).
``timeout_before_send``
    ``requests.ConnectTimeout``: nothing was sent.
``timeout_after_send``
    ``requests.ReadTimeout``: the platform carried the request out, the answer was lost.
``crash_before_outcome``
    ``publish`` returned (or raised); the process dies before the dispatcher commits
    the outcome (needs :meth:`FaultInjector.watch` on the store).

A crash raises :class:`Crash`, a :class:`BaseException` that nothing in humasflow
catches, so it leaves exactly what a killed process leaves: the claim in flight, no
outcome recorded, open transactions rolled back.

>>> injector = FaultInjector()
>>> injector.arm("crash_after_send", call=2)
>>> injector.fault
Fault(point='crash_after_send', call=2, match='')
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

import attrs
import requests
from requests.adapters import BaseAdapter, HTTPAdapter

from humasflow.office import Office
from humasflow.publishing.dispatch import PostReport
from humasflow.storage.store import Store

__all__ = [
    "CALL_POINTS",
    "Crash",
    "Fault",
    "FaultInjector",
    "MemoryProgress",
    "resume_after_restart",
]

#: The fault points tied to one HTTP call of a posting run.
CALL_POINTS: tuple[str, ...] = (
    "crash_before_send",
    "crash_after_send",
    "crash_before_save",
    "timeout_before_send",
    "timeout_after_send",
)
_STORE_POINTS = ("crash_before_outcome",)


class Crash(BaseException):
    """The process died here (injected).

    A :class:`BaseException`, like :class:`KeyboardInterrupt`: humasflow's handlers
    catch :class:`Exception`, so a crash unwinds through them exactly as far as a
    killed process would get (nowhere).
    """


@attrs.frozen
class Fault:
    """Where to inject: ``point`` at the ``call``-th request (from 1) whose URL
    contains ``match``."""

    point: str
    call: int = 0
    match: str = ""


class MemoryProgress(dict[str, Any]):
    """A stand-in for the dispatcher's durable progress, for calling a publisher directly.

    >>> progress = MemoryProgress()
    >>> progress.save(container_id="c-1")
    >>> progress
    {'container_id': 'c-1'}
    """

    def save(self, **values: Any) -> None:
        """Record ``values``."""
        self.update(values)


class FaultInjector:
    """Counts a run's HTTP calls and makes one of them go wrong.

    Args:
        crash: Called instead of raising :class:`Crash` where a crash is injected, e.g.
            ``lambda why: os.kill(os.getpid(), signal.SIGKILL)`` in a worker process
            that a test really kills.

    Attributes:
        calls: ``(method, url)`` of every request the sessions were asked to send.
        fault: The armed fault, if any.
        fired: Whether the armed fault has happened.
        forbidden: Requests sent while :meth:`no_network` was active.
    """

    def __init__(self, crash: Callable[[str], object] | None = None) -> None:
        self.crash = crash
        self.calls: list[tuple[str, str]] = []
        self.fault: Fault | None = None
        self.fired = False
        self.forbidden: list[tuple[str, str]] = []
        self._forbid = False
        self._matched = 0
        self._store_armed = False
        self._before: dict[int, Callable[[], None]] = {}
        self._lock = threading.RLock()

    # -- arming ---------------------------------------------------------------------------

    def arm(self, point: str, call: int = 0, *, match: str = "") -> None:
        """Inject ``point`` at the ``call``-th request (counted from now) whose URL
        contains ``match``; ``crash_before_outcome`` takes no call number."""
        if point not in CALL_POINTS + _STORE_POINTS:
            raise ValueError(f"unknown fault point {point!r}; known: "
                             f"{', '.join(CALL_POINTS + _STORE_POINTS)}")
        if point in CALL_POINTS and call < 1:
            raise ValueError(f"{point} needs the number of the call to hit (call=1, 2...)")
        with self._lock:
            self.fault = Fault(point, call, match)
            self.fired = False
            self._matched = 0
            self._store_armed = False

    def before_call(self, call: int, action: Callable[[], None]) -> None:
        """Run ``action`` just before the ``call``-th request (counted from now) is sent,
        e.g. to make a wire fake answer that one request with an error."""
        with self._lock:
            self._before[len(self.calls) + call] = action

    def disarm(self) -> None:
        """Forget the armed fault."""
        with self._lock:
            self.fault = None
            self._store_armed = False

    @contextlib.contextmanager
    def no_network(self) -> Iterator[None]:
        """Refuse (and record in :attr:`forbidden`) every request inside the block."""
        self._forbid = True
        try:
            yield
        finally:
            self._forbid = False

    # -- seams ----------------------------------------------------------------------------

    def session(self) -> requests.Session:
        """A new session whose requests pass through the injector (a ``session_factory``).

        It ignores proxy settings and ``.netrc`` from the environment: a test's requests
        go where the test sends them.
        """
        session = requests.Session()
        session.trust_env = False
        for prefix in ("http://", "https://"):
            session.mount(prefix, _FaultAdapter(self, HTTPAdapter()))
        return session

    def watch(self, store: Store) -> Store:
        """Let ``crash_before_save``/``crash_before_outcome`` stop ``store``'s next
        write of a channel record; return ``store``."""
        original = store.update_publication

        def update_publication(conn: Any, org: str, item_id: int, channel: str,
                               values: Mapping[str, Any], *, states: Any = (),
                               claimed_by: str | None = None) -> bool:
            if self._crash_on_write(values, claimed_by):
                self._crash(f"injected crash before recording {dict(values)!r}")
            return original(conn, org, item_id, channel, values, states=states,
                            claimed_by=claimed_by)

        settle = store.settle_publication

        def settle_publication(conn: Any, org: str, item_id: int, channel: str,
                               values: Mapping[str, Any], *, states: Any = (),
                               claimed_by: str | None = None,
                               attempt: int | None = None) -> Any:
            if self._crash_on_write(values, claimed_by):
                self._crash(f"injected crash before recording {dict(values)!r}")
            return settle(conn, org, item_id, channel, values, states=states,
                          claimed_by=claimed_by, attempt=attempt)

        store.update_publication = update_publication  # type: ignore[method-assign]
        store.settle_publication = settle_publication  # type: ignore[method-assign]
        return store

    # -- internals ------------------------------------------------------------------------

    def _crash(self, why: str) -> NoReturn:
        if self.crash is not None:
            self.crash(why)
        raise Crash(why)

    def _crash_on_write(self, values: Mapping[str, Any], claimed_by: str | None) -> bool:
        with self._lock:
            if self.fired or self.fault is None:
                return False
            if self._store_armed:
                self.fired = True
                return True
            # The dispatcher records an attempt's outcome as its claimant, with a state.
            if (self.fault.point == "crash_before_outcome" and claimed_by is not None
                    and "state" in values):
                self.fired = True
                return True
            return False

    def _on_send(self, request: requests.PreparedRequest) -> tuple[int, str | None]:
        with self._lock:
            url = request.url or ""
            self.calls.append((request.method or "", url))
            number = len(self.calls)
            action = self._before.pop(number, None)
            point = None
            fault = self.fault
            if (fault is not None and not self.fired and fault.point in CALL_POINTS
                    and fault.match in url):
                self._matched += 1
                if self._matched == fault.call:
                    point = fault.point
                    if point != "crash_before_save":
                        self.fired = True
        if action is not None:
            action()
        return number, point

    def _answered(self) -> None:
        with self._lock:
            self._store_armed = True


class _FaultAdapter(BaseAdapter):
    def __init__(self, injector: FaultInjector, inner: HTTPAdapter) -> None:
        super().__init__()
        self.injector = injector
        self.inner = inner

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        injector = self.injector
        if injector._forbid:
            injector.forbidden.append((request.method or "", request.url or ""))
            raise Crash(f"no request may be sent here: {request.method} {request.url}")
        number, point = injector._on_send(request)
        where = f"call {number} ({request.method} {request.url})"
        if point == "crash_before_send":
            injector._crash(f"injected crash before sending {where}")
        if point == "timeout_before_send":
            raise requests.ConnectTimeout(f"injected connect timeout at {where}",
                                          request=request)
        response = self.inner.send(request, stream=stream, timeout=timeout, verify=verify,
                                   cert=cert, proxies=proxies)
        if point == "crash_after_send":
            response.close()
            injector._crash(f"injected crash after sending {where}, before its answer")
        if point == "timeout_after_send":
            response.close()
            raise requests.ReadTimeout(f"injected read timeout at {where}", request=request)
        if point == "crash_before_save":
            injector._answered()
        return response

    def close(self) -> None:
        self.inner.close()


def resume_after_restart(
    make_office: Callable[[], Office],
    clock: Any,
    *,
    lease: dt.timedelta = dt.timedelta(minutes=15),
    rounds: int = 6,
    worker: str = "restarted",
) -> list[PostReport]:
    """Play a restarted worker: move ``clock`` past the lease, run what is due, repeat.

    Each round uses a fresh office (from ``make_office``, as a new process would open
    one) and a :class:`Dispatcher` with a new worker id, then moves the clock past the
    lease again so that retries and reconciliation come due. It stops early when a
    round posts nothing new.

    Returns:
        The reports of every round.
    """
    reports: list[PostReport] = []
    for n in range(1, rounds + 1):
        clock.advance(lease + dt.timedelta(seconds=1))
        office = make_office()
        try:
            done = office.dispatcher(worker_id=f"{worker}-{n}", lease=lease).run_due()
        finally:
            office.close()
        reports.extend(done)
        if all(r.done or _only_person(r) for r in done):
            break
    return reports


def _only_person(report: PostReport) -> bool:
    return set(report.failed) <= set(report.needs_person)
