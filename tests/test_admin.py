"""Who may administer: actors, roles, channels and SOP revisions need an administrator.

The attack these tests keep out: a staff member made herself coordinator and created a
second identity that approved her own item; any ``by=`` could add channels or establish
an SOP revision with ``four_eyes = false``.
"""

from __future__ import annotations

import datetime as dt
from importlib import resources

import pytest

from humasflow import (
    ADMIN_ROLE,
    ActorInactive,
    AdminRequired,
    ChannelInactive,
    ContentRejected,
    NotAllowedNow,
    Office,
    Refused,
    RoleRequired,
    parse_sop,
)
from humasflow.storage import Store
from humasflow.testing import (
    FakePublisher,
    SteerableClock,
    fake_publisher_plugin,
    item_ready_to_post,
    plugin_registered,
    staffed_office,
)

BUNDLED_TEXT = resources.files("humasflow").joinpath(
    "sops", "fisip-ub-social-media.toml").read_text("utf-8")


def org_actions(office: Office) -> list[tuple[str, str]]:
    return [(e.action, e.actor) for e in office._store.events(office.org, "org")]


@pytest.fixture
def fake(office):
    plugin = fake_publisher_plugin()
    with plugin_registered(plugin):
        office.add_channel("x", "fake", by="admin")
        yield plugin


# -- the attack ---------------------------------------------------------------------------


def test_staff_cannot_make_herself_coordinator_nor_a_second_identity(office, image):
    with pytest.raises(AdminRequired) as caught:
        office.add_actor("rina", "Rina Wulandari", roles=["staff", "coordinator"], by="rina")
    assert isinstance(caught.value, RoleRequired)
    assert caught.value.actor_id == "rina"
    assert caught.value.role == ADMIN_ROLE
    assert "only an active administrator" in str(caught.value)
    with pytest.raises(AdminRequired):
        office.add_actor("rina2", "Rina Kedua", roles=["coordinator"], by="rina")
    # Nor in the name of a nobody, or of the coordinator.
    for by in ("nobody", "budi"):
        with pytest.raises(AdminRequired):
            office.add_actor("rina2", "Rina Kedua", roles=["coordinator"], by=by)
    assert office.actor("rina").roles == {"staff"}
    assert "rina2" not in {a.id for a in office.actors()}


def test_only_an_administrator_adds_channels(office):
    with pytest.raises(AdminRequired):
        office.add_channel("leak", "outbox", settings={"path": "/tmp/leak"}, by="rina")
    assert "leak" not in office.channels()


def test_only_an_administrator_establishes_a_revision(office):
    relaxed = parse_sop(BUNDLED_TEXT.replace("four_eyes = true", "four_eyes = false"),
                        source="relaxed.toml")
    before = len(office.revisions())
    for by in ("rina", "budi", "Dekan"):
        with pytest.raises(AdminRequired):
            office.establish(relaxed, by=by)
    assert len(office.revisions()) == before
    assert office.sop().header.four_eyes is True
    rev = office.establish(relaxed, by="admin")
    assert office.revisions()[-1]["established_by"] == "admin"
    assert office.sop(rev).header.four_eyes is False


def test_by_is_required_for_administration(office):
    with pytest.raises(TypeError):
        office.add_actor("x", "X", roles=["staff"])  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        office.add_channel("y", "outbox")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        office.establish()  # type: ignore[call-arg]


# -- bootstrap ------------------------------------------------------------------------------


def test_the_first_administrator_is_made_once(store_url, clock):
    store = Store(store_url)
    try:
        office = Office(store, clock=clock, environ={})
        office.establish(by="Dekan")  # set-up: no administrator yet
        with pytest.raises(AdminRequired) as caught:
            office.add_actor("rina", "Rina", roles=["staff"], by="rina")
        assert "bootstrap_admin" in str(caught.value)
        admin = office.bootstrap_admin("ani", "Ani Admin", email="ani@example.ac.id")
        assert admin.roles == {ADMIN_ROLE}
        assert admin.is_admin
        assert [a.id for a in office.administrators()] == ["ani"]
        with pytest.raises(Refused, match="already has an administrator"):
            office.bootstrap_admin("rina", "Rina")
        # After set-up even a second revision needs the administrator.
        with pytest.raises(AdminRequired):
            office.establish(by="Dekan")
        office.add_actor("rina", "Rina", roles=["staff"], by="ani")
        assert org_actions(office) == [("establish", "Dekan"), ("bootstrap_admin", "ani"),
                                       ("actor", "ani")]
        events = list(office._store.events(office.org, "org"))
        data = {k: v for k, v in events[1].data.items() if k != "rows"}  # rows: digests
        assert data == {"id": "ani", "name": "Ani Admin",
                                  "email": "ani@example.ac.id", "roles": ["admin"],
                                  "active": True}
    finally:
        store.close()


