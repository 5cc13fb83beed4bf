"""Post identity: a store UUID, a globally unique item key, and the post's idempotency key.

Two stores (two faculties on separate files, staging and production, a rebuilt
database) must never take each other's posts as their own.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from humasflow import ConfigurationError, InputInvalid, Office, Post, idempotency_key
from humasflow.storage import Store
from humasflow.storage.schema import MIGRATIONS
from humasflow.testing import SteerableClock, item_ready_to_post, staffed_office

KEY = re.compile(r"hf-[0-9a-f]{32}")


def make_office(target: str | Path, outbox: Path, clock: SteerableClock) -> Office:
    office = Office(Store(target), clock=clock, environ={})
    office.establish(by="Dekan")
    staffed_office(office)
    office.add_channel("outbox", "outbox", settings={"path": str(outbox)}, by="admin")
    return office


# -- the store and its items ------------------------------------------------------------------


def test_every_store_has_its_own_uuid_kept_across_opens(store_url, tmp_path):
    first = Store(store_url)
    try:
        made = first.uuid
        assert uuid.UUID(made)
    finally:
        first.close()
    again = Store(store_url)
    try:
        assert again.uuid == made
    finally:
        again.close()
    other = Store(tmp_path / "other.db")
    try:
        assert other.uuid != made
    finally:
        other.close()


def test_every_item_gets_a_globally_unique_key_at_creation(office):
    first = office.new_item("Dies Natalis", by="rina")
    second = office.new_item("Webinar", by="rina")
    assert uuid.UUID(first.key)
    assert first.key != second.key
    assert office.item(first.id).key == first.key
    created = office.history(first.id)[0]
    assert created.data["key"] == first.key
    # Moves never change it.
    office.complete(first.id, by="rina", text="Selamat")
    assert office.item(first.id).key == first.key


def test_the_idempotency_key_is_stable_per_item_and_channel_and_distinct_otherwise(
        office, image, tmp_path, clock):
    item = item_ready_to_post(office, text="Selamat", media=[image])
    key = office.post_for(item, "outbox").idempotency_key
    assert KEY.fullmatch(key)
    assert office.post_for(office.item(item.id), "outbox").idempotency_key == key
    assert key == idempotency_key(office._store.uuid, item.key, "outbox")
    assert office.post_for(item, "x").idempotency_key != key
    other = office.new_item("Webinar", by="rina")
    assert office.post_for(other, "outbox").idempotency_key != key
    # Another store's item with the same number has another key.
    elsewhere = make_office(tmp_path / "elsewhere.db", tmp_path / "out2", clock)
    try:
        twin = elsewhere.new_item("Dies Natalis", by="rina")
        assert elsewhere.post_for(twin, "outbox").idempotency_key != key
    finally:
        elsewhere.close()


def test_two_stores_in_one_outbox_folder_never_take_each_others_posts(tmp_path, image):
    """Staging and production (or a rebuilt database) writing into one outbox folder."""
    shared = tmp_path / "shared-outbox"
    clock = SteerableClock()
    production = make_office(tmp_path / "production.db", shared, clock)
    staging = make_office(tmp_path / "staging.db", shared, clock)
    try:
        ours = item_ready_to_post(production, text="Produksi", media=[image])
        theirs = item_ready_to_post(staging, text="Uji coba", media=[image])
        assert ours.id == theirs.id == 1
        assert production.post(ours.id, by="rina").done
        outbox = staging._publisher(staging.channels()["outbox"])
        post = staging.post_for(theirs, "outbox")
        # The staging store looks its post up after a crash: production's is not it.
        assert outbox.reconcile(post, {}) is None
        assert staging.post(theirs.id, by="rina").done
        folders = sorted(p.name for p in shared.iterdir())
        assert len(folders) == 2
        texts = sorted((shared / f / "post.json").read_text("utf-8") for f in folders)
        assert any("Produksi" in t for t in texts)
        assert any("Uji coba" in t for t in texts)
        receipt = production.publications(ours.id)["outbox"]
        key = production.post_for(ours, "outbox").idempotency_key
        assert receipt.platform_id == f"item-1-outbox-{key}"
    finally:
        production.close()
        staging.close()


def test_the_outbox_reconciles_only_a_post_with_its_own_key(tmp_path):
    office = make_office(tmp_path / "h.db", tmp_path / "out", SteerableClock())
    try:
        outbox = office._publisher(office.channels()["outbox"])
        mine = Post(item_id=7, channel="outbox", title="t", text="Selamat",
                    idempotency_key="hf-" + "a" * 32)
        receipt = outbox.publish(mine, {})
        assert outbox.reconcile(mine, {}) == receipt
        other = Post(item_id=7, channel="outbox", title="t", text="Selamat",
                     idempotency_key="hf-" + "b" * 32)
        assert outbox.reconcile(other, {}) is None
    finally:
        office.close()


# -- channel configuration --------------------------------------------------------------------


def test_an_outbox_path_is_made_absolute_when_the_channel_is_configured(
        office, image, tmp_path, monkeypatch):
    here = tmp_path / "configured-here"
    here.mkdir()
    monkeypatch.chdir(here)
    channel = office.add_channel("rel", "outbox", settings={"path": "posts"}, by="admin")
    assert channel.settings["path"] == str(here / "posts")
    assert office.channels()["rel"].settings["path"] == str(here / "posts")
    monkeypatch.chdir(tmp_path)  # where the poster is attached from
    item = item_ready_to_post(office, text="Selamat", media=[image], channels=["rel"])
    elsewhere = tmp_path / "posting-from-here"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert office.post(item.id, by="rina").done
    assert list((here / "posts").iterdir())
    assert not (elsewhere / "posts").exists()


@pytest.mark.parametrize("name", ["../evil", "a/b", "with space", "", "dot.name", "x" * 65,
                                  "tab\tname", "/abs", "ünï"])
def test_a_channel_name_must_be_a_slug(office, name):
    before = list(office._store.events(office.org, "org"))
    # A control character is refused as such (InputInvalid) before the slug rule.
    expected = InputInvalid if "\t" in name else ConfigurationError
    with pytest.raises(expected, match=r"letters, digits, '-' or '_'|control character"):
        office.add_channel(name, "outbox", by="admin")
    assert name not in office.channels()
    assert list(office._store.events(office.org, "org")) == before


def test_slugs_are_accepted(office):
    for name in ("instagram", "x-main", "fb_page", "A1", "y" * 64):
        assert office.add_channel(name, "outbox", by="admin").name == name


def test_the_channel_event_holds_the_full_row(office, tmp_path):
    office.add_channel("web", "outbox", settings={"path": str(tmp_path / "w")},
                       credentials={"token": "WEB_TOKEN"}, by="admin")
    event = list(office._store.events(office.org, "org"))[-1]
    assert (event.action, event.actor) == ("channel", "admin")
    data = {k: v for k, v in event.data.items() if k != "rows"}  # rows: digests
    assert data == {"name": "web", "publisher": "outbox",
                          "settings": {"path": str(tmp_path / "w")},
                          "credentials": {"token": "WEB_TOKEN"}, "active": True}


# -- the migration ------------------------------------------------------------------------------


def _back_to_version_2(store: Store) -> None:
    """Turn a store into what schema version 2 left on disk."""
    with store.writing() as conn:
        conn.execute(sa.text("DROP INDEX ux_items_key"))
        conn.execute(sa.text("ALTER TABLE items DROP COLUMN key"))
        conn.execute(sa.text("ALTER TABLE actors DROP COLUMN active"))
        conn.execute(sa.text("ALTER TABLE channels DROP COLUMN active"))
        conn.execute(sa.text("DROP TABLE store_meta"))
        conn.execute(sa.text("DELETE FROM schema_migrations WHERE version > 2"))


def test_the_migration_gives_an_old_store_a_uuid_and_its_items_keys(store_url, tmp_path):
    assert "store uuid, item keys, active actors and channels" in [m[1] for m in MIGRATIONS]
    clock = SteerableClock()
    office = make_office(store_url, tmp_path / "out", clock)
    first = office.new_item("Dies Natalis", by="rina")
    second = office.new_item("Webinar", by="rina")
    _back_to_version_2(office._store)
    office.close()

    store = Store(store_url)
    try:
        assert store.schema_version == MIGRATIONS[-1][0]
        assert uuid.UUID(store.uuid)
        reopened = Office(store, clock=clock, environ={})
        keys = {reopened.item(first.id).key, reopened.item(second.id).key}
        assert len(keys) == 2
        assert all(uuid.UUID(k) for k in keys)
        assert all(a.active for a in reopened.actors())
        assert reopened.channels()["outbox"].active
        assert reopened.administrators()[0].id == "admin"
    finally:
        store.close()
