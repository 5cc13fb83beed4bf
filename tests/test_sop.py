"""The SOP as data: the bundled definition matches the signed document, and the loader
refuses bad definitions with an error naming the file and the key path."""

from __future__ import annotations

import datetime as dt
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from humasflow import DefinitionError, Office, bundled_sop, load_sop, parse_sop
from humasflow.sop import MAX_STANDARD_TIME, PHASES
from humasflow.storage.store import Store
from humasflow.testing import SteerableClock

SOP_TEXT = resources.files("humasflow").joinpath(
    "sops", "fisip-ub-social-media.toml").read_text("utf-8")

# The table of the signed document (seed), row by row:
# (number, key, actor, standard minutes, output label, phase, equipment, activity).
# Step 5's activity corrects the document's typo "konseo" to "konsep"; the trailing full
# stop of step 4 is not part of the activity.
SEED_TABLE = [
    (1, "establish", None, None, None, "establishment", (),
     "Penetapan prosedur pengelolaan sosial media"),
    (2, "concept", "staff", 5, "Konsep konten", "execution",
     ("Komputer", "Jaringan internet"),
     "Staf Kehumasan membuat konsep konten untuk sosial media"),
    (3, "prepare", "staff", 10, "Aplikasi desain/video", "execution",
     ("Komputer", "Jaringan internet"),
     "Staf Kehumasan menyiapkan kebutuhan teknis untuk konten yang akan diproduksi"),
    (4, "design", "staff", 10, "Desain/video", "execution",
     ("Komputer", "Jaringan internet"),
     "Staf Kehumasan menetapkan konsep konten, desain atau video"),
    (5, "approve", "coordinator", 10, "Jawaban konsep", "execution",
     ("Komputer", "Jaringan internet", "Jawaban email"),
     "Koordinator Kehumasan menyetujui konsep yang akan diproduksi"),
    (6, "produce", "staff", 10, "Desain/Video", "execution",
     ("Komputer", "Jaringan internet"),
     "Staf Kehumasan memproduksi konten untuk sosial media"),
    (7, "recheck", "staff", 15, "Desain/video", "execution",
     ("Komputer", "Jaringan internet", "Email yang sudah diprint"),
     "Staf Kehumasan memeriksa ulang hasil produksi konten untuk sosial media"),
    (8, "post", "staff", 5, "Desain/video", "execution",
     ("Email yang ditanggapi sesuai tujuan",),
     "Selesai (Staf humas memposting konten di kanal sosial media)"),
    (9, "evaluate", None, None, None, "evaluation", (),
     "Evaluasi prosedur operasional sosial media"),
    (10, "control", None, None, None, "control", (),
     "Pengendalian dan perbaikan prosedur operasional sosial media bila terdapat kesalahan"),
    (11, "improve", None, None, None, "improvement", (),
     "Peningkatan prosedur pengelolaan operasional sosial media sesuai dengan hasil "
     "evaluasi dan perbaikan"),
]

# The "Keterangan" column of the document, per phase.
SEED_PHASE_NAMES = {
    "establishment": "Penetapan", "execution": "Pelaksanaan", "evaluation": "Evaluasi",
    "control": "Pengendalian", "improvement": "Peningkatan",
}


# -- the bundled SOP equals the signed document -------------------------------------------


def test_bundled_sop_has_the_eleven_numbered_steps_of_the_document():
    sop = bundled_sop()
    assert [(s.number, s.key) for s in sop.steps] == [(r[0], r[1]) for r in SEED_TABLE]


@pytest.mark.parametrize("row", SEED_TABLE, ids=lambda r: f"step{r[0]}")
def test_each_bundled_step_matches_the_document_row(row):
    number, key, actor, minutes, label, phase, equipment, activity = row
    step = bundled_sop().step(key)
    assert step.number == number
    assert step.actor == actor
    assert step.standard_time == (dt.timedelta(minutes=minutes) if minutes else None)
    assert (step.output_label.id if step.output_label else None) == label
    assert step.phase == phase
    assert PHASES[step.phase][0] == SEED_PHASE_NAMES[phase]
    assert tuple(e.id for e in step.equipment) == equipment
    assert step.activity.id == activity
    # Every step is bilingual.
    assert step.activity.en
    assert step.activity.en != step.activity.id
    if step.output_label is not None:
        assert step.output_label.en


