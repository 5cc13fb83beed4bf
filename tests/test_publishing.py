"""Posting an item: validated twice, recorded per channel, never posted twice.

Every test runs on SQLite and PostgreSQL (the ``office`` fixture) with fake publishers.
"""

from __future__ import annotations

import datetime as dt
import shlex
import shutil
import threading
import time
from typing import Any

import attrs
import pytest
from click.testing import CliRunner

from humasflow import Office
from humasflow.cli import cli
from humasflow.errors import (
    AuthenticationFailed,
    ClaimLost,
    ContentInvalid,
    ContentRejected,
    HumasflowError,
    InputInvalid,
    ItemChanged,
    NotAllowedNow,
    OutcomeUnknown,
    PlatformError,
    PublishError,
    Refused,
    RoleRequired,
    StoreLocked,
)
from humasflow.hookspecs import hookimpl
from humasflow.publishing.contract import Post, Problem, Receipt
from humasflow.publishing.dispatch import Heartbeat, ManualHeartbeat
from humasflow.storage.store import Store
from humasflow.testing import (
    FakePublisher,
    SteerableClock,
    fake_publisher_plugin,
    item_ready_to_post,
    plugin_registered,
    staffed_office,
    temp_office,
)
from humasflow.testing.faults import Crash, FaultInjector, resume_after_restart

S = dt.timedelta(seconds=1)
LEASE = dt.timedelta(minutes=15)


@pytest.fixture
def fake(office):
    plugin = fake_publisher_plugin()
    with plugin_registered(plugin):
        office.add_channel("x", "fake", by="admin")
        office.add_channel("fb", "fake", by="admin")
        office.add_channel("ig", "fake", settings={"retry": {"jitter": 0, "base_delay": 60}},
            by="admin")
        yield plugin


class Hooks:
    """Records the publishing hooks (they may fire from the posting threads)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def named(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for hook, kwargs in self.calls if hook == name]

    @hookimpl
    def channel_posted(self, office, item, publication):
        self.calls.append(("channel_posted", {"item": item, "publication": publication}))

    @hookimpl
    def channel_failed(self, office, item, publication):
        self.calls.append(("channel_failed", {"item": item, "publication": publication}))

    @hookimpl
    def channel_unknown(self, office, item, publication):
        self.calls.append(("channel_unknown", {"item": item, "publication": publication}))

    @hookimpl
    def item_posted(self, office, item, publications):
        self.calls.append(("item_posted", {"item": item, "publications": publications}))


@pytest.fixture
def hooks():
    recorder = Hooks()
    with plugin_registered(recorder):
        yield recorder


def publisher(plugin, name: str) -> FakePublisher:
    return plugin.publishers.setdefault(name, FakePublisher(channel=name))


def posts(plugin, names=("fb", "ig", "x")) -> dict[str, int]:
    """How many posts each channel's platform received."""
    return {name: len(publisher(plugin, name).posted) for name in names}


def ready(office, image, channels=("x", "fb", "ig")) -> int:
    """An item at the posting step, approved and rechecked."""
    item = office.new_item("Dies Natalis", by="rina", channels=list(channels))
    office.complete(item.id, by="rina", text="Selamat Dies Natalis ke-38 FISIP UB")
    office.complete(item.id, by="rina", notes="Canva template 'dies'")
    office.complete(item.id, by="rina", media=[image])
    office.approve(item.id, by="budi", answer="OK by email")
    office.complete(item.id, by="rina", media=[image])
    office.pass_recheck(item.id, by="sari")
    return item.id


def gate(office, item_id: int) -> tuple[str, str]:
    """What a worker's posting checks saw: the item's state and content digest."""
    item = office.item(item_id)
    return item.state, item.content_digest


def actions(office, item_id: int) -> list[tuple[str, str | None]]:
    return [(e.action, e.data.get("channel")) for e in office.history(item_id)]


TOO_LONG = Problem("x", "text", "max_length", "the text is 301 characters; at most 280",
                   limit=280, actual=301)


# -- validation: before approval, and again right before posting --------------------------------


def test_the_design_step_refuses_a_post_a_channel_cannot_take(office, fake, image):
    publisher(fake, "x").problems = [TOO_LONG]
    item = office.new_item("Dies Natalis", by="rina", channels=["x", "fb"])
    office.complete(item.id, by="rina", text="Selamat Dies Natalis")
    office.complete(item.id, by="rina", notes="Canva")

    with pytest.raises(ContentInvalid) as info:
        office.complete(item.id, by="rina", media=[image])
    assert info.value.problems == (TOO_LONG,)
    assert (info.value.problems[0].channel, info.value.problems[0].field,
            info.value.problems[0].rule) == ("x", "text", "max_length")
    assert "x: text: the text is 301 characters; at most 280" in str(info.value)
    assert office.item(item.id).state == "design"


def test_approval_is_refused_while_a_channel_reports_problems(office, fake, image):
    item = office.new_item("Dies Natalis", by="rina", channels=["x", "fb"])
    office.complete(item.id, by="rina", text="Selamat Dies Natalis")
    office.complete(item.id, by="rina", notes="Canva")
    office.complete(item.id, by="rina", media=[image])
    publisher(fake, "x").problems = [TOO_LONG]

    with pytest.raises(ContentInvalid, match="x: text:") as info:
        office.approve(item.id, by="budi")
    assert info.value.action == "approve"
    assert office.item(item.id).approved_digest is None

    publisher(fake, "x").problems = []
    assert office.approve(item.id, by="budi").is_approved


def test_posting_checks_again_and_posts_nothing_when_a_channel_objects(office, fake, image):
    item_id = ready(office, image)
    publisher(fake, "x").problems = [TOO_LONG]  # e.g. the platform's limit changed

    with pytest.raises(ContentInvalid) as info:
        office.post(item_id, by="rina")
    assert info.value.action == "post"
    assert posts(fake) == {"fb": 0, "ig": 0, "x": 0}
    assert office.publications(item_id) == {}


