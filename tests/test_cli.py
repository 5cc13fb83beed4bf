"""The ``humasflow`` command, run through click's test runner on a SQLite file.

Rules checked here: every step of the SOP can be driven from the command line; what a
coordinator needs at a glance (waiting for approval, overdue) shows in ``list``; a
refusal is a one-line ``Error:`` with exit code 1 and no traceback; a broken record makes
``audit verify`` exit 1; posting prints each channel's outcome and says what a person
must do, ``status`` shows every channel's record, ``run-due`` and ``worker`` report each
item they handle and exit 1 only for a channel that failed for good, ``channels check``
names a missing credential variable and never prints a secret; the demo runs offline on a
fresh store; and the installed console script works.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import threading
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import humasflow
from humasflow import cli as cli_module
from humasflow.cli import cli
from humasflow.errors import AuthenticationFailed, OutcomeUnknown, PlatformError
from humasflow.publishing import worker as worker_module
from humasflow.publishing.contract import Receipt
from humasflow.testing import FakePublisher, fake_publisher_plugin, plugin_registered

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Selamat Dies Natalis FISIP UB! #FISIPUB"


class Humasflow:
    """Runs the command against one store (and organisation), with the test's clock."""

    def __init__(self, db: Path, clock, org: str | None = None) -> None:
        self.db = db
        self.clock = clock
        self.org = org
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0, env=None, environ=None, sleep=None) -> Result:
        org = ["--org", self.org] if self.org else []
        seam = {"clock": self.clock, "environ": environ or {}}
        if sleep is not None:
            seam["sleep"] = sleep
        result = self.runner.invoke(cli, ["--db", str(self.db), *org, *args], env=env, obj=seam)
        assert result.exit_code == code, (result.output, result.exception)
        if code == 0:
            assert result.exception is None or isinstance(result.exception, SystemExit)
        return result


@pytest.fixture
def hf(tmp_path, clock) -> Humasflow:
    """A fresh store: the bundled SOP, an outbox channel, staff rina and sari, coordinator budi."""
    run = Humasflow(tmp_path / "humasflow.db", clock)
    run("init", "--admin", "admin", "--name", "Admin", "--outbox", str(tmp_path / "outbox"))
    run("actor", "add", "rina", "--name", "Rina Wulandari", "--role", "staff", "--by", "admin")
    run("actor", "add", "sari", "--name", "Sari Dewi", "--role", "staff", "--by", "admin")
    run("actor", "add", "budi", "--name", "Budi Santoso", "--email", "budi@example.ac.id",
        "--role", "coordinator", "--by", "admin")
    return run


def outbox_folder(db: Path, item: int, org: str = "default") -> str:
    """The outbox folder name of an item's post (it carries the post's idempotency key)."""
    office = humasflow.open(str(db), org=org, establish=False)
    try:
        return f"item-{item}-outbox-{office.post_for(office.item(item), 'outbox').idempotency_key}"
    finally:
        office.close()


def new_item(hf: Humasflow, title: str = "Dies Natalis", *extra: str) -> int:
    return int(hf("new", title, "--as", "rina", *extra).stdout.strip())


def to_approval(hf: Humasflow, image: str, title: str = "Dies Natalis") -> int:
    """Create an item and walk it to the approval step."""
    item = new_item(hf, title)
    hf("complete", str(item), "--as", "rina", "--text", TEXT)
    hf("complete", str(item), "--as", "rina", "--notes", "Canva template 'dies'")
    hf("complete", str(item), "--as", "rina", "--media", image)
    return item


# -- setting up -----------------------------------------------------------------------------


def test_init_creates_the_store_establishes_the_sop_and_adds_the_outbox(tmp_path, clock):
    run = Humasflow(tmp_path / "new.db", clock)
    out = run("init", "--admin", "admin", "--name", "Admin",
              "--outbox", str(tmp_path / "out")).output
    assert "schema version" in out
    assert "Established SOP revision 1: UN10/F11.07/HK.01.02.a/05" in out
    assert f"Channel 'outbox' writes posts into {tmp_path / 'out'}" in out
    again = run("init").output
    assert "SOP already established: revision 1" in again
    assert "outbox" in run("channel", "list").output


def test_commands_other_than_init_need_an_existing_store(tmp_path, clock):
    run = Humasflow(tmp_path / "missing.db", clock)
    result = run("list", code=1)
    assert result.stderr.startswith("Error: no humasflow store at")
    assert not (tmp_path / "missing.db").exists()


def test_the_store_can_come_from_the_environment(hf):
    result = hf.runner.invoke(cli, ["actor", "list"], env={"HUMASFLOW_DB": str(hf.db)})
    assert result.exit_code == 0, result.output
    assert "Budi Santoso" in result.output


def test_actors_are_added_with_roles_of_the_sop(hf):
    listing = hf("actor", "list").output
    assert re.search(r"budi\s+Budi Santoso\s+budi@example.ac.id\s+coordinator \(PR coordinator\)",
                     listing)
    hf("actor", "add", "sari", "--name", "Sari Dewi", "--role", "staff", "--role", "coordinator",
        "--by", "admin")
    assert "coordinator (PR coordinator), staff (PR staff)" in hf("actor", "list").output
    refused = hf("actor", "add", "eko", "--name", "Eko", "--role", "intern",
        "--by", "admin", code=1)
    assert refused.stderr == ("Error: the SOP has no role 'intern'; its roles: coordinator, "
                              "staff (and 'admin', the administrators)\n")


def test_channels_store_settings_and_credential_variable_names_only(hf, tmp_path):
    hf("channel", "add", "x", "--publisher", "outbox", "--set", f"path={tmp_path / 'x'}",
       "--credential", "token=HF_TEST_X_TOKEN", "--by", "admin")
    listing = hf("channel", "list").output
    assert "token=HF_TEST_X_TOKEN (NOT SET)" in listing
    assert f"path={tmp_path / 'x'}" in listing
    unknown = hf("channel", "add", "y", "--publisher", "nowhere", "--by", "admin", code=1)
    assert unknown.stderr.startswith("Error: channel 'y': no publisher named 'nowhere'")
    assert "key=value" in hf("channel", "add", "z", "--publisher", "outbox", "--set", "path",
        "--by", "admin",
                             code=2).output


# -- items ----------------------------------------------------------------------------------


def test_new_prints_the_items_id(hf):
    result = hf("new", "Dies Natalis", "--as", "rina", "--text", TEXT)
    assert result.stdout == "1\n"
    assert "Created item 1 'Dies Natalis' at step 2 concept" in result.stderr


def test_an_item_walks_the_whole_sop_through_commands(hf, image, clock, tmp_path):
    item = to_approval(hf, image)
    out = hf("reject", str(item), "--as", "budi", "--reason", "Logo too small").output
    assert f"Item {item}: 5 approve -> 4 design by budi" in out
    hf("complete", str(item), "--as", "rina", "--media", image)
    out = hf("approve", str(item), "--as", "budi", "--answer", "OK by email").output
    assert "5 approve -> 6 produce" in out
    hf("complete", str(item), "--as", "rina", "--media", image)
    out = hf("rework", str(item), "--as", "sari", "--findings", "Typo in the date").output
    assert "7 recheck -> 6 produce" in out
    hf("complete", str(item), "--as", "rina", "--media", image)
    hf("pass", str(item), "--as", "sari", "--note", "Checked")
    clock.advance(minutes=2)
    out = hf("post", str(item), "--as", "rina").output
    assert "outbox: posted" in out
    assert f"Item {item} is posted: 1 posted." in out
    assert (tmp_path / "outbox" / outbox_folder(hf.db, item) / "post.json").is_file()
    shown = hf("show", str(item)).output
    assert re.search(r"State:\s+posted", shown)
    assert "approved by budi: OK by email" in shown
    assert "pass by sari: Checked" in shown
    log = hf("log", str(item)).output
    for action in ("create", "reject", "approve", "rework", "pass", "channel_posted"):
        assert action in log
    assert "Logo too small" in log