def test_the_admin_role_is_no_sop_role(office):
    text = BUNDLED_TEXT.replace('key = "staff"', 'key = "admin"').replace(
        'actor = "staff"', 'actor = "admin"')
    from humasflow import DefinitionError
    with pytest.raises(DefinitionError, match="built-in administrator role"):
        office.establish(parse_sop(text, source="admin-role.toml"), by="admin")
    assert ADMIN_ROLE not in office.sop().roles
    # An administrator may hold SOP roles too, and 'admin' is accepted beside them.
    office.add_actor("dewi", "Dewi", roles=["staff", ADMIN_ROLE], by="admin")
    assert office.actor("dewi").is_admin


def test_the_last_administrator_cannot_be_removed(office):
    with pytest.raises(Refused, match="last active administrator"):
        office.deactivate_actor("admin", by="admin")
    with pytest.raises(Refused, match="last active administrator"):
        office.add_actor("admin", "Administrator", roles=["staff"], by="admin")
    office.add_actor("ani", "Ani", roles=[ADMIN_ROLE], by="admin")
    office.deactivate_actor("admin", by="ani")
    with pytest.raises(AdminRequired, match="deactivated"):
        office.add_actor("eko", "Eko", roles=["staff"], by="admin")


# -- deactivation -------------------------------------------------------------------------


def test_a_deactivated_actor_cannot_act_or_be_assigned(office, image):
    item = office.new_item("Dies Natalis", by="rina")
    office.deactivate_actor("sari", by="admin", reason="left the office")
    event = list(office._store.events(office.org, "org"))[-1]
    assert (event.action, event.actor, event.note) == ("actor_deactivated", "admin",
                                                       "left the office")
    data = {k: v for k, v in event.data.items() if k != "rows"}  # rows: digests
    assert data == {"id": "sari", "name": "Sari Dewi", "email": "sari@example.ac.id",
                          "roles": ["staff"], "active": False}
    assert office.actor("sari").active is False
    with pytest.raises(ActorInactive):
        office.complete(item.id, by="sari", text="Selamat")
    with pytest.raises(ActorInactive):
        office.new_item("Webinar", by="sari")
    with pytest.raises(ActorInactive):
        office.assign(item.id, "sari", by="budi")
    with pytest.raises(ActorInactive):
        office.new_item("Webinar", by="rina", assignee="sari")
    # Never deleted: the record still points to them; and they can come back.
    assert "sari" in {a.id for a in office.actors()}
    office.activate_actor("sari", by="admin")
    assert office.complete(item.id, by="sari", text="Selamat").state == "prepare"
    with pytest.raises(AdminRequired):
        office.deactivate_actor("rina", by="budi")


def test_a_deactivated_channel_is_no_default_target_and_is_not_posted_to(office, fake, image):
    item_id = item_ready_to_post(office, text="Selamat", media=[image]).id
    office.deactivate_channel("x", by="admin", reason="account suspended")
    event = list(office._store.events(office.org, "org"))[-1]
    assert event.action == "channel_deactivated"
    assert event.data["active"] is False
    assert event.data["name"] == "x"
    assert event.data["publisher"] == "fake"
    assert office.new_item("Webinar", by="rina").post.channels == ("outbox",)
    with pytest.raises(ChannelInactive, match="'x' is deactivated"):
        office.new_item("Webinar", by="rina", channels=["x"])
    with pytest.raises(ChannelInactive) as caught:
        office.post(item_id, by="rina")
    assert caught.value.channel == "x"
    assert fake.publishers.get("x") is None or fake.publishers["x"].posted == []
    assert office.item(item_id).state == "post"
    office.activate_channel("x", by="admin")
    assert office.post(item_id, by="rina").done
    with pytest.raises(AdminRequired):
        office.deactivate_channel("x", by="rina")


