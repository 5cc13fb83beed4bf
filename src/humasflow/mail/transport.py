"""Mail transports: how a message humasflow made leaves the process.

A transport is any object with ``send(message)`` (:class:`MailTransport`).
:class:`SMTPTransport` speaks SMTP with :mod:`smtplib` (STARTTLS, implicit TLS, or
plain on a trusted network); an app that sends mail its own way (a queue, an HTTP
mail API) passes its own object. :class:`MemoryTransport` keeps messages in a list,
for tests and dry runs.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Protocol, runtime_checkable

from humasflow.errors import MailError
from humasflow.i18n import _
from humasflow.mail.settings import MailSettings

__all__ = ["MailTransport", "MemoryTransport", "SMTPTransport"]


@runtime_checkable
class MailTransport(Protocol):
    """What humasflow needs to send a message."""

    def send(self, message: EmailMessage) -> None:
        """Hand ``message`` (its ``To``/``Cc``/``Bcc`` headers say to whom) to the mail
        system, or raise :class:`~humasflow.errors.MailError`."""


class SMTPTransport:
    """Sends over SMTP: one connection per message, or one for every message sent
    inside :meth:`batch` (as :meth:`Office.send_mail
    <humasflow.office.Office.send_mail>` does).

    Args:
        settings: ``host``, ``port``, ``security``, ``username``, ``timeout``.
        password: The login's password (from the credential source), if it logs in.
        context: The TLS context (default: the system's trusted certificates, host
            name checked). Tests pass one that trusts their own certificate.
    """

    def __init__(self, settings: MailSettings, password: str | None = None, *,
                 context: ssl.SSLContext | None = None) -> None:
        if not settings.host:
            raise MailError(_("mail.host is not set: say which SMTP server sends mail"),
                            permanent=True)
        self.settings = settings
        self._password = password
        self._context = context
        self._lock = threading.RLock()
        self._batching = 0
        self._held: smtplib.SMTP | None = None

    def __repr__(self) -> str:
        s = self.settings
        return f"SMTPTransport({s.host}:{s.smtp_port}, {s.security})"

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Send the messages of the ``with`` block over one connection (opened at the
        first message, opened again if the server drops it, closed at the end)."""
        with self._lock:
            self._batching += 1
            try:
                yield
            finally:
                self._batching -= 1
                if not self._batching:
                    self._drop()

    def send(self, message: EmailMessage) -> None:
        with self._lock:
            try:
                if not self._batching:
                    with self._connect() as smtp:
                        smtp.send_message(message)
                    return
                if self._held is not None:
                    try:
                        self._held.send_message(message)
                        return
                    except smtplib.SMTPServerDisconnected:
                        self._held = None  # it timed out between messages: once more
                self._held = self._connect()
                self._held.send_message(message)
            except BaseException as exc:
                self._drop()  # a failure leaves no connection in doubt behind
                if isinstance(exc, (TimeoutError, smtplib.SMTPException, OSError)):
                    raise self._error(exc) from exc
                raise

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = self._context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if s.security == "tls":
            smtp = smtplib.SMTP_SSL(s.host or "", s.smtp_port, timeout=s.timeout,
                                    context=context)
        else:
            smtp = smtplib.SMTP(s.host or "", s.smtp_port, timeout=s.timeout)
        try:
            if s.security == "starttls":
                smtp.starttls(context=context)
            if s.username:
                smtp.login(s.username, self._password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _drop(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                held.quit()
            held.close()

    def _error(self, exc: BaseException) -> MailError:
        s = self.settings
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            return MailError(_("the mail server refused every recipient: {who}").format(
                who=", ".join(exc.recipients)), permanent=True)
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return MailError(_("the mail server refused the login of {user}: {reason}")
                             .format(user=s.username, reason=_reply(exc)))
        if isinstance(exc, smtplib.SMTPResponseException):
            return MailError(_("the mail server refused the message: {reason}").format(
                reason=_reply(exc)), permanent=500 <= exc.smtp_code < 600)
        return MailError(_("cannot reach the mail server {host}:{port}: {reason}")
                         .format(host=s.host, port=s.smtp_port, reason=exc))


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) \
        else str(exc.smtp_error)
    return f"{exc.smtp_code} {text}"


class MemoryTransport:
    """Keeps every message sent in :attr:`sent` (thread-safe); sends nothing."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []
        self._lock = threading.Lock()

    def send(self, message: EmailMessage) -> None:
        with self._lock:
            self.sent.append(message)
