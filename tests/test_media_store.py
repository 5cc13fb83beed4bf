"""The media store: what is approved and rechecked is what is posted, byte for byte.

Rules checked here:

- attaching media copies their bytes into a content-addressed store (SHA-256 names,
  the same bytes once), with the type sniffed from the bytes, never the name;
- the approval binds the design's hashes, the recheck binds the produced hashes and the
  final text; posting reads only the store, checks each hash first, and refuses content
  that differs from what the recheck passed;
- only regular files under the allowed roots are attached (never /proc, /sys, /dev),
  within the size limit; every refusal is a ContentInvalid problem naming file and rule;
- URLs are fetched once (bounded) unless the channels pass them through;
- stores made before the media store are carried forward: media recorded by path are
  imported, or flagged missing and refused when posting.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import responses
import sqlalchemy as sa
from click.testing import CliRunner

import humasflow
from humasflow import Office
from humasflow.cli import cli
from humasflow.errors import (
    ConfigurationError,
    ContentInvalid,
    FourEyesRequired,
    MediaRefused,
    MediaUnavailable,
    RecheckStale,
    Refused,
)
from humasflow.hookspecs import hookimpl
from humasflow.mediastore import MediaStore, sniff
from humasflow.models import Media
from humasflow.sop import bundled_sop, from_data
from humasflow.storage import Store
from humasflow.testing import (
    fake_publisher_plugin,
    item_ready_to_post,
    plugin_registered,
    sample_image,
    sample_video,
)

ROOT = Path(__file__).resolve().parents[1]
TEXT = "Selamat Dies Natalis FISIP UB!"


def outbox_files(tmp_path: Path, item_id: int) -> dict[str, bytes]:
    (folder,) = (tmp_path / "outbox").glob(f"item-{item_id}-outbox-hf-*")
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "post.json"}


def refusal(exc: ContentInvalid) -> list[tuple[str, str]]:
    return [(p.field, p.rule) for p in exc.problems]


# -- the store itself ------------------------------------------------------------------------


def test_bytes_are_stored_once_under_their_hash_with_what_they_are(tmp_path):
    store = MediaStore(tmp_path / "media")
    png = Path(sample_image(tmp_path / "a.png", size=(30, 20)))
    with png.open("rb") as f:
        first = store.add(f, source="a.png")
    again = store.add(io.BytesIO(png.read_bytes()), source="copy.png")
    assert first == again
    assert (first.mime, first.kind, first.width, first.height) == ("image/png", "image", 30, 20)
    assert first.size == png.stat().st_size
    files = [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
    assert [p.name for p in files] == [first.sha256]  # once, no temporary file left
    assert store.read(first.sha256) == png.read_bytes()


def test_a_video_is_sniffed_and_its_duration_read(tmp_path):
    store = MediaStore(tmp_path / "media")
    video = sample_video(tmp_path / "teaser.mov", seconds=12.5)
    with open(video, "rb") as f:
        info = store.add(f)
    assert (info.mime, info.kind, info.duration) == ("video/mp4", "video", 12.5)


@pytest.mark.parametrize(("head", "mime"), [
    (b"\xff\xd8\xff\xe0", "image/jpeg"), (b"GIF87a", "image/gif"),
    (b"RIFF\0\0\0\0WEBPVP8 ", "image/webp"), (b"\x1a\x45\xdf\xa3", "video/webm"),
    (b"\0\0\0\x14ftypqt  ", "video/quicktime")])
def test_the_known_types_are_sniffed(head, mime):
    assert sniff(head + bytes(16))[0] == mime


def test_a_changed_or_missing_stored_file_is_a_clear_error(tmp_path):
    store = MediaStore(tmp_path / "media")
    with open(sample_image(tmp_path / "a.png"), "rb") as f:
        info = store.add(f)
    kept = store.root / info.sha256[:2] / info.sha256
    kept.chmod(0o644)
    kept.write_bytes(kept.read_bytes() + b"tampered")
    with pytest.raises(MediaUnavailable, match="changed") as err:
        store.read(info.sha256)
    assert err.value.reason == "changed"
    kept.unlink()
    with pytest.raises(MediaUnavailable, match="missing"):
        store.path(info.sha256)


def test_a_type_lying_in_its_file_name_is_judged_by_its_bytes(office, tmp_path):
    fake = tmp_path / "poster.png"
    fake.write_bytes(b"%PDF-1.7 not an image at all")
    with pytest.raises(ContentInvalid) as err:
        office.new_item("Dies Natalis", by="rina", media=[str(fake)])
    assert refusal(err.value) == [("media[0]", "media_type")]
    assert "poster.png" in str(err.value)
    png_named_jpg = tmp_path / "poster.jpg"
    png_named_jpg.write_bytes(Path(sample_image(tmp_path / "real.png")).read_bytes())
    item = office.new_item("Dies Natalis", by="rina", media=[str(png_named_jpg)])
    assert item.post.media[0].mime == "image/png"


# -- the approval covers bytes, not paths -----------------------------------------------------


def test_changing_a_files_bytes_after_approval_does_not_change_what_is_posted(
        office, image, tmp_path):
    approved = Path(image).read_bytes()
    item = item_ready_to_post(office, text=TEXT, media=[image])
    sample_image(image, colour=(255, 0, 0))  # the same path, other bytes
    assert Path(image).read_bytes() != approved

    report = office.post(item.id, by="rina")

    assert report.done
    assert list(outbox_files(tmp_path, item.id).values()) == [approved]


def test_relative_paths_resolve_where_they_are_attached_not_where_posting_runs(
        office, tmp_path, monkeypatch):
    desk, server = tmp_path / "desk", tmp_path / "server"
    desk.mkdir()
    server.mkdir()
    sample_image(desk / "poster.png", colour=(1, 2, 3))
    sample_image(server / "poster.png", colour=(200, 0, 0))
    monkeypatch.chdir(desk)
    item = item_ready_to_post(office, text=TEXT, media=["poster.png"])
    monkeypatch.chdir(server)

    office.post(item.id, by="rina")

    assert list(outbox_files(tmp_path, item.id).values()) == [
        (desk / "poster.png").read_bytes()]


def test_the_approval_digest_covers_hashes_not_paths(office, tmp_path, images):
    a = images("a.png")
    same = tmp_path / "elsewhere.png"
    same.write_bytes(Path(a).read_bytes())
    first = office.add_media([a])[0]
    moved = office.add_media([str(same)])[0]
    other = office.add_media([images("b.png")])[0]
    from humasflow.models import PostContent
    assert PostContent(text="t", media=(first,)).digest == PostContent(
        text="t", media=(moved,)).digest
    assert PostContent(text="t", media=(first,)).digest != PostContent(
        text="t", media=(other,)).digest


# -- the recheck binds the produced content ----------------------------------------------------


def test_posting_refuses_produced_content_that_differs_from_what_the_recheck_passed(
        office, store, images):
    item = item_ready_to_post(office, text=TEXT, media=[images("a.png")])
    assert item.recheck_digest == item.final_digest
    # Someone swaps the produced media in the database, behind the workflow's back.
    swapped = office.add_media([images("b.png")])[0]
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE items SET produced = :p WHERE id = :i"),
                     {"p": json.dumps([swapped.to_dict()]), "i": item.id})
    with pytest.raises(RecheckStale, match="differ from what the recheck passed"):
        office.post(item.id, by="rina")
    assert office.publications(item.id) == {}


def test_a_scheduled_post_refuses_content_the_recheck_did_not_pass(office, store, clock,
                                                                    images):
    item = item_ready_to_post(office, text=TEXT, media=[images("a.png")])
    office.schedule(item.id, clock(), by="rina")
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE items SET post = :p WHERE id = :i"),
                     {"p": json.dumps({**item.post.to_dict(), "text": "Changed text"}),
                      "i": item.id})
    assert office.run_due() == []
    assert all(p.state == "pending" for p in office.publications(item.id).values())


def _sop_with(**switches):
    data = dict(bundled_sop().data)
    data["sop"] = {**data["sop"], **switches, "number": "UN10/F11.07/HK.01.02.a/06"}
    return from_data(data)


def _to_recheck(office, media):
    item = office.new_item("Dies Natalis", by="rina")
    office.complete(item.id, by="rina", text=TEXT)
    office.complete(item.id, by="rina", notes="Canva")
    office.complete(item.id, by="rina", media=media)
    office.approve(item.id, by="budi")
    office.complete(item.id, by="rina", media=media)
    return item.id


def test_an_sop_may_require_another_person_for_the_recheck(office, clock, image):
    office.establish(_sop_with(recheck_by_other=True), by="admin", effective=clock())
    item_id = _to_recheck(office, [image])
    with pytest.raises(Refused, match="recheck_by_other"):
        office.pass_recheck(item_id, by="rina")
    assert office.pass_recheck(item_id, by="sari").state == "post"


def test_by_default_the_producer_may_recheck(office, image):
    item_id = _to_recheck(office, [image])
    assert office.pass_recheck(item_id, by="rina").state == "post"


def test_an_sop_may_require_the_coordinators_final_approval(office, clock, image):
    office.establish(_sop_with(final_approval=True), by="admin", effective=clock())
    item_id = _to_recheck(office, [image])
    office.pass_recheck(item_id, by="sari")
    with pytest.raises(RecheckStale, match="final approval"):
        office.post(item_id, by="rina")
    with pytest.raises(Refused):
        office.approve(item_id, by="rina")  # staff do not hold the coordinator's role
    item = office.approve(item_id, by="budi", answer="final: OK")
    assert item.outputs["final_approval"]["digest"] == item.final_digest
    assert office.post(item_id, by="rina").done


def test_the_final_approval_keeps_the_four_eyes_rule(office, clock, image):
    office.add_actor("dewi", "Dewi", roles=["staff", "coordinator"], by="admin")
    office.establish(_sop_with(final_approval=True), by="admin", effective=clock())
    item = office.new_item("Dies Natalis", by="rina")
    office.complete(item.id, by="rina", text=TEXT)
    office.complete(item.id, by="rina", notes="Canva")
    office.complete(item.id, by="rina", media=[image])
    office.approve(item.id, by="budi")
    office.complete(item.id, by="dewi", media=[image])
    office.pass_recheck(item.id, by="sari")
    with pytest.raises(FourEyesRequired):
        office.approve(item.id, by="dewi")


def test_the_bundled_sop_has_both_switches_off():
    header = bundled_sop().header
    assert (header.recheck_by_other, header.final_approval) == (False, False)


# -- where files may come from ------------------------------------------------------------------


def test_proc_self_environ_is_never_attached_whatever_the_roots(store, clock, tmp_path):
    office = Office(store, clock=clock, environ={}, media_roots=["/"],
                    media_store=tmp_path / "m")
    office.establish(by="admin")
    office.bootstrap_admin("admin", "Admin")
    office.add_actor("rina", "Rina", roles=["staff"], by="admin")
    for path in ("/proc/self/environ", "/dev/zero", "/sys/kernel/notes"):
        with pytest.raises(ContentInvalid) as err:
            office.new_item("Leak", by="rina", media=[path])
        assert refusal(err.value)[0][1] in ("denied_root", "file_exists"), path
        assert path in str(err.value)
    with pytest.raises(ContentInvalid) as err:
        office.new_item("Leak", by="rina", media=["/proc/self/environ"])
    assert refusal(err.value) == [("media[0]", "denied_root")]


def test_dot_dot_out_of_the_working_directory_is_refused(office, tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    sample_image(tmp_path / "secret.png")
    monkeypatch.chdir(tmp_path / "work")
    with pytest.raises(ContentInvalid) as err:
        office.new_item("Dies Natalis", by="rina", media=["../secret.png"])
    assert refusal(err.value) == [("media[0]", "allowed_root")]
    assert "../secret.png" in str(err.value)


def test_a_symlink_out_of_the_allowed_roots_is_refused(office, tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    outside = sample_image(tmp_path / "outside.png")
    os.symlink(outside, tmp_path / "work" / "poster.png")
    monkeypatch.chdir(tmp_path / "work")
    with pytest.raises(ContentInvalid) as err:
        office.new_item("Dies Natalis", by="rina", media=["poster.png"])
    assert refusal(err.value) == [("media[0]", "allowed_root")]


def test_a_configured_media_folder_is_allowed(store, clock, tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    shared = tmp_path / "shared"
    shared.mkdir()
    poster = sample_image(shared / "poster.png")
    monkeypatch.chdir(tmp_path / "work")
    office = Office(store, clock=clock, environ={}, media_roots=[shared],
                    media_store=tmp_path / "m")
    office.establish(by="admin")
    office.bootstrap_admin("admin", "Admin")
    office.add_actor("rina", "Rina", roles=["staff"], by="admin")
    assert office.new_item("Dies Natalis", by="rina", media=[poster]).post.media[0].is_stored


def test_a_folder_is_not_a_media_file(office, tmp_path):
    (tmp_path / "designs").mkdir()
    with pytest.raises(ContentInvalid) as err:
        office.new_item("Dies Natalis", by="rina", media=["designs"])
    assert refusal(err.value) == [("media[0]", "regular_file")]


def test_a_file_over_the_deployments_limit_is_refused(store, clock, tmp_path):
    office = Office(store, clock=clock, environ={}, media_max_bytes=2000,
                    media_store=tmp_path / "m")
    office.establish(by="admin")
    office.bootstrap_admin("admin", "Admin")
    office.add_actor("rina", "Rina", roles=["staff"], by="admin")
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(5000))
    with pytest.raises(ContentInvalid) as err:
        office.new_item("Dies Natalis", by="rina", media=[str(big)])
    (problem,) = err.value.problems
    assert (problem.rule, problem.limit) == ("max_bytes", 2000)
    assert problem.actual > 2000
    assert not any(p.is_file() for p in (tmp_path / "m").rglob("*"))


def test_a_channel_may_take_smaller_files(office, tmp_path):
    office.add_channel("small", "outbox", settings={"path": str(tmp_path / "o2"),
                                                    "media_max_bytes": 100}, by="admin")
    item = office.new_item("Dies Natalis", by="rina", channels=["small"])
    office.complete(item.id, by="rina", text=TEXT)
    office.complete(item.id, by="rina", notes="Canva")
    with pytest.raises(ContentInvalid) as err:
        office.complete(item.id, by="rina",
                        media=[sample_image(tmp_path / "p.png", size=(60, 60))])
    assert [(p.channel, p.rule) for p in err.value.problems] == [("small", "max_bytes")]


# -- URLs ---------------------------------------------------------------------------------------


@responses.activate
def test_a_url_is_fetched_once_and_stored(office, tmp_path):
    body = Path(sample_image(tmp_path / "remote.png")).read_bytes()
    responses.get("https://cdn.example/poster.png", body=body)
    item = item_ready_to_post(office, text=TEXT, media=["https://cdn.example/poster.png"])
    assert len(responses.calls) == 2  # the design and the produced media: once each
    media = item.produced[0]
    assert (media.source, media.mime, media.passthrough) == (
        "https://cdn.example/poster.png", "image/png", False)
    assert media.public_url == ""  # the URL's bytes may change: it is not used again
    office.post(item.id, by="rina")
    assert len(responses.calls) == 2  # posting reads the store, not the URL
    assert list(outbox_files(tmp_path, item.id).values()) == [body]


@responses.activate
def test_a_url_too_large_is_refused(store, clock, tmp_path):
    responses.get("https://cdn.example/huge.mp4", body=b"\0\0\0\x18ftypisom" + bytes(5000))
    office = Office(store, clock=clock, environ={}, media_max_bytes=1000,
                    media_store=tmp_path / "m")
    office.establish(by="admin")
    office.bootstrap_admin("admin", "Admin")
    office.add_actor("rina", "Rina", roles=["staff"], by="admin")
    with pytest.raises(ContentInvalid) as err:
        office.new_item("Dies Natalis", by="rina", media=["https://cdn.example/huge.mp4"])
    assert refusal(err.value) == [("media[0]", "max_bytes")]


def test_only_http_urls_are_fetched(office):
    with pytest.raises(ContentInvalid) as err:
        office.new_item("Dies Natalis", by="rina", media=["file:///etc/passwd"])
    assert refusal(err.value) == [("media[0]", "url_scheme")]


def test_a_url_passed_through_is_what_the_approval_covers(office, tmp_path):
    plugin = fake_publisher_plugin()
    with plugin_registered(plugin):
        office.add_channel("ig", "fake", settings={"media_urls": "pass"}, by="admin")
        item = item_ready_to_post(office, text=TEXT, channels=["ig"],
                                  media=["https://cdn.example/reel.mp4"])
        media = item.post.media[0]
        assert (media.passthrough, media.sha256, media.public_url) == (
            True, "", "https://cdn.example/reel.mp4")
        assert media.binding() == {"url": "https://cdn.example/reel.mp4",
                                   "passthrough": True, "alt": ""}
        assert office.post(item.id, by="rina").done
    assert plugin.publishers["ig"].posted[0].media[0].public_url == media.source


# -- where the store lives ---------------------------------------------------------------------


def test_by_default_a_sqlite_store_keeps_media_beside_its_file(tmp_path, image):
    with humasflow.open(str(tmp_path / "humas.db")) as office:
        office.bootstrap_admin("admin", "Admin")
        office.add_actor("rina", "Rina", roles=["staff"], by="admin")
        item = office.new_item("Dies Natalis", by="rina", media=[image])
        assert office.media.root == tmp_path / "humas-media"
        assert office.media.exists(item.post.media[0])


@pytest.mark.bare_media
@pytest.mark.parametrize("store_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)  # a SQLite store has a folder beside its file
def test_postgresql_needs_a_media_store_configured(store, clock, image, tmp_path):
    office = Office(store, clock=clock, environ={})
    office.establish(by="admin")
    office.bootstrap_admin("admin", "Admin")
    office.add_actor("rina", "Rina", roles=["staff"], by="admin")
    office.new_item("Text only", by="rina")  # no media, no media store needed
    with pytest.raises(ConfigurationError, match="media store"):
        office.new_item("Dies Natalis", by="rina", media=[image])
    configured = Office(store, clock=clock, environ={}, media_store=tmp_path / "shared")
    assert configured.new_item("Dies Natalis", by="rina", media=[image]).post.media[0].sha256


class ObjectStorage(MediaStore):
    """An application's own storage (here: a folder of its choosing)."""


