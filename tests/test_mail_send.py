"""Rule: an item entering the approval step sends its coordinators an approval request
over SMTP, in each one's language, with the concept, the post of each channel, the
design media and a signed code; a reply quoting it is accepted; a mail failure is
retried and shown and never moves the item.

Against a real SMTP server on loopback (aiosmtpd), plain, STARTTLS and implicit TLS,
with a certificate made for the test."""

from __future__ import annotations

import datetime as dt
import ssl
from email.message import EmailMessage

import pytest
from click.testing import CliRunner

from humasflow.cli import cli
from humasflow.mail import MailSettings, MemoryTransport, SMTPTransport, process_message
from humasflow.mail.queue import BACKOFF
from humasflow.mail.token import find_tokens, token_from_message_id, verify
from humasflow.office import Office
from humasflow.testing import sample_image, staffed_office

from ._smtp import Server, self_signed

SECRET = "k" * 40
ENV = {"HUMASFLOW_MAIL_SECRET": SECRET, "HUMASFLOW_MAIL_PASSWORD": "rahasia-uji"}


@pytest.fixture
def smtp():
    server = Server()
    yield server
    server.stop()


def settings_for(server, **changes):
    values = {"host": "127.0.0.1", "port": server.port, "security": "none",
              "sender": "humas@example.ac.id", "reply_to": "jawab@example.ac.id",
              "domain": "example.ac.id", "language": "id", "timeout": 5, **changes}
    return MailSettings(**values)


@pytest.fixture
def mailing(store, clock, tmp_path, office):
    """An office of the test organisation that sends mail as ``settings`` say."""
    made = []

    def make(settings, transport=None, **kw):
        media = tmp_path / "media-store" if store.is_postgres else None
        o = Office(store, clock=clock, environ=ENV, media_store=media, media_roots=[tmp_path],
                   mail=settings, mail_transport=transport, **kw)
        made.append(o)
        return o
    return make


def to_approval(office, tmp_path, *, by="rina", media=None, variants=None):
    item = office.new_item("Dies Natalis ke-63", by=by)
    office.complete(item.id, by=by, text="Selamat Dies Natalis FISIP UB ke-63!",
                    link="https://fisip.ub.ac.id/dies", channels=["outbox"],
                    **({"variants": variants} if variants else {}))
    office.complete(item.id, by=by, notes="Template Canva")
    return office.complete(item.id, by=by,
                           media=media or [sample_image(tmp_path / "poster.png")])


def reply_to(message, body="SETUJU", sender="budi@example.ac.id", mid="<r1@example.ac.id>"):
    answer = EmailMessage()
    answer["From"] = sender
    answer["To"] = message["Reply-To"]
    answer["Subject"] = "Re: " + message["Subject"]
    answer["Message-ID"] = mid
    answer["In-Reply-To"] = message["Message-ID"]
    answer["References"] = message["Message-ID"]
    quoted = message.get_body(("plain",)).get_content()
    answer.set_content(body + "\n\nPada hari ini humas menulis:\n"
                       + "\n".join("> " + line for line in quoted.splitlines()) + "\n")
    return bytes(answer)


def test_the_request_arrives_over_smtp_and_its_reply_approves(mailing, smtp, tmp_path,
                                                              office):
    settings = settings_for(smtp)
    mail = mailing(settings)  # no transport given: SMTP to mail.host
    item = to_approval(mail, tmp_path)
    assert item.state == "approve"
    [row] = mail.mail_queue()
    assert (row.kind, row.item_id, row.recipient, row.status) == (
        "approval_request", item.id, "budi", "queued")
    assert [r.status for r in mail.send_mail()] == ["sent"]

    [(envelope_to, _raw)] = smtp.inbox.messages
    assert envelope_to == ["budi@example.ac.id"]
    [message] = smtp.inbox.parsed()
    assert message["From"] == "humas@example.ac.id"
    assert message["To"] == "budi@example.ac.id"
    assert message["Reply-To"] == "jawab@example.ac.id"
    assert f"{item.id}" in message["Subject"]
    assert "Dies Natalis ke-63" in message["Subject"]
    token = token_from_message_id(message["Message-ID"])
    assert message["Message-ID"] == f"<{token}@example.ac.id>"
    body = message.get_body(("plain",)).get_content()
    assert find_tokens(body) == [token]
    claims = verify(SECRET.encode(), token, now=mail.now())
    assert claims.item_key == item.key
    assert claims.binds(mail.item(item.id).post.digest)
    assert claims.expires == (mail.now() + dt.timedelta(days=7)).replace(microsecond=0)
    assert "Selamat Dies Natalis FISIP UB ke-63!" in body
    assert "https://fisip.ub.ac.id/dies" in body
    assert "[outbox]" in body
    assert "SETUJU" in body
    assert "TOLAK" in body
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "poster.png"
    assert attachment.get_content_type() == "image/png"
    assert attachment.get_content() == (tmp_path / "poster.png").read_bytes()
    assert message.get_body(("html",)) is not None
    assert mail.mail_queue()[0].message_id == message["Message-ID"]

    outcome = process_message(mail, reply_to(message), settings=settings,
                              secret=SECRET.encode(), transport=MemoryTransport())
    assert outcome.accepted, outcome
    assert mail.item(item.id).state == "produce"
    assert mail.history(item.id)[-1].data["via"] == "email"
    assert mail.verify().ok


