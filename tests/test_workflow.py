"""The workflow's guards: every action the SOP does not allow is refused with its own
error, and a refusal changes nothing (same version, same record), on SQLite and
PostgreSQL."""

from __future__ import annotations

from importlib import resources

import attrs
import pytest
import sqlalchemy as sa
import transitions

from humasflow import (
    ApprovalStale,
    ContentInvalid,
    ContentItem,
    FourEyesRequired,
    HumasflowError,
    NotAllowedNow,
    OutputMissing,
    Refused,
    RoleRequired,
    parse_sop,
)
from humasflow.storage import schema
from humasflow.workflow import TRIGGERS

BUNDLED_TEXT = resources.files("humasflow").joinpath(
    "sops", "fisip-ub-social-media.toml").read_text("utf-8")

# -- helpers --------------------------------------------------------------------------------


def state_of(office, item_id):
    """What a refusal must leave untouched: the stored item and its record."""
    return office.item(item_id), [e.hash for e in office.history(item_id)]


def refused(office, item_id, error, action, *args, **kwargs):
    """Run ``action`` expecting ``error``; assert nothing was written; return the error."""
    before_item, before_events = state_of(office, item_id)
    with pytest.raises(error) as caught:
        action(*args, **kwargs)
    after_item, after_events = state_of(office, item_id)
    assert after_item.version == before_item.version
    assert len(after_events) == len(before_events) == after_item.version
    assert after_events == before_events
    assert after_item == before_item
    return caught.value


def at_step(office, image, step, *, by="rina", text="Selamat Dies Natalis FISIP UB"):
    """Create an item and walk it to ``step`` the ordinary way."""
    item = office.new_item("Dies Natalis", by=by)
    path = ["concept", "prepare", "design", "approve", "produce", "recheck", "post", "posted"]
    moves = {
        "concept": lambda i: office.complete(i, by=by, text=text),
        "prepare": lambda i: office.complete(i, by=by, notes="Canva template 'dies'"),
        "design": lambda i: office.complete(i, by=by, media=[image]),
        "approve": lambda i: office.approve(i, by="budi", answer="OK by email"),
        "produce": lambda i: office.complete(i, by="rina", media=[image]),
        "recheck": lambda i: office.pass_recheck(i, by="sari"),
        "post": lambda i: office.post(i, by="rina").item,
    }
    for current in path[:path.index(step)]:
        item = moves[current](item.id)
        assert item.state == path[path.index(current) + 1]
    return item


@pytest.fixture
def crew(office):
    """The fixture's cast plus someone with both roles and someone with none."""
    office.add_actor("dewi", "Dewi Lestari", roles=["staff", "coordinator"], by="admin")
    office.add_actor("tamu", "Tamu", roles=[], by="admin")
    return office


# -- RoleRequired ---------------------------------------------------------------------------


def test_staff_cannot_approve_the_coordinators_step(crew, image):
    item = at_step(crew, image, "approve")
    err = refused(crew, item.id, RoleRequired, crew.approve, item.id, by="sari")
    assert (err.role, err.actor_id, err.step, err.action) == ("coordinator", "sari", "approve",
                                                              "approve")


def test_coordinator_cannot_complete_a_staff_step(crew, image):
    item = at_step(crew, image, "concept")
    err = refused(crew, item.id, RoleRequired, crew.complete, item.id, by="budi", text="x")
    assert (err.role, err.actor_id) == ("staff", "budi")


def test_coordinator_cannot_recheck_the_staff_step(crew, image):
    item = at_step(crew, image, "recheck")
    err = refused(crew, item.id, RoleRequired, crew.pass_recheck, item.id, by="budi")
    assert err.role == "staff"


def test_an_actor_without_roles_cannot_cancel(crew, image):
    item = at_step(crew, image, "design")
    err = refused(crew, item.id, RoleRequired, crew.cancel, item.id, by="tamu",
                  reason="not needed")
    assert err.actor_id == "tamu"
    assert "coordinator" in err.role
    assert "staff" in err.role


def test_only_the_first_steps_role_may_create_an_item(crew):
    with pytest.raises(RoleRequired) as caught:
        crew.new_item("Rapat", by="budi")
    assert caught.value.role == "staff"
    assert crew.items() == []


# -- FourEyesRequired -----------------------------------------------------------------------


def test_a_coordinator_who_wrote_the_concept_cannot_approve_it(crew, image):
    item = at_step(crew, image, "approve", by="dewi")
    err = refused(crew, item.id, FourEyesRequired, crew.approve, item.id, by="dewi")
    assert err.actor_id == "dewi"
    # Nor reject it: every decision needs the second person.
    refused(crew, item.id, FourEyesRequired, crew.reject, item.id, by="dewi", reason="no")
    assert crew.approve(item.id, by="budi").state == "produce"


