"""Improving the procedure (SOP step 11): proposals from change objects, checked by the
SOP loader; a precise diff; establishment by administrators only, with a note; the
history; and items started before a new revision keep theirs. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

import pytest

from humasflow.errors import AdminRequired, DefinitionError
from humasflow.revision import (
    AddStep,
    MoveStep,
    RemoveStep,
    SetActor,
    SetHeader,
    SetStandardTime,
    diff,
    propose,
)


def test_a_proposal_and_its_diff(office):
    new = office.propose_revision([
        SetStandardTime("approve", "30m"), SetActor("recheck", "coordinator"),
        MoveStep("prepare", after="design"), SetHeader("number", "UN10/05-rev1")])
    assert new.step("approve").standard_time == dt.timedelta(minutes=30)
    assert new.step("recheck").actor == "coordinator"
    assert [s.key for s in new.steps][1:4] == ["concept", "design", "prepare"]
    found = office.revision_diff(office.current_revision(), new)
    assert (found.added, found.removed) == ((), ())
    assert found.moved == (("prepare", 3, 4),)
    assert ("approve", "standard_time", "10m", "30m") in found.fields
    assert ("recheck", "actor", "staff", "coordinator") in found.fields
    assert ("sop", "number", "UN10/F11.07/HK.01.02.a/05", "UN10/05-rev1") in found.fields
    assert "step approve: standard_time 10m -> 30m" in found.text()
    assert found.to_dict()["moved"] == [{"step": "prepare", "from": 3, "to": 4}]
    assert not office.revision_diff(1, 1)
    assert office.revision_diff(1, 1).text() == "no differences"


def test_add_and_remove_steps():
    from humasflow import bundled_sop

    old = bundled_sop()
    extra = {"key": "legal", "phase": "execution",
             "activity": {"id": "Periksa hukum", "en": "Legal check"},
             "actor": "coordinator", "standard_time": "10m", "output": "notes"}
    # Each output kind belongs to one step: the "notes" of step 3 go to the new step.
    new = propose(old, [RemoveStep("prepare"), AddStep(extra, after="design")])
    assert [s.key for s in new.steps][1:5] == ["concept", "design", "legal", "approve"]
    assert new.step("legal").number == 4
    found = diff(old, new)
    assert (found.added, found.removed) == (("legal",), ("prepare",))
    back = propose(new, [RemoveStep("legal"), AddStep(dict(old.data["steps"][2]),
                                                     after="concept")])
    assert not diff(old, back)
    with pytest.raises(DefinitionError, match="repeats the output 'notes'"):
        propose(old, [AddStep(extra, after="design")])  # the loader's own check


def test_bad_proposals_are_refused(office):
    with pytest.raises(ValueError, match="no step 'aprove'"):
        office.propose_revision([SetStandardTime("aprove", "30m")])
    with pytest.raises(DefinitionError):
        office.propose_revision([SetStandardTime("approve", "soon")])
    with pytest.raises(DefinitionError):
        office.propose_revision([SetActor("approve", "dean")])
    with pytest.raises(ValueError, match="not a change"):
        office.propose_revision(["approve faster"])


def test_establish_keeps_items_on_their_revision(office, clock):
    before = office.new_item("Started before", by="rina")
    new = office.propose_revision([SetStandardTime("concept", "20m")])
    with pytest.raises(AdminRequired):
        office.establish(new, by="budi", effective=clock.now)
    rev = office.establish(new, by="admin", effective=clock.now,
                           note="evaluation of January: concepts take longer")
    assert office.current_revision() == rev
    after = office.new_item("Started after", by="rina")
    assert office.item(before.id).sop_revision == 1
    assert office.item(after.id).sop_revision == rev
    # The old item is still judged by its own standard time (5 minutes, not 20).
    assert office.item(before.id).due_at == before.due_at
    assert after.due_at - after.step_started_at == dt.timedelta(minutes=20)
    office.complete(before.id, by="rina", text="Teks")
    assert office.item(before.id).sop_revision == 1
    history = office.revision_history()
    assert [(h["id"], h["note"], h["items"]) for h in history] == [
        (1, "", 1), (rev, "evaluation of January: concepts take longer", 1)]
    assert office.verify().ok
