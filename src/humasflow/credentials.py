"""Credential sources: where a deployment keeps the secrets its channels name.

A channel stores only *references* (``credentials={"access_token": "X_ACCESS_TOKEN"}``);
the office reads the values through its credential source when a publisher is made:

- :class:`EnvironmentSource` (the default): environment variables. It cannot keep a
  refreshed credential.
- :class:`SecretsFile`: a TOML file of ``REFERENCE = "value"`` lines, refused unless
  only its owner can read it (``chmod 600``). A refreshed credential is written back to
  it atomically.
- an app's own vault: any object with the methods of :class:`CredentialSource`,
  given as ``Office(…, credentials=vault)`` or returned by a plugin's
  ``credential_source`` hook.

>>> source = EnvironmentSource({"X_ACCESS_TOKEN": "tok-1234-abcd"})
>>> source.get("X_ACCESS_TOKEN"), source.writable
('tok-1234-abcd', False)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import attrs

from humasflow._files import fsync_dir
from humasflow.errors import CredentialSourceError, SecretInConfiguration
from humasflow.i18n import _
from humasflow.scrubbing import looks_like_token

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "SECRETS_ENV",
    "CredentialSource",
    "CredentialWarning",
    "EnvironmentSource",
    "SecretsFile",
    "check_channel_config",
    "resolve_source",
]

#: The environment variable naming a deployment's secrets file (also ``--secrets``).
SECRETS_ENV = "HUMASFLOW_SECRETS"

_REFERENCE = re.compile(r"[A-Z][A-Z0-9_]*")
_MAX_REFERENCE = 100
# Setting names that hold secrets: token, access_token, client_secret, password, api_key…
_SECRET_SETTING = re.compile(
    r"(?:^|_)(?:token|secret|password|passwd|pwd|api_?key|apikey|private_?key|access_?key|"
    r"consumer_?key|credentials?|bearer|cookie|session_?key)$", re.IGNORECASE)


@runtime_checkable
class CredentialSource(Protocol):
    """What the office needs from a credential source.

    Attributes:
        writable: Whether :meth:`put` keeps a value (a refreshed credential) durably.
        description: Names the source in messages (``"the environment"``).
    """

    writable: bool
    description: str

    def get(self, reference: str) -> str | None:
        """The value of ``reference``, or ``None`` if the source does not hold it."""

    def put(self, reference: str, value: str) -> None:
        """Keep ``value`` as ``reference``; raise :class:`CredentialSourceError` if it
        cannot."""


class EnvironmentSource:
    """Credentials from environment variables (default: ``os.environ``).

    Not writable: a refreshed credential cannot outlive the process, so the operator is
    told to update the variable.
    """

    writable = False
    description = "the environment"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def __repr__(self) -> str:
        return f"<EnvironmentSource of {len(self.environ)} variable(s)>"

    def get(self, reference: str) -> str | None:
        """The variable's value, or ``None`` if it is not set."""
        return self.environ.get(reference)

    def put(self, reference: str, value: str) -> None:
        """Refused: the environment of a running process cannot be updated for good."""
        raise CredentialSourceError(
            described(self),
            _("cannot keep a new value of {reference}: set the environment variable "
              "{reference} to the renewed credential where the posting processes start, or "
              "keep the credentials in a secrets file (--secrets FILE or {variable}), "
              "where a renewed credential is written back").format(
                  reference=reference, variable=SECRETS_ENV))