def test_content_lifecycle_is_steps_two_to_eight_with_their_outputs():
    sop = bundled_sop()
    assert [(s.number, s.output) for s in sop.lifecycle] == [
        (2, "concept"), (3, "notes"), (4, "design"), (5, "approval"), (6, "production"),
        (7, "recheck"), (8, "publication")]


def test_decision_steps_loop_back_as_the_sop_says():
    """A rejected concept returns to the design; a failed recheck returns to production."""
    sop = bundled_sop()
    assert sop.step("approve").return_to == "design"
    assert sop.step("approve").decisions == ("approve", "reject")
    assert sop.step("recheck").return_to == "produce"
    assert sop.step("recheck").decisions == ("pass", "rework")


def test_bundled_header_facts_match_the_document():
    h = bundled_sop().header
    assert h.number == "UN10/F11.07/HK.01.02.a/05"
    assert h.title.id == "Pengelolaan Sosial Media Fakultas"
    assert h.made == dt.date(2021, 11, 30)
    assert h.effective == dt.date(2021, 12, 1)
    assert h.revised is None  # TGL REVISI is blank: first edition
    assert h.approved_by_name == "Dr. Sholih Mu'adi, SH., M.Si."
    assert h.approved_by_nip == "196412301993031002"
    assert h.approved_by_position is not None
    assert h.approved_by_position.id == "Dekan Fakultas Ilmu Sosial dan Ilmu Politik"
    assert [x.id for x in h.legal_basis] == [
        "Peraturan Rektor Nomor 20 tahun 2016 tentang susunan organisasi dan tata kerja",
        "Manual Mutu Fakultas Ilmu Sosial dan Ilmu Politik tahun 2018",
        "Rencana Strategis Fakultas Ilmu Sosial dan Ilmu Politik tahun 2016",
    ]
    assert [x.id for x in h.qualifications] == [
        "Memahami standar pelayanan prima",
        "Mampu mengoperasikan mekanisme sosial media fakultas",
        "Memahami penyimpanan berkas hasil dokumentasi",
    ]
    assert [x.id for x in h.related] == [
        "SOP Permintaan Penerbitan press release dan undangan wartawan",
        "SOP Permintaan Berkas Hasil Dokumentasi",
        "SOP Pengelolaan Isu dan Manajemen Krisis",
        "SOP Peliputan kehumasan",
        "SOP Manajemen Komplain",
    ]
    assert [x.id for x in h.warnings] == [
        "Apabila pengelolaan email oleh unit/lembaga fakultas tidak sesuai dengan SOP maka "
        "bidang humas PSIK FISIP-UB tidak dapat melayani."
    ]
    assert h.recording is not None
    assert h.recording.id == "Disimpan sebagai data elektronik"
    assert h.recording.en == "Kept as electronic data"
    assert h.timezone == "Asia/Jakarta"
    assert h.four_eyes is True


def test_bundled_roles_carry_their_indonesian_names():
    roles = bundled_sop().roles
    assert set(roles) == {"coordinator", "staff"}
    assert roles["coordinator"].name.id == "Koordinator Kehumasan"
    assert roles["staff"].name.id == "Staf Kehumasan"
    assert roles["coordinator"].name.en == "PR coordinator"
    assert roles["staff"].name.en == "PR staff"


def test_a_registered_revision_reads_back_equal_to_the_definition(tmp_path):
    """Step 1 stores the definition; the stored revision is the same SOP."""
    office = Office(Store(tmp_path / "humasflow.db"), clock=SteerableClock(), environ={})
    rev = office.establish(by="Dekan")
    stored = office.sop(rev)
    original = bundled_sop()
    assert stored.steps == original.steps
    assert stored.header == original.header
    assert stored.roles == original.roles
    assert stored.digest == original.digest


# -- the loader refuses bad definitions ---------------------------------------------------

