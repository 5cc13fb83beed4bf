"""Rule: what a person must hear about reaches them, in their language, through the
``notify`` hook: a rejection with its reason and a returned recheck to the authors, a
post with its public URLs, a channel that needs a person, a breach to the coordinators,
a credential about to expire to the administrators (once each); humasflow's own
``notify`` sends them by email. The daily digest carries the record's anchor, so the
coordinator's mailbox catches a later rewrite of the record.

Mail goes to a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from humasflow.cli import cli
from humasflow.credentials import EnvironmentSource
from humasflow.errors import AuthenticationFailed, OutcomeUnknown, RateLimited
from humasflow.hookspecs import hookimpl
from humasflow.mail import MailSettings
from humasflow.notices import Notice
from humasflow.office import Office
from humasflow.publishing.contract import Receipt
from humasflow.testing import (
    fake_publisher_plugin,
    item_ready_to_post,
    plugin_registered,
    sample_image,
    staffed_office,
)

from ._smtp import Server
from .test_audit_rows import rewrite as rewrite_record

SECRET = "k" * 40
ENV = {"HUMASFLOW_MAIL_SECRET": SECRET}


class Heard:
    """An app's own ``notify``: keeps every notice."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    @hookimpl
    def notify(self, office, notice):
        self.notices.append(notice)

    def kinds(self):
        return [n.kind for n in self.notices]


@pytest.fixture
def heard():
    with plugin_registered(Heard()) as plugin:
        yield plugin


@pytest.fixture
def smtp():
    server = Server()
    yield server
    server.stop()


@pytest.fixture
def mail(store, clock, tmp_path, office, smtp):
    """The test organisation's office, sending mail to the loopback server; ``sari``
    reads English."""
    office.add_actor("sari", "Sari Dewi", email="sari@example.ac.id", roles=["staff"],
                     by="admin", language="en")
    settings = MailSettings(host="127.0.0.1", port=smtp.port, security="none",
                            sender="humas@example.ac.id", domain="example.ac.id",
                            language="id", timeout=5)
    media = tmp_path / "media-store" if store.is_postgres else None
    o = Office(store, clock=clock, environ={**ENV, "HF_X_TOKEN": "t" * 24},
               media_store=media, media_roots=[tmp_path], mail=settings)
    yield o
    o.close()


def sent(office, smtp, kind):
    """Send what is due; the messages of ``kind`` that arrived, by recipient address."""
    rows = [r for r in office.send_mail() if r.kind == kind]
    assert all(r.status == "sent" for r in rows), [(r.status, r.last_error) for r in rows]
    found = {}
    for message in smtp.inbox.parsed():
        found.setdefault(message["To"], []).append(message)
    smtp.inbox.messages.clear()
    return {to: m for to, ms in found.items() for m in ms
            if any(r.address == to for r in rows)}


def body(message):
    return message.get_body(("plain",)).get_content()


def to_approval(office, tmp_path, *, by="rina"):
    item = office.new_item("Dies Natalis ke-63", by=by)
    office.complete(item.id, by=by, text="Selamat Dies Natalis FISIP UB ke-63!",
                    channels=["outbox"])
    office.complete(item.id, by=by, notes="Template Canva")
    return office.complete(item.id, by=by, media=[sample_image(tmp_path / "poster.png")])


def test_a_rejection_tells_the_author_why_in_their_language(mail, smtp, tmp_path, heard):
    item = to_approval(mail, tmp_path)
    mail.send_mail()  # the approval request
    smtp.inbox.messages.clear()
    mail.reject(item.id, by="budi", reason="Logo fakultas terlalu kecil")

    [notice] = [n for n in heard.notices if n.kind == "rejected"]
    assert [a.id for a in notice.to] == ["rina"]  # the author; not the coordinator
    assert notice.data["reason"] == "Logo fakultas terlalu kecil"
    assert notice.item.id == item.id
    messages = sent(mail, smtp, "rejected")
    assert list(messages) == ["rina@example.ac.id"]
    message = messages["rina@example.ac.id"]
    assert f"Ditolak: item {item.id}" in message["Subject"]
    assert "Logo fakultas terlalu kecil" in body(message)
    assert "Budi Santoso" in body(message)
    assert message["Content-Language"] == "id"
    assert message["From"] == "humas@example.ac.id"


