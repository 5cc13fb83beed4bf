"""The configuration file: a deployment's settings in one place.

A TOML file, looked up in this order (the first that exists is used):

1. the file named by ``--config`` or ``HUMASFLOW_CONFIG`` (it must exist);
2. ``humasflow.toml`` in the working directory;
3. ``config.toml`` in the user's configuration folder (``~/.config/humasflow/`` on
   Linux, as :func:`platformdirs.user_config_dir` says elsewhere).

Every setting can also be given as a command-line flag or an environment variable; a
flag wins over the environment, the environment over the file, the file over the
default (``humasflow config`` shows each value and where it came from)::

    store = "humasflow.db"          # or "postgresql+psycopg://host/db"
    org = "fisip"
    language = "id"                 # "id" or "en"
    timezone = "Asia/Jakarta"
    busy_timeout = 30               # seconds
    secrets = "/etc/humasflow/secrets.toml"

    [media]
    store = "/srv/humasflow/media"
    roots = ["/srv/humas/design"]
    max_bytes = 50_000_000

    [media.host]                    # a public URL for stored media (Instagram needs one)
    folder = "/var/www/media"
    base_url = "https://media.fisip.ub.ac.id/humas/"

    [channels.instagram]            # non-secret settings; credentials are names only
    publisher = "instagram"
    settings = { account = "fisipub" }
    credentials = { token = "FISIP_IG_TOKEN" }

    [mail]                          # for approval by email
    host = "smtp.ub.ac.id"
    port = 587
    security = "starttls"
    sender = "humas@ub.ac.id"

    [calendar]                      # the working calendar
    workdays = ["mon", "tue", "wed", "thu", "fri"]
    hours = ["07:30", "16:00"]
    holidays = "ID"
    closed = [2026-12-24]

Secrets never belong in this file: a value that looks like a token is refused, exactly
as in a channel's settings (see :mod:`humasflow.credentials`).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from humasflow.errors import ConfigurationError, HumasflowError
from humasflow.i18n import _, normalise

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "CONFIG_NAME",
    "ENV_CONFIG",
    "Config",
    "find_config",
    "load_config",
    "user_config_path",
]

CONFIG_NAME = "humasflow.toml"
ENV_CONFIG = "HUMASFLOW_CONFIG"

#: The settings of the file's top level, with their environment variables.
TOP_LEVEL = {
    "store": "HUMASFLOW_DB",
    "org": "HUMASFLOW_ORG",
    "language": "HUMASFLOW_LANG",
    "timezone": "HUMASFLOW_TZ",
    "busy_timeout": "HUMASFLOW_BUSY_TIMEOUT",
    "secrets": "HUMASFLOW_SECRETS",
}
_SECTIONS = {
    "media": {"store", "roots", "max_bytes", "host"},
    "mail": {"host", "port", "security", "sender", "username", "password", "reply_to",
             "timeout", "language", "credential", "secret", "domain", "token_days",
             "attach_max_bytes", "imap_host", "imap_port", "imap_security",
             "imap_username", "imap_folder", "done_folder", "authserv_id"},
    "calendar": {"timezone", "workdays", "hours", "holidays", "closed", "open"},
}
_CHANNEL_KEYS = {"publisher", "settings", "credentials"}
_HOST_KEYS = {"folder", "base_url"}
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SECURITY = ("starttls", "tls", "none")


def user_config_path() -> Path:
    """The user's own configuration file (it may not exist)."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("humasflow", appauthor=False)) / "config.toml"


def find_config(explicit: str | os.PathLike[str] | None = None, *,
                environ: Mapping[str, str] | None = None,
                cwd: str | os.PathLike[str] | None = None) -> Path | None:
    """The configuration file to use, or ``None`` when there is none.

    Raises:
        ConfigurationError: ``explicit`` (or ``HUMASFLOW_CONFIG``) names no file.
    """
    env = os.environ if environ is None else environ
    named = explicit if explicit is not None else env.get(ENV_CONFIG) or None
    if named is not None:
        path = Path(named).expanduser()
        if not path.is_file():
            raise ConfigurationError(
                _("configuration file {path} does not exist; check --config or "
                  "HUMASFLOW_CONFIG").format(path=str(path)))
        return path
    local = Path(cwd if cwd is not None else Path.cwd()) / CONFIG_NAME
    if local.is_file():
        return local
    user = user_config_path()
    return user if user.is_file() else None


