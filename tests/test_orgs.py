"""Organisations share a store but nothing else: items, actors, channels, SOP revisions
and records of one are invisible to another, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
from importlib import resources

import pytest
import sqlalchemy as sa

from humasflow import (
    DEFAULT_ORG,
    ActorNotFound,
    ConfigurationError,
    ItemNotFound,
    Office,
    RoleRequired,
    SOPNotFound,
    parse_sop,
)
from humasflow.workflow import TRIGGERS


@pytest.fixture
def two(store, clock, tmp_path):
    """FISIP (bundled SOP) and FEB (its own SOP, without the four-eyes rule)."""
    fisip = Office(store, "fisip", clock=clock, environ={}, media_store="media-store")
    fisip.establish(by="Dekan")
    fisip.bootstrap_admin("admin", "Admin FISIP")
    fisip.add_actor("rina", "Rina", roles=["staff"], by="admin")
    fisip.add_actor("budi", "Budi", roles=["coordinator"], by="admin")
    fisip.add_channel("outbox", "outbox", settings={"path": str(tmp_path / "fisip")}, by="admin")

    feb = Office(store, "feb", clock=clock, environ={}, media_store="media-store")
    text = resources.files("humasflow").joinpath("sops", "fisip-ub-social-media.toml") \
        .read_text("utf-8").replace("four_eyes = true", "four_eyes = false")
    feb.establish(parse_sop(text, source="feb.toml"), by="Dekan FEB")
    feb.bootstrap_admin("admin", "Admin FEB")
    feb.add_actor("andi", "Andi", roles=["staff"], by="admin")
    # The same id in another organisation is another person with other roles.
    feb.add_actor("rina", "Rina FEB", roles=["coordinator"], by="admin")
    return fisip, feb


@pytest.fixture
def fisip_item(two):
    fisip, _ = two
    item = fisip.new_item("Seminar", by="rina")
    return fisip.complete(item.id, by="rina", text="Seminar nasional")


def unchanged(office, item):
    assert office.item(item.id) == item
    assert len(office.history(item.id)) == item.version


def test_each_organisation_lists_only_its_own_items(two, fisip_item):
    fisip, feb = two
    feb_item = feb.new_item("Kuliah tamu", by="andi")
    assert [i.id for i in fisip.items()] == [fisip_item.id]
    assert [i.id for i in feb.items()] == [feb_item.id]
    assert [i.id for i in feb.items(state="open")] == [feb_item.id]
    assert feb.items(state="prepare") == []
    assert feb.overdue(fisip.clock().replace(year=2030)) != []
    assert [b.item.id for b in feb.overdue(fisip.clock().replace(year=2030))] == [feb_item.id]


def test_an_actor_of_another_organisation_cannot_list_or_read(two, fisip_item):
    fisip, feb = two
    with pytest.raises(ActorNotFound) as caught:
        fisip.items(by="andi")
    assert caught.value.org == "fisip"
    with pytest.raises(ActorNotFound):
        fisip.item(fisip_item.id, by="andi")
    with pytest.raises(ItemNotFound) as missing:
        feb.item(fisip_item.id, by="andi")
    assert missing.value.org == "feb"
    for read in (feb.item, feb.history, feb.timeline, feb.publications, feb.allowed):
        with pytest.raises(ItemNotFound):
            read(fisip_item.id)
    unchanged(fisip, fisip_item)


@pytest.mark.parametrize("action", [*TRIGGERS, "post"])
def test_an_actor_of_another_organisation_cannot_act(two, fisip_item, action):
    fisip, feb = two
    payload = {"notes": "x"} if action == "complete" else {}
    for office, by, error in ((feb, "andi", ItemNotFound), (fisip, "andi", ActorNotFound),
                              (feb, "rina", ItemNotFound)):
        if action == "post":
            with pytest.raises(error):
                office.post(fisip_item.id, by=by)
        else:
            with pytest.raises(error):
                office.act(fisip_item.id, action, by=by, note="n", **payload)
    unchanged(fisip, fisip_item)


def test_roles_are_read_from_the_acting_organisation(two, image, tmp_path):
    fisip, feb = two
    assert fisip.actor("rina").roles == {"staff"}
    assert feb.actor("rina").roles == {"coordinator"}
    assert {a.id for a in feb.actors()} == {"admin", "andi", "rina"}
    feb.add_channel("feb", "outbox", settings={"path": str(tmp_path / "feb")}, by="admin")
    items = {}
    for office, staff in ((fisip, "rina"), (feb, "andi")):
        item = office.new_item("Kuliah tamu", by=staff)
        item = office.complete(item.id, by=staff, text="Kuliah tamu")
        item = office.complete(item.id, by=staff, notes="Template")
        items[office.org] = office.complete(item.id, by=staff, media=[image])
        assert items[office.org].state == "approve"
    # FEB's coordinator "rina" approves FEB's item; FISIP's staff "rina" cannot approve.
    assert feb.approve(items["feb"].id, by="rina").state == "produce"
    with pytest.raises(RoleRequired):
        fisip.approve(items["fisip"].id, by="rina")


def test_channels_are_scoped(two):
    fisip, feb = two
    assert set(fisip.channels()) == {"outbox"}
    assert feb.channels() == {}
    with pytest.raises(ConfigurationError, match="outbox"):
        feb.new_item("Kuliah tamu", by="andi", channels=["outbox"])
    assert feb.new_item("Kuliah tamu", by="andi").post.channels == ()


def test_sop_revisions_are_scoped_and_items_keep_their_own(two, fisip_item):
    fisip, feb = two
    [fisip_rev] = fisip.revisions()
    [feb_rev] = feb.revisions()
    assert fisip_rev["id"] != feb_rev["id"]
    assert fisip.sop().header.four_eyes is True
    assert feb.sop().header.four_eyes is False
    with pytest.raises(SOPNotFound):
        fisip.sop(feb_rev["id"])
    with pytest.raises(SOPNotFound):
        feb.sop(fisip_rev["id"])
    assert fisip_item.sop_revision == fisip_rev["id"]
    assert feb.new_item("Kuliah tamu", by="andi").sop_revision == feb_rev["id"]


def test_an_organisation_without_a_revision_cannot_start_items(store, clock, two):
    empty = Office(store, "fh", clock=clock, environ={}, media_store="media-store")
    empty.bootstrap_admin("admin", "Admin FH")
    empty.add_actor("sinta", "Sinta", roles=["staff"], by="admin")
    with pytest.raises(SOPNotFound) as caught:
        empty.new_item("Apa saja", by="sinta")
    assert caught.value.org == "fh"


def test_each_organisation_has_its_own_record_numbered_from_one(two):
    fisip, feb = two
    for office in (fisip, feb):
        org_events = [e for e in office._store.events(office.org) if e.stream == "org"]
        assert [e.seq for e in org_events] == list(range(1, len(org_events) + 1))
        assert {e.org for e in org_events} == {office.org}
        assert org_events[0].action == "establish"


def test_verify_is_scoped_to_the_organisation(two, fisip_item):
    fisip, feb = two
    feb_item = feb.new_item("Kuliah tamu", by="andi")
    fisip_report, feb_report = fisip.verify(), feb.verify()
    assert fisip_report.ok
    assert feb_report.ok
    assert fisip_report.events == len(list(fisip._store.events("fisip")))
    assert feb_report.events == len(list(feb._store.events("feb")))
    with feb._store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE events SET note = 'x' WHERE stream = :s"),
                     {"s": f"item:{feb_item.id}"})
    assert fisip.verify().ok
    assert [f.stream for f in feb.verify().findings] == [f"item:{feb_item.id}"]


def test_export_is_scoped_to_the_organisation(two, fisip_item):
    _, feb = two
    feb.new_item("Kuliah tamu", by="andi")
    out = io.StringIO()
    feb.export(out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert rows
    assert {r["org"] for r in rows} == {"feb"}
    assert f"item:{fisip_item.id}" not in {r["stream"] for r in rows}


def test_the_default_organisation_needs_no_mention(store, clock, two, fisip_item):
    office = Office(store, clock=clock, environ={}, media_store="media-store")
    assert office.org == DEFAULT_ORG == "default"
    office.establish(by="Dekan")
    office.bootstrap_admin("admin", "Admin")
    office.add_actor("rina", "Rina", roles=["staff"], by="admin")
    item = office.new_item("Tanpa organisasi", by="rina")
    assert item.org == "default"
    assert [i.id for i in office.items()] == [item.id]
    assert item.id not in [i.id for i in two[0].items()]
    assert set(store.orgs()) == {"default", "fisip", "feb"}
    assert office.verify().ok


def test_open_uses_the_default_organisation_and_establishes_the_bundled_sop(store_url, clock):
    import humasflow

    office = humasflow.open(store_url, clock=clock, environ={})
    try:
        assert office.org == "default"
        assert office.sop().header.number == "UN10/F11.07/HK.01.02.a/05"
        again = humasflow.open(store_url, clock=clock, environ={})
        assert len(again.revisions()) == 1  # not established twice
        again._store.close()
    finally:
        office._store.close()
