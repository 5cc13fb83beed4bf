"""The dispatcher: posts an item to its channels without ever posting one twice.

For each target channel the dispatcher keeps a :class:`~humasflow.models.Publication`
record and follows the publishing safety contract:

1. An in-flight attempt whose worker stopped answering (its lease ran out) becomes
   ``unknown``: the request may have reached the platform.
2. An ``unknown`` channel is reconciled: the publisher looks the post up. Found → it is
   ``posted``; confirmed absent → ``pending`` again; can't tell → it is looked up again
   later, with a backoff. A publisher that cannot look posts up leaves the channel to a
   person (:meth:`Dispatcher.confirm`). It is never re-posted blindly.
3. A channel is *claimed* (recorded in flight, exclusively) before the platform call,
   and its outcome is recorded, with an event in the item's record, after it.
4. While the attempt runs, a heartbeat renews its lease, and every ``progress.save``
   renews it too. A worker whose claim was taken over anyway (it stalled longer than
   the lease) is stopped by :class:`~humasflow.errors.ClaimLost` at its next
   ``progress.save``, before its next platform call, and never records over the new
   owner's record.
5. The channels of one item are posted concurrently, each in its own thread.
6. When every channel is posted (or skipped by the coordinator), the item's posting step
   completes and the item is closed.

Outcome events name as their actor the person on whose authority the item is posted;
the worker that made the attempt is in the event's ``data["worker"]``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import random
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from humasflow import _input, i18n
from humasflow._data import plain
from humasflow.errors import (
    AuthenticationFailed,
    ChannelInactive,
    ClaimLost,
    ConflictError,
    ContentInvalid,
    HumasflowError,
    InputInvalid,
    ItemNotFound,
    NotAllowedNow,
    OutcomeUnknown,
    PlatformError,
    PublishError,
    RateLimited,
    Refused,
    RoleRequired,
    WaitingForPerson,
)
from humasflow.i18n import _
from humasflow.models import Actor, ChannelConfig, ContentItem, Event, Publication
from humasflow.publishing.retry import RetryPolicy
from humasflow.scrubbing import get_logger, scrub

if TYPE_CHECKING:
    from humasflow.publishing.contract import Post, Problem
    from humasflow.sop import SOP
    from humasflow.storage.store import Store
    from humasflow.workflow import Engine, Move

__all__ = ["Dispatcher", "Heartbeat", "HeartbeatLike", "ManualHeartbeat", "PostReport",
           "PostingOffice", "Progress"]

log = get_logger("humasflow")

_OPEN_FOR_CONFIRM = ("unknown", "waiting", "failed")
#: The longest lease an attempt may have (added to the clock's time, it must not overflow).
_MAX_LEASE = dt.timedelta(days=7)


class PostingOffice(Protocol):
    """What the dispatcher needs from the office it posts for, and nothing more.

    :meth:`humasflow.office.Office.dispatcher` hands the dispatcher such an object;
    the dispatcher never reaches into the office itself.
    """

    org: str
    store: Store

    def now(self) -> dt.datetime:
        """The current time (aware, UTC) from the office's clock."""

    def actor(self, actor: str | Actor) -> Actor:
        """The stored actor."""

    def item(self, item_id: int) -> ContentItem:
        """One item of the office's organisation."""

    def engine(self, revision: int) -> Engine:
        """The state machine of an SOP revision."""

    def sop(self, revision: int) -> SOP:
        """The SOP of a revision."""

    def channels(self) -> dict[str, ChannelConfig]:
        """The organisation's channels by name."""

    def history(self, item_id: int) -> list[Event]:
        """The item's events, oldest first."""

    def validate(self, item: ContentItem,
                 channels: Mapping[str, ChannelConfig] | None = None) -> list[Problem]:
        """The item's post checked against every target channel (as in ``channels``, the
        channels as read, or else as stored)."""

    def post_for(self, item: ContentItem, channel: str) -> Post:
        """The post as ``channel`` receives it."""

    def publisher(self, channel: ChannelConfig) -> Any:
        """The channel's publisher, built with its credentials."""

    def record(self, engine: Engine, before: ContentItem, head: str, move: Move,
               actor: Actor, extra: Mapping[str, Any] | None = None) -> ContentItem:
        """Write a move computed from a snapshot (optimistic check), then run hooks."""

    def write(self, conn: Any, engine: Engine, before: ContentItem, head: str, move: Move,
              actor: Actor, extra: Mapping[str, Any] | None = None,
              ) -> tuple[ContentItem, Event, Any]:
        """:meth:`record` inside the caller's write transaction, without the hooks:
        the item as recorded, its event and the step it entered (for :meth:`recorded`)."""

    def recorded(self, item: ContentItem, event: Event, entered: Any) -> None:
        """Run the hooks of a move :meth:`write` wrote, after its commit."""

    def notify(self, name: str, **kwargs: Any) -> None:
        """Run an event hook after a commit; a failing plugin is logged, not raised."""

    def report_failure(self, item_id: int, error: Exception) -> None:
        """Log that an item could not be posted in a pass."""
# A channel record's values that carry text from outside: scrubbed before they are written.
_TEXT_FROM_OUTSIDE = frozenset({"error_class", "error_message", "url", "platform_id"})


def _in_record_language() -> contextlib.AbstractContextManager[str]:
    """Make messages in the record's language (English, the source text).

    A channel's ``error_message`` and the notes of its events are part of the permanent
    record: they must read the same whoever's language the posting ran in. Messages
    raised to the caller are made in the caller's language as usual.
    """
    return i18n.use(i18n.DEFAULT_LANGUAGE)


class _LastOutcome:
    """The attempts of one run, counted down as each records its outcome (or gives up):
    the one that counts the last may close the item in its own transaction."""

    def __init__(self, attempts: int, actor: Actor) -> None:
        self.actor = actor  # on whose authority the item is closed
        self._left = attempts
        self._lock = threading.Lock()
        #: The item closed with the last outcome, its records, the closing event and the
        #: step it entered (set after the commit).
        self.closed: tuple[ContentItem, dict[str, Publication], Event, Any] | None = None

    def one_done(self) -> bool:
        """Count one attempt done; whether it was the last."""
        with self._lock:
            self._left -= 1
            return self._left == 0


@attrs.frozen
class PostReport:
    """An item after a posting run, channel by channel, and what this run itself did.

    Several workers may pass over the same item at once: :attr:`publications` and
    :attr:`done` say where the item stands (whoever did it), :attr:`outcomes` and
    :attr:`closed` only what this run recorded, so summing them over workers counts each
    post once.

    Attributes:
        item: The item as it stands after the run.
        publications: Each target channel's record after the run.
        outcomes: The channels whose record this run changed (an attempt's outcome, a
            look-up's answer, an interrupted attempt found), each with the record as
            this run left it.
        closed: Whether this run completed the posting step (closed the item).
    """

    item: ContentItem
    publications: Mapping[str, Publication]
    outcomes: Mapping[str, Publication] = attrs.field(factory=dict)
    closed: bool = False

    @property
    def posted(self) -> list[str]:
        """The channels this run posted (or found posted on the platform)."""
        return sorted(c for c, p in self.outcomes.items() if p.state == "posted")

    @property
    def done(self) -> bool:
        """Whether every target channel is settled and the item is closed."""
        return self.item.state == "posted"

    @property
    def failed(self) -> list[str]:
        """The channels that are not posted or skipped."""
        return [c for c, p in self.publications.items() if not p.is_settled]

    @property
    def needs_person(self) -> list[str]:
        """The channels waiting for a person (unknown outcome, manual, or failed for good)."""
        return [c for c, p in self.publications.items()
                if p.state in ("unknown", "waiting")
                or (p.state == "failed" and p.next_attempt_at is None)]


