"""Rule: mail is queued in the transaction of what it reports, composed when it is sent
in the recipient's language, sent once whatever number of senders run, retried with a
growing wait when it fails, and never undoes or blocks what was recorded."""

from __future__ import annotations

import datetime as dt
import threading
from email.message import EmailMessage

import pytest

from humasflow import i18n
from humasflow.errors import ConfigurationError, MailError
from humasflow.i18n import _
from humasflow.mail import MailSettings, MemoryTransport
from humasflow.mail.compose import composer, register_composer
from humasflow.mail.queue import BACKOFF, MAX_ATTEMPTS, backoff
from humasflow.office import Office

SETTINGS = MailSettings(sender="humas@example.ac.id", language="id")
ENV = {"HUMASFLOW_MAIL_SECRET": "s" * 40}


class Failing:
    """A transport that fails the first ``times`` sends, then keeps them."""

    def __init__(self, times: int = 10**6, *, permanent: bool = False) -> None:
        self.times, self.permanent, self.sent = times, permanent, []

    def send(self, message: EmailMessage) -> None:
        if self.times > 0:
            self.times -= 1
            raise MailError("the mail server said 451 try later, password=hunter2",
                            permanent=self.permanent)
        self.sent.append(message)


def _note(office, item, recipient, language, data, settings, secret):
    if data.get("drop"):
        return None
    message = EmailMessage()
    message["Subject"] = f"{language}: {_('Item')} {data.get('n', '')}"
    message.set_content(f"hello {recipient.name}")
    return message


register_composer("test_note", _note)


@pytest.fixture
def mailing(office, store, clock, tmp_path):
    """The test office's organisation, as an office that sends mail to a memory."""
    def make(transport=None, settings=SETTINGS, environ=ENV):
        media = tmp_path / "media-store" if store.is_postgres else None
        return Office(store, clock=clock, environ=environ, media_store=media,
                      mail=settings, mail_transport=transport or MemoryTransport())
    return make


def test_an_office_without_mail_queues_nothing(office):
    assert not office.mail_enabled
    assert office.queue_mail("test_note", to=["budi"]) == 0
    assert office.mail_queue() == []


def test_one_row_per_active_recipient_with_an_address(mailing, office):
    mail = mailing()
    office.add_actor("nomail", "No Mail", roles=["coordinator"], by="admin")
    office.add_actor("gone", "Gone", email="gone@example.ac.id", roles=["staff"], by="admin")
    office.deactivate_actor("gone", by="admin")
    assert mail.queue_mail("test_note", to=["budi", "rina", "budi", "nomail", "gone",
                                            "nobody"], data={"n": 1}) == 2
    rows = mail.mail_queue()
    assert [(r.recipient, r.address, r.status, r.attempts, r.data) for r in rows] == [
        ("rina", "rina@example.ac.id", "queued", 0, {"n": 1}),
        ("budi", "budi@example.ac.id", "queued", 0, {"n": 1})]


def test_queued_in_the_callers_transaction_only_if_it_commits(mailing, store):
    mail = mailing()
    def failing():
        with store.writing() as conn:
            assert mail.queue_mail("test_note", to=["budi"], conn=conn) == 1
            raise RuntimeError("the action failed")

    with pytest.raises(RuntimeError):
        failing()
    assert mail.mail_queue() == []
    with store.writing() as conn:
        mail.queue_mail("test_note", to=["budi"], conn=conn)
    assert len(mail.mail_queue()) == 1


def test_sent_in_the_recipients_language_with_the_headers_filled(mailing, office):
    transport = MemoryTransport()
    mail = mailing(transport)
    office.add_actor("ayu", "Ayu", email="ayu@example.ac.id", roles=["staff"], by="admin",
                     language="en")
    mail.queue_mail("test_note", to=["budi", "ayu"])
    # The language is the one the recipient has when the message is sent.
    office.add_actor("budi", "Budi Santoso", email="budi@example.ac.id",
                     roles=["coordinator"], by="admin", language="en")
    office.add_actor("ayu", "Ayu", email="ayu@example.ac.id", roles=["staff"], by="admin",
                     language="id")
    done = mail.send_mail()
    assert [r.status for r in done] == ["sent", "sent"]
    by_to = {m["To"]: m for m in transport.sent}
    assert by_to["budi@example.ac.id"]["Subject"].startswith("en:")
    assert by_to["ayu@example.ac.id"]["Subject"].startswith("id:")
    for message in transport.sent:
        assert message["From"] == "humas@example.ac.id"
        assert message["Date"]
        assert message["Message-ID"].endswith("@example.ac.id>")
    assert {r.message_id for r in mail.mail_queue(status="sent")} == {
        m["Message-ID"] for m in transport.sent}
    assert mail.send_mail() == []  # nothing is due any more