def test_a_rework_tells_the_author_the_findings_in_their_language(mail, smtp, tmp_path,
                                                                  heard):
    mail.add_actor("rina", "Rina Wulandari", email="rina@example.ac.id", roles=["staff"],
                   by="admin", language="en")
    item = to_approval(mail, tmp_path)
    mail.approve(item.id, by="budi", answer="OK")
    mail.complete(item.id, by="rina", media=[str(tmp_path / "poster.png")])
    mail.send_mail()
    smtp.inbox.messages.clear()
    mail.rework(item.id, by="sari", findings="Tanggal acara salah")
    [notice] = [n for n in heard.notices if n.kind == "rework"]
    assert [a.id for a in notice.to] == ["rina"]  # not sari, who returned it
    message = sent(mail, smtp, "rework")["rina@example.ac.id"]
    assert message["Content-Language"] == "en"  # rina reads English now
    assert "Tanggal acara salah" in body(message)
    assert "returned it for rework" in body(message)
    assert "Sari Dewi" in body(message)


def test_a_posted_item_tells_its_author_and_coordinator_where_it_is(mail, smtp, tmp_path,
                                                                   heard):
    item = item_ready_to_post(mail, text="Selamat", media=[sample_image(tmp_path / "p.png")],
                              channels=["outbox"])
    mail.send_mail()
    smtp.inbox.messages.clear()
    report = mail.post(item.id, by="rina")
    assert report.done
    [notice] = [n for n in heard.notices if n.kind == "posted"]
    assert {a.id for a in notice.to} == {"rina", "budi"}  # the author, the coordinator
    url = mail.publications(item.id)["outbox"].url
    assert url
    assert notice.data["channels"] == {"outbox": {"state": "posted", "url": url}}
    messages = sent(mail, smtp, "posted")
    assert set(messages) == {"rina@example.ac.id", "budi@example.ac.id"}
    assert url in body(messages["budi@example.ac.id"])
    assert f"Diposting: item {item.id}" in messages["rina@example.ac.id"]["Subject"]


@pytest.fixture
def fake(mail):
    with plugin_registered(fake_publisher_plugin()) as plugin:
        mail.add_channel("fb", "fake", by="admin")
        yield plugin


def test_a_channel_that_needs_a_person_tells_who_post_it(mail, smtp, tmp_path, heard, fake):
    item = item_ready_to_post(mail, text="Selamat", media=[sample_image(tmp_path / "p.png")],
                              channels=["fb"])
    mail.send_mail()
    smtp.inbox.messages.clear()
    fake.publishers.clear()
    mail.publisher("fb")  # made now, so its failure can be set
    fake.publishers["fb"].fail_with = RateLimited("slow down")
    mail.post(item.id, by="rina")
    assert "channel_failed" not in heard.kinds()  # retried by itself: nobody is needed yet
    assert mail.publications(item.id)["fb"].next_attempt_at is not None

    fake.publishers["fb"].fail_with = AuthenticationFailed("token revoked")
    mail.retry(item.id, "fb", by="rina")
    [notice] = [n for n in heard.notices if n.kind == "channel_failed"]
    assert [a.id for a in notice.to] == ["rina"]  # the author, assignee and poster
    assert notice.data["channel"] == "fb"
    assert "token revoked" in notice.data["error"]
    messages = sent(mail, smtp, "channel_failed")
    assert "humasflow retry" in body(messages["rina@example.ac.id"])
    assert "token revoked" in body(messages["rina@example.ac.id"])

    # Its outcome unknown: a person must look on the platform.
    fake.publishers["fb"].fail_with = OutcomeUnknown("connection reset after sending")
    mail.retry(item.id, "fb", by="rina")
    [unknown] = [n for n in heard.notices if n.kind == "channel_unknown"]
    assert unknown.data["state"] == "unknown"
    messages = sent(mail, smtp, "channel_unknown")
    attempt = mail.publications(item.id)["fb"].attempts
    assert f"--not-posted --attempt {attempt} " in body(messages["rina@example.ac.id"])