def test_each_coordinator_reads_it_in_their_language(mailing, smtp, tmp_path, office):
    office.add_actor("dewi", "Dewi Lestari", email="dewi@example.ac.id",
                     roles=["coordinator"], by="admin", language="en")
    mail = mailing(settings_for(smtp))
    to_approval(mail, tmp_path)
    assert len(mail.send_mail()) == 2
    by_to = {m["To"]: m for m in smtp.inbox.parsed()}
    english = by_to["dewi@example.ac.id"]
    assert english["Subject"].startswith("Approval needed: item")
    assert english["Content-Language"] == "en"
    assert "Dear Dewi Lestari," in english.get_body(("plain",)).get_content()
    indonesian = by_to["budi@example.ac.id"]
    assert indonesian["Content-Language"] == "id"
    # Translated once the compendium is applied to the catalogs:
    assert indonesian["Subject"].startswith("Perlu persetujuan: item")
    assert "Yth. Budi Santoso," in indonesian.get_body(("plain",)).get_content()


def test_starttls_with_a_login_from_the_credential_source(mailing, tmp_path):
    cert, key, pem = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    server = Server(tls=server_tls, login=("humas", "rahasia-uji"))
    try:
        settings = settings_for(server, security="starttls", username="humas")
        client_tls = ssl.create_default_context(cadata=pem.decode())
        mail = mailing(settings, SMTPTransport(settings, ENV["HUMASFLOW_MAIL_PASSWORD"],
                                               context=client_tls))
        to_approval(mail, tmp_path)
        assert [r.status for r in mail.send_mail()] == ["sent"]
        assert server.inbox.logins == [("humas", "rahasia-uji")]
        assert len(server.inbox.messages) == 1
        # A client that does not trust the certificate sends nothing, and retries.
        untrusting = mailing(settings, SMTPTransport(settings, "rahasia-uji"))
        untrusting.queue_mail("approval_request", to=["budi"],
                              item_id=mail.items()[0].id)
        [row] = untrusting.send_mail()
        assert (row.status, row.attempts) == ("queued", 1)
        assert "certificate" in row.last_error.lower()
        assert len(server.inbox.messages) == 1
    finally:
        server.stop()


def test_implicit_tls(mailing, tmp_path):
    cert, key, pem = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    server = Server(tls=server_tls, implicit=True)
    try:
        settings = settings_for(server, security="tls")
        mail = mailing(settings, SMTPTransport(
            settings, context=ssl.create_default_context(cadata=pem.decode())))
        to_approval(mail, tmp_path)
        assert [r.status for r in mail.send_mail()] == ["sent"]
        assert len(server.inbox.messages) == 1
    finally:
        server.stop()


