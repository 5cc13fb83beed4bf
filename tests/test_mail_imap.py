"""Rule: the IMAP poller processes each unread reply exactly once, whatever number of
pollers read the mailbox and wherever one of them stops, and moves it out of the way.

The server is a real dovecot started for the test on a free loopback port, with its own
configuration, mailboxes and passwd-file user in a temporary folder.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from humasflow.errors import MailError
from humasflow.mail import MailSettings, MemoryTransport
from humasflow.mail.imap import IMAPPoller
from humasflow.office import Office
from humasflow.storage.store import Store

from .test_mail_answers import SECRET, reply, to_approval, token_for

USER, PASSWORD = "humas", "imap-test-password"


def _dovecot() -> str:
    found = shutil.which("dovecot") or ("/usr/sbin/dovecot"
                                        if os.access("/usr/sbin/dovecot", os.X_OK) else None)
    if found is None:
        message = ("dovecot is not installed (Debian: apt-get install dovecot-imapd); "
                   ".ci/run installs it")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def imap_server() -> Iterator[MailSettings]:
    """A dovecot of its own: plain IMAP on loopback, one passwd-file user."""
    binary = _dovecot()
    root = Path(tempfile.mkdtemp(prefix="hf-dovecot-"))
    root.chmod(0o755)  # dovecot's own processes read below it
    port = _free_port()
    me = pwd.getpwuid(os.getuid())
    if os.getuid() == 0:
        # Dovecot's login processes never run as root: use its own accounts, as the
        # package makes them.
        login, internal = "dovenull", "dovecot"
        mail_user = pwd.getpwnam("dovecot")
        group = "dovecot"
    else:
        login = internal = me.pw_name
        mail_user = me
        group = str(me.pw_gid)
    (root / "mail").mkdir()
    os.chown(root / "mail", mail_user.pw_uid, mail_user.pw_gid)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    conf = root / "dovecot.conf"
    conf.write_text(f"""
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
namespace inbox {{
  inbox = yes
  separator = /
}}
first_valid_uid = 1
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
""")
    process = subprocess.Popen([binary, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = root / "dovecot.log"
                    raise RuntimeError("dovecot did not start: " + (
                        log.read_text() if log.exists() else "")) from None
                time.sleep(0.1)
        yield MailSettings(sender="humas@example.ac.id", imap_host="127.0.0.1",
                           imap_port=port, imap_security="none", imap_username=USER,
                           done_folder="humasflow/done", timeout=10)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
        shutil.rmtree(root, ignore_errors=True)


def mailbox(settings: MailSettings) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", settings.imap_port_or_default)
    imap.login(USER, PASSWORD)
    return imap


def deliver(settings: MailSettings, *messages: bytes) -> None:
    imap = mailbox(settings)
    try:
        for raw in messages:
            assert imap.append("INBOX", None, None, raw)[0] == "OK"
    finally:
        imap.logout()


def count(settings: MailSettings, folder: str, criteria: str = "ALL") -> int:
    imap = mailbox(settings)
    try:
        imap.select(f'"{folder}"')
        _status, data = imap.search(None, criteria)
        return len(data[0].split()) if data and data[0] else 0
    finally:
        imap.logout()


def message_ids(settings: MailSettings, folder: str) -> set[str]:
    imap = mailbox(settings)
    try:
        imap.select(f'"{folder}"')
        _status, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        return {part[1].decode().split(":", 1)[1].strip() for part in data
                if isinstance(part, tuple)}
    finally:
        imap.logout()


def poller(office, settings, transport=None):
    return IMAPPoller(office, settings, password=PASSWORD, secret=SECRET,
                      transport=transport or MemoryTransport())


def test_unread_replies_are_answered_and_moved_to_the_done_folder(office, image,
                                                                   imap_server):
    item = to_approval(office, image)
    other = to_approval(office, image)
    deliver(imap_server, reply(token_for(office, item), mid="<a@example.ac.id>"),
            reply(None, mid="<b@example.ac.id>"),
            reply(token_for(office, other), "TOLAK judul salah", mid="<c@example.ac.id>"))
    sent = MemoryTransport()
    outcomes = poller(office, imap_server, sent).poll_once()
    assert sorted(o.reason for o in outcomes) == ["accepted", "accepted", "no_token"]
    assert office.item(item.id).state == "produce"
    assert office.history(other.id)[-1].action == "reject"
    assert len(sent.sent) == 3
    assert count(imap_server, "INBOX") == 0
    assert count(imap_server, "humasflow/done") == 3
    assert poller(office, imap_server).poll_once() == []  # nothing left unread


def test_without_a_done_folder_replies_are_marked_seen(office, image, imap_server):
    import attrs

    item = to_approval(office, image)
    deliver(imap_server, reply(token_for(office, item)))
    settings = attrs.evolve(imap_server, done_folder="")
    [outcome] = poller(office, settings).poll_once()
    assert outcome.accepted
    assert count(settings, "INBOX") == 1
    assert count(settings, "INBOX", "UNSEEN") == 0


def test_a_poller_that_stopped_mid_message_leaves_it_to_the_next_run(office, image,
                                                                      imap_server):
    item = to_approval(office, image)
    raw = reply(token_for(office, item), mid="<crash@example.ac.id>")
    deliver(imap_server, raw)
    # The answer was recorded but the poller died before it moved the message.
    from humasflow.mail.answers import process_message

    assert process_message(office, raw, settings=imap_server, secret=SECRET,
                           transport=None).accepted
    assert count(imap_server, "INBOX", "UNSEEN") == 1
    [again] = poller(office, imap_server).poll_once()
    assert again.status == "duplicate"
    assert [e.action for e in office.history(item.id)].count("approve") == 1
    assert count(imap_server, "INBOX") == 0


def test_two_pollers_at_once_process_each_reply_once(office, image, imap_server, store_url,
                                                     clock):
    items = [to_approval(office, image) for _ in range(4)]
    deliver(imap_server, *[reply(token_for(office, i), mid=f"<two{i.id}@example.ac.id>")
                           for i in items])
    results: list = []
    errors: list = []
    barrier = threading.Barrier(2)
    media = office.media.root if hasattr(office.media, "root") else None

    def run():
        store = Store(store_url)
        try:
            mine = Office(store, clock=clock, environ={}, media_store=media)
            barrier.wait(timeout=30)
            results.extend(o.status for o in poller(mine, imap_server).poll_once())
        except Exception as exc:  # reported below, with the other thread's results
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results.count("accepted") == 4
    assert set(results) <= {"accepted", "duplicate"}
    for i in items:
        assert [e.action for e in office.history(i.id)].count("approve") == 1
    assert count(imap_server, "INBOX") == 0
    # Both may move a message at the same moment, and the server may then keep two
    # copies of it: the mailbox keeps every reply, the record applies each once.
    assert message_ids(imap_server, "humasflow/done") == {
        f"<two{i.id}@example.ac.id>" for i in items}


def test_a_wrong_password_is_a_clear_mail_error(office, imap_server):
    bad = IMAPPoller(office, imap_server, password="nope", secret=SECRET, transport=None)
    with pytest.raises(MailError, match="refused the login of humas"):
        bad.poll_once()


def test_an_unreachable_server_is_a_clear_mail_error(office):
    settings = MailSettings(imap_host="127.0.0.1", imap_port=_free_port(),
                            imap_security="none", imap_username=USER, timeout=2)
    with pytest.raises(MailError, match="cannot reach the IMAP server"):
        poller(office, settings).poll_once()


def test_run_keeps_polling_until_stopped(office, image, imap_server):
    item = to_approval(office, image)
    deliver(imap_server, reply(token_for(office, item)))
    stop = threading.Event()
    seen: list = []

    def on_outcome(outcome):
        seen.append(outcome.reason)
        stop.set()

    thread = threading.Thread(target=poller(office, imap_server).run,
                              kwargs={"interval": 0.1, "stop": stop,
                                      "on_outcome": on_outcome})
    thread.start()
    thread.join(timeout=60)
    stop.set()
    assert not thread.is_alive()
    assert seen == ["accepted"]


def test_humasflow_mail_poll_once_reads_the_configured_mailbox(tmp_path, imap_server):
    from click.testing import CliRunner

    from humasflow.cli import cli
    from humasflow.testing import sample_image, staffed_office

    db = tmp_path / "humasflow.db"
    office = Office(str(db), environ={})
    try:
        office.establish(by="Dekan")
        staffed_office(office)
        office.add_channel("outbox", "outbox", settings={"path": str(tmp_path / "out")},
                           by="admin")
        item = to_approval(office, sample_image(tmp_path / "poster.png"))
        deliver(imap_server, reply(token_for(office, item), mid="<cli@example.ac.id>"))
        config = tmp_path / "humasflow.toml"
        config.write_text(
            f'store = "{db}"\n[mail]\nsender = "humas@example.ac.id"\n'
            f'imap_host = "127.0.0.1"\nimap_port = {imap_server.imap_port}\n'
            f'imap_security = "none"\nimap_username = "{USER}"\n')
        env = {"HUMASFLOW_MAIL_SECRET": SECRET.decode(), "HUMASFLOW_MAIL_PASSWORD": PASSWORD}
        runner = CliRunner()
        result = runner.invoke(cli, ["--config", str(config), "--lang", "en", "mail", "poll",
                                     "--once"], env=env)
        assert result.exit_code == 0, result.output
        assert f"<cli@example.ac.id> from budi@example.ac.id: item {item.id} approved" \
            in result.output
        assert office.item(item.id).state == "produce"
        again = runner.invoke(cli, ["--config", str(config), "--lang", "en", "mail", "poll",
                                    "--once"], env=env)
        assert "No unread replies in INBOX" in again.output
    finally:
        office.close()
