"""Rule: an emailed answer is applied once, through the office, only when its token,
its sender and the item all agree; every other reply is refused, recorded without its
text, and its sender told what to do."""

from __future__ import annotations

import datetime as dt
import threading
from email.message import EmailMessage
from pathlib import Path

import pytest

from humasflow.mail import MailSettings, MemoryTransport
from humasflow.mail.answers import REASONS, process_message
from humasflow.mail.token import ApprovalClaims, sign
from humasflow.storage.store import Store

SECRET = b"k" * 32
DATA = Path(__file__).parent / "data" / "mail"
SETTINGS = MailSettings(sender="humas@example.ac.id", language="id")
FAKE = "hf1." + "A" * 71 + "." + "B" * 22


def to_approval(office, image, *, by="rina"):
    item = office.new_item("Dies Natalis", by=by)
    office.complete(item.id, by=by, text="Selamat Dies Natalis FISIP UB")
    office.complete(item.id, by=by, notes="Canva template")
    return office.complete(item.id, by=by, media=[image])


def token_for(office, item, *, days=7, digest=None, secret=SECRET, nonce=None):
    claims = ApprovalClaims(item_key=item.key, sop_revision=item.sop_revision,
                            digest=digest or item.post.digest,
                            expires=office.now() + dt.timedelta(days=days),
                            **({"nonce": nonce} if nonce else {}))
    return sign(secret, claims)


def reply(token, body="SETUJU", *, sender="budi@example.ac.id", mid="<r1@example.ac.id>",
          headers=()):
    message = EmailMessage()
    for name, value in headers:
        message[name] = value
    message["From"] = sender
    message["To"] = "humas@example.ac.id"
    message["Subject"] = "Re: Persetujuan konsep"
    if mid:
        message["Message-ID"] = mid
    if token:
        message["In-Reply-To"] = f"<{token}@example.ac.id>"
    message.set_content(f"{body}\n\n> Kode: {token or ''}\n")
    return bytes(message)


def process(office, raw, transport=None, settings=SETTINGS, **kw):
    return process_message(office, raw, settings=settings, secret=SECRET,
                           transport=transport if transport is not None else MemoryTransport(),
                           **kw)


def test_setuju_approves_through_the_office_with_the_email_as_evidence(office, image):
    item = to_approval(office, image)
    sent = MemoryTransport()
    outcome = process(office, reply(token_for(office, item)), sent)
    assert (outcome.status, outcome.reason, outcome.action) == ("accepted", "accepted",
                                                                "approve")
    after = office.item(item.id)
    assert after.state == "produce"
    assert after.is_approved
    event = office.history(item.id)[-1]
    assert event.action == "approve"
    assert event.actor == "budi"
    assert event.data["via"] == "email"
    assert event.data["message_id"] == "<r1@example.ac.id>"
    assert event.data["sender"] == "budi@example.ac.id"
    assert office.verify().ok
    [answer] = sent.sent
    assert answer["To"] == "budi@example.ac.id"
    assert answer["In-Reply-To"] == "<r1@example.ac.id>"
    assert "disetujui" in answer.get_content()  # Indonesian, the keyword's language


def test_a_real_outlook_rejection_rejects_with_its_reason(office, image):
    item = to_approval(office, image)
    token = token_for(office, item)
    raw = (DATA / "outlook-tolak.eml").read_bytes().replace(FAKE.encode(), token.encode())
    raw = raw.replace(b"Koordinator@UB.ac.id", b"Budi@Example.ac.id")
    outcome = process(office, raw)
    assert outcome.accepted
    assert outcome.action == "reject"
    event = office.history(item.id)[-1]
    assert event.action == "reject"
    assert event.note.startswith("tanggal acara salah")
    assert office.item(item.id).state != "approve"