class SecretsFile:
    """Credentials from a TOML file of ``REFERENCE = "value"`` lines.

    The file must be a regular file owned by the user running humasflow that nobody
    else may read or write (mode ``600``); otherwise it is refused, at once and at every
    read. It is read again whenever it changes. :meth:`put` rewrites it atomically (a
    new file with mode ``600`` renamed over the old one), keeping its other lines and
    comments.

    Args:
        path: The file.

    Raises:
        CredentialSourceError: The file is missing, readable by others, owned by someone
            else, or not a flat TOML table of strings.
    """

    writable = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser().absolute()
        self.description = f"the secrets file {self.path}"
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int], dict[str, str]] | None = None
        self._values()

    def __repr__(self) -> str:
        return f"<SecretsFile {str(self.path)!r}>"

    def get(self, reference: str) -> str | None:
        """The file's value for ``reference``, or ``None``."""
        return self._values().get(reference)

    def put(self, reference: str, value: str) -> None:
        """Write ``reference = "value"`` into the file (replacing its line, or appending).

        Raises:
            CredentialSourceError: The file is unsafe, or it cannot be written.
        """
        if not isinstance(value, str) or not value:
            raise CredentialSourceError(described(self),
                                        _("the new value of {reference} is empty").format(
                                            reference=reference))
        with self._lock, self._file_lock():
            current = self._values()
            text = self.path.read_text("utf-8")
            wanted = {**current, reference: value}
            updated = _set_line(text, reference, value)
            try:
                ok = tomllib.loads(updated) == wanted
            except tomllib.TOMLDecodeError:
                ok = False
            if not ok:  # a layout the line edit cannot follow: write the table afresh
                updated = "".join(f"{k} = {_toml_string(v)}\n" for k, v in wanted.items())
            self._replace(updated)
            self._cache = None

    # -- reading --------------------------------------------------------------------------

    def _values(self) -> dict[str, str]:
        # Non-blocking, so that a FIFO put in its place cannot hang the process.
        flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(self.path, flags)
        except FileNotFoundError:
            raise CredentialSourceError(
                described(self), _("there is no such file; create it (one REFERENCE = "
                                   "\"value\" line per credential) and make it private: "
                                   "chmod 600 {path}").format(path=self.path)
            ) from None
        except OSError as exc:
            raise CredentialSourceError(described(self), _("cannot be read: {error}").format(
                error=exc.strerror)) from None
        try:
            st = os.fstat(fd)
            self._check_private(st)
        except BaseException:
            os.close(fd)
            raise
        with os.fdopen(fd, "rb") as file:
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            cached = self._cache
            if cached is not None and cached[0] == key:
                return cached[1]
            raw = file.read()
        values = self._parse(raw)
        self._cache = (key, values)
        return values

    def _check_private(self, st: os.stat_result) -> None:
        import stat

        if not stat.S_ISREG(st.st_mode):
            raise CredentialSourceError(described(self), _("is not a regular file"))
        if st.st_mode & 0o077:
            raise CredentialSourceError(
                described(self),
                _("others can read or change it (mode {mode:03o}); make it readable by its "
                  "owner only: chmod 600 {path}").format(mode=stat.S_IMODE(st.st_mode),
                                                         path=self.path))
        geteuid = getattr(os, "geteuid", None)
        if geteuid is not None and st.st_uid != geteuid():
            raise CredentialSourceError(
                described(self),
                _("it belongs to user id {owner}, not to the user running humasflow "
                  "({user}); give it to that user and keep it private: chown it, then "
                  "chmod 600 {path}").format(owner=st.st_uid, user=geteuid(), path=self.path))

    def _parse(self, raw: bytes) -> dict[str, str]:
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise CredentialSourceError(described(self), _("is not UTF-8 text")) from None
        except tomllib.TOMLDecodeError as exc:
            # The parser's message gives the line and column, never the text.
            raise CredentialSourceError(described(self), _("is not valid TOML: {error}").format(
                error=exc)) from None
        values: dict[str, str] = {}
        for key, value in data.items():
            if not isinstance(value, str):
                raise CredentialSourceError(
                    described(self),
                    _("{key} is not a string; write each credential as {key} = \"value\" "
                      "(no tables, no numbers)").format(key=key))
            values[key] = value
        return values

    # -- writing --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        """Serialise rewrites between processes (a lock file beside the secrets file)."""
        try:
            import fcntl
        except ImportError:  # no POSIX locks: this process's lock only
            yield
            return
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _replace(self, text: str) -> None:
        folder = self.path.parent
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=folder)
        try:
            os.fchmod(fd, 0o600)  # mkstemp makes it 600 already; say so
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise CredentialSourceError(described(self), _("cannot be rewritten: {error}").format(
                error=exc.strerror)) from None
        with contextlib.suppress(OSError):  # the rename itself survives a power cut
            fsync_dir(folder)


def _toml_string(value: str) -> str:
    """A TOML basic string."""
    out = ['"']
    for char in value:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def _set_line(text: str, reference: str, value: str) -> str:
    """``text`` with the line of ``reference`` replaced (or a line appended)."""
    line = f"{reference} = {_toml_string(value)}"
    pattern = re.compile(rf"""^[ \t]*(?:{reference}|"{reference}"|'{reference}')[ \t]*=.*$""",
                         re.MULTILINE)
    if len(pattern.findall(text)) == 1:
        return pattern.sub(lambda _: line, text)
    if text and not text.endswith("\n"):
        text += "\n"
    return f"{text}{line}\n"


