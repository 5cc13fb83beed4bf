"""Credential sources, and credentials that rotate.

Rules checked here: an office reads its channels' credentials through one credential
source (the environment by default, ``environ=`` as before, a secrets file, or an app's
vault through the ``credential_source`` hook); a secrets file is refused unless only its
owner can read it, and the refusal says ``chmod 600 FILE``; a renewed credential a
publisher hands back is written to a writable source (atomically, the file kept private,
its other lines kept) and otherwise kept for the process with a warning to update the
environment; every rotation and reported expiry time is recorded without the value, and
``credential_warnings()`` and ``humasflow channels check`` warn before a credential
expires.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

import humasflow
from humasflow import Office
from humasflow.cli import cli
from humasflow.credentials import (
    CredentialWarning,
    EnvironmentSource,
    SecretsFile,
    check_channel_config,
)
from humasflow.errors import ConfigurationError, CredentialSourceError
from humasflow.hookspecs import hookimpl
from humasflow.publishing.contract import PublisherContext, Receipt
from humasflow.storage.store import Store
from humasflow.testing import item_ready_to_post, plugin_registered

OLD = "hf-old-Token-0001-abcdef"
NEW = "hf-new-Token-0002-uvwxyz"
H = dt.timedelta(hours=1)


class RotatingPublisher:
    def __init__(self, plugin: Rotating, channel: Any, context: PublisherContext) -> None:
        plugin.writable.append(context.credentials_writable)
        self.plugin = plugin
        self.channel = channel.name
        self.context = context

    def validate(self, post):
        return []

    def publish(self, post, progress):
        self.plugin.seen.append(dict(self.context.credentials))
        if self.plugin.renew is not None:
            self.context.refresh_credential("access_token", self.plugin.renew,
                                            expires_at=self.plugin.expires)
            self.plugin.after.append(dict(self.context.credentials))
        return Receipt(platform_id=f"p{len(self.plugin.seen)}", url="https://x.example/p")

    def check(self):
        self.plugin.seen.append(dict(self.context.credentials))
        expires = self.plugin.by_channel.get(self.channel, self.plugin.expires)
        if expires is not None:
            self.context.credential_expires("access_token", expires)


class Rotating:
    """Registers the publisher ``rotating``: it records the credentials it was given and
    renews ``access_token`` when told to."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.after: list[dict[str, str]] = []
        self.writable: list[bool] = []
        self.renew: str | None = None
        self.expires: dt.datetime | None = None
        self.by_channel: dict[str, dt.datetime] = {}

    @hookimpl
    def register_publishers(self, register):
        register("rotating", lambda channel, context: RotatingPublisher(self, channel, context))


@pytest.fixture
def rotating():
    plugin = Rotating()
    with plugin_registered(plugin):
        yield plugin


def secrets_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "secrets.toml"
    path.write_text(text, "utf-8")
    path.chmod(mode)
    return path


def org_events(office: Office, action: str) -> list[Any]:
    return [e for e in office._store.events(office.org, "org") if e.action == action]


def raw_rows(office: Office) -> str:
    with office._store.engine.connect() as conn:
        rows = [*conn.execute(sa.text("SELECT * FROM events")),
                *conn.execute(sa.text("SELECT * FROM credential_expiries")),
                *conn.execute(sa.text("SELECT * FROM channels"))]
    return "\n".join(repr(tuple(r)) for r in rows)


def add_x(office: Office) -> None:
    office.add_channel("x", "rotating", credentials={"access_token": "HF_X_ACCESS_TOKEN"},
                       by="admin")


def invoke(args, *, clock, env=None, obj=None) -> Any:
    return CliRunner().invoke(cli, args, env=env, obj={"clock": clock, **(obj or {})})


# -- the secrets file -------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_a_secrets_file_others_can_read_or_change_is_refused(tmp_path, mode):
    path = secrets_file(tmp_path, f'HF_X_ACCESS_TOKEN = "{OLD}"\n', mode)
    with pytest.raises(CredentialSourceError) as caught:
        SecretsFile(path)
    assert f"chmod 600 {path}" in str(caught.value)
    assert f"(mode {mode:03o})" in str(caught.value)
    assert OLD not in str(caught.value)