def test_a_coordinator_who_only_revised_the_design_cannot_approve_it(crew, image):
    item = at_step(crew, image, "approve")
    crew.revise(item.id, by="dewi", text="Dirgahayu FISIP UB")
    refused(crew, item.id, FourEyesRequired, crew.approve, item.id, by="dewi")


def test_four_eyes_false_lets_the_author_approve(crew, image):
    text = BUNDLED_TEXT.replace("four_eyes = true", "four_eyes = false")
    assert text != BUNDLED_TEXT
    crew.establish(parse_sop(text, source="no-four-eyes.toml"), by="admin")
    item = at_step(crew, image, "approve", by="dewi")
    assert crew.sop(item.sop_revision).header.four_eyes is False
    assert crew.approve(item.id, by="dewi").state == "produce"


# -- OutputMissing --------------------------------------------------------------------------


@pytest.mark.parametrize(("step", "output", "act"), [
    ("concept", "concept", lambda o, i: o.complete(i, by="rina", text="   ")),
    ("concept", "concept", lambda o, i: o.complete(i, by="rina")),
    ("prepare", "notes", lambda o, i: o.complete(i, by="rina", notes="")),
    ("design", "design", lambda o, i: o.complete(i, by="rina")),
    ("design", "design", lambda o, i: o.complete(i, by="rina", media=[])),
    ("approve", "reason", lambda o, i: o.reject(i, by="budi", reason="  ")),
    ("recheck", "findings", lambda o, i: o.rework(i, by="sari", findings="")),
    ("design", "reason", lambda o, i: o.cancel(i, by="rina", reason="")),
    ("produce", "production", lambda o, i: o.complete(i, by="rina")),
    ("produce", "production", lambda o, i: o.complete(i, by="rina", media=[])),
    ("concept", "revision", lambda o, i: o.revise(i, by="rina")),
], ids=["concept-blank", "concept-none", "notes", "design-none", "design-empty",
        "reject-no-reason", "rework-no-findings", "cancel-no-reason", "produce-none",
        "produce-empty", "revise-nothing"])
def test_a_step_cannot_finish_without_its_output(crew, image, step, output, act):
    item = at_step(crew, image, step)
    err = refused(crew, item.id, OutputMissing, act, crew, item.id)
    assert err.output == output
    assert err.step == step
    assert repr(output) in str(err)


# -- NotAllowedNow --------------------------------------------------------------------------


def test_approve_at_the_concept_step_is_not_allowed_now(crew, image):
    item = at_step(crew, image, "concept")
    err = refused(crew, item.id, NotAllowedNow, crew.approve, item.id, by="budi")
    assert err.step == "concept"
    assert err.allowed == ("complete", "revise", "cancel")


@pytest.mark.parametrize("closed", ["posted", "cancelled"])
def test_no_action_is_allowed_on_a_closed_item(crew, image, closed):
    if closed == "posted":
        item = at_step(crew, image, "posted")
    else:
        item = at_step(crew, image, "recheck")
        item = crew.cancel(item.id, by="budi", reason="event postponed")
    assert item.state == closed
    assert crew.allowed(item.id) == []
    for action in TRIGGERS:
        for who in ("rina", "budi"):
            err = refused(crew, item.id, NotAllowedNow, crew.act, item.id, action, by=who,
                          note="because")
            assert err.allowed == ()
    refused(crew, item.id, NotAllowedNow, crew.post, item.id, by="rina")


def test_a_machine_error_never_reaches_the_caller(crew, image):
    item = at_step(crew, image, "concept")
    for action in ("teleport", "to_posted", "pass", "approve"):
        err = refused(crew, item.id, NotAllowedNow, crew.act, item.id, action, by="rina")
        assert not isinstance(err, transitions.MachineError)
        assert isinstance(err, HumasflowError)
    engine = crew.engine(item.sop_revision)
    actor = crew.actor("rina")
    with pytest.raises(NotAllowedNow):
        engine.run(item, "to_posted", actor)


def test_complete_at_the_posting_step_is_refused_in_favour_of_post(crew, image):
    """Only post() closes the item: it records each channel before completing the step."""
    item = at_step(crew, image, "post")
    err = refused(crew, item.id, Refused, crew.complete, item.id, by="rina")
    assert "post()" in str(err)
    assert crew.publications(item.id) == {} or all(
        p.state != "posted" for p in crew.publications(item.id).values())
    assert crew.post(item.id, by="rina").item.state == "posted"


# -- ApprovalStale ----------------------------------------------------------------------------