def test_a_language_of_the_actor_is_checked_and_kept(office):
    with pytest.raises(ValueError, match="language 'fr'"):
        office.add_actor("x", "X", roles=["staff"], by="admin", language="fr")
    office.add_actor("x", "X", roles=["staff"], by="admin", language="en")
    office.add_actor("x", "X Y", roles=["staff"], by="admin")  # not named: kept
    assert office.actor("x").language == "en"
    assert office.verify().ok


def test_a_failure_is_retried_with_a_growing_wait_and_shown(mailing, clock):
    transport = Failing(times=2)
    mail = mailing(transport)
    mail.queue_mail("test_note", to=["budi"])
    start = clock()
    [row] = mail.send_mail()
    assert (row.status, row.attempts) == ("queued", 1)
    assert row.next_attempt_at == start + BACKOFF[0]
    assert "451" in row.last_error
    assert "hunter2" not in row.last_error
    assert mail.send_mail() == []  # not due yet
    clock.advance(BACKOFF[0])
    [row] = mail.send_mail()
    assert (row.status, row.attempts) == ("queued", 2)
    assert row.next_attempt_at == clock() + BACKOFF[1]
    clock.advance(BACKOFF[1])
    [row] = mail.send_mail()
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)
    assert len(transport.sent) == 1
    assert [backoff(n) for n in (1, 2, 3, 4, 99)] == [
        BACKOFF[0], BACKOFF[1], BACKOFF[2], BACKOFF[3], BACKOFF[-1]]


def test_a_permanent_refusal_or_too_many_failures_give_up(mailing, clock):
    mail = mailing(Failing(permanent=True))
    mail.queue_mail("test_note", to=["budi"])
    [row] = mail.send_mail()
    assert (row.status, row.attempts) == ("failed", 1)
    again = mailing(Failing())
    again.queue_mail("test_note", to=["rina"])
    for _n in range(MAX_ATTEMPTS):
        clock.advance(dt.timedelta(days=1))
        [row] = again.send_mail()
    assert (row.status, row.attempts) == ("failed", MAX_ATTEMPTS)
    clock.advance(dt.timedelta(days=1))
    assert again.send_mail() == []
    assert {r.status for r in again.mail_queue()} == {"failed"}


def test_a_composer_saying_none_makes_the_row_obsolete(mailing):
    transport = MemoryTransport()
    mail = mailing(transport)
    mail.queue_mail("test_note", to=["budi"], data={"drop": True})
    [row] = mail.send_mail()
    assert row.status == "obsolete"
    assert transport.sent == []


def test_an_unknown_kind_fails_and_a_broken_composer_is_retried(mailing):
    mail = mailing()
    mail.queue_mail("no_such_kind", to=["budi"])

    def broken(*args):
        raise KeyError("oops")

    register_composer("test_broken", broken)
    mail.queue_mail("test_broken", to=["budi"])
    done = {r.kind: r for r in mail.send_mail()}
    assert done["no_such_kind"].status == "failed"
    assert "no_such_kind" in done["no_such_kind"].last_error
    assert (done["test_broken"].status, done["test_broken"].attempts) == ("queued", 1)
    assert composer("approval_request") is not None


def test_a_sender_needs_a_transport(store, clock, office):
    plain = Office(store, clock=clock, environ=ENV, mail=SETTINGS,
                   media_store=office.media)
    plain.queue_mail("test_note", to=["budi"])
    with pytest.raises(ConfigurationError, match=r"mail\.host"):
        plain.send_mail()
    with pytest.raises(ValueError, match="mail status"):
        plain.mail_queue(status="lost")


class Slow(MemoryTransport):
    def send(self, message: EmailMessage) -> None:
        threading.Event().wait(0.01)
        super().send(message)