def test_a_scheduled_post_that_became_invalid_fails_that_channel_only(
        office, fake, clock, image):
    item_id = ready(office, image)
    office.schedule(item_id, clock() + dt.timedelta(hours=1), by="rina")
    publisher(fake, "x").problems = [TOO_LONG]

    clock.advance(hours=1)
    (report,) = office.run_due()
    x = report.publications["x"]
    assert (x.state, x.error_class, x.next_attempt_at) == ("failed", "ContentRejected", None)
    assert "text: the text is 301 characters; at most 280" in x.error_message
    assert x.attempts == 0  # never claimed, never sent
    assert posts(fake) == {"fb": 1, "ig": 1, "x": 0}
    assert not report.done


# -- per-channel records ------------------------------------------------------------------------


def test_each_channel_keeps_its_own_record(office, fake, clock, image):
    item_id = ready(office, image)
    report = office.post(item_id, by="rina")

    assert report.done
    assert report.item.state == "posted"
    assert sorted(report.publications) == ["fb", "ig", "x"]
    for name, pub in report.publications.items():
        assert pub.item_id == item_id
        assert pub.state == "posted"
        assert pub.attempts == 1
        assert pub.platform_id == "fake-1"
        assert pub.url == f"https://fake.example/{name}/1"
        assert (pub.error_class, pub.error_message, pub.next_attempt_at) == (None, None, None)
        assert (pub.claimed_by, pub.lease_until) == (None, None)
        assert pub.updated_at == clock()
    assert office.publications(item_id) == report.publications


def test_each_attempt_is_recorded_in_flight_before_the_platform_call(office, fake, image):
    seen = {}

    @attrs.define
    class Peeking(FakePublisher):
        def publish(self, post, progress=None):
            seen[post.channel] = office.publications(post.item_id)[post.channel]
            return super().publish(post, progress)

    fake.publishers["x"] = Peeking(channel="x")
    item_id = ready(office, image, ["x"])
    office.post(item_id, by="rina")

    during = seen["x"]
    assert (during.state, during.attempts) == ("in_flight", 1)
    assert during.claimed_by
    assert during.lease_until is not None


def test_a_failed_channel_is_retried_alone(office, fake, clock, image):
    item_id = ready(office, image)
    publisher(fake, "ig").fail_with = PlatformError("503 Service Unavailable", code=503)

    report = office.post(item_id, by="rina")
    assert report.failed == ["ig"]
    assert not report.done
    assert report.item.state == "post"
    assert posts(fake) == {"fb": 1, "ig": 0, "x": 1}

    # Posting again before ig's retry time re-posts nothing.
    report = office.post(item_id, by="rina")
    assert posts(fake) == {"fb": 1, "ig": 0, "x": 1}
    assert report.publications["ig"].attempts == 1

    clock.advance(seconds=60)
    (report,) = office.run_due()
    assert report.done
    assert posts(fake) == {"fb": 1, "ig": 1, "x": 1}
    assert {n: p.attempts for n, p in report.publications.items()} == {"fb": 1, "ig": 2, "x": 1}
    posted = [c for a, c in actions(office, item_id) if a == "channel_posted"]
    assert sorted(posted) == ["fb", "ig", "x"]
    assert office.verify().ok


# -- a person's answers: skip, confirm, manual channels -----------------------------------------


def test_the_coordinator_skips_a_channel_and_the_item_closes(office, fake, hooks, image):
    item_id = ready(office, image)
    publisher(fake, "ig").fail_with = ContentRejected("the platform refused the image")
    office.post(item_id, by="rina")

    with pytest.raises(RoleRequired):
        office.skip(item_id, "ig", by="rina", reason="not our call")
    with pytest.raises(ValueError, match="why"):
        office.skip(item_id, "ig", by="budi", reason=" ")
    with pytest.raises(Refused, match="'posted'"):
        office.skip(item_id, "x", by="budi", reason="already out")

    report = office.skip(item_id, "ig", by="budi", reason="the poster is not for Instagram")
    assert report.done
    assert report.publications["ig"].state == "skipped"
    assert posts(fake) == {"fb": 1, "ig": 0, "x": 1}
    skipped = [e for e in office.history(item_id) if e.action == "channel_skipped"]
    assert [(e.actor, e.note, e.data["channel"]) for e in skipped] == [
        ("budi", "the poster is not for Instagram", "ig")]
    closing = office.history(item_id)[-1]
    assert (closing.action, closing.from_state, closing.to_state) == ("complete", "post",
                                                                      "posted")
    assert closing.data["channels"]["ig"]["state"] == "skipped"
    (done,) = hooks.named("item_posted")
    assert done["item"].state == "posted"
    assert office.verify().ok


def test_an_unknown_outcome_is_confirmed_by_a_person_with_its_url(office, fake, image):
    item_id = ready(office, image)
    publisher(fake, "x").fail_with = OutcomeUnknown("timed out after sending")

    report = office.post(item_id, by="rina")
    assert report.publications["x"].state == "unknown"
    assert report.needs_person == ["x"]
    assert not report.done
    # x's platform cannot be searched: only a person can settle it, so no pass comes
    # back to it (it would come back on every pass, for ever).
    assert office.run_due() == []
    assert posts(fake)["x"] == 0

    with pytest.raises(ValueError, match="either"):
        office.confirm(item_id, "x", by="rina")
    with pytest.raises(ValueError, match="either"):
        office.confirm(item_id, "x", by="rina", url="https://x.com/fisipub/status/1",
                       not_posted=True)
    with pytest.raises(RoleRequired):
        office.confirm(item_id, "x", by="budi", url="https://x.com/fisipub/status/1")
    with pytest.raises(Refused, match="no record for channel 'threads'"):
        office.confirm(item_id, "threads", by="rina", url="https://threads.net/1")
    with pytest.raises(Refused, match="'posted'"):
        office.confirm(item_id, "fb", by="rina", url="https://facebook.com/1")

    report = office.confirm(item_id, "x", by="rina", url="https://x.com/fisipub/status/1")
    x = report.publications["x"]
    assert (x.state, x.url, x.platform_id) == ("posted", "https://x.com/fisipub/status/1",
                                               "https://x.com/fisipub/status/1")
    assert report.done
    assert posts(fake)["x"] == 0  # nobody posted it twice
    assert ("channel_confirmed", "x") in actions(office, item_id)


