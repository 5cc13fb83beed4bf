"""The IMAP poller: reads unread replies from the office's mailbox and answers them.

:class:`IMAPPoller` logs in to ``[mail] imap_host`` (IMAPS, STARTTLS, or plain for a
server on the same machine), looks for unread messages in ``imap_folder``, hands each
to :func:`~humasflow.mail.answers.process_message` and then moves it to
``done_folder`` (or, with ``done_folder = ""``, marks it seen).

A message is read with ``BODY.PEEK[]``, so it stays unread until it is processed: a
poller that crashes mid-message leaves it for the next run. Whether it is applied is
decided by the store (a reply is claimed in the transaction that records it), so two
pollers reading the same mailbox apply each reply once; the second one only moves it.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any

from humasflow.errors import MailError, StorageError
from humasflow.i18n import _
from humasflow.mail.answers import Outcome, process_message
from humasflow.mail.settings import MailSettings
from humasflow.mail.transport import MailTransport

__all__ = ["IMAPPoller"]

log = logging.getLogger(__name__)



class IMAPPoller:
    """Processes the unread replies of one mailbox folder.

    Args:
        office: The :class:`~humasflow.office.Office` replies answer in.
        settings: ``imap_host``, ``imap_port``, ``imap_security``, ``login``,
            ``imap_folder``, ``done_folder``, ``timeout`` and what
            :func:`~humasflow.mail.answers.process_message` reads.
        password: The login's password (from the credential source).
        secret: The signing secret.
        transport: Where answers to senders go (``None``: none are sent).
        context: The TLS context (default: the system's trusted certificates).
    """

    def __init__(self, office: Any, settings: MailSettings, *, password: str | None,
                 secret: bytes, transport: MailTransport | None,
                 context: ssl.SSLContext | None = None) -> None:
        if not settings.imap_host:
            raise MailError(_("mail.imap_host is not set: say which IMAP server holds the "
                              "replies"), permanent=True)
        if not settings.login:
            raise MailError(_("mail.imap_username (or mail.username) is not set: say which "
                              "mailbox the replies arrive in"), permanent=True)
        self.office = office
        self.settings = settings
        self._password = password
        self._secret = secret
        self.transport = transport
        self._context = context

    def __repr__(self) -> str:
        s = self.settings
        return f"IMAPPoller({s.imap_host}:{s.imap_port_or_default}, {s.imap_folder!r})"

    def _connect(self) -> imaplib.IMAP4:
        s = self.settings
        host, port = s.imap_host or "", s.imap_port_or_default
        context = self._context or ssl.create_default_context()
        try:
            imap: imaplib.IMAP4
            if s.imap_security == "tls":
                imap = imaplib.IMAP4_SSL(host, port, ssl_context=context, timeout=s.timeout)
            else:
                imap = imaplib.IMAP4(host, port, timeout=s.timeout)
                if s.imap_security == "starttls":
                    imap.starttls(ssl_context=context)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailError(_("cannot reach the IMAP server {host}:{port}: {reason}").format(
                host=host, port=port, reason=exc)) from exc
        try:
            imap.login(s.login or "", self._password or "")
        except imaplib.IMAP4.error as exc:
            _close(imap)
            raise MailError(_("the IMAP server refused the login of {user}: {reason}").format(
                user=s.login, reason=exc)) from exc
        # Servers announce more after the login (MOVE, UIDPLUS) than before it.
        status, data = imap.capability()
        if status == "OK" and data and isinstance(data[0], bytes):
            imap.capabilities = tuple(data[0].decode("ascii", "replace").upper().split())
        return imap

    def poll_once(self) -> list[Outcome]:
        """Process every unread message of the folder once; return their outcomes.

        A message whose processing fails for a reason of the store (it is locked, say)
        is left unread for the next run; the others go on.

        Raises:
            MailError: The server cannot be reached, refuses the login, or has no
                such folder.
        """
        s = self.settings
        imap = self._connect()
        outcomes: list[Outcome] = []
        try:
            status, _data = imap.select(_quote(s.imap_folder))
            if status != "OK":
                raise MailError(_("the IMAP folder {folder!r} cannot be opened: {reason}")
                                .format(folder=s.imap_folder, reason=_text(_data)),
                                permanent=True)
            if s.done_folder:
                status, data = imap.create(_quote(s.done_folder))
                if status != "OK" and b"ALREADYEXISTS" not in b" ".join(
                        d for d in data if isinstance(d, bytes)).upper() \
                        and not _exists(imap, s.done_folder):
                    raise MailError(_("the IMAP folder {folder!r} (mail.done_folder) "
                                      "cannot be created: {reason}").format(
                                          folder=s.done_folder, reason=_text(data)),
                                    permanent=True)
            status, found = imap.uid("SEARCH", "UNSEEN")
            uids = [u.decode("ascii") for u in found[0].split()] \
                if status == "OK" and found and found[0] else []
            for uid in uids:
                raw = _fetch(imap, uid)
                if raw is None:
                    continue  # taken and moved by another poller meanwhile
                try:
                    outcome = process_message(self.office, raw, settings=s,
                                              secret=self._secret, transport=self.transport)
                except StorageError as exc:
                    log.warning("reply %s left for the next run: %s", uid, exc)
                    continue
                outcomes.append(outcome)
                self._done(imap, uid)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailError(_("the IMAP server {host} failed: {reason}").format(
                host=s.imap_host, reason=exc)) from exc
        finally:
            _close(imap)
        return outcomes

    def _done(self, imap: imaplib.IMAP4, uid: str) -> None:
        folder = self.settings.done_folder
        if not folder:
            imap.uid("STORE", uid, "+FLAGS", r"(\Seen)")
            return
        imap.uid("STORE", uid, "+FLAGS", r"(\Seen)")
        capabilities = {c.upper() for c in getattr(imap, "capabilities", ())}
        if "MOVE" in capabilities:
            status, data = imap.uid("MOVE", uid, _quote(folder))
            if status != "OK":
                log.warning("reply %s not moved to %s: %s", uid, folder, _text(data))
            return
        status, data = imap.uid("COPY", uid, _quote(folder))
        if status != "OK":
            log.warning("reply %s not copied to %s: %s", uid, folder, _text(data))
        else:
            imap.uid("STORE", uid, "+FLAGS", r"(\Deleted)")
            if "UIDPLUS" in capabilities:
                imap.uid("EXPUNGE", uid)
            else:
                imap.expunge()

    def run(self, *, interval: float = 60, stop: threading.Event | None = None,
            on_outcome: Callable[[Outcome], None] | None = None) -> None:
        """Poll every ``interval`` seconds until ``stop`` is set. A mail error is
        logged and the next poll tries again."""
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                for outcome in self.poll_once():
                    if on_outcome is not None:
                        on_outcome(outcome)
            except MailError as exc:
                log.warning("%s", exc)
            stop.wait(interval)


def _fetch(imap: imaplib.IMAP4, uid: str) -> bytes | None:
    status, data = imap.uid("FETCH", uid, "(BODY.PEEK[])")
    if status != "OK":
        return None
    for part in data or ():
        if isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], bytes):
            return part[1]
    return None


def _exists(imap: imaplib.IMAP4, folder: str) -> bool:
    status, data = imap.list('""', _quote(folder))
    return status == "OK" and any(d for d in data or () if d)


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(data: Any) -> str:
    parts = [p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p)
             for p in (data or ()) if p]
    return " ".join(parts) or "?"


def _close(imap: imaplib.IMAP4) -> None:
    with contextlib.suppress(OSError, imaplib.IMAP4.error):
        imap.logout()