@attrs.frozen
class Config:
    """The settings read from one configuration file (or none: every field empty).

    Attributes:
        path: The file they came from, or ``None``.
        values: The top-level settings that the file gives (``store``, ``org``,
            ``language``, ``timezone``, ``busy_timeout``, ``secrets``).
        media: The ``[media]`` section (``store``, ``roots``, ``max_bytes``, ``host``).
        channels: Each ``[channels.NAME]`` section: ``publisher``, ``settings``,
            ``credentials`` (names of credentials, never values).
        mail: The ``[mail]`` section, as written.
        calendar: The ``[calendar]`` section, as written.
    """

    path: Path | None = None
    values: Mapping[str, Any] = attrs.field(factory=dict)
    media: Mapping[str, Any] = attrs.field(factory=dict)
    channels: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    mail: Mapping[str, Any] = attrs.field(factory=dict)
    calendar: Mapping[str, Any] = attrs.field(factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """A top-level setting, or ``default``."""
        return self.values.get(key, default)

    def relative(self, value: str) -> str:
        """A path from the file, made relative to the file's folder (URLs unchanged)."""
        if self.path is None or "://" in value:
            return value
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else self.path.parent / path)

    def media_host(self) -> Any:
        """The media host the ``[media.host]`` section describes, or ``None``."""
        host = self.media.get("host")
        if not host:
            return None
        from humasflow.publishing.media import FolderMediaHost

        return FolderMediaHost(self.relative(host["folder"]), host["base_url"])

    def channel(self, name: str) -> Mapping[str, Any]:
        """The ``[channels.NAME]`` section, or an empty mapping."""
        return self.channels.get(name, {})


def load_config(path: str | os.PathLike[str] | None = None, *,
                environ: Mapping[str, str] | None = None,
                cwd: str | os.PathLike[str] | None = None) -> Config:
    """Find (see :func:`find_config`) and read the configuration; an empty
    :class:`Config` when there is no file.

    Raises:
        ConfigurationError: The file cannot be read, is not TOML, or holds an unknown
            key, a value of the wrong kind, or a secret. The message names the file,
            the key and what to do.
    """
    found = find_config(path, environ=environ, cwd=cwd)
    if found is None:
        return Config()
    try:
        data = tomllib.loads(found.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            _("cannot read the configuration file {path}: {reason}").format(
                path=str(found), reason=exc)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(
            _("{path} is not valid TOML: {reason}").format(path=str(found), reason=exc)) from exc
    return _parse(found, data)


def _problem(path: Path, key: str, message: str) -> ConfigurationError:
    return ConfigurationError(_("{path}: {key}: {message}").format(
        path=str(path), key=key, message=message))


def _parse(path: Path, data: Mapping[str, Any]) -> Config:
    known = set(TOP_LEVEL) | set(_SECTIONS) | {"channels"}
    for key in data:
        if key not in known:
            raise _problem(path, key, _("unknown setting; the known ones are {known}").format(
                known=", ".join(sorted(known))))
    values: dict[str, Any] = {}
    for key in TOP_LEVEL:
        if key in data:
            values[key] = _top_value(path, key, data[key])
    sections: dict[str, dict[str, Any]] = {}
    for name, keys in _SECTIONS.items():
        section = data.get(name, {})
        if not isinstance(section, Mapping):
            raise _problem(path, name, _("must be a table ([{name}])").format(name=name))
        for key in section:
            if key not in keys:
                raise _problem(path, f"{name}.{key}",
                               _("unknown setting; the known ones are {known}").format(
                                   known=", ".join(sorted(keys))))
        sections[name] = dict(section)
    _check_media(path, sections["media"])
    _check_mail(path, sections["mail"])
    _check_calendar(path, sections["calendar"])
    channels = _channels(path, data.get("channels", {}))
    return Config(path=path, values=values, media=sections["media"], channels=channels,
                  mail=sections["mail"], calendar=sections["calendar"])


def _top_value(path: Path, key: str, value: Any) -> Any:
    if key == "busy_timeout":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                0 <= value <= 86400):
            raise _problem(path, key, _("must be a number of seconds from 0 to 86400"))
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise _problem(path, key, _("must be a non-empty string"))
    if key == "language" and normalise(value) is None:
        raise _problem(path, key, _("must be \"id\" or \"en\", not {value!r}").format(
            value=value))
    if key == "timezone":
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise _problem(path, key, _("{value!r} is not a time zone (e.g. Asia/Jakarta)")
                           .format(value=value)) from exc
    return value


