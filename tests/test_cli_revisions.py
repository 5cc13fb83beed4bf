"""``humasflow sop revise|diff|establish|history`` (and ``sop register``, kept): a
proposal shows its difference and is stored only when an administrator establishes it;
errors are one line, in English and Indonesian."""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources

import pytest
from click.testing import CliRunner

from humasflow.cli import cli
from humasflow.office import Office
from humasflow.storage.store import Store
from humasflow.testing import SteerableClock, staffed_office


@pytest.fixture
def db(store_url, tmp_path):
    clock = SteerableClock()
    store = Store(store_url)
    media = tmp_path / "media-store" if store.is_postgres else None
    office = Office(store, clock=clock, environ={}, media_store=media)
    office.establish(by="Dekan")
    staffed_office(office)
    office.new_item("Dies Natalis", by="rina")
    store.close()
    return store_url, clock, media


def run(db, *args, lang="en", code=0):
    url, clock, media = db
    env = {"HUMASFLOW_MEDIA_STORE": str(media)} if media else {}
    result = CliRunner().invoke(cli, ["--lang", lang, "--db", url, "sop", *args],
                                obj={"clock": clock, "environ": env})
    assert result.exit_code == code, result.output
    return result.output


def test_revise_then_establish_then_diff_and_history(db):
    shown = run(db, "revise", "--standard-time", "approve=30m", "--move", "prepare:design")
    assert "step approve: standard_time 10m -> 30m" in shown
    assert "step prepare: moved from 3 to 4" in shown
    assert "Nothing stored" in shown
    assert "only an active administrator" in run(
        db, "revise", "--standard-time", "approve=30m", "--establish", "--by", "budi",
        code=1)
    done = run(db, "revise", "--standard-time", "approve=30m", "--establish", "--by",
               "admin", "--effective", "2026-01-05", "--note", "January evaluation")
    assert "Established SOP revision 2" in done
    assert "step approve: standard_time 10m -> 30m" in run(db, "diff", "1", "2")
    data = json.loads(run(db, "diff", "1", "2", "--format", "json"))
    # The revision's header carries the date it was established to apply from.
    assert data["fields"] == [{"where": "approve", "field": "standard_time", "old": "10m",
                               "new": "30m"},
                              {"where": "sop", "field": "effective", "old": "2021-12-01",
                               "new": "2026-01-05"}]
    history = run(db, "history")
    assert "January evaluation" in history
    assert "Dekan" in history


def test_establish_and_register_from_a_file(db, tmp_path):
    text = resources.files("humasflow").joinpath(
        "sops", "fisip-ub-social-media.toml").read_text("utf-8")
    path = tmp_path / "sop.toml"
    path.write_text(text.replace('standard_time = "5m"', 'standard_time = "7m"', 1),
                    encoding="utf-8")
    assert "Established SOP revision 2" in run(db, "establish", str(path), "--by", "admin",
                                               "--note", "concept time")
    assert "Established SOP revision 3" in run(db, "register", str(path), "--by", "admin")
    assert "standard_time 5m -> 7m" in run(db, "diff", "1", "2")
    assert run(db, "diff", "2", "3").strip() == "no differences"


def test_errors(db):
    assert "nothing to revise" in run(db, "revise", code=1)
    assert "write it as STEP=VALUE" in run(db, "revise", "--standard-time", "approve", code=1)
    assert "no step 'aprove'" in run(db, "revise", "--standard-time", "aprove=3m", code=1)
    assert "tidak memiliki langkah 'aprove'" in run(db, "revise", "--standard-time",
                                                   "aprove=3m", code=1, lang="id")
    assert "--establish needs --by" in run(db, "revise", "--standard-time", "approve=3m",
                                           "--establish", code=1)


def test_revise_adds_a_step(db):
    # A content step: every output kind is taken, so the recheck makes way for it.
    shown = run(db, "revise", "--remove", "recheck", "--add-step", "check:produce",
                "--activity", "check=Check the product", "--actor", "check=coordinator",
                "--output", "check=recheck", "--standard-time", "check=1d", "--establish",
                "--by", "admin", "--effective", "2026-01-05")
    assert "step check: added" in shown
    assert "step recheck: removed" in shown
    assert "Established SOP revision 2" in shown
    url, clock, media = db
    store = Store(url)
    try:
        sop = Office(store, clock=clock, environ={}, media_store=media).sop(2)
        check = next(s for s in sop.lifecycle if s.key == "check")
        assert (check.actor, check.output, str(check.activity.en)) == (
            "coordinator", "recheck", "Check the product")
        assert check.standard_time.total_seconds() == 86400
        assert [s.key for s in sop.lifecycle][-3:] == ["produce", "check", "post"]
    finally:
        store.close()
    # A step about the procedure itself needs only its activity; it takes the phase of
    # the step it follows.
    assert "step review: added" in run(db, "revise", "--add-step", "review:improve",
                                       "--activity", "review=Review the year")


def test_add_step_errors(db):
    assert "give the new step's activity with --activity check=TEXT" in run(
        db, "revise", "--add-step", "check:design", code=1)
    assert "'x' is not a step added with --add-step" in run(
        db, "revise", "--output", "x=notes", code=1)
    assert "already has a step 'design'" in run(
        db, "revise", "--add-step", "design:prepare", "--activity", "design=x", code=1)
    assert "no step 'nope'" in run(db, "revise", "--add-step", "check:nope", "--activity",
                                   "check=Check", code=1)
    assert "write it as STEP:VALUE" in run(db, "revise", "--add-step", "check", code=1)
    # The SOP loader's own check: a content step needs an output.
    assert "output: is missing" in run(db, "revise", "--add-step", "check:produce",
                                       "--activity", "check=Check", "--actor",
                                       "check=staff", code=1)


def test_a_proposal_applies_from_its_establishment(db):
    # Not from the effective date of the revision it was made from (2021-12-01).
    shown = run(db, "revise", "--standard-time", "approve=30m")
    assert "2021-12-01" not in shown
    assert "effective" not in shown
    url, clock, media = db
    done = run(db, "revise", "--standard-time", "approve=30m", "--establish", "--by",
               "admin")
    today = clock.now.astimezone(dt.timezone(dt.timedelta(hours=7)))
    assert f"effective {today:%Y-%m-%d %H:%M}" in done
    assert "Not in effect yet" not in done
    later = run(db, "revise", "--revision", "2", "--standard-time", "approve=20m",
                "--establish", "--by", "admin", "--effective", "2027-01-01")
    assert "effective 2027-01-01 00:00" in later
    assert "Not in effect yet" in later
    store = Store(url)
    try:
        office = Office(store, clock=clock, environ={}, media_store=media)
        assert office.sop(2).header.effective == today.date()
        assert office.sop(3).header.effective == dt.date(2027, 1, 1)
        assert office.current_revision() == 2
    finally:
        store.close()
    header = run(db, "show", "--revision", "2").splitlines()
    assert next(line for line in header if line.startswith("Effective")).split() == [
        "Effective", f"{today:%Y-%m-%d}"]