def test_a_secrets_file_made_unsafe_later_is_refused_at_the_next_read(tmp_path):
    path = secrets_file(tmp_path, f'HF_X_ACCESS_TOKEN = "{OLD}"\n')
    source = SecretsFile(path)
    assert source.get("HF_X_ACCESS_TOKEN") == OLD
    path.chmod(0o644)
    with pytest.raises(CredentialSourceError, match="chmod 600"):
        source.get("HF_X_ACCESS_TOKEN")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="changing a file's owner needs root")
def test_a_secrets_file_of_another_user_is_refused(tmp_path):
    path = secrets_file(tmp_path, f'HF_X_ACCESS_TOKEN = "{OLD}"\n')
    os.chown(path, 65534, -1)
    with pytest.raises(CredentialSourceError) as caught:
        SecretsFile(path)
    assert "belongs to user id 65534" in str(caught.value)
    assert f"chmod 600 {path}" in str(caught.value)


@pytest.mark.parametrize(("text", "problem"), [
    ('HF_X = "unterminated\n', "is not valid TOML"),
    ("HF_X = 42\n", "HF_X is not a string"),
    ('[x]\nHF_X = "a"\n', "x is not a string"),
])
def test_a_secrets_file_that_is_not_a_flat_table_of_strings_is_refused(tmp_path, text,
                                                                       problem):
    with pytest.raises(CredentialSourceError, match=problem) as caught:
        SecretsFile(secrets_file(tmp_path, text))
    assert "unterminated" not in str(caught.value)


def test_a_missing_secrets_file_says_how_to_make_one(tmp_path):
    with pytest.raises(CredentialSourceError, match=r"no such file.*chmod 600"):
        SecretsFile(tmp_path / "nope.toml")
    with pytest.raises(CredentialSourceError, match="not a regular file"):
        SecretsFile(tmp_path)


def test_a_secrets_file_is_read_again_when_it_changes(tmp_path):
    path = secrets_file(tmp_path, f'# the faculty\'s X account\nHF_X_ACCESS_TOKEN = "{OLD}"\n')
    source = SecretsFile(path)
    assert (source.get("HF_X_ACCESS_TOKEN"), source.get("OTHER")) == (OLD, None)
    path.write_text(f'HF_X_ACCESS_TOKEN = "{NEW}"\nOTHER = "o-1"\n', "utf-8")
    assert (source.get("HF_X_ACCESS_TOKEN"), source.get("OTHER")) == (NEW, "o-1")
    assert OLD not in repr(source)


def test_put_rewrites_the_file_atomically_keeping_it_private_and_its_other_lines(tmp_path):
    text = f'# X (faculty account)\nHF_X_ACCESS_TOKEN = "{OLD}"   # renewed by humasflow\n' \
           'HF_IG_TOKEN = "ig-token-1"\n'
    path = secrets_file(tmp_path, text)
    inode = path.stat().st_ino
    source = SecretsFile(path)
    source.put("HF_X_ACCESS_TOKEN", NEW)
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    source.put("HF_FB_TOKEN", 'fb "quoted" \\ value\x7f')
    assert path.read_text("utf-8").splitlines() == [
        "# X (faculty account)", f'HF_X_ACCESS_TOKEN = "{NEW}"', 'HF_IG_TOKEN = "ig-token-1"',
        'HF_FB_TOKEN = "fb \\"quoted\\" \\\\ value\\u007f"']
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SecretsFile(path).get("HF_FB_TOKEN") == 'fb "quoted" \\ value\x7f'
    assert sorted(p.name for p in tmp_path.iterdir()) == [".secrets.toml.lock", "secrets.toml"]


def test_put_follows_a_layout_the_line_edit_cannot(tmp_path):
    path = secrets_file(tmp_path, f'HF_X_ACCESS_TOKEN = """\n{OLD}"""\nB = "b"\n')
    source = SecretsFile(path)
    source.put("HF_X_ACCESS_TOKEN", NEW)
    assert (source.get("HF_X_ACCESS_TOKEN"), source.get("B")) == (NEW, "b")


