"""The ``humasflow`` command, run through click's test runner on a SQLite file.

Rules checked here: every step of the SOP can be driven from the command line; what a
coordinator needs at a glance (waiting for approval, overdue) shows in ``list``; a
refusal is a one-line ``Error:`` with exit code 1 and no traceback; a broken record makes
``audit verify`` exit 1; the demo runs offline on a fresh store; and the installed
console script works.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from humasflow.cli import cli

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Selamat Dies Natalis FISIP UB! #FISIPUB"


class Humasflow:
    """Runs the command against one store, with the test's clock."""

    def __init__(self, db: Path, clock) -> None:
        self.db = db
        self.clock = clock
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0, env=None) -> Result:
        result = self.runner.invoke(cli, ["--db", str(self.db), *args], env=env,
                                    obj={"clock": self.clock, "environ": {}})
        assert result.exit_code == code, (result.output, result.exception)
        if code == 0:
            assert result.exception is None or isinstance(result.exception, SystemExit)
        return result


@pytest.fixture
def hf(tmp_path, clock) -> Humasflow:
    """A fresh store: the bundled SOP, an outbox channel, staff rina and sari, coordinator budi."""
    run = Humasflow(tmp_path / "humasflow.db", clock)
    run("init", "--outbox", str(tmp_path / "outbox"))
    run("actor", "add", "rina", "--name", "Rina Wulandari", "--role", "staff")
    run("actor", "add", "sari", "--name", "Sari Dewi", "--role", "staff")
    run("actor", "add", "budi", "--name", "Budi Santoso", "--email", "budi@example.ac.id",
        "--role", "coordinator")
    return run


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
    out = run("init", "--outbox", str(tmp_path / "out")).output
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
    hf("actor", "add", "sari", "--name", "Sari Dewi", "--role", "staff", "--role", "coordinator")
    assert "coordinator (PR coordinator), staff (PR staff)" in hf("actor", "list").output
    refused = hf("actor", "add", "eko", "--name", "Eko", "--role", "intern", code=1)
    assert refused.stderr == ("Error: the SOP has no role 'intern'; "
                              "its roles: coordinator, staff\n")


def test_channels_store_settings_and_credential_variable_names_only(hf, tmp_path):
    hf("channel", "add", "x", "--publisher", "outbox", "--set", f"path={tmp_path / 'x'}",
       "--credential", "token=HF_TEST_X_TOKEN")
    listing = hf("channel", "list").output
    assert "token=HF_TEST_X_TOKEN (NOT SET)" in listing
    assert f"path={tmp_path / 'x'}" in listing
    unknown = hf("channel", "add", "y", "--publisher", "nowhere", code=1)
    assert unknown.stderr.startswith("Error: channel 'y': no publisher named 'nowhere'")
    assert "key=value" in hf("channel", "add", "z", "--publisher", "outbox", "--set", "path",
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
    assert f"Item {item} posted." in out
    assert (tmp_path / "outbox" / f"item-{item}-outbox" / "post.json").is_file()
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
    hf("channel", "add", "instagram", "--publisher", "manual")
    item = to_posting(hf, image)
    waiting = hf("post", str(item), "--as", "rina").output
    assert "instagram: waiting" in waiting
    assert "outbox: posted" in waiting
    assert f"Item {item} waits for a person to post on instagram" in waiting
    url = "https://www.instagram.com/p/abc/"
    done = hf("confirm", str(item), "instagram", "--as", "rina", "--url", url).output
    assert f"instagram: posted {url}" in done
    assert f"Item {item} posted." in done


def test_a_scheduled_item_is_posted_by_run_due(hf, image, clock):
    item = to_posting(hf, image)
    out = hf("schedule", str(item), "--as", "rina", "--at", "2026-01-05 10:30").output
    assert "will be posted at 2026-01-05 10:30" in out  # 10:30 in Jakarta is 03:30 UTC
    assert "Nothing is due." in hf("run-due").output
    clock.advance(hours=2)
    due = hf("run-due").output
    assert f"Item {item} 'Dies Natalis': posted" in due
    assert "outbox: posted" in due
    assert re.search(r"State:\s+posted", hf("show", str(item)).output)


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


def test_sop_register_adds_a_revision(hf, tmp_path):
    text = resources.files("humasflow").joinpath("sops", "fisip-ub-social-media.toml") \
        .read_text("utf-8").replace('"UN10/F11.07/HK.01.02.a/05"', '"UN10/F11.07/HK.01.02.a/06"')
    path = tmp_path / "sop-v2.toml"
    path.write_text(text, "utf-8")
    out = hf("sop", "register", str(path), "--by", "Dekan", "--effective", "2030-01-01").output
    assert "Established SOP revision 2: UN10/F11.07/HK.01.02.a/06" in out
    assert "Not in effect yet: new items use revision 1" in out
    assert "UN10/F11.07/HK.01.02.a/06" in hf("sop", "show", "--revision", "2").output
    broken = tmp_path / "broken.toml"
    broken.write_text("format = 2\n", "utf-8")
    assert "format" in hf("sop", "register", str(broken), code=1).stderr


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
    post = tmp_path / "demo" / "outbox" / "item-1-outbox" / "post.json"
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


# -- the reference ----------------------------------------------------------------------------


def _commands(group, prefix=""):
    for name, command in sorted(group.commands.items()):
        yield f"{prefix}{name}"
        if hasattr(command, "commands"):
            yield from _commands(command, f"{prefix}{name} ")


def test_every_command_is_in_the_cli_reference():
    reference = (ROOT / "docs" / "cli.md").read_text("utf-8")
    headings = set(re.findall(r"^#{2,3} `humasflow ([a-z -]+?)`", reference, re.M))
    missing = [c for c in _commands(cli) if c not in headings
               and not hasattr(cli.commands.get(c), "commands")]
    assert not missing, f"docs/cli.md has no section for: {missing}"