def to_posting(hf: Humasflow, image: str, title: str = "Dies Natalis") -> int:
    item = to_approval(hf, image, title)
    hf("approve", str(item), "--as", "budi")
    hf("complete", str(item), "--as", "rina", "--media", image)
    hf("pass", str(item), "--as", "sari")
    return item


def test_a_manual_channel_waits_for_a_person_to_confirm(hf, image):
    hf("channel", "add", "instagram", "--publisher", "manual", "--by", "admin")
    item = to_posting(hf, image)
    waiting = hf("post", str(item), "--as", "rina").output
    assert "instagram: waiting" in waiting
    assert "outbox: posted" in waiting
    assert f"Item {item} waits for a person to post on instagram" in waiting
    assert f"instagram: post it on instagram by hand, then: humasflow confirm {item} instagram " \
           "--as rina --url URL" in waiting
    url = "https://www.instagram.com/p/abc/"
    done = hf("confirm", str(item), "instagram", "--as", "rina", "--url", url).output
    assert f"instagram: posted {url}" in done
    assert "outbox: posted" in done
    assert f"Item {item} is posted: 2 posted." in done


def test_confirm_url_must_be_a_web_address(hf, image):
    """Rule: `confirm --url` takes only an http(s) URL with a host; a typo closes nothing."""
    hf("channel", "add", "instagram", "--publisher", "manual", "--by", "admin")
    item = to_posting(hf, image)
    hf("post", str(item), "--as", "rina")
    before = hf("log", str(item)).output
    for bad in ("not-a-url", "www.instagram.com/p/abc/", "ftp://instagram.com/p/abc/"):
        refused = hf("confirm", str(item), "instagram", "--as", "rina", "--url", bad, code=2)
        assert "Invalid value for '--url'" in refused.output
        assert f"{bad!r} is not a web address (http:// or https:// and a host)" \
            in refused.output
    assert hf("log", str(item)).output == before
    assert "instagram: waiting" in hf("status", str(item)).output
    url = "https://www.instagram.com/p/abc/"
    assert f"instagram: posted {url}" in hf("confirm", str(item), "instagram", "--as", "rina",
                                            "--url", url).output


def test_confirm_attempt_names_the_attempt_checked(hf, image):
    """`confirm --attempt N`: the answer is about the attempt the person checked; if the
    channel is at another one, nothing is recorded and the message says which."""
    hf("channel", "add", "instagram", "--publisher", "manual", "--by", "admin")
    item = to_posting(hf, image)
    hf("post", str(item), "--as", "rina")
    before = hf("log", str(item)).output
    refused = hf("confirm", str(item), "instagram", "--as", "rina", "--url",
                 "https://www.instagram.com/p/abc/", "--attempt", "2", code=1)
    assert "is at attempt 1, and there has been no attempt 2; give the number " \
        f"`humasflow status {item}` shows" in refused.output
    assert "Invalid value for '--attempt'" in hf(
        "confirm", str(item), "instagram", "--as", "rina", "--url",
        "https://www.instagram.com/p/abc/", "--attempt", "-1", code=2).output
    assert hf("log", str(item)).output == before
    done = hf("confirm", str(item), "instagram", "--as", "rina", "--url",
              "https://www.instagram.com/p/abc/", "--attempt", "1").output
    assert "instagram: posted https://www.instagram.com/p/abc/" in done


def test_a_scheduled_item_is_posted_by_run_due(hf, image, clock):
    item = to_posting(hf, image)
    out = hf("schedule", str(item), "--as", "rina", "--at", "2026-01-05 10:30").output
    assert "will be posted at 2026-01-05 10:30" in out  # 10:30 in Jakarta is 03:30 UTC
    assert "Nothing is due." in hf("run-due").output
    clock.advance(hours=2)
    due = hf("run-due").output
    assert f"Item {item} 'Dies Natalis': posted" in due
    assert "outbox: posted" in due
    assert due.endswith("1 item(s) handled: 1 posted; channels: 1 posted.\n")
    assert re.search(r"State:\s+posted", hf("show", str(item)).output)


def test_a_post_waiting_for_its_evening_slot_is_not_overdue(hf, image, clock):
    """Rule: a post scheduled for 19:00 is not late five minutes after it reaches the
    posting step; it is late only once its slot's standard time has gone by."""
    item = to_posting(hf, image)
    hf("schedule", str(item), "--as", "rina", "--at", "2026-01-05 19:00")
    clock.advance(minutes=10)
    listed = hf("list").output
    assert "OVERDUE" not in listed
    assert "0 overdue." in listed
    assert "No items." in hf("list", "--overdue").output
    assert hf("check-sla").output == "No new breach of a standard time.\n"
    shown = hf("show", str(item)).output
    assert "OVERDUE" not in shown
    assert re.search(r"^8\s+post\s+-\s+2026-01-05 09:00\s+10m / 5m\s+\(current step\)$", shown,
                     re.M)  # not LATE
    # The due time is the slot's standard time.
    assert re.search(r"^Due:\s+2026-01-05 19:05  SCHEDULED 2026-01-05 19:00$", shown, re.M)
    clock.advance(hours=10, minutes=1)  # 19:11 WIB: nobody posted it by 19:05
    assert re.search(rf"^{item}\s+Dies Natalis\s+8 post\s+.*OVERDUE \+6m", hf("list").output,
                     re.M)
    assert "+6m" in hf("check-sla").output


def test_schedule_refuses_the_past_and_can_be_changed_or_cleared(hf, image, clock):
    item = to_posting(hf, image)
    clock.advance(hours=1)  # 10:00 WIB
    past = hf("schedule", str(item), "--as", "rina", "--at", "2026-01-05 09:30", code=1)
    assert past.stderr == ("Error: --at 2026-01-05 09:30 is in the past (it is 2026-01-05 "
                           "10:00 now); give a later time, or add --allow-past to have it "
                           "posted at the next pass\n")
    assert "schedule" not in hf("log", str(item)).output.split("pass")[-1]
    first = hf("schedule", str(item), "--as", "rina", "--at", "2026-01-05 19:00").output
    assert first == (f"Item {item} will be posted at 2026-01-05 19:00 by the next "
                     "`humasflow run-due` (or a running `humasflow worker`).\n")
    moved = hf("schedule", str(item), "--as", "rina", "--at", "2026-01-05 20:00").output
    assert moved.startswith(f"Item {item} will be posted at 2026-01-05 20:00 instead of "
                            "2026-01-05 19:00")
    assert "Scheduled by rina for 2026-01-05 20:00:00 WIB." in hf("status", str(item)).output
    cleared = hf("schedule", str(item), "--as", "rina", "--clear").output
    assert cleared == (f"Item {item} is no longer scheduled (it was to be posted at "
                       f"2026-01-05 20:00); post it with `humasflow publish {item} --as rina` "
                       "or schedule it again.\n")
    status = hf("status", str(item)).output
    assert "Not scheduled: rina removed the schedule at 2026-01-05 10:00:00 WIB." in status
    assert "Scheduled by" not in status
    assert f"to do:        post it: humasflow publish {item} --as rina" in status
    log = hf("log", str(item)).output
    assert "post at 2026-01-05 20:00 (was 2026-01-05 19:00)" in log
    assert "schedule removed (was post at 2026-01-05 20:00)" in log
    clock.advance(hours=11)
    assert hf("run-due").output == "Nothing is due.\n"
    again = hf("schedule", str(item), "--as", "rina", "--clear", code=1)
    assert f"item {item} has no schedule to remove" in again.stderr
    both = hf("schedule", str(item), "--as", "rina", code=2)
    assert "give either --at TIME or --clear" in both.output
    hf("schedule", str(item), "--as", "rina", "--at", "2026-01-05 09:30", "--allow-past")
    assert f"Item {item} 'Dies Natalis': posted" in hf("run-due").output