def test_a_channel_posted_by_hand_tells_who_post_it(mail, smtp, tmp_path, heard):
    mail.add_channel("tiktok", "manual", settings={"instructions": "akun @fisipub"},
                     by="admin")
    item = item_ready_to_post(mail, text="Selamat", media=[sample_image(tmp_path / "p.png")],
                              channels=["tiktok"])
    mail.send_mail()
    smtp.inbox.messages.clear()
    mail.post(item.id, by="rina")
    [notice] = [n for n in heard.notices if n.kind == "channel_unknown"]
    assert notice.data["state"] == "waiting"
    message = sent(mail, smtp, "channel_unknown")["rina@example.ac.id"]
    assert "--url" in body(message)
    assert "tiktok" in message["Subject"]
    # Settled before the mail went out: the message is no longer worth sending.
    again = item_ready_to_post(mail, text="Lagi", media=[sample_image(tmp_path / "q.png")],
                               channels=["tiktok"])
    mail.send_mail()
    mail.post(again.id, by="rina")
    mail.confirm(again.id, "tiktok", by="rina", url="https://www.tiktok.com/@fisipub/1")
    rows = [r for r in mail.send_mail() if r.kind == "channel_unknown"]
    assert rows
    assert {r.status for r in rows} == {"obsolete"}


def test_a_breach_tells_the_coordinator_once(mail, smtp, tmp_path, clock, heard):
    item = mail.new_item("Dies Natalis", by="rina")
    clock.advance(days=3)
    assert [b.item.id for b in mail.check_sla()] == [item.id]
    assert mail.check_sla() == []
    [notice] = [n for n in heard.notices if n.kind == "breach"]
    assert [a.id for a in notice.to] == ["budi"]
    assert notice.data["step"] == item.state
    assert notice.data["late_by_seconds"] > 0
    message = sent(mail, smtp, "breach")["budi@example.ac.id"]
    assert f"Terlambat: item {item.id}" in message["Subject"]
    assert "Rina Wulandari" in body(message)  # the assignee


class Expiring:
    """A publisher whose check reports when its credential expires."""

    expires: dt.datetime | None = None

    def __init__(self, channel=None, context=None):
        self.context = context

    def validate(self, post):
        return []

    def publish(self, post, progress):
        return Receipt(platform_id="1", url="https://x.example/1")

    def check(self):
        self.context.credential_expires("access_token", Expiring.expires)

    @hookimpl
    def register_publishers(self, register):
        register("expiring", Expiring)


def test_a_credential_about_to_expire_tells_the_administrators_once_per_expiry(
        mail, smtp, clock, heard):
    with plugin_registered(Expiring()):
        mail.add_channel("x", "expiring", credentials={"access_token": "HF_X_TOKEN"},
                         by="admin")
        Expiring.expires = clock() + dt.timedelta(days=30)
        mail.check_channels()
        assert mail.check_credentials() == []  # a month away
        clock.advance(days=25)
        [warning] = mail.check_credentials()
        assert not warning.expired
        assert mail.check_credentials() == []  # once per expiry time
        [notice] = [n for n in heard.notices if n.kind == "credential_expiring"]
        assert [a.id for a in notice.to] == ["admin"]
        message = sent(mail, smtp, "credential_expiring")["admin@example.ac.id"]
        assert "HF_X_TOKEN" in body(message)
        assert "t" * 24 not in message.as_string()  # the value never

        Expiring.expires = clock() + dt.timedelta(days=3)  # renewed, for a short while
        mail.check_channels()
        [again] = mail.check_credentials()
        assert again.expires_at == Expiring.expires.replace(microsecond=0)


def test_an_office_without_mail_still_notifies_an_apps_plugin(office, tmp_path, heard):
    item = to_approval(office, tmp_path)
    office.reject(item.id, by="budi", reason="Belum sesuai")
    assert heard.kinds() == ["rejected"]
    assert office.mail_queue() == []