def test_two_senders_at_once_send_each_row_once(mailing, store_url, clock, office):
    from humasflow.storage.store import Store

    transport = Slow()
    first = mailing(transport)
    # The second has a store of its own, as another process or server would.
    second = Office(Store(store_url), clock=clock, environ=ENV, media_store=office.media,
                    mail=SETTINGS, mail_transport=transport)
    for n in range(20):
        first.queue_mail("test_note", to=["budi", "rina"], data={"n": n})
    barrier = threading.Barrier(2)
    results: dict[int, list] = {}

    def run(which, office):
        barrier.wait()
        results[which] = office.send_mail(limit=100)

    threads = [threading.Thread(target=run, args=(i, o))
               for i, o in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [r.id for found in results.values() for r in found]
    assert len(ids) == len(set(ids)) == 40
    assert len(transport.sent) == 40
    assert {r.status for r in first.mail_queue(limit=100)} == {"sent"}
    assert results[0]
    assert results[1]  # both took part
    second.close()


def test_a_crashed_senders_rows_are_sent_after_its_claim_runs_out(mailing, store, clock):
    from humasflow.mail.queue import CLAIM

    transport = MemoryTransport()
    mail = mailing(transport)
    mail.queue_mail("test_note", to=["budi"])
    [row] = mail.mail_queue()
    assert store.claim_mail(row.id, 0, clock(), clock() + CLAIM)  # then the sender died
    assert mail.send_mail() == []
    assert mail.mail_queue()[0].status == "sending"
    clock.advance(CLAIM)
    [row] = mail.send_mail()
    assert row.status == "sent"
    assert len(transport.sent) == 1


def test_composed_inside_the_recipients_language(mailing):
    seen = []

    def spy(office, item, recipient, language, data, settings, secret):
        seen.append((language, i18n.language(), secret))
        return None

    register_composer("test_spy", spy)
    mail = mailing()
    mail.queue_mail("test_spy", to=["budi"])
    mail.send_mail()
    assert seen == [("id", "id", b"s" * 40)]


def test_a_store_before_migration_10_gets_the_queue_and_still_verifies(office, store,
                                                                       store_url, clock):
    import sqlalchemy as sa

    from humasflow.storage import schema as t
    from humasflow.storage.store import Store

    office.add_actor("ayu", "Ayu", email="ayu@example.ac.id", roles=["staff"], by="admin")
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE mail_queue"))
        conn.execute(sa.text("ALTER TABLE actors DROP COLUMN language"))
        conn.execute(t.schema_migrations.delete().where(t.schema_migrations.c.version >= 10))
    migrated = Office(Store(store_url), clock=clock, environ={}, mail=SETTINGS,
                      mail_transport=MemoryTransport(), media_store=office.media)
    try:
        assert migrated.schema_version == t.MIGRATIONS[-1][0]
        assert migrated.actor("ayu").language is None
        assert migrated.verify().ok  # the new column of the old rows is explained
        baseline = [e for e in migrated.events("org") if e.action == "baseline"]
        assert len(baseline) == 1
        migrated.add_actor("ayu", "Ayu", email="ayu@example.ac.id", roles=["staff"],
                           by="admin", language="en")
        assert migrated.queue_mail("test_note", to=["ayu"]) == 1
        assert migrated.verify().ok
    finally:
        migrated.close()


def test_an_apps_transport_comes_from_open_or_from_the_hook(tmp_path, clock):
    import humasflow
    from humasflow.hookspecs import hookimpl
    from humasflow.testing import plugin_registered, staffed_office

    given = MemoryTransport()
    with humasflow.open(str(tmp_path / "a.db"), clock=clock, environ=ENV,
                        mail_transport=given) as office:
        staffed_office(office)
        assert office.mail_enabled
        assert office.mail_transport is given
        office.queue_mail("test_note", to=["budi"])
        assert [r.status for r in office.send_mail()] == ["sent"]
        assert given.sent[0]["From"] is None  # no sender configured: the app's to set
        assert office.for_org("other").mail_transport is given

    hooked = MemoryTransport()

    class AppMail:
        @hookimpl
        def mail_transport(self, office):
            return hooked

    with plugin_registered(AppMail()), humasflow.open(str(tmp_path / "b.db"), clock=clock,
                                                     environ=ENV) as office:
        staffed_office(office)
        assert office.mail_enabled  # the hook alone turns mail on
        office.queue_mail("test_note", to=["budi"])
        office.send_mail()
        assert len(hooked.sent) == 1


def test_the_command_sets_an_actors_mail_language(tmp_path):
    from click.testing import CliRunner

    from humasflow.cli import cli

    db = str(tmp_path / "c.db")
    runner = CliRunner()
    assert runner.invoke(cli, ["--db", db, "init", "--admin", "admin", "--name", "A"],
                         env={}).exit_code == 0
    added = runner.invoke(cli, ["--db", db, "--lang", "en", "actor", "add", "budi", "--name",
                                "Budi", "--email", "budi@example.ac.id", "--role",
                                "coordinator", "--mail-language", "en", "--as", "admin"],
                          env={})
    assert added.exit_code == 0, added.output
    wrong = runner.invoke(cli, ["--db", db, "--lang", "en", "actor", "add", "budi", "--name",
                                "Budi", "--role", "coordinator", "--mail-language", "fr",
                                "--as", "admin"], env={})
    assert wrong.exit_code == 2
    assert "fr" in wrong.output
    with Office(db, environ={}) as office:
        assert office.actor("budi").language == "en"