class _Claim:
    """One worker's hold on one channel's attempt (number ``attempt``)."""

    def __init__(self, office: PostingOffice, item_id: int, channel: str, worker: str,
                 attempt: int, lease: dt.timedelta) -> None:
        self.office = office
        self.item_id = item_id
        self.channel = channel
        self.worker = worker
        self.attempt = attempt
        self.lease = lease
        self.lost = threading.Event()
        self._kept: contextlib.AbstractContextManager[Any] | None = None

    def keep_alive(self, heartbeat: HeartbeatLike | None) -> None:
        """Have ``heartbeat`` renew the lease from now until :meth:`let_go`."""
        if heartbeat is not None:
            kept = heartbeat.keep(self.renew)
            kept.__enter__()
            self._kept = kept

    def let_go(self) -> None:
        """Stop renewing the lease (the attempt is over); a second call does nothing."""
        kept, self._kept = self._kept, None
        if kept is not None:
            kept.__exit__(None, None, None)

    def until(self) -> dt.datetime:
        """The end of a lease renewed now."""
        return self.office.now() + self.lease

    def renew(self) -> bool:
        """Extend the lease; ``False`` (and :attr:`lost` set) if the claim was taken over."""
        if self.lost.is_set():
            return False
        if self.office.store.renew_lease(self.office.org, self.item_id, self.channel,
                                         self.worker, self.attempt, self.until()):
            return True
        self.lose()
        return False

    def lose(self) -> None:
        if not self.lost.is_set():
            self.lost.set()
            log.warning("worker %s lost its claim on channel %r of item %s (attempt %d): "
                        "its lease ran out and the channel was taken over", self.worker,
                        self.channel, self.item_id, self.attempt)

    def error(self) -> ClaimLost:
        return ClaimLost(item_id=self.item_id, channel=self.channel, worker=self.worker)


class Progress(Mapping[str, Any]):
    """What a multi-step publisher has done so far for one channel, kept durably.

    A publisher calls :meth:`save` after each step that creates something on the
    platform (an uploaded media id, an Instagram container id); the value is committed
    before the next call, so reconciliation after a crash can find it. Each save also
    renews the attempt's lease; if the attempt was taken over meanwhile, :meth:`save`
    raises :class:`~humasflow.errors.ClaimLost`, and the publisher must make no further
    call (it lets the error propagate).
    """

    def __init__(self, office: PostingOffice, item_id: int, channel: str, worker: str,
                 initial: Mapping[str, Any], *, claim: _Claim | None = None) -> None:
        self._office = office
        self._item_id = item_id
        self._channel = channel
        self._worker = worker
        self._data = dict(initial)
        self._claim = claim

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def save(self, **values: Any) -> None:
        """Record ``values`` durably at once, and renew the attempt's lease.

        Raises:
            ClaimLost: The attempt was taken over (its lease ran out); nothing was saved.
                Make no further call to the platform.
        """
        self._data.update(values)
        store, org = self._office.store, self._office.org
        claim = self._claim
        if claim is None:  # reconciling: nobody holds the record, nothing to renew
            store.save_progress(org, self._item_id, self._channel, self._worker, self._data)
            return
        if not claim.lost.is_set() and store.save_progress(
                org, self._item_id, self._channel, self._worker, self._data,
                lease_until=claim.until(), attempt=claim.attempt):
            return
        claim.lose()
        raise claim.error()


class HeartbeatLike(Protocol):
    """What :class:`Dispatcher` needs from a heartbeat: keep an attempt alive while it runs.

    ``keep(renew)`` is a context manager; inside it, the heartbeat calls ``renew()``
    from time to time (it returns ``False`` once the claim is lost: no need to call it
    again).
    """

    def keep(self, renew: Callable[[], bool]) -> contextlib.AbstractContextManager[Any]:
        """Call ``renew`` periodically until the block ends."""


class Heartbeat:
    """Renews running attempts' leases every ``interval`` of real time.

    One daemon thread per heartbeat (a dispatcher has one) renews every attempt it keeps
    alive, each at least once per interval; it is started by the first attempt and ends
    after an interval with none. A renewal that fails because the store does not answer
    is logged and tried again at the next beat; the lease gives several beats' grace
    (the default interval is a third of the lease).

    Args:
        interval: Seconds, or a :class:`~datetime.timedelta`, between two renewals.
    """

    def __init__(self, interval: float | dt.timedelta) -> None:
        seconds = interval.total_seconds() if isinstance(interval, dt.timedelta) else interval
        if not seconds > 0:
            raise ValueError(_("the heartbeat interval is {interval!r}; give a positive one")
                             .format(interval=interval))
        self.interval = float(seconds)
        self._renewals: dict[int, Callable[[], bool]] = {}
        self._ids = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._renewing: int | None = None  # the attempt whose renewal runs now

    def __repr__(self) -> str:
        return f"<Heartbeat every {self.interval:g}s>"

    @contextlib.contextmanager
    def keep(self, renew: Callable[[], bool]) -> Iterator[None]:
        """Call ``renew`` at least every :attr:`interval` seconds, from the heartbeat's
        thread, until the block ends (or ``renew`` says the claim is lost). When the
        block ends, no renewal of it runs any more."""
        key = next(self._ids)
        with self._changed:
            self._renewals[key] = renew
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name="humasflow-heartbeat",
                                                daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._changed:
                self._renewals.pop(key, None)
                while self._renewing == key and self._thread is not threading.current_thread():
                    self._changed.wait()

    def _beat(self) -> None:
        idle = False
        with self._changed:
            while True:
                self._changed.wait(self.interval)
                if not self._renewals:
                    if idle:  # a whole interval with nothing to keep alive
                        self._thread = None
                        return
                    idle = True
                    continue
                idle = False
                for key in list(self._renewals):
                    renew = self._renewals.get(key)
                    if renew is None:
                        continue  # its attempt ended meanwhile
                    self._renewing = key
                    self._changed.release()
                    try:
                        kept = renew()
                    except Exception:
                        kept = True
                        log.warning("a heartbeat could not renew a lease; trying again in %gs",
                                    self.interval, exc_info=True)
                    finally:
                        self._changed.acquire()
                        self._renewing = None
                        self._changed.notify_all()
                    if not kept:
                        self._renewals.pop(key, None)  # the claim is lost: nothing to keep


class ManualHeartbeat:
    """A heartbeat that beats only when told to (:meth:`beat`).

    For tests that steer time: move the clock, call :meth:`beat`, and every running
    attempt renews its lease from the clock's new time, deterministically.
    """

    def __init__(self) -> None:
        self._running: dict[int, Callable[[], bool]] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()

    @property
    def running(self) -> int:
        """How many attempts are being kept alive now."""
        with self._lock:
            return len(self._running)

    @contextlib.contextmanager
    def keep(self, renew: Callable[[], bool]) -> Iterator[None]:
        """Register ``renew`` until the block ends."""
        key = next(self._ids)
        with self._lock:
            self._running[key] = renew
        try:
            yield
        finally:
            with self._lock:
                self._running.pop(key, None)

    def beat(self) -> int:
        """Renew every running attempt's lease now; return how many were renewed."""
        with self._lock:
            renewals = list(self._running.values())
        return sum(1 for renew in renewals if renew())