def refusal(office, item_id, outcome, reason, sent):
    assert outcome.status == "refused"
    assert outcome.reason == reason
    events = office.history(item_id) if item_id is not None else office.events("org")
    event = events[-1]
    assert event.action == "mail_refused"
    assert event.data["reason"] == reason
    assert "SETUJU" not in repr(event.data)  # the reply's text is not recorded
    assert set(event.data) - {"rows"} <= {"via", "reason", "message_id", "sender", "nonce",
                                          "answer", "error"}
    assert sent.sent, "the sender is told what to do"
    assert office.verify().ok
    return sent.sent[-1].get_content()


def test_every_security_case_is_refused_recorded_and_answered(office, image, clock):
    office.add_actor("dewi", "Dewi", email="dewi@example.ac.id",
                     roles=["staff", "coordinator"], by="admin")
    sent = MemoryTransport()
    item = to_approval(office, image)
    good = token_for(office, item)
    n = iter(range(100))

    def mid():
        return f"<case{next(n)}@example.ac.id>"

    # No token, a damaged one, a forged one (another secret), one for another digest.
    refusal(office, None, process(office, reply(None, mid=mid()), sent), "no_token", sent)
    broken = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    refusal(office, None, process(office, reply(broken, mid=mid()), sent), "signature", sent)
    forged = token_for(office, item, secret=b"x" * 32)
    refusal(office, None, process(office, reply(forged, mid=mid()), sent), "signature", sent)
    refusal(office, None, process(office, reply("hf1." + "A" * 71 + ".", mid=mid()), sent),
            "no_token", sent)
    # An expired token is recorded in the item's record: it names the item truthfully.
    expired = token_for(office, item, days=-1)
    text = refusal(office, item.id, process(office, reply(expired, mid=mid()), sent),
                   "expired", sent)
    assert str(item.id) in text
    refusal(office, item.id, process(office, reply(good, sender="x@evil.example", mid=mid()),
                                     sent), "unknown_sender", sent)
    refusal(office, item.id, process(office, reply(good, sender="sari@example.ac.id",
                                                   mid=mid()), sent), "not_coordinator", sent)
    refusal(office, item.id, process(office, reply(good, "Oke", mid=mid()), sent),
            "no_answer", sent)
    text = refusal(office, item.id, process(office, reply(good, "TOLAK", mid=mid()), sent),
                   "reason_missing", sent)
    assert "TOLAK" in text
    stale = token_for(office, item, digest="ab" * 32)
    refusal(office, item.id, process(office, reply(stale, mid=mid()), sent), "changed", sent)
    # The author under four eyes.
    own = to_approval(office, image, by="dewi")
    refusal(office, own.id, process(office, reply(token_for(office, own),
                                                  sender="dewi@example.ac.id", mid=mid()),
                                    sent), "author", sent)
    # A forged From: the receiving server says DMARC failed.
    checked = MailSettings(sender="humas@example.ac.id", authserv_id="mx.example.ac.id")
    raw = reply(good, mid=mid(), headers=[(
        "Authentication-Results", "mx.example.ac.id; dmarc=fail header.from=example.ac.id")])
    refusal(office, None, process(office, raw, sent, settings=checked), "authentication", sent)
    unsigned = reply(good, mid=mid())
    refusal(office, None, process(office, unsigned, sent, settings=checked), "authentication",
            sent)
    assert office.item(item.id).state == "approve"
    # The right answer still works; then the same token again is a replay, and the item
    # no longer waits.
    assert process(office, reply(good, mid=mid()), sent).accepted
    refusal(office, item.id, process(office, reply(good, mid=mid()), sent), "replayed", sent)
    other = to_approval(office, image)
    office.approve(other.id, by="budi")
    refusal(office, other.id, process(office, reply(token_for(office, other), mid=mid()),
                                      sent), "not_waiting", sent)


def test_a_token_for_an_item_the_store_does_not_hold_is_unknown_item(office):
    sent = MemoryTransport()
    claims = ApprovalClaims(item_key="0d9ae0a4-7c1b-4f7e-9b55-3f1c2a9c1e11", sop_revision=1,
                            digest="ab" * 32, expires=office.now() + dt.timedelta(days=1))
    outcome = process(office, reply(sign(SECRET, claims)), sent)
    refusal(office, None, outcome, "unknown_item", sent)