def test_a_scheduled_run_does_not_post_to_a_deactivated_channel(office, fake, image, clock):
    item_id = item_ready_to_post(office, text="Selamat", media=[image], channels=["x"]).id
    office.schedule(item_id, clock() + dt.timedelta(minutes=5), by="rina")
    office.deactivate_channel("x", by="admin")
    clock.advance(minutes=10)
    office.run_due()
    pub = office.publications(item_id)["x"]
    assert pub.state == "failed"
    assert pub.error_class == "ChannelInactive"
    assert fake.publishers.get("x") is None or fake.publishers["x"].posted == []


# -- assign -------------------------------------------------------------------------------


def test_assign_checks_who_assigns_to_whom_and_the_state(office, image):
    office.add_actor("tamu", "Tamu", roles=[], by="admin")
    item = office.new_item("Dies Natalis", by="rina")
    with pytest.raises(RoleRequired):
        office.assign(item.id, "sari", by="sari")  # neither coordinator nor assignee
    with pytest.raises(RoleRequired):
        office.assign(item.id, "tamu", by="budi")  # no role for this step
    with pytest.raises(RoleRequired):
        office.assign(item.id, "budi", by="rina")  # a coordinator does not draft
    assert office.assign(item.id, "sari", by="rina").assignee == "sari"  # the assignee
    assert office.assign(item.id, "rina", by="budi").assignee == "rina"  # the coordinator
    assert office.assign(item.id, "sari", by="admin").assignee == "sari"  # an administrator
    office.cancel(item.id, by="rina", reason="postponed")
    with pytest.raises(NotAllowedNow):
        office.assign(item.id, "rina", by="budi")


def test_an_item_at_approval_may_go_to_a_coordinator_or_back_to_staff(office, image):
    item = office.new_item("Dies Natalis", by="rina")
    office.complete(item.id, by="rina", text="Selamat")
    office.complete(item.id, by="rina", notes="template")
    office.complete(item.id, by="rina", media=[image])
    assert office.assign(item.id, "budi", by="rina").assignee == "budi"
    assert office.assign(item.id, "sari", by="budi").assignee == "sari"


# -- a schedule whose authority is gone -----------------------------------------------------


@pytest.mark.parametrize("loss", ["role", "deactivated"])
def test_a_schedule_waits_when_its_scheduler_lost_the_role(office, image, clock, loss):
    item_id = item_ready_to_post(office, text="Selamat", media=[image]).id
    office.schedule(item_id, clock() + dt.timedelta(minutes=5), by="rina")
    if loss == "role":
        office.add_actor("rina", "Rina Wulandari", roles=["coordinator"], by="admin")
    else:
        office.deactivate_actor("rina", by="admin")
    clock.advance(minutes=10)
    assert office.run_due() == []
    item = office.item(item_id)
    assert item.state == "post"  # not half-closed: nothing was posted
    pub = office.publications(item_id)["outbox"]
    assert pub.state == "pending"
    assert pub.attempts == 0
    assert pub.error_class == "PostingHeld"
    assert "'rina', who scheduled the post" in (pub.error_message or "")
    held = office.history(item_id)[-1]
    assert held.action == "schedule_held"
    assert "rina" in held.note
    # It is no longer due: later passes leave it alone instead of logging it again.
    clock.advance(minutes=10)
    office.run_due()
    assert [e.action for e in office.history(item_id)].count("schedule_held") == 1
    # Someone with the role posts it.
    assert office.post(item_id, by="sari").done


def test_status_shows_why_a_schedule_waits(tmp_path):
    from click.testing import CliRunner

    from humasflow.cli import cli
    db = tmp_path / "humasflow.db"
    clock = SteerableClock()
    image = tmp_path / "poster.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    store = Store(db)
    try:
        office = Office(store, clock=clock, environ={})
        office.establish(by="Dekan")
        staffed_office(office)
        office.add_channel("outbox", "outbox", settings={"path": str(tmp_path / "out")},
                           by="admin")
        item_id = item_ready_to_post(office, text="Selamat", media=[str(image)]).id
        office.schedule(item_id, clock() + dt.timedelta(minutes=5), by="rina")
        office.deactivate_actor("rina", by="admin")
        clock.advance(minutes=10)
        office.run_due()
    finally:
        store.close()
    result = CliRunner().invoke(cli, ["--db", str(db), "status", str(item_id)],
                                obj={"clock": clock, "environ": {}})
    assert result.exit_code == 0, result.output
    assert "Waiting: posting held: 'rina', who scheduled the post, was deactivated" \
        in result.output


# -- skip -----------------------------------------------------------------------------------


