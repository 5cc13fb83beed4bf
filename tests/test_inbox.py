"""The inbox: what waits for one person, most urgent first.

Rules checked here: a coordinator sees the approvals they may give and not their own
items under four eyes; staff see the items late at a step whose role they hold; the
people who post and the coordinator see the channels that failed, are unknown or wait
for a person, and today's scheduled posts; a channel retried automatically and a post
scheduled for another day wait for nobody; the order is by urgency. On SQLite and
PostgreSQL, with a steered clock and the fake publisher.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from importlib import resources

import pytest

import humasflow
from humasflow import Inbox, InboxEntry
from humasflow.errors import (
    ActorInactive,
    ActorNotFound,
    AuthenticationFailed,
    OutcomeUnknown,
    PlatformError,
)
from humasflow.sop import parse_sop
from humasflow.testing import FakePublisher, fake_publisher_plugin, plugin_registered

JAKARTA = zoneinfo.ZoneInfo("Asia/Jakarta")
BUNDLED_TEXT = resources.files("humasflow").joinpath(
    "sops", "fisip-ub-social-media.toml").read_text("utf-8")


@pytest.fixture
def fake(office):
    plugin = fake_publisher_plugin()
    with plugin_registered(plugin):
        office.add_channel("x", "fake", settings={"media_urls": "pass"}, by="admin")
        office.add_channel("ig", "manual", settings={"media_urls": "pass"}, by="admin")
        yield plugin


def at_approval(office, title, by="rina"):
    item = office.new_item(title, by=by, channels=["x"])
    office.complete(item.id, by=by, text=f"{title}: selamat!")
    office.complete(item.id, by=by, notes="Canva")
    office.complete(item.id, by=by, media=["https://cdn.example/poster.jpg"])
    return item.id


def at_posting(office, title, channels=("x",)):
    item = office.new_item(title, by="rina", channels=list(channels))
    office.complete(item.id, by="rina", text=f"{title}: selamat!")
    office.complete(item.id, by="rina", notes="Canva")
    office.complete(item.id, by="rina", media=["https://cdn.example/poster.jpg"])
    office.approve(item.id, by="budi")
    office.complete(item.id, by="rina", media=["https://cdn.example/poster.jpg"])
    office.pass_recheck(item.id, by="sari")
    return item.id


def kinds(inbox: Inbox) -> list[tuple[str, str, str | None]]:
    return [(e.kind, e.title, e.channel) for e in inbox]


def test_each_person_sees_what_waits_for_them_most_urgent_first(office, fake, clock):
    office.add_actor("dewi", "Dewi", roles=["staff", "coordinator"], by="admin")
    # 09:00 WIB. Someone's concept runs late first.
    late = office.new_item("Late concept", by="sari")
    clock.advance(minutes=1)
    later = office.new_item("Later concept", by="sari")
    approve_first = at_approval(office, "Approve me")
    clock.advance(minutes=1)
    approve_second = at_approval(office, "Approve me too")
    own = at_approval(office, "Dewi's own", by="dewi")
    fake.publishers["x"] = FakePublisher(channel="x",
                                         fail_with=AuthenticationFailed("token expired"))
    failed = at_posting(office, "Token expired")
    office.post(failed, by="rina")
    clock.advance(seconds=5)
    fake.publishers["x"] = FakePublisher(channel="x", fail_with=OutcomeUnknown("no answer"))
    unknown = at_posting(office, "Unknown")
    office.post(unknown, by="rina")
    clock.advance(seconds=5)
    waiting = at_posting(office, "By hand", channels=("ig",))
    office.post(waiting, by="rina")
    fake.publishers["x"] = FakePublisher(channel="x", fail_with=PlatformError("503"))
    retrying = at_posting(office, "Retried by itself")
    office.post(retrying, by="rina")
    tonight = at_posting(office, "Tonight")
    office.schedule(tonight, clock() + dt.timedelta(hours=10), by="rina")  # 19:00 WIB
    tomorrow = at_posting(office, "Tomorrow")
    office.schedule(tomorrow, clock() + dt.timedelta(days=1), by="rina")
    clock.advance(minutes=8)  # the concepts are late now (5 minutes' standard)

    budi = office.inbox("budi")
    assert isinstance(budi, Inbox)
    assert budi.actor.id == "budi"
    assert budi.at == clock()
    assert kinds(budi) == [
        ("failed", "Token expired", "x"),
        ("unknown", "Unknown", "x"),
        ("waiting", "By hand", "ig"),
        ("approve", "Approve me", None),
        ("approve", "Approve me too", None),
        ("approve", "Dewi's own", None),
        ("scheduled", "Tonight", None),
    ]
    assert [e.urgency for e in budi] == list(range(1, 8))
    first = budi.entries[0]
    assert isinstance(first, InboxEntry)
    assert (first.item_id, first.step) == (failed, "post")
    assert first.detail.startswith("AuthenticationFailed: token expired; renew the credentials")
    approval = budi.of_kind("approve")[0]
    assert approval.item_id == approve_first
    assert approval.due_at == approval.since + dt.timedelta(minutes=10)
    assert approval.late_by is None
    (scheduled,) = budi.of_kind("scheduled")
    assert scheduled.item_id == tonight
    assert scheduled.due_at == clock() - dt.timedelta(minutes=8) + dt.timedelta(hours=10)
    assert approve_second in [e.item_id for e in budi.of_kind("approve")]

    # Dewi coordinates too, but under four eyes her own item is not hers to approve.
    dewi = office.inbox("dewi")
    assert own not in [e.item_id for e in dewi.of_kind("approve")]
    assert [e.item_id for e in dewi.of_kind("approve")] == [approve_first, approve_second]

    # Staff: the channels they post, the late steps they hold, today's posts.
    rina = office.inbox("rina")
    assert kinds(rina) == [
        ("failed", "Token expired", "x"),
        ("unknown", "Unknown", "x"),
        ("waiting", "By hand", "ig"),
        ("late", "Late concept", None),
        ("late", "Later concept", None),
        # Its channel is retried by itself, but the item is late at the posting step.
        ("late", "Retried by itself", None),
        ("scheduled", "Tonight", None),
    ]
    assert [(e.item_id, e.late_by) for e in rina.of_kind("late")][:2] == [
        (late.id, clock() - late.due_at), (later.id, clock() - later.due_at)]
    assert [e.item_id for e in rina if e.channel is not None and e.item_id == retrying] == []
    assert tomorrow not in [e.item_id for e in rina]
    assert office.inbox("sari").of_kind("late") == rina.of_kind("late")

    # A late approval comes before the ones still on time.
    clock.advance(minutes=10)
    assert [(e.kind, e.item_id, e.late_by is not None) for e in
            office.inbox("budi").of_kind("approve")] == [
        ("approve", approve_first, True), ("approve", approve_second, True),
        ("approve", own, True)]


def test_the_inbox_of_an_admin_without_roles_is_empty_and_strangers_have_none(
        office, fake, clock):
    at_approval(office, "Approve me")
    assert len(office.inbox("admin")) == 0
    with pytest.raises(ActorNotFound):
        office.inbox("nobody")
    office.deactivate_actor("budi", by="admin")
    with pytest.raises(ActorInactive):
        office.inbox("budi")


def test_without_four_eyes_a_coordinator_may_approve_their_own_item(office, fake, clock):
    relaxed = parse_sop(BUNDLED_TEXT.replace("four_eyes = true", "four_eyes = false"),
                        source="relaxed.toml")
    office.establish(relaxed, by="admin", effective=clock() - dt.timedelta(minutes=1))
    office.add_actor("dewi", "Dewi", roles=["staff", "coordinator"], by="admin")
    own = at_approval(office, "Dewi's own", by="dewi")
    assert [e.item_id for e in office.inbox("dewi").of_kind("approve")] == [own]


def test_today_is_the_day_in_the_offices_zone(office, fake, clock):
    item = at_posting(office, "Just after midnight")
    # 09:00 WIB now; 00:30 WIB tomorrow is 17:30 UTC today.
    office.schedule(item, dt.datetime(2026, 1, 6, 0, 30, tzinfo=JAKARTA), by="rina")
    assert office.inbox("rina").of_kind("scheduled") == []
    utc = office.inbox("rina", zone=dt.timezone.utc)
    assert [e.item_id for e in utc.of_kind("scheduled")] == [item]


def test_the_inbox_is_exported():
    assert humasflow.Inbox is Inbox
    assert "InboxEntry" in humasflow.__all__