# -- publishing, status, run-due, worker ----------------------------------------------------


@pytest.fixture
def fake():
    """The publisher ``fake`` (one FakePublisher per channel name), registered for the test."""
    plugin = fake_publisher_plugin()
    with plugin_registered(plugin):
        yield plugin


def failing(fake, channel: str, error: BaseException) -> FakePublisher:
    """Make the next post to ``channel`` raise ``error`` (once)."""
    publisher = fake.publishers[channel] = FakePublisher(channel=channel, fail_with=error)
    return publisher


def test_publish_prints_each_channel_and_post_is_the_same_command(hf, image, fake):
    hf("channel", "add", "x", "--publisher", "fake", "--by", "admin")
    item = to_posting(hf, image)
    out = hf("publish", str(item), "--as", "rina").output
    assert "  outbox: posted file://" in out
    assert "  x: posted https://fake.example/x/1" in out
    assert out.endswith(f"Item {item} is posted: 2 posted.\n")
    again = hf("post", str(item), "--as", "rina", code=1)
    assert again.stderr == (f"Error: item '{item}' is at step 'posted', where 'post' is not "
                            "possible; possible now: nothing (the item is closed)\n")
    listed = hf("--help").output
    assert "publish" in listed
    assert not re.search(r"^\s+post\s", listed, re.M)
    assert "Post the item now" in hf("post", "--help").output


def test_a_failed_channel_exits_1_and_run_due_retries_it_after_the_clock_moves(
        hf, image, fake, clock):
    hf("channel", "add", "x", "--publisher", "fake", "--by", "admin")
    item = to_posting(hf, image)
    failing(fake, "x", PlatformError("the server answered 503"))
    result = hf("publish", str(item), "--as", "rina", code=1)
    out = result.stdout
    assert "  outbox: posted file://" in out
    assert re.search(r"  x: failed after 1 attempt\(s\): PlatformError: the server answered "
                     r"503; retried automatically at 2026-01-05 09:00:\d\d WIB", out)
    assert f"Item {item} is not posted yet: 1 posted, 1 failed." in out
    assert "x: nothing: it is retried at 2026-01-05 09:00:" in out
    assert result.stderr == (f"Error: item {item} is not posted on every channel (x failed); "
                             f"see `humasflow status {item}`\n")

    status = hf("status", str(item)).output
    assert f"Item {item} 'Dies Natalis': at step 8 post, not posted yet: 1 posted, 1 failed." \
        in status
    assert "Published by rina at 2026-01-05 09:00:00 WIB." in status
    block = status.split("\nx: failed\n")[1]
    assert re.search(r"attempts:\s+1\n", block)
    assert re.search(r"platform id:\s+-\n", block)
    assert re.search(r"last error:\s+PlatformError: the server answered 503\n", block)
    assert re.search(r"next retry:\s+2026-01-05 09:00:\d\d WIB\n", block)
    assert "to do:        nothing: it is retried at" in block
    outbox = status.split("\noutbox: posted\n")[1]
    assert re.search(rf"platform id:\s+{outbox_folder(hf.db, item)}\n", outbox)
    assert re.search(r"url:\s+file://", outbox)
    assert re.search(r"next retry:\s+2026-01-05 02:00:\d\d UTC",
                     hf("--tz", "UTC", "status", str(item)).output)

    assert hf("run-due").output == "Nothing is due.\n"  # the retry time has not come
    clock.advance(minutes=1)
    due = hf("run-due").output
    assert due == (f"Item {item} 'Dies Natalis': posted\n"
                   "  x: posted https://fake.example/x/1\n"
                   "1 item(s) handled: 1 posted; channels: 1 posted.\n")
    status = hf("status", str(item)).output
    assert f"Item {item} 'Dies Natalis': posted." in status
    assert re.search(r"x: posted\n  attempts:\s+2\n  platform id:\s+fake-1\n", status)


def test_a_channel_failed_for_good_in_run_due_exits_1_once(hf, image, fake, clock):
    hf("channel", "add", "x", "--publisher", "fake", "--by", "admin")
    item = to_posting(hf, image)
    hf("schedule", str(item), "--as", "rina", "--at", "2026-01-05 09:05")
    failing(fake, "x", AuthenticationFailed("the access token was revoked"))
    clock.advance(minutes=5)
    result = hf("run-due", code=1)
    assert f"Item {item} 'Dies Natalis': still open (1 posted, 1 failed)\n" in result.stdout
    assert ("x: failed after 1 attempt(s): AuthenticationFailed: the access token was revoked"
            in result.stdout)
    assert "not retried automatically" in result.stdout
    assert "1 item(s) handled: 0 posted, 1 still open; channels: 1 posted, 1 failed." \
        in result.stdout
    assert f"x of item {item} failed for good: see `humasflow status {item}`" in result.stdout
    # Only a person can move it now: later passes leave it alone and exit 0.
    clock.advance(hours=1)
    assert hf("run-due").output == "Nothing is due.\n"
    status = hf("status", str(item)).output
    assert (f"to do:        fix the cause of the error, then post it again: humasflow retry "
            f"{item} x --as rina") in status
    assert f"or drop the channel: humasflow skip {item} x --as budi --reason TEXT" in status
    skipped = hf("skip", str(item), "x", "--as", "budi", "--reason", "Account suspended").output
    assert skipped == ("  x: skipped\n"
                       "  outbox: posted "
                       f"file://{hf.db.parent / 'outbox' / outbox_folder(hf.db, item)}"
                       " (earlier)\n"
                       f"Item {item} is posted: 1 posted, 1 skipped.\n")


def test_retry_posts_a_failed_channel_again_once_its_cause_is_fixed(hf, image, fake):
    """Rule: after a renewed token, `retry` posts the failed channel (only that one);
    `publish` alone only reprints the old error."""
    hf("channel", "add", "x", "--publisher", "fake", "--by", "admin")
    hf("channel", "add", "fb", "--publisher", "fake", "--by", "admin")
    item = to_posting(hf, image)
    failing(fake, "x", AuthenticationFailed("the access token expired"))
    failing(fake, "fb", AuthenticationFailed("the page token expired"))
    first = hf("publish", str(item), "--as", "rina", code=1).stdout
    assert f"x: fix the cause of the error, then post it again: humasflow retry {item} x " \
        "--as rina" in first
    again = hf("publish", str(item), "--as", "rina", code=1).stdout  # the token is renewed
    assert "AuthenticationFailed: the access token expired" in again  # but publish can't tell
    assert fake.publishers["x"].posted == []

    assert "only a failed channel" in hf("retry", str(item), "outbox", "--as", "rina",
                                         code=1).stderr
    refused = hf("retry", str(item), "x", "--as", "budi", code=1)
    assert "budi" in refused.stderr
    assert fake.publishers["x"].posted == []

    out = hf("retry", str(item), "x", "--as", "rina", code=1).stdout  # fb still failed
    assert "  x: posted https://fake.example/x/1" in out
    assert "  fb: failed" in out
    assert len(fake.publishers["x"].posted) == 1
    assert fake.publishers["fb"].posted == []
    done = hf("retry", str(item), "--as", "rina").stdout  # every failed channel: fb
    assert "  fb: posted https://fake.example/fb/1" in done
    assert done.endswith(f"Item {item} is posted: 3 posted.\n")
    assert len(fake.publishers["x"].posted) == 1  # never posted twice
    log = hf("log", str(item)).output
    assert log.count("channel_retry") == 2
    assert "retried by a person after the cause was fixed" in log
    closed = hf("retry", str(item), "--as", "rina", code=1)
    assert closed.stderr.startswith(f"Error: item '{item}' is at step 'posted'")


