"""Corrective actions (SOP step 10).

Rules checked here: an action is recorded against a report's period, a breach or an
item by the coordinating role or an administrator; its owner may update its text and
due date but not close it or hand it on; every change is an event that verify() checks
the row against (an edit outside humasflow is found); overdue actions are judged on the
date in the office's zone and reach the owner's and the coordinator's inbox; exports
keep formulas from running; bad input gets a clear error. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
import sqlalchemy as sa

from humasflow.errors import ActionNotFound, ActorNotFound, ItemNotFound, Refused
from humasflow.storage import schema as t


def _item(office):
    return office.new_item("Open day", by="rina").id


def test_add_list_show_against_each_subject(office):
    item = _item(office)
    report = office.add_action(subject="report", target="2026-01-01/2026-01-31",
                               finding="approvals take two days", action="daily approval slot",
                               owner="budi", due="2026-02-15", by="budi")
    breach = office.add_action(subject="breach", target=f"{item}/approve",
                               finding="late", action="remind", owner="rina",
                               due=dt.date(2026, 2, 1), by="admin")
    single = office.add_action(subject="item", target=str(item), finding="typo",
                               action="fix the template", owner="sari", due="2026-03-01",
                               by="budi")
    assert [a.id for a in office.actions()] == [1, 2, 3]
    assert (report.status, report.owner, report.due) == ("open", "budi", dt.date(2026, 2, 15))
    assert breach.target == f"{item}/approve"
    assert office.action(3) == single
    assert [a.id for a in office.actions(owner="rina")] == [2]
    assert [a.id for a in office.actions(subject="report")] == [1]
    events = [e for e in office.events("org") if e.action == "corrective_action"]
    assert [e.data["id"] for e in events] == [1, 2, 3]
    assert office.verify().ok


def test_who_may_do_what(office):
    with pytest.raises(Refused, match="coordinating role"):
        office.add_action(subject="report", target="2026-01-01/2026-01-31", finding="f",
                          action="a", owner="rina", due="2026-02-01", by="rina")
    made = office.add_action(subject="report", target="2026-01-01/2026-01-31", finding="f",
                             action="a", owner="rina", due="2026-02-01", by="budi")
    changed = office.change_action(made.id, action="a, better", due="2026-02-10", by="rina")
    assert (changed.action, changed.due) == ("a, better", dt.date(2026, 2, 10))
    with pytest.raises(Refused):
        office.close_action(made.id, note="done", by="rina")
    with pytest.raises(Refused):
        office.change_action(made.id, owner="sari", by="rina")
    with pytest.raises(Refused):
        office.change_action(made.id, action="not mine", by="sari")
    closed = office.close_action(made.id, note="slot in place", by="budi")
    assert (closed.status, closed.closing_note) == ("done", "slot in place")
    assert [e.action for e in office.events("org")][-3:] == [
        "corrective_action", "corrective_action_changed", "corrective_action_closed"]
    assert office.action(made.id) == closed
    assert office.verify().ok


def test_clear_errors(office):
    with pytest.raises(ActionNotFound, match="no corrective action '9'"):
        office.action(9)
    with pytest.raises(ActionNotFound):
        office.close_action(9, note="x", by="budi")
    with pytest.raises(ValueError, match="due '15/02/2026' is not a date"):
        office.add_action(subject="item", target="1", finding="f", action="a",
                          owner="rina", due="15/02/2026", by="budi")
    with pytest.raises(ValueError, match="subject is 'period'"):
        office.add_action(subject="period", target="x", finding="f", action="a",
                          owner="rina", due="2026-02-01", by="budi")
    with pytest.raises(ItemNotFound):
        office.add_action(subject="item", target="99", finding="f", action="a",
                          owner="rina", due="2026-02-01", by="budi")
    with pytest.raises(ActorNotFound):
        office.add_action(subject="report", target="2026-01-01/2026-01-31", finding="f",
                          action="a", owner="nobody", due="2026-02-01", by="budi")
    with pytest.raises(ValueError, match="finding is empty"):
        office.add_action(subject="report", target="2026-01-01/2026-01-31", finding=" ",
                          action="a", owner="rina", due="2026-02-01", by="budi")
    with pytest.raises(ValueError, match="SINCE/UNTIL"):
        office.add_action(subject="report", target="January", finding="f", action="a",
                          owner="rina", due="2026-02-01", by="budi")
    assert office.actions() == []


def test_overdue_by_the_office_zone_and_in_the_inbox(office, clock):
    made = office.add_action(subject="report", target="2026-01-01/2026-01-31", finding="f",
                             action="daily slot", owner="rina", due="2026-02-02", by="budi")
    # 2026-02-02 17:30 UTC is already 2026-02-03 00:30 in Jakarta: the day after the due date.
    before = dt.datetime(2026, 2, 2, 16, 59, tzinfo=dt.timezone.utc)
    after = dt.datetime(2026, 2, 2, 17, 30, tzinfo=dt.timezone.utc)
    assert office.actions(overdue=True, today=office.action_today(before)) == []
    assert [a.id for a in office.actions(overdue=True,
                                         today=office.action_today(after))] == [made.id]
    for who in ("rina", "budi"):
        entries = office.inbox(who, after).of_kind("action")
        assert [(e.action_id, e.detail) for e in entries] == [(made.id, "daily slot")]
    assert office.inbox("sari", after).of_kind("action") == []
    assert office.inbox("rina", before).of_kind("action") == []
    office.close_action(made.id, note="done", by="budi")
    assert office.inbox("rina", after).of_kind("action") == []


def test_exports_keep_formulas_from_running(office):
    office.add_action(subject="report", target="2026-01-01/2026-01-31",
                      finding="=HYPERLINK(\"http://x\")", action="+1", owner="rina",
                      due="2026-02-01", by="budi")
    out = io.StringIO()
    assert office.export_actions(out, format="csv") == 1
    assert "'=HYPERLINK" in out.getvalue()
    assert ",'+1," in out.getvalue()
    out = io.StringIO()
    assert office.export_actions(out, format="json") == 1
    assert json.loads(out.getvalue())[0]["finding"] == "=HYPERLINK(\"http://x\")"
    with pytest.raises(ValueError, match="'xml'"):
        office.export_actions(io.StringIO(), format="xml")


def test_verify_finds_an_action_changed_outside_humasflow(office, store):
    made = office.add_action(subject="report", target="2026-01-01/2026-01-31", finding="f",
                             action="a", owner="rina", due="2026-02-01", by="budi")
    with store.engine.begin() as conn:
        conn.execute(t.corrective_actions.update()
                     .where(t.corrective_actions.c.id == made.id)
                     .values(status="done"))
    report = office.verify()
    assert [(f.table, f.row, f.group) for f in report.findings] == [
        ("corrective_actions", "1", "status")]
    with store.engine.begin() as conn:
        conn.execute(t.corrective_actions.delete())
    assert any("deleted" in f.problem for f in office.verify().findings)
    assert sa.inspect(store.engine).has_table("corrective_actions")


def test_a_store_before_migration_9_gets_the_table_and_still_verifies(office, store,
                                                                     store_url, clock):
    from humasflow.office import Office
    from humasflow.storage.store import Store

    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE corrective_actions"))
        conn.execute(t.schema_migrations.delete().where(t.schema_migrations.c.version >= 9))
    migrated = Office(Store(store_url), clock=clock, environ={})
    try:
        assert migrated.schema_version == t.MIGRATIONS[-1][0]
        assert migrated.verify().ok
        migrated.add_action(subject="report", target="2026-01-01/2026-01-31", finding="f",
                            action="a", owner="rina", due="2026-02-01", by="budi")
        assert migrated.verify().ok
    finally:
        migrated.close()