def test_skipping_the_last_channel_is_refused_as_a_cancel(office, fake, image):
    fake.publishers["x"] = FakePublisher(channel="x", fail_with=ContentRejected("too long"))
    item_id = item_ready_to_post(office, text="Selamat", media=[image], channels=["x"]).id
    assert office.post(item_id, by="rina").failed == ["x"]
    with pytest.raises(Refused, match="that is a cancel"):
        office.skip(item_id, "x", by="budi", reason="account suspended")
    assert office.publications(item_id)["x"].state == "failed"
    assert office.item(item_id).state == "post"
    assert office.cancel(item_id, by="rina", reason="not worth it").state == "cancelled"


def test_skipping_beside_a_posted_channel_closes_the_item(office, fake, image):
    fake.publishers["x"] = FakePublisher(channel="x", fail_with=ContentRejected("too long"))
    item_id = item_ready_to_post(office, text="Selamat", media=[image],
                                 channels=["x", "outbox"]).id
    assert office.post(item_id, by="rina").failed == ["x"]
    assert office.skip(item_id, "x", by="budi", reason="account suspended").done


# -- the CLI --------------------------------------------------------------------------------


def test_the_cli_needs_an_administrator(tmp_path):
    from click.testing import CliRunner

    from humasflow.cli import cli
    db = str(tmp_path / "humasflow.db")
    seam = {"clock": SteerableClock(), "environ": {}}

    def run(*args: str, code: int = 0) -> str:
        result = CliRunner().invoke(cli, ["--db", db, *args], obj=seam)
        assert result.exit_code == code, (result.output, result.exception)
        return result.output

    out = run("init")
    assert "No administrator yet" in out
    assert "needs an administrator" in run("init", "--outbox", str(tmp_path / "o"), code=1)
    assert "Administrator: ani (Ani)" in run("init", "--admin", "ani", "--name", "Ani")
    assert "already has an administrator" in run("init", "--admin", "eko", "--name", "Eko",
                                                 code=1)
    # No default --by any more.
    assert "Missing option '--by'" in run("actor", "add", "rina", "--name", "Rina",
                                          "--role", "staff", code=2)
    assert "only an active administrator" in run(
        "actor", "add", "rina", "--name", "Rina", "--role", "coordinator", "--by", "rina",
        code=1)
    run("actor", "add", "rina", "--name", "Rina", "--role", "staff", "--as", "ani")
    run("channel", "add", "out", "--publisher", "outbox", "--set",
        f"path={tmp_path / 'o'}", "--by", "ani")
    run("actor", "deactivate", "rina", "--by", "ani", "--reason", "left")
    assert "deactivated" in run("actor", "list")
    run("channel", "deactivate", "out", "--by", "ani")
    assert "deactivated" in run("channel", "list")
    run("channel", "activate", "out", "--by", "ani")
    run("actor", "activate", "rina", "--by", "ani")
    assert "deactivated" not in run("actor", "list") + run("channel", "list")


def test_two_first_administrators_at_once_make_exactly_one(store_url, clock):
    """The check (no administrator yet) and the write are one transaction."""
    import threading

    stores = [Store(store_url) for _ in range(2)]
    try:
        offices = [Office(s, "race", clock=clock, environ={}) for s in stores]
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def bootstrap(office: Office, actor_id: str) -> None:
            barrier.wait()
            try:
                office.bootstrap_admin(actor_id, actor_id.title())
                outcomes.append("made")
            except Refused:
                outcomes.append("refused")

        threads = [threading.Thread(target=bootstrap, args=(o, f"admin{i}"))
                   for i, o in enumerate(offices)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["made", "refused"]
        assert len(offices[0].administrators()) == 1
    finally:
        for s in stores:
            s.close()


def test_open_sets_up_an_organisation_but_never_overrules_its_administrator(tmp_path):
    import humasflow
    db = str(tmp_path / "humasflow.db")
    first = humasflow.open(db, org="fisip", clock=SteerableClock(), environ={})
    try:
        assert [r["established_by"] for r in first.revisions()] == [
            first.sop().header.approved_by_name]
    finally:
        first.close()
    bare = humasflow.open(db, org="fib", clock=SteerableClock(), environ={}, establish=False)
    try:
        bare.bootstrap_admin("tika", "Tika")
    finally:
        bare.close()
    again = humasflow.open(db, org="fib", clock=SteerableClock(), environ={})
    try:
        assert again.revisions() == []  # the administrator establishes it, not open()
        assert again.establish(by="tika") == 2
    finally:
        again.close()
