"""The dispatcher: posts an item to its channels without ever posting one twice.

For each target channel the dispatcher keeps a :class:`~humasflow.models.Publication`
record and follows the publishing safety contract:

1. An in-flight attempt whose worker stopped answering (its lease ran out) becomes
   ``unknown``: the request may have reached the platform.
2. An ``unknown`` channel is reconciled: the publisher looks the post up. Found → it is
   ``posted``; confirmed absent → ``pending`` again; can't tell → it waits for a person
   (:meth:`Dispatcher.confirm`). It is never re-posted blindly.
3. A channel is *claimed* (recorded in flight, exclusively) before the platform call,
   and its outcome is recorded, with an event in the item's record, after it.
4. The channels of one item are posted concurrently, each in its own thread.
5. When every channel is posted (or skipped by the coordinator), the item's posting step
   completes and the item is closed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import socket
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import attrs

from humasflow.errors import (
    AuthenticationFailed,
    ConflictError,
    ContentInvalid,
    HumasflowError,
    NotAllowedNow,
    OutcomeUnknown,
    PlatformError,
    PublishError,
    RateLimited,
    Refused,
    RoleRequired,
    WaitingForPerson,
)
from humasflow.models import Actor, ChannelConfig, ContentItem, Event, Publication
from humasflow.publishing.retry import RetryPolicy

if TYPE_CHECKING:
    from humasflow.office import Office

__all__ = ["Dispatcher", "PostReport", "Progress"]

log = logging.getLogger("humasflow")

_OPEN_FOR_CONFIRM = ("unknown", "waiting", "failed")


@attrs.frozen
class PostReport:
    """What a posting run did, channel by channel."""

    item: ContentItem
    publications: Mapping[str, Publication]

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


class Progress(Mapping[str, Any]):
    """What a multi-step publisher has done so far for one channel, kept durably.

    A publisher calls :meth:`save` after each step that creates something on the
    platform (an uploaded media id, an Instagram container id); the value is committed
    before the next call, so reconciliation after a crash can find it.
    """

    def __init__(self, office: Office, item_id: int, channel: str, worker: str,
                 initial: Mapping[str, Any]) -> None:
        self._office = office
        self._item_id = item_id
        self._channel = channel
        self._worker = worker
        self._data = dict(initial)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def save(self, **values: Any) -> None:
        """Record ``values`` durably at once."""
        self._data.update(values)
        self._office.store.save_progress(self._office.org, self._item_id, self._channel,
                                         self._worker, self._data)


class Dispatcher:
    """Posts items for one office.

    Args:
        office: The office whose items are posted.
        worker_id: Names this process in claims (default: host and process id).
        max_threads: The most channels posted at once.
        lease: How long an attempt may run before it counts as interrupted.
        rng: Random source for retry jitter (tests pass a seeded one).
    """

    def __init__(
        self,
        office: Office,
        *,
        worker_id: str | None = None,
        max_threads: int = 8,
        lease: dt.timedelta = dt.timedelta(minutes=15),
        rng: random.Random | None = None,
    ) -> None:
        self.office = office
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.max_threads = max_threads
        self.lease = lease
        self.rng = rng or random.Random()
        self._rng_lock = threading.Lock()

    # -- entry points ---------------------------------------------------------------------

    def post(self, item_id: int, actor: Actor) -> PostReport:
        """Post now (the posting step), on the authority of ``actor``.

        Raises:
            Refused: Not at the posting step, wrong role, stale approval, or the post
                breaks a channel's rules (:class:`ContentInvalid`).
        """
        item = self._check(item_id, actor, "post")
        problems = self.office.validate(item)
        if problems:
            raise ContentInvalid(item_id=str(item.id), step=item.state, action="post",
                                 problems=problems)
        self._schedule(item, actor, self.office._now(), "post")
        return self._run(item.id, actor)

    def schedule(self, item_id: int, when: dt.datetime, actor: Actor) -> ContentItem:
        """Have the item posted at ``when`` by :meth:`run_due` (a worker or cron)."""
        if when.tzinfo is None:
            raise ValueError("the posting time is naive; give an aware datetime")
        item = self._check(item_id, actor, "schedule")
        self._schedule(item, actor, when, "schedule")
        return self.office.item(item.id)

    def run_due(self, now: dt.datetime | None = None, *, limit: int = 100) -> list[PostReport]:
        """Post every item of the office whose posting time has come; retry due channels."""
        now = now or self.office._now()
        reports = []
        for _, item_id, by in self.office.store.due_items(self.office.org, now, limit):
            try:
                actor = self.office.actor(by)
                reports.append(self._run(item_id, actor, due=now))
            except HumasflowError as exc:
                # One bad item must not stop the others; its state says what is wrong.
                self.office._log_failure(item_id, exc)
            except Exception:  # e.g. a media host that is down: tried on the next run
                log.exception("item %s of %s could not be posted; it is tried again on the "
                              "next run", item_id, self.office.org)
        return reports

    # -- a person's answers -----------------------------------------------------------------

    def confirm(self, item_id: int, channel: str, actor: Actor, *, url: str | None = None,
                platform_id: str | None = None, not_posted: bool = False) -> PostReport:
        """Settle a channel a person checked: posted at ``url``, or ``not_posted``.

        Raises:
            Refused: The channel's state needs no confirmation, or the wrong role.
        """
        item = self._check(item_id, actor, "confirm")
        if not_posted == bool(url or platform_id):
            raise ValueError("give either the post's url (or platform id) or not_posted=True")
        pub = self._publication(item, channel)
        if pub.state not in _OPEN_FOR_CONFIRM:
            raise Refused(
                f"channel {channel!r} of item {item.id} is {pub.state!r}; only an unknown, "
                "manual or failed channel is confirmed by a person",
                item_id=str(item.id), step=item.state, action="confirm")
        now = self.office._now()
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
        self._settle(item, channel, values, actor.id, "channel_confirmed", now,
                     states=_OPEN_FOR_CONFIRM)
        self._close_if_done(item.id, actor)
        if not_posted:
            return self._run(item.id, actor)
        return self._report(item.id)

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
            raise ValueError("say why the channel is skipped (reason=...)")
        pub = self._publication(item, channel)
        if pub.state in ("posted", "in_flight"):
            raise Refused(f"channel {channel!r} of item {item.id} is {pub.state!r}; "
                          "it cannot be skipped", item_id=str(item.id), step=item.state,
                          action="skip")
        self._settle(item, channel, {"state": "skipped", "next_attempt_at": None},
                     actor.id, "channel_skipped", self.office._now(), note=reason,
                     states=("pending", "failed", "unknown", "waiting"))
        # The coordinator does not hold the posting step's role, so the step is
        # completed on the authority of whoever had the item posted.
        try:
            self._close_if_done(item.id, self._posting_authority(item))
        except Refused as exc:  # the skip stands; the next post by the staff closes it
            self.office._log_failure(item.id, exc)
        return self._report(item.id)

    # -- the run --------------------------------------------------------------------------------

    def _run(self, item_id: int, actor: Actor, due: dt.datetime | None = None) -> PostReport:
        item = self._item(item_id)
        if item.state == "posted":
            return self._report(item.id)
        office, store = self.office, self.office.store
        now = office._now()
        due = due or now  # failed channels whose retry time has come by then are tried
        store.ensure_publications(office.org, item.id, item.post.channels, now)
        for stale in store.expired_leases(office.org, now, item.id):
            self._settle(item, stale.channel, {
                "state": "unknown", "error_class": "Interrupted",
                "error_message": f"the attempt by {stale.claimed_by} stopped without an "
                                 "answer; the post may or may not be on the platform"},
                self.worker_id, "channel_unknown", now, states=("in_flight",))
        channels = office.channels()
        pubs = store.publications(office.org, item.id)
        for name, pub in pubs.items():
            if pub.state == "unknown" and name in channels:
                self._reconcile(item, channels[name], pub)
        problems: dict[str, list[str]] = {}
        for problem in office.validate(item):
            problems.setdefault(problem.channel, []).append(f"{problem.field}: {problem.message}")
        targets = []
        records = store.publications(office.org, item.id)
        for name in item.post.channels:
            record = records.get(name)
            if record is None or not _claimable(record, due):
                continue
            if name in problems:
                self._settle(item, name, {"state": "failed", "error_class": "ContentRejected",
                                          "error_message": "the post breaks the channel's "
                                          f"rules: {'; '.join(problems[name])}",
                                          "next_attempt_at": None},
                             self.worker_id, "channel_failed", now,
                             states=("pending", "failed"))
                continue
            targets.append(channels[name])
        if len(targets) == 1 or office.store.engine.url.database in (None, "", ":memory:"):
            for channel in targets:
                self._attempt(item, channel, due)
        elif targets:
            with ThreadPoolExecutor(max_workers=min(len(targets), self.max_threads),
                                    thread_name_prefix="humasflow-post") as pool:
                for future in [pool.submit(self._attempt, item, c, due) for c in targets]:
                    future.result()
        self._close_if_done(item.id, actor)
        return self._report(item.id)

    def _attempt(self, item: ContentItem, channel: ChannelConfig,
                 due: dt.datetime | None = None) -> None:
        office = self.office
        now = office._now()
        pub = office.store.claim(office.org, item.id, channel.name, self.worker_id, now,
                                 now + self.lease, due=due)
        if pub is None:
            return  # another worker holds it, or it is not due
        progress = Progress(office, item.id, channel.name, self.worker_id, pub.progress)
        policy = RetryPolicy.from_settings(channel.settings.get("retry"))
        try:
            # Nothing is sent before publish(): a failure while preparing (a credential
            # variable not set, a media host that is down) is a failed attempt, never an
            # unknown outcome left in flight.
            post = office.post_for(item, channel.name)
            publisher = office._publisher(channel)
        except HumasflowError as exc:  # e.g. a credential variable is not set
            values: dict[str, Any] = {"state": "failed", "error_class": type(exc).__name__,
                                      "error_message": str(exc), "next_attempt_at": None}
            action = "channel_failed"
        except Exception as exc:  # recorded on the channel, retried later
            with self._rng_lock:
                retry_at = policy.next_attempt(PlatformError(str(exc)), pub.attempts,
                                               office._now(), self.rng)
            values = {"state": "failed", "error_class": type(exc).__name__,
                      "error_message": f"{exc} (while preparing the post; nothing was sent)",
                      "next_attempt_at": retry_at}
            action = "channel_failed"
        else:
            values, action = self._publish(item, channel, publisher, post, progress,
                                           pub.attempts, policy)
        values.update(claimed_by=None, lease_until=None)
        self._settle(item, channel.name, values, self.worker_id, action, office._now(),
                     states=("in_flight", "unknown"), claimed_by=self.worker_id)

    def _publish(self, item: ContentItem, channel: ChannelConfig, publisher: Any, post: Any,
                 progress: Progress, attempts: int,
                 policy: RetryPolicy) -> tuple[dict[str, Any], str]:
        """Make the platform call; return the channel's new values and the event action."""
        try:
            receipt = publisher.publish(post, progress)
        except WaitingForPerson as exc:
            return {"state": "waiting", "error_class": type(exc).__name__,
                    "error_message": str(exc)}, "channel_waiting"
        except OutcomeUnknown as exc:
            return {"state": "unknown", "error_class": type(exc).__name__,
                    "error_message": str(exc)}, "channel_unknown"
        except PublishError as exc:
            with self._rng_lock:
                retry_at = policy.next_attempt(exc, attempts, self.office._now(), self.rng)
            return {"state": "failed", "error_class": type(exc).__name__,
                    "error_message": _what_to_do(exc, channel, item.id, attempts, policy,
                                                 retry_at),
                    "next_attempt_at": retry_at}, "channel_failed"
        except HumasflowError as exc:
            return {"state": "failed", "error_class": type(exc).__name__,
                    "error_message": str(exc), "next_attempt_at": None}, "channel_failed"
        except Exception as exc:  # after sending, a crash may have posted
            return {"state": "unknown", "error_class": type(exc).__name__,
                    "error_message": f"{exc}; the post may or may not be on the platform"
                    }, "channel_unknown"
        return {"state": "posted", "platform_id": receipt.platform_id, "url": receipt.url,
                "error_class": None, "error_message": None}, "channel_posted"

    def _reconcile(self, item: ContentItem, channel: ChannelConfig, pub: Publication) -> None:
        office = self.office
        try:
            publisher = office._publisher(channel)
        except HumasflowError:
            return
        reconcile = getattr(publisher, "reconcile", None)
        if reconcile is None:
            return  # this platform cannot be searched: a person confirms
        post = office.post_for(item, channel.name)
        progress = Progress(office, item.id, channel.name, pub.claimed_by or self.worker_id,
                            pub.progress)
        try:
            receipt = reconcile(post, progress)
        except Exception:  # noqa: BLE001 - still unknown; a person or a later run decides
            return
        now = office._now()
        if receipt is None:
            values: dict[str, Any] = {"state": "pending", "error_class": None,
                                      "error_message": None}
            action = "channel_absent"
        else:
            values = {"state": "posted", "platform_id": receipt.platform_id,
                      "url": receipt.url, "error_class": None, "error_message": None}
            action = "channel_posted"
        self._settle(item, channel.name, values, self.worker_id, action, now,
                     states=("unknown",), note="reconciled with the platform")

    # -- recording ------------------------------------------------------------------------------

    def _settle(self, item: ContentItem, channel: str, values: Mapping[str, Any],
                actor_id: str, action: str, now: dt.datetime, *, note: str = "",
                states: tuple[str, ...] = (), claimed_by: str | None = None) -> bool:
        """Change one channel's record and append the matching event, in one transaction."""
        store = self.office.store
        with store.writing() as conn:
            changed = store.update_publication(conn, self.office.org, item.id, channel,
                                               {**values, "updated_at": now}, states=states,
                                               claimed_by=claimed_by)
            if not changed:
                return False
            data = {"channel": channel, **{k: _plain(v) for k, v in values.items()
                                           if k in ("state", "platform_id", "url",
                                                    "error_class", "error_message",
                                                    "next_attempt_at")}}
            sealed = store.append_item_event(conn, Event(
                org=self.office.org, stream="", seq=0, at=now, actor=actor_id, action=action,
                from_state=item.state, to_state=item.state, note=note, data=data), item.id)
            pub = store.publications(self.office.org, item.id, conn)[channel]
        fresh = attrs.evolve(item, version=sealed.seq)
        hook = {"posted": "channel_posted", "failed": "channel_failed",
                "unknown": "channel_unknown", "waiting": "channel_unknown"}.get(pub.state)
        if hook is not None:
            self.office._hook(hook, item=fresh, publication=pub)
        return True

    def _schedule(self, item: ContentItem, actor: Actor, when: dt.datetime, action: str) -> None:
        store = self.office.store
        with store.writing() as conn:
            store.set_post_at(conn, self.office.org, item.id, when, actor.id)
            store.append_item_event(conn, Event(
                org=self.office.org, stream="", seq=0, at=self.office._now(), actor=actor.id,
                action=action, from_state=item.state, to_state=item.state,
                data={"post_at": when.astimezone(dt.timezone.utc).isoformat()}), item.id)

    def _close_if_done(self, item_id: int, actor: Actor) -> None:
        office = self.office
        for _ in range(5):
            found = office.store.item_with_head(office.org, item_id)
            assert found is not None
            item, head = found
            if item.state == "posted":
                return
            pubs = office.store.publications(office.org, item.id)
            if not item.post.channels or not all(
                    c in pubs and pubs[c].is_settled for c in item.post.channels):
                return
            engine = office.engine(item.sop_revision)
            try:
                move = engine.run(item, "complete", actor)
                results = {n: {"state": p.state, "id": p.platform_id, "url": p.url}
                           for n, p in pubs.items()}
                closed = office._record(engine, item, head, move, actor, {"channels": results})
            except ConflictError:
                continue  # another worker recorded something meanwhile: look again
            office._hook("item_posted", item=closed,
                         publications=office.store.publications(office.org, item.id))
            return

    # -- helpers ----------------------------------------------------------------------------------

    def _item(self, item_id: int) -> ContentItem:
        return self.office.item(item_id)

    def _check(self, item_id: int, actor: Actor, action: str) -> ContentItem:
        """The posting step's checks (step, role, fresh approval) as a dry run."""
        item = self._item(item_id)
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

    def _posting_authority(self, item: ContentItem) -> Actor:
        """Who had the item posted (the last ``post`` or ``schedule``), else its assignee."""
        for event in reversed(self.office.history(item.id)):
            if event.action in ("post", "schedule"):
                return self.office.actor(event.actor)
        return self.office.actor(item.assignee or item.created_by)

    def _publication(self, item: ContentItem, channel: str) -> Publication:
        pub = self.office.store.publications(self.office.org, item.id).get(channel)
        if pub is None:
            raise Refused(f"item {item.id} has no record for channel {channel!r}; its "
                          f"channels: {', '.join(item.post.channels) or 'none'}",
                          item_id=str(item.id), step=item.state, action="confirm")
        return pub

    def _report(self, item_id: int) -> PostReport:
        item = self._item(item_id)
        return PostReport(item=item,
                          publications=self.office.store.publications(self.office.org, item.id))


def _posting_key(dispatcher: Dispatcher, item: ContentItem) -> str:
    step = dispatcher.office.sop(item.sop_revision).step_for_output("publication")
    assert step is not None
    return step.key


def _claimable(pub: Publication, now: dt.datetime) -> bool:
    if pub.state == "pending":
        return True
    return pub.state == "failed" and pub.next_attempt_at is not None and pub.next_attempt_at <= now


def _what_to_do(error: PublishError, channel: ChannelConfig, item_id: int, attempts: int,
                policy: RetryPolicy, retry_at: dt.datetime | None) -> str:
    """The error's message, ending with what a person should do when it is not retried."""
    message = str(error)
    if retry_at is not None:
        return message
    again = f"humasflow confirm {item_id} {channel.name} --not-posted"
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


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat()
    return value