def test_concurrent_puts_lose_no_update(tmp_path):
    path = secrets_file(tmp_path, "")
    sources = [SecretsFile(path) for _ in range(4)]
    threads = [threading.Thread(target=lambda s=s, n=n: [s.put(f"K{n}_{i}", f"value-{n}-{i}")
                                                         for i in range(5)])
               for n, s in enumerate(sources)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = SecretsFile(path)
    assert all(final.get(f"K{n}_{i}") == f"value-{n}-{i}" for n in range(4) for i in range(5))


def test_the_environment_is_not_writable():
    source = EnvironmentSource({"HF_X": OLD})
    with pytest.raises(CredentialSourceError, match="set the environment variable HF_X"):
        source.put("HF_X", NEW)


# -- the office reads through its source --------------------------------------------------


def test_posting_reads_the_credentials_from_the_secrets_file(office, store, clock, tmp_path,
                                                             rotating, image):
    path = secrets_file(tmp_path, f'HF_X_ACCESS_TOKEN = "{OLD}"\n')
    posting = Office(store, clock=clock, credentials=SecretsFile(path))
    add_x(posting)
    item = item_ready_to_post(posting, text="Dies Natalis", media=[image], channels=["x"])
    assert posting.post(item.id, by="rina").done
    assert rotating.seen == [{"access_token": OLD}]


def test_a_credential_the_file_lacks_is_named_with_the_file(office, store, clock, tmp_path,
                                                           rotating, image):
    path = secrets_file(tmp_path, 'OTHER = "x"\n')
    posting = Office(store, clock=clock, credentials=str(path))
    add_x(posting)
    item = item_ready_to_post(posting, text="Dies Natalis", media=[image], channels=["x"])
    pub = posting.post(item.id, by="rina").publications["x"]
    assert (pub.state, pub.error_class) == ("failed", "CredentialMissing")
    assert pub.error_message == (f"channel 'x' needs the credential HF_X_ACCESS_TOKEN, which "
                                 f"the secrets file {path} does not hold; add it there")


def test_an_unreadable_file_does_not_stop_validation(office, store, clock, tmp_path, rotating,
                                                     image):
    path = secrets_file(tmp_path, f'HF_X_ACCESS_TOKEN = "{OLD}"\n')
    posting = Office(store, clock=clock, credentials=SecretsFile(path))
    add_x(posting)
    path.chmod(0o644)
    item = item_ready_to_post(posting, text="Dies Natalis", media=[image], channels=["x"])
    pub = posting.post(item.id, by="rina").publications["x"]
    assert (pub.state, pub.error_class) == ("failed", "CredentialSourceError")
    assert f"chmod 600 {path}" in pub.error_message


def test_environ_still_works_and_becomes_an_environment_source(office, store, clock):
    posting = Office(store, clock=clock, environ={"HF_X_ACCESS_TOKEN": OLD})
    assert isinstance(posting.credentials, EnvironmentSource)
    assert posting.credential_value("HF_X_ACCESS_TOKEN") == OLD
    with pytest.raises(ValueError, match="not both"):
        Office(store, clock=clock, environ={}, credentials=EnvironmentSource({}))
    with pytest.raises(TypeError, match="not a credential source"):
        Office(store, clock=clock, credentials=object())  # type: ignore[arg-type]


def test_humasflow_secrets_names_the_default_file(store, clock, tmp_path, monkeypatch):
    path = secrets_file(tmp_path, f'HF_X_ACCESS_TOKEN = "{OLD}"\n')
    monkeypatch.setenv("HUMASFLOW_SECRETS", str(path))
    office = Office(store, clock=clock)
    assert isinstance(office.credentials, SecretsFile)
    assert office.credential_value("HF_X_ACCESS_TOKEN") == OLD


def test_open_takes_a_credential_source(tmp_path, clock):
    path = secrets_file(tmp_path, f'HF_X_ACCESS_TOKEN = "{OLD}"\n')
    with humasflow.open(str(tmp_path / "h.db"), clock=clock, credentials=path) as office:
        assert office.credential_value("HF_X_ACCESS_TOKEN") == OLD
    path.chmod(0o644)
    with pytest.raises(CredentialSourceError, match="chmod 600"):
        humasflow.open(str(tmp_path / "h.db"), clock=clock, credentials=path)


class Vault:
    """An app's own vault: a dict, writable."""

    writable = True
    description = "the faculty's vault"

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, reference):
        return self.values.get(reference)

    def put(self, reference, value):
        self.values[reference] = value