def test_a_server_that_is_down_is_retried_and_shown_and_the_item_stays(
        mailing, tmp_path, clock, store_url):
    down = Server()
    port = down.port
    down.stop()  # nothing listens there now
    settings = settings_for(down)
    mail = mailing(settings)
    item = to_approval(mail, tmp_path)
    [row] = mail.send_mail()
    assert (row.status, row.attempts) == ("queued", 1)
    assert f"127.0.0.1:{port}" in row.last_error
    assert row.next_attempt_at == clock() + BACKOFF[0]
    assert mail.item(item.id).state == "approve"
    shown = CliRunner().invoke(cli, ["--db", store_url, "--lang", "en", "mail", "queue"],
                               env=ENV)
    assert shown.exit_code == 0, shown.output
    assert "approval_request" in shown.output
    assert "queued" in shown.output
    assert "cannot reach" in shown.output
    # The server comes back: the next attempt, when due, delivers it.
    back = Server()
    try:
        mail = mailing(settings_for(back))
        assert mail.send_mail() == []  # not due yet
        clock.advance(BACKOFF[0])
        [row] = mail.send_mail()
        assert (row.status, row.attempts) == ("sent", 2)
        assert len(back.inbox.messages) == 1
    finally:
        back.stop()


def test_a_temporary_refusal_is_retried_and_a_permanent_one_gives_up(mailing, smtp,
                                                                       tmp_path, clock):
    mail = mailing(settings_for(smtp))
    to_approval(mail, tmp_path)
    smtp.inbox.refuse_data = "451 4.3.0 try again later"
    [row] = mail.send_mail()
    assert (row.status, row.attempts) == ("queued", 1)
    assert "451" in row.last_error
    smtp.inbox.refuse_data = None
    smtp.inbox.refuse_rcpt = "550 5.1.1 no such user"
    clock.advance(BACKOFF[0])
    [row] = mail.send_mail()
    assert (row.status, row.attempts) == ("failed", 2)
    assert "budi@example.ac.id" in row.last_error
    assert mail.mail_queue(status="failed")[0].id == row.id


def test_obsolete_when_the_item_moved_on_before_it_was_sent(mailing, smtp, tmp_path):
    mail = mailing(settings_for(smtp))
    item = to_approval(mail, tmp_path)
    mail.approve(item.id, by="budi")
    [row] = mail.send_mail()
    assert row.status == "obsolete"
    assert smtp.inbox.messages == []


def test_a_request_for_a_second_round_replaces_the_first(mailing, smtp, tmp_path):
    mail = mailing(settings_for(smtp))
    item = to_approval(mail, tmp_path)
    mail.reject(item.id, by="budi", reason="tanggal salah")
    assert mail.item(item.id).state == "design"
    mail.complete(item.id, by="rina", text="Selamat Dies Natalis FISIP UB ke-63 (revisi)",
                  media=[sample_image(tmp_path / "poster2.png")])
    assert sorted((r.kind, r.status) for r in mail.send_mail()) == [
        ("approval_request", "sent"), ("rejected", "sent")]  # the rejection told rina
    assert [(r.status, r.last_error) for r in mail.mail_queue()
            if r.kind == "approval_request"] == [
        ("sent", None), ("obsolete", "replaced by a newer approval request")]
    [message] = [m for m in smtp.inbox.parsed() if m["To"] == "budi@example.ac.id"]
    assert "(revisi)" in message.get_body(("plain",)).get_content()
    token = token_from_message_id(message["Message-ID"])
    assert verify(SECRET.encode(), token, now=mail.now()).binds(mail.item(item.id).post.digest)


def test_large_design_media_are_linked_not_attached(mailing, smtp, tmp_path):
    links = {}

    def host(media, store):
        links[media.sha256] = f"https://media.example.ac.id/{media.sha256[:12]}.png"
        return links[media.sha256]

    mail = mailing(settings_for(smtp, attach_max_bytes=10), media_host=host)
    to_approval(mail, tmp_path)
    mail.send_mail()
    [message] = smtp.inbox.parsed()
    assert list(message.iter_attachments()) == []
    body = message.get_body(("plain",)).get_content()
    [url] = links.values()
    assert url in body
    assert "poster.png" in body

    hostless = mailing(settings_for(smtp, attach_max_bytes=10))
    hostless.queue_mail("approval_request", to=["budi"], item_id=hostless.items()[0].id)
    hostless.send_mail()
    # In the coordinator's language (Indonesian here): named as not attached, no URL.
    hostless_body = smtp.inbox.parsed()[1].get_body(("plain",)).get_content()
    assert "poster.png" in hostless_body
    assert url not in hostless_body
    assert "terlalu besar" in hostless_body