@pytest.mark.parametrize("url", ["not-a-url", "ftp://x.com/1", "https://", "x.com/status/1",
                                 "https:///status/1", "https://x.com/a b", "http://[::1"])
def test_a_confirmed_url_must_be_a_web_address_or_nothing_is_written(office, fake, image, url):
    """Rule: confirming a post takes only an http(s) URL with a host; anything else is
    refused before the channel (or the item) is touched."""
    item_id = ready(office, image)
    publisher(fake, "x").fail_with = OutcomeUnknown("timed out after sending")
    office.post(item_id, by="rina")
    before = office.history(item_id)

    with pytest.raises(InputInvalid, match=r"url is .* not a web address") as refused:
        office.confirm(item_id, "x", by="rina", url=url)
    assert refused.value.field == "url"
    with pytest.raises(InputInvalid, match="not a web address"):
        office.dispatcher().confirm(item_id, "x", office.actor("rina"), url=url)

    assert office.history(item_id) == before
    assert office.status(item_id).publications["x"].state == "unknown"
    assert office.item(item_id).is_open


def test_retry_posts_only_the_failed_channels_once_the_cause_is_fixed(office, fake, image,
                                                                     hooks):
    """Rule: a person retries a failed channel (role-checked like posting, recorded);
    a channel that is not failed is refused, and nothing is posted twice."""
    item_id = ready(office, image)
    publisher(fake, "x").fail_with = AuthenticationFailed("the token expired")
    publisher(fake, "ig").fail_with = AuthenticationFailed("the token expired")
    report = office.post(item_id, by="rina")
    assert sorted(report.failed) == ["ig", "x"]
    assert office.post(item_id, by="rina").failed == report.failed  # post does not retry

    with pytest.raises(Refused, match=r"'fb' of item .* is 'posted'; only a failed channel"):
        office.retry(item_id, "fb", by="rina")
    with pytest.raises(RoleRequired):
        office.retry(item_id, "x", by="budi")
    with pytest.raises(Refused, match="no record for channel 'threads'"):
        office.retry(item_id, "threads", by="rina")
    assert posts(fake) == {"fb": 1, "ig": 0, "x": 0}

    report = office.retry(item_id, "x", by="rina")
    assert (report.posted, report.failed, report.done) == (["x"], ["ig"], False)
    report = office.retry(item_id, by="rina")  # every failed channel left: ig
    assert (report.posted, report.done, report.closed) == (["ig"], True, True)
    assert posts(fake) == {"fb": 1, "ig": 1, "x": 1}
    retried = [e for e in office.history(item_id) if e.action == "channel_retry"]
    assert [(e.actor, e.data["channel"], e.data["state"]) for e in retried] == [
        ("rina", "x", "pending"), ("rina", "ig", "pending")]
    with pytest.raises(NotAllowedNow):
        office.retry(item_id, by="rina")
    assert office.verify().ok


def test_retry_refuses_an_item_with_no_failed_channel(office, fake, image):
    item_id = ready(office, image)
    publisher(fake, "x").fail_with = OutcomeUnknown("timed out after sending")
    office.post(item_id, by="rina")
    with pytest.raises(Refused, match="'unknown': the last attempt may have posted it"):
        office.retry(item_id, "x", by="rina")
    with pytest.raises(Refused, match="has no failed channel to retry"):
        office.retry(item_id, by="rina")
    assert posts(fake)["x"] == 0


def test_confirming_not_posted_posts_that_channel_again(office, fake, image):
    item_id = ready(office, image)
    publisher(fake, "x").fail_with = OutcomeUnknown("connection reset")
    office.post(item_id, by="rina")

    report = office.confirm(item_id, "x", by="rina", not_posted=True)
    assert report.done
    assert report.publications["x"].attempts == 2
    assert posts(fake) == {"fb": 1, "ig": 1, "x": 1}


def _tried_again_meanwhile(office, clock, item_id, channel):
    """Another worker: the channel's unknown attempt found absent, a new attempt
    claimed, and that one's call timed out after sending too."""
    store, org = office._store, office.org
    item = office.item(item_id)
    with store.writing() as conn:
        assert store.update_publication(conn, org, item_id, channel, {"state": "pending"},
                                        states=("unknown",))
    claimed = store.claim_channels(org, item_id, [channel], "worker-c", clock(),
                                   clock() + LEASE, gate=(item.state, item.content_digest))
    with store.writing() as conn:
        assert store.settle_publication(
            conn, org, item_id, channel,
            {"state": "unknown", "error_class": "OutcomeUnknown",
             "error_message": "timed out after sending"},
            states=("in_flight",), claimed_by="worker-c", attempt=claimed[channel].attempts)
    return claimed[channel].attempts


def test_a_confirmation_of_an_attempt_tried_again_since_records_nothing(
        office, fake, clock, image):
    """A person checked the platform for attempt 1 and found nothing; meanwhile the
    channel was tried again, and attempt 2 may be on the platform: their 'not posted'
    must not set it back to pending, or it would be posted a second time."""
    item_id = ready(office, image, ["x"])
    publisher(fake, "x").fail_with = OutcomeUnknown("connection reset")
    office.post(item_id, by="rina")
    seen = office.publications(item_id)["x"].attempts
    assert seen == 1
    assert _tried_again_meanwhile(office, clock, item_id, "x") == 2
    publisher(fake, "x").fail_with = None
    before = actions(office, item_id)

    with pytest.raises(Refused, match=r"tried again after the attempt you checked \(it is at "
                                      r"attempt 2, not 1\)"):
        office.confirm(item_id, "x", by="rina", not_posted=True, attempt=seen)
    assert actions(office, item_id) == before
    record = office.publications(item_id)["x"]
    assert (record.state, record.attempts) == ("unknown", 2)
    assert posts(fake)["x"] == 0

    with pytest.raises(InputInvalid, match="attempt"):
        office.confirm(item_id, "x", by="rina", not_posted=True, attempt=-1)
    with pytest.raises(Refused, match="is at attempt 2, and there has been no attempt 3"):
        office.confirm(item_id, "x", by="rina", not_posted=True, attempt=3)
    assert actions(office, item_id) == before
    # Confirming the attempt it is at now is taken.
    report = office.confirm(item_id, "x", by="rina", url="https://x.com/fisipub/status/2",
                            attempt=2)
    assert report.publications["x"].state == "posted"


