"""Rule: nothing is posted that is not, at the moment of its claim, the approved and
rechecked content of an item at the posting step.

The posting checks and the claim of each channel are one: a revise or cancel that
commits between them stops the post (``ItemChanged``), and a revise or cancel that comes
after a claim is refused while the channel is in flight. Every event names the state the
item was really in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from humasflow import ItemChanged, Office, Refused
from humasflow.publishing.dispatch import Dispatcher
from humasflow.storage.store import Store
from humasflow.testing import item_ready_to_post, staffed_office


@pytest.fixture
def fake(office):
    from humasflow.testing import fake_publisher_plugin, plugin_registered

    plugin = fake_publisher_plugin()
    with plugin_registered(plugin):
        office.add_channel("x", "fake", by="admin")
        yield plugin


def cut_in_before(owner, method: str, action):
    """Run ``action`` once, just before ``owner.method`` (a pause between check and claim)."""
    real = getattr(owner, method)
    done: list[bool] = []

    def cut(*args, **kwargs):
        if not done:
            done.append(True)
            action()
        return real(*args, **kwargs)

    return cut


def change_item(office, item_id: int, change: str) -> None:
    """What staff or the coordinator do to an item at the posting step: revise or cancel."""
    if change == "revise":
        office.revise(item_id, by="rina", text="Teks yang BELUM disetujui")
    else:
        office.cancel(item_id, by="budi", reason="acara batal")


def chain_of_states(office, item_id: int) -> None:
    """Every event's from_state is the state the event before it left the item in."""
    events = office.history(item_id)
    state = events[0].to_state
    for event in events[1:]:
        assert event.from_state == state, (event.seq, event.action, event.from_state, state)
        state = event.to_state
    assert state == office.item(item_id).state


@pytest.mark.parametrize("change", ["revise", "cancel"])
def test_a_change_between_the_checks_and_the_claim_stops_the_post(
        office, fake, image, monkeypatch, change):
    item = item_ready_to_post(office, text="Teks yang disetujui", media=[image],
                              channels=["x"])

    def meanwhile():
        change_item(office, item.id, change)

    cut = cut_in_before(office._store, "claim_channels", meanwhile)
    monkeypatch.setattr(office._store, "claim_channels", cut)
    with pytest.raises(ItemChanged, match=f"item {item.id} changed"):
        office.post(item.id, by="rina")
    assert fake.publishers["x"].posted == []
    assert office.publications(item.id)["x"].state == "pending"
    assert office.item(item.id).state == ("approve" if change == "revise" else "cancelled")
    chain_of_states(office, item.id)


@pytest.mark.parametrize("change", ["revise", "cancel"])
def test_a_change_before_the_post_record_stops_it_and_records_nothing_false(
        office, fake, image, monkeypatch, change):
    item = item_ready_to_post(office, text="Teks yang disetujui", media=[image],
                              channels=["x"])

    def meanwhile():
        change_item(office, item.id, change)

    cut = cut_in_before(Dispatcher, "_schedule", meanwhile)
    monkeypatch.setattr(Dispatcher, "_schedule", cut)
    with pytest.raises(ItemChanged):
        office.post(item.id, by="rina")
    assert fake.publishers["x"].posted == []
    assert "post" not in [e.action for e in office.history(item.id)]
    chain_of_states(office, item.id)


def test_a_scheduled_post_whose_item_was_cancelled_meanwhile_is_not_posted(
        office, fake, image, clock, monkeypatch):
    item = item_ready_to_post(office, text="Teks", media=[image], channels=["x"])
    office.schedule(item.id, clock(), by="rina")
    cut = cut_in_before(
        office._store, "claim_channels",
        lambda: office.cancel(item.id, by="budi", reason="acara batal"))
    monkeypatch.setattr(office._store, "claim_channels", cut)
    assert office.run_due() == []  # the pass logs the item and goes on
    assert fake.publishers["x"].posted == []
    assert office.item(item.id).state == "cancelled"
    assert all(p.state != "posted" for p in office.publications(item.id).values())
    chain_of_states(office, item.id)


@pytest.mark.parametrize("change", ["revise", "cancel"])
def test_revise_and_cancel_are_refused_while_a_channel_is_claimed(office, fake, image, change):
    item = item_ready_to_post(office, text="Teks", media=[image], channels=["x"])
    refused: list[Exception] = []

    class Interrupting:
        def validate(self, post):
            return []

        def check(self):
            pass

        def publish(self, post, progress):
            try:
                if change == "revise":
                    office.revise(item.id, by="rina", text="Teks lain")
                else:
                    office.cancel(item.id, by="budi", reason="batal")
            except Refused as exc:
                refused.append(exc)
            from humasflow import Receipt
            return Receipt(platform_id="1", url="https://fake.example/1")

    fake.publishers["x"] = Interrupting()  # type: ignore[assignment]
    report = office.post(item.id, by="rina")
    assert report.done
    assert len(refused) == 1
    assert "posted, or may be, on x" in str(refused[0])
    chain_of_states(office, item.id)


RACE_ITEMS = 4
RACE_PROCESSES = 8
RACE_ROUNDS = 25


@pytest.mark.slow
def test_eight_processes_doing_random_actions_never_post_unapproved_or_cancelled_content(
        store_url, tmp_path):
    """Eight processes post, revise, approve, produce, recheck, cancel and schedule the
    same items at random on one store, with pauses injected between the posting checks
    and the claims. Afterwards every post in the outbox is the approved, final content of
    an item that was posted (or is still at the posting step), and no cancelled item has
    a post."""
    outbox = tmp_path / "outbox"
    image = tmp_path / "poster.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    store = Store(store_url)
    media = tmp_path / "media"  # one media store for every process, as a deployment has
    office = Office(store, environ={}, media_store=media, media_roots=[tmp_path])
    office.establish(by="admin")
    staffed_office(office)
    office.add_channel("a", "outbox", settings={"path": str(outbox / "a")}, by="admin")
    office.add_channel("b", "outbox", settings={"path": str(outbox / "b")}, by="admin")
    ids = [item_ready_to_post(office, text=f"Teks {n}", media=[image], title=f"Item {n}").id
           for n in range(RACE_ITEMS)]
    worker = Path(__file__).with_name("_race_worker.py")
    procs = [subprocess.Popen([sys.executable, str(worker), store_url, str(media), str(seed),
                               str(RACE_ROUNDS), *map(str, ids)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in range(RACE_PROCESSES)]
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    posted_channels = 0
    try:
        for item_id in ids:
            item = office.item(item_id)
            pubs = office.publications(item_id)
            chain_of_states(office, item_id)
            for channel in ("a", "b"):
                folder = [f for f in (outbox / channel).glob(f"item-{item_id}-*")
                          if not f.name.startswith(".")]
                if not folder:
                    assert channel not in pubs or pubs[channel].state != "posted"
                    continue
                posted_channels += 1
                body = json.loads((folder[0] / "post.json").read_text("utf-8"))
                assert item.state in ("post", "posted"), (item_id, item.state)
                assert item.is_approved
                assert body["text"] == item.post.text_for(channel)
                assert pubs[channel].state == "posted"
            for event in office.history(item_id):
                if event.action == "channel_posted":
                    assert event.from_state == "post"
        assert office.verify().ok
    finally:
        store.close()
    # The race must have been run, not avoided: some posts went out.
    assert posted_channels > 0