def test_an_application_supplies_its_own_media_store_through_the_hook(
        store, clock, image, tmp_path):
    own = ObjectStorage(tmp_path / "bucket")

    class Plugin:
        @hookimpl
        def media_store(self, office):
            return own

    with plugin_registered(Plugin()):
        office = Office(store, clock=clock, environ={})
        office.establish(by="admin")
        office.bootstrap_admin("admin", "Admin")
        office.add_actor("rina", "Rina", roles=["staff"], by="admin")
        item = office.new_item("Dies Natalis", by="rina", media=[image])
    assert office.media is own
    assert own.exists(item.post.media[0])


def test_publishers_read_the_bytes_through_their_context(office, image):
    context_media = office._publisher(office.channels()["outbox"]).media
    stored = office.add_media([image])[0]
    assert context_media.read(stored) == Path(image).read_bytes()
    with context_media.open(stored) as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert context_media.path(stored).read_bytes() == Path(image).read_bytes()


def test_media_the_store_never_held_cannot_be_read(tmp_path):
    with pytest.raises(MediaUnavailable, match="never stored"):
        MediaStore(tmp_path).read(Media("poster.png"))


def test_media_refused_carries_the_rule(tmp_path):
    with pytest.raises(MediaRefused) as err:
        MediaStore(tmp_path).add(io.BytesIO(b"hello"), source="note.txt")
    assert (err.value.rule, err.value.source) == ("media_type", "note.txt")