def test_retry_refuses_an_unknown_channel_which_may_be_posted(hf, image, fake):
    hf("channel", "add", "x", "--publisher", "fake", "--by", "admin")
    item = to_posting(hf, image)
    failing(fake, "x", OutcomeUnknown("no answer after sending"))
    hf("publish", str(item), "--as", "rina")
    refused = hf("retry", str(item), "x", "--as", "rina", code=1)
    assert refused.stderr == (
        f"Error: channel 'x' of item {item} is 'unknown': the last attempt may have posted "
        f"it, so it is never retried blindly; check the platform, then `humasflow confirm "
        f"{item} x --url URL` or `--not-posted`\n")
    none = hf("retry", str(item), "--as", "rina", code=1)
    assert f"item {item} has no failed channel to retry (outbox posted, x unknown)" \
        in none.stderr
    assert fake.publishers["x"].posted == []


def test_an_unknown_outcome_waits_for_a_person_who_confirms_it(hf, image, fake):
    hf("channel", "add", "x", "--publisher", "fake", "--by", "admin")
    item = to_posting(hf, image)
    failing(fake, "x", OutcomeUnknown("no answer within 30s after sending"))
    out = hf("publish", str(item), "--as", "rina").output  # exit 0: a person decides
    assert "  x: unknown no answer within 30s after sending" in out
    assert f"Item {item} waits for a person to check x." in out
    assert f"if it is:     humasflow confirm {item} x --as rina --url URL --attempt 1" in out
    assert f"if it is not: humasflow confirm {item} x --as rina --not-posted --attempt 1" in out

    status = hf("status", str(item)).output
    block = status.split("\nx: unknown\n")[1]
    assert re.search(r"last error:\s+OutcomeUnknown: no answer within 30s after sending", block)
    assert re.search(r"to do:\s+check whether the post is on x", block)
    assert f"humasflow confirm {item} x --as rina --url URL" in block

    missing = hf("confirm", str(item), "tiktok", "--as", "rina", "--url", "https://t", code=1)
    assert missing.stderr.startswith(f"Error: item {item} has no record for channel 'tiktok'")
    url = "https://fake.example/x/found"
    done = hf("confirm", str(item), "x", "--as", "rina", "--url", url).output
    assert f"  x: posted {url}" in done
    assert "  outbox: posted file://" in done
    assert f"Item {item} is posted: 2 posted." in done
    assert fake.publishers["x"].posted == []  # confirmed, never posted a second time
    again = hf("confirm", str(item), "x", "--as", "rina", "--url", url, code=1)
    assert again.stderr.startswith("Error: ")


def test_an_unknown_outcome_the_platform_can_be_asked_about_is_looked_up(hf, image, fake):
    class Searchable(FakePublisher):
        def reconcile(self, post, progress=None):
            return Receipt(platform_id="found-7", url="https://fake.example/x/found-7")

    fake.publishers["x"] = Searchable(channel="x", fail_with=OutcomeUnknown("connection reset"))
    hf("channel", "add", "x", "--publisher", "fake", "--by", "admin")
    item = to_posting(hf, image)
    out = hf("publish", str(item), "--as", "rina").output
    assert "  x: unknown connection reset; looked up on the platform at 2026-01-05 09:00:00 WIB" \
        in out
    assert "waits for a person" not in out
    assert "x: nothing yet: it is looked up on x at 2026-01-05 09:00:00 WIB" in out
    due = hf("run-due").output
    assert "  x: posted https://fake.example/x/found-7" in due
    assert f"Item {item} 'Dies Natalis': posted" in due
    assert fake.publishers["x"].posted == []  # found, not posted a second time

def test_confirm_not_posted_posts_the_channel_again(hf, image, fake):
    hf("channel", "add", "x", "--publisher", "fake", "--by", "admin")
    item = to_posting(hf, image)
    failing(fake, "x", OutcomeUnknown("the connection dropped"))
    hf("publish", str(item), "--as", "rina")
    out = hf("confirm", str(item), "x", "--as", "rina", "--not-posted").output
    assert "  x: posted https://fake.example/x/1" in out
    assert f"Item {item} is posted" in out


def test_status_before_posting_says_what_comes_next(hf, image):
    item = new_item(hf)
    out = hf("status", str(item)).output
    assert f"Item {item} 'Dies Natalis': at step 2 concept; it is posted at step 8 post." in out
    assert "outbox: not tried yet" in out
    assert "to do:        nothing yet" in out
    ready = to_posting(hf, image, "Open house")
    assert f"to do:        post it: humasflow publish {ready} --as rina" in \
        hf("status", str(ready)).output
    hf("schedule", str(ready), "--as", "rina", "--at", "2026-01-05 10:30")
    scheduled = hf("status", str(ready)).output
    assert "Scheduled by rina for 2026-01-05 10:30:00 WIB." in scheduled
    assert "to do:        nothing: it is posted at 2026-01-05 10:30:00 WIB" in scheduled
    assert "no content item '99'" in hf("status", "99", code=1).stderr


def test_run_due_covers_every_organisation_and_honours_the_limit(hf, image, clock, tmp_path):
    fisip = Humasflow(hf.db, clock, org="fisip")
    fisip("init", "--admin", "admin", "--name", "Admin", "--outbox", str(tmp_path / "fisip-outbox"))
    fisip("actor", "add", "rina", "--name", "Rina", "--role", "staff", "--by", "admin")
    fisip("actor", "add", "sari", "--name", "Sari", "--role", "staff", "--by", "admin")
    fisip("actor", "add", "budi", "--name", "Budi", "--role", "coordinator", "--by", "admin")
    first = to_posting(hf, image, "Dies Natalis")
    second = to_posting(hf, image, "Webinar")
    other = to_posting(fisip, image, "Open house")
    for run, item in ((hf, first), (hf, second), (fisip, other)):
        run("schedule", str(item), "--as", "rina", "--at", "2026-01-05 09:10")
    clock.advance(minutes=10)
    limited = hf("run-due", "--limit", "1").output
    assert limited.count("': posted\n") == 2  # one item of each organisation
    assert f"Item {other} (fisip) 'Open house': posted" in limited
    assert "2 item(s) handled: 2 posted; channels: 2 posted." in limited
    rest = hf("run-due").output
    assert "1 item(s) handled: 1 posted" in rest
    assert "Nothing is due." in hf("run-due").output
    assert "Invalid value for '--limit'" in hf("run-due", "--limit", "0", code=2).output


def test_run_due_shows_a_progress_bar_on_a_terminal(hf, image, clock, monkeypatch):
    monkeypatch.setattr(cli_module, "_stdout_is_tty", lambda: True)
    monkeypatch.setattr(cli_module, "_BAR_FROM", 2)
    items = [to_posting(hf, image, f"Item {n}") for n in range(2)]
    for item in items:
        hf("schedule", str(item), "--as", "rina", "--at", "2026-01-05 09:05")
    clock.advance(minutes=5)
    out = hf("run-due").output
    # The runner's output is no terminal, so click shows the bar's label only.
    assert out.startswith("Posting 2 due item(s)")
    for item in items:
        assert out.index("Posting 2 due") < out.index(f"Item {item} 'Item")
    assert out.endswith("2 item(s) handled: 2 posted; channels: 2 posted.\n")


