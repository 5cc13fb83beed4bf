"""Mail settings: the ``[mail]`` section of the configuration file, with defaults.

::

    [mail]
    host = "smtp.ub.ac.id"          # SMTP server for requests, notifications, digests
    port = 587                      # default: 587 for starttls, 465 for tls, 25 for none
    security = "starttls"           # "starttls", "tls" (implicit) or "none"
    sender = "humas@ub.ac.id"       # From: of every message humasflow sends
    username = "humas@ub.ac.id"     # login for SMTP and IMAP (default: no login)
    credential = "HUMASFLOW_MAIL_PASSWORD"  # the password's name in the credential source
    secret = "HUMASFLOW_MAIL_SECRET"        # the signing secret's name there
    reply_to = "humas@ub.ac.id"     # where answers go (default: sender)
    domain = "ub.ac.id"             # for Message-IDs (default: the sender's domain)
    token_days = 7                  # how long an approval request can be answered
    attach_max_bytes = 5_000_000    # larger design media are linked, not attached
    timeout = 30                    # seconds, for SMTP and IMAP
    language = "id"                 # of messages to people with no language of their own
    imap_host = "imap.ub.ac.id"     # where replies arrive (default: no polling)
    imap_port = 993                 # default: 993 for tls, 143 otherwise
    imap_security = "tls"
    imap_username = "humas@ub.ac.id"  # default: username
    imap_folder = "INBOX"           # where to look for unread replies
    done_folder = "humasflow/done"  # where processed replies are moved
    authserv_id = "mx.ub.ac.id"     # the receiving server's Authentication-Results
                                    # name: replies must pass DKIM/SPF/DMARC there

Passwords and the secret are never in this file: ``credential`` and ``secret`` *name*
values that the deployment's credential source holds (the environment by default, or
the secrets file).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from humasflow.errors import ConfigurationError
from humasflow.i18n import _

__all__ = ["DEFAULT_CREDENTIAL", "DEFAULT_SECRET", "MailSettings", "mail_password",
           "mail_secret"]

_MIN_SECRET = 32

#: The default name of the mail password in the credential source.
DEFAULT_CREDENTIAL = "HUMASFLOW_MAIL_PASSWORD"
#: The default name of the signing secret in the credential source.
DEFAULT_SECRET = "HUMASFLOW_MAIL_SECRET"  # noqa: S105 - a name, not a secret

Security = Literal["starttls", "tls", "none"]
_SMTP_PORTS = {"starttls": 587, "tls": 465, "none": 25}
_IMAP_PORTS = {"starttls": 143, "tls": 993, "none": 143}


@attrs.frozen
class MailSettings:
    """How humasflow sends and receives mail (see the module docs for each key)."""

    host: str | None = None
    port: int | None = None
    security: Security = "starttls"
    sender: str | None = None
    username: str | None = None
    credential: str = DEFAULT_CREDENTIAL
    secret: str = DEFAULT_SECRET
    reply_to: str | None = None
    domain: str | None = None
    token_days: float = 7
    attach_max_bytes: int = 5_000_000
    timeout: float = 30
    language: str = "id"
    imap_host: str | None = None
    imap_port: int | None = None
    imap_security: Security = "tls"
    imap_username: str | None = None
    imap_folder: str = "INBOX"
    done_folder: str = "humasflow/done"
    authserv_id: str | None = None

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> MailSettings:
        """The settings a ``[mail]`` section gives (checked by
        :func:`humasflow.config.load_config`), with defaults for the rest."""
        known = {field.name for field in attrs.fields(cls)}
        return cls(**{key: value for key, value in section.items() if key in known})

    @property
    def smtp_port(self) -> int:
        """The SMTP port: :attr:`port`, else the usual one for :attr:`security`."""
        return self.port or _SMTP_PORTS[self.security]

    @property
    def imap_port_or_default(self) -> int:
        """The IMAP port: :attr:`imap_port`, else the usual one for :attr:`imap_security`."""
        return self.imap_port or _IMAP_PORTS[self.imap_security]

    @property
    def login(self) -> str | None:
        """The IMAP login: :attr:`imap_username`, else :attr:`username`."""
        return self.imap_username or self.username

    @property
    def reply_address(self) -> str | None:
        """Where answers go: :attr:`reply_to`, else :attr:`sender`."""
        return self.reply_to or self.sender

    @property
    def message_domain(self) -> str:
        """The domain of the Message-IDs humasflow makes."""
        if self.domain:
            return self.domain
        if self.sender and "@" in self.sender:
            return self.sender.rsplit("@", 1)[1].strip("> ")
        return "humasflow.invalid"


def mail_secret(credentials: Any, settings: MailSettings) -> bytes:
    """The deployment's signing secret: the value named :attr:`MailSettings.secret` in
    ``credentials`` (a :class:`~humasflow.credentials.CredentialSource`), as bytes.

    Raises:
        ConfigurationError: The source does not hold it, or it is shorter than 32
            characters (make one with ``python -c "import secrets;
            print(secrets.token_urlsafe(32))"``).
    """
    from humasflow.credentials import described

    value: str | None = credentials.get(settings.secret)
    if not value:
        raise ConfigurationError(_(
            "approval by email needs the signing secret {name}, which {source} does not "
            "hold; add a long random value there (python -c \"import secrets; "
            "print(secrets.token_urlsafe(32))\")").format(
                name=settings.secret, source=described(credentials)))
    if len(value) < _MIN_SECRET:
        raise ConfigurationError(_(
            "the signing secret {name} is too short ({length} characters); use at least "
            "{minimum} random characters").format(
                name=settings.secret, length=len(value), minimum=_MIN_SECRET))
    return value.encode("utf-8")


def mail_password(credentials: Any, settings: MailSettings) -> str | None:
    """The mail login's password (named :attr:`MailSettings.credential`), or ``None``
    when there is no login (:attr:`MailSettings.username` unset).

    Raises:
        ConfigurationError: A login is set but the source does not hold its password.
    """
    from humasflow.credentials import described

    if not settings.username and not settings.imap_username:
        return None
    value: str | None = credentials.get(settings.credential)
    if value is None:
        raise ConfigurationError(_(
            "the mail login {user} needs the password {name}, which {source} does not "
            "hold; add it there").format(user=settings.username or settings.imap_username,
                                         name=settings.credential,
                                         source=described(credentials)))
    return value