class VaultPlugin:
    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.asked: list[str] = []

    @hookimpl
    def credential_source(self, org):
        self.asked.append(org)
        return self.vault


def test_a_plugin_can_supply_the_credential_source(office, store, clock, rotating, image):
    vault = Vault({"HF_X_ACCESS_TOKEN": OLD})
    plugin = VaultPlugin(vault)
    with plugin_registered(plugin):
        posting = Office(store, clock=clock)
        assert posting.credentials is vault
        assert plugin.asked == ["default"]
        add_x(posting)
        item = item_ready_to_post(posting, text="Dies Natalis", media=[image], channels=["x"])
        rotating.renew = NEW
        assert posting.post(item.id, by="rina").done
    assert rotating.seen == [{"access_token": OLD}]
    assert vault.values == {"HF_X_ACCESS_TOKEN": NEW}
    assert org_events(posting, "credential_rotated")[-1].data["source"] == "the faculty's vault"
    assert isinstance(Office(store, clock=clock).credentials, EnvironmentSource)


# -- rotation --------------------------------------------------------------------------


def test_a_renewed_credential_goes_to_the_secrets_file_and_into_the_record_without_value(
        office, store, clock, tmp_path, rotating, image, caplog):
    path = secrets_file(tmp_path, f'# X\nHF_X_ACCESS_TOKEN = "{OLD}"\n')
    posting = Office(store, clock=clock, credentials=SecretsFile(path))
    add_x(posting)
    item = item_ready_to_post(posting, text="Dies Natalis", media=[image], channels=["x"])
    rotating.renew, rotating.expires = NEW, clock() + 2 * H
    caplog.set_level(logging.DEBUG, logger="humasflow")
    assert posting.post(item.id, by="rina").done
    assert rotating.after == [{"access_token": NEW}]  # the context holds the new value
    assert path.read_text("utf-8") == f'# X\nHF_X_ACCESS_TOKEN = "{NEW}"\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (event,) = org_events(posting, "credential_rotated")
    assert (event.actor, event.data) == ("channel:x", {
        "channel": "x", "credential": "access_token", "reference": "HF_X_ACCESS_TOKEN",
        "expires_at": (clock() + 2 * H).isoformat(), "stored": True,
        "source": f"the secrets file {path}"})
    assert posting.verify().ok
    for text in (raw_rows(posting), caplog.text):
        assert OLD not in text
        assert NEW not in text
    # The next publisher reads the renewed value from the file.
    rotating.renew = None
    second = item_ready_to_post(posting, text="Wisuda", media=[image], channels=["x"])
    posting.post(second.id, by="rina")
    assert rotating.seen[-1] == {"access_token": NEW}
    warnings = posting.credential_warnings(within=3 * H)
    assert warnings == [CredentialWarning(channel="x", credential="access_token",
                                          reference="HF_X_ACCESS_TOKEN",
                                          expires_at=clock() + 2 * H, expired=False)]


def test_a_renewed_credential_the_environment_cannot_keep_is_kept_and_the_operator_warned(
        office, store, clock, rotating, image, caplog):
    posting = Office(store, clock=clock, environ={"HF_X_ACCESS_TOKEN": OLD})
    add_x(posting)
    item = item_ready_to_post(posting, text="Dies Natalis", media=[image], channels=["x"])
    rotating.renew = NEW
    caplog.set_level(logging.WARNING, logger="humasflow")
    assert posting.post(item.id, by="rina").done
    assert ("channel 'x' renewed its credential 'access_token' (HF_X_ACCESS_TOKEN), but the "
            "environment: cannot keep a new value of HF_X_ACCESS_TOKEN: set the environment "
            "variable HF_X_ACCESS_TOKEN to the renewed credential") in caplog.text
    (event,) = org_events(posting, "credential_rotated")
    assert event.data["stored"] is False
    assert event.data["expires_at"] is None
    assert posting.credential_value("HF_X_ACCESS_TOKEN") == NEW  # this process goes on with it
    rotating.renew = None
    second = item_ready_to_post(posting, text="Wisuda", media=[image], channels=["x"])
    posting.post(second.id, by="rina")
    assert rotating.seen[-1] == {"access_token": NEW}
    for text in (raw_rows(posting), caplog.text):
        assert OLD not in text
        assert NEW not in text