_APPROVE_BLOCK = SOP_TEXT[SOP_TEXT.index("[[steps]]\nnumber = 5"):
                          SOP_TEXT.index("[[steps]]\nnumber = 6")]
_POST_BLOCK = SOP_TEXT[SOP_TEXT.index("[[steps]]\nnumber = 8"):
                       SOP_TEXT.index("[[steps]]\nnumber = 9")]


def _edit(old: str, new: str, count: int = 1) -> str:
    assert old in SOP_TEXT, old
    return SOP_TEXT.replace(old, new, count)


BAD_DEFINITIONS = [
    ("missing format", _edit("format = 1\n", ""), "format"),
    ("wrong format", _edit("format = 1\n", "format = 2\n"), "format"),
    ("bad duration", _edit('standard_time = "5m"', 'standard_time = "5 minutes"'),
     "steps[1].standard_time"),
    ("zero duration", _edit('standard_time = "5m"', 'standard_time = "0m"'),
     "steps[1].standard_time"),
    ("unknown actor role", _edit('actor = "staff"', 'actor = "intern"'), "steps[1].actor"),
    ("unknown output kind", _edit('output = "notes"', 'output = "memo"'), "steps[2].output"),
    ("return_to a later step", _edit('return_to = "design"', 'return_to = "produce"'),
     "steps[4].return_to"),
    ("return_to an unknown step", _edit('return_to = "design"', 'return_to = "nowhere"'),
     "steps[4].return_to"),
    ("duplicate step key", _edit('key = "prepare"', 'key = "concept"'), "steps[2].key"),
    ("reserved step key", _edit('key = "prepare"', 'key = "posted"'), "steps[2].key"),
    ("missing approval step", _edit(_APPROVE_BLOCK, ""), "steps"),
    ("last content step not publication", _edit(_POST_BLOCK, ""), "steps[6].output"),
    ("unknown top-level key", "colour = 'red'\n" + SOP_TEXT, "colour"),
    ("unknown step key", _edit('key = "prepare"', 'key = "prepare"\ncolour = "red"'),
     "steps[2].colour"),
    ("bad date", _edit("effective = 2021-12-01", 'effective = "2021-13-01"'), "sop.effective"),
    ("missing date", _edit("effective = 2021-12-01", ""), "sop.effective"),
    ("bad timezone", _edit('timezone = "Asia/Jakarta"', 'timezone = "Asia/Malang"'),
     "sop.timezone"),
    ("four_eyes not a boolean", _edit("four_eyes = true", 'four_eyes = "yes"'),
     "sop.four_eyes"),
    ("unknown language", _edit('title.en = "Faculty Social Media Management"',
                               'title.fr = "Gestion"'), "sop.title.fr"),
    ("step numbers not increasing", _edit("number = 3\n", "number = 2\n"), "steps[2].number"),
    ("not TOML", "format = 1\n[[steps]\nkey = ", ""),
]


@pytest.mark.parametrize(("text", "path"), [(t, p) for _, t, p in BAD_DEFINITIONS],
                         ids=[name for name, _, _ in BAD_DEFINITIONS])
def test_a_bad_definition_raises_definition_error_naming_file_and_path(tmp_path, text, path):
    file = tmp_path / "faculty-sop.toml"
    file.write_text(text, "utf-8")
    with pytest.raises(DefinitionError) as caught:
        load_sop(file)
    err = caught.value
    assert err.path == path
    assert err.source == str(file)
    assert str(file) in str(err)
    assert err.problem in str(err)


def test_a_missing_file_raises_definition_error_naming_the_file(tmp_path):
    file = tmp_path / "no-such-sop.toml"
    with pytest.raises(DefinitionError) as caught:
        load_sop(file)
    assert caught.value.path == ""
    assert str(file) in str(caught.value)
    assert "cannot be read" in str(caught.value)


def test_the_unchanged_bundled_text_loads_from_a_file(tmp_path):
    """The error table's edits are what break it: the original text itself is valid."""
    file = tmp_path / "faculty-sop.toml"
    file.write_text(SOP_TEXT, "utf-8")
    assert load_sop(file).steps == bundled_sop().steps


# -- durations ------------------------------------------------------------------------------