def test_a_confirmation_never_settles_an_attempt_begun_while_confirming(
        office, fake, clock, image, monkeypatch):
    """Without ``attempt``, the answer is about the attempt read when confirming: a new
    attempt that another worker starts between that read and the write is left alone."""
    item_id = ready(office, image, ["x"])
    publisher(fake, "x").fail_with = OutcomeUnknown("connection reset")
    office.post(item_id, by="rina")
    store = office._store
    read = store.publications

    def then_tried_again(org, item, conn=None):
        found = read(org, item, conn)
        monkeypatch.setattr(store, "publications", read)
        _tried_again_meanwhile(office, clock, item_id, "x")
        return found

    monkeypatch.setattr(store, "publications", then_tried_again)
    publisher(fake, "x").fail_with = None
    with pytest.raises(Refused, match=r"changed while it was being confirmed \(it is "
                                      r"'unknown' at attempt 2 now\); nothing was recorded"):
        office.confirm(item_id, "x", by="rina", not_posted=True)
    record = office.publications(item_id)["x"]
    assert (record.state, record.attempts) == ("unknown", 2)
    assert posts(fake)["x"] == 0


def test_a_manual_channel_waits_for_a_person_and_their_confirmation_closes_it(
        office, fake, hooks, image):
    office.add_channel("tiktok", "manual", settings={"instructions": "account @fisipub"},
        by="admin")
    item_id = ready(office, image, ["x", "tiktok"])

    report = office.post(item_id, by="rina")
    tiktok = report.publications["tiktok"]
    assert tiktok.state == "waiting"
    assert "account @fisipub" in tiktok.error_message
    assert f"humasflow confirm {item_id} tiktok --url" in tiktok.error_message
    assert report.needs_person == ["tiktok"]
    assert not report.done
    assert report.item.state == "post"
    assert office.run_due() == []  # nothing a worker can do: it does not keep coming back
    (waiting,) = hooks.named("channel_unknown")
    assert waiting["publication"].state == "waiting"

    report = office.confirm(item_id, "tiktok", by="rina",
                            url="https://www.tiktok.com/@fisipub/video/1")
    assert report.done
    assert report.publications["tiktok"].url == "https://www.tiktok.com/@fisipub/video/1"
    assert len(hooks.named("item_posted")) == 1


def test_the_item_closes_only_when_every_channel_is_posted_or_skipped(
        office, fake, clock, image):
    item_id = ready(office, image)
    publisher(fake, "fb").fail_with = OutcomeUnknown("timeout")
    publisher(fake, "ig").fail_with = PlatformError("502 Bad Gateway")

    assert office.post(item_id, by="rina").item.state == "post"   # fb unknown, ig failed
    office.confirm(item_id, "fb", by="rina", url="https://facebook.com/fisipub/posts/1")
    assert office.item(item_id).state == "post"                     # ig still failed
    clock.advance(seconds=60)
    office.run_due()
    assert office.item(item_id).state == "posted"


# -- scheduling ---------------------------------------------------------------------------------


def test_a_scheduled_item_is_posted_by_run_due_when_its_time_comes(office, fake, clock, image):
    item_id = ready(office, image)
    at = clock() + dt.timedelta(hours=2)

    with pytest.raises(ValueError, match="naive"):
        office.schedule(item_id, at.replace(tzinfo=None), by="rina")
    with pytest.raises(RoleRequired):
        office.schedule(item_id, at, by="budi")
    item = office.schedule(item_id, at, by="rina")
    assert item.state == "post"
    data = office.history(item_id)[-1].data
    assert {k: v for k, v in data.items() if k != "rows"} == {"post_at": at.isoformat()}
    assert set(data["rows"]["items"][str(item_id)]) == {"schedule"}

    assert office.run_due() == []
    clock.advance(dt.timedelta(hours=2) - S)
    assert office.run_due() == []
    assert posts(fake) == {"fb": 0, "ig": 0, "x": 0}

    clock.advance(S)
    (report,) = office.run_due()
    assert report.done
    assert posts(fake) == {"fb": 1, "ig": 1, "x": 1}
    assert office.run_due() == []


def test_items_waiting_for_a_person_never_fill_a_run_and_starve_the_others(
        office, fake, clock, image):
    office.add_channel("tiktok", "manual", by="admin")
    waiting = [ready(office, image, ["tiktok"]) for _ in range(2)]
    for item_id in waiting:
        office.post(item_id, by="rina")  # each now waits for a person
    publisher(fake, "x").fail_with = ContentRejected("refused")
    failed = ready(office, image, ["x"])
    office.post(failed, by="rina")  # failed for good: a person decides
    due = ready(office, image, ["fb"])
    office.schedule(due, clock(), by="rina")

    (report,) = office.run_due(limit=1)
    assert report.item.id == due
    assert report.done


def test_only_an_item_at_the_posting_step_can_be_scheduled(office, fake, clock):
    item = office.new_item("Dies Natalis", by="rina", channels=["x"])
    with pytest.raises(NotAllowedNow):
        office.schedule(item.id, clock(), by="rina")


# -- hooks and the record -----------------------------------------------------------------------


def test_hooks_report_each_channel_and_the_item_with_enough_to_act_on(
        office, fake, hooks, clock, image):
    item_id = ready(office, image)
    publisher(fake, "fb").fail_with = OutcomeUnknown("timeout")
    publisher(fake, "ig").fail_with = PlatformError("503")
    office.post(item_id, by="rina")

    posted = {k["publication"].channel: k for k in hooks.named("channel_posted")}
    assert list(posted) == ["x"]
    assert posted["x"]["item"].id == item_id
    assert posted["x"]["publication"].url == "https://fake.example/x/1"
    (failed,) = hooks.named("channel_failed")
    assert failed["publication"].channel == "ig"
    assert failed["publication"].error_message == "503"
    assert failed["publication"].next_attempt_at == clock() + 60 * S
    (unknown,) = hooks.named("channel_unknown")
    assert (unknown["publication"].channel, unknown["publication"].error_message) == (
        "fb", "timeout")
    assert hooks.named("item_posted") == []

    office.confirm(item_id, "fb", by="rina", url="https://facebook.com/fisipub/posts/9")
    clock.advance(seconds=60)
    office.run_due()
    (done,) = hooks.named("item_posted")
    assert done["item"].id == item_id
    assert done["item"].state == "posted"
    assert {n: p.state for n, p in done["publications"].items()} == {
        "fb": "posted", "ig": "posted", "x": "posted"}
    assert done["publications"]["fb"].url == "https://facebook.com/fisipub/posts/9"