def test_a_failing_notify_plugin_never_undoes_the_action_nor_stops_the_others(
        office, tmp_path, caplog, heard):
    class Broken:
        @hookimpl
        def notify(self, office, notice):
            raise RuntimeError("chat server down")

    item = to_approval(office, tmp_path)
    with plugin_registered(Broken()):
        rejected = office.reject(item.id, by="budi", reason="Belum sesuai")
    assert rejected.state == "design"
    assert office.item(item.id).state == "design"
    assert "chat server down" in caplog.text
    assert heard.kinds() == ["rejected"]  # registered before the broken one, told anyway


# -- the daily digest ------------------------------------------------------------------------


def rewrite(office: Office) -> None:
    """Replace the whole record with another, consistent one (as a database owner could),
    the mail queue included."""
    with office._store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM mail_queue"))
    rewrite_record(office, "Diskon 90% untuk semua!")


def test_the_digest_lists_the_day_and_its_anchor_catches_a_rewrite(mail, smtp, tmp_path,
                                                                     clock):
    waiting = to_approval(mail, tmp_path)
    late = mail.new_item("Wisuda", by="sari")
    done = item_ready_to_post(mail, text="Selamat", media=[sample_image(tmp_path / "p.png")],
                              channels=["outbox"])
    clock.advance(hours=30)
    mail.post(done.id, by="rina")  # within the day the digest covers
    mail.send_mail()
    smtp.inbox.messages.clear()

    assert mail.queue_digest() == 1  # budi, the one coordinator
    assert mail.queue_digest() == 0  # once a day
    message = sent(mail, smtp, "digest")["budi@example.ac.id"]
    text = body(message)
    assert "Ringkasan harian" in message["Subject"]
    assert f"#{waiting.id} Dies Natalis ke-63" in text  # waits for budi's approval
    assert f"#{late.id} Wisuda" in text  # late at its first step
    posted_url = mail.publications(done.id)["outbox"].url
    assert posted_url is not None
    assert posted_url in text
    [attachment] = list(message.iter_attachments())
    anchor = json.loads(attachment.get_content())
    assert attachment.get_filename() == f"humasflow-anchor-{mail.org}-{anchor['seq']}.json"
    assert str(anchor["seq"]) in text
    assert anchor["digest"] in text
    assert mail.verify(anchor=anchor).ok

    path = tmp_path / attachment.get_filename()
    path.write_bytes(attachment.get_content())
    url = mail.location
    verified = CliRunner().invoke(cli, ["--db", url, "--lang", "en", "audit", "verify",
                                        "--anchor", str(path)], env=ENV)
    assert verified.exit_code == 0, verified.output

    rewrite(mail)
    assert mail.verify().ok  # consistent in itself...
    refused = CliRunner().invoke(cli, ["--db", url, "--lang", "en", "audit", "verify",
                                       "--anchor", str(path)], env=ENV)
    assert refused.exit_code != 0
    assert "does not extend the anchor" in refused.output

    clock.advance(days=1)
    assert mail.queue_digest() == 1  # the next day's


