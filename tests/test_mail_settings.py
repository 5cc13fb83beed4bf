"""The [mail] section: checked when the file is read, defaults filled in."""

from __future__ import annotations

from pathlib import Path

import pytest

from humasflow.config import load_config
from humasflow.errors import ConfigurationError
from humasflow.mail import MailSettings


def settings(tmp_path: Path, text: str) -> MailSettings:
    path = tmp_path / "humasflow.toml"
    path.write_text("[mail]\n" + text, encoding="utf-8")
    return MailSettings.from_config(load_config(path).mail)


def test_defaults_follow_the_security_and_the_sender(tmp_path: Path) -> None:
    mail = settings(tmp_path, 'host = "smtp.ub.ac.id"\nsender = "Humas <humas@ub.ac.id>"\n'
                              'security = "tls"\nimap_host = "imap.ub.ac.id"\n'
                              'username = "humas"\n')
    assert (mail.smtp_port, mail.imap_port_or_default) == (465, 993)
    assert mail.message_domain == "ub.ac.id"
    assert mail.reply_address == "Humas <humas@ub.ac.id>"
    assert mail.login == "humas"
    assert (mail.credential, mail.secret) == ("HUMASFLOW_MAIL_PASSWORD", "HUMASFLOW_MAIL_SECRET")


@pytest.mark.parametrize(("line", "key", "says"), [
    ('imap_port = 0', "mail.imap_port", "port number"),
    ('imap_security = "ssl"', "mail.imap_security", "one of"),
    ('token_days = -1', "mail.token_days", "positive"),
    ('secret = "k9Qx7TzP4mW2vB8nR5yL3cH6"', "mail.secret", "credential source"),
    ('credential = "my password"', "mail.credential", "credential source"),
    ('imap_folder = ""', "mail.imap_folder", "non-empty"),
    ('password = "hunter2"', "mail.password", "secrets file"),
    ('imap = "x"', "mail.imap", "unknown setting"),
])
def test_bad_values_name_the_key(tmp_path: Path, line: str, key: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says) as refused:
        settings(tmp_path, line + "\n")
    assert key in str(refused.value)


def test_the_secret_and_password_come_from_the_credential_source() -> None:
    from humasflow.credentials import EnvironmentSource
    from humasflow.mail import mail_password, mail_secret

    mail = MailSettings(username="humas")
    source = EnvironmentSource({"HUMASFLOW_MAIL_SECRET": "x" * 40,
                                "HUMASFLOW_MAIL_PASSWORD": "pw"})
    assert mail_secret(source, mail) == b"x" * 40
    assert mail_password(source, mail) == "pw"
    assert mail_password(source, MailSettings()) is None
    with pytest.raises(ConfigurationError, match="HUMASFLOW_MAIL_SECRET"):
        mail_secret(EnvironmentSource({}), mail)
    with pytest.raises(ConfigurationError, match="too short"):
        mail_secret(EnvironmentSource({"HUMASFLOW_MAIL_SECRET": "short"}), mail)
    with pytest.raises(ConfigurationError, match="HUMASFLOW_MAIL_PASSWORD"):
        mail_password(EnvironmentSource({}), mail)