def test_the_record_holds_every_channel_outcome_and_stays_verifiable(
        office, fake, clock, image):
    item_id = ready(office, image)
    publisher(fake, "ig").fail_with = PlatformError("503")
    office.post(item_id, by="rina")
    retry_at = clock() + 60 * S
    clock.set(retry_at)
    office.run_due()

    events = [e for e in office.history(item_id) if e.action.startswith("channel_")]
    outcomes = sorted((e.action, e.data["channel"], e.data["state"]) for e in events)
    assert outcomes == [("channel_failed", "ig", "failed"), ("channel_posted", "fb", "posted"),
                        ("channel_posted", "ig", "posted"), ("channel_posted", "x", "posted")]
    ig_posted = next(e for e in events if e.action == "channel_posted"
                     and e.data["channel"] == "ig")
    assert ig_posted.data["url"] == "https://fake.example/ig/1"
    assert ig_posted.data["platform_id"] == "fake-1"
    failed = next(e for e in events if e.action == "channel_failed")
    assert failed.data["error_class"] == "PlatformError"
    assert failed.data["next_attempt_at"] == retry_at.isoformat()
    closing = office.history(item_id)[-1]
    assert closing.to_state == "posted"
    assert set(closing.data["channels"]) == {"fb", "ig", "x"}
    assert office.verify().ok


# -- the safety net: crashes and reconciliation -------------------------------------------------


def test_an_attempt_cut_off_by_a_crash_becomes_unknown_never_a_blind_repost(
        office, fake, hooks, clock, image):
    item_id = ready(office, image, ["x", "fb"])
    office.schedule(item_id, clock(), by="rina")
    office._store.ensure_publications(office.org, item_id, ["x", "fb"], clock())
    # A worker claims x, then its machine dies before the answer is recorded.
    assert office._store.claim(office.org, item_id, "x", "dead-worker", clock(),
                              clock() + dt.timedelta(minutes=15),
                              gate=gate(office, item_id)) is not None

    (report,) = office.run_due()  # lease still running: x is left alone
    assert report.publications["x"].state == "in_flight"
    assert posts(fake, ["fb", "x"]) == {"fb": 1, "x": 0}

    clock.advance(minutes=16)
    (report,) = office.run_due()
    x = report.publications["x"]
    assert (x.state, x.error_class) == ("unknown", "Interrupted")
    assert "dead-worker" in x.error_message
    assert posts(fake, ["fb", "x"]) == {"fb": 1, "x": 0}  # x was never posted blindly
    assert hooks.named("channel_unknown")[-1]["publication"].channel == "x"


@attrs.define
class Searchable(FakePublisher):
    """A fake that can look a post up after an unknown outcome."""

    found: Any = None
    lookups: int = 0

    def reconcile(self, post, progress):
        self.lookups += 1
        if isinstance(self.found, Exception):
            raise self.found
        return self.found


@pytest.mark.parametrize(("found", "state", "reposted"), [
    (Receipt("1790001", "https://x.com/fisipub/status/1790001"), "posted", 0),
    (None, "posted", 1),
    (OutcomeUnknown("search is down"), "unknown", 0),
])
def test_an_unknown_outcome_is_reconciled_with_the_platform(
        office, fake, image, found, state, reposted):
    fake.publishers["x"] = x = Searchable(channel="x", found=found)
    item_id = ready(office, image, ["x"])
    x.fail_with = OutcomeUnknown("timed out after sending")
    office.post(item_id, by="rina")

    (report,) = office.run_due()
    assert x.lookups == 1
    assert report.publications["x"].state == state
    assert len(x.posted) == reposted
    if isinstance(found, Receipt):
        assert report.publications["x"].url == found.url
        assert ("channel_posted", "x") in actions(office, item_id)


def test_a_look_up_never_settles_a_later_attempt(office, fake, clock, image):
    """The answer of a look-up is about the attempt it looked up: if another worker found
    that one absent and started a new attempt meanwhile, which ended unknown too, the
    answer must not set the channel back to pending (the new attempt may be on the
    platform: a second post would follow)."""
    @attrs.define
    class Overtaken(Searchable):
        def reconcile(self, post, progress):
            self.lookups += 1
            if self.lookups == 1:
                assert _tried_again_meanwhile(office, clock, post.item_id, "x") == 2
            return None  # attempt 1 is not on the platform

    fake.publishers["x"] = x = Overtaken(channel="x")
    item_id = ready(office, image, ["x"])
    x.fail_with = OutcomeUnknown("timed out after sending")
    office.post(item_id, by="rina")
    x.fail_with = None

    office.run_due()
    record = office.publications(item_id)["x"]
    assert (record.state, record.attempts) == ("unknown", 2)
    assert x.posted == []  # nothing posted again on an answer about attempt 1


# -- fan-out ------------------------------------------------------------------------------------


def test_the_channels_of_an_item_are_posted_at_the_same_time(office, fake, image):
    barrier = threading.Barrier(3, timeout=10)
    lock = threading.Lock()
    in_flight = [0, 0]  # now, most seen

    @attrs.define
    class Meeting(FakePublisher):
        def publish(self, post, progress=None):
            with lock:
                in_flight[0] += 1
                in_flight[1] = max(in_flight)
            try:
                barrier.wait()  # breaks (and the channel fails) unless all three arrive
            finally:
                with lock:
                    in_flight[0] -= 1
            return super().publish(post, progress)

    for name in ("x", "fb", "ig"):
        fake.publishers[name] = Meeting(channel=name)
    item_id = ready(office, image)

    report = office.post(item_id, by="rina")
    assert {n: p.state for n, p in report.publications.items()} == {
        "fb": "posted", "ig": "posted", "x": "posted"}, report.publications
    assert in_flight[1] == 3
    assert report.done


