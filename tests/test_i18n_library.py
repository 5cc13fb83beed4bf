"""The library's messages in Indonesian and English.

Errors raised by the library are made in the current language (``i18n.use``) from the
gettext catalog; English is the source text and stays exactly as it was. What goes into
the permanent record (a channel's error) stays English whoever's language it ran in.

The Indonesian catalog is compiled from the library's translations into a temporary
folder, so these tests do not depend on what the installed catalog holds yet.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from humasflow import Office, i18n
from humasflow.errors import (
    DefinitionError,
    InputInvalid,
    ItemNotFound,
    NotAllowedNow,
    OutputMissing,
    RoleRequired,
)
from humasflow.sop import parse_sop
from humasflow.storage import Store
from humasflow.testing import SteerableClock, staffed_office


@pytest.fixture
def indonesian() -> Iterator[None]:
    """The package's Indonesian catalog, freshly loaded."""
    i18n._catalog.cache_clear()
    yield
    i18n._catalog.cache_clear()


@pytest.fixture
def office(tmp_path: Path) -> Iterator[Office]:
    store = Store(tmp_path / "office.db")
    o = Office(store, clock=SteerableClock(), environ={})
    o.establish(by="Dekan")
    staffed_office(o)
    o.add_channel("outbox", "outbox", settings={"path": str(tmp_path / "outbox")},
                  by="admin")
    yield o
    store.close()


def _message(call, *args, **kwargs) -> tuple[type[Exception], str]:
    try:
        call(*args, **kwargs)
    except Exception as exc:
        return type(exc), str(exc)
    raise AssertionError(f"{call} raised nothing")


def test_an_unknown_item_is_not_found_in_indonesian(office, indonesian):
    with i18n.use("id"):
        kind, message = _message(office.item, 999)
    assert kind is ItemNotFound
    assert message == ("butir konten '999' tidak ditemukan di organisasi 'default'; lihat "
                       "daftar butir dengan `humasflow list`")


def test_an_unknown_item_reads_as_before_in_english(office, indonesian):
    kind, message = _message(office.item, 999)
    assert kind is ItemNotFound
    assert message == ("no content item '999' in organisation 'default'; list the items "
                       "with `humasflow list`")


def test_a_refusal_names_step_role_and_actor_in_indonesian(office, indonesian):
    item = office.new_item("Dies Natalis", by="rina")
    with i18n.use("id"):
        kind, message = _message(office.complete, item.id, by="budi", text="Selamat")
    assert kind is RoleRequired
    assert message == (f"'budi' tidak dapat menjalankan 'complete' pada butir konten "
                       f"'{item.id}' di langkah 'concept': SOP memberikan langkah ini kepada "
                       "peran 'staff'; mintalah orang yang memegang peran tersebut")
    kind, message = _message(office.complete, item.id, by="budi", text="Selamat")
    assert message == (f"'budi' cannot complete item '{item.id}' at step 'concept': the SOP "
                       "gives this step to the role 'staff'; ask someone with that role")


def test_a_missing_output_and_its_hint_are_both_indonesian(office, indonesian):
    item = office.new_item("Dies Natalis", by="rina")
    with i18n.use("id"):
        kind, message = _message(office.complete, item.id, by="rina")
    assert kind is OutputMissing
    assert message == (f"langkah 'concept' pada butir konten '{item.id}' tidak dapat "
                       "menjalankan 'complete' tanpa output 'concept': berikan teks konsep "
                       "(text=...)")


def test_an_action_not_possible_now_lists_what_is(office, indonesian):
    item = office.new_item("Dies Natalis", by="rina")
    with i18n.use("id"):
        kind, message = _message(office.approve, item.id, by="budi")
    assert kind is NotAllowedNow
    assert message.startswith(f"butir konten '{item.id}' berada pada langkah 'concept', "
                              "tempat 'approve' tidak dapat dilakukan; yang dapat dilakukan "
                              "sekarang: ")


def test_an_administrator_action_names_what_was_refused_in_indonesian(office, indonesian):
    with i18n.use("id"):
        kind, message = _message(office.add_actor, "dewi", "Dewi", roles=["staff"], by="rina")
    assert issubclass(kind, RoleRequired)
    assert message.startswith("'rina' tidak dapat menambah atau mengubah aktor: ia tidak "
                              "memegang peran 'admin'; hanya administrator aktif")
    kind, message = _message(office.add_actor, "dewi", "Dewi", roles=["staff"], by="rina")
    assert message.startswith("'rina' cannot add or change actors: they do not hold the role "
                              "'admin'; only an active administrator")


def test_bad_input_is_refused_in_indonesian(office, indonesian):
    with i18n.use("id"):
        kind, message = _message(office.new_item, "x" * 501, by="rina")
    assert kind is InputInvalid
    assert message == ("title panjangnya 501 karakter, melebihi batas 500; persingkat; "
                       "tidak ada yang ditulis")
    kind, message = _message(office.new_item, "x" * 501, by="rina")
    assert message == ("title is 501 characters long, more than the limit of 500; shorten "
                       "it; nothing was written")


def test_an_sop_file_error_is_indonesian(indonesian):
    text = 'format = 1\n[sop]\nfour_eyes = "yes"\n'
    with i18n.use("id"):
        kind, message = _message(parse_sop, text, source="sop.toml")
    assert kind is DefinitionError
    assert message == "sop.toml: sop.four_eyes: bernilai 'yes' (yang diharapkan: true atau false)"
    kind, message = _message(parse_sop, text, source="sop.toml")
    assert message == "sop.toml: sop.four_eyes: is 'yes' (expected true or false)"


def test_the_language_belongs_to_its_context(office, indonesian):
    """Another thread keeps its own language (English unless it chooses)."""
    import threading

    found: list[str] = []
    with i18n.use("id"):
        worker = threading.Thread(target=lambda: found.append(_message(office.actor, "x")[1]))
        worker.start()
        worker.join()
        here = _message(office.actor, "x")[1]
    assert found[0].startswith("no actor 'x' in organisation 'default'")
    assert here.startswith("aktor 'x' tidak ditemukan di organisasi 'default'")


def test_a_channel_record_stays_english_when_posting_in_indonesian(office, indonesian,
                                                                  tmp_path):
    """The channel's error is part of the record: it reads the same for everyone.

    One channel is posted in the caller's thread, in the caller's language."""
    from humasflow.testing import item_ready_to_post, sample_image

    office.add_channel("tiktok", "manual", settings={"instructions": "akun @fisipub"},
                       by="admin")
    item = item_ready_to_post(office, text="Selamat Dies Natalis",
                              media=[sample_image(tmp_path / "poster.png")],
                              channels=["tiktok"])
    with i18n.use("id"):
        report = office.post(item.id, by="rina")
    waiting = report.publications["tiktok"]
    assert waiting.state == "waiting"
    assert waiting.error_message.startswith(f"post item {item.id} on tiktok by hand "
                                            "(akun @fisipub), then confirm it: ")
    (event,) = [e for e in office.history(item.id) if e.action == "channel_waiting"]
    assert event.data["error_message"] == waiting.error_message