_MINIMAL = """\
format = 1
[sop]
number = "T/1"
title = "Minimal"
effective = 2024-01-01
four_eyes = {four_eyes}

[[roles]]
key = "staff"
name = "Staf"

[[roles]]
key = "coordinator"
name = "Koordinator"

[[steps]]
number = 1
key = "draft"
phase = "execution"
actor = "staff"
activity = "Draft"
output = "concept"
standard_time = "{duration}"

[[steps]]
number = 2
key = "approve"
phase = "execution"
actor = "coordinator"
activity = "Approve"
output = "approval"
return_to = "draft"

[[steps]]
number = 3
key = "publish"
phase = "execution"
actor = "staff"
activity = "Publish"
output = "publication"
"""


def minimal_sop_text(duration: str = "5m", four_eyes: bool = True) -> str:
    """A three-step SOP: draft (staff) → approval (coordinator) → publication (staff)."""
    return _MINIMAL.format(duration=duration, four_eyes=str(four_eyes).lower())


_UNIT_SECONDS = {"m": 60, "min": 60, "h": 3600, "d": 86400}


@given(n=st.integers(min_value=1, max_value=100_000), unit=st.sampled_from(sorted(_UNIT_SECONDS)),
       pad=st.sampled_from(["", " "]))
def test_durations_n_unit_round_trip(n, unit, pad):
    """'<n>m', '<n>h', '<n>d' (and 'min') read back as exactly n units, up to the limit."""
    text = minimal_sop_text(f"{pad}{n}{pad}{unit}{pad}")
    if n * _UNIT_SECONDS[unit] > MAX_STANDARD_TIME.total_seconds():
        with pytest.raises(DefinitionError, match="longer than the limit of 30 days"):
            parse_sop(text)
        return
    sop = parse_sop(text)
    standard = sop.step("draft").standard_time
    assert standard == dt.timedelta(seconds=n * _UNIT_SECONDS[unit])
    assert standard is not None
    assert round(standard.total_seconds()) // _UNIT_SECONDS[unit] == n


@given(text=st.one_of(
    st.integers(max_value=0).map(lambda n: f"{n}m"),
    st.integers(min_value=1).map(lambda n: f"{n}s"),
    st.integers(min_value=1).map(lambda n: f"{n} minutes"),
    st.text(alphabet="abcxyz.-", max_size=5),
))
def test_durations_other_than_positive_n_unit_are_refused(text):
    with pytest.raises(DefinitionError) as caught:
        parse_sop(minimal_sop_text(text.replace('"', "")), source="mini.toml")
    assert caught.value.path == "steps[0].standard_time"
    assert "mini.toml" in str(caught.value)


# -- another faculty's SOP runs through the same engine ----------------------------------


def test_a_custom_three_step_sop_loads_and_runs_an_item_to_posted(tmp_path):
    file = tmp_path / "mini.toml"
    file.write_text(minimal_sop_text("3m"), "utf-8")
    sop = load_sop(file)
    assert [(s.key, s.actor, s.output) for s in sop.lifecycle] == [
        ("draft", "staff", "concept"), ("approve", "coordinator", "approval"),
        ("publish", "staff", "publication")]

    office = Office(Store(tmp_path / "humasflow.db"), clock=SteerableClock(), environ={})
    office.establish(sop, by="Dekan")
    office.bootstrap_admin("admin", "Admin")
    office.add_actor("ani", "Ani", roles=["staff"], by="admin")
    office.add_actor("kor", "Koor", roles=["coordinator"], by="admin")
    office.add_channel("outbox", "outbox", settings={"path": str(tmp_path / "outbox")}, by="admin")

    item = office.new_item("Pengumuman", by="ani")
    assert item.state == "draft"
    item = office.complete(item.id, by="ani", text="Pengumuman wisuda")
    assert item.state == "approve"
    item = office.approve(item.id, by="kor")
    assert item.state == "publish"
    report = office.post(item.id, by="ani")
    assert report.item.state == "posted"
    assert [e.action for e in office.history(item.id)][:3] == ["create", "complete", "approve"]
    assert office.verify().ok