# -- leases: a heartbeat while publish() runs; a claim taken over is let go ---------------------


def test_a_heartbeat_renews_the_lease_while_publish_runs(office, fake, clock, image):
    renewed = []

    @attrs.define
    class Slow(FakePublisher):
        def publish(self, post, progress=None):
            clock.advance(minutes=10)  # the call takes ten minutes
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                lease = office.publications(post.item_id)[post.channel].lease_until
                if lease == clock() + LEASE:
                    renewed.append(lease)
                    break
                time.sleep(0.01)
            return super().publish(post, progress)

    fake.publishers["x"] = Slow(channel="x")
    item_id = ready(office, image, ["x"])
    dispatcher = office.dispatcher(heartbeat=0.01)  # a real-time heartbeat, sped up

    report = dispatcher.post(item_id, office.actor("rina"))

    assert renewed, "the heartbeat never renewed the lease while publish() ran"
    assert report.done
    assert (report.publications["x"].claimed_by, report.publications["x"].lease_until) == (
        None, None)


def test_a_heartbeat_stops_once_the_claim_is_lost():
    answers = iter([True, False])
    calls = []

    def renew() -> bool:
        calls.append(1)
        return next(answers, True)

    with Heartbeat(0.001).keep(renew):
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)
    assert len(calls) == 2


def test_the_heartbeat_beats_a_third_of_the_lease_and_more_often_than_it_runs_out(
        office, tmp_path):
    heartbeat = office.dispatcher(lease=dt.timedelta(minutes=9)).heartbeat
    assert isinstance(heartbeat, Heartbeat)
    assert heartbeat.interval == 180
    assert office.dispatcher(heartbeat=dt.timedelta(seconds=20)).heartbeat.interval == 20
    with pytest.raises(ValueError, match="more often"):
        office.dispatcher(heartbeat=LEASE)
    with pytest.raises(ValueError, match="positive"):
        Heartbeat(0)
    manual = ManualHeartbeat()
    assert office.dispatcher(heartbeat=manual).heartbeat is manual
    # One connection for every thread: an in-memory store gets no heartbeat thread.
    with temp_office(url=":memory:") as memory:
        assert memory.dispatcher().heartbeat is None


def test_a_lease_renewed_after_it_was_seen_expired_is_not_taken_over(
        office, fake, clock, image, monkeypatch):
    item_id = ready(office, image, ["x"])
    office._store.ensure_publications(office.org, item_id, ["x"], clock())
    claimed = office._store.claim(office.org, item_id, "x", "slow-worker", clock(),
                                 clock() + LEASE, gate=gate(office, item_id))
    clock.advance(minutes=16)
    stale = office._store.expired_leases(office.org, clock(), item_id)
    assert [p.channel for p in stale] == ["x"]
    # The slow worker's heartbeat gets through just after another worker read the record.
    assert office._store.renew_lease(office.org, item_id, "x", "slow-worker", claimed.attempts,
                                    clock() + LEASE)
    monkeypatch.setattr(office._store, "expired_leases", lambda *args, **kwargs: stale)

    report = office.post(item_id, by="rina")

    x = report.publications["x"]
    assert (x.state, x.claimed_by, x.attempts) == ("in_flight", "slow-worker", 1)
    assert "channel_unknown" not in [action for action, _ in actions(office, item_id)]
    assert posts(fake, ["x"]) == {"x": 0}


@attrs.define
class Gated(FakePublisher):
    """Each publish waits at its own gate; the first ends with a server error. It can
    look posts up: none is there."""

    entered: list = attrs.field(factory=lambda: [threading.Event() for _ in range(2)])
    release: list = attrs.field(factory=lambda: [threading.Event() for _ in range(2)])
    calls: int = 0

    def publish(self, post, progress=None):
        n, self.calls = self.calls, self.calls + 1
        self.entered[n].set()
        assert self.release[n].wait(30)
        if n == 0:
            raise PlatformError("503 after a long wait", code=503)
        return super().publish(post, progress)

    def reconcile(self, post, progress):
        return None


def _in_thread(target, errors):
    def run():
        try:
            target()
        except BaseException as exc:  # reported by the test
            errors.append(exc)
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_worker_whose_claim_was_taken_over_never_records_over_the_new_attempt(
        office, fake, clock, image):
    """Even under the same worker id (two dispatchers of one process): the attempt
    number tells the attempts apart."""
    fake.publishers["x"] = x = Gated(channel="x")
    item_id = ready(office, image, ["x"])
    errors: list[BaseException] = []
    frozen = office.dispatcher(worker_id="humas-pc:4242", heartbeat=ManualHeartbeat())
    first = _in_thread(lambda: frozen.post(item_id, office.actor("rina")), errors)
    assert x.entered[0].wait(30)

    clock.advance(minutes=16)  # the first attempt's lease runs out; it is taken over
    again = office.dispatcher(worker_id="humas-pc:4242", heartbeat=ManualHeartbeat())
    second = _in_thread(again.run_due, errors)
    assert x.entered[1].wait(30)

    x.release[0].set()  # the first attempt ends (a 503) while the second is in flight
    first.join(30)
    during = office.publications(item_id)["x"]
    assert (during.state, during.attempts) == ("in_flight", 2)

    x.release[1].set()
    second.join(30)
    assert errors == []
    report = office.status(item_id)
    assert report.done
    assert (report.publications["x"].state, report.publications["x"].attempts) == ("posted", 2)
    assert len(x.posted) == 1
    assert [a for a, _ in actions(office, item_id) if a.startswith("channel_")] == [
        "channel_unknown", "channel_absent", "channel_posted"]
    assert office.verify().ok


def test_a_lost_claim_is_an_orderly_stop_not_an_outcome():
    assert issubclass(ClaimLost, HumasflowError)
    assert not issubclass(ClaimLost, PublishError)  # never recorded as a channel's outcome
    error = ClaimLost(item_id=7, channel="x", worker="humas-pc:4242")
    assert (error.item_id, error.channel, error.worker) == (7, "x", "humas-pc:4242")
    assert "taken over" in str(error)


# -- unknown outcomes: looked up with a backoff, or left to a person ----------------------------