def test_a_renewed_value_is_scrubbed_from_later_messages(office, store, clock, rotating, image):
    posting = Office(store, clock=clock, environ={"HF_X_ACCESS_TOKEN": OLD})
    add_x(posting)
    item = item_ready_to_post(posting, text="Dies Natalis", media=[image], channels=["x"])
    rotating.renew = NEW
    posting.post(item.id, by="rina")
    assert humasflow.scrubbing.scrub(f"refused {NEW}") == "refused [redacted]"


def test_a_publisher_may_renew_only_its_channels_credentials(clock):
    context = PublisherContext(credentials={"access_token": OLD}, channel="x", clock=clock)
    with pytest.raises(ConfigurationError, match="channel 'x' has no credential 'token'"):
        context.refresh_credential("token", NEW)
    with pytest.raises(ConfigurationError, match="is empty"):
        context.refresh_credential("access_token", "")
    with pytest.raises(ValueError, match="aware"):
        context.credential_expires("access_token", dt.datetime(2026, 3, 1))
    context.refresh_credential("access_token", NEW)  # no office: only the context changes
    assert context.credentials == {"access_token": NEW}
    assert NEW not in repr(context)


def test_a_publisher_knows_whether_a_renewed_credential_would_be_kept(
        office, store, clock, tmp_path, rotating):
    """A platform whose refresh tokens are single-use (X's OAuth 2.0) refreshes only
    where the renewed token outlives the process."""
    path = secrets_file(tmp_path, f'HF_X_ACCESS_TOKEN = "{OLD}"\n')
    for office, writable in ((Office(store, clock=clock, credentials=SecretsFile(path)), True),
                             (Office(store, clock=clock,
                                     environ={"HF_X_ACCESS_TOKEN": OLD}), False)):
        if "x" not in office.channels():
            add_x(office)
        rotating.writable.clear()
        office.check_channels()
        assert rotating.writable == [writable]
    assert PublisherContext().credentials_writable is False


# -- expiry times ----------------------------------------------------------------------


def test_reported_expiry_times_are_kept_and_recorded_once(office, rotating, clock):
    add_x(office)
    office.credentials = EnvironmentSource({"HF_X_ACCESS_TOKEN": OLD})
    rotating.expires = clock() + dt.timedelta(days=60, microseconds=5)
    assert office.check_channels()["x"] is None
    assert office.check_channels()["x"] is None  # the same expiry: nothing new to record
    (event,) = org_events(office, "credential_expiry")
    assert event.data == {"channel": "x", "credential": "access_token",
                          "reference": "HF_X_ACCESS_TOKEN",
                          "expires_at": (clock() + dt.timedelta(days=60)).isoformat()}
    assert office.credential_warnings() == []
    assert [w.expired for w in office.credential_warnings(within=dt.timedelta(days=61))] == [
        False]
    clock.advance(days=61)
    (warning,) = office.credential_warnings()
    assert warning.expired
    assert str(warning) == ("channel 'x': the credential 'access_token' (HF_X_ACCESS_TOKEN) "
                            "expired at 2026-03-06T02:00+00:00; renew it, then post again")
    rotating.expires = clock() + dt.timedelta(days=60)
    office.check_channels()
    assert len(org_events(office, "credential_expiry")) == 2
    assert office.credential_warnings() == []
    assert office.verify().ok
    assert OLD not in raw_rows(office)


