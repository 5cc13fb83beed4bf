"""Rule: a reply's answer is the first line its sender wrote, in Indonesian or English,
whatever mail program wrote the reply around it; the receiving server's authentication
results are honoured only from that server."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from humasflow.mail.replies import (
    Answer,
    answer_of,
    answer_text,
    authentication,
    html_to_text,
    read_reply,
)

DATA = Path(__file__).parent / "data" / "mail"
TOKEN = "hf1." + "A" * 71 + "." + "B" * 22


def raw(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.mark.parametrize(("name", "answer", "sender"), [
    ("gmail-setuju.eml", Answer("approve", "", "id"), "koordinator@ub.ac.id"),
    ("gmail-reject-wrapped-attribution.eml",
     Answer("reject", "the poster shows last year's date, please fix it before production",
            "en"), "coord@example.ac.id"),
    ("outlook-tolak.eml",
     Answer("reject", "tanggal acara salah, seharusnya 5 Desember. Mohon diperbaiki "
                      "sebelum produksi.", "id"), "koordinator@ub.ac.id"),
    ("outlook-english-headers.eml", Answer("approve", "", "en"), "coord@example.ac.id"),
    ("apple-mail-html-only.eml", Answer("approve", "", "id"), "koordinator@ub.ac.id"),
    ("forwarded.eml", Answer("approve", "", "id"), "koordinator@ub.ac.id"),
    ("encoded-multipart-mixed.eml",
     Answer("reject", "Warna logo tidak sesuai pedoman \u2013 ganti biru.", "id"),
     "koordinator@ub.ac.id"),
])
def test_real_world_replies_give_their_answer_and_carry_the_token(name, answer, sender):
    reply = read_reply(raw(name))
    assert reply.answer == answer
    assert reply.sender == sender
    assert reply.tokens == (TOKEN,)
    assert reply.message_id.startswith("<")
    assert reply.message_id.endswith(">")


def test_a_signature_or_a_quote_alone_is_no_answer_though_the_quote_says_setuju():
    reply = read_reply(raw("signature-only.eml"))
    assert reply.answer is None
    assert reply.first_line == ""
    assert reply.tokens == (TOKEN,)


def test_a_rejection_without_reason_is_told_apart_from_no_answer():
    missing = read_reply(raw("tolak-no-reason.eml"))
    assert missing.answer is None
    assert missing.reason_missing
    assert missing.language == "id"
    sentence = read_reply(raw("not-an-answer.eml"))
    assert sentence.answer is None
    assert not sentence.reason_missing


@pytest.mark.parametrize("line", ["SETUJU", "setuju", "Setuju.", "  setuju!!  ", "APPROVE",
                                  "approve.", "Approved", "*SETUJU*", "disetujui"])
def test_approval_keywords_in_any_case_with_or_without_punctuation(line):
    assert answer_of(line) is not None
    assert answer_of(line).action == "approve"


@pytest.mark.parametrize(("line", "reason"), [
    ("TOLAK judul salah", "judul salah"),
    ("tolak: judul salah", "judul salah"),
    ("Tolak - judul salah.", "judul salah."),
    ("REJECT, wrong date", "wrong date"),
    ("reject\nthe logo is old", "the logo is old"),
])
def test_rejections_keep_their_reason(line, reason):
    assert answer_of(line) == Answer("reject", reason, answer_of(line).language)


@pytest.mark.parametrize("line", ["", "TOLAK", "reject!", "Approve? Not yet", "setujui",
                                  "Saya setuju", "OK", "tolakan"])
def test_anything_else_is_no_answer(line):
    assert answer_of(line) is None


def test_quoted_text_attribution_lines_and_outlook_blocks_are_not_read():
    assert answer_text("> SETUJU\nTOLAK judul salah") is None  # a quote ends the answer
    assert answer_text("\n\nsetuju\n\nOn Mon, X wrote:\n> TOLAK x") == Answer(
        "approve", "", "id")
    assert answer_text("Pada Rab, 2 Des 2026, humas menulis:\n> SETUJU") is None
    assert answer_text("Dari: humas\nDikirim: Rabu\nKepada: koordinator\n\nSETUJU") is None
    assert answer_text("Dari tim kami: setuju") is None  # one line only is not a block


def test_html_quotes_and_outlook_reply_headers_are_left_out():
    text = html_to_text('<div>TOLAK <b>judul</b>&nbsp;salah</div><blockquote>SETUJU'
                        '</blockquote><hr><div id="divRplyFwdMsg">SETUJU</div>')
    assert text.split() == ["TOLAK", "judul", "salah"]


def test_authentication_results_are_read_only_from_the_configured_server():
    good = authentication(raw("gmail-setuju.eml"), "mx.ub.ac.id")
    assert good.passed
    assert good.results == {"dkim": "pass", "spf": "pass", "dmarc": "pass"}
    other = authentication(raw("gmail-setuju.eml"), "mx.example.org")
    assert other.server is None
    assert not other.passed
    assert not authentication(raw("forwarded.eml"), "mx.ub.ac.id").passed


def _with_results(*headers: str, sender: str = "koordinator@ub.ac.id") -> bytes:
    lines = [f"Authentication-Results: {h}" for h in headers]
    return ("\r\n".join([*lines, f"From: {sender}", "Subject: x", "", "SETUJU", ""])
            ).encode()


@pytest.mark.parametrize(("headers", "passed"), [
    (["mx.ub.ac.id; dmarc=pass header.from=ub.ac.id"], True),
    (["mx.ub.ac.id; dmarc=fail header.from=ub.ac.id"], False),
    (["mx.ub.ac.id; dkim=pass header.d=ub.ac.id"], True),
    (["mx.ub.ac.id; dkim=pass header.d=evil.example"], False),  # not the From domain
    (["mx.ub.ac.id; spf=pass smtp.mailfrom=x@ub.ac.id"], True),
    (["mx.ub.ac.id; spf=fail smtp.mailfrom=x@ub.ac.id; dkim=pass header.d=ub.ac.id"], False),
    (["mx.ub.ac.id; dkim=none; spf=softfail smtp.mailfrom=ub.ac.id"], False),
    (["mx.ub.ac.id 1; dmarc=pass (p=none) header.from=ub.ac.id"], True),
    # The topmost header of the server counts: one lower down may be the sender's forgery.
    (["mx.ub.ac.id; dmarc=fail header.from=ub.ac.id",
      "mx.ub.ac.id; dmarc=pass header.from=ub.ac.id"], False),
    ([], False),
])
def test_authentication_verdicts(headers, passed):
    assert authentication(_with_results(*headers), "MX.ub.ac.id").passed is passed


@pytest.mark.parametrize("sender", ["", "a@ub.ac.id, b@ub.ac.id", "not an address"])
def test_a_message_without_one_sender_has_none(sender):
    assert read_reply(_with_results(sender=sender)).sender == ""


def test_a_raw_message_must_be_bytes():
    with pytest.raises(ValueError, match="bytes"):
        read_reply("SETUJU")  # type: ignore[arg-type]


@given(st.binary(max_size=2000))
@settings(max_examples=200, deadline=None)
def test_any_bytes_are_read_without_an_error(raw):
    reply = read_reply(raw)
    assert reply.answer is None or reply.answer.action in ("approve", "reject")
    assert authentication(raw, "mx.ub.ac.id").passed is False


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_an_answer_is_a_keyword_and_a_rejection_has_a_reason(text):
    answer = answer_text(text)
    if answer is not None:
        assert answer.language in ("id", "en")
        assert answer.action == "approve" or answer.reason.strip()