def test_revise_after_approval_returns_to_approval_and_withdraws_it(crew, image):
    item = at_step(crew, image, "produce")
    approved = item.approved_digest
    assert item.is_approved
    item = crew.revise(item.id, by="rina", text="Dirgahayu FISIP UB ke-65")
    assert item.state == "approve"
    assert item.approved_digest is None
    assert not item.is_approved
    last = crew.history(item.id)[-1]
    assert (last.action, last.from_state, last.to_state) == ("revise", "produce", "approve")
    assert last.data["approval_withdrawn"] is True
    # Posting needs the coordinator again: the item is no longer past the approval.
    refused(crew, item.id, NotAllowedNow, crew.post, item.id, by="rina")
    item = crew.approve(item.id, by="budi")
    assert item.approved_digest == item.post.digest != approved
    item = crew.complete(item.id, by="rina", media=[image])
    item = crew.pass_recheck(item.id, by="sari")
    assert crew.post(item.id, by="rina").item.state == "posted"


def test_revise_before_approval_stays_at_the_step(crew, image):
    item = at_step(crew, image, "design")
    revised = crew.revise(item.id, by="sari", text="Versi kedua")
    assert revised.state == "design"
    assert revised.version == item.version + 1
    assert revised.post.text == "Versi kedua"
    assert "sari" in revised.authors


def _change_post_behind_the_workflow(office, item_id, text):
    """Simulate content changed without a recorded revision (e.g. a direct edit)."""
    item = office.item(item_id)
    post = attrs.evolve(item.post, text=text).to_dict()
    with office._store.writing() as conn:
        conn.execute(sa.update(schema.items).where(schema.items.c.id == item_id)
                     .values(post=post))


@pytest.mark.parametrize(("step", "act"), [
    ("produce", lambda o, i, image: o.complete(i, by="rina", media=[image])),
    ("recheck", lambda o, i, image: o.pass_recheck(i, by="sari")),
    ("post", lambda o, i, image: o.post(i, by="rina")),
])
def test_content_that_differs_from_the_approved_digest_is_stale(crew, image, step, act):
    item = at_step(crew, image, step)
    _change_post_behind_the_workflow(crew, item.id, "Teks yang tidak disetujui")
    err = refused(crew, item.id, ApprovalStale, act, crew, item.id, image)
    assert err.step == step


def test_the_engine_refuses_a_stale_snapshot(crew, image):
    item = at_step(crew, image, "produce")
    engine = crew.engine(item.sop_revision)
    stale = attrs.evolve(item, post=attrs.evolve(item.post, text="changed"))
    with pytest.raises(ApprovalStale):
        engine.run(stale, "complete", crew.actor("rina"), payload={"media": [image]})


# -- ContentInvalid -------------------------------------------------------------------------


def test_a_design_whose_media_file_does_not_exist_is_refused_when_attached(crew, image, tmp_path):
    item = at_step(crew, image, "design")
    missing = str(tmp_path / "no-such-poster.png")
    err = refused(crew, item.id, ContentInvalid, crew.complete, item.id, by="rina",
                  media=[missing])
    assert [(p.channel, p.field, p.rule) for p in err.problems] == [
        ("-", "media[0]", "file_exists")]
    assert missing in str(err)


# -- payload not taken ------------------------------------------------------------------------


def test_text_at_the_production_step_is_refused_pointing_to_revise(crew, image):
    item = at_step(crew, image, "produce")
    err = refused(crew, item.id, Refused, crew.complete, item.id, by="rina", media=[image],
                  text="new text")
    assert type(err) is Refused
    assert "does not take text=..." in str(err)
    assert "revise" in str(err)


def test_a_decision_takes_no_payload(crew, image):
    item = at_step(crew, image, "approve")
    err = refused(crew, item.id, Refused, crew.act, item.id, "approve", by="budi",
                  text="sneaky edit")
    assert "revise" in str(err)


# -- no shortcuts around the SOP ------------------------------------------------------------


def test_the_machine_has_no_auto_transitions(crew, image):
    item = at_step(crew, image, "concept")
    machine = crew.engine(item.sop_revision).machine
    assert machine.auto_transitions is False
    assert not [name for name in machine.events if name.startswith("to_")]


def test_content_items_have_no_to_state_methods_and_are_frozen(crew, image):
    item = at_step(crew, image, "recheck")
    assert isinstance(item, ContentItem)
    assert not [a for a in dir(item) if a.startswith("to_")]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        item.state = "posted"  # type: ignore[misc]
    assert crew.item(item.id).state == "recheck"


def test_the_machine_binds_no_item_and_defines_every_move(crew, image):
    """The machine is the definition and holds no model (no item is ever bound to it);
    it has no to_<state> shortcut, and an action allows and takes exactly the
    transitions the machine defines for its (state, trigger)."""
    item = at_step(crew, image, "concept")
    engine = crew.engine(item.sop_revision)
    done = crew.complete(item.id, by="rina", text="Konsep")
    assert engine.machine.models == []
    assert not [t for t in engine.machine.events if t.startswith("to_")]
    for state in engine.machine.states:
        assert sorted(engine.allowed(state)) == sorted(engine.machine.get_triggers(state))
    (transition,) = engine.machine.events["complete"].transitions["concept"]
    assert done.state == transition.dest == crew.item(item.id).state