class Dispatcher:
    """Posts items for one office.

    Args:
        office: The office whose items are posted.
        worker_id: Names this process in claims (default: host and process id).
        max_threads: The most channels posted at once.
        lease: How long an attempt counts as alive without a renewal (after that it
            counts as interrupted, and its outcome as unknown).
        rng: Random source for retry jitter (tests pass a seeded one).
        heartbeat: What renews the leases of running attempts: seconds or a
            :class:`~datetime.timedelta` between renewals (real time), or a
            :class:`HeartbeatLike` object such as :class:`ManualHeartbeat` (tests with a
            steered clock). Default: a third of the lease. A store in memory has no
            heartbeat unless one is given: its single connection cannot serve two
            threads at once, and no other process can take its attempts over.
    """

    def __init__(
        self,
        office: PostingOffice,
        *,
        worker_id: str | None = None,
        max_threads: int = 8,
        lease: dt.timedelta = dt.timedelta(minutes=15),
        rng: random.Random | None = None,
        heartbeat: float | dt.timedelta | HeartbeatLike | None = None,
    ) -> None:
        if not isinstance(lease, dt.timedelta) or not (
                dt.timedelta(seconds=1) <= lease <= _MAX_LEASE):
            raise ValueError(_("the lease is {lease!r}; give a timedelta from 1 second to "
                               "{days} days").format(lease=lease, days=_MAX_LEASE.days))
        self.office = office
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.max_threads = max_threads
        self.lease = lease
        self.rng = rng or random.Random()  # noqa: S311 - retry jitter, not secrecy
        self._rng_lock = threading.Lock()
        if heartbeat is None:
            heartbeat = None if _in_memory(office) else Heartbeat(lease / 3)
        elif isinstance(heartbeat, (int, float, dt.timedelta)):
            every = (heartbeat if isinstance(heartbeat, dt.timedelta)
                     else dt.timedelta(seconds=heartbeat))
            if every >= lease:
                raise ValueError(_("the heartbeat ({every}) must beat more often than the "
                                   "lease ({lease}) runs out").format(every=every, lease=lease))
            heartbeat = Heartbeat(every)
        self.heartbeat: HeartbeatLike | None = heartbeat

    # -- entry points ---------------------------------------------------------------------

    def post(self, item_id: int, actor: Actor) -> PostReport:
        """Post now (the posting step), on the authority of ``actor``.

        Raises:
            Refused: Not at the posting step, wrong role, stale approval, or the post
                breaks a channel's rules (:class:`ContentInvalid`).
        """
        item, pubs, channels = self._posting_state(item_id)
        self._checked(item, actor, "post")
        self._refuse_inactive(item, "post", channels, pubs)
        problems = self.office.validate(item, channels)
        if problems:
            raise ContentInvalid(item_id=str(item.id), step=item.state, action="post",
                                 problems=problems)
        # The records are made with the schedule, in its transaction.
        self._schedule(item, actor, self.office.now(), "post", records=True)
        return self._run(item.id, actor, checked=(item.content_digest, channels))

    def schedule(self, item_id: int, when: dt.datetime, actor: Actor, *,
                 allow_past: bool = False) -> ContentItem:
        """Have the item posted at ``when`` by :meth:`run_due` (a worker or cron); an
        earlier schedule is replaced.

        Raises:
            InputInvalid: ``when`` is before the current minute and not ``allow_past``.
        """
        _input.moment("at", when)
        now = self.office.now()
        if not allow_past and when < now.replace(second=0, microsecond=0):
            shown = now.astimezone(when.tzinfo)
            raise InputInvalid(
                "at", _("is {at}, which is in the past (it is {now} now)").format(
                    at=when.isoformat(" ", "minutes"), now=shown.isoformat(" ", "minutes")),
                _("give a later time, or pass allow_past=True to have it posted at the "
                  "next pass"))
        item = self._check(item_id, actor, "schedule")
        self._refuse_inactive(item, "schedule", self.office.channels(),
                              self.office.store.publications(self.office.org, item.id))
        self._schedule(item, actor, when, "schedule")
        return self.office.item(item.id)

    def unschedule(self, item_id: int, actor: Actor) -> ContentItem:
        """Remove the item's schedule, recorded as an ``unschedule`` event.

        Raises:
            Refused: The item has no schedule, or the posting step's checks fail.
        """
        item = self._check(item_id, actor, "unschedule")
        if item.post_at is None:
            raise Refused(_("item {id} has no schedule to remove; schedule it with a time "
                            "instead").format(id=item.id),
                          item_id=str(item.id), step=item.state, action="unschedule")
        self._schedule(item, actor, None, "unschedule")
        return self.office.item(item.id)

    def run_due(self, now: dt.datetime | None = None, *, limit: int = 100) -> list[PostReport]:
        """Post every item of the office whose posting time has come; retry due channels."""
        now = now or self.office.now()
        reports = []
        for _org, item_id, by in self.office.store.due_for_posting(self.office.org, now, limit):
            try:
                item = self._item(item_id)
                reason = self._authority_lost(item, by)
                if reason is not None:
                    # Posting now would leave the item half-closed: its channels posted,
                    # the step never completed on that authority. It waits, saying why.
                    self._hold(item, by, reason)
                    continue
                reports.append(self._run(item_id, self.office.actor(by), due=now))
            except HumasflowError as exc:
                # One bad item must not stop the others; its state says what is wrong.
                self.office.report_failure(item_id, exc)
            except Exception:  # e.g. a media host that is down: tried on the next run
                log.exception("item %s of %s could not be posted; it is tried again on the "
                              "next run", item_id, self.office.org)
        return reports

    # -- a person's answers -----------------------------------------------------------------

    def confirm(self, item_id: int, channel: str, actor: Actor, *, url: str | None = None,
                platform_id: str | None = None, not_posted: bool = False,
                attempt: int | None = None) -> PostReport:
        """Settle a channel a person checked: posted at ``url``, or ``not_posted``.

        The answer settles the attempt the channel is at when it is read here, or
        ``attempt`` (the one the person checked), and no later one.

        Raises:
            Refused: The channel's state needs no confirmation, the wrong role, or the
                channel was tried again since the attempt checked (or while confirming).
        """
        if url is not None:
            _input.web_url("url", url)
        item = self._check(item_id, actor, "confirm")
        if not_posted == bool(url or platform_id):
            raise ValueError(_("give either the post's url (or platform id) or {option}")
                             .format(option="not_posted=True"))
        pub = self._publication(item, channel)
        if pub.state not in _OPEN_FOR_CONFIRM:
            raise Refused(
                _("channel {channel!r} of item {item_id} is {state!r}; only an unknown, "
                  "manual or failed channel is confirmed by a person").format(
                      channel=channel, item_id=item.id, state=pub.state),
                item_id=str(item.id), step=item.state, action="confirm")
        if attempt is not None and pub.attempts != attempt:
            message = _(
                "channel {channel!r} of item {item_id} was tried again after the attempt "
                "you checked (it is at attempt {actual}, not {attempt}); look at the "
                "platform again, then confirm attempt {actual}") if pub.attempts > attempt \
                else _("channel {channel!r} of item {item_id} is at attempt {actual}, and "
                       "there has been no attempt {attempt}; give the number `humasflow "
                       "status {item_id}` shows")
            raise Refused(message.format(channel=channel, item_id=item.id,
                                         actual=pub.attempts, attempt=attempt),
                          item_id=str(item.id), step=item.state, action="confirm")
        now = self.office.now()
        if not_posted:
            # A person found no post: what an earlier attempt saved (a published
            # container, a post id) is stale, and resuming from it would record a
            # post that is not there. The next attempt starts afresh.
            values: dict[str, Any] = {"state": "pending", "error_class": None,
                                      "error_message": None, "next_attempt_at": None,
                                      "progress": {}}
        else:
            values = {"state": "posted", "url": url, "platform_id": platform_id or url,
                      "error_class": None, "error_message": None, "next_attempt_at": None}
        # Bound to the attempt read above: should another worker try the channel again
        # meanwhile, the person's answer about the earlier attempt changes nothing.
        if self._settle(item, channel, values, actor.id, "channel_confirmed", now,
                        states=_OPEN_FOR_CONFIRM, attempt=pub.attempts) is None:
            now_at = self._publication(item, channel)
            raise Refused(
                _("channel {channel!r} of item {item_id} changed while it was being "
                  "confirmed (it is {state!r} at attempt {actual} now); nothing was "
                  "recorded: look at it again").format(
                      channel=channel, item_id=item.id, state=now_at.state,
                      actual=now_at.attempts),
                item_id=str(item.id), step=item.state, action="confirm")
        self._close_if_done(item.id, actor)
        if not_posted:
            return self._run(item.id, actor)
        return self._report(item.id)

    def retry(self, item_id: int, channel: str | None, actor: Actor) -> PostReport:
        """Post a failed channel again now (every failed channel of the item when
        ``channel`` is ``None``), once a person fixed the cause (a renewed token).

        Each channel is set back to ``pending`` with a ``channel_retry`` event naming who
        asked, and the item is posted on their authority, as :meth:`post` does.

        Raises:
            Refused: The channel is not failed (or the item has no failed channel), or
                the posting step's checks fail (step, role, approval).
        """
        item = self._check(item_id, actor, "retry")
        pubs = self.office.store.publications(self.office.org, item.id)
        if channel is None:
            names = sorted(n for n, p in pubs.items() if p.state == "failed")
            if not names:
                states = ", ".join(f"{n} {p.state}" for n, p in sorted(pubs.items()))
                raise Refused(_("item {id} has no failed channel to retry ({states}); "
                                "`humasflow status {id}` says what each one waits "
                                "for").format(id=item.id, states=states or _("none tried yet")),
                              item_id=str(item.id), step=item.state, action="retry")
        else:
            pub = self._publication(item, channel)
            if pub.state != "failed":
                raise Refused(_retry_refusal(item.id, channel, pub.state),
                              item_id=str(item.id), step=item.state, action="retry")
            names = [channel]
        self._refuse_inactive(item, "retry", self.office.channels(), pubs)
        now = self.office.now()
        for name in names:
            self._settle(item, name, {"state": "pending", "error_class": None,
                                      "error_message": None, "next_attempt_at": None},
                         actor.id, "channel_retry", now, states=("failed",),
                         # The record keeps its notes in English.
                         note="retried by a person after the cause was fixed")
        if item.post_at is None:
            # A held or cleared schedule: the person retrying answers for posting now.
            self._schedule(item, actor, now, "post")
        return self._run(item.id, actor)

    def skip(self, item_id: int, channel: str, actor: Actor, *, reason: str) -> PostReport:
        """Drop a channel from this item (the coordinator's decision, with a reason)."""
        item = self._item(item_id)
        sop = self.office.sop(item.sop_revision)
        approver = self.office.engine(item.sop_revision).approval_step.actor
        assert approver is not None
        if not actor.has_role(approver):
            raise RoleRequired(item_id=str(item.id), step=item.state, action="skip",
                               actor_id=actor.id, role=approver)
        if sop.step_for_output("publication") is None or item.state != _posting_key(self, item):
            raise NotAllowedNow(item_id=str(item.id), step=item.state, action="skip",
                                allowed=self.office.engine(item.sop_revision).allowed(item.state))
        if not reason.strip():
            raise ValueError(_("say why the channel is skipped ({option})").format(
                option="reason=..."))
        pub = self._publication(item, channel)
        if pub.state in ("posted", "in_flight"):
            raise Refused(_("channel {channel!r} of item {item_id} is {state!r}; it cannot be "
                            "skipped").format(channel=channel, item_id=item.id,
                                              state=pub.state),
                          item_id=str(item.id), step=item.state, action="skip")
        pubs = self.office.store.publications(self.office.org, item.id)
        others = [c for c in item.post.channels
                  if c != channel and (c not in pubs or pubs[c].state != "skipped")]
        if not others:
            raise Refused(
                _("channel {channel!r} is the last channel of item {item_id} that is not "
                  "skipped: skipping it would close the item posted nowhere, and that is a "
                  "cancel; cancel the item instead (`humasflow cancel {item_id}`)").format(
                      channel=channel, item_id=item.id),
                item_id=str(item.id), step=item.state, action="skip")
        self._settle(item, channel, {"state": "skipped", "next_attempt_at": None},
                     actor.id, "channel_skipped", self.office.now(), note=reason,
                     states=("pending", "failed", "unknown", "waiting"))
        # The coordinator does not hold the posting step's role, so the step is
        # completed on the authority of whoever had the item posted.
        try:
            self._close_if_done(item.id, self._posting_authority(item))
        except Refused as exc:  # the skip stands; the next post by the staff closes it
            self.office.report_failure(item.id, exc)
        return self._report(item.id)

    # -- the run --------------------------------------------------------------------------------

    def _run(self, item_id: int, actor: Actor, due: dt.datetime | None = None, *,
             checked: tuple[str, Mapping[str, ChannelConfig]] | None = None) -> PostReport:
        """Post the item's channels on the authority of ``actor``.

        ``due`` is given by a pass (:meth:`run_due`): then only what is due by then is
        done. Without it a person asked (post, confirm): every unknown channel that can
        be looked up is looked up now, whatever its backoff. ``checked`` is (content
        digest, channels) of a validation that found nothing wrong just before: the
        channels are posted with, and the post is not validated again while the item
        has that digest.
        """
        item, pubs, read = self._posting_state(item_id, channels=checked is None)
        channels = read if checked is None else checked[1]
        if item.state == "posted":
            return PostReport(item=item, publications=pubs)
        outcomes: dict[str, Publication] = {}

        def note(found: Publication | None) -> None:
            if found is not None:
                outcomes[found.channel] = found

        # The checks run on the snapshot whose content is posted, and every claim below
        # holds only while the stored item still has that state and content digest.
        self._checked(item, actor, "post")
        office, store = self.office, self.office.store
        now = office.now()
        asked = due is None
        due = due or now  # failed channels whose retry time has come by then are tried
        if any(name not in pubs for name in item.post.channels):
            store.ensure_publications(office.org, item.id, item.post.channels, now)
            pubs = store.publications(office.org, item.id)
        expired = [p for p in pubs.values() if p.state == "in_flight"
                   and p.lease_until is not None and p.lease_until < now]
        for stale in expired:
            look_up = now if self._can_reconcile(channels.get(stale.channel)) else None
            note(self._settle(item, stale.channel, {
                "state": "unknown", "error_class": "Interrupted",
                "error_message": f"the attempt by {stale.claimed_by} stopped without an "
                                 "answer; the post may or may not be on the platform",
                "next_attempt_at": look_up},
                actor.id, "channel_unknown", now, states=("in_flight",),
                worker=self.worker_id, guard=_still_expired(stale, now)))
        if expired:
            pubs = store.publications(office.org, item.id)
        written = bool(outcomes)
        for name in item.post.channels:
            record = pubs.get(name)
            if (name in channels and not channels[name].active and record is not None
                    and _claimable(record, due)):
                with _in_record_language():
                    inactive = str(ChannelInactive(channel=name, action="post",
                                                   item_id=str(item.id), step=item.state))
                written = True
                note(self._settle(item, name, {
                    "state": "failed", "error_class": "ChannelInactive",
                    "error_message": inactive, "next_attempt_at": None},
                    actor.id, "channel_failed", now, states=("pending", "failed"),
                    worker=self.worker_id))
        for name, pub in pubs.items():
            if pub.state != "unknown" or name not in channels:
                continue
            if asked or (pub.next_attempt_at is not None and pub.next_attempt_at <= due):
                written = True
                note(self._reconcile(item, channels[name], pub, actor))
        problems: dict[str, list[str]] = {}
        if checked is None or checked[0] != item.content_digest:
            with _in_record_language():  # what is wrong goes into the channels' records
                # Against the channels read above: the ones the attempts below post with.
                found = office.validate(item, channels)
            for problem in found:
                problems.setdefault(problem.channel, []).append(
                    f"{problem.field}: {problem.message}")
        targets = []
        # The records as read, unless this run changed some of them since.
        records = store.publications(office.org, item.id) if written else pubs
        for name in item.post.channels:
            record = records.get(name)
            if record is None or not _claimable(record, due):
                continue
            if name in problems:
                note(self._settle(item, name, {
                    "state": "failed", "error_class": "ContentRejected",
                    "error_message": "the post breaks the channel's "
                                     f"rules: {'; '.join(problems[name])}",
                    "next_attempt_at": None},
                    actor.id, "channel_failed", now, states=("pending", "failed"),
                    worker=self.worker_id))
                continue
            targets.append(channels[name])
        # Every target claimed in one transaction, before the first platform call.
        now = office.now()
        claimed = store.claim_channels(office.org, item.id, [c.name for c in targets],
                                       self.worker_id, now, now + self.lease,
                                       gate=(item.state, item.content_digest), due=due)
        attempts = [(c, claimed[c.name], _Claim(office, item.id, c.name, self.worker_id,
                                                 claimed[c.name].attempts, self.lease))
                    for c in targets if c.name in claimed]
        last = _LastOutcome(len(attempts), actor)
        try:
            # Each claim is kept alive from now on, also while it waits for a thread.
            for _channel, _pub, claim in attempts:
                claim.keep_alive(self.heartbeat)
            if len(attempts) == 1 or self.max_threads <= 1 or _in_memory(office):
                for channel, pub, claim in attempts:
                    note(self._attempt(item, channel, pub, claim, actor, last))
            elif attempts:
                # The calling thread posts the first channel itself, a thread each of the
                # others (at most max_threads at once in all).
                (channel, pub, claim), others = attempts[0], attempts[1:]
                with ThreadPoolExecutor(max_workers=min(len(others), self.max_threads - 1),
                                        thread_name_prefix="humasflow-post") as pool:
                    futures = [pool.submit(self._attempt, item, *other, actor, last)
                               for other in others]
                    note(self._attempt(item, channel, pub, claim, actor, last))
                    for future in futures:
                        note(future.result())
        finally:
            for _channel, _pub, claim in attempts:
                claim.let_go()
            if last.closed is not None:
                # Closed with the last outcome, in its transaction: the close's hooks run
                # here, in the calling thread, once every attempt ran its own (as after
                # _close), even if an attempt raised after the close committed.
                recorded, pubs, event, entered = last.closed
                office.recorded(recorded, event, entered)
                done = attrs.evolve(recorded, post_at=None, post_by=None)
                office.notify("item_posted", item=done, publications=pubs)
        if last.closed is not None:
            return PostReport(item=done, publications=pubs, outcomes=outcomes, closed=True)
        closed, item, pubs = self._close(item.id, actor)
        return PostReport(item=item, publications=pubs, outcomes=outcomes, closed=closed)

    def _attempt(self, item: ContentItem, channel: ChannelConfig, pub: Publication,
                 claim: _Claim, actor: Actor,
                 last: _LastOutcome | None = None) -> Publication | None:
        """Post one claimed channel (``pub``: its record in flight, kept alive by the
        caller); return its record as this attempt left it, or ``None`` when this worker
        recorded nothing (taken over). ``last`` counts the attempts of the run, each
        once: the last to record its outcome may close the item with it."""
        office = self.office
        progress = Progress(office, item.id, channel.name, self.worker_id, pub.progress,
                            claim=claim)
        policy = RetryPolicy.from_settings(channel.settings.get("retry"))
        # Every outcome below is recorded: its message is made in the record's language.
        with contextlib.ExitStack() as attempt, _in_record_language():
            attempt.callback(claim.let_go)  # the attempt's heartbeat ends with it
            try:
                # Nothing is sent before publish(): a failure while preparing (a credential
                # variable not set, a media host that is down) is a failed attempt, never
                # an unknown outcome left in flight.
                post = office.post_for(item, channel.name)
                publisher = office.publisher(channel)
            except HumasflowError as exc:  # e.g. a credential variable is not set
                values: dict[str, Any] | None = {
                    "state": "failed", "error_class": type(exc).__name__,
                    "error_message": str(exc), "next_attempt_at": None}
                action = "channel_failed"
            except Exception as exc:  # recorded on the channel, retried later
                with self._rng_lock:
                    retry_at = policy.next_attempt(PlatformError(str(exc)), pub.attempts,
                                                   office.now(), self.rng)
                values = {"state": "failed", "error_class": type(exc).__name__,
                          "error_message": f"{exc} (while preparing the post; nothing was "
                                           "sent)",
                          "next_attempt_at": retry_at}
                action = "channel_failed"
            else:
                values, action = self._publish(item, channel, publisher, post, progress,
                                               pub.attempts, policy)
        if values is None or (claim.lost.is_set() and values["state"] != "posted"):
            # Taken over: the new owner's record stands. Only a post this attempt made
            # is worth recording late (over an unknown nobody has settled yet).
            log.warning("worker %s stopped its attempt at channel %r of item %s: its claim "
                        "was taken over; nothing recorded", self.worker_id, channel.name,
                        item.id)
            if last is not None:
                last.one_done()
            return None
        values.update(claimed_by=None, lease_until=None)
        # Only while no later attempt was claimed since (by any worker, this one's id
        # included).
        recorded = self._settle(item, channel.name, values, actor.id, action, office.now(),
                                states=("in_flight", "unknown"), claimed_by=self.worker_id,
                                worker=self.worker_id, attempt=pub.attempts, closing=last)
        if not recorded:
            log.warning("worker %s: the outcome %r of channel %r of item %s was not recorded: "
                        "the channel was taken over meanwhile", self.worker_id,
                        values["state"], channel.name, item.id)
        return recorded

    def _publish(self, item: ContentItem, channel: ChannelConfig, publisher: Any, post: Any,
                 progress: Progress, attempts: int,
                 policy: RetryPolicy) -> tuple[dict[str, Any] | None, str]:
        """Make the platform call; return the channel's new values and the event action
        (no values: the claim was lost, nothing is to be recorded)."""
        try:
            receipt = publisher.publish(post, progress)
        except ClaimLost:
            return None, ""
        except WaitingForPerson as exc:
            return {"state": "waiting", "error_class": type(exc).__name__,
                    "error_message": str(exc), "next_attempt_at": None}, "channel_waiting"
        except OutcomeUnknown as exc:
            return {"state": "unknown", "error_class": type(exc).__name__,
                    "error_message": str(exc),
                    "next_attempt_at": self._look_up_at(publisher)}, "channel_unknown"
        except PublishError as exc:
            with self._rng_lock:
                retry_at = policy.next_attempt(exc, attempts, self.office.now(), self.rng)
            return {"state": "failed", "error_class": type(exc).__name__,
                    "error_message": _what_to_do(exc, channel, item.id, attempts, policy,
                                                 retry_at),
                    "next_attempt_at": retry_at}, "channel_failed"
        except HumasflowError as exc:
            return {"state": "failed", "error_class": type(exc).__name__,
                    "error_message": str(exc), "next_attempt_at": None}, "channel_failed"
        except Exception as exc:  # after sending, a crash may have posted
            return {"state": "unknown", "error_class": type(exc).__name__,
                    "error_message": f"{exc}; the post may or may not be on the platform",
                    "next_attempt_at": self._look_up_at(publisher)}, "channel_unknown"
        return {"state": "posted", "platform_id": receipt.platform_id, "url": receipt.url,
                "error_class": None, "error_message": None}, "channel_posted"

    def _look_up_at(self, publisher: Any) -> dt.datetime | None:
        """When to look up an unknown outcome: at the next pass if the publisher can,
        else never (a person confirms)."""
        return self.office.now() if getattr(publisher, "reconcile", None) else None

    def _can_reconcile(self, channel: ChannelConfig | None) -> bool:
        if channel is None:
            return False
        try:
            publisher = self.office.publisher(channel)
        except HumasflowError:
            return True  # it cannot be built now; the look-up pass retries with a backoff
        return getattr(publisher, "reconcile", None) is not None

    def _reconcile(self, item: ContentItem, channel: ChannelConfig, pub: Publication,
                   actor: Actor) -> Publication | None:
        """Look an unknown channel up; return its record if the answer settled it."""
        office = self.office
        policy = _policy(channel)
        try:
            publisher = office.publisher(channel)
        except HumasflowError as exc:  # e.g. a credential variable is not set
            self._look_up_later(item, channel.name, pub, policy, f"cannot look it up: {exc}")
            return None
        reconcile = getattr(publisher, "reconcile", None)
        if reconcile is None:
            # This platform cannot be searched: a person confirms. No more passes for it.
            if pub.next_attempt_at is not None:
                self._reschedule(item, channel.name, None)
            return None
        progress = Progress(office, item.id, channel.name, pub.claimed_by or self.worker_id,
                            pub.progress)
        try:
            post = office.post_for(item, channel.name)
            receipt = reconcile(post, progress)
        except Exception as exc:  # still unknown; a later pass or a person decides
            self._look_up_later(item, channel.name, pub, policy, str(exc))
            return None
        now = office.now()
        if receipt is None:
            values: dict[str, Any] = {"state": "pending", "error_class": None,
                                      "error_message": None, "next_attempt_at": None}
            action = "channel_absent"
        else:
            values = {"state": "posted", "platform_id": receipt.platform_id,
                      "url": receipt.url, "error_class": None, "error_message": None,
                      "next_attempt_at": None}
            action = "channel_posted"
        # The answer is about the attempt looked up: should another worker have found
        # it absent and tried again meanwhile, the record is that attempt's, not ours.
        return self._settle(item, channel.name, values, actor.id, action, now,
                            states=("unknown",), note="reconciled with the platform",
                            worker=self.worker_id, attempt=pub.attempts)

    def _look_up_later(self, item: ContentItem, channel: str, pub: Publication,
                       policy: RetryPolicy, why: str) -> None:
        """Schedule the next look-up of an unknown channel, each wait twice the last."""
        now = self.office.now()
        last = dt.timedelta(0)
        if pub.next_attempt_at is not None and pub.updated_at is not None:
            last = max(pub.next_attempt_at - pub.updated_at, last)
        wait = min(policy.max_delay, max(policy.base_delay, 2 * last))
        log.info("channel %r of item %s is still unknown (%s); looked up again at %s",
                 channel, item.id, why, (now + wait).isoformat())
        self._reschedule(item, channel, now + wait)

    def _reschedule(self, item: ContentItem, channel: str, when: dt.datetime | None) -> None:
        """Set when an unknown channel is looked up next (no event: nothing happened)."""
        store = self.office.store
        with store.writing() as conn:
            store.update_publication(conn, self.office.org, item.id, channel,
                                     {"next_attempt_at": when,
                                      "updated_at": self.office.now()},
                                     states=("unknown",))

    # -- recording ------------------------------------------------------------------------------

    def _settle(self, item: ContentItem, channel: str, values: Mapping[str, Any],
                actor_id: str, action: str, now: dt.datetime, *, note: str = "",
                states: tuple[str, ...] = (), claimed_by: str | None = None,
                worker: str | None = None, attempt: int | None = None,
                guard: Callable[[Publication], bool] | None = None,
                closing: _LastOutcome | None = None) -> Publication | None:
        """Change one channel's record and append the matching event, in one transaction;
        return the record as changed, or ``None`` if it was not changed.

        The record changes only if it is in one of ``states``, held by ``claimed_by``, at
        attempt number ``attempt``, and (checked with the record locked) ``guard``
        accepts it. The event's actor is
        ``actor_id``, the person on whose authority it happened; ``worker`` (the worker
        that did it) goes into the event's data.

        Text from outside (a platform's or publisher's message, a URL, a person's note)
        is scrubbed of secrets here, before the record or the event holds it.

        ``closing`` counts this run's attempts (this one included): if this outcome is
        the run's last and every channel is then settled, the posting step is completed
        in the same transaction (its hooks are the run's to call, :meth:`_run`). Should
        that part or the commit fail, the outcome is recorded alone (and the run closes
        the item as usual, :meth:`_close`).
        """
        values = {k: scrub(v) if k in _TEXT_FROM_OUTSIDE and isinstance(v, str) else v
                  for k, v in values.items()}
        note = scrub(note)
        store = self.office.store
        closed = None
        tried = False

        def alone() -> Publication | None:
            """The outcome recorded on its own, after the close with it failed."""
            return self._settle(item, channel, values, actor_id, action, now, note=note,
                                states=states, claimed_by=claimed_by, worker=worker,
                                attempt=attempt)

        try:
            with store.writing() as conn:
                if guard is not None:
                    current = store.publication_for_update(conn, self.office.org, item.id,
                                                           channel)
                    if current is None or not guard(current):
                        return None
                pub = store.settle_publication(conn, self.office.org, item.id, channel,
                                               {**values, "updated_at": now}, states=states,
                                               claimed_by=claimed_by, attempt=attempt)
                if pub is None:
                    if closing is not None:
                        closing.one_done()
                    return None
                data = {"channel": channel, **{k: plain(v) for k, v in values.items()
                                               if k in ("state", "platform_id", "url",
                                                        "error_class", "error_message",
                                                        "next_attempt_at")}}
                if worker is not None:
                    data["worker"] = worker
                sealed = store.append_item_event(conn, Event(
                    org=self.office.org, stream="", seq=0, at=now, actor=actor_id,
                    action=action, from_state=item.state, to_state=item.state, note=note,
                    data=data), item.id)
                # The append locked the item's row (SQLite: the write lock): every attempt
                # counted before this one has committed its outcome.
                if closing is not None and closing.one_done() and pub.is_settled:
                    tried = True
                    closed = self._close_in(conn, item.id, closing.actor)
        except Exception:
            if not tried:
                raise
            # The close failed, or the transaction's commit did: the outcome is recorded
            # alone, so that it is not lost with the close.
            log.warning("item %s could not be closed with the outcome of channel %r; the "
                        "outcome is recorded alone", item.id, channel, exc_info=True)
            recorded = alone()
            if recorded is None:
                # Nothing to record any more (a commit that failed after it applied, or
                # a takeover): the failure is the caller's to see.
                raise
            return recorded
        except KeyboardInterrupt:
            if tried:  # Ctrl-C while closing: the outcome first, then the interrupt
                alone()
            raise
        fresh = attrs.evolve(item, version=sealed.seq)
        hook = {"posted": "channel_posted", "failed": "channel_failed",
                "unknown": "channel_unknown", "waiting": "channel_unknown"}.get(pub.state)
        if hook is not None:
            self.office.notify(hook, item=fresh, publication=pub)
        if closed is not None:  # committed; the run runs the close's hooks (_run)
            assert closing is not None
            closing.closed = closed
        return pub

    def _close_in(self, conn: Any, item_id: int, actor: Actor,
                  ) -> tuple[ContentItem, dict[str, Publication], Event, Any] | None:
        """Complete the posting step inside ``conn``'s write transaction, which holds the
        item's row, if every channel is settled: the item as recorded, its records, the
        event and the step entered; ``None`` if it is not done (or already closed)."""
        office, store = self.office, self.office.store
        found = store.posting_state(office.org, item_id, conn)
        assert found is not None
        item, head, pubs = found
        if item.state == "posted" or not item.post.channels or not all(
                c in pubs and pubs[c].is_settled for c in item.post.channels):
            return None
        engine = office.engine(item.sop_revision)
        move = engine.run(item, "complete", actor)
        results = {n: {"state": p.state, "id": p.platform_id, "url": p.url}
                   for n, p in pubs.items()}
        recorded, event, entered = office.write(conn, engine, item, head, move, actor,
                                                {"channels": results})
        return recorded, pubs, event, entered

    def _schedule(self, item: ContentItem, actor: Actor, when: dt.datetime | None,
                  action: str, *, records: bool = False) -> None:
        """Set (``when``) or clear (``None``) the posting time, with its event; a time
        replaced is kept in the event as ``previous``. With ``records``, the channels
        that have no record yet get a ``pending`` one in the same transaction."""
        store = self.office.store
        data: dict[str, Any] = {}
        if when is not None:
            data["post_at"] = when.astimezone(dt.timezone.utc).isoformat()
        if item.post_at is not None:
            data["previous"] = item.post_at.astimezone(dt.timezone.utc).isoformat()
        with store.writing() as conn:
            head = store.set_post_at(conn, self.office.org, item.id, when,
                                     actor.id if when is not None else None,
                                     gate=(item.state, item.content_digest))
            if records:  # the item's row is locked by the update above
                store.add_publications(conn, self.office.org, item.id, item.post.channels,
                                       self.office.now())
            store.append_item_event(conn, Event(
                org=self.office.org, stream="", seq=0, at=self.office.now(), actor=actor.id,
                action=action, from_state=item.state, to_state=item.state,
                data=data), item.id, head=head)

    def _close_if_done(self, item_id: int, actor: Actor) -> bool:
        """Complete the posting step if every channel is settled; ``True`` if this call
        closed the item (not if someone else had, or it is not done)."""
        return self._close(item_id, actor)[0]

    def _close(self, item_id: int, actor: Actor,
               ) -> tuple[bool, ContentItem, dict[str, Publication]]:
        """:meth:`_close_if_done`, and the item and its records as they stand after it."""
        office, store = self.office, self.office.store
        for _round in range(5):
            found = store.posting_state(office.org, item_id)
            assert found is not None
            item, head, pubs = found
            if item.state == "posted" or not item.post.channels or not all(
                    c in pubs and pubs[c].is_settled for c in item.post.channels):
                return False, item, pubs
            engine = office.engine(item.sop_revision)
            try:
                move = engine.run(item, "complete", actor)
                results = {n: {"state": p.state, "id": p.platform_id, "url": p.url}
                           for n, p in pubs.items()}
                closed = office.record(engine, item, head, move, actor, {"channels": results})
            except ConflictError:
                continue  # another worker recorded something meanwhile: look again
            # Leaving the posting step ends its schedule: the store cleared it with the move.
            closed = attrs.evolve(closed, post_at=None, post_by=None)
            # A settled record (posted, skipped) stays as it is: the records read above
            # are the ones the item closed with.
            office.notify("item_posted", item=closed, publications=pubs)
            return True, closed, pubs
        return False, item, pubs

    # -- helpers ----------------------------------------------------------------------------------

    def _item(self, item_id: int) -> ContentItem:
        return self.office.item(item_id)

    def _check(self, item_id: int, actor: Actor, action: str) -> ContentItem:
        """The posting step's checks (step, role, fresh approval) as a dry run."""
        return self._checked(self._item(item_id), actor, action)

    def _checked(self, item: ContentItem, actor: Actor, action: str) -> ContentItem:
        """Run the posting step's checks on the snapshot ``item``; return it."""
        engine = self.office.engine(item.sop_revision)
        try:
            engine.run(item, "complete", actor, label=action)
        except Refused as exc:
            if isinstance(exc, NotAllowedNow) or item.state != _posting_key(self, item):
                raise NotAllowedNow(item_id=str(item.id), step=item.state, action=action,
                                    allowed=engine.allowed(item.state)) from exc
            raise
        if item.state != _posting_key(self, item):
            raise NotAllowedNow(item_id=str(item.id), step=item.state, action=action,
                                allowed=engine.allowed(item.state))
        return item

    def _refuse_inactive(self, item: ContentItem, action: str,
                         channels: Mapping[str, ChannelConfig],
                         pubs: Mapping[str, Publication]) -> None:
        """Refuse to post to a deactivated channel the item still has to go to (the
        organisation's ``channels`` and the item's records ``pubs`` as read)."""
        for name in item.post.channels:
            if name in pubs and pubs[name].is_settled:
                continue
            if name in channels and not channels[name].active:
                raise ChannelInactive(channel=name, action=action, item_id=str(item.id),
                                      step=item.state)

    def _authority_lost(self, item: ContentItem, by: str | None) -> str | None:
        """Why whoever had the item posted can no longer post it, or ``None``.

        The reason goes into the record (the hold's event and the channels' records), so
        it is written in the record's language, English, and not translated.
        """
        step = self.office.sop(item.sop_revision).step_for_output("publication")
        role = step.actor if step is not None else None
        actor = self.office.store.actor(self.office.org, by or "")
        if actor is None:
            return f"{by!r}, who scheduled the post, is not an actor of the organisation"
        if not actor.active:
            return f"{by!r}, who scheduled the post, was deactivated"
        if role is not None and not actor.has_role(role):
            return (f"{by!r}, who scheduled the post, no longer holds the role {role!r} "
                    "of the posting step")
        return None

    def _hold(self, item: ContentItem, by: str | None, reason: str) -> None:
        """Stop a schedule whose authority is gone, recording why on the item and on
        each channel still to post."""
        office, store = self.office, self.office.store
        now = office.now()
        message = (f"posting held: {reason}; someone with the role posts or schedules it "
                   "again")
        store.ensure_publications(office.org, item.id, item.post.channels, now)
        with store.writing() as conn:
            store.set_post_at(conn, office.org, item.id, None, None)
            for name, pub in store.publications(office.org, item.id, conn).items():
                if pub.state in ("pending", "failed"):
                    store.update_publication(conn, office.org, item.id, name, {
                        "error_class": "PostingHeld", "error_message": message,
                        "next_attempt_at": None, "updated_at": now},
                        states=("pending", "failed"))
            store.append_item_event(conn, Event(
                org=office.org, stream="", seq=0, at=now, actor=by or "-",
                action="schedule_held", from_state=item.state, to_state=item.state,
                note=message, data={"scheduled_by": by, "reason": reason}), item.id)
        log.warning("item %s of %s: %s", item.id, office.org, message)

    def _posting_authority(self, item: ContentItem) -> Actor:
        """Who had the item posted (the last ``post`` or ``schedule``), else its assignee."""
        for event in reversed(self.office.history(item.id)):
            if event.action in ("post", "schedule"):
                return self.office.actor(event.actor)
        return self.office.actor(item.assignee or item.created_by)

    def _publication(self, item: ContentItem, channel: str) -> Publication:
        pub = self.office.store.publications(self.office.org, item.id).get(channel)
        if pub is None:
            if item.post.channels:
                message = _("item {item_id} has no record for channel {channel!r}; its "
                            "channels: {channels}")
            else:
                message = _("item {item_id} has no record for channel {channel!r}; its "
                            "channels: none")
            raise Refused(message.format(item_id=item.id, channel=channel,
                                         channels=", ".join(item.post.channels)),
                          item_id=str(item.id), step=item.state, action="confirm")
        return pub

    def _report(self, item_id: int) -> PostReport:
        item, pubs, _channels = self._posting_state(item_id, channels=False)
        return PostReport(item=item, publications=pubs)

    def _posting_state(self, item_id: int, *, channels: bool = True,
                       ) -> tuple[ContentItem, dict[str, Publication],
                                  dict[str, ChannelConfig]]:
        """The item, its records and (with ``channels``) the organisation's channels,
        read in one transaction.

        Raises:
            ItemNotFound: The organisation has no such item.
        """
        office, store = self.office, self.office.store
        with store.reading() as conn:
            found = store.posting_state(office.org, item_id, conn)
            configured = store.channels(office.org, conn) if channels else {}
        if found is None:
            raise ItemNotFound(str(item_id), office.org)
        return found[0], found[2], configured


