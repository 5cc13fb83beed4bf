"""Rule: each channel's outcome is recorded once, by the attempt that holds its claim, and
every write of an item keeps its record whole: the version is the number of its events,
each event follows the one before it in the hash chain, and a write whose version check
fails leaves nothing behind (no event, no step visit). On PostgreSQL the item's update and
its event are one statement; these tests hold on both databases.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import threading
import time

import attrs
import pytest
import sqlalchemy as sa

from humasflow import ConflictError, ItemChanged, StorageError, i18n
from humasflow.hookspecs import hookimpl
from humasflow.models import Event
from humasflow.storage import schema as t
from humasflow.testing import (
    FakePublisher,
    fake_publisher_plugin,
    item_ready_to_post,
    plugin_registered,
)

LEASE = dt.timedelta(minutes=5)


def whole_chain(office, item_id: int) -> list[Event]:
    events = office.history(item_id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert office.item(item_id).version == len(events)
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    return events


def counts(store, item_id: int) -> tuple[int, int]:
    with store.engine.connect() as conn:
        events = conn.execute(sa.select(sa.func.count()).select_from(t.events)
                              .where(t.events.c.stream == f"item:{item_id}")).scalar_one()
        visits = conn.execute(sa.select(sa.func.count()).select_from(t.step_visits)
                              .where(t.step_visits.c.item_id == item_id)).scalar_one()
    return events, visits


def test_of_four_outcomes_settled_at_once_only_the_claimed_attempts_first_is_recorded(
        office, store, image, clock):
    item = item_ready_to_post(office, text="Selamat Dies Natalis!", media=[image],
                              channels=["outbox"])
    now = clock()
    store.ensure_publications(office.org, item.id, ["outbox"], now)
    item = office.item(item.id)
    claimed = store.claim_channels(office.org, item.id, ["outbox"], "w1", now, now + LEASE,
                                   gate=(item.state, item.content_digest))
    attempt = claimed["outbox"].attempts
    before = len(office.history(item.id))
    start = threading.Barrier(4)
    results: list[tuple[int, str, object]] = []

    def settle(number: int, state: str) -> None:
        dispatcher = office.dispatcher(worker_id="w1")
        start.wait()
        results.append((number, state, dispatcher._settle(
            item, "outbox", {"state": state, "claimed_by": None, "lease_until": None},
            "rina", f"channel_{state}", now, states=("in_flight", "unknown"),
            claimed_by="w1", worker="w1", attempt=number)))

    threads = [threading.Thread(target=settle, args=args) for args in
               [(attempt, "posted"), (attempt, "failed"), (attempt - 1, "posted"),
                (attempt + 1, "failed")]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    recorded = [(n, state) for n, state, pub in results if pub is not None]
    assert len(recorded) == 1
    assert recorded[0][0] == attempt
    events = whole_chain(office, item.id)
    assert len(events) == before + 1
    assert events[-1].data["state"] == recorded[0][1]


def test_a_second_post_while_the_first_records_its_outcome_waits_and_loses_nothing(
        office, store, image, monkeypatch):
    """Someone posts the item again (a double click, a second person) just as the first
    post's worker records the channel's outcome: neither waits for the other forever,
    the outcome is recorded once and the item closes. (On PostgreSQL, an insert of the
    records that waited for the outcome's uncommitted update while holding the item's
    row made a deadlock.)"""
    plugin = fake_publisher_plugin()
    with plugin_registered(plugin):
        office.add_channel("x", "fake", by="admin")
        item = item_ready_to_post(office, text="Selamat Dies Natalis!", media=[image],
                                  channels=["x"])
        scheduled, settled = threading.Event(), threading.Event()
        settle, set_post_at = store.settle_publication, store.set_post_at

        def first_settles_after_the_second_locked_the_item(*args, **kwargs):
            if threading.current_thread().name == "first":
                scheduled.wait(5)
                try:
                    return settle(*args, **kwargs)
                finally:
                    settled.set()
            return settle(*args, **kwargs)

        def second_holds_the_item_meanwhile(*args, **kwargs):
            head = set_post_at(*args, **kwargs)
            if threading.current_thread().name == "second":
                scheduled.set()
                settled.wait(2)  # the first one's update is in, uncommitted (or waiting)
                time.sleep(0.2)
            return head

        monkeypatch.setattr(store, "settle_publication",
                            first_settles_after_the_second_locked_the_item)
        monkeypatch.setattr(store, "set_post_at", second_holds_the_item_meanwhile)
        errors: dict[str, BaseException] = {}

        def post(who: str) -> None:
            try:
                if who == "second":
                    time.sleep(0.2)  # after the first one's claim
                office.post(item.id, by="rina")
            except Exception as exc:  # recorded and asserted on below
                errors[who] = exc

        threads = [threading.Thread(target=post, args=(who,), name=who)
                   for who in ("first", "second")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads)
        # The second may find the item closed meanwhile ("already moved on"): refused.
        assert "first" not in errors
        assert isinstance(errors.get("second", ItemChanged("")), ItemChanged)
        assert len(plugin.publishers["x"].posted) == 1
        assert office.publications(item.id)["x"].state == "posted"
        actions = [e.action for e in whole_chain(office, item.id)]
        assert actions.count("channel_posted") == 1
        assert office.item(item.id).state == "posted"


@pytest.mark.parametrize("new_step", [False, True], ids=["same step", "new step"])
def test_a_move_whose_version_check_fails_writes_no_event_and_no_visit(
        office, store, new_step):
    item = office.new_item("Dies Natalis", by="rina")
    office.complete(item.id, by="rina", text="Selamat Dies Natalis!")
    current = office.item(item.id)
    head = office.history(item.id)[-1].hash
    before = counts(store, item.id)
    moved = attrs.evolve(current, version=current.version + 1,
                         state="design" if new_step else current.state)
    event = Event(org=office.org, stream="", seq=0, at=current.step_started_at,
                  actor="rina", action="complete" if new_step else "revise",
                  from_state=current.state, to_state=moved.state, data={})
    with pytest.raises(ConflictError), store.writing() as conn:
        # Read at a version before the current one: someone else wrote since.
        store.apply(conn, moved, current.version - 1, head, event, new_step=new_step)
    assert counts(store, item.id) == before
    whole_chain(office, item.id)


def test_an_event_appended_beside_a_move_keeps_the_chain(office, store, clock):
    item = office.new_item("Dies Natalis", by="rina")
    with store.writing() as conn:
        sealed = store.append_item_event(conn, Event(
            org=office.org, stream="", seq=0, at=clock(), actor="rina", action="note",
            from_state="", to_state="", data={"why": "test"}), item.id)
    assert sealed.seq == 2
    assert sealed.from_state == item.state
    office.complete(item.id, by="rina", text="Selamat Dies Natalis!")
    assert [e.action for e in whole_chain(office, item.id)] == ["create", "note", "complete"]


class Hooks:
    """Keeps the posting hooks in the order they ran."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def channel_posted(self, office, item, publication):
        self.seen.append(f"channel_posted {publication.channel}")

    @hookimpl
    def transition_done(self, office, item, event):
        if event.action == "complete" and event.to_state == "posted":
            self.seen.append("closed")

    @hookimpl
    def item_posted(self, office, item, publications):
        self.seen.append(f"item_posted {item.state}")