def test_the_request_shows_each_channels_variant_and_the_validation(mailing, smtp,
                                                                    tmp_path, office):
    office.add_actor("budi", "Budi Santoso", email="budi@example.ac.id",
                     roles=["coordinator"], by="admin", language="en")
    mail = mailing(settings_for(smtp))
    to_approval(mail, tmp_path, variants={"outbox": {"text": "Versi khusus outbox"}})
    mail.send_mail()
    body = smtp.inbox.parsed()[0].get_body(("plain",)).get_content()
    assert "Versi khusus outbox" in body
    assert "Every target channel accepts the post as it is." in body


def test_four_eyes_leaves_the_author_out(mailing, smtp, tmp_path, office):
    office.add_actor("budi", "Budi Santoso", email="budi@example.ac.id",
                     roles=["coordinator", "staff"], by="admin")
    office.add_actor("dewi", "Dewi Lestari", email="dewi@example.ac.id",
                     roles=["coordinator"], by="admin")
    mail = mailing(settings_for(smtp))
    to_approval(mail, tmp_path, by="budi")
    assert [r.recipient for r in mail.mail_queue()] == ["dewi"]


def test_the_request_is_queued_in_the_steps_transaction(mailing, smtp, tmp_path,
                                                        monkeypatch):
    from humasflow.storage.store import Store

    mail = mailing(settings_for(smtp))
    item = mail.new_item("Dies Natalis", by="rina")
    mail.complete(item.id, by="rina", text="Selamat", channels=["outbox"])
    mail.complete(item.id, by="rina", notes="Template")
    queue = Store.queue_mail

    def queue_then_fail(self, conn, rows):
        assert queue(self, conn, rows) == 1
        raise RuntimeError("the step's transaction fails after queueing")

    monkeypatch.setattr(Store, "queue_mail", queue_then_fail)
    with pytest.raises(RuntimeError):
        mail.complete(item.id, by="rina", media=[sample_image(tmp_path / "p.png")])
    monkeypatch.undo()
    assert mail.item(item.id).state == "design"
    assert mail.mail_queue() == []
    mail.complete(item.id, by="rina", media=[sample_image(tmp_path / "p.png")])
    assert len(mail.mail_queue()) == 1
    assert mail.verify().ok


def test_an_office_without_mail_queues_no_request(office, tmp_path):
    office.media_roots = (tmp_path,)
    to_approval(office, tmp_path)
    assert office.mail_queue() == []


def test_without_the_secret_the_request_waits_and_says_why(store, clock, tmp_path, smtp,
                                                           office):
    media = tmp_path / "media-store" if store.is_postgres else None
    mail = Office(store, clock=clock, environ={}, media_store=media, media_roots=[tmp_path],
                  mail=settings_for(smtp))
    to_approval(mail, tmp_path)
    [row] = mail.send_mail()
    assert (row.status, row.attempts) == ("queued", 1)
    assert "HUMASFLOW_MAIL_SECRET" in row.last_error
    assert smtp.inbox.messages == []