def test_mail_digest_queues_once_a_day_and_mail_send_sends_it(tmp_path, smtp):
    db = tmp_path / "cli.db"
    setup = Office(str(db), environ={})
    setup.establish(by="Dekan")
    staffed_office(setup)
    setup.close()
    config = tmp_path / "humasflow.toml"
    config.write_text(f'store = "{db}"\n[mail]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                      f'security = "none"\nsender = "humas@example.ac.id"\ntimeout = 5\n')

    def run(*args, code=0):
        result = CliRunner().invoke(cli, ["--config", str(config), "--lang", "en", *args],
                                    env=ENV)
        assert result.exit_code == code, result.output
        return result.output

    assert "queued for 1 coordinator(s)" in run("mail", "digest")
    assert "queued today already" in run("mail", "digest")
    assert "queued for 1 coordinator(s)" in run("mail", "digest", "--force")
    out = run("mail", "send")
    assert out.count("digest (item -) to budi@example.ac.id: sent") == 2
    [first, _second] = smtp.inbox.parsed()
    assert "Daily digest" not in first["Subject"]  # budi reads the office's Indonesian
    assert "Nothing" not in body(first)
    assert "Tidak ada" in body(first)


def test_mail_digest_and_send_go_through_every_organisation_with_all_orgs(tmp_path, smtp):
    db = tmp_path / "cli.db"
    setup = Office(str(db), environ={})
    setup.establish(by="Dekan")
    staffed_office(setup)
    other = setup.for_org("fib")
    other.bootstrap_admin("admin", "Administrator")
    other.establish(by="admin")
    other.add_actor("tari", "Tari", email="tari@example.ac.id", roles=["coordinator"],
                    by="admin")
    setup.close()
    config = tmp_path / "humasflow.toml"
    config.write_text(f'store = "{db}"\n[mail]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                      f'security = "none"\nsender = "humas@example.ac.id"\ntimeout = 5\n')

    def run(*args):
        result = CliRunner().invoke(cli, ["--config", str(config), "--lang", "en", *args],
                                    env=ENV)
        assert result.exit_code == 0, result.output
        return result.output

    out = run("mail", "digest", "--all-orgs")
    assert "[default] Daily digest queued for 1 coordinator(s)" in out
    assert "[fib] Daily digest queued for 1 coordinator(s)" in out
    out = run("mail", "send", "--all-orgs")
    assert "[default] " in out
    assert "[fib] " in out
    assert sorted(m["To"] for m in smtp.inbox.parsed()) == ["budi@example.ac.id",
                                                            "tari@example.ac.id"]
    assert "No mail is due." in run("mail", "send")  # --org default alone: nothing left
    # fib's digest names the command that verifies its anchor, and it does.
    [fib] = [m for m in smtp.inbox.parsed() if m["To"] == "tari@example.ac.id"]
    [attachment] = list(fib.iter_attachments())
    (tmp_path / attachment.get_filename()).write_bytes(attachment.get_content())
    command = next(line.split()[1:] for line in body(fib).splitlines()
                   if "audit verify --anchor" in line)
    assert command[:2] == ["--org", "fib"]
    verified = CliRunner().invoke(cli, ["--config", str(config), "--lang", "en",
                                        *command[:-1], str(tmp_path / command[-1])], env=ENV)
    assert verified.exit_code == 0, verified.output
    out = run("check-sla", "--all-orgs")
    assert out.splitlines()[0] == "[default]"
    assert "[fib]" in out


# -- what a second look found ---------------------------------------------------------------


def test_a_plugin_failing_in_an_event_hook_does_not_silence_the_notices(office, tmp_path,
                                                                       heard):
    class Broken:
        @hookimpl
        def transition_done(self, office, item, event):
            raise RuntimeError("audit mirror down")

    item = to_approval(office, tmp_path)
    with plugin_registered(Broken()):  # registered last: called before the built-ins
        office.reject(item.id, by="budi", reason="Belum sesuai")
    assert heard.kinds() == ["rejected"]


def test_the_one_who_returns_an_item_is_not_told_about_it(mail, tmp_path, heard):
    item = to_approval(mail, tmp_path)
    mail.approve(item.id, by="budi", answer="OK")
    mail.complete(item.id, by="rina", media=[str(tmp_path / "poster.png")])
    mail.rework(item.id, by="rina", findings="Saya perbaiki sendiri")  # rina is the author
    assert "rework" not in heard.kinds()


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_no_database_password_reaches_a_digest(store_url, clock, smtp):
    joiner = "&" if "?" in store_url else "?"
    url = f"{store_url}{joiner}password=S3cretDbPassw0rd"
    settings = MailSettings(host="127.0.0.1", port=smtp.port, security="none",
                            sender="humas@example.ac.id", timeout=5)
    office = Office(url, clock=clock, environ=ENV, mail=settings)
    try:
        office.establish(by="Dekan")
        staffed_office(office)
        assert "S3cret" not in office.location
        assert "S3cret" not in repr(office)
        assert office.queue_digest() == 1
        office.send_mail()
        [message] = smtp.inbox.parsed()
        assert "S3cret" not in message.as_string()
        [attachment] = list(message.iter_attachments())
        assert "S3cret" not in attachment.get_content().decode()
    finally:
        office.close()


def test_two_senders_at_once_queue_one_digest_a_day(mail, store_url, clock, tmp_path):
    import threading

    media = tmp_path / "media-store" if "postgres" in store_url else None
    others = [Office(store_url, clock=clock, environ=ENV, media_store=media, mail=mail.mail)
              for _ in range(2)]
    try:
        for day in range(3):
            start = threading.Barrier(2)
            counts = []

            def queue(office, start=start, counts=counts):
                start.wait()
                counts.append(office.queue_digest())

            threads = [threading.Thread(target=queue, args=(o,)) for o in others]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(counts) == [0, 1], f"day {day}: {counts}"
            clock.advance(days=1)
    finally:
        for office in others:
            office.close()
    assert len([r for r in mail.mail_queue() if r.kind == "digest"]) == 3


def test_the_digest_windows_follow_each_other_without_gap_or_repeat(mail, smtp, tmp_path,
                                                                    clock):
    first = item_ready_to_post(mail, text="Satu", media=[sample_image(tmp_path / "a.png")],
                               channels=["outbox"])
    mail.post(first.id, by="rina")
    assert mail.queue_digest() == 1
    clock.advance(days=1)
    second = item_ready_to_post(mail, text="Dua", media=[sample_image(tmp_path / "b.png")],
                                channels=["outbox"], title="Wisuda")
    mail.post(second.id, by="rina")
    assert mail.queue_digest() == 1
    mail.send_mail()
    digests = [m for m in smtp.inbox.parsed() if "humasflow-anchor" in m.as_string()]
    assert len(digests) == 2
    # Sent in the order they were queued: yesterday's, then today's.
    posted_part = [body(d).split("Diposting sejak", 1)[1].split("Jangkar", 1)[0]
                   for d in digests]
    assert f"#{first.id} " in posted_part[0]
    assert f"#{second.id} " not in posted_part[0]
    assert f"#{second.id} " in posted_part[1]
    assert f"#{first.id} " not in posted_part[1]  # told once


def test_a_registered_composer_emails_an_apps_own_notice_kind(mail, smtp, clock):
    from email.message import EmailMessage

    from humasflow.mail.compose import _COMPOSERS, register_composer

    def meeting(office, item, recipient, language, data, settings, secret):
        message = EmailMessage()
        message["Subject"] = f"Rapat: {data['when']}"
        message.set_content("Rapat koordinasi humas.")
        return message

    register_composer("meeting", meeting)
    try:
        mail.notify(Notice("meeting", mail.org, (mail.actor("budi"),), clock(),
                           data={"when": "Senin 09:00"}))
        [row] = [r for r in mail.send_mail() if r.kind == "meeting"]
        assert row.status == "sent"
        [message] = smtp.inbox.parsed()
        assert message["Subject"] == "Rapat: Senin 09:00"
    finally:
        _COMPOSERS.pop("meeting", None)


def test_a_shared_credential_warns_for_each_channel_and_again_when_expired(mail, clock,
                                                                            heard):
    with plugin_registered(Expiring()):
        for name in ("fb", "ig"):
            mail.add_channel(name, "expiring", credentials={"access_token": "HF_X_TOKEN"},
                             by="admin")
        Expiring.expires = clock() + dt.timedelta(days=3)
        mail.check_channels()
        assert sorted(w.channel for w in mail.check_credentials()) == ["fb", "ig"]
        assert mail.check_credentials() == []
        clock.advance(days=4)
        expired = mail.check_credentials()
        assert sorted(w.channel for w in expired) == ["fb", "ig"]
        assert all(w.expired for w in expired)
        assert mail.check_credentials() == []
        kinds = [(n.kind, n.data["channel"], n.data["expired"]) for n in heard.notices]
        assert sorted(kinds) == [("credential_expiring", "fb", False),
                                 ("credential_expiring", "fb", True),
                                 ("credential_expiring", "ig", False),
                                 ("credential_expiring", "ig", True)]


def test_no_mail_about_an_item_cancelled_since(mail, smtp, tmp_path, clock):
    item = mail.new_item("Dies Natalis", by="rina")
    clock.advance(days=3)
    assert mail.check_sla()
    mail.cancel(item.id, by="budi", reason="acara batal")
    rows = [r for r in mail.send_mail() if r.kind == "breach"]
    assert [r.status for r in rows] == ["obsolete"]
    assert smtp.inbox.messages == []


class LookedUp:
    """A publisher whose post may or may not have gone out, and which can look it up."""

    def __init__(self, channel=None, context=None):
        pass

    def validate(self, post):
        return []

    def publish(self, post, progress):
        raise OutcomeUnknown("connection reset after sending")

    def reconcile(self, post, progress):
        return None  # not found yet

    @hookimpl
    def register_publishers(self, register):
        register("looked-up", LookedUp)


def test_an_unknown_channel_the_worker_looks_up_tells_nobody_yet(mail, tmp_path, heard):
    with plugin_registered(LookedUp()):
        mail.add_channel("web", "looked-up", by="admin")
        item = item_ready_to_post(mail, text="Selamat",
                                  media=[sample_image(tmp_path / "p.png")], channels=["web"])
        mail.post(item.id, by="rina")
    pub = mail.publications(item.id)["web"]
    assert pub.state == "unknown"
    assert pub.next_attempt_at is not None  # the worker will ask the platform
    assert "channel_unknown" not in heard.kinds()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the CLI runs on the file
def test_check_sla_prints_an_expiring_credential_in_the_offices_time(store_url, office, clock):
    with plugin_registered(Expiring()):
        office.credentials = EnvironmentSource({"HF_X_TOKEN": "t" * 24})
        office.add_channel("x", "expiring", credentials={"access_token": "HF_X_TOKEN"},
                           by="admin")
        Expiring.expires = clock() + dt.timedelta(days=2)
        office.check_channels()
        run = CliRunner().invoke(cli, ["--db", office.location, "--lang", "en", "check-sla"],
                                 obj={"clock": clock, "environ": {"HF_X_TOKEN": "t" * 24}})
    assert run.exit_code == 0, run.output
    local = Expiring.expires.astimezone(dt.timezone(dt.timedelta(hours=7)))
    assert f"{local:%Y-%m-%d %H:%M:%S} WIB" in run.output
    assert "x (expiring): WARNING the credential 'access_token' (HF_X_TOKEN) expires" \
        in run.output
    again = CliRunner().invoke(cli, ["--db", office.location, "--lang", "en", "check-sla"],
                               obj={"clock": clock, "environ": {}})
    assert "WARNING" not in again.output  # once as it nears


def test_a_hook_wrapper_still_wraps_the_other_implementations(office, tmp_path, heard):
    seen = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def transition_done(self, office, item, event):
            seen.append(("before", event.action))
            result = yield
            seen.append(("after", event.action))
            return result

    item = to_approval(office, tmp_path)
    with plugin_registered(Wrapper()):
        office.reject(item.id, by="budi", reason="Belum sesuai")
    assert seen == [("before", "reject"), ("after", "reject")]
    assert heard.kinds() == ["rejected"]  # the notices plugin ran inside the wrapper


def test_nobody_is_looked_up_for_a_notice_nobody_would_hear(office, image, monkeypatch):
    """With no mail and no ``notify`` plugin but humasflow's own, a posted item reads
    no actors for its notice; an app's ``notify`` plugin gets the recipients."""
    from humasflow import notices

    item = item_ready_to_post(office, text="Selamat Dies Natalis!", media=[image])
    looked_up = []
    actors = office.actors
    monkeypatch.setattr(office, "actors", lambda: looked_up.append(1) or actors())
    assert notices._recipients(office, ["rina"], roles=["coordinator"]) == ()
    office.post(item.id, by="rina")
    assert looked_up == []

    with plugin_registered(Heard()) as plugin:
        told = notices._recipients(office, ["rina"])
        assert [a.id for a in told] == ["rina"]
        assert looked_up == [1]
        office.post(item_ready_to_post(office, text="Wisuda", media=[image]).id, by="rina")
    assert plugin.kinds() == ["posted"]