@pytest.mark.parametrize("fails", [False, True], ids=["with the outcome", "after it"])
def test_the_item_closes_with_its_last_outcome_or_on_its_own(office, image, monkeypatch,
                                                             fails):
    """The last channel's outcome and the close of the posting step are one transaction;
    if the close cannot be written there, the outcome is recorded alone and the item is
    closed right after it. Either way each hook runs once, in the same order."""
    from humasflow.publishing.dispatch import Dispatcher

    if fails:
        def broken(self, conn, item_id, actor):
            raise RuntimeError("the close cannot be written here")
        monkeypatch.setattr(Dispatcher, "_close_in", broken)
    closings = []
    close = Dispatcher._close
    monkeypatch.setattr(Dispatcher, "_close",
                        lambda self, *args: closings.append(args) or close(self, *args))
    item = item_ready_to_post(office, text="Selamat Dies Natalis!", media=[image],
                              channels=["outbox"])
    with plugin_registered(Hooks()) as hooks:
        report = office.post(item.id, by="rina")
    assert len(closings) == (1 if fails else 0)  # closed on its own, after the outcome
    assert report.closed
    assert report.item.state == "posted"
    assert report.publications["outbox"].state == "posted"
    actions = [e.action for e in whole_chain(office, item.id)]
    assert actions[-3:] == ["post", "channel_posted", "complete"]
    assert hooks.seen == ["channel_posted outbox", "closed", "item_posted posted"]


