"""Typos and mistakes are errors that say what would be right, never silent successes.

Rules checked here: a state, an assignee or an organisation that does not exist is an
error naming the ones that do (and a misspelt ``--org`` creates nothing); ``init``
checks its SOP file before it writes anything and records the establishment as done by
the administrator who ran it; SOP loader errors name the step as people count it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import humasflow
from humasflow import DefinitionError, OrganisationNotFound, StepNotFound, StorageError
from humasflow.cli import cli
from humasflow.sop import bundled_sop, parse_sop
from humasflow.testing import SteerableClock

BUNDLED = Path(humasflow.__file__).with_name("sops") / "fisip-ub-social-media.toml"


class Run:
    """Runs the command on one SQLite store with the test's clock."""

    def __init__(self, db: Path | str, clock: SteerableClock) -> None:
        self.db = db
        self.clock = clock

    def __call__(self, *args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(cli, ["--db", str(self.db), *args],
                                    obj={"clock": self.clock, "environ": {}})
        assert result.exit_code == code, (result.output, result.exception)
        return result


@pytest.fixture
def run(tmp_path, clock) -> Run:
    """A store with an administrator, the bundled SOP, staff rina and coordinator budi."""
    hf = Run(tmp_path / "humasflow.db", clock)
    hf("init", "--admin", "admin", "--name", "Admin", "--outbox", str(tmp_path / "outbox"))
    hf("actor", "add", "rina", "--name", "Rina", "--role", "staff", "--by", "admin")
    hf("actor", "add", "budi", "--name", "Budi", "--role", "coordinator", "--by", "admin")
    return hf


def _orgs(db: Path | str) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM orgs ORDER BY id")]


# -- states and assignees -------------------------------------------------------------------


def test_list_refuses_an_unknown_state_and_lists_the_valid_ones(run):
    result = run("list", "--state", "aprove", code=2)
    assert "Invalid value for --state: 'aprove' is not a step of the SOP" in result.output
    assert ("concept, prepare, design, approve, produce, recheck, post, posted, cancelled"
            in result.output)
    assert "No items." in run("list", "--state", "approve").output
    assert "No items." in run("list", "--state", "cancelled").output


def test_list_refuses_an_unknown_assignee(run):
    result = run("list", "--assignee", "rnia", code=2)
    assert "there is no actor 'rnia'; the actors: admin, budi, rina" in result.output


def test_the_library_refuses_unknown_states_too(office):
    with pytest.raises(StepNotFound) as caught:
        office.items(state="aprove")
    assert caught.value.state == "aprove"
    assert caught.value.valid[-2:] == ("posted", "cancelled")
    assert "approve" in caught.value.valid
    with pytest.raises(StepNotFound):
        office.items(state=["approve", "pots"])
    assert office.items(state="open") == []
    assert office.states()[0] == "concept"


# -- organisations --------------------------------------------------------------------------


def test_a_misspelt_org_creates_nothing_and_names_the_existing_ones(run):
    for command in (["list"], ["sop", "show"], ["actor", "list"], ["log"], ["check-sla"]):
        result = run("--org", "fisp", *command, code=1)
        assert ("there is no organisation 'fisp' in the store" in result.stderr), command
        assert "its organisations: default." in result.stderr
    assert _orgs(run.db) == ["default"]


def test_init_sets_up_a_new_org_and_says_it_is_new(run, tmp_path):
    out = run("--org", "fisip", "init", "--admin", "tika", "--name", "Tika").output
    assert "Organisation: fisip (new; the store's other organisations: default)" in out
    assert _orgs(run.db) == ["default", "fisip"]
    assert "SOP already established" in run("--org", "fisip", "init").output


def test_init_with_by_on_a_misspelt_org_creates_nothing(run, tmp_path):
    result = run("--org", "fisp", "init", "--by", "admin", "--outbox", str(tmp_path / "o"),
                 code=1)
    assert "--by admin: there is no organisation 'fisp' in this store yet" in result.stderr
    assert _orgs(run.db) == ["default"]


def test_the_library_creates_an_organisation_only_when_asked(tmp_path, clock):
    db = str(tmp_path / "h.db")
    with pytest.raises(StorageError, match="there is no humasflow store"):
        humasflow.open(db, create=False)
    assert not Path(db).exists()
    humasflow.open(db, org="fisip", clock=clock, environ={}).close()  # creates, as before
    with pytest.raises(OrganisationNotFound) as caught:
        humasflow.open(db, org="fisp", clock=clock, environ={}, create=False)
    assert caught.value.known == ("fisip",)
    assert _orgs(Path(db)) == ["fisip"]
    office = humasflow.open(db, org="fisip", clock=clock, environ={}, create=False)
    try:
        with pytest.raises(OrganisationNotFound):
            office.for_org("fib", create=False)
    finally:
        office.close()


# -- init -----------------------------------------------------------------------------------


def test_init_checks_the_sop_file_before_writing_anything(tmp_path, clock):
    bad = tmp_path / "bad.toml"
    bad.write_text(BUNDLED.read_text("utf-8").replace('standard_time = "5m"',
                                                      'standard_time = "5x"', 1), "utf-8")
    hf = Run(tmp_path / "new.db", clock)
    result = hf("init", "--sop", str(bad), "--admin", "tika", "--name", "Tika", code=1)
    assert "standard_time" in result.stderr
    assert not (tmp_path / "new.db").exists()
    result = hf("init", "--outbox", str(tmp_path / "o"), code=1)
    assert "needs an administrator" in result.stderr
    assert not (tmp_path / "new.db").exists()


def test_init_records_the_establishment_as_done_by_the_administrator(tmp_path, clock):
    hf = Run(tmp_path / "h.db", clock)
    out = hf("init").output  # no administrator: nothing is established in anyone's name
    assert "No administrator yet" in out
    assert "Established" not in out
    out = hf("init", "--admin", "tika", "--name", "Tika").output
    assert "Established SOP revision 1" in out
    office = humasflow.open(str(hf.db), clock=clock, environ={}, create=False)
    try:
        assert [r["established_by"] for r in office.revisions()] == ["tika"]
        establish = [e for e in office.events("org") if e.action == "establish"]
        assert [e.actor for e in establish] == ["tika"]
        assert office.sop().header.approved_by_name not in {e.actor for e in office.events()}
    finally:
        office.close()


def test_init_by_must_name_an_administrator(tmp_path, clock):
    hf = Run(tmp_path / "h.db", clock)
    hf("init")
    result = hf("init", "--by", "tika", code=1)
    assert "--by tika is not an active administrator of organisation 'default'" in result.stderr
    hf("init", "--admin", "tika", "--name", "Tika")
    sop = tmp_path / "sop.toml"
    sop.write_text(BUNDLED.read_text("utf-8"), "utf-8")
    assert "Established SOP revision 2" in hf("init", "--sop", str(sop), "--by", "tika").output
    assert "is not an active administrator" in hf("init", "--sop", str(sop), "--by", "tiak",
                                                  code=1).stderr


# -- the SOP loader -------------------------------------------------------------------------


def test_sop_errors_name_the_step_as_people_count_it():
    text = BUNDLED.read_text("utf-8")
    approve = bundled_sop().step("approve")
    position = [s.key for s in bundled_sop().steps].index("approve") + 1
    broken = text.replace('standard_time = "10m"\noutput = "approval"',
                          'standard_time = "10 minutes"\noutput = "approval"')
    assert broken != text
    with pytest.raises(DefinitionError) as caught:
        parse_sop(broken, source="sop.toml")
    assert caught.value.path == f"steps[{position - 1}].standard_time"
    assert str(caught.value).startswith(
        f"sop.toml: step {position} (approve): standard_time: is '10 minutes'")
    assert approve.number == position  # the bundled SOP numbers its steps from 1, in order


def test_sop_errors_name_a_step_without_key_by_its_place():
    text = BUNDLED.read_text("utf-8").replace('key = "concept"\n', "", 1)
    with pytest.raises(DefinitionError, match=r"sop.toml: step 2: key: is missing"):
        parse_sop(text, source="sop.toml")


def test_the_admin_role_is_refused_by_the_loader():
    text = BUNDLED.read_text("utf-8").replace('key = "staff"', 'key = "admin"').replace(
        'actor = "staff"', 'actor = "admin"')
    with pytest.raises(DefinitionError, match=r"role 2 \(admin\): key: is 'admin'"):
        parse_sop(text, source="sop.toml")


# -- channel limits from the concept step on ------------------------------------------------


class _Short:
    """A publisher whose platform takes 280 characters and needs an image."""

    def __init__(self, channel, context) -> None:
        self.channel = channel.name

    def validate(self, post):
        from humasflow.publishing.contract import Problem

        problems = []
        if not post.media:
            problems.append(Problem(self.channel, "media", "required", "needs an image"))
        if len(post.text) > 280:
            problems.append(Problem(self.channel, "text", "max_length",
                                    f"the text has {len(post.text)} characters; the "
                                    "platform takes 280", limit=280, actual=len(post.text)))
        return problems

    def publish(self, post, progress=None):  # pragma: no cover - never posted here
        raise AssertionError("not posted in these tests")

    def check(self) -> None:  # pragma: no cover
        pass


class _ShortPlugin:
    @humasflow.hookimpl
    def register_publishers(self, register):
        register("short", _Short)


@pytest.fixture
def short(run):
    from humasflow.testing import plugin_registered

    with plugin_registered(_ShortPlugin()):
        run("channel", "add", "tw", "--publisher", "short", "--by", "admin")
        yield run


def test_channel_limits_show_as_warnings_from_the_concept_step_on(short, image):
    long_text = "Selamat Dies Natalis!" * 471 + "ABC"  # 9,894 characters
    created = short("new", "Dies Natalis", "--as", "rina", "--text", long_text)
    item = created.stdout.strip()
    warning = ("Warning: channel 'tw' would refuse the post: text: the text has 9894 "
               "characters; the platform takes 280")
    assert warning in created.stderr
    assert "needs an image" not in created.stderr  # the design step supplies it
    completed = short("complete", item, "--as", "rina", "--text", long_text)
    assert warning in completed.stderr
    shown = short("show", item).stdout
    assert ("Warnings:      channel 'tw' would refuse the post: text: the text has 9894 "
            "characters") in shown
    revised = short("revise", item, "--as", "rina", "--text", "Selamat Dies Natalis!")
    assert "Warning" not in revised.stderr
    assert "Warnings:" not in short("show", item).stdout


def test_the_library_gives_the_same_warnings(office, clock, image):
    from humasflow.testing import plugin_registered

    with plugin_registered(_ShortPlugin()):
        office.add_channel("tw", "short", by="admin")
        item = office.new_item("Dies Natalis", by="rina", text="x" * 300, channels=["tw"])
        problems = office.post_warnings(item.id)
        assert [(p.channel, p.rule, p.limit) for p in problems] == [("tw", "max_length", 280)]
        assert office.post_warnings(office.cancel(item.id, by="rina", reason="moved")) == []


def test_a_folder_given_as_media_is_named_a_folder(run, tmp_path):
    folder = tmp_path / "posters"
    folder.mkdir()
    item = run("new", "Dies Natalis", "--as", "rina").stdout.strip()
    result = run("new", "Other", "--as", "rina", "--media", str(folder), code=2)
    assert f"'{folder}' is a folder; give a media file" in result.output
    office = humasflow.open(str(run.db), clock=run.clock, environ={}, create=False,
                            media_roots=[tmp_path])
    try:
        with pytest.raises(humasflow.ContentInvalid, match="is a folder; give a media file"):
            office.revise(int(item), by="rina", media=[str(folder)])
    finally:
        office.close()


# -- errors speak the caller's words --------------------------------------------------------


def test_cli_errors_name_the_options_not_python_parameters(run, image):
    item = run("new", "Dies Natalis", "--as", "rina").stdout.strip()
    result = run("complete", item, "--as", "rina", code=1)
    assert "give the concept text (--text)" in result.stderr
    assert "=..." not in result.stderr
    run("complete", item, "--as", "rina", "--text", "Selamat Dies Natalis!")
    result = run("complete", item, "--as", "rina", "--text", "again", code=1)
    assert "does not take --text; it takes --notes." in result.stderr
    run("complete", item, "--as", "rina", "--notes", "Canva")
    result = run("complete", item, "--as", "rina", code=1)
    assert "attach at least one design or video (--media)" in result.stderr
    result = run("revise", item, "--as", "rina", code=1)
    assert "give what changes: --text, --media, --link, --variant or --channel" in result.stderr
    run("complete", item, "--as", "rina", "--media", image)
    result = run("reject", item, "--as", "budi", "--reason", " ", code=1)
    assert "say why the concept is rejected (--reason)" in result.stderr
    assert "note" not in result.stderr
    result = run("cancel", item, "--as", "rina", "--reason", "", code=1)
    assert "say why the item is cancelled (--reason)" in result.stderr
    result = run("reject", item, "--as", "budi", "--reason", "x" * 100_001, code=1)
    assert result.stderr.startswith("Error: --reason is 100001 characters long")


def test_library_errors_name_the_parameters_of_the_call(office, image):
    from humasflow import InputInvalid, OutputMissing, Refused

    item = office.new_item("Dies Natalis", by="rina")
    with pytest.raises(OutputMissing, match=r"give the concept text \(text=\.\.\.\)") as caught:
        office.complete(item.id, by="rina")
    assert caught.value.params == ("text",)
    assert "(--text)" in caught.value.reworded(lambda p: f"--{p}")
    office.complete(item.id, by="rina", text="Selamat!")
    with pytest.raises(Refused, match=r"does not take text=\.\.\.; it takes notes=\.\.\."):
        office.complete(item.id, by="rina", text="again")
    office.complete(item.id, by="rina", notes="Canva")
    with pytest.raises(OutputMissing, match=r"\(media=\[\.\.\.\]\)"):
        office.complete(item.id, by="rina")
    office.complete(item.id, by="rina", media=[image])
    with pytest.raises(OutputMissing, match=r"rejected \(reason=\.\.\.\)$"):
        office.reject(item.id, by="budi", reason="")
    with pytest.raises(InputInvalid, match=r"^reason contains a NUL"):
        office.reject(item.id, by="budi", reason="\x00")
    with pytest.raises(InputInvalid, match=r"^findings contains a NUL"):
        office.rework(item.id, by="budi", findings="\x00")


# -- assign and revise's channels and variants ----------------------------------------------


def test_assign_from_the_command_line(run):
    run("actor", "add", "sari", "--name", "Sari", "--role", "staff", "--by", "admin")
    item = run("new", "Dies Natalis", "--as", "rina").stdout.strip()
    out = run("assign", item, "--to", "sari", "--by", "budi").stdout
    assert f"Item {item} 'Dies Natalis' is assigned to sari (before: rina), by budi." in out
    assert "Assignee:      sari" in run("show", item).stdout
    # The library's checks: the coordinator's role, the step's role, an actor that exists.
    assert "cannot assign item" in run("assign", item, "--to", "rina", "--by", "rina",
                                       code=1).stderr
    assert "cannot be assigned item" in run("assign", item, "--to", "budi", "--by", "budi",
                                            code=1).stderr
    assert "no actor 'sary'" in run("assign", item, "--to", "sary", "--by", "budi",
                                    code=1).stderr
    run("cancel", item, "--as", "sari", "--reason", "moved")
    assert "where 'assign' is not possible" in run("assign", item, "--to", "rina", "--by",
                                                   "budi", code=1).stderr


def test_revise_changes_channels_and_variants(run, tmp_path):
    run("channel", "add", "web", "--publisher", "outbox", "--set", f"path={tmp_path / 'web'}",
        "--by", "admin")
    item = run("new", "Dies Natalis", "--as", "rina", "--text", "Selamat!",
               "--variant", "web=Selamat di web").stdout.strip()
    assert "Channels:      outbox, web" in run("show", item).stdout
    run("revise", item, "--as", "rina", "--channel", "outbox", "--no-variant", "web")
    shown = run("show", item).stdout
    assert "Channels:      outbox\n" in shown
    assert "Variant" not in shown
    run("revise", item, "--as", "rina", "--channel", "outbox", "--channel", "web",
        "--variant", "web=Di web")
    shown = run("show", item).stdout
    assert "Channels:      outbox, web" in shown
    assert "Variant web:   'Di web'" in shown
    result = run("revise", item, "--as", "rina", "--channel", "wbe", code=1)
    assert "no channel named 'wbe' in organisation 'default'; configured: outbox, web" \
        in result.stderr
    result = run("revise", item, "--as", "rina", "--no-variant", "outbox", code=2)
    assert "channel 'outbox' has no variant; the variants: web" in result.output
    run("complete", item, "--as", "rina", "--channel", "web")
    assert "Channels:      web\n" in run("show", item).stdout


# -- hints about the store ------------------------------------------------------------------


def test_a_missing_driver_says_what_to_install(monkeypatch, tmp_path, clock):
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if it were not installed
    url = "postgresql://humas@db.example.invalid/humasflow"
    with pytest.raises(StorageError, match=r"pip install 'humasflow\[postgres\]'"):
        humasflow.open(url)
    result = Run(url, clock)("list", code=1)
    assert "the PostgreSQL driver (psycopg) is not installed" in result.stderr
    assert "pip install 'humasflow[postgres]'" in result.stderr


def test_a_sqlite_store_in_a_folder_that_does_not_exist_says_so(tmp_path, clock):
    target = tmp_path / "missing" / "deeper" / "h.db"
    with pytest.raises(StorageError, match=r"the folder .* does not exist; create it first"):
        humasflow.open(str(target))
    result = Run(target, clock)("init", code=1)
    assert f"the folder '{target.parent}' does not exist" in result.stderr
    assert "cannot be written" not in result.stderr
    assert not (tmp_path / "missing").exists()


@pytest.mark.postgres
def test_a_postgresql_database_that_does_not_exist_says_so(pg_url, clock):
    import sqlalchemy as sa

    base = sa.engine.make_url(pg_url.split("?")[0])
    url = base.set(database="humasflow_no_such_database").render_as_string(
        hide_password=False)
    with pytest.raises(StorageError, match="has no database 'humasflow_no_such_database'"):
        humasflow.open(url)
    result = Run(url, clock)("init", code=1)
    assert "does not exist" in result.stderr
    assert "createdb humasflow_no_such_database" in result.stderr


# -- more of the same kind ------------------------------------------------------------------


def test_a_misspelt_channel_setting_is_refused_when_the_channel_is_configured(run, tmp_path):
    result = run("channel", "add", "web", "--publisher", "outbox", "--set",
                 f"paht={tmp_path / 'web'}", "--by", "admin", code=1)
    assert ("the outbox publisher takes no setting 'paht'; it takes media_max_bytes, "
            "media_urls, path, retry") in result.stderr
    result = run("channel", "add", "fb", "--publisher", "manual", "--set", "instruction=x",
                 "--by", "admin", code=1)
    assert "the manual publisher takes no setting 'instruction'" in result.stderr
    assert "web" not in run("channel", "list").stdout
    run("channel", "add", "fb", "--publisher", "manual", "--set", "instructions=Page admin",
        "--set", "media_urls=pass", "--by", "admin")