def test_run_due_counts_only_what_its_own_worker_posted(hf, image, clock, fake):
    """Rule: another worker posting meanwhile (here in the same process) is neither shown
    nor counted in this pass's summary."""
    hf("channel", "add", "x", "--publisher", "fake", "--by", "admin")
    items = []
    for title in ("First", "Second"):
        item = new_item(hf, title, "--channel", "x")
        hf("complete", str(item), "--as", "rina", "--text", TEXT)
        hf("complete", str(item), "--as", "rina", "--notes", "Canva")
        hf("complete", str(item), "--as", "rina", "--media", image)
        hf("approve", str(item), "--as", "budi")
        hf("complete", str(item), "--as", "rina", "--media", image)
        hf("pass", str(item), "--as", "sari")
        hf("schedule", str(item), "--as", "rina", "--at", "2026-01-05 09:05")
        items.append(item)
    first, second = items
    other = worker_module.Worker(str(hf.db), clock=clock, environ={}, worker_id="other")

    class CutIn(FakePublisher):
        def publish(self, post, progress=None):
            if post.item_id == first:
                other.run_once()  # the other worker posts the second item meanwhile
            return super().publish(post, progress)

    fake.publishers["x"] = CutIn(channel="x")
    clock.advance(minutes=5)
    try:
        out = hf("run-due").output
    finally:
        other.store.close()
    assert len(fake.publishers["x"].posted) == 2
    assert re.search(r"State:\s+posted", hf("show", str(second)).output)  # by the other
    assert out == (f"Item {first} 'First': posted\n"
                   "  x: posted https://fake.example/x/2\n"
                   "1 item(s) handled: 1 posted; channels: 1 posted.\n")


def test_worker_reports_busy_passes_and_sums_up_quiet_ones(hf, image, clock):
    item = to_posting(hf, image)
    hf("schedule", str(item), "--as", "rina", "--at", "2026-01-05 09:02")
    out = hf("worker", "--interval", "60", "--max-loops", "4",
             sleep=lambda seconds: clock.advance(seconds=seconds)).output
    lines = out.splitlines()
    assert lines[0].startswith("Worker ")
    assert "a pass every 1m over every organisation" in lines[0]
    assert "Ctrl-C or SIGTERM" in lines[0]
    assert lines[1:] == [
        "[2026-01-05 09:00:00 WIB] passes 1-2: nothing due (until 2026-01-05 09:01:00 WIB)",
        f"Item {item} 'Dies Natalis': posted",
        f"  outbox: posted file://{hf.db.parent / 'outbox' / outbox_folder(hf.db, item)}",
        "[2026-01-05 09:02:00 WIB] pass 3: 1 item(s) handled: 1 posted; channels: 1 posted",
        "[2026-01-05 09:03:00 WIB] pass 4: nothing due",
        "Worker stopped after 4 pass(es) (--max-loops 4): 1 item(s) handled: 1 posted; "
        "channels: 1 posted.",
    ]


def test_worker_reports_a_long_quiet_stretch_every_hour(hf, clock):
    out = hf("worker", "--interval", "1200", "--max-loops", "5",
             sleep=lambda seconds: clock.advance(seconds=seconds)).output
    assert out.splitlines()[1:] == [
        "[2026-01-05 09:00:00 WIB] passes 1-4: nothing due (until 2026-01-05 10:00:00 WIB)",
        "[2026-01-05 10:20:00 WIB] pass 5: nothing due",
        "Worker stopped after 5 pass(es) (--max-loops 5): nothing due.",
    ]


def test_worker_finishes_its_pass_and_stops_on_sigterm(hf, image, clock):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are installed from the main thread only")
    item = to_posting(hf, image)
    hf("schedule", str(item), "--as", "rina", "--at", "2026-01-05 09:00")

    def terminate(seconds):
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    out = hf("worker", "--max-loops", "10", sleep=terminate).output
    assert f"Item {item} 'Dies Natalis': posted" in out
    assert out.endswith("Worker stopped after 1 pass(es): 1 item(s) handled: 1 posted; "
                        "channels: 1 posted.\n")
    assert signal.getsignal(signal.SIGTERM) == before


def test_channels_check_names_a_missing_credential_variable(hf, fake):
    hf("channel", "add", "x", "--publisher", "fake", "--credential", "token=HF_TEST_X_TOKEN",
        "--by", "admin")
    result = hf("channels", "check", code=1)
    assert "  outbox (outbox): OK" in result.stdout
    assert ("  x (fake): FAILED CredentialMissing: channel 'x' needs the environment variable "
            "HF_TEST_X_TOKEN to be set") in result.stdout
    assert result.stdout.endswith("1 of 2 channel(s) failed the check.\n")
    secret = "s3cret-token-value"
    ok = hf("channel", "check", environ={"HF_TEST_X_TOKEN": secret}).output
    assert "  x (fake): OK" in ok
    assert ok.endswith("All 2 channel(s) OK.\n")
    assert secret not in ok
    assert fake.publishers["x"].checked == 1  # checked, nothing posted
    assert fake.publishers["x"].posted == []


def test_channels_check_prints_what_the_publisher_read(hf, fake):
    """A publisher's check() may return one line (the account, the token's expiry);
    the command prints it after OK, scrubbed like every other text."""
    secret = "s3cret-token-value"

    class Talkative(FakePublisher):
        def check(self):
            return f"Page 'FISIP UB' (104); the token {secret} does not\nexpire"

    fake.publishers["x"] = Talkative(channel="x")
    hf("channel", "add", "x", "--publisher", "fake", "--credential", "token=HF_TEST_X_TOKEN",
        "--by", "admin")
    out = hf("channels", "check", environ={"HF_TEST_X_TOKEN": secret}).stdout
    assert ("  x (fake): OK (Page 'FISIP UB' (104); the token [redacted] does not expire)"
            in out)
    assert "  outbox (outbox): OK\n" in out
    assert secret not in out


def test_channels_check_never_prints_a_secret(hf, fake):
    secret = "s3cret-token-value"

    class Leaky(FakePublisher):
        def check(self):
            raise AuthenticationFailed(f"the platform refused the token {secret}")

    fake.publishers["x"] = Leaky(channel="x")
    hf("channel", "add", "x", "--publisher", "fake", "--credential", "token=HF_TEST_X_TOKEN",
        "--by", "admin")
    result = hf("channels", "check", code=1, environ={"HF_TEST_X_TOKEN": secret})
    assert "x (fake): FAILED AuthenticationFailed: the platform refused the token [redacted]" \
        in result.stdout
    assert secret not in result.output


def test_channels_check_without_channels(tmp_path, clock):
    run = Humasflow(tmp_path / "bare.db", clock)
    run("init")
    assert "No channels yet" in run("channels", "check").output


def test_plugins_lists_the_built_in_publishers(hf):
    out = hf("plugins").output
    assert "humasflow.publishing.outbox" in out
    assert "Publishers: " in out
    assert "outbox" in out


