"""Property: whatever anyone tries, in any order, the SOP holds.

A hypothesis state machine lets five people (two staff, a coordinator, someone holding
both roles, someone holding none) try every action with valid and invalid outputs on a
few items of a SQLite office. After every step: each item is at a step of the SOP or
closed, every recorded move is one the SOP allows, nothing is posted without an approval
of exactly the posted content, a refused action changed nothing, and the record verifies.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from humasflow import ItemChanged, Refused, RoleRequired
from humasflow.publishing.dispatch import Dispatcher
from humasflow.testing import SteerableClock, sample_image, staffed_office, temp_office
from humasflow.workflow import CLOSED_STATES, TRIGGERS

ACTORS = ["rina", "sari", "budi", "dewi", "tamu"]
ACTIONS = [*TRIGGERS, "post"]
NOTES = ["", "   ", "Alasan / jawaban / temuan"]
# Payload choices; "IMAGE" and "MISSING" are replaced by real paths.
PAYLOADS = [
    {},
    {"text": "Konsep konten"},
    {"text": "   "},
    {"notes": "Canva template"},
    {"notes": ""},
    {"media": ["IMAGE"]},
    {"media": ["MISSING"]},
    {"media": []},
    {"text": "Revisi", "media": ["IMAGE"]},
    {"link": "https://fisip.ub.ac.id"},
    {"bogus": "value"},
]


# The ordinary next move at each step: (action, actor, payload).
NEXT_STEP = {
    "concept": ("complete", "rina", {"text": "Konsep konten"}),
    "prepare": ("complete", "rina", {"notes": "Canva template"}),
    "design": ("complete", "rina", {"media": ["IMAGE"]}),
    "approve": ("approve", "budi", {}),
    "produce": ("complete", "sari", {"media": ["IMAGE"]}),
    "recheck": ("pass", "sari", {}),
    "post": ("post", "rina", {}),
}
# What the runs reached, so the test fails if the interesting paths were never taken.
REACHED: set[str] = set()


def allowed_moves(engine):
    """Every (action, from, to) the SOP's machine defines; internal moves stay put."""
    moves = set()
    for name, event in engine.machine.events.items():
        for source, transitions in event.transitions.items():
            for transition in transitions:
                moves.add((name, source, transition.dest or source))
    return moves


class SOPMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._exit = ExitStack()
        folder = Path(self._exit.enter_context(tempfile.TemporaryDirectory()))
        self.clock = SteerableClock()
        self.office = self._exit.enter_context(temp_office(clock=self.clock,
                                                           media_roots=[folder]))
        staffed_office(self.office)
        self.office.add_actor("dewi", "Dewi", roles=["staff", "coordinator"], by="admin")
        self.office.add_actor("tamu", "Tamu", roles=[], by="admin")
        self.office.add_channel("outbox", "outbox", settings={"path": str(folder / "out")},
                                by="admin")
        self.image = Path(sample_image(folder / "poster.png"))
        self.missing = folder / "missing.png"
        self.item_ids: list[int] = []

    def teardown(self) -> None:
        self._exit.close()

    def _payload(self, choice: dict) -> dict:
        paths = {"IMAGE": str(self.image), "MISSING": str(self.missing)}
        return {k: [paths[m] for m in v] if k == "media" else v for k, v in choice.items()}

    @initialize()
    def first_item(self) -> None:
        self.item_ids.append(self.office.new_item("Item 1", by="rina").id)

    @rule(by=st.sampled_from(ACTORS))
    def new_item(self, by: str) -> None:
        if len(self.item_ids) >= 3:
            return
        try:
            item = self.office.new_item(f"Item {len(self.item_ids) + 1}", by=by)
        except RoleRequired:
            assert not self.office.actor(by).has_role("staff")
            return
        assert self.office.actor(by).has_role("staff")
        self.item_ids.append(item.id)

    @rule(minutes=st.integers(min_value=0, max_value=30))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @rule(pick=st.integers(min_value=0, max_value=2), action=st.sampled_from(ACTIONS),
          by=st.sampled_from(ACTORS), note=st.sampled_from(NOTES),
          payload=st.sampled_from(PAYLOADS))
    def anyone_tries_anything(self, pick: int, action: str, by: str, note: str,
                              payload: dict) -> None:
        self._attempt(self.item_ids[pick % len(self.item_ids)], action, by, note,
                      self._payload(payload))

    @rule(pick=st.integers(min_value=0, max_value=2))
    def the_right_person_does_the_next_step(self, pick: int) -> None:
        """Keeps items moving, so that approval, production and posting are reached."""
        item_id = self.item_ids[pick % len(self.item_ids)]
        state = self.office.item(item_id).state
        if state in CLOSED_STATES:
            return
        action, by, payload = NEXT_STEP[state]
        self._attempt(item_id, action, by, "OK", self._payload(payload))

    @rule(pick=st.integers(min_value=0, max_value=2), by=st.sampled_from(["rina", "dewi"]),
          payload=st.sampled_from([{"text": "Revisi"}, {"media": ["IMAGE"]},
                                   {"link": "https://fisip.ub.ac.id/berita"}]))
    def a_staff_member_revises(self, pick: int, by: str, payload: dict) -> None:
        """Revisions at any step, including after the approval."""
        self._attempt(self.item_ids[pick % len(self.item_ids)], "revise", by, "",
                      self._payload(payload))

    @rule(pick=st.integers(min_value=0, max_value=2),
          until=st.sampled_from(["approve", "produce", "recheck", "post", "posted"]),
          then_revise=st.booleans())
    def the_right_people_move_an_item_up_to(self, pick: int, until: str,
                                            then_revise: bool) -> None:
        """Several ordinary steps at once, so that long paths are common; then perhaps a
        revision, which after the approval must send the item back to the coordinator."""
        item_id = self.item_ids[pick % len(self.item_ids)]
        for _ in range(len(NEXT_STEP)):
            state = self.office.item(item_id).state
            if state in CLOSED_STATES:
                return
            if state == until:
                break
            action, by, payload = NEXT_STEP[state]
            if not self._attempt(item_id, action, by, "OK", self._payload(payload)):
                return
        if then_revise:
            self._attempt(item_id, "revise", "sari", "", {"text": f"Revisi di {until}"})

    def _items_at(self, *states: str) -> list[int]:
        return [i for i in self.item_ids if self.office.item(i).state in states]

    @precondition(lambda self: self._items_at("produce", "recheck", "post"))
    @rule(pick=st.integers(min_value=0, max_value=2), by=st.sampled_from(["rina", "dewi"]),
          payload=st.sampled_from([{"text": "Revisi"}, {"media": ["IMAGE"]}]))
    def a_staff_member_revises_an_approved_item(self, pick: int, by: str,
                                                 payload: dict) -> None:
        """The case the approval exists for: content changed after the coordinator said yes."""
        approved = self._items_at("produce", "recheck", "post")
        self._attempt(approved[pick % len(approved)], "revise", by, "", self._payload(payload))

    @precondition(lambda self: self._items_at("post"))
    @rule(by=st.sampled_from(ACTORS))
    def someone_posts_an_item_at_the_posting_step(self, by: str) -> None:
        self._attempt(self._items_at("post")[0], "post", by, "", {})

    @precondition(lambda self: self._items_at("post"))
    @rule(cut_in=st.sampled_from(["revise", "cancel", "rework-free"]),
          at=st.sampled_from(["claim", "schedule"]))
    def a_revise_or_cancel_commits_between_the_checks_and_the_claim(
            self, cut_in: str, at: str) -> None:
        """The race the claim's own condition exists for: the posting checks pass, then a
        revise or cancel commits, then the channel would be claimed."""
        item_id = self._items_at("post")[0]
        # Just before the claim, or just before the "post" record's own transaction.
        owner = self.office._store if at == "claim" else Dispatcher
        method = "claim_channels" if at == "claim" else "_schedule"
        real = getattr(owner, method)
        done: list[str] = []
        # A text of its own each time: revising to the text an item already has is no
        # change, and is refused.
        self.cuts = getattr(self, "cuts", 0) + 1
        unapproved = f"Teks yang belum disetujui #{self.cuts}"

        def cut(*args, **kwargs):
            if not done:
                done.append(cut_in)
                if cut_in == "revise":
                    self.office.revise(item_id, by="rina", text=unapproved)
                elif cut_in == "cancel":
                    self.office.cancel(item_id, by="budi", reason="acara batal")
            return real(*args, **kwargs)

        setattr(owner, method, cut)
        try:
            report = self.office.post(item_id, by="rina")
        except ItemChanged:
            assert cut_in != "rework-free"
            REACHED.add("post stopped by a change")
            pubs = self.office.publications(item_id)
            assert all(p.state != "posted" for p in pubs.values())
        else:
            assert cut_in == "rework-free"
            assert report.item.state == "posted"
        finally:
            setattr(owner, method, real)

    def _attempt(self, item_id: int, action: str, by: str, note: str, payload: dict) -> bool:
        """Try one action and check what it did; return whether it was recorded."""
        before = self.office.item(item_id)
        before_events = self.office.history(item_id)
        try:
            if action == "post":
                after = self.office.post(item_id, by=by).item
            else:
                after = self.office.act(item_id, action, by=by, note=note, **payload)
        except Refused:
            assert self.office.item(item_id) == before
            assert self.office.history(item_id) == before_events
            return False
        events = self.office.history(item_id)
        assert after == self.office.item(item_id)
        if action != "post":
            assert after.version == before.version + 1
            last = events[-1]
            assert (last.action, last.actor, last.from_state) == (action, by, before.state)
            assert last.to_state == after.state
        elif after.state == "posted":
            REACHED.add("posted")
        if after.state == "approve" and before.state in ("produce", "recheck", "post"):
            REACHED.add("revised after approval")
        assert events[:len(before_events)] == before_events
        return True

    @invariant()
    def items_are_at_a_step_of_the_sop_or_closed(self) -> None:
        for item_id in self.item_ids:
            item = self.office.item(item_id)
            lifecycle = [s.key for s in self.office.sop(item.sop_revision).lifecycle]
            assert item.state in (*lifecycle, *CLOSED_STATES)

    @invariant()
    def every_recorded_move_is_one_the_sop_allows(self) -> None:
        for item_id in self.item_ids:
            item = self.office.item(item_id)
            engine = self.office.engine(item.sop_revision)
            moves = allowed_moves(engine)
            events = self.office.history(item_id)
            assert [e.seq for e in events] == list(range(1, item.version + 1))
            assert (events[0].action, events[0].to_state) == ("create", engine.first_step)
            state = engine.first_step
            for event in events[1:]:
                # Every event, publishing records included, names the state the item
                # was really in.
                assert event.from_state == state, (event, state)
                if event.action not in TRIGGERS:
                    assert event.to_state == state
                    continue  # publishing records: they do not move the item
                assert (event.action, event.from_state, event.to_state) in moves
                state = event.to_state
            assert state == item.state

    @invariant()
    def nothing_is_posted_without_approval_of_exactly_that_content(self) -> None:
        for item_id in self.item_ids:
            item = self.office.item(item_id)
            if item.state != "posted":
                continue
            events = self.office.history(item_id)
            approvals = [i for i, e in enumerate(events) if e.action == "approve"]
            assert approvals, "posted without any approval"
            last = approvals[-1]
            assert events[last].data["digest"] == item.post.digest
            assert item.approved_digest == item.post.digest
            after = [e.action for e in events[last + 1:]]
            assert "revise" not in after
            assert "reject" not in after

    @invariant()
    def a_channel_is_posted_only_from_the_posting_step(self) -> None:
        for item_id in self.item_ids:
            item = self.office.item(item_id)
            posted = [c for c, p in self.office.publications(item_id).items()
                      if p.state == "posted"]
            if posted:
                assert item.state in ("post", "posted"), (item.state, posted)
                assert item.is_approved
            for event in self.office.history(item_id):
                if event.action == "channel_posted":
                    assert event.from_state == "post"

    @invariant()
    def the_record_verifies(self) -> None:
        report = self.office.verify()
        assert report.ok, report.findings


def test_any_sequence_of_actions_by_anyone_keeps_the_sop():
    REACHED.clear()
    run_state_machine_as_test(SOPMachine, settings=settings(
        max_examples=60, stateful_step_count=40, deadline=None,
        suppress_health_check=[HealthCheck.too_slow]))
    # Posting runs and revisions after approval are reached in every run. The cut-in rule
    # is reached in most (tests/test_posting_races.py proves each race deterministically),
    # so it is not required here, where it would make the run depend on the seed.
    assert {"posted", "revised after approval"} <= REACHED