def test_unknown_outcomes_nobody_can_look_up_never_fill_a_run(office, fake, clock, image):
    for _ in range(2):
        item_id = ready(office, image, ["x"])
        publisher(fake, "x").fail_with = OutcomeUnknown("timed out after sending")
        assert office.post(item_id, by="rina").publications["x"].state == "unknown"
    due = ready(office, image, ["fb"])
    office.schedule(due, clock(), by="rina")

    (report,) = office.run_due(limit=1)

    assert report.item.id == due
    assert report.done
    clock.advance(days=1)
    assert office.run_due() == []  # a person confirms them; no pass comes back


def test_a_look_up_that_cannot_tell_is_repeated_after_a_growing_wait(
        office, fake, clock, image):
    fake.publishers["x"] = x = Searchable(channel="x", found=OutcomeUnknown("search is down"))
    item_id = ready(office, image, ["x"])
    x.fail_with = OutcomeUnknown("timed out after sending")
    office.post(item_id, by="rina")

    (report,) = office.run_due()
    assert x.lookups == 1
    assert report.publications["x"].state == "unknown"
    assert report.publications["x"].next_attempt_at == clock() + 30 * S
    assert office.run_due() == []
    assert x.lookups == 1

    for wait in (30, 60, 120):  # the channel's base delay, doubling
        clock.advance(seconds=wait - 1)
        assert office.run_due() == []
        clock.advance(seconds=1)
        office.run_due()
    assert x.lookups == 4

    office.post(item_id, by="rina")  # a person asking to post looks it up at once
    assert x.lookups == 5
    x.found = Receipt("1790001", "https://x.com/fisipub/status/1790001")
    clock.set(office.publications(item_id)["x"].next_attempt_at)
    (report,) = office.run_due()
    assert report.done
    assert report.publications["x"].next_attempt_at is None
    assert x.posted == []  # never re-posted


def test_a_look_up_wait_is_at_most_the_channels_longest_delay(office, fake, clock, image):
    office.add_channel("x", "fake", settings={"retry": {"base_delay": 60, "max_delay": 100}},
        by="admin")
    fake.publishers["x"] = x = Searchable(channel="x", found=OutcomeUnknown("search is down"))
    item_id = ready(office, image, ["x"])
    x.fail_with = OutcomeUnknown("timed out after sending")
    office.post(item_id, by="rina")
    waits = []
    for _ in range(3):
        (report,) = office.run_due()
        waits.append(report.publications["x"].next_attempt_at - clock())
        clock.set(report.publications["x"].next_attempt_at)
    assert waits == [60 * S, 100 * S, 100 * S]


# -- what the messages tell a person to run -----------------------------------------------------


def _run_cli(command: str, store_url: str, clock, **values: str):
    """Run ``command`` (as printed, placeholders filled in) with the humasflow CLI."""
    for placeholder, value in values.items():
        command = command.replace(placeholder, value)
    words = shlex.split(command)
    assert words[0] == "humasflow"
    # The office fixture's media store: beside a SQLite file, ./media-store for PostgreSQL.
    media = ["--media-store", "media-store"] if "://" in store_url else []
    return CliRunner().invoke(cli, ["--db", store_url, *media, *words[1:]],
                              obj={"clock": clock, "environ": {}})


def test_a_manual_channels_instructions_end_with_a_command_a_person_can_run(
        office, fake, clock, image, store_url):
    office.add_channel("tiktok", "manual", by="admin")
    item_id = ready(office, image, ["tiktok"])
    message = office.post(item_id, by="rina").publications["tiktok"].error_message
    command = message.partition("then confirm it: ")[2]
    assert command == f"humasflow confirm {item_id} tiktok --url <public URL> --as <your id>"

    url = "https://www.tiktok.com/@fisipub/video/1"
    result = _run_cli(command, store_url, clock,
                      **{"<public URL>": url, "<your id>": "rina"})

    assert result.exit_code == 0, result.output
    report = office.status(item_id)
    assert report.done
    assert report.publications["tiktok"].url == url


def test_a_channel_that_failed_for_good_says_how_to_post_it_again(
        office, fake, clock, image, store_url):
    publisher(fake, "x").fail_with = AuthenticationFailed("the token expired")
    item_id = ready(office, image, ["x"])
    message = office.post(item_id, by="rina").publications["x"].error_message
    command = message[message.index("humasflow retry"):]
    assert command == f"humasflow retry {item_id} x --as <your id>"

    result = _run_cli(command, store_url, clock, **{"<your id>": "rina"})

    assert result.exit_code == 0, result.output
    assert office.status(item_id).done
    assert posts(fake, ["x"]) == {"x": 1}


# -- the record: who had it posted, and which worker did it -------------------------------------


def test_outcome_events_name_who_had_it_posted_and_the_worker_in_their_data(
        office, fake, clock, image):
    fake.publishers["x"] = x = Searchable(channel="x", found=None)
    x.fail_with = OutcomeUnknown("timed out after sending")
    publisher(fake, "ig").fail_with = PlatformError("503")
    item_id = ready(office, image)
    office.dispatcher(worker_id="humas-pc:4242").post(item_id, office.actor("sari"))
    clock.advance(seconds=60)
    (report,) = office.dispatcher(worker_id="cron:77").run_due()
    assert report.done

    events = [e for e in office.history(item_id) if e.action.startswith("channel_")]
    seen = sorted((e.action, e.data["channel"], e.actor, e.data["worker"]) for e in events)
    assert seen == [
        ("channel_absent", "x", "sari", "cron:77"),
        ("channel_failed", "ig", "sari", "humas-pc:4242"),
        ("channel_posted", "fb", "sari", "humas-pc:4242"),
        ("channel_posted", "ig", "sari", "cron:77"),
        ("channel_posted", "x", "sari", "cron:77"),
        ("channel_unknown", "x", "sari", "humas-pc:4242"),
    ]
    closing = office.history(item_id)[-1]
    assert (closing.action, closing.actor) == ("complete", "sari")
    assert office.verify().ok