def resolve_source(
    credentials: CredentialSource | str | os.PathLike[str] | None,
    environ: Mapping[str, str] | None,
    hook: Any = None,
) -> CredentialSource:
    """The source an office uses.

    In order: ``credentials`` (a source, or the path of a secrets file); else
    ``environ`` as an environment source; else the secrets file named by
    ``HUMASFLOW_SECRETS``; else a plugin's ``credential_source`` (``hook()``); else the
    process's environment.
    """
    if credentials is not None and environ is not None:
        raise ValueError(_("give credentials= or environ=, not both"))
    if isinstance(credentials, (str, os.PathLike)):
        return SecretsFile(credentials)
    if credentials is not None:
        for name in ("get", "put", "writable", "description"):
            if not hasattr(credentials, name):
                raise TypeError(f"credentials={credentials!r} is not a credential source: "
                                f"it has no {name!r} (see humasflow.credentials)")
        return credentials
    if environ is not None:
        return EnvironmentSource(environ)
    named = os.environ.get(SECRETS_ENV)
    if named:
        return SecretsFile(named)
    found = hook() if hook is not None else None
    return found if found is not None else EnvironmentSource()


@attrs.frozen
class CredentialWarning:
    """A channel's credential that expires soon, or has expired.

    Attributes:
        channel: The channel name.
        credential: The credential's name in the channel (``access_token``).
        reference: The variable or key that holds it.
        expires_at: When it expires (UTC).
        expired: Whether it has expired already.
    """

    channel: str
    credential: str
    reference: str
    expires_at: dt.datetime
    expired: bool

    def __str__(self) -> str:
        when = self.expires_at.isoformat(timespec="minutes")
        if self.expired:
            message = _("channel {channel!r}: the credential {credential!r} ({reference}) "
                        "expired at {when}; renew it, then post again")
        else:
            message = _("channel {channel!r}: the credential {credential!r} ({reference}) "
                        "expires at {when}; renew it before then")
        return message.format(channel=self.channel, credential=self.credential,
                              reference=self.reference, when=when)


def described(source: Any) -> str:
    """How messages name a credential source, in the current language.

    A source's ``description`` is what the record keeps (in English); the sources
    humasflow brings are named in the reader's language, others by their description.
    """
    if isinstance(source, SecretsFile):
        return _("the secrets file {path}").format(path=source.path)
    if isinstance(source, EnvironmentSource):
        return _("the environment")
    return str(getattr(source, "description", source))


def check_channel_config(channel: str, settings: Mapping[str, Any],
                         credentials: Mapping[str, str]) -> None:
    """Refuse secrets in a channel's configuration.

    Credential references must be names (capitals, digits and ``_``, starting with a
    letter, like ``X_ACCESS_TOKEN``) and must not look like tokens; settings must not
    be named like secrets (``token``, ``access_token``, ``password``, ``api_key``…) nor
    hold values that look like tokens (a URL with ``access_token=``, a long random
    string).

    Raises:
        SecretInConfiguration: Naming the key, never the value.
    """
    for key, reference in credentials.items():
        if not isinstance(reference, str) or not reference:
            raise SecretInConfiguration(channel, key, "credentials", _("is empty"))
        if looks_like_token(reference) or not is_reference(reference):
            raise SecretInConfiguration(
                channel, key, "credentials",
                _("is not a credential reference (it looks like a secret, or is not a "
                  "variable name)"))
    _check_settings(channel, settings, "")


def is_reference(reference: str) -> bool:
    """Whether ``reference`` is a credential's name (``FISIP_IG_TOKEN``), not a value."""
    if len(reference) > _MAX_REFERENCE or not _REFERENCE.fullmatch(reference):
        return False
    # A word-like name: no long run of letters and digits mixed, as random ids have.
    return not any(len(part) >= 16 and any(c.isdigit() for c in part)
                   for part in reference.split("_"))


def _check_settings(channel: str, value: Any, path: str) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            name = f"{path}.{key}" if path else str(key)
            if _SECRET_SETTING.search(str(key).replace("-", "_")) and inner not in (None, ""):
                raise SecretInConfiguration(channel, name, "settings",
                                            _("is named like a secret"))
            _check_settings(channel, inner, name)
    elif isinstance(value, (list, tuple)):
        for i, inner in enumerate(value):
            _check_settings(channel, inner, f"{path}[{i}]")
    elif isinstance(value, str) and looks_like_token(value):
        raise SecretInConfiguration(channel, path, "settings",
                                    _("holds what looks like a token"))