def _posting_key(dispatcher: Dispatcher, item: ContentItem) -> str:
    step = dispatcher.office.sop(item.sop_revision).step_for_output("publication")
    assert step is not None
    return step.key


def _in_memory(office: PostingOffice) -> bool:
    """Whether the office's store is an in-memory SQLite database (one shared connection)."""
    return office.store.engine.url.database in (None, "", ":memory:")


def _policy(channel: ChannelConfig) -> RetryPolicy:
    try:
        return RetryPolicy.from_settings(channel.settings.get("retry"))
    except HumasflowError:
        return RetryPolicy()


def _still_expired(stale: Publication, now: dt.datetime) -> Callable[[Publication], bool]:
    """Accept the record only if it is still the attempt whose lease ran out (a heartbeat
    may have renewed it since it was read)."""
    def guard(pub: Publication) -> bool:
        return (pub.state == "in_flight" and pub.claimed_by == stale.claimed_by
                and pub.attempts == stale.attempts
                and pub.lease_until is not None and pub.lease_until < now)
    return guard


def _claimable(pub: Publication, now: dt.datetime) -> bool:
    if pub.state == "pending":
        return True
    return pub.state == "failed" and pub.next_attempt_at is not None and pub.next_attempt_at <= now


def _retry_refusal(item_id: int, channel: str, state: str) -> str:
    """Why a channel in ``state`` is not retried, and what to do instead."""
    if state == "unknown":
        return _("channel {channel!r} of item {id} is 'unknown': the last attempt may have "
                 "posted it, so it is never retried blindly; check the platform, then "
                 "`humasflow confirm {id} {channel} --url URL` or `--not-posted`").format(
                     channel=channel, id=item_id)
    if state == "waiting":
        return _("channel {channel!r} of item {id} is 'waiting' for a person to post it by "
                 "hand; then `humasflow confirm {id} {channel} --url URL`").format(
                     channel=channel, id=item_id)
    if state == "pending":
        return _("channel {channel!r} of item {id} is 'pending': it has not failed; post it "
                 "with `humasflow publish {id}`").format(channel=channel, id=item_id)
    return _("channel {channel!r} of item {id} is {state!r}; only a failed channel is "
             "retried").format(channel=channel, id=item_id, state=state)