def test_a_person_s_answer_is_theirs_alone(office, fake, image):
    publisher(fake, "x").fail_with = OutcomeUnknown("timed out after sending")
    item_id = ready(office, image, ["x"])
    office.post(item_id, by="rina")
    office.confirm(item_id, "x", by="sari", url="https://x.com/fisipub/status/1")
    (confirmed,) = [e for e in office.history(item_id) if e.action == "channel_confirmed"]
    assert confirmed.actor == "sari"
    assert "worker" not in confirmed.data


# -- the outbox settles itself after a crash ----------------------------------------------------


def test_the_outbox_finds_its_posts_and_nothing_else(office):
    outbox = office._publisher(office.channels()["outbox"])
    post = Post(item_id=7, channel="outbox", title="Dies Natalis", text="Selamat!")
    assert outbox.reconcile(post, {}) is None

    half = outbox.path / ".item-7-outbox.tmp"  # a write cut off half-way
    half.mkdir(parents=True)
    (half / "post.json").write_text('{"item": 7, "te', "utf-8")
    assert outbox.reconcile(post, {}) is None
    (outbox.path / "item-7-outbox").mkdir()  # a folder without its post.json is no post
    assert outbox.reconcile(post, {}) is None
    (outbox.path / "item-7-outbox").rmdir()

    receipt = outbox.publish(post, {})
    assert outbox.reconcile(post, {}) == receipt
    assert not half.exists()
    other = attrs.evolve(post, item_id=8)
    assert outbox.reconcile(other, {}) is None


@pytest.mark.parametrize("when", ["while_copying_media", "before_the_outcome"])
def test_an_outbox_post_cut_off_by_a_crash_settles_itself(
        store_url, tmp_path, image, monkeypatch, when):
    clock = SteerableClock()
    injector = FaultInjector()
    store = injector.watch(Store(store_url))
    folder = tmp_path / "outbox"

    def make_office() -> Office:
        return Office(Store(store_url), clock=clock, environ={}, media_store="media-store")

    try:
        office = Office(store, clock=clock, environ={}, media_store="media-store")
        office.establish(by="Dekan")
        staffed_office(office)
        office.add_channel("outbox", "outbox", settings={"path": str(folder)}, by="admin")
        item = item_ready_to_post(office, text="Selamat Dies Natalis!", media=[image],
                                  channels=["outbox"])
        if when == "before_the_outcome":
            injector.arm("crash_before_outcome")
        else:
            copy = shutil.copyfileobj

            def crash_once(*args, **kwargs):
                monkeypatch.setattr(shutil, "copyfileobj", copy)
                raise Crash("killed while copying the media")

            monkeypatch.setattr(shutil, "copyfileobj", crash_once)
        with pytest.raises(Crash):
            office.post(item.id, by="rina")

        resume_after_restart(make_office, clock)

        report = office.status(item.id)
        assert report.done, report.publications
        assert report.needs_person == []
        name = f"item-{item.id}-outbox-{office.post_for(item, 'outbox').idempotency_key}"
        assert sorted(p.name for p in folder.iterdir()) == [name]
        assert report.publications["outbox"].platform_id == name
        settled = [a for a, _ in actions(office, item.id) if a.startswith("channel_")]
        assert settled == (["channel_unknown", "channel_posted"] if when == "before_the_outcome"
                           else ["channel_unknown", "channel_absent", "channel_posted"])
        assert office.verify().ok
    finally:
        store.close()


# -- claims in one transaction; writers of one store take turns ------------------------------


def test_claim_channels_takes_every_claimable_channel_at_once_and_leaves_held_ones(
        office, fake, clock, image):
    item_id = ready(office, image, ["x", "fb", "ig"])
    store, lease = office._store, clock() + dt.timedelta(minutes=15)
    store.ensure_publications(office.org, item_id, ["x", "fb", "ig"], clock())
    assert store.claim(office.org, item_id, "x", "other-worker", clock(), lease,
                       gate=gate(office, item_id)) is not None
    claimed = store.claim_channels(office.org, item_id, ["x", "fb", "ig"], "worker-1",
                                   clock(), lease, gate=gate(office, item_id))
    assert sorted(claimed) == ["fb", "ig"]  # x is the other worker's
    assert all(p.state == "in_flight" and p.claimed_by == "worker-1" and p.attempts == 1
               for p in claimed.values())
    records = office.publications(item_id)
    assert records["x"].claimed_by == "other-worker"
    assert {n: r.claimed_by for n, r in records.items()} == {
        "fb": "worker-1", "ig": "worker-1", "x": "other-worker"}
    assert store.claim_channels(office.org, item_id, ["fb", "ig"], "worker-2", clock(),
                                lease, gate=gate(office, item_id)) == {}


def test_claim_channels_claims_none_once_the_item_changed(office, fake, clock, image):
    item_id = ready(office, image, ["x", "fb"])
    store = office._store
    store.ensure_publications(office.org, item_id, ["x", "fb"], clock())
    seen = gate(office, item_id)
    office.revise(item_id, by="rina", text="Teks yang belum disetujui")
    with pytest.raises(ItemChanged, match=f"item {item_id} changed"):
        store.claim_channels(office.org, item_id, ["x", "fb"], "worker-1", clock(),
                             clock() + dt.timedelta(minutes=15), gate=seen)
    assert {n: r.state for n, r in office.publications(item_id).items()} == {
        "fb": "pending", "x": "pending"}


def test_writers_of_one_store_take_turns(tmp_path):
    store = Store(tmp_path / "turns.db", busy_timeout=0)
    holding, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        with store.writing():
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(5)
        # Busy timeout 0: a second writer of the same store fails at once, and says why.
        with pytest.raises(StoreLocked), store.writing():
            pass
    finally:
        release.set()
        holder.join(5)
    store.close()

    store = Store(tmp_path / "turns.db", busy_timeout=10)
    order: list[int] = []

    def write(n: int) -> None:
        try:
            for _ in range(20):
                with store.writing() as conn:
                    order.append(n)
                    conn.exec_driver_sql("SELECT 1")
                    order.append(n)
        except BaseException as exc:  # pragma: no cover - the assertion below says it
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    store.close()
    assert errors == []
    assert len(order) == 160
    # Each transaction ran alone: its two marks are next to each other.
    assert all(order[i] == order[i + 1] for i in range(0, len(order), 2))