# -- stores made before the media store ----------------------------------------------------------

OLD_COMMIT = "2829f91"
OLD_SCRIPT = textwrap.dedent("""
    import sys
    from PIL import Image
    from humasflow import Office
    from humasflow.storage.store import Store
    from humasflow.testing import SteerableClock, staffed_office

    url, folder = sys.argv[1], sys.argv[2]
    office = Office(Store(url), clock=SteerableClock(), environ={})
    office.establish()
    staffed_office(office)
    office.add_channel("outbox", "outbox", settings={"path": folder + "/outbox"})

    def walk(name, to_post=True):
        path = f"{folder}/{name}.png"
        Image.new("RGB", (8, 6), (len(name), 0, 0)).save(path)
        item = office.new_item(name, by="rina")
        office.complete(item.id, by="rina", text="Selamat " + name)
        office.complete(item.id, by="rina", notes="Canva")
        office.complete(item.id, by="rina", media=[path])
        office.approve(item.id, by="budi")
        if to_post:
            office.complete(item.id, by="rina", media=[path])
            office.pass_recheck(item.id, by="sari")
        return item.id

    print(walk("kept"), walk("gone"), walk("approved", to_post=False))
""")


@pytest.fixture
def old_store(store_url, tmp_path):
    """A store written by humasflow before the media store (the real old code)."""
    if not (ROOT / ".git").exists():
        pytest.skip("needs the git history to run the old code")
    old = tmp_path / "old"
    old.mkdir()
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", OLD_COMMIT, "src"],
                                 capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the old code is not available: {exc}")
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    script = tmp_path / "old_humasflow.py"
    script.write_text(OLD_SCRIPT, "utf-8")
    env = {**os.environ, "PYTHONPATH": str(old / "src"), "HUMASFLOW_LOAD_PLUGINS": ""}
    done = subprocess.run([sys.executable, str(script), store_url, str(tmp_path)], env=env,
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    kept, gone, approved = (int(n) for n in done.stdout.split())
    (tmp_path / "gone.png").unlink()
    return store_url, kept, gone, approved


def test_an_old_store_is_carried_forward_media_imported_or_flagged(old_store, clock, tmp_path):
    url, kept, gone, approved = old_store
    store = Store(url)
    try:
        assert store.pending_media_import("default")
        office = Office(store, clock=clock, environ={}, media_store=tmp_path / "imported")
        assert not store.pending_media_import("default")

        item = office.item(kept)
        assert item.post.media[0].sha256
        assert item.produced[0].sha256
        assert office.media.read(item.produced[0]) == (tmp_path / "kept.png").read_bytes()
        assert item.is_approved  # the approval of then is carried to the stored bytes
        assert item.recheck_digest == item.final_digest
        assert office.history(kept)[-1].action == "media_import"
        assert office.post(kept, by="rina").done

        lost = office.item(gone)
        assert [m.missing for m in (*lost.post.media, *lost.produced)] == [True, True]
        assert "gone.png" in next(iter(office.history(gone)[-1].data["missing"]))
        with pytest.raises(ContentInvalid) as err:
            office.post(gone, by="rina")
        assert {p.rule for p in err.value.problems} == {"media_missing"}

        waiting = office.item(approved)
        assert waiting.is_approved
        assert waiting.post.media[0].is_stored
        assert office.verify().ok
        office.close()

        again = Office(Store(url), clock=clock, environ={}, media_store=tmp_path / "imported")
        assert [e.action for e in again.history(kept)].count("media_import") == 1
        again.close()
    finally:
        store.close()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the CLI runs on the file
def test_show_flags_media_missing_since_the_migration(old_store, clock, tmp_path):
    url, _, gone, _ = old_store
    runner = CliRunner()
    result = runner.invoke(cli, ["--db", url, "--media-store", str(tmp_path / "imported"),
                                 "show", str(gone)], obj={"clock": clock, "environ": {}})
    assert result.exit_code == 0, result.output
    assert "MISSING" in result.output


def test_the_readmes_library_example_runs(tmp_path, monkeypatch):
    """README's "As a library" block runs as shown, with the poster files it names."""
    import re

    monkeypatch.chdir(tmp_path)
    readme = (ROOT / "README.md").read_text("utf-8")
    section = re.search(r"^## As a library\n(.*?)(?=^## )", readme, re.M | re.S)
    assert section is not None
    code = re.search(r"```python\n(.*?)```", section[1], re.S)[1]
    sample_image("poster-draft.png")
    sample_image("poster-final.png", colour=(0, 82, 155))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    office = namespace["office"]
    try:
        (item,) = office.items()
        assert item.state == "posted"
        assert (tmp_path / "humas-media").is_dir()
    finally:
        office.close()