def _what_to_do(error: PublishError, channel: ChannelConfig, item_id: int, attempts: int,
                policy: RetryPolicy, retry_at: dt.datetime | None) -> str:
    """The error's message, ending with what a person should do when it is not retried.

    It is the channel's recorded ``error_message``: made in the record's language (see
    :func:`_in_record_language`), so its own words are not marked for translation.
    """
    message = str(error)
    if retry_at is not None:
        return message
    again = f"humasflow retry {item_id} {channel.name} --as <your id>"
    if isinstance(error, AuthenticationFailed):
        names = [error.credential] if error.credential else sorted(channel.credentials)
        variables = [channel.credentials[n] for n in names if n in channel.credentials]
        if variables and all(v in message for v in variables):
            return message  # the publisher already said which one
        which = ", ".join(f"{n!r} (environment variable {channel.credentials[n]})"
                          if n in channel.credentials else repr(n) for n in names)
        what = f"the credential {which}" if which else "the credentials"
        return f"{message}; renew {what} of channel {channel.name!r}, then post again: {again}"
    if isinstance(error, RateLimited) and error.reset_at is not None:
        return (f"{message}; the limit resets at {error.reset_at.isoformat()}, later than the "
                f"longest wait ({policy.max_reset_wait}); post again then: {again}")
    if error.retryable:
        return f"{message}; gave up after {attempts} attempts; to try again: {again}"
    return message
