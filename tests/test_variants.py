"""Rule: each channel may get its own variant (text, choice of media, publisher options),
which its publisher validates before approval, which the approval covers, and which is
exactly what that channel receives."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from humasflow import ContentInvalid, NotAllowedNow, Post, Problem, Variant
from humasflow.cli import cli
from humasflow.publishing.contract import unknown_options
from humasflow.testing import fake_publisher_plugin, plugin_registered


@pytest.fixture
def fake(office):
    plugin = fake_publisher_plugin()
    with plugin_registered(plugin):
        office.add_channel("x", "fake", by="admin")
        office.add_channel("ig", "fake", by="admin")
        yield plugin


@pytest.fixture
def second_image(tmp_path):
    path = tmp_path / "poster-2.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\1" * 64)
    return str(path)


def to_posting(office, item_id, media):
    office.complete(item_id, by="rina", notes="template")
    office.complete(item_id, by="rina", media=media)
    office.approve(item_id, by="budi", answer="OK")
    office.complete(item_id, by="rina", media=media)
    return office.pass_recheck(item_id, by="sari")


def test_a_variant_is_text_or_text_media_and_options():
    assert Variant.of("hi") == Variant(text="hi")
    v = Variant.of({"media": [1], "options": {"thread": True}})
    assert (v.text, v.media, dict(v.options)) == (None, (1,), {"thread": True})
    assert Variant.of("hi").to_data() == "hi"  # the plain form stays plain in the record
    assert v.to_data() == {"media": [1], "options": {"thread": True}}
    with pytest.raises(TypeError, match="not 'txt'"):
        Variant.of({"txt": "typo"})


def test_each_channel_receives_its_own_text_media_and_options(
        office, fake, image, second_image):
    item = office.new_item("Dies Natalis", by="rina", channels=["x", "ig"])
    office.complete(item.id, by="rina", text="Teks umum", variants={
        "x": {"text": "Teks untuk X", "media": [1], "options": {"thread": True}},
        "ig": {"options": {"kind": "carousel"}}})
    to_posting(office, item.id, [image, second_image])
    assert office.post(item.id, by="rina").done
    (x_post,) = fake.publishers["x"].posted
    (ig_post,) = fake.publishers["ig"].posted
    assert (x_post.text, dict(x_post.options)) == ("Teks untuk X", {"thread": True})
    assert [m.source for m in x_post.media] == [second_image]
    assert ig_post.text == "Teks umum"
    assert len(ig_post.media) == 2
    assert dict(ig_post.options) == {"kind": "carousel"}


def test_the_approval_covers_every_variant(office, fake, image):
    item = office.new_item("Dies", by="rina", channels=["x", "ig"])
    office.complete(item.id, by="rina", text="Teks", variants={"x": {"options": {"poll": 1}}})
    to_posting(office, item.id, [image])
    # An option changed after the approval is a change of what is posted: it needs
    # the coordinator again.
    before = office.item(item.id)
    revised = office.revise(item.id, by="rina", variants={"x": {"options": {"poll": 2}}})
    assert revised.post.digest != before.post.digest
    assert revised.state == "approve"
    assert not revised.is_approved
    with pytest.raises(NotAllowedNow):
        office.post(item.id, by="rina")


def test_publishers_validate_their_variant_before_approval(office, fake, image):
    fake.publishers.clear()
    item = office.new_item("Dies", by="rina", channels=["x"])
    office.complete(item.id, by="rina", text="Teks",
                    variants={"x": {"options": {"thred": True}}})
    office.complete(item.id, by="rina", notes="template")
    publisher = fake.factory(office.channels()["x"], None)  # type: ignore[arg-type]
    publisher.problems = [Problem("x", "options.thred", "option", "no option 'thred'")]
    with pytest.raises(ContentInvalid, match="thred"):
        office.complete(item.id, by="rina", media=[image])


def test_a_variant_for_a_missing_media_position_or_a_non_target_is_a_problem(
        office, fake, image):
    item = office.new_item("Dies", by="rina", channels=["x"])
    office.complete(item.id, by="rina", text="Teks",
                    variants={"x": {"media": [3]}, "ig": "not a target"})
    office.complete(item.id, by="rina", notes="template")
    with pytest.raises(ContentInvalid) as caught:
        office.complete(item.id, by="rina", media=[image])
    rules = sorted(p.rule for p in caught.value.problems)
    assert rules == ["media_index", "target"]


@pytest.mark.parametrize(("bad", "message"), [
    ({"x": 5}, "variant 'x'"),
    ({"x": {"media": "0"}}, "positions"),
    ({"x": {"media": [-1]}}, "positions"),
    ({"x": {"options": {"when": object()}}}, "plain values"),
    ({"x": {"colour": "red"}}, "not 'colour'"),
])
def test_bad_variants_are_refused_with_what_is_wrong(office, fake, bad, message):
    item = office.new_item("Dies", by="rina", channels=["x"])
    with pytest.raises(TypeError, match=message):
        office.complete(item.id, by="rina", text="Teks", variants=bad)
    assert office.item(item.id).state == "concept"


def test_unknown_options_names_the_option_and_what_is_taken():
    post = Post(item_id=1, channel="x", title="t", text="", options={"pol": 1, "thread": 1})
    (problem,) = unknown_options(post, ["thread", "poll"])
    assert (problem.field, problem.rule, problem.actual) == ("options.pol", "option", "pol")
    assert "it takes poll, thread" in problem.message


def test_the_cli_sets_shows_and_posts_variants(tmp_path, image, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    db = str(tmp_path / "h.db")

    def run(*args):
        result = runner.invoke(cli, ["--db", db, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    run("init", "--admin", "admin", "--name", "Admin", "--outbox", str(tmp_path / "out"))
    for actor, role in (("rina", "staff"), ("sari", "staff"), ("budi", "coordinator")):
        run("actor", "add", "--by", "admin", actor, "--name", actor.title(), "--role", role)
    item = run("new", "Dies", "--as", "rina").stdout.split()[0]
    run("complete", item, "--as", "rina", "--text", "Teks umum",
        "--variant", "outbox=Teks outbox", "--option", "outbox.pinned=true",
        "--variant-media", "outbox=0")
    shown = run("show", item).output
    assert "Variant outbox" in shown
    assert "'Teks outbox'" in shown
    assert "pinned=true" in shown
    run("complete", item, "--as", "rina", "--notes", "template")
    run("complete", item, "--as", "rina", "--media", image)
    run("approve", item, "--as", "budi", "--answer", "OK")
    run("complete", item, "--as", "rina", "--media", image)
    run("pass", item, "--as", "sari")
    run("publish", item, "--as", "rina")
    (posted,) = (tmp_path / "out").glob("*/post.json")
    body = json.loads(posted.read_text("utf-8"))
    assert body["text"] == "Teks outbox"
    assert body["options"] == {"pinned": True}