def test_list_shows_what_waits_for_approval(hf, image):
    waiting = to_approval(hf, image, "Open house")
    drafting = new_item(hf, "Webinar")
    everything = hf("list").output
    assert re.search(rf"^{waiting}\s+Open house\s+5 approve\s+rina\s+.*AWAITS APPROVAL$",
                     everything, re.M)
    assert "2 item(s); 1 awaiting approval; 0 overdue." in everything
    approve = hf("list", "--state", "approve").output
    assert "Open house" in approve
    assert "Webinar" not in approve
    hf("cancel", str(drafting), "--as", "rina", "--reason", "Event moved")
    open_items = hf("list", "--open").output
    assert "Open house" in open_items
    assert "Webinar" not in open_items
    assert "No items." in hf("list", "--assignee", "sari").output


def test_list_flags_scheduled_failed_unknown_and_waiting_channels(hf, image, fake, clock):
    """Rule: `list` shows, for each item at the posting step, when it is scheduled and
    which channels need someone (an unknown channel used to show no flag)."""
    hf("channel", "add", "x", "--publisher", "fake", "--by", "admin")
    hf("channel", "add", "instagram", "--publisher", "manual", "--by", "admin")
    scheduled = to_posting(hf, image, "Evening post")
    hf("schedule", str(scheduled), "--as", "rina", "--at", "2026-01-05 19:00")
    unknown = to_posting(hf, image, "Unknown")
    failing(fake, "x", OutcomeUnknown("no answer after sending"))
    hf("publish", str(unknown), "--as", "rina")
    broken = to_posting(hf, image, "Token expired")
    failing(fake, "x", AuthenticationFailed("the token expired"))
    hf("publish", str(broken), "--as", "rina", code=1)
    retrying = to_posting(hf, image, "Server down")
    failing(fake, "x", PlatformError("the server answered 503"))
    hf("publish", str(retrying), "--as", "rina", code=1)

    listed = hf("list").output
    rows = {int(line.split()[0]): line for line in listed.splitlines()[2:]
            if line[:1].isdigit() and "item(s);" not in line}
    assert rows[scheduled].endswith("SCHEDULED 2026-01-05 19:00")
    assert "2026-01-05 19:05" in rows[scheduled]  # due: the slot plus 5 minutes
    assert rows[unknown].endswith("UNKNOWN x, WAITING instagram")
    assert rows[broken].endswith("FAILED x, WAITING instagram")
    assert rows[retrying].endswith("RETRYING x, WAITING instagram")
    assert "SCHEDULED 2026-01-05 12:00" in hf("--tz", "UTC", "list").output

    shown = hf("show", str(scheduled)).output
    assert re.search(r"^Scheduled:\s+2026-01-05 19:00 by rina$", shown, re.M)
    assert re.search(r"^Due:\s+2026-01-05 19:05  SCHEDULED 2026-01-05 19:00$", shown, re.M)
    assert "UNKNOWN x" in hf("show", str(unknown)).output


def test_show_shows_everything_the_coordinator_approves(hf, image, images, fake):
    """Rule: `show` shows each channel's variant (text, the media it attaches by name,
    options), media URLs passed through, and alt texts."""
    hf("channel", "add", "x", "--publisher", "fake", "--set", "media_urls=pass",
       "--by", "admin")
    item = new_item(hf, "Dies Natalis", "--channel", "x")
    hf("complete", str(item), "--as", "rina", "--text", TEXT, "--variant", "x=Teks X",
       "--variant-media", "x=1", "--option", "x.thread=true")
    hf("complete", str(item), "--as", "rina", "--notes", "Canva")
    hf("complete", str(item), "--as", "rina", "--media", "https://cdn.example/poster.jpg",
       "--media", "https://cdn.example/banner.jpg")
    shown = hf("show", str(item)).output
    assert ("Media:         https://cdn.example/poster.jpg (URL passed through), "
            "https://cdn.example/banner.jpg (URL passed through)") in shown
    assert re.search(r"^Variant x:\s+'Teks X'; media 1 banner.jpg; thread=true$", shown, re.M)
    office = humasflow.open(str(hf.db), establish=False, clock=hf.clock, environ={})
    try:
        described = office.new_item("Alt", by="rina", text=TEXT, channels=["x"], media=[
            humasflow.Media("https://cdn.example/a.jpg", alt="The dean cuts the cake")])
    finally:
        office.close()
    assert "https://cdn.example/a.jpg (URL passed through) alt 'The dean cuts the cake'" \
        in hf("show", str(described.id)).output


def test_inbox_shows_what_waits_for_each_person_most_urgent_first(hf, image, fake, clock):
    """Rule: `inbox --as ID` lists what that person can act on, most urgent first, each
    with the command that deals with it; not the coordinator's own items, not others'."""
    hf("channel", "add", "x", "--publisher", "fake", "--by", "admin")
    assert hf("inbox", "--as", "budi").output == "Nothing waits for budi (Budi Santoso).\n"
    late = new_item(hf, "Late concept")
    waiting = to_approval(hf, image, "Open house")
    broken = to_posting(hf, image, "Token expired")
    failing(fake, "x", AuthenticationFailed("the token expired"))
    hf("publish", str(broken), "--as", "rina", code=1)
    tonight = to_posting(hf, image, "Tonight")
    hf("schedule", str(tonight), "--as", "rina", "--at", "2026-01-05 19:00")
    clock.advance(minutes=7)

    budi = hf("inbox", "--as", "budi").output.splitlines()
    assert budi[0] == "3 things wait for budi (Budi Santoso), most urgent first:"
    assert re.match(rf"^1\s+channel failed\s+{broken}\s+Token expired\s+8 post\s+x\s+-\s+"
                    rf"\+2m\s+humasflow retry {broken} x --as budi$", budi[3])
    assert re.match(rf"^2\s+approve\s+{waiting}\s+Open house\s+5 approve\s+-\s+"
                    rf"2026-01-05 09:10\s+humasflow approve {waiting} --as budi$", budi[4])
    assert re.match(rf"^3\s+scheduled today\s+{tonight}\s+Tonight\s+8 post\s+-\s+"
                    rf"2026-01-05 19:00\s+humasflow show {tonight}$", budi[5])
    assert len(budi) == 6

    rina = hf("inbox", "--as", "rina").output
    assert f"humasflow retry {broken} x --as rina" in rina
    assert re.search(rf"^2\s+late\s+{late}\s+Late concept\s+2 concept\s+-\s+"
                     rf"2026-01-05 09:05\s+\+2m\s+humasflow show {late}$", rina, re.M)
    assert "approve" not in rina  # not rina's to give
    assert hf("inbox", "--as", "nobody", code=1).stderr.startswith(
        "Error: no actor 'nobody' in organisation 'default'")


def test_list_overdue_after_time_moves_and_check_sla_reports_once(hf, clock):
    item = new_item(hf, "Late concept")
    assert "No items." in hf("list", "--overdue").output
    clock.advance(minutes=12)  # the concept step's standard time is 5 minutes
    late = hf("list", "--overdue").output
    assert re.search(rf"^{item}\s+Late concept\s+2 concept\s+rina\s+.*OVERDUE \+7m$", late, re.M)
    first = hf("check-sla").output
    assert "Late concept" in first
    assert "+7m" in first
    assert "1 new breach(es)" in first
    assert "No new breach" in hf("check-sla").output