def test_mail_send_prints_a_line_per_message_and_fails_when_one_did(tmp_path, smtp):
    db = tmp_path / "cli.db"
    setup = Office(str(db), environ={})
    setup.establish(by="Dekan")
    staffed_office(setup)
    setup.add_channel("outbox", "outbox", settings={"path": str(tmp_path / "outbox")},
                      by="admin")
    setup.close()
    config = tmp_path / "humasflow.toml"
    config.write_text(f'store = "{db}"\n[mail]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                      f'security = "none"\nsender = "humas@example.ac.id"\ntimeout = 5\n')

    def run(*args, code=0):
        result = CliRunner().invoke(cli, ["--config", str(config), "--lang", "en",
                                          "--media-root", str(tmp_path), *args], env=ENV)
        assert result.exit_code == code, result.output
        return result.output

    assert "No mail is due." in run("mail", "send")
    poster = sample_image(tmp_path / "poster.png")
    run("new", "Dies Natalis", "--as", "rina")
    run("complete", "1", "--as", "rina", "--text", "Selamat", "--channel", "outbox")
    run("complete", "1", "--as", "rina", "--notes", "Template")
    run("complete", "1", "--as", "rina", "--media", str(poster))
    out = run("mail", "send")
    assert "approval_request (item 1) to budi@example.ac.id: sent" in out
    assert len(smtp.inbox.messages) == 1
    assert "sent" in run("mail", "queue", "--status", "sent")
    smtp.inbox.refuse_data = "451 4.3.0 later"
    with Office(str(db), environ=ENV, mail=MailSettings(host="127.0.0.1")) as again:
        again.queue_mail("approval_request", to=["budi"], item_id=1)
    out = run("mail", "send", code=1)
    assert "failed" in out
    assert "next attempt" in out
    assert "451" in run("mail", "queue")


def test_a_concept_revised_while_it_waits_is_asked_about_again(mailing, smtp, tmp_path):
    settings = settings_for(smtp)
    mail = mailing(settings)
    item = to_approval(mail, tmp_path)
    mail.send_mail()
    mail.revise(item.id, by="rina", text="Selamat Dies Natalis FISIP UB ke-63! (diperbaiki)")
    assert mail.item(item.id).state == "approve"
    [row] = mail.send_mail()
    assert row.status == "sent"
    first, second = smtp.inbox.parsed()
    assert "(diperbaiki)" in second.get_body(("plain",)).get_content()
    stale = process_message(mail, reply_to(first), settings=settings,
                            secret=SECRET.encode(), transport=None)
    assert stale.reason == "changed"
    fresh = process_message(mail, reply_to(second, mid="<r2@example.ac.id>"),
                            settings=settings, secret=SECRET.encode(), transport=None)
    assert fresh.accepted, fresh
    assert mail.item(item.id).state == "produce"


def test_a_reply_to_an_expired_request_brings_a_new_one_that_can_be_answered(
        mailing, smtp, tmp_path, clock):
    settings = settings_for(smtp)
    mail = mailing(settings)
    item = to_approval(mail, tmp_path)
    mail.send_mail()
    [old] = smtp.inbox.parsed()
    clock.advance(days=8)  # past token_days
    answers = MemoryTransport()
    outcome = process_message(mail, reply_to(old, mid="<late@example.ac.id>"),
                              settings=settings, secret=SECRET.encode(), transport=answers)
    assert (outcome.status, outcome.reason) == ("refused", "expired")
    assert "Permintaan baru sedang dikirim" in outcome.detail  # SETUJU: in Indonesian
    assert mail.item(item.id).state == "approve"
    # Another late reply while the new request waits queues no second one.
    process_message(mail, reply_to(old, mid="<late2@example.ac.id>"), settings=settings,
                    secret=SECRET.encode(), transport=answers)
    assert [r.recipient for r in mail.mail_queue("queued")] == ["budi"]
    smtp.inbox.messages.clear()
    assert [r.status for r in mail.send_mail()] == ["sent"]
    [new] = smtp.inbox.parsed()
    assert new["Message-ID"] != old["Message-ID"]
    accepted = process_message(mail, reply_to(new, mid="<ok@example.ac.id>"),
                               settings=settings, secret=SECRET.encode(), transport=answers)
    assert accepted.status == "accepted"
    assert mail.item(item.id).state == "produce"


def test_one_send_uses_one_connection_for_all_its_messages(mailing, smtp, tmp_path):
    mail = mailing(settings_for(smtp))
    mail.add_actor("dewi", "Dewi Lestari", email="dewi@example.ac.id",
                   roles=["coordinator"], by="admin")
    to_approval(mail, tmp_path)
    assert [r.status for r in mail.send_mail()] == ["sent", "sent"]  # budi and dewi
    assert len(smtp.inbox.peers) == 2
    assert len(set(smtp.inbox.peers)) == 1  # over one connection
    # Sent one by one (outside a batch), each message has a connection of its own.
    transport = mail.mail_transport
    for message in smtp.inbox.parsed():
        transport.send(message)
    assert len(set(smtp.inbox.peers[2:])) == 2


def test_a_connection_dropped_between_two_messages_is_opened_again(smtp):
    transport = SMTPTransport(settings_for(smtp))
    messages = []
    for n in range(2):
        message = EmailMessage()
        message["From"], message["To"] = "humas@example.ac.id", "budi@example.ac.id"
        message["Subject"] = f"ping {n}"
        message.set_content("ping")
        messages.append(message)
    with transport.batch():
        transport.send(messages[0])
        transport._held.close()  # as when the server times an idle connection out
        transport.send(messages[1])
    assert [m["Subject"] for m in smtp.inbox.parsed()] == ["ping 0", "ping 1"]
    assert len(set(smtp.inbox.peers)) == 2
    assert transport._held is None  # closed with the batch
