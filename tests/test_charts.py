"""The report's charts: valid PNG and SVG files whose titles and labels (SVG text) are
the report's, in English and Indonesian; from the command line by the file's suffix; and
without matplotlib a clear message that says how to install the extra, while the report
itself stays complete."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from humasflow import charts
from humasflow.cli import cli
from humasflow.errors import InputInvalid
from humasflow.i18n import use
from humasflow.office import Office
from humasflow.report import render
from humasflow.storage.store import Store
from humasflow.testing import SteerableClock, sample_image, staffed_office

DAY = dt.date(2026, 1, 5)
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def db(tmp_path):
    """A SQLite office with one item rejected once ("logo buram") and then posted."""
    path = tmp_path / "humas.db"
    clock = SteerableClock()
    store = Store(str(path))
    office = Office(store, clock=clock, environ={}, media_roots=[tmp_path])
    office.establish(by="Dekan")
    staffed_office(office)
    office.add_channel("outbox", "outbox", settings={"path": str(tmp_path / "outbox")},
                       by="admin")
    image = sample_image(tmp_path / "poster.png")
    item = office.new_item("Dies <b>Natalis</b>", by="rina")
    for minutes, act in ((7, lambda: office.complete(item.id, by="rina", text="Selamat!")),
                         (8, lambda: office.complete(item.id, by="rina", notes="Canva")),
                         (5, lambda: office.complete(item.id, by="rina", media=[image])),
                         (12, lambda: office.reject(item.id, by="budi", reason="logo buram")),
                         (5, lambda: office.complete(item.id, by="rina", media=[image])),
                         (2, lambda: office.approve(item.id, by="budi")),
                         (9, lambda: office.complete(item.id, by="rina", media=[image])),
                         (10, lambda: office.pass_recheck(item.id, by="sari")),
                         (2, lambda: office.post(item.id, by="rina"))):
        clock.advance(minutes=minutes)
        act()
    clock.advance(minutes=30)
    yield office, str(path), clock
    store.close()


def svg_text(data: bytes) -> list[str]:
    root = ET.fromstring(data)
    return [" ".join("".join(t.itertext()).split()) for t in root.iter(f"{SVG}text")]


def test_svg_holds_the_titles_labels_and_reasons(db):
    office = db[0]
    texts = svg_text(charts.chart(office.report(DAY, DAY), "svg"))
    for expected in ("Evaluation of default",
                     "Duration of each step against its standard time",
                     "Items per week and share on time", "Reasons for rejection and rework",
                     "Standard time", "Median", "90th percentile", "Minutes (wall clock)",
                     "approval: logo buram", "2 concept", "On time (%)"):
        assert expected in texts, expected


def test_png_is_a_png_image(db, tmp_path):
    written = charts.write_chart(db[0].report(DAY, DAY), tmp_path / "report.PNG")
    data = written.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (992, 1320)  # 8.27 x 11 inches at 120 dpi


def test_titles_follow_the_report_language(db):
    with use("id"):
        texts = svg_text(charts.chart(db[0].report(DAY, DAY), "svg"))
    assert "Alasan penolakan dan pengerjaan ulang" in texts
    assert "Durasi setiap langkah dibandingkan dengan waktu standarnya" in texts


def test_a_wrong_suffix_is_refused(db, tmp_path):
    with pytest.raises(InputInvalid, match=r"\.png or \.svg"):
        charts.write_chart(db[0].report(DAY, DAY), tmp_path / "report.pdf")
    with pytest.raises(ValueError, match="format"):
        charts.chart(db[0].report(DAY, DAY), "gif")


def run(path, clock, *args, code=0, lang="en"):
    result = CliRunner().invoke(
        cli, ["--lang", lang, "--db", path, "report", "--since", "2026-01-01",
              "--until", "2026-01-31", *args], obj={"clock": clock, "environ": {}})
    assert result.exit_code == code, result.output
    return result.output


def test_from_the_command_line_by_suffix(db, tmp_path):
    _office, path, clock = db
    out = run(path, clock, "--chart", str(tmp_path / "c.svg"))
    assert "Drew the charts into" in out
    assert "Steps" in out  # the report is printed as well
    assert "Reasons for rejection and rework" in svg_text((tmp_path / "c.svg").read_bytes())
    run(path, clock, "--chart", str(tmp_path / "c.png"))
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert ".png or .svg" in run(path, clock, "--chart", str(tmp_path / "c.jpg"), code=1)
    assert not (tmp_path / "c.jpg").exists()


def test_without_matplotlib_a_message_says_how_to_install_it(db, tmp_path, monkeypatch):
    office, path, clock = db
    monkeypatch.setattr(charts, "available", lambda: False)
    with pytest.raises(charts.ChartsUnavailable, match=r"pip install 'humasflow\[charts\]'"):
        charts.chart(office.report(DAY, DAY))
    out = run(path, clock, "--chart", str(tmp_path / "c.svg"), code=1)
    assert "pip install 'humasflow[charts]'" in out
    assert not (tmp_path / "c.svg").exists()
    # The report is complete without it.
    assert "Breaches of the standard time" in render(office.report(DAY, DAY))
    assert "charts" in run(path, clock, "--chart", str(tmp_path / "c.svg"), lang="id",
                           code=1)


def test_one_html_page_escapes_the_record_and_inlines_the_charts(db):
    page = render(db[0].report(DAY, DAY), "html")
    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page
    assert "<script" not in page
    assert "<link" not in page  # nothing fetched from elsewhere
    assert "Dies &lt;b&gt;Natalis&lt;/b&gt;" in page  # the title holds markup
    assert "<b>Natalis</b>" not in page
    assert page.count("<svg") == 1
    assert "Reasons for rejection and rework" in page
    assert "<?xml" not in page


def test_html_without_matplotlib_is_complete_and_says_so(db, monkeypatch):
    monkeypatch.setattr(charts, "available", lambda: False)
    page = render(db[0].report(DAY, DAY), "html")
    assert "<svg" not in page
    assert "Breaches of the standard time" in page
    assert "pip install &#x27;humasflow[charts]&#x27;" in page
    _office, path, clock = db
    out = run(path, clock, "--format", "html", lang="id")
    assert '<html lang="id">' in out
    assert "Laporan evaluasi" in out