def test_show_prints_the_timeline_with_durations_against_the_standard(hf, image, clock):
    item = new_item(hf)
    clock.advance(minutes=4)
    hf("complete", str(item), "--as", "rina", "--text", TEXT)
    clock.advance(minutes=12)
    hf("complete", str(item), "--as", "rina", "--notes", "Canva")
    clock.advance(minutes=3)
    shown = hf("show", str(item)).output
    assert "Timeline:" in shown
    assert re.search(r"^2\s+concept\s+rina\s+2026-01-05 09:00\s+4m / 5m\s+complete -> 3 prepare$",
                     shown, re.M)
    assert re.search(r"^3\s+prepare\s+rina\s+2026-01-05 09:04\s+12m / 10m\s+LATE \+2m\s+complete",
                     shown, re.M)
    assert re.search(r"^4\s+design\s+-\s+2026-01-05 09:16\s+3m / 10m\s+\(current step\)$",
                     shown, re.M)
    assert re.search(r"Next:\s+complete, revise, cancel", shown)
    utc = hf("--tz", "UTC", "show", str(item)).output
    assert "Started (UTC)" in utc
    assert "2026-01-05 02:00" in utc


def test_revising_after_approval_withdraws_it(hf, image):
    item = to_approval(hf, image)
    hf("approve", str(item), "--as", "budi")
    out = hf("revise", str(item), "--as", "rina", "--text", "A new text").output
    assert "6 produce -> 5 approve" in out
    assert re.search(r"Approval:\s+withdrawn: the content changed after approval",
                     hf("show", str(item)).output)


# -- refusals -------------------------------------------------------------------------------


def test_a_refusal_is_one_error_line_with_exit_code_1(hf, image):
    item = to_approval(hf, image)
    result = hf("approve", str(item), "--as", "rina", code=1)
    assert result.stderr == (
        f"Error: 'rina' cannot approve item '{item}' at step 'approve': the SOP gives this "
        "step to the role 'coordinator'; ask someone with that role\n")
    assert "Traceback" not in result.output
    assert result.stdout == ""


@pytest.mark.parametrize(("args", "message"), [
    (["complete", "1", "--as", "rina"], "cannot complete without its output 'concept'"),
    (["show", "99"], "no content item '99'"),
    (["complete", "1", "--as", "nobody", "--text", "x"], "no actor 'nobody'"),
    (["new", "Item", "--as", "rina", "--channel", "tiktok"], "no channel named 'tiktok'"),
    (["sop", "show", "--revision", "7"], "(revision 7)"),
])
def test_expected_errors_are_reported_without_a_traceback(hf, args, message):
    new_item(hf)
    result = hf(*args, code=1)
    assert result.stderr.startswith("Error: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


def test_bad_arguments_are_usage_errors(hf, tmp_path):
    assert "no file at" in hf("new", "X", "--as", "rina", "--media", "nope.png", code=2).output
    assert "not a known time zone" in hf("--tz", "Mars/Olympus", "list", code=2).output
    assert "--not-posted" in hf("confirm", "1", "outbox", "--as", "rina", code=2).output


# -- the record -----------------------------------------------------------------------------


def test_audit_verify_passes_then_fails_after_tampering(hf, image):
    item = to_approval(hf, image)
    ok = hf("audit", "verify").output
    assert ok.startswith("OK: ")
    with sqlite3.connect(hf.db) as conn:
        conn.execute("UPDATE events SET note = 'approved by the dean' "
                     "WHERE stream = ? AND seq = 2", (f"item:{item}",))
    conn.close()
    broken = hf("audit", "verify", code=1).output
    assert f"BROKEN item:{item} #2: content does not match its hash: edited" in broken


def test_export_jsonl_and_csv(hf, image, tmp_path):
    item = to_approval(hf, image)
    lines = hf("export", "--item", str(item)).stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["action"] for e in events] == ["create", "complete", "complete", "complete"]
    assert all(len(e["hash"]) == 64 for e in events)
    out = tmp_path / "record.csv"
    result = hf("export", "--format", "csv", "--output", str(out))
    assert "to " + str(out) in result.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text("utf-8"))))
    assert {r["stream"] for r in rows} == {"org", f"item:{item}"}
    assert len(rows) == int(re.search(r"Wrote (\d+)", result.stderr)[1])


def test_log_of_the_organisation_includes_setup_events(hf):
    log = hf("log").output
    assert re.search(r"org\s+.*establish", log)
    assert "budi (coordinator)" in log


# -- the SOP --------------------------------------------------------------------------------


@pytest.mark.parametrize(("lang", "words"), [
    ("en", ["PR coordinator", "Standard time", "Kept as electronic data", "Legal basis",
            "The PR coordinator approves the concept"]),
    ("id", ["Koordinator Kehumasan", "Kelengkapan", "Disimpan sebagai data elektronik",
            "Dasar hukum", "Pelaksanaan"]),
])
def test_sop_show_in_both_languages(hf, lang, words):
    shown = hf("--lang", lang, "sop", "show").output
    assert "UN10/F11.07/HK.01.02.a/05" in shown
    for word in words:
        assert word in shown
    assert re.search(r"^5\s+\S.*\s10m\s", shown, re.M)


def test_sop_diagram_is_a_mermaid_state_diagram(hf):
    diagram = hf("sop", "diagram").output
    lines = [line.strip() for line in diagram.splitlines()]
    assert lines[:3] == ["---", 'title: "Faculty Social Media Management: content item lifecycle"',
                         "---"]
    assert lines[3] == "stateDiagram-v2"
    for edge in ("[*] --> concept", "approve --> produce: approve", "approve --> design: reject",
                 "recheck --> produce: rework", "post --> posted: complete", "posted --> [*]"):
        assert edge in lines
    assert 'state "5. approve (PR coordinator)" as approve' in lines
    assert "Koordinator Kehumasan" in hf("--lang", "id", "sop", "diagram").output


def test_sop_diagram_draws_shared_actions_once(hf):
    """Cancel (from steps 2-8) and revise (a loop at 2-5, back to approval from 6-8) are
    drawn once each, not on every step."""
    lines = [line.strip() for line in hf("sop", "diagram").output.splitlines()]
    arrows = [line for line in lines if "-->" in line]
    assert [a for a in arrows if a.endswith(": cancel")] == [
        "cancel_to_cancelled --> cancelled: cancel"]
    assert 'state "steps 2-8" as cancel_to_cancelled' in lines
    assert [a for a in arrows if a.endswith(": revise")] == [
        "revise_to_approve --> approve: revise"]
    assert 'state "steps 6-8" as revise_to_approve' in lines
    assert "revise at steps 2-5: the item stays at its step" in lines
    loops = [a for a in arrows if a.split(" --> ")[0] == a.split(" --> ")[1].split(":")[0]]
    assert loops == []
    # The step-specific arrows are all still there, one each.
    assert len(arrows) == len(set(arrows)) == 5 + 4 + 2 + 1 + 2


def test_sop_register_adds_a_revision(hf, tmp_path):
    text = resources.files("humasflow").joinpath("sops", "fisip-ub-social-media.toml") \
        .read_text("utf-8").replace('"UN10/F11.07/HK.01.02.a/05"', '"UN10/F11.07/HK.01.02.a/06"')
    path = tmp_path / "sop-v2.toml"
    path.write_text(text, "utf-8")
    out = hf("sop", "register", str(path), "--by", "admin", "--effective", "2030-01-01").output
    assert "Established SOP revision 2: UN10/F11.07/HK.01.02.a/06" in out
    assert "Not in effect yet: new items use revision 1" in out
    assert "UN10/F11.07/HK.01.02.a/06" in hf("sop", "show", "--revision", "2").output
    broken = tmp_path / "broken.toml"
    broken.write_text("format = 2\n", "utf-8")
    assert "format" in hf("sop", "register", str(broken), "--by", "admin", code=1).stderr


# -- the demo -------------------------------------------------------------------------------