@attrs.define
class Slow(FakePublisher):
    """A fake publisher whose posts take ``delay`` seconds."""

    delay: float = 0.0

    def publish(self, post, progress=None):
        time.sleep(self.delay)
        return super().publish(post, progress)


class SlowHooks(Hooks):
    """:class:`Hooks`, whose ``channel_posted`` of one channel takes a second (a
    webhook), noting the thread and language ``item_posted`` ran in."""

    def __init__(self, slow: str) -> None:
        super().__init__()
        self.slow = slow
        self.lock = threading.Lock()
        self.where: tuple[str, str] | None = None

    @hookimpl
    def channel_posted(self, office, item, publication):
        if publication.channel == self.slow:
            time.sleep(1.0)
        with self.lock:
            self.seen.append(f"channel_posted {publication.channel}")

    @hookimpl
    def item_posted(self, office, item, publications):
        self.where = (threading.current_thread().name, i18n.language())
        with self.lock:
            self.seen.append(f"item_posted {item.state}")


def test_the_close_hooks_run_after_every_channels_own_in_the_callers_thread(office, image):
    """The channel whose outcome closes the item may not be the last to run its hooks:
    the close's hooks wait for every channel's, and run where ``post`` was called (its
    thread, its language)."""
    plugin = fake_publisher_plugin()
    for name, delay in {"x": 0.0, "y": 0.3}.items():
        plugin.publishers[name] = Slow(channel=name, delay=delay)
    with plugin_registered(plugin):
        office.add_channel("x", "fake", by="admin")
        office.add_channel("y", "fake", by="admin")
        item = item_ready_to_post(office, text="Selamat Dies Natalis!", media=[image],
                                  channels=["x", "y"])
        with plugin_registered(SlowHooks(slow="x")) as hooks, i18n.use("id"):
            report = office.post(item.id, by="rina")
    assert report.closed
    assert sorted(hooks.seen[:2]) == ["channel_posted x", "channel_posted y"]
    assert hooks.seen[2:] == ["closed", "item_posted posted"]
    assert hooks.where == (threading.current_thread().name, "id")


def test_an_interrupt_while_closing_keeps_the_outcome(office, image, monkeypatch, tmp_path):
    """Ctrl-C (a second one, which stops at once) just while the close is written: the
    post was made, and its outcome is recorded before the interrupt goes on."""
    from humasflow.publishing.dispatch import Dispatcher

    def interrupted(self, conn, item_id, actor):
        raise KeyboardInterrupt
    monkeypatch.setattr(Dispatcher, "_close_in", interrupted)
    item = item_ready_to_post(office, text="Selamat Dies Natalis!", media=[image],
                              channels=["outbox"])
    with pytest.raises(KeyboardInterrupt):
        office.post(item.id, by="rina")
    assert any((tmp_path / "outbox").iterdir())  # posted
    assert office.publications(item.id)["outbox"].state == "posted"
    assert office.item(item.id).state == "post"  # not closed: the next pass closes it
    whole_chain(office, item.id)


def test_a_commit_that_fails_after_it_applied_is_not_hidden(office, store, image,
                                                            monkeypatch):
    """The connection drops at the COMMIT of the last outcome and the close, after the
    database applied it: ``post`` says the store failed (as for any write), and the
    record holds the outcome and the close, once each."""
    from humasflow.publishing.dispatch import Dispatcher

    armed = []
    close_in, writing = Dispatcher._close_in, store.writing

    def arm(self, conn, item_id, actor):
        armed.append(True)
        return close_in(self, conn, item_id, actor)

    @contextlib.contextmanager
    def answer_lost():
        with writing() as conn:
            yield conn
        if armed:
            armed.clear()
            raise StorageError("server closed the connection unexpectedly")

    monkeypatch.setattr(Dispatcher, "_close_in", arm)
    monkeypatch.setattr(store, "writing", answer_lost)
    item = item_ready_to_post(office, text="Selamat Dies Natalis!", media=[image],
                              channels=["outbox"])
    with pytest.raises(StorageError):
        office.post(item.id, by="rina")
    assert office.item(item.id).state == "posted"
    actions = [e.action for e in whole_chain(office, item.id)]
    assert actions[-3:] == ["post", "channel_posted", "complete"]