def test_channels_sharing_a_reference_share_its_expiry(office, rotating, clock):
    add_x(office)
    office.add_channel("x2", "rotating", credentials={"access_token": "HF_X_ACCESS_TOKEN"},
                       by="admin")
    office.credentials = EnvironmentSource({"HF_X_ACCESS_TOKEN": OLD})
    rotating.expires = clock() + H
    office.check_channels()
    assert [w.channel for w in office.credential_warnings()] == ["x", "x2"]


def test_an_expiry_record_survives_reopening_the_store(office, store_url, rotating, clock):
    add_x(office)
    office.credentials = EnvironmentSource({"HF_X_ACCESS_TOKEN": OLD})
    rotating.expires = clock() + H
    office.check_channels()
    again = Store(store_url)
    try:
        reopened = Office(again, clock=clock, environ={})
        assert [w.reference for w in reopened.credential_warnings()] == ["HF_X_ACCESS_TOKEN"]
    finally:
        again.close()


# -- the command line ------------------------------------------------------------------


@pytest.fixture
def db(tmp_path, clock):
    target = tmp_path / "humasflow.db"
    result = invoke(["--db", str(target), "init", "--admin", "admin", "--name", "Admin"],
                    clock=clock, obj={"environ": {}})
    assert result.exit_code == 0, result.output
    return target


def test_the_cli_reads_credentials_from_secrets(db, tmp_path, clock, rotating):
    path = secrets_file(tmp_path, f'HF_X_ACCESS_TOKEN = "{OLD}"\n')
    base = ["--db", str(db), "--secrets", str(path)]
    result = invoke([*base, "channel", "add", "--by", "admin", "x", "--publisher", "rotating",
                     "--credential", "access_token=HF_X_ACCESS_TOKEN"], clock=clock)
    assert result.exit_code == 0, result.output
    listing = invoke([*base, "channel", "list"], clock=clock).output
    assert "access_token=HF_X_ACCESS_TOKEN (set)" in listing
    result = invoke(["--db", str(db), "channels", "check"], clock=clock,
                    env={"HUMASFLOW_SECRETS": str(path)})
    assert result.exit_code == 0, result.output
    assert "  x (rotating): OK" in result.output
    assert rotating.seen == [{"access_token": OLD}]
    assert OLD not in listing + result.output


def test_the_cli_refuses_a_secrets_file_others_can_read(db, tmp_path, clock):
    path = secrets_file(tmp_path, f'HF_X_ACCESS_TOKEN = "{OLD}"\n', 0o644)
    result = invoke(["--db", str(db), "--secrets", str(path), "channel", "list"], clock=clock)
    assert result.exit_code == 1
    assert result.output == (f"Error: the secrets file {path}: others can read or change it "
                             "(mode 644); make it readable by its owner only: "
                             f"chmod 600 {path}\n")


def test_channels_check_warns_of_expiring_and_expired_credentials(db, tmp_path, clock,
                                                                  rotating):
    path = secrets_file(tmp_path, f'HF_X_ACCESS_TOKEN = "{OLD}"\nHF_Y = "{NEW}"\n')
    base = ["--db", str(db), "--secrets", str(path)]
    for name, var in (("x", "HF_X_ACCESS_TOKEN"), ("y", "HF_Y")):
        invoke([*base, "channel", "add", "--by", "admin", name, "--publisher", "rotating",
                "--credential", f"access_token={var}"], clock=clock)
    rotating.by_channel = {"x": clock() + 2 * H, "y": clock() - H}
    out = invoke([*base, "channels", "check"], clock=clock).output
    assert ("  y (rotating): WARNING the credential 'access_token' (HF_Y) expired at "
            "2026-01-05 08:00:00 WIB; renew it") in out
    assert ("  x (rotating): WARNING the credential 'access_token' (HF_X_ACCESS_TOKEN) "
            "expires at 2026-01-05 11:00:00 WIB (in 2h00m); renew it before then") in out
    assert out.endswith("All 2 channel(s) OK.\n")
    quiet = invoke([*base, "channels", "check", "--warn-days", "0"], clock=clock).output
    assert "expires at" not in quiet
    assert "expired at" in quiet


def test_check_channel_config_is_what_add_channel_uses():
    check_channel_config("x", {"path": "/tmp"}, {"token": "X_TOKEN"})