def test_english_keywords_get_english_answers(office, image):
    item = to_approval(office, image)
    sent = MemoryTransport()
    outcome = process(office, reply(token_for(office, item), "Reject"), sent)
    assert outcome.reason == "reason_missing"
    assert "reason" in sent.sent[-1].get_content()


def test_the_same_reply_twice_is_processed_once(office, image):
    item = to_approval(office, image)
    sent = MemoryTransport()
    raw = reply(token_for(office, item))
    assert process(office, raw, sent).accepted
    again = process(office, raw, sent)
    assert again.status == "duplicate"
    assert len(sent.sent) == 1
    refused_raw = reply(None, mid="<nothing@example.ac.id>")
    assert process(office, refused_raw, sent).status == "refused"
    assert process(office, refused_raw, sent).status == "duplicate"
    assert [e.data["reason"] for e in office.events("org") if e.action == "mail_refused"] \
        == ["no_token"]


def test_two_processes_at_once_apply_one_answer(office, image, store_url, clock):
    """Two pollers with their own connections, each given every reply at the same moment."""
    from humasflow.office import Office

    items = [to_approval(office, image) for _ in range(3)]
    raws = [reply(token_for(office, i), mid=f"<twice{i.id}@example.ac.id>") for i in items]
    outcomes: list = []
    barrier = threading.Barrier(2)

    def poller():
        store = Store(store_url)
        try:
            mine = Office(store, clock=clock, environ={}, media_store=office.media.root
                          if hasattr(office.media, "root") else None)
            barrier.wait()
            for raw in raws:
                outcomes.append(process(mine, raw).status)
        finally:
            store.close()

    threads = [threading.Thread(target=poller) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["accepted"] * 3 + ["duplicate"] * 3
    for i in items:
        assert [e.action for e in office.history(i.id)].count("approve") == 1


def test_the_reasons_are_documented():
    page = (Path(__file__).parents[1] / "docs" / "mail-replies.md").read_text("utf-8")
    for reason in REASONS:
        assert f"`{reason}`" in page


def test_a_reply_the_receiving_server_authenticated_is_accepted(office, image):
    item = to_approval(office, image)
    checked = MailSettings(sender="humas@example.ac.id", authserv_id="mx.example.ac.id")
    raw = reply(token_for(office, item), headers=[(
        "Authentication-Results",
        "mx.example.ac.id; dkim=pass header.d=example.ac.id; "
        "dmarc=pass (p=reject) header.from=example.ac.id")])
    assert process(office, raw, settings=checked).accepted


def test_approve_records_how_an_answer_came_when_the_app_says(office, image):
    item = to_approval(office, image)
    office.approve(item.id, by="budi", via="email",
                   evidence={"message_id": "<x@example.ac.id>", "sender": "budi@example.ac.id"})
    data = office.history(item.id)[-1].data
    assert (data["via"], data["message_id"]) == ("email", "<x@example.ac.id>")


@pytest.mark.parametrize("header", [("Auto-Submitted", "auto-replied"),
                                    ("Precedence", "bulk"), ("X-Autoreply", "yes")])
def test_an_automatic_reply_is_recorded_but_never_answered(office, image, header):
    item = to_approval(office, image)
    sent = MemoryTransport()
    outcome = process(office, reply(token_for(office, item), "Saya sedang cuti",
                                    headers=[header]), sent)
    assert outcome.reason == "no_answer"
    assert office.history(item.id)[-1].action == "mail_refused"
    assert sent.sent == []


def test_humasflow_never_answers_its_own_address(office, image):
    sent = MemoryTransport()
    outcome = process(office, reply(None, sender="humas@example.ac.id"), sent)
    assert outcome.reason == "no_token"
    assert sent.sent == []