def test_demo_walks_an_item_to_posted_on_a_fresh_store(tmp_path):
    db = tmp_path / "demo" / "demo.db"
    result = CliRunner().invoke(cli, ["demo", "--db", str(db)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "reject   Item 1: 5 approve -> 4 design by budi" in out
    assert "rework   Item 1: 7 recheck -> 6 produce by rina" in out
    assert "LATE +2m" in out
    assert re.search(r"State:\s+posted", out)
    assert "Audit: OK" in out
    post = tmp_path / "demo" / "outbox" / outbox_folder(db, 1) / "post.json"
    assert f"The outbox post was written to {post}" in out
    assert json.loads(post.read_text("utf-8"))["title"] == "Dies Natalis FISIP UB"
    again = CliRunner().invoke(cli, ["demo", "--db", str(db)])
    assert again.exit_code == 1
    assert "already exists" in again.stderr


def test_the_installed_console_script_runs_the_demo(tmp_path):
    folder = Path(sys.executable).parent
    script = next(p for p in (folder / "humasflow", folder / "humasflow.exe") if p.exists())
    result = subprocess.run([str(script), "demo", "--db", str(tmp_path / "demo.db")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "State:         posted" in result.stdout
    assert "Audit: OK" in result.stdout
    assert result.stderr == ""


def _explore_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("Explore it: ")]
    assert len(lines) == 1, output
    return lines[0].removeprefix("Explore it: ")


@pytest.mark.parametrize("on_path", [True, False], ids=["on PATH", "not on PATH"])
def test_the_command_the_demo_suggests_works_as_printed(tmp_path, on_path):
    """Pasted into the same shell, the demo's last line works: with the program on the
    PATH or not (README runs .venv/bin/humasflow), with HUMASFLOW_ORG set, in a folder
    with a space, and run from another directory."""
    folder = Path(sys.executable).parent
    script = next(p for p in (folder / "humasflow", folder / "humasflow.exe") if p.exists())
    path = os.environ.get("PATH", "").split(os.pathsep)
    path = [p for p in path if p and Path(p).resolve() != folder.resolve()]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HUMASFLOW_")},
           "PATH": os.pathsep.join([str(folder), *path] if on_path else path),
           "TMPDIR": str(tmp_path), "HUMASFLOW_ORG": "fisip"}
    work = tmp_path / "a folder"
    work.mkdir()
    demo = subprocess.run([str(script), "demo"], cwd=work, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    command = _explore_line(demo.stdout)
    assert command.startswith("humasflow " if on_path else str(script)), command
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shown = subprocess.run(["bash", "-c", command], cwd=elsewhere, env=env,
                           capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0, command + "\n" + shown.stdout + shown.stderr
    assert "State:         posted" in shown.stdout
    assert "'Dies Natalis FISIP UB'" in shown.stdout


def test_the_demo_names_its_store_and_organisation_in_the_suggested_command(tmp_path):
    db = tmp_path / "my demo" / "humasflow.db"
    runner = CliRunner()
    out = runner.invoke(cli, ["--org", "fia", "demo", "--db", str(db)]).output
    args = shlex.split(_explore_line(out))
    assert args == ["humasflow", "--db", str(db), "--org", "fia", "show", "1"]
    shown = runner.invoke(cli, args[1:])
    assert shown.exit_code == 0, shown.output
    assert "State:         posted" in shown.output


# -- the reference ----------------------------------------------------------------------------


def _commands(group, prefix=""):
    for name, command in sorted(group.commands.items()):
        yield f"{prefix}{name}"
        if hasattr(command, "commands"):
            yield from _commands(command, f"{prefix}{name} ")


def test_every_command_has_a_section_with_an_example_in_the_cli_reference():
    reference = (ROOT / "docs" / "cli.md").read_text("utf-8")
    sections = dict(re.findall(r"^#{2,3} `humasflow ([a-z -]+?)`\n(.*?)(?=^#{2,3} |\Z)",
                               reference, re.M | re.S))
    commands = [c for c in _commands(cli) if not hasattr(cli.commands.get(c), "commands")]
    missing = [c for c in commands if c not in sections]
    assert not missing, f"docs/cli.md has no section for: {missing}"

    def spellings(command):  # the command's names, aliases included (`channels check`)
        first, _, rest = command.partition(" ")
        names = [first, *(a for a, target in cli.aliases.items() if target == first)]
        return "|".join(re.escape(f"{name} {rest}".strip()) for name in names)

    example = {c: re.compile(rf"^\$ .*\bhumasflow\b.*(?<![\w-])(?:{spellings(c)})(?![\w-])",
                             re.M) for c in commands}
    without = [c for c in commands
               if "```console" not in sections[c] or not example[c].search(sections[c])]
    assert not without, f"docs/cli.md has no example run in the section of: {without}"


def test_audit_anchor_then_verify_against_it(hf, image, tmp_path):
    item = to_approval(hf, image)
    anchor_file = tmp_path / "anchor.json"
    printed = json.loads(hf("audit", "anchor", "--out", str(anchor_file)).stdout)
    assert json.loads(anchor_file.read_text("utf-8")) == printed
    assert {"org", "store", "time", "seq", "hash", "digest"} <= set(printed)
    hf("approve", str(item), "--as", "budi")  # a later action still extends the anchor
    ok = hf("audit", "verify", "--anchor", str(anchor_file)).output
    assert ok.startswith("OK: ")
    assert "extends the anchor" in ok
    with sqlite3.connect(hf.db) as conn:
        conn.execute("UPDATE events SET hash = 'x' WHERE stream = 'org' AND seq = ?",
                     (printed["seq"],))
    conn.close()
    broken = hf("audit", "verify", "--anchor", str(anchor_file), code=1).output
    assert "does not extend the anchor" in broken
    (tmp_path / "bad.json").write_text("[]", encoding="utf-8")
    assert "not a JSON object" in hf("audit", "verify", "--anchor", str(tmp_path / "bad.json"),
                                     code=1).output


def test_the_coordinators_view_in_indonesian(hf, image, fake, clock):
    """Rule: list, show, inbox, check-sla and errors speak Indonesian with --lang id
    (or HUMASFLOW_LANG=id), and the same commands speak English without it."""
    hf("channel", "add", "x", "--publisher", "fake", "--by", "admin")
    waiting = to_approval(hf, image, "Open house")
    late = new_item(hf, "Late concept")
    clock.advance(minutes=12)

    listed = hf("list", "--lang", "id").output
    assert re.search(rf"^{waiting}\s+Open house\s+5 approve\s+rina\s+.*MENUNGGU PERSETUJUAN",
                     listed, re.M)
    assert re.search(rf"^{late}\s+Late concept\s+.*TERLAMBAT \+7m$", listed, re.M)
    assert "2 butir; 1 menunggu persetujuan; 2 terlambat." in listed
    assert listed.splitlines()[0].split()[:2] == ["ID", "Judul"]
    assert hf("list").output.splitlines()[0].split()[:2] == ["ID", "Title"]

    inbox = hf("inbox", "--as", "budi", env={"HUMASFLOW_LANG": "id"}).output
    assert "hal menunggu budi (Budi Santoso), yang paling mendesak lebih dulu:" in inbox
    assert f"humasflow approve {waiting} --as budi" in inbox
    assert "setujui" in inbox

    shown = hf("--lang", "id", "show", str(waiting)).output
    assert "Persetujuan" in shown or "persetujuan" in shown
    assert "Approval:" not in shown

    refused = hf("approve", str(waiting), "--as", "rina", "--lang", "id", code=1).stderr
    assert refused.startswith("Galat: 'rina' tidak dapat menjalankan 'approve'")
    assert "mintalah orang yang memegang peran tersebut" in refused
    assert hf("approve", str(waiting), "--as", "rina", code=1).stderr.startswith(
        "Error: 'rina' cannot approve item '1'")