def _check_media(path: Path, media: dict[str, Any]) -> None:
    if "store" in media and not (isinstance(media["store"], str) and media["store"].strip()):
        raise _problem(path, "media.store", _("must be a non-empty string"))
    roots = media.get("roots", [])
    if not isinstance(roots, list) or not all(isinstance(r, str) and r for r in roots):
        raise _problem(path, "media.roots", _("must be a list of folders"))
    size = media.get("max_bytes")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise _problem(path, "media.max_bytes", _("must be a positive number of bytes"))
    host = media.get("host")
    if host is not None:
        if not isinstance(host, Mapping) or set(host) != _HOST_KEYS:
            raise _problem(path, "media.host",
                           _("must be a table with folder and base_url"))
        url = host["base_url"]
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise _problem(path, "media.host.base_url",
                           _("must be the folder's public http(s) URL"))
        if not isinstance(host["folder"], str) or not host["folder"]:
            raise _problem(path, "media.host.folder", _("must be a non-empty string"))


def _check_mail(path: Path, mail: dict[str, Any]) -> None:
    if "password" in mail:
        raise _problem(path, "mail.password",
                       _("a password does not belong in the configuration file; put it in "
                         "the secrets file or the environment"))
    for key in ("port", "imap_port"):
        port = mail.get(key)
        if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                                 or not 0 < port < 65536):
            raise _problem(path, f"mail.{key}", _("must be a port number from 1 to 65535"))
    for key in ("security", "imap_security"):
        security = mail.get(key)
        if security is not None and security not in _SECURITY:
            raise _problem(path, f"mail.{key}", _("must be one of {choices}").format(
                choices=", ".join(_SECURITY)))
    for key in ("token_days", "attach_max_bytes", "timeout"):
        number = mail.get(key)
        if number is not None and (isinstance(number, bool)
                                   or not isinstance(number, (int, float)) or number <= 0):
            raise _problem(path, f"mail.{key}", _("must be a positive number"))
    for key in ("host", "sender", "username", "reply_to", "credential", "secret", "domain",
                "imap_host", "imap_username", "imap_folder", "done_folder", "language",
                "authserv_id"):
        value = mail.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise _problem(path, f"mail.{key}", _("must be a non-empty string"))
    from humasflow.credentials import is_reference

    for key in ("credential", "secret"):
        if key in mail and not is_reference(mail[key]):
            raise _problem(path, f"mail.{key}", _(
                "must name a value in the credential source (like HUMASFLOW_MAIL_SECRET), "
                "not hold the value itself"))


def _check_calendar(path: Path, calendar: dict[str, Any]) -> None:
    days = calendar.get("workdays")
    if days is not None and (not isinstance(days, list) or not days
                             or any(d not in _DAYS for d in days)):
        raise _problem(path, "calendar.workdays", _("must be a list of days from {days}")
                       .format(days=", ".join(_DAYS)))
    hours = calendar.get("hours")
    if hours is not None:
        try:
            start, end = (dt.time.fromisoformat(h) for h in hours)
        except (TypeError, ValueError) as exc:
            raise _problem(path, "calendar.hours",
                           _("must be two times such as [\"07:30\", \"16:00\"]")) from exc
        if start >= end:
            raise _problem(path, "calendar.hours", _("the start must come before the end"))
    for key in ("closed", "open"):
        value = calendar.get(key, [])
        if not isinstance(value, list) or not all(isinstance(d, dt.date) for d in value):
            raise _problem(path, f"calendar.{key}",
                           _("must be a list of dates such as [2026-12-24]"))


def _channels(path: Path, data: Any) -> dict[str, dict[str, Any]]:
    from humasflow.credentials import check_channel_config

    if not isinstance(data, Mapping):
        raise _problem(path, "channels", _("must be a table of [channels.NAME] sections"))
    channels: dict[str, dict[str, Any]] = {}
    for name, section in data.items():
        key = f"channels.{name}"
        if not isinstance(section, Mapping):
            raise _problem(path, key, _("must be a table"))
        for field in section:
            if field not in _CHANNEL_KEYS:
                raise _problem(path, f"{key}.{field}",
                               _("unknown setting; the known ones are {known}").format(
                                   known=", ".join(sorted(_CHANNEL_KEYS))))
        settings = section.get("settings", {})
        credentials = section.get("credentials", {})
        if not isinstance(settings, Mapping) or not isinstance(credentials, Mapping):
            raise _problem(path, key, _("settings and credentials must be tables"))
        try:
            check_channel_config(name, dict(settings), dict(credentials))
        except HumasflowError as exc:
            raise _problem(path, key, str(exc)) from exc
        channels[name] = {"publisher": section.get("publisher"), "settings": dict(settings),
                          "credentials": dict(credentials)}
    return channels


