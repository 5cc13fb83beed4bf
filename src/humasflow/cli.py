"""The ``humasflow`` command: run the SOP from a terminal.

Every command works on one store (``--db``, a SQLite file or a ``postgresql://`` URL)
and one organisation (``--org``). Times are stored in UTC and shown in the SOP's time
zone (``--tz`` to choose another). Every :class:`~humasflow.errors.HumasflowError`
becomes a one-line ``Error: ...`` on stderr with exit code 1.

Channel credentials are read from the environment, or from a secrets file given with
``--secrets FILE`` (or ``HUMASFLOW_SECRETS``). Nothing the command prints holds a
secret: messages are scrubbed (see :mod:`humasflow.scrubbing`).

Embedders (and tests) can hand the command a clock, a credentials source (``environ``, a
mapping, or ``credentials``, a :mod:`credential source <humasflow.credentials>`) and the
worker's wait between passes through click's context object::

    cli.main(["list", "--overdue"], obj={"clock": my_clock, "environ": {}})
    cli.main(["worker", "--max-loops", "3"], obj={"clock": my_clock, "sleep": my_sleep})

Some commands have a second name: ``post`` is ``publish``, ``channels`` is ``channel``.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import functools
import importlib
import io
import json
import os
import shlex
import shutil
import struct
import sys
import tempfile
import textwrap
import threading
import warnings
import zlib
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, cast

import attrs
import click

import humasflow
from humasflow import i18n
from humasflow.clock import Clock, system_clock
from humasflow.config import CONFIG_NAME, Config, load_config, user_config_path
from humasflow.errors import (
    ActorNotFound,
    CredentialSourceError,
    HumasflowError,
    InputInvalid,
    OrganisationNotFound,
    StepNotFound,
)
from humasflow.i18n import N_, _, ngettext

# What only some commands need (the store and SQLAlchemy, the publishers and requests,
# the plugins, rich, transitions' diagrams, and humasflow's models, SOP, evaluation and
# credentials) is imported when a command uses it, so that `humasflow --help`, a
# command's --help and a mistyped option answer at once: the help needs click, the
# configuration (for its language) and the errors, nothing more.
if TYPE_CHECKING:
    import rich.box

    from humasflow import _input
    from humasflow import plugins as registry
    from humasflow.actions import CorrectiveAction
    from humasflow.calendar import WorkingCalendar
    from humasflow.credentials import CredentialSource, SecretsFile
    from humasflow.evaluation import timeline
    from humasflow.inbox import InboxEntry
    from humasflow.models import ContentItem, Event, Media, Publication, Variant
    from humasflow.office import Office, PostReport
    from humasflow.publishing import worker
    from humasflow.scrubbing import scrub
    from humasflow.sop import PHASES, SOP, Label, load_sop
    from humasflow.storage.store import Store
    from humasflow.testing import SteerableClock

__all__ = ["cli", "main"]

DEFAULT_DB = "humasflow.db"
#: :data:`humasflow.office.DEFAULT_ORG`, without importing the office for ``--help``.
DEFAULT_ORG = "default"
DEFAULT_ZONE = "Asia/Jakarta"
#: :data:`humasflow.models.ADMIN_ROLE`, without importing the models for ``--help``.
ADMIN_ROLE = "admin"
_CLOSED = ("posted", "cancelled")


class _ImportedWhenUsed:
    """A module, or one name in it, imported the first time it is used: an attribute
    read (``registry.load_plugins``), a call (``scrub(text)``) or an item
    (``PHASES[phase]``).

    Names used only in annotations need none of this: they are imported for type
    checkers only. A name used as a plain value (in a set, as a key) cannot stand in
    this way; such a constant is repeated here instead (:data:`ADMIN_ROLE`).
    """

    def __init__(self, module: str, name: str | None = None) -> None:
        self._module = module
        self._name = name

    def _target(self) -> Any:
        module = importlib.import_module(self._module)
        return module if self._name is None else getattr(module, self._name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._target(), attribute)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._target()(*args, **kwargs)

    def __getitem__(self, key: Any) -> Any:
        return self._target()[key]


if TYPE_CHECKING:
    _WorkerBase = worker.Worker
else:
    _input = _ImportedWhenUsed("humasflow._input")
    registry = _ImportedWhenUsed("humasflow.plugins")
    worker = _ImportedWhenUsed("humasflow.publishing.worker")
    WorkingCalendar = _ImportedWhenUsed("humasflow.calendar", "WorkingCalendar")
    SecretsFile = _ImportedWhenUsed("humasflow.credentials", "SecretsFile")
    timeline = _ImportedWhenUsed("humasflow.evaluation", "timeline")
    Publication = _ImportedWhenUsed("humasflow.models", "Publication")
    scrub = _ImportedWhenUsed("humasflow.scrubbing", "scrub")
    PHASES = _ImportedWhenUsed("humasflow.sop", "PHASES")
    load_sop = _ImportedWhenUsed("humasflow.sop", "load_sop")
    _WorkerBase = object  # see _echo_worker()


# -- plumbing -------------------------------------------------------------------------------

#: Characters never written to the terminal as they are: C0 controls (but newline and
#: tab), DEL, C1 controls, the bidirectional overrides and isolates, the line and
#: paragraph separators, and lone surrogates (which cannot even be encoded).
_UNSAFE = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x20), *range(0x7F, 0xA0))
           if c not in (0x09, 0x0A)}
_UNSAFE.update({c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A),
                                             0x2028, 0x2029, *range(0xD800, 0xE000))})
_ONE_LINE = {**_UNSAFE, 0x09: "\\t", 0x0A: "\\n"}


def _printable(text: object, *, one_line: bool = False) -> str:
    """``text`` safe to show on a terminal: every control character, escape sequence
    and direction override shown escaped (``\\x1b``), never interpreted.

    ``one_line`` escapes newlines and tabs too (titles, names, ids in tables).
    Every line the command writes goes through here (see :func:`_echo`).
    """
    return str(text).translate(_ONE_LINE if one_line else _UNSAFE)


def _echo(message: object = "", *, err: bool = False, nl: bool = True) -> None:
    """Write a line of output, with user text made printable (:func:`_printable`)."""
    click.echo(message if isinstance(message, _Rendered) else _printable(message), err=err,
               nl=nl)


#: The click modules whose messages (usage, errors, ``--help``) come from humasflow's
#: catalog while the command runs: each binds gettext's functions as ``_``/``ngettext``.
_CLICK_MODULES = ("click.core", "click.decorators", "click.exceptions", "click.formatting",
                  "click.parser", "click.types", "click.termui", "click.utils")


@contextlib.contextmanager
def _click_speaks_the_language() -> Iterator[None]:
    """Let click's own messages be translated from humasflow's catalog (restored after:
    an app that embeds the command keeps its own click untouched)."""
    saved: list[tuple[Any, str, Any]] = []
    for name in _CLICK_MODULES:
        module = sys.modules.get(name)
        for attr, ours in (("_", i18n._), ("ngettext", i18n.ngettext)):
            if module is not None and hasattr(module, attr):
                saved.append((module, attr, getattr(module, attr)))
                setattr(module, attr, ours)
    try:
        yield
    finally:
        for module, attr, original in saved:
            setattr(module, attr, original)


@contextlib.contextmanager
def _help_translated(*holders: Any) -> Iterator[None]:
    """Show the ``help``/``short_help`` of commands and options in the current language
    (they are written in English in the code, and found in the catalog by their text)."""
    saved = []
    for holder in holders:
        for attr in ("help", "short_help"):
            text = getattr(holder, attr, None)
            if isinstance(text, str) and text:
                saved.append((holder, attr, text))
                setattr(holder, attr, _(text))
    try:
        yield
    finally:
        for holder, attr, text in saved:
            setattr(holder, attr, text)


def _set_language(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """``--lang`` after a command's name: speak it from here on."""
    if value is not None:
        i18n.set_language(value)
        if isinstance(ctx.obj, _Session):
            ctx.obj.lang = value
            ctx.obj.lang_chosen = True


_LANG_CHOICE = click.Choice(list(i18n.LANGUAGES), case_sensitive=False)


class _TranslatedHelp(click.Command):
    """Help texts (the command's and its options') shown in the current language."""


    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with _help_translated(self):
            super().format_help_text(ctx, formatter)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click makes --help once per command, its text in the language of that moment:
        # give it back its English text, translated here like every other option's.
        help_option = self.get_help_option(ctx)
        if help_option is not None:
            help_option.help = N_("Show this message and exit.")
        with _help_translated(*self.get_params(ctx)):
            super().format_options(ctx, formatter)

    def get_short_help_str(self, limit: int = 45) -> str:
        with _help_translated(self):
            return super().get_short_help_str(limit)


class _Command(_TranslatedHelp):
    """A command whose help is translated and which takes ``--lang`` like the group."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(click.Option(
            ["--lang"], type=_LANG_CHOICE, expose_value=False, is_eager=True,
            callback=_set_language, help="The language to speak: id or en."))

    def invoke(self, ctx: click.Context) -> Any:
        # The plugins the group asked for load once the command's own options are
        # parsed: its --help and a mistyped option need none of them.
        warn = ctx.meta.pop(_LOAD_PLUGINS, None)
        if warn is not None:
            _load_plugins(warn=warn)
        return super().invoke(ctx)


class _Group(_TranslatedHelp, click.Group):
    """A group that turns every humasflow error into a one-line ``Error: ...``, speaks
    the chosen language, and translates its help.

    ``aliases`` maps other names to commands; they work but are not listed in the help.
    """

    command_class = _Command
    group_class = type  # subgroups are _Group too

    def __init__(self, *args: Any, aliases: Mapping[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases = dict(aliases or {})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and cmd_name in self.aliases:
            found = super().get_command(ctx, self.aliases[cmd_name])
        return found

    def main(self, args: Sequence[str] | None = None, *pargs: Any, **kwargs: Any) -> Any:
        """Run the command in the language asked for (see :func:`_wanted_language`)."""
        argv = list(sys.argv[1:] if args is None else args)
        lang = _wanted_language(argv) or i18n.DEFAULT_LANGUAGE
        with i18n.use(lang), _click_speaks_the_language():
            return super().main(argv, *pargs, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HumasflowError as exc:
            message = exc.reworded(_option_for(ctx.invoked_subcommand))
            raise click.ClickException(_printable(scrub(" ".join(message.split())))) from exc


#: The options that give what the library's parameters take, for errors that name them.
_OPTIONS = {"text": "--text", "media": "--media", "notes": "--notes", "link": "--link",
            "variants": "--variant", "channels": "--channel", "reason": "--reason",
            "findings": "--findings", "answer": "--answer", "note": "--note",
            "assignee": "--assignee", "title": "TITLE", "by": "--as"}
#: Where a command's option for a parameter has another name.
_COMMAND_OPTIONS: Mapping[str, Mapping[str, str]] = {
    "assign": {"assignee": "--to"},
    # The step actions hand their option to Office.act() as its note.
    "reject": {"note": "--reason"}, "cancel": {"note": "--reason"},
    "rework": {"note": "--findings"}, "approve": {"note": "--answer"},
    **{name: {"by": "--by"} for name in ("actor", "channel", "channels", "sop", "init")},
}


def _option_for(command: str | None) -> Callable[[str], str]:
    """How the command line names a library parameter in error messages (``--text``)."""
    names = {**_OPTIONS, **_COMMAND_OPTIONS.get(command or "", {})}
    return lambda param: names.get(param, param)


def _wanted_language(argv: Sequence[str]) -> str | None:
    """The language asked for before anything is parsed, so that ``--help`` and parse
    errors speak it too: the last ``--lang``, else ``HUMASFLOW_LANG``, else the
    configuration file's ``language`` (``None``: not asked; the SOP's language may say)."""
    asked = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--lang" and i + 1 < len(argv):
            asked = argv[i + 1]
        elif arg.startswith("--lang="):
            asked = arg.partition("=")[2]
    chosen = i18n.normalise(asked) or i18n.from_environment()
    if chosen is not None:
        return chosen
    named = None
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            named = argv[i + 1]
        elif arg.startswith("--config="):
            named = arg.partition("=")[2]
    try:
        return i18n.normalise(load_config(named).get("language"))
    except HumasflowError:
        return None  # reported when the group reads the file


@attrs.define
class _Session:
    """The global options of one invocation, and the office they open (lazily)."""

    db: str
    org: str
    lang: str
    tz: str | None
    config: Config = attrs.field(factory=Config)
    sources: dict[str, tuple[Any, str]] = attrs.field(factory=dict)
    lang_chosen: bool = False
    busy_timeout: float | None = None
    media_store: str | None = None
    media_roots: tuple[str, ...] = ()
    clock: Clock = system_clock
    environ: Mapping[str, str] | None = None
    sleep: Callable[[float], Any] | None = None
    secrets: Path | None = None
    source: CredentialSource | None = None
    _office: Office | None = None
    _zone: zoneinfo.ZoneInfo | None = None

    def _check_db(self) -> None:
        if not self.db.strip():
            _fail(_("--db is empty; give the path of a SQLite file (e.g. humasflow.db) or a "
                    "postgresql:// URL"))
        if _is_sqlite_path(self.db) and Path(self.db).is_dir():
            _fail(_("--db {db!r} is a directory; give the path of a SQLite file "
                    "(e.g. humasflow.db) or a postgresql:// URL").format(db=self.db))

    def office(self, *, create: bool = False) -> Office:
        """The office; unless ``create``, the store and the organisation must exist
        already (a misspelt ``--org`` creates nothing)."""
        if self._office is None:
            self._check_db()
            if not create and _is_sqlite_path(self.db) and not Path(self.db).exists():
                _fail(_("no humasflow store at {db!r}; create one with `humasflow init` "
                        "(or point --db / HUMASFLOW_DB at an existing one)").format(db=self.db))
            credentials = self.credentials()
            try:
                self._office = humasflow.open(
                    self.db, org=self.org, clock=self.clock, establish=False,
                    environ=self.environ if credentials is None else None,
                    credentials=credentials, busy_timeout=self.busy_timeout,
                    media=self.media_store, media_roots=self.media_roots,
                    media_max_bytes=self.config.media.get("max_bytes"),
                    media_host=self.config.media_host(), create=create,
                    calendar=self.calendar(), mail=self.mail_settings())
            except OrganisationNotFound as exc:
                _fail(_("there is no organisation {org!r} in the store {db}; its "
                        "organisations: {known}. Check --org (or HUMASFLOW_ORG); `humasflow "
                        "--org {org} init --admin ID --name NAME` sets up a new one").format(
                            org=exc.org, db=self.db,
                            known=", ".join(exc.known) or _("none")))
            click.get_current_context().call_on_close(self._office.close)
            if not self.lang_chosen and self._office.revisions():
                # Nobody asked for a language: the faculty's SOP may say which it speaks.
                spoken = self._office.sop().header.language
                if spoken is not None:
                    self.lang = spoken
                    i18n.set_language(spoken)
        return self._office

    def mail_settings(self) -> Any:
        """The configuration file's ``[mail]`` settings, or ``None`` without a section."""
        if not self.config.mail:
            return None
        from humasflow.mail.settings import MailSettings

        return MailSettings.from_config(self.config.mail)

    def calendar(self) -> WorkingCalendar | None:
        """The working calendar of the configuration file's ``[calendar]``, if any."""
        if not self.config.calendar:
            return None
        try:
            return WorkingCalendar.from_config(self.config.calendar, timezone=self.tz)
        except HumasflowError as exc:
            _fail(_("{path}: calendar: {message}").format(path=str(self.config.path),
                                                          message=str(exc)))

    def known_orgs(self) -> list[str] | None:
        """The organisations of the store, or ``None`` when there is no store yet (a
        SQLite file that does not exist); creates nothing."""
        self._check_db()
        if _is_sqlite_path(self.db) and not Path(self.db).exists():
            return None
        from humasflow.storage.store import Store

        timeout = self.busy_timeout if self.busy_timeout is not None else 30.0
        store = Store(self.db, busy_timeout=timeout)
        try:
            return store.orgs()
        finally:
            store.close()

    def store(self) -> Store:
        """The store itself, for the worker commands that serve every organisation in it
        (opened after :meth:`office` checked it, closed with the command)."""
        from humasflow.storage.store import Store

        office = self.office()
        store = Store(self.db, busy_timeout=office.busy_timeout)
        click.get_current_context().call_on_close(store.close)
        return store

    def credentials(self) -> CredentialSource | None:
        """The credential source: ``--secrets``' file, else the one handed in, else
        ``None`` (the office's default)."""
        if self.secrets is not None and self.source is None:
            self.source = SecretsFile(self.secrets)
        return self.source

    def zone(self) -> zoneinfo.ZoneInfo:
        """The display time zone: ``--tz``, else the current SOP's, else Asia/Jakarta."""
        if self._zone is None:
            name = self.tz
            if name is None:
                office = self.office()
                has_sop = bool(office.revisions())
                name = office.sop().header.timezone if has_sop else DEFAULT_ZONE
            self._zone = zoneinfo.ZoneInfo(name)
        return self._zone

    def now(self) -> dt.datetime:
        """The current time from the injected clock (aware, UTC)."""
        return self.clock().astimezone(dt.timezone.utc)


def _credential_options(session: _Session) -> dict[str, Any]:
    """The credential source for a worker: the session's, as the office has it."""
    credentials = session.credentials()
    if credentials is not None:
        return {"credentials": credentials}
    return {"environ": session.environ}


def _fail(message: str) -> NoReturn:
    raise click.ClickException(_printable(message))


def _is_sqlite_path(target: str) -> bool:
    return "://" not in target and target != ":memory:"


def _display_target(office: Office) -> str:
    # Office.location never holds a password that came with the URL.
    where = office.location
    return where if "://" in where or where == ":memory:" else str(Path(where).resolve())


def _zone_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise click.BadParameter(_("{zone!r} is not a known time zone (try Asia/Jakarta)").format(
            zone=value)) from exc
    return value


def _pairs(values: Iterable[str], what: str) -> dict[str, str]:
    """Turn ``key=value`` arguments into a dict."""
    result: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(_("{value!r} is not {what} (write key=value)").format(
                value=value, what=what))
        result[key.strip()] = rest.strip()
    return result


def _media_label(media: Media) -> str:
    """A media as ``show`` prints it: where it came from, what is stored, its alt text
    (the approval binds it too)."""
    if media.missing:
        label = _("{source} (MISSING: the file was gone when the store was migrated)").format(
            source=media.source)
    elif media.passthrough:
        label = _("{source} (URL passed through)").format(source=media.source)
    elif not media.is_stored:
        label = _("{source} (not in the media store)").format(source=media.source)
    elif media.width and media.height:
        label = _("{source} ({mime}, {width}x{height}, sha256 {digest})").format(
            source=media.source, mime=media.mime, width=media.width, height=media.height,
            digest=media.sha256[:12])
    else:
        label = _("{source} ({mime}, sha256 {digest})").format(
            source=media.source, mime=media.mime, digest=media.sha256[:12])
    if media.alt:
        label += " " + _("alt {alt!r}").format(alt=media.alt)
    return label


def _media_paths(values: Sequence[str]) -> list[str]:
    """Check local media files exist; store them as absolute paths (URLs stay as given)."""
    paths = []
    for value in values:
        if value.startswith(("http://", "https://")):
            paths.append(value)
            continue
        path = Path(value).expanduser()
        if path.is_dir():
            raise click.BadParameter(_("{path!r} is a folder; give a media file (an image or "
                                       "a video), e.g. one of the files in it").format(
                                           path=value), param_hint="--media")
        if not path.is_file():
            raise click.BadParameter(_("no file at {path!r}").format(path=value),
                                     param_hint="--media")
        paths.append(str(path.resolve()))
    return paths


def _variant_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that give a channel its own variant of the post."""
    for decorator in reversed((
        click.option("--variant", "variant_texts", multiple=True, metavar="CHANNEL=TEXT",
                     help="The text for one channel (repeatable)."),
        click.option("--variant-media", "variant_media", multiple=True,
                     metavar="CHANNEL=N,N", help="Which of the item's media one channel "
                     "attaches, by position from 0; empty for none (repeatable)."),
        click.option("--option", "variant_opts", multiple=True, metavar="CHANNEL.KEY=VALUE",
                     help="A publisher option for one channel, e.g. x.thread=true; VALUE "
                     "is read as JSON when it parses, else as text (repeatable)."),
    )):
        command = decorator(command)
    return command


def _variants(texts: Sequence[str], media: Sequence[str], options: Sequence[str],
              current: Mapping[str, Variant] | None = None, *,
              changed: bool = False) -> dict[str, Any] | None:
    """The variants after the ``--variant*``/``--option`` arguments (``None``: unchanged,
    unless ``changed`` says ``current`` itself was changed)."""
    if not (texts or media or options or changed):
        return None
    result: dict[str, dict[str, Any]] = {
        name: {"text": v.text, "media": None if v.media is None else list(v.media),
               "options": dict(v.options)} for name, v in (current or {}).items()}
    for name, text in _pairs(texts, "CHANNEL=TEXT").items():
        result.setdefault(name, {})["text"] = text
    for name, positions in _pairs(media, "CHANNEL=N,N").items():
        try:
            chosen = [int(p) for p in positions.split(",") if p.strip()]
        except ValueError:
            raise click.BadParameter(_("{positions!r} is not a list of media positions "
                                       "(0,1,...)").format(positions=positions),
                                     param_hint="--variant-media") from None
        result.setdefault(name, {})["media"] = chosen
    for key, raw in _pairs(options, "CHANNEL.KEY=VALUE").items():
        name, dot, option = key.partition(".")
        if not dot or not name or not option:
            raise click.BadParameter(_("{key!r}: write CHANNEL.KEY=VALUE, e.g. "
                                       "x.thread=true").format(key=key),
                                     param_hint="--option")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        result.setdefault(name, {}).setdefault("options", {})[option] = value
    return {name: {k: v for k, v in variant.items() if v is not None and v != {}}
            for name, variant in result.items()}


# -- formatting -----------------------------------------------------------------------------


class _Rendered(str):
    """Output already made safe for the terminal (a table whose cells were escaped)."""

    __slots__ = ()


#: A table's lines without borders: only a rule under the headers, as plain text.
@functools.cache
def _plain_box() -> rich.box.Box:
    import rich.box

    return rich.box.Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True)


def _styled() -> bool:
    """Colour and borders only on a terminal, and never with ``NO_COLOR`` set."""
    stream = sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("NO_COLOR")


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], *,
           spaced: bool = False) -> str:
    """Columns with a rule under the headers, rendered by rich.

    A cell may hold several lines (``"\\n"``); its row grows to fit them. ``spaced``
    puts a blank line between rows, so that multi-line rows stay apart. On a terminal
    (and without ``NO_COLOR``) the headers are bold and the table fits the window; else
    it is plain text that never wraps, for pipes, files and scripts.
    """
    import rich.box
    import rich.console
    import rich.table
    import rich.text

    styled = _styled()
    table = rich.table.Table(
        box=rich.box.SIMPLE_HEAD if styled else _plain_box(), show_edge=False, pad_edge=False,
        padding=(0, 1, 0, 0), show_lines=spaced, header_style="bold" if styled else "",
        expand=False)
    for header in headers:
        table.add_column(rich.text.Text(_printable(header, one_line=True)), no_wrap=not styled)
    for row in rows:
        table.add_row(*(rich.text.Text(_printable(cell)) for cell in row))
    out = io.StringIO()
    console = rich.console.Console(
        file=out, width=shutil.get_terminal_size().columns if styled else 100_000,
        force_terminal=styled, color_system="auto" if styled else None, no_color=not styled,
        highlight=False, markup=False, emoji=False, soft_wrap=False)
    console.print(table)
    return _Rendered("\n".join(line.rstrip() for line in out.getvalue().rstrip("\n").split("\n")))


@contextlib.contextmanager
def _progress(label: str) -> Iterator[Callable[[int], None]]:
    """A live count of the work done, on standard error when it is a terminal (drawn by
    rich, gone when the work ends); nothing otherwise, so pipes and logs stay clean."""
    stream = sys.stderr
    if not getattr(stream, "isatty", lambda: False)():
        yield lambda done: None
        return
    import rich.console
    import rich.progress  # only the commands that show progress need it

    console = rich.console.Console(file=stream, no_color=bool(os.environ.get("NO_COLOR")))
    with rich.progress.Progress(rich.progress.SpinnerColumn(),
                                rich.progress.TextColumn("{task.description}"),
                                rich.progress.TextColumn("{task.completed:,}"),
                                rich.progress.TimeElapsedColumn(),
                                console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done: bar.update(task, completed=done)


def _local(when: dt.datetime | None, zone: dt.tzinfo, *, seconds: bool = False) -> str:
    """A UTC time shown in ``zone``."""
    if when is None:
        return "-"
    return i18n.format_datetime(when, zone, seconds=seconds)


def _zone_name(zone: dt.tzinfo, at: dt.datetime) -> str:
    return at.astimezone(zone).strftime("%Z") or str(zone)


def _duration(delta: dt.timedelta) -> str:
    """A short duration: ``45s``, ``7m``, ``7m30s``, ``1h05m``, ``2d03h`` (in Indonesian
    ``2h03j``: hari, jam, menit, detik)."""
    return i18n.format_duration(delta)


def _short(text: str, width: int = 40) -> str:
    text = _printable(text, one_line=True)
    return text if len(text) <= width else text[: width - 3] + "..."


def _label(label: Label | None, lang: str) -> str:
    return label.get(lang) if label is not None else "-"


def _step_name(office: Office, revision: int, state: str | None) -> str:
    """``"5 approve"`` for a step, the bare state for ``posted``/``cancelled``."""
    if not state:
        return "-"
    step = office.engine(revision).step(state)
    return f"{step.number} {state}" if step is not None else state


def _awaits_approval(office: Office, item: ContentItem) -> bool:
    return item.state == office.engine(item.sop_revision).approval_step.key


def _flags(office: Office, item: ContentItem, now: dt.datetime,
           zone: dt.tzinfo | None = None) -> str:
    flags = []
    if _awaits_approval(office, item):
        flags.append(_("AWAITS APPROVAL"))
    if item.is_overdue(now):
        assert item.deadline is not None
        flags.append(_("OVERDUE +{late}").format(late=_duration(now - item.deadline)))
    if item.is_scheduled(now) and item.post_at is not None:
        flags.append(_("SCHEDULED {at}").format(at=_local(item.post_at, zone or _UTC)))
    if item.is_open and _at_posting(office, item):
        flags.extend(_channel_flags(office.publications(item.id)))
    return ", ".join(flags)


_UTC = dt.timezone.utc


def _at_posting(office: Office, item: ContentItem) -> bool:
    step = office.engine(item.sop_revision).step(item.state)
    return step is not None and step.output == "publication"


def _channel_flags(pubs: Mapping[str, Publication]) -> list[str]:
    """``FAILED x``, ``RETRYING x``, ``UNKNOWN x``, ``WAITING x``: the channels of an
    item at the posting step that are not settled and not simply still to go."""
    found: dict[str, list[str]] = {}
    for name, pub in sorted(pubs.items()):
        kind = pub.state
        if pub.state == "failed" and pub.next_attempt_at is not None:
            kind = "retrying"
        found.setdefault(kind, []).append(name)
    flags = {"failed": _("FAILED {channels}"), "retrying": _("RETRYING {channels}"),
             "unknown": _("UNKNOWN {channels}"), "waiting": _("WAITING {channels}")}
    return [flag.format(channels=" ".join(found[kind]))
            for kind, flag in flags.items() if kind in found]


def _timeline_table(office: Office, item: ContentItem, history: Sequence[Event],
                    zone: dt.tzinfo, now: dt.datetime) -> str:
    """Each step visit: who ended it, when it started, its duration against the standard."""
    runs = timeline(office.sop(item.sop_revision), history)
    # The events that move the item, as timeline() reads them: visit k ends with move k + 1.
    moves = [e for e in history if e.action == "create" or e.from_state != e.to_state]
    rows = []
    for k, run in enumerate(runs):
        took = _duration(run.duration(now))
        if run.standard is not None:
            took += f" / {_duration(run.standard)}"
        over = run.over(now)
        if run.ended_at is None and item.is_open and k == len(runs) - 1:
            # The current visit is late by the item's deadline (a schedule moves it).
            deadline = item.deadline
            over = now - deadline if deadline is not None and item.is_overdue(now) else None
        outcome = run.outcome or _("(current step)")
        if run.ended_at is not None and k + 1 < len(moves):
            outcome += f" -> {_step_name(office, item.sop_revision, moves[k + 1].to_state)}"
        rows.append((run.number, run.step, run.ended_by or "-", _local(run.started_at, zone),
                     took, _("LATE +{late}").format(late=_duration(over)) if over else "",
                     outcome))
    headers = ("#", _("Step"), _("Ended by"),
               _("Started ({zone})").format(zone=_zone_name(zone, now)), _("Took / standard"),
               _("Late"), _("Outcome"))
    return _table(headers, rows)


def _move_line(office: Office, before: ContentItem, after: ContentItem, actor: str,
               zone: dt.tzinfo, now: dt.datetime) -> str:
    """What one action did, in one line (plus where the item waits now)."""
    rev = before.sop_revision
    if before.state == after.state:
        at = _step_name(office, rev, after.state)
        if before.is_approved and not after.is_approved:
            return _("Item {id}: {actor} revised it at step {step}; the approval is withdrawn, "
                     "it needs the coordinator again.").format(id=after.id, actor=actor, step=at)
        return _("Item {id}: {actor} revised it at step {step}.").format(id=after.id,
                                                                          actor=actor, step=at)
    took = ""
    if before.step_started_at is not None:
        step = office.engine(rev).step(before.state)
        spent = _duration(now - before.step_started_at)
        took_text = _("took {took}").format(took=spent)
        if step is not None and step.standard_time is not None:
            standard = _duration(step.standard_time)
            late = now - before.step_started_at - step.standard_time
            if late > dt.timedelta(0):
                took_text = _("took {took} / {standard}, LATE +{late}").format(
                    took=spent, standard=standard, late=_duration(late))
            else:
                took_text = _("took {took} / {standard}").format(took=spent, standard=standard)
        took = f" ({took_text})"
    line = _("Item {id}: {before} -> {after} by {actor}{took}.").format(
        id=after.id, before=_step_name(office, rev, before.state),
        after=_step_name(office, rev, after.state), actor=actor, took=took)
    if after.is_open and after.due_at is not None:
        line += " " + _("Due {due}.").format(due=_local(after.due_at, zone))
    if _awaits_approval(office, after):
        line += " " + _("Waits for the coordinator's approval.")
    return line


def _event_note(event: Event, zone: dt.tzinfo) -> str:
    """The event's note, or a short summary of its data (scrubbed of secrets)."""
    return scrub(_event_summary(event, zone))


def _event_summary(event: Event, zone: dt.tzinfo) -> str:
    if event.note:
        return event.note
    data = event.data
    if event.action == "create":
        return _("title {title!r}").format(title=data.get("title", ""))
    if event.action == "establish":
        return _("SOP revision {revision}: {number}").format(revision=data.get("revision"),
                                                             number=data.get("number", ""))
    if event.action == "actor":
        return f"{data.get('id')} ({', '.join(data.get('roles', []))})"
    if event.action == "channel":
        return _("{name} via {publisher}").format(name=data.get("name"),
                                                  publisher=data.get("publisher"))
    if event.action == "unschedule":
        if data.get("previous"):
            return _("schedule removed (was post at {at})").format(
                at=_local(dt.datetime.fromisoformat(data["previous"]), zone))
        return _("schedule removed")
    if "post_at" in data:
        if data.get("previous") and event.action == "schedule":
            return _("post at {at} (was {previous})").format(
                at=_local(dt.datetime.fromisoformat(data["post_at"]), zone),
                previous=_local(dt.datetime.fromisoformat(data["previous"]), zone))
        return _("post at {time}").format(
            time=_local(dt.datetime.fromisoformat(data["post_at"]), zone))
    if "channel" in data:
        detail = data.get("url") or data.get("error_message") or ""
        return f"{data['channel']}: {data.get('state', '')} {detail}".rstrip()
    if isinstance(data.get("channels"), Mapping):
        return _("posted to {channels}").format(channels=", ".join(sorted(data["channels"])))
    return ""


# -- the command group ----------------------------------------------------------------------


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]},
             aliases={"post": "publish", "channels": "channel"})
@click.version_option(humasflow.__version__, prog_name="humasflow")
@click.option("--config", "config_file", envvar="HUMASFLOW_CONFIG", show_envvar=True,
              metavar="FILE", help="The configuration file (default: humasflow.toml here, "
                                   "else the user's config.toml).")
@click.option("--db", envvar="HUMASFLOW_DB", default=DEFAULT_DB, show_default=True,
              show_envvar=True, help="The store: a SQLite file, or a postgresql:// URL.")
@click.option("--org", envvar="HUMASFLOW_ORG", default=DEFAULT_ORG, show_default=True,
              show_envvar=True, help="The organisation (faculty or unit).")
@click.option("--media-store", envvar="HUMASFLOW_MEDIA", show_envvar=True, metavar="FOLDER",
              help="The media store's folder (default: beside a SQLite store; required for "
                   "PostgreSQL).")
@click.option("--media-root", "media_roots", multiple=True, metavar="FOLDER",
              help="A folder media may be attached from, besides the working directory "
                   "(repeatable).")
@click.option("--lang", type=_LANG_CHOICE, envvar="HUMASFLOW_LANG", show_envvar=True,
              help="The language to speak: id or en (default: the configuration's, else the "
                   "SOP's, else en).")
@click.option("--tz", callback=_zone_option, metavar="ZONE", envvar="HUMASFLOW_TZ",
              show_envvar=True,
              help="Show times in this zone (default: the SOP's, Asia/Jakarta).")
@click.option("--busy-timeout", envvar="HUMASFLOW_BUSY_TIMEOUT", show_envvar=True,
              type=click.FloatRange(min=0, max=86400), metavar="SECONDS",
              help="How long a write waits for another writer's lock (default: 30).")
@click.option("--secrets", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              envvar="HUMASFLOW_SECRETS", show_envvar=True,
              help="Read channel credentials from this TOML file (mode 600) instead of the "
                   "environment; renewed credentials are written back to it.")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, db: str, org: str,
        media_store: str | None, media_roots: tuple[str, ...], lang: str | None,
        tz: str | None, busy_timeout: float | None, secrets: Path | None) -> None:
    """Run a PR office's social-media SOP: items, approvals, records and posting."""
    seam = ctx.obj if isinstance(ctx.obj, Mapping) else {}
    config = load_config(config_file)
    sources: dict[str, tuple[Any, str]] = {}

    def pick(param: str, key: str, value: Any, from_file: Any) -> Any:
        """Flag > environment > file > default, remembering where each value came from."""
        source = ctx.get_parameter_source(param)
        if source in (click.core.ParameterSource.COMMANDLINE,
                      click.core.ParameterSource.ENVIRONMENT):
            where = _("flag") if source is click.core.ParameterSource.COMMANDLINE else _(
                "environment")
        elif from_file is not None:
            value, where = from_file, str(config.path)
        else:
            where = _("default")
        sources[key] = (value, where)
        return value

    db = pick("db", "store", db, config.relative(config.get("store")) if config.get("store")
              else None)
    org = pick("org", "org", org, config.get("org"))
    lang = pick("lang", "language", lang, config.get("language"))
    tz = pick("tz", "timezone", tz, config.get("timezone"))
    busy_timeout = pick("busy_timeout", "busy_timeout", busy_timeout, config.get("busy_timeout"))
    secrets = pick("secrets", "secrets", secrets,
                   Path(config.relative(config.get("secrets"))) if config.get("secrets")
                   else None)
    media_store = pick("media_store", "media.store", media_store,
                       config.relative(config.media["store"]) if "store" in config.media
                       else None)
    roots = tuple(media_roots) or tuple(config.relative(r) for r in config.media.get("roots", ()))
    sources["media.roots"] = (", ".join(roots) or None,
                              _("flag") if media_roots else str(config.path) if roots
                              else _("default"))
    if lang is not None:
        i18n.set_language(lang)
    ctx.obj = _Session(db=db, org=org, lang=lang or i18n.DEFAULT_LANGUAGE, tz=tz,
                       busy_timeout=busy_timeout,
                       media_store=media_store, media_roots=roots,
                       clock=seam.get("clock", system_clock), environ=seam.get("environ"),
                       sleep=seam.get("sleep"), secrets=secrets,
                       source=seam.get("credentials"), config=config, sources=sources,
                       lang_chosen=lang is not None)
    # Loaded by the command when it runs (see _Command.invoke); `plugins` lists the
    # broken ones itself.
    ctx.meta[_LOAD_PLUGINS] = ctx.invoked_subcommand != "plugins"


#: The key of :attr:`click.Context.meta` (shared by the nested contexts) that holds
#: whether the command about to run loads the plugins with a warning for each broken one.
_LOAD_PLUGINS = "humasflow.load_plugins"


def _load_plugins(*, warn: bool) -> None:
    """Load the plugins; unless not ``warn``, say in one line on stderr for each broken
    one what to do (it is left out, and the command runs without it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", registry.PluginWarning)  # said below, in one line
        registry.load_plugins()
    for broken in registry.broken_plugins() if warn else ():
        _echo(_("Warning: {message}").format(message=broken.message), err=True)


def main(argv: Sequence[str] | None = None) -> None:
    """The console-script entry point."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="humasflow")


# -- init and the SOP -----------------------------------------------------------------------


_admin_by = click.option("--by", "--as", "by", required=True, metavar="ADMIN",
                         help="The administrator who makes this change.")


@cli.command()
@click.option("--sop", "sop_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Establish this SOP file (always, even if the org has one).")
@click.option("--outbox", type=click.Path(file_okay=False, path_type=Path),
              help="Add a channel named 'outbox' that writes posts into this folder.")
@click.option("--admin", "admin_id", metavar="ID",
              help="Create the organisation's first administrator (only while it has none).")
@click.option("--name", "admin_name", metavar="NAME", help="The administrator's name.")
@click.option("--email", "admin_email", default="", help="The administrator's email.")
@click.option("--by", "--as", "by", metavar="ADMIN",
              help="An existing administrator, for --sop or --outbox on a set-up organisation.")
@click.pass_obj
def init(session: _Session, sop_file: Path | None, outbox: Path | None,
         admin_id: str | None, admin_name: str | None, admin_email: str,
         by: str | None) -> None:
    """Create or migrate the store, make the first administrator and establish the SOP
    (step 1)."""
    if admin_id is not None and not (admin_name or "").strip():
        raise click.BadParameter(_("give the administrator's name with --name"),
                                 param_hint="--name")
    # Everything that can be checked is checked before the store is created or changed.
    sop = load_sop(sop_file) if sop_file is not None else None
    if outbox is not None and admin_id is None and by is None:
        _fail(_("adding the outbox channel needs an administrator: give --admin ID --name "
                "NAME (the first one) or --by ADMIN"))
    if sop_file is not None and admin_id is None and by is None:
        _fail(_("establishing an SOP revision needs an administrator: give --admin ID --name "
                "NAME (the first one) or --by ADMIN"))
    known = session.known_orgs()
    new_org = session.org not in (known or [])
    if by is not None and admin_id is None and new_org:
        _fail(_("--by {by}: there is no organisation {org!r} in this store yet, so it has no "
                "administrator; its organisations: {known}. Check --org, or set the new "
                "organisation up with --admin ID --name NAME").format(
                    by=by, org=session.org, known=", ".join(known or []) or _("none")))
    office = session.office(create=True)
    _echo(_("Store: {target} (schema version {version})").format(
        target=_display_target(office), version=office.schema_version))
    others = [org for org in (known or []) if org != office.org]
    if new_org and others:
        _echo(_("Organisation: {org} (new; the store's other organisations: {others})")
              .format(org=office.org, others=", ".join(others)))
    else:
        _echo(_("Organisation: {org}").format(org=office.org))
    if by is not None and admin_id is None:
        admins = [a.id for a in office.administrators()]
        if by not in admins:
            # The library lets an organisation without administrator be set up by anyone:
            # a command that names an administrator must name a real one.
            _fail(_("--by {by} is not an active administrator of organisation {org!r}; its "
                    "administrators: {admins}").format(
                        by=by, org=office.org,
                        admins=", ".join(admins) or _("none yet (make the first with "
                                                      "--admin ID --name NAME)")))
    if admin_id is not None:
        admin = office.bootstrap_admin(admin_id.strip(), str(admin_name).strip(),
                                       email=admin_email)
        _echo(_("Administrator: {id} ({name})").format(id=admin.id, name=admin.name))
        by = by or admin.id
    if by is not None and (sop is not None or not office.revisions()):
        # The administrator who runs init establishes the SOP, never its signatory: the
        # approver the document names is a fact of the document (`sop show`).
        rev = office.establish(sop, by=by)
        established = office.sop(rev)
        _echo(_("Established SOP revision {rev}: {number} ({title}), effective "
                "{effective}").format(rev=rev, number=established.header.number,
                                      title=established.header.title.get(session.lang),
                                      effective=established.header.effective))
    elif office.revisions():
        latest = office.revisions()[-1]
        latest_id, latest_number = latest["id"], latest["number"]
        _echo(_("SOP already established: revision {rev} ({number})").format(
            rev=latest_id, number=latest_number))
    elif office.administrators():
        _echo(_("No SOP revision established yet: establish it with `humasflow init --by "
                "ADMIN`."))
    if outbox is not None:
        assert by is not None
        folder = outbox.expanduser().resolve()
        office.add_channel("outbox", "outbox", settings={"path": str(folder)}, by=by)
        _echo(_("Channel 'outbox' writes posts into {folder}").format(folder=folder))
    if not office.administrators():
        _echo(_("No administrator yet: make the first with `humasflow init --admin ID --name "
                "NAME`; they establish the SOP and add actors and channels."))


@cli.group()
def sop() -> None:
    """Show, draw and register the SOP."""


@sop.command("show")
@click.option("--revision", type=int, help="A registered revision (default: the current one).")
@click.pass_obj
def sop_show(session: _Session, revision: int | None) -> None:
    """The SOP: its header facts and its steps."""
    office = session.office()
    rev = revision if revision is not None else office.current_revision()
    definition = office.sop(rev)
    meta = next(r for r in office.revisions() if r["id"] == rev)
    _echo(_sop_text(definition, meta, session.lang, session.zone()))


#: The headings of the signed SOP form (translated like every other message).
_WORDS: Mapping[str, str] = {
    "number": N_("SOP number"),
    "title": N_("SOP name"),
    "institution": N_("Institution"),
    "made": N_("Made"),
    "revised": N_("Revised"),
    "effective": N_("Effective"),
    "approved": N_("Approved by"),
    "revision": N_("Registered revision"),
    "legal_basis": N_("Legal basis"),
    "qualifications": N_("Executor qualifications"),
    "related": N_("Related SOPs"),
    "equipment": N_("Equipment and supplies"),
    "warnings": N_("Warnings"),
    "recording": N_("Recording"),
    "roles": N_("Executors"),
    "no": N_("No"),
    "activity": N_("Activity"),
    "actor": N_("Actor"),
    "time": N_("Standard time"),
    "output": N_("Output"),
    "kit": N_("Equipment"),
    "phase": N_("Phase"),
}


def _word(key: str, lang: str) -> str:
    with i18n.use(lang):
        return _(_WORDS[key])


def _sop_text(sop: SOP, meta: Mapping[str, Any], lang: str, zone: dt.tzinfo) -> str:
    h = sop.header

    def w(key: str) -> str:
        return _word(key, lang)

    approver = h.approved_by_name or "-"
    if h.approved_by_position is not None:
        approver += f", {h.approved_by_position.get(lang)}"
    if h.approved_by_nip:
        approver += " " + _("(NIP {nip})").format(nip=h.approved_by_nip)
    facts = [
        (w("number"), h.number),
        (w("title"), h.title.get(lang)),
        (w("institution"), _label(h.institution, lang)),
        (w("made"), str(h.made or "-")),
        (w("revised"), str(h.revised or "-")),
        (w("effective"), str(h.effective or _("on establishment"))),
        (w("approved"), approver),
        (w("revision"), f"{meta['id']}, {meta['established_by']}, "
                        f"{_local(meta['established_at'], zone)}"),
        (w("recording"), _label(h.recording, lang)),
    ]
    width = max(len(k) for k, _ in facts)
    lines = [f"{k.ljust(width)}  {v}" for k, v in facts]
    for key, labels in (("legal_basis", h.legal_basis), ("qualifications", h.qualifications),
                        ("related", h.related), ("equipment", h.equipment),
                        ("warnings", h.warnings)):
        if labels:
            lines += ["", f"{w(key)}:"]
            lines += [f"  {i}. {label.get(lang)}" for i, label in enumerate(labels, 1)]
    lines += ["", f"{w('roles')}:"]
    lines += [f"  {role.key}: {role.name.get(lang)}" for role in sop.roles.values()]
    rows = []
    for step in sop.steps:
        role = sop.roles[step.actor].name.get(lang) if step.actor else "-"
        rows.append((step.number, "\n".join(textwrap.wrap(step.activity.get(lang), 44)),
                     role, _duration(step.standard_time) if step.standard_time else "-",
                     _label(step.output_label, lang),
                     "\n".join(e.get(lang) for e in step.equipment) or "-",
                     PHASES[step.phase][0 if lang == "id" else 1]))
    headers = tuple(w(k) for k in ("no", "activity", "actor", "time", "output", "kit", "phase"))
    lines += ["", _table(headers, rows, spaced=True)]
    return "\n".join(lines)


#: An action possible from this many steps or more is drawn once, not from every step.
_FAN_IN = 3


def _mermaid(office: Office, revision: int, lang: str) -> str:
    """The item lifecycle of a revision as a Mermaid ``stateDiagram-v2``.

    The graph comes from transitions' own Mermaid engine, fed with the states and
    transitions of the revision's Engine; only the title block is written here, because
    transitions 0.9.3 puts a bare title where Mermaid expects ``title: ...``.

    An action that many steps share (``cancel``, ``revise``) would put an arrow on every
    step and bury the flow. It is drawn once per destination instead: from one box that
    names the steps (``2-8``), and, where it keeps the step, as one note.
    """
    engine = office.engine(revision)
    sop = engine.sop
    states: list[dict[str, Any]] = []
    for name in engine.machine.states:
        step = engine.step(name)
        if step is None:
            states.append({"name": name, "final": True})
            continue
        role = sop.roles[step.actor].name.get(lang) if step.actor else ""
        states.append({"name": name, "label": f"{step.number}. {name} ({role})"})
    edges = [(trigger, t.source, t.dest)
             for trigger, event in engine.machine.events.items()
             for group in event.transitions.values() for t in group]
    fan_in = collections.Counter(_edge_key(*edge) for edge in edges)
    shared = [edge for edge in edges if fan_in[_edge_key(*edge)] >= _FAN_IN]
    transitions = [{"trigger": trigger, "source": source, "dest": dest}
                   for trigger, source, dest in edges if (trigger, source, dest) not in shared]
    with i18n.use(lang):
        title = _("{title}: content item lifecycle").format(title=sop.header.title.get(lang))
    from humasflow._diagram import DiagramMachine, GraphMachine

    machine = DiagramMachine(model=None, states=states, transitions=transitions,
                              initial=engine.first_step, auto_transitions=False,
                              graph_engine="mermaid", title=title)
    # A graph of the machine itself, not of a model: no state is marked as active.
    # (The stub types the argument as the machine class; the engine takes the instance.)
    graph = cast(Callable[[GraphMachine], Any], machine.graph_cls)(machine)
    source = str(graph.get_graph(title=title).draw(None))
    lines = source.splitlines()
    body = lines[next(i for i, line in enumerate(lines) if line.startswith("stateDiagram")):]
    body += _shared_edges(engine, shared)
    body += [f"  {name} --> [*]" for name in _CLOSED]
    # Mermaid's front matter (a key of its syntax, not a message).
    front = "title: " + json.dumps(title, ensure_ascii=False)
    return "\n".join(["---", front, "---", *body])


def _edge_key(trigger: str, source: str, dest: str | None) -> tuple[str, str | None]:
    """An action and where it leads (``None``: it keeps the step)."""
    return trigger, None if dest in (None, source) else dest


def _shared_edges(engine: Any, edges: Sequence[tuple[str, str, str | None]]) -> list[str]:
    """The shared actions, each drawn once per destination (see :func:`_mermaid`)."""
    def numbers(sources: Iterable[str]) -> str:
        found = sorted(engine.step(name).number for name in sources)
        runs: list[list[int]] = []
        for n in found:
            if runs and n == runs[-1][-1] + 1:
                runs[-1].append(n)
            else:
                runs.append([n])
        return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 2 else ", ".join(map(str, r))
                         for r in runs)

    lines: list[str] = []
    groups: dict[tuple[str, str | None], list[str]] = {}
    for trigger, source, dest in edges:
        groups.setdefault(_edge_key(trigger, source, dest), []).append(source)
    for (trigger, dest), sources in groups.items():
        steps = numbers(sources)
        if dest is None:  # the action keeps the step: a note, not a loop on every step
            lines.append(f"  note right of {sources[0]}")  # not a message: Mermaid
            lines.append("    " + _("{action} at steps {steps}: the item stays at its "
                                    "step").format(action=trigger, steps=steps))
            lines.append("  end note")
            continue
        box = f"{trigger}_to_{dest}"
        label = _("steps {steps}").format(steps=steps)
        lines.append(f'  state "{label}" as {box}')  # not a message: Mermaid
        lines.append(f"  {box} --> {dest}: {trigger}")
    return lines


@sop.command("diagram")
@click.option("--revision", type=int, help="A registered revision (default: the current one).")
@click.pass_obj
def sop_diagram(session: _Session, revision: int | None) -> None:
    """The item lifecycle as a Mermaid state diagram."""
    office = session.office()
    rev = revision if revision is not None else office.current_revision()
    _echo(_mermaid(office, rev, session.lang))


@sop.command("establish")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_admin_by
@click.option("--effective", type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="From when it applies (default: the file's effective date).")
@click.option("--note", default="", help="Why (kept in the record).")
@click.pass_obj
def sop_establish(session: _Session, file: Path, by: str,
                  effective: dt.datetime | None, note: str = "") -> None:
    """Establish a new revision of the SOP from FILE (also: sop register)."""
    _established(session, session.office(), load_sop(file), by=by, effective=effective,
                 note=note)


@sop.command("register", hidden=True)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_admin_by
@click.option("--effective", type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="From when it applies (default: the file's effective date).")
@click.option("--note", default="", help="Why (kept in the record).")
@click.pass_obj
def sop_register(session: _Session, file: Path, by: str,
                 effective: dt.datetime | None, note: str = "") -> None:
    """Establish a new revision of the SOP from FILE (step 1)."""
    _established(session, session.office(), load_sop(file), by=by, effective=effective,
                 note=note)


def _established(session: _Session, office: Office, definition: SOP, *, by: str,
                 effective: dt.datetime | None, note: str) -> None:
    rev = office.establish(definition, by=by, note=note,
                           effective=effective.date() if effective is not None else None)
    meta = next(r for r in office.revisions() if r["id"] == rev)
    established_by, effective_from = meta["established_by"], meta["effective_from"]
    _echo(_("Established SOP revision {rev}: {number} ({title}) by {by}, effective "
            "{effective}").format(rev=rev, number=definition.header.number,
                                  title=definition.header.title.get(session.lang),
                                  by=established_by,
                                  effective=_local(effective_from, session.zone())))
    if office.current_revision() != rev:
        _echo(_("Not in effect yet: new items use revision {current} until then. Items keep "
                "the revision they started under.").format(current=office.current_revision()))


def _revise_pairs(option: str, values: Sequence[str], sep: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        left, found, right = value.partition(sep)
        if not found or not left.strip() or not right.strip():
            _fail(_("{option} {value!r}: write it as STEP{sep}VALUE").format(
                option=option, value=value, sep=sep))
        pairs.append((left.strip(), right.strip()))
    return pairs


def _added_steps(sop: SOP, additions: list[tuple[str, str]], *,
                 times: list[tuple[str, str]], actors: list[tuple[str, str]],
                 activities: list[tuple[str, str]], outputs: list[tuple[str, str]],
                 ) -> list[tuple[dict[str, Any], str]]:
    """The definitions of the steps ``--add-step`` adds, from the options naming them
    (``--activity``, and for a content step ``--actor`` and ``--output``); each takes the
    phase of the step it follows."""
    phases = {str(s["key"]): s.get("phase", "execution") for s in sop.data["steps"]}
    keys = [key for key, _after in additions]
    for option, pairs in (("--activity", activities), ("--output", outputs)):
        for key, _value in pairs:
            if key not in keys:
                _fail(_("{option} {key}=…: {key!r} is not a step added with --add-step; "
                        "add it with --add-step {key}:AFTER").format(option=option, key=key))
    found = []
    for key, after in additions:
        if key in phases:
            _fail(_("--add-step {key}:{after}: the SOP already has a step {key!r}; change "
                    "it with --standard-time or --actor, or add a step with a new key")
                  .format(key=key, after=after))
        if key not in dict(activities):
            _fail(_("--add-step {key}:{after}: give the new step's activity with --activity "
                    "{key}=TEXT").format(key=key, after=after))
        definition: dict[str, Any] = {
            "key": key, "number": 0, "phase": phases.get(after, "execution"),
            "activity": dict(activities)[key]}
        # A content step has an actor and an output; a step without them concerns the
        # procedure itself (the SOP loader says which is missing).
        for field, pairs in (("actor", actors), ("output", outputs),
                             ("standard_time", times)):
            if key in dict(pairs):
                definition[field] = dict(pairs)[key]
        found.append((definition, after))
        phases[key] = definition["phase"]
    return found


@sop.command("revise")
@click.option("--standard-time", "times", multiple=True, metavar="STEP=DURATION",
              help="Change a step's standard time, e.g. approve=30m (repeatable).")
@click.option("--actor", "actors", multiple=True, metavar="STEP=ROLE",
              help="Change who carries a step out (or approves), e.g. recheck=coordinator.")
@click.option("--add-step", "additions", multiple=True, metavar="STEP:AFTER",
              help="Add a step just after another, e.g. check:design; give its --activity, "
                   "--actor and --output (and --standard-time) with the new key.")
@click.option("--activity", "activities", multiple=True, metavar="STEP=TEXT",
              help="An added step's activity, e.g. 'check=Check the design'.")
@click.option("--output", "outputs", multiple=True, metavar="STEP=KIND",
              help="What an added step requires, e.g. check=approval.")
@click.option("--move", "moves", multiple=True, metavar="STEP:AFTER",
              help="Move a step to just after another, e.g. prepare:design.")
@click.option("--remove", "removes", multiple=True, metavar="STEP", help="Remove a step.")
@click.option("--header", "headers", multiple=True, metavar="FIELD=VALUE",
              help="Change a header field, e.g. number=UN10/05-rev1.")
@click.option("--revision", type=int, help="Start from this revision (default: current).")
@click.option("--establish", "establish", is_flag=True,
              help="Establish the proposal (administrators, with --by).")
@click.option("--by", "--as", "by", metavar="ADMIN", help="The administrator who "
              "establishes it.")
@click.option("--effective", type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="From when it applies (with --establish).")
@click.option("--note", default="", help="Why (kept in the record).")
@click.pass_obj
def sop_revise(session: _Session, times: tuple[str, ...], actors: tuple[str, ...],
               additions: tuple[str, ...], activities: tuple[str, ...],
               outputs: tuple[str, ...], moves: tuple[str, ...], removes: tuple[str, ...],
               headers: tuple[str, ...], revision: int | None, establish: bool,
               by: str | None, effective: dt.datetime | None, note: str) -> None:
    """Propose a new SOP revision from the current one and show the difference."""
    from humasflow import revision as rv

    office = session.office()
    base = revision if revision is not None else office.current_revision()
    added = _added_steps(office.sop(base), _revise_pairs("--add-step", additions, ":"),
                         times=_revise_pairs("--standard-time", times, "="),
                         actors=_revise_pairs("--actor", actors, "="),
                         activities=_revise_pairs("--activity", activities, "="),
                         outputs=_revise_pairs("--output", outputs, "="))
    changes: list[Any] = [rv.AddStep(definition, after=after)
                          for definition, after in added]
    new = {definition["key"] for definition, _after in added}
    changes += [rv.SetStandardTime(k, v) for k, v in _revise_pairs(
        "--standard-time", times, "=") if k not in new]
    changes += [rv.SetActor(k, v) for k, v in _revise_pairs("--actor", actors, "=")
                if k not in new]
    changes += [rv.MoveStep(k, after=v) for k, v in _revise_pairs("--move", moves, ":")]
    changes += [rv.RemoveStep(k) for k in removes]
    changes += [rv.SetHeader(k, v) for k, v in _revise_pairs("--header", headers, "=")]
    if not changes:
        _fail(_("nothing to revise: give --standard-time, --actor, --add-step, --move, "
                "--remove or --header"))
    proposal = _library_value(lambda: office.propose_revision(changes, revision=base))
    _echo(_("Proposed from revision {rev}:").format(rev=base))
    _echo(office.revision_diff(base, proposal).text())
    if not establish:
        _echo(_("Nothing stored; add --establish --by ADMIN to establish it."))
        return
    if by is None:
        _fail(_("--establish needs --by ADMIN: the administrator who establishes it"))
    _established(session, office, proposal, by=by, effective=effective, note=note)


@sop.command("diff")
@click.argument("old", type=int)
@click.argument("new", type=int)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="How to write it.")
@click.pass_obj
def sop_diff(session: _Session, old: int, new: int, fmt: str) -> None:
    """The difference between two revisions: steps added, removed, moved, fields."""
    found = session.office().revision_diff(old, new)
    if fmt == "json":
        _echo(json.dumps(found.to_dict(), ensure_ascii=False, indent=2, default=str))
        return
    _echo(found.text())


@sop.command("history")
@click.pass_obj
def sop_history(session: _Session) -> None:
    """Every revision: who established it, from when, why, and its items."""
    office, zone = session.office(), session.zone()
    rows = []
    for h in office.revision_history():
        number, by, items = h["number"], h["established_by"], h["items"]  # not a message
        effective, note = h["effective_from"], h["note"]  # not a message
        rows.append((h["id"], number, by, _local(effective, zone), items,
                     _short(note or "-", 40)))
    _echo(_table((_("Revision"), _("Number"), _("By"), _("Effective"), _("Items"), _("Note")),
                 rows))


# -- actors and channels --------------------------------------------------------------------


@cli.group()
def actor() -> None:
    """Add, list, deactivate and reactivate the people who act on items."""


@actor.command("add")
@click.argument("actor_id", metavar="ID")
@click.option("--name", required=True, help="The person's name.")
@click.option("--email", default="", help="Their email address.")
@click.option("--role", "roles", multiple=True, required=True,
              help="A role of the SOP, or 'admin' (repeat for several).")
@click.option("--mail-language", "language", type=click.Choice(["id", "en"]),
              help="The language of the mail they are sent (default: what they had, "
                   "else [mail] language).")
@_admin_by
@click.pass_obj
def actor_add(session: _Session, actor_id: str, name: str, email: str,
              roles: tuple[str, ...], language: str | None, by: str) -> None:
    """Add an actor (or replace their name, email and roles)."""
    if not actor_id.strip():
        raise click.BadParameter(_("the id is empty: use a stable id such as a username"))
    office = session.office()
    known = {key for r in office.revisions() for key in office.sop(int(r["id"])).roles}
    unknown = sorted(set(roles) - known - {ADMIN_ROLE}) if known else []
    if unknown:
        _fail(_("the SOP has no role {role!r}; its roles: {roles} (and {admin!r}, the "
                "administrators)").format(role=unknown[0], roles=", ".join(sorted(known)),
                                          admin=ADMIN_ROLE))
    added = office.add_actor(actor_id.strip(), name, email=email, roles=roles, by=by,
                             language=language)
    _echo(_("Actor {id} ({name}): {roles}").format(id=added.id, name=added.name,
                                                   roles=", ".join(sorted(added.roles))))


@actor.command("list")
@click.pass_obj
def actor_list(session: _Session) -> None:
    """The organisation's actors."""
    office = session.office()
    actors = office.actors()
    if not actors:
        _echo(_("No actors yet; add one with `humasflow actor add`."))
        return
    roles: dict[str, str] = {}
    if office.revisions():
        roles = {k: r.name.get(session.lang) for k, r in office.sop().roles.items()}
    roles[ADMIN_ROLE] = _("administrator")
    _echo(_table((_("ID"), _("Name"), _("Email"), _("Roles"), _("Status")), [
        (a.id, a.name, a.email or "-",
         ", ".join(f"{r} ({roles[r]})" if r in roles else r for r in sorted(a.roles)),
         _("active") if a.active else _("deactivated"))
        for a in actors]))


@actor.command("deactivate")
@click.argument("actor_id", metavar="ID")
@_admin_by
@click.option("--reason", default="", help="Why (kept in the record).")
@click.pass_obj
def actor_deactivate(session: _Session, actor_id: str, by: str, reason: str) -> None:
    """Deactivate an actor: kept in the record, but cannot act or be assigned."""
    done = session.office().deactivate_actor(actor_id, by=by, reason=reason)
    _echo(_("Actor {id} ({name}) is deactivated").format(id=done.id, name=done.name))


@actor.command("activate")
@click.argument("actor_id", metavar="ID")
@_admin_by
@click.option("--reason", default="", help="Why (kept in the record).")
@click.pass_obj
def actor_activate(session: _Session, actor_id: str, by: str, reason: str) -> None:
    """Reactivate a deactivated actor."""
    done = session.office().activate_actor(actor_id, by=by, reason=reason)
    _echo(_("Actor {id} ({name}) is active").format(id=done.id, name=done.name))


@cli.group(short_help="Add, list and check channels (also: channels).")
def channel() -> None:
    """Add, list and check the channels items are posted to (also: `channels`)."""


@channel.command("add")
@click.argument("name")
@click.option("--publisher", help="An installed publisher, e.g. outbox (default: the "
                                "configuration file's [channels.NAME] publisher).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A publisher setting (repeatable; added to the configuration file's).")
@click.option("--credential", "credentials", multiple=True, metavar="KEY=ENV_VAR",
              help="A credential, as the environment variable (or secrets-file key) "
                   "holding it, never the secret itself (repeatable).")
@_admin_by
@click.pass_obj
def channel_add(session: _Session, name: str, publisher: str | None,
                settings: tuple[str, ...], credentials: tuple[str, ...], by: str) -> None:
    """Configure a target channel (or replace its configuration).

    What the configuration file says under [channels.NAME] is the starting point; the
    flags add to it or override it. A setting or credential that looks like a secret is
    refused: secrets live in the environment or the secrets file, and the channel names
    them.
    """
    configured = session.config.channel(name)
    publisher = publisher or configured.get("publisher")
    if not publisher:
        _fail(_("channel {name!r} needs a publisher: give --publisher (e.g. outbox), or "
                "write it under [channels.{name}] in the configuration file").format(
                    name=name))
    office = session.office()
    merged_settings = {**configured.get("settings", {}), **_pairs(settings, _("a setting"))}
    merged_credentials = {**configured.get("credentials", {}),
                          **_pairs(credentials, _("a credential"))}
    added = office.add_channel(name, publisher, settings=merged_settings,
                               credentials=merged_credentials, by=by)
    _echo(_("Channel {name!r} posts via {publisher}").format(name=added.name,
                                                             publisher=added.publisher))


@channel.command("list")
@click.pass_obj
def channel_list(session: _Session) -> None:
    """The organisation's channels (credentials by variable name, never their value)."""
    office = session.office()
    channels = office.channels()
    if not channels:
        _echo(_("No channels yet; add one with `humasflow channel add`."))
        return
    rows = []

    def held(var: str) -> str:
        try:
            return _("set") if office.credential_value(var) else _("NOT SET")
        except CredentialSourceError:
            return _("UNREADABLE")

    for c in channels.values():
        settings = ", ".join(f"{k}={v}" for k, v in sorted(c.settings.items())) or "-"
        creds = ", ".join(f"{k}={var} ({held(var)})"
                          for k, var in sorted(c.credentials.items())) or "-"
        rows.append((c.name, c.publisher, settings, creds,
                     _("active") if c.active else _("deactivated")))
    _echo(_table((_("Name"), _("Publisher"), _("Settings"), _("Credentials"), _("Status")),
                 rows))


@channel.command("deactivate")
@click.argument("name")
@_admin_by
@click.option("--reason", default="", help="Why (kept in the record).")
@click.pass_obj
def channel_deactivate(session: _Session, name: str, by: str, reason: str) -> None:
    """Deactivate a channel: kept in the record, no default target, not posted to."""
    done = session.office().deactivate_channel(name, by=by, reason=reason)
    _echo(_("Channel {name!r} is deactivated").format(name=done.name))


@channel.command("activate")
@click.argument("name")
@_admin_by
@click.option("--reason", default="", help="Why (kept in the record).")
@click.pass_obj
def channel_activate(session: _Session, name: str, by: str, reason: str) -> None:
    """Reactivate a deactivated channel."""
    done = session.office().activate_channel(name, by=by, reason=reason)
    _echo(_("Channel {name!r} is active").format(name=done.name))


@channel.command("check")
@click.option("--warn-days", type=click.FloatRange(min=0), default=7.0, show_default=True,
              metavar="DAYS", help="Warn about credentials that expire within DAYS.")
@click.pass_obj
def channel_check(session: _Session, warn_days: float) -> None:
    """Check every channel's credentials with its platform, without posting.

    Prints OK (with what the publisher read, such as the account's name) or the error
    for each channel (never a secret), and a warning for each
    credential known to expire within --warn-days (or expired); exits 1 if any channel
    failed its check.
    """
    office = session.office()
    channels = office.channels()
    if not channels:
        _echo(_("No channels yet; add one with `humasflow channel add`."))
        return

    def masked(text: str) -> str:
        # A publisher's message should never hold a secret; if one does, it is scrubbed.
        return " ".join(scrub(text).split())

    try:
        summaries: dict[str, str] = {}
        results = office.check_channels(summaries=summaries)
    except Exception as exc:
        _fail(masked(_("checking the channels stopped: {error_class}: {error}").format(
            error_class=type(exc).__name__, error=exc)))
    failed = 0
    for name, error in sorted(results.items()):
        via = f"{name} ({channels[name].publisher})" if name in channels else name
        if error is None:
            said = summaries.get(name)
            _echo(f"  {via}: OK ({masked(said)})" if said else f"  {via}: OK")
        else:
            failed += 1
            _echo("  " + _("{channel}: FAILED {error_class}: {error}").format(
                channel=via, error_class=type(error).__name__, error=masked(str(error))))
    zone, now = session.zone(), session.now()
    for warning in office.credential_warnings(dt.timedelta(days=warn_days), now):
        _echo("  " + _credential_line(warning, channels, zone, now))
    if not failed:
        _echo(_("All {count} channel(s) OK.").format(count=len(results)))
        return
    _echo(_("{failed} of {count} channel(s) failed the check.").format(failed=failed,
                                                                       count=len(results)))
    click.get_current_context().exit(1)


# -- items ----------------------------------------------------------------------------------


@cli.command()
@click.argument("title")
@click.option("--as", "by", required=True, metavar="ACTOR", help="Who creates it.")
@click.option("--text", default="", help="A first draft of the post text.")
@click.option("--media", multiple=True, metavar="PATH", help="A media file or URL (repeatable).")
@click.option("--link", default="", help="A link to share.")
@click.option("--channel", "channels", multiple=True, metavar="NAME",
              help="A target channel (repeatable; default: every channel).")
@click.option("--assignee", help="Who is responsible (default: the creator).")
@_variant_options
@click.pass_obj
def new(session: _Session, title: str, by: str, text: str, media: tuple[str, ...], link: str,
        channels: tuple[str, ...], assignee: str | None, variant_texts: tuple[str, ...],
        variant_media: tuple[str, ...], variant_opts: tuple[str, ...]) -> None:
    """Create a content item at the SOP's first content step; print its id."""
    if not title.strip():
        raise click.BadParameter(_("the title is empty: give the item a short title"))
    office = session.office()
    variants = _variants(variant_texts, variant_media, variant_opts)
    item = office.new_item(title, by=by, text=text, media=_media_paths(media), link=link,
                           channels=list(channels) or None, assignee=assignee,
                           variants=variants)
    _echo(item.id)
    _echo(_("Created item {id} {title!r} at step {step}, due {due}.").format(
        id=item.id, title=item.title, step=_step_name(office, item.sop_revision, item.state),
        due=_local(item.due_at, session.zone())), err=True)
    if not item.post.channels:
        _echo(_("Warning: the item has no target channel; add one with "
                "`humasflow channel add` before it goes to approval."), err=True)
    _warn_post(office, item)


@cli.command("list")
@click.option("--state", help="Only items at this step (its key, e.g. approve).")
@click.option("--open", "open_only", is_flag=True, help="Only items not posted or cancelled.")
@click.option("--overdue", is_flag=True, help="Only items past their step's standard time.")
@click.option("--assignee", help="Only items this actor is responsible for.")
@click.pass_obj
def list_(session: _Session, state: str | None, open_only: bool, overdue: bool,
          assignee: str | None) -> None:
    """The items, newest first, with what waits for approval and what is late."""
    office = session.office()
    try:
        if state is not None:
            office.check_states([state])
        if assignee is not None:
            office.actor(assignee)
    except StepNotFound as exc:
        raise click.BadParameter(_("{state!r} is not a step of the SOP; give one of: "
                                   "{valid}").format(state=state, valid=", ".join(exc.valid)),
                                 param_hint="--state") from None
    except ActorNotFound:
        raise click.BadParameter(_("there is no actor {id!r}; the actors: {known}").format(
            id=assignee, known=", ".join(a.id for a in office.actors()) or _("none")),
            param_hint="--assignee") from None
    items = office.items(state=state or ("open" if open_only else None), overdue=overdue,
                         assignee=assignee)
    if open_only:
        items = [i for i in items if i.is_open]
    if not items:
        _echo(_("No items."))
        return
    zone, now = session.zone(), session.now()
    rows = [(i.id, _short(i.title), _step_name(office, i.sop_revision, i.state),
             i.assignee or "-", _local(i.deadline, zone) if i.is_open else "-",
             _flags(office, i, now, zone)) for i in items]
    headers = (_("ID"), _("Title"), _("Step"), _("Assignee"),
               _("Due ({zone})").format(zone=_zone_name(zone, now)), _("Flags"))
    _echo(_table(headers, rows))
    waiting = sum(1 for i in items if _awaits_approval(office, i))
    late = sum(1 for i in items if i.is_overdue(now))
    _echo("\n" + _("{items} item(s); {waiting} awaiting approval; {late} overdue.").format(
        items=len(items), waiting=waiting, late=late))


@cli.group()
def actions() -> None:
    """Corrective actions (SOP step 10): record, list, change and close them."""


_action_by = click.option("--as", "--by", "by", required=True, metavar="ACTOR",
                          help="Who does this (the coordinator, an administrator, or the "
                               "action's owner for changes).")


def _library_value(call: Callable[[], Any]) -> Any:
    """Run a library call; a ValueError (bad input) becomes a one-line error."""
    try:
        return call()
    except ValueError as exc:
        _fail(str(exc))


_ACTION_STATUSES = {"open": N_("open"), "done": N_("done"), "dropped": N_("dropped")}


def _action_text(action: CorrectiveAction, zone: dt.tzinfo) -> str:
    recorded = f"{_local(action.created_at, zone)} {_zone_name(zone, action.created_at)}"
    lines = [
        _("Corrective action {id} ({status})").format(
            id=action.id, status=_(_ACTION_STATUSES.get(action.status, action.status))),
        _("Against: {subject} {target}").format(subject=action.subject, target=action.target),
        _("Finding: {text}").format(text=action.finding),
        _("Action: {text}").format(text=action.action),
        _("Owner: {owner}, due {due}").format(owner=action.owner,
                                              due=i18n.format_date(action.due)),
        _("Recorded by {actor} at {at}").format(actor=action.created_by, at=recorded),
    ]
    if action.closing_note:
        lines.append(_("Closing note: {text}").format(text=action.closing_note))
    return "\n".join(lines)


@actions.command("add")
@click.option("--report", "period", metavar="SINCE/UNTIL",
              help="Against a report's period, e.g. 2026-01-01/2026-01-31.")
@click.option("--breach", metavar="ITEM/STEP", help="Against a breach, e.g. 12/approve.")
@click.option("--item", "item_id", metavar="ITEM", help="Against an item.")
@click.option("--finding", required=True, help="What went wrong.")
@click.option("--action", "text", required=True, help="What is to be done about it.")
@click.option("--owner", required=True, metavar="ACTOR", help="Who carries it out.")
@click.option("--due", required=True, metavar="YYYY-MM-DD", help="By when.")
@_action_by
@click.pass_obj
def actions_add(session: _Session, period: str | None, breach: str | None,
                item_id: str | None, finding: str, text: str, owner: str, due: str,
                by: str) -> None:
    """Record a corrective action against a report, a breach or an item."""
    given = [(s, t) for s, t in (("report", period), ("breach", breach), ("item", item_id))
             if t is not None]
    if len(given) != 1:
        _fail(_("say what the action is against: exactly one of --report SINCE/UNTIL, "
                "--breach ITEM/STEP or --item ITEM"))
    subject, target = given[0]
    office = session.office()
    made = _library_value(lambda: office.add_action(
        subject=subject, target=target, finding=finding, action=text, owner=owner, due=due,
        by=by))
    _echo(_("Recorded corrective action {id}, owner {owner}, due {due}").format(
        id=made.id, owner=made.owner, due=made.due.isoformat()))


@actions.command("list")
@click.option("--status", type=click.Choice(["open", "done", "dropped"]),
              help="Only actions with this status.")
@click.option("--owner", metavar="ACTOR", help="Only this person's actions.")
@click.option("--overdue", is_flag=True, help="Only open actions past their due date.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="How to write them.")
@click.pass_obj
def actions_list(session: _Session, status: str | None, owner: str | None, overdue: bool,
                 fmt: str) -> None:
    """The corrective actions, oldest first (overdue ones marked)."""
    office = session.office()
    today = office.action_today(session.now())
    found = office.actions(status=status, owner=owner, overdue=overdue, today=today)
    if fmt != "table":
        from humasflow.actions import export_actions_csv, export_actions_json

        out = io.StringIO()
        (export_actions_csv if fmt == "csv" else export_actions_json)(found, out)
        _echo(out.getvalue(), nl=False)
        return
    if not found:
        _echo(_("No corrective actions; record one with `humasflow actions add`."))
        return
    _echo(_table((_("ID"), _("Status"), _("Against"), _("Owner"), _("Due"), _("Action")), [
        (a.id, _(_ACTION_STATUSES.get(a.status, a.status)), f"{a.subject} {a.target}",
         a.owner, a.due.isoformat() + (" " + _("(overdue)") if a.is_overdue(today) else ""),
         _short(a.action, 40)) for a in found]))


@actions.command("show")
@click.argument("action_id", metavar="ID", type=int)
@click.pass_obj
def actions_show(session: _Session, action_id: int) -> None:
    """One corrective action."""
    _echo(_action_text(session.office().action(action_id), session.zone()))


@actions.command("change")
@click.argument("action_id", metavar="ID", type=int)
@click.option("--action", "text", help="What is to be done, reworded.")
@click.option("--owner", metavar="ACTOR", help="Hand it to someone else (coordinator).")
@click.option("--due", metavar="YYYY-MM-DD", help="A new due date.")
@click.option("--status", type=click.Choice(["open", "done", "dropped"]),
              help="A new status (coordinator).")
@click.option("--note", default="", help="Why (kept in the record).")
@_action_by
@click.pass_obj
def actions_change(session: _Session, action_id: int, text: str | None, owner: str | None,
                   due: str | None, status: str | None, note: str, by: str) -> None:
    """Change a corrective action's text, owner, due date or status."""
    if text is None and owner is None and due is None and status is None:
        _fail(_("nothing to change: give --action, --owner, --due or --status"))
    office = session.office()
    changed = _library_value(lambda: office.change_action(
        action_id, action=text, owner=owner, due=due, status=status, note=note, by=by))
    _echo(_action_text(changed, session.zone()))


@actions.command("close")
@click.argument("action_id", metavar="ID", type=int)
@click.option("--note", required=True, help="What was done (or why it was dropped).")
@click.option("--dropped", is_flag=True, help="Close it as dropped, not done.")
@_action_by
@click.pass_obj
def actions_close(session: _Session, action_id: int, note: str, dropped: bool,
                  by: str) -> None:
    """Close a corrective action as done (or dropped), with a closing note."""
    office = session.office()
    closed = _library_value(lambda: office.close_action(
        action_id, note=note, status="dropped" if dropped else "done", by=by))
    _echo(_("Corrective action {id} closed: {status}").format(
        id=closed.id, status=_(_ACTION_STATUSES[closed.status])))


#: What each kind of inbox entry is called in the table.
_INBOX_KINDS = {
    "failed": N_("channel failed"),
    "unknown": N_("channel unknown"),
    "waiting": N_("post by hand"),
    "late": N_("late"),
    "action": N_("corrective action overdue"),
    "approve": N_("approve"),
    "scheduled": N_("scheduled today"),
}


def _inbox_command(entry: InboxEntry, who: str) -> str:
    """The command that deals with one inbox entry (commands are not translated)."""
    i, channel = entry.item_id, entry.channel
    if entry.kind == "action":
        return f"humasflow actions show {entry.action_id}"  # not a message
    if entry.kind == "approve":
        return f"humasflow approve {i} --as {who}"  # not a message
    if entry.kind == "failed":
        return f"humasflow retry {i} {channel} --as {who}"  # not a message
    if entry.kind == "unknown":
        command = f"humasflow confirm {i} {channel} --as {who}"  # not a message
        return command + " --url URL | --not-posted"
    if entry.kind == "waiting":
        return f"humasflow confirm {i} {channel} --as {who} --url URL"  # not a message
    return f"humasflow show {i}"  # not a message


@cli.command()
@click.option("--as", "by", required=True, metavar="ACTOR", help="Whose inbox.")
@click.pass_obj
def inbox(session: _Session, by: str) -> None:
    """What waits for one person, most urgent first.

    Channels that failed, are unknown or are posted by hand; approvals they may give
    (not their own items); items late at a step whose role they hold; posts scheduled
    for today. Each line ends with the command that deals with it.
    """
    office = session.office()
    zone, now = session.zone(), session.now()
    found = office.inbox(by, now, zone=zone)
    if not found.entries:
        _echo(_("Nothing waits for {actor} ({name}).").format(actor=found.actor.id,
                                                             name=found.actor.name))
        return
    _echo(ngettext("{count} thing waits for {actor} ({name}), most urgent first:",
                   "{count} things wait for {actor} ({name}), most urgent first:",
                   len(found)).format(count=len(found), actor=found.actor.id,
                                      name=found.actor.name))
    rows = []
    for e in found:
        late = f"+{_duration(e.late_by)}" if e.late_by is not None else ""
        step = (_step_name(office, office.item(e.item_id).sop_revision, e.step)
                if e.item_id and e.step else "-")
        rows.append((e.urgency, _(_INBOX_KINDS.get(e.kind, e.kind)), e.item_id or "-",
                     _short(e.title, 30), step,
                     e.channel or "-", _local(e.due_at, zone), late,
                     _inbox_command(e, found.actor.id)))
    headers = ("#", _("What"), _("Item"), _("Title"), _("Step"), _("Channel"),
               _("Due ({zone})").format(zone=_zone_name(zone, now)), _("Late"), _("Do"))
    _echo(_table(headers, rows))


@cli.command()
@click.argument("item_id", metavar="ID", type=int)
@click.pass_obj
def show(session: _Session, item_id: int) -> None:
    """One item: its post, approval, timeline and publications."""
    office = session.office()
    item = office.item(item_id)
    _echo(_item_text(office, item, session.lang, session.zone(), session.now()))


def _approval_status(office: Office, item: ContentItem) -> str:
    approval = item.outputs.get("approval") or {}
    if item.is_approved:
        return _("approved by {actor}: {answer}").format(actor=approval.get("by", "?"),
                                                         answer=approval.get("answer", ""))
    decisions = [e for e in office.history(item.id) if e.action in ("approve", "reject")]
    last = decisions[-1] if decisions else None
    if last is not None and last.action == "reject":
        return _("rejected by {actor}: {reason}").format(actor=last.actor, reason=last.note)
    if last is not None or item.approved_digest is not None:
        return _("withdrawn: the content changed after approval; it needs approval again")
    if _awaits_approval(office, item):
        return _("waiting for the coordinator")
    return _("not approved yet")


def _variant_text(variant: Variant, media: Sequence[Media] = ()) -> str:
    """One channel's variant as the coordinator approves it: its text, the media it
    attaches (by position, with their names) and its publisher options."""
    parts = []
    if variant.text is not None:
        parts.append(repr(variant.text))
    if variant.media is not None:
        chosen = [f"{i} {Path(media[i].source).name or media[i].source}"
                  if 0 <= i < len(media) else str(i) for i in variant.media]
        parts.append(_("media {positions}").format(positions=", ".join(chosen) or _("none")))
    parts.extend(f"{k}={json.dumps(v, ensure_ascii=False)}"
                 for k, v in sorted(variant.options.items()))
    return "; ".join(parts) or "-"


def _commands(office: Office, item: ContentItem) -> list[str]:
    """The commands that can move the item now (``complete`` is ``publish`` at the last
    step)."""
    step = office.engine(item.sop_revision).step(item.state)
    posting = step is not None and step.output == "publication"
    return ["publish" if posting and a == "complete" else a for a in office.allowed(item.id)]


def _item_text(office: Office, item: ContentItem, lang: str, zone: dt.tzinfo,
               now: dt.datetime) -> str:
    step = office.engine(item.sop_revision).step(item.state)
    where = _step_name(office, item.sop_revision, item.state)
    if step is not None:
        where += f": {step.activity.get(lang)}"
    facts = [
        (_("Item"), f"{item.id} {item.title!r}"),
        (_("State"), where),
        (_("Assignee"), item.assignee or "-"),
        (_("Created"), _("{time} by {actor}").format(time=_local(item.created_at, zone),
                                                     actor=item.created_by)),
    ]
    if item.is_open:
        due = _local(item.deadline, zone)
        flags = _flags(office, item, now, zone)
        facts.append((_("Due"), f"{due}  {flags}".rstrip()))
        if item.is_scheduled(now) and item.post_at is not None:
            facts.append((_("Scheduled"), _("{at} by {by}").format(
                at=_local(item.post_at, zone), by=item.post_by or "-")))
        facts.append((_("Next"), ", ".join(_commands(office, item)) or "-"))
    facts += [
        (_("Text"), item.post.text or "-"),
        (_("Link"), item.post.link or "-"),
        (_("Media"), ", ".join(_media_label(m) for m in item.post.media) or "-"),
        (_("Produced"), ", ".join(_media_label(m) for m in item.produced) or "-"),
        (_("Channels"), ", ".join(item.post.channels) or "-"),
    ]
    for name, variant in sorted(item.post.variants.items()):
        facts.append((_("Variant {channel}").format(channel=name),
                      _variant_text(variant, item.media_to_post)))
    warnings = _warning_lines(office, item)
    if warnings:
        facts.append((_("Warnings"), "\n".join(warnings)))
    facts.append((_("Approval"), _approval_status(office, item)))
    if item.outputs.get("notes"):
        facts.append((_("Notes"), str(item.outputs["notes"])))
    recheck = item.outputs.get("recheck")
    if isinstance(recheck, Mapping):
        note = f": {recheck.get('note')}" if recheck.get("note") else ""
        facts.append((_("Recheck"), _("{result} by {actor}{note}").format(
            result=recheck.get("result"), actor=recheck.get("by"), note=note)))
    facts.append((_("SOP revision"), str(item.sop_revision)))
    width = max(len(k) for k, _v in facts)
    # Warnings are one a line, under each other.
    lines = [f"{k + ':':<{width + 1}}  " + (("\n" + " " * (width + 3)).join(warnings)
                                           if warnings and k == _("Warnings") else v)
             for k, v in facts]
    history = office.history(item.id)
    lines += ["", _("Timeline:"), _timeline_table(office, item, history, zone, now)]
    publications = office.publications(item.id)
    lines += ["", _("Publications:")]
    if not publications:
        lines.append("  " + _("none yet"))
    for name, pub in sorted(publications.items()):
        detail = pub.url or pub.platform_id or ""
        if pub.error_message:
            detail = _error_text(pub)
        lines.append("  " + _("{channel}: {state} (attempts {attempts}) {detail}").format(
            channel=name, state=_pub_state(pub.state), attempts=pub.attempts,
            detail=detail).rstrip())
    return "\n".join(lines)


# -- step actions ---------------------------------------------------------------------------


def _act(session: _Session, item_id: int, action: str, by: str, note: str = "",
         **payload: Any) -> None:
    office = session.office()
    before = office.item(item_id)
    after = office.act(item_id, action, by=by, note=note, **payload)
    _echo(_move_line(office, before, after, by, session.zone(), session.now()))
    if action in ("complete", "revise"):
        _warn_post(office, after)


def _warning_lines(office: Office, item: ContentItem) -> list[str]:
    """Each rule of a target channel the post breaks so far (see Office.post_warnings)."""
    lines = []
    for problem in office.post_warnings(item):
        if problem.channel not in item.post.channels:
            lines.append(_("{field}: {message}").format(field=problem.field,
                                                        message=problem.message))
        else:
            lines.append(_("channel {channel!r} would refuse the post: {field}: "
                           "{message}").format(channel=problem.channel, field=problem.field,
                                               message=problem.message))
    return lines


def _warn_post(office: Office, item: ContentItem) -> None:
    """Print the channels' objections to the post now, not at the step that refuses it."""
    for line in _warning_lines(office, item):
        _echo(_("Warning: {problem}").format(problem=line), err=True)


_as_option = click.option("--as", "by", required=True, metavar="ACTOR", help="Who acts.")
_item_argument = click.argument("item_id", metavar="ID", type=int)


def _post_payload(text: str | None, media: Sequence[str], link: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if text is not None:
        payload["text"] = text
    if media:
        payload["media"] = _media_paths(media)
    if link is not None:
        payload["link"] = link
    return payload


@cli.command()
@_item_argument
@_as_option
@click.option("--text", help="The concept text (concept step, or design step).")
@click.option("--notes", help="The technical notes (preparation step).")
@click.option("--media", multiple=True, metavar="PATH", help="Design or produced media.")
@click.option("--link", help="A link to share (concept step).")
@click.option("--channel", "channels", multiple=True, metavar="NAME",
              help="The target channels (concept step; repeatable; replaces the current "
                   "ones).")
@_variant_options
@click.pass_obj
def complete(session: _Session, item_id: int, by: str, text: str | None, notes: str | None,
             media: tuple[str, ...], link: str | None, channels: tuple[str, ...],
             variant_texts: tuple[str, ...], variant_media: tuple[str, ...],
             variant_opts: tuple[str, ...]) -> None:
    """Complete the item's current step with its output."""
    payload = _post_payload(text, media, link)
    if channels:
        payload["channels"] = list(dict.fromkeys(channels))
    if variant_texts or variant_media or variant_opts:
        current = session.office().item(item_id).post.variants
        payload["variants"] = _variants(variant_texts, variant_media, variant_opts, current)
    if notes is not None:
        payload["notes"] = notes
    _act(session, item_id, "complete", by, **payload)


@cli.command()
@_item_argument
@_as_option
@click.option("--answer", default="", help="The coordinator's answer (e.g. the email reply).")
@click.pass_obj
def approve(session: _Session, item_id: int, by: str, answer: str) -> None:
    """Approve the concept as it stands (coordinator)."""
    _act(session, item_id, "approve", by, answer)


@cli.command()
@_item_argument
@_as_option
@click.option("--reason", required=True, help="Why it is rejected.")
@click.pass_obj
def reject(session: _Session, item_id: int, by: str, reason: str) -> None:
    """Reject the concept; it returns to the staff with the reason."""
    _act(session, item_id, "reject", by, reason)


@cli.command("pass")
@_item_argument
@_as_option
@click.option("--note", default="", help="A remark on the recheck.")
@click.pass_obj
def pass_(session: _Session, item_id: int, by: str, note: str) -> None:
    """Record a passed recheck of the produced content."""
    _act(session, item_id, "pass", by, note)


@cli.command()
@_item_argument
@_as_option
@click.option("--findings", required=True, help="What must be reworked.")
@click.pass_obj
def rework(session: _Session, item_id: int, by: str, findings: str) -> None:
    """Record a failed recheck; the item returns to production."""
    _act(session, item_id, "rework", by, findings)


@cli.command()
@_item_argument
@_as_option
@click.option("--text", help="The new post text.")
@click.option("--media", multiple=True, metavar="PATH", help="The new design media.")
@click.option("--link", help="The new link.")
@click.option("--channel", "channels", multiple=True, metavar="NAME",
              help="The new target channels (repeatable; replaces the current ones).")
@click.option("--no-variant", "dropped", multiple=True, metavar="CHANNEL",
              help="Remove a channel's variant: it posts the item's own text and media "
                   "(repeatable).")
@click.option("--note", default="", help="Why it changes.")
@_variant_options
@click.pass_obj
def revise(session: _Session, item_id: int, by: str, text: str | None, media: tuple[str, ...],
           link: str | None, channels: tuple[str, ...], dropped: tuple[str, ...], note: str,
           variant_texts: tuple[str, ...], variant_media: tuple[str, ...],
           variant_opts: tuple[str, ...]) -> None:
    """Change the concept or design, its channels or their variants (after approval it
    needs approval again)."""
    payload = _post_payload(text, media, link)
    if channels:
        payload["channels"] = list(dict.fromkeys(channels))
    if variant_texts or variant_media or variant_opts or dropped:
        current = dict(session.office().item(item_id).post.variants)
        unknown = [name for name in dropped if name not in current]
        if unknown:
            raise click.BadParameter(_("channel {channel!r} has no variant; the variants: "
                                       "{known}").format(channel=unknown[0],
                                                         known=", ".join(current) or _("none")),
                                     param_hint="--no-variant")
        for name in dropped:
            del current[name]
        payload["variants"] = _variants(variant_texts, variant_media, variant_opts, current,
                                        changed=bool(dropped))
    _act(session, item_id, "revise", by, note, **payload)


@cli.command()
@_item_argument
@click.option("--to", "assignee", required=True, metavar="ACTOR",
              help="Who becomes responsible for the item.")
@click.option("--by", "--as", "by", required=True, metavar="ACTOR",
              help="Who assigns it: the coordinator, an administrator or its assignee.")
@click.pass_obj
def assign(session: _Session, item_id: int, assignee: str, by: str) -> None:
    """Make another person responsible for an open item."""
    office = session.office()
    before = office.item(item_id)
    item = office.assign(item_id, assignee, by=by)
    _echo(_("Item {id} {title!r} is assigned to {assignee} (before: {previous}), by "
            "{by}.").format(id=item.id, title=item.title, assignee=item.assignee,
                            previous=before.assignee or "-", by=by))


@cli.command()
@_item_argument
@_as_option
@click.option("--reason", required=True, help="Why it is cancelled.")
@click.pass_obj
def cancel(session: _Session, item_id: int, by: str, reason: str) -> None:
    """Cancel an item that is not posted yet."""
    _act(session, item_id, "cancel", by, reason)


# -- posting --------------------------------------------------------------------------------

#: The order in which channel states are counted in summaries.
_STATE_ORDER = ("posted", "skipped", "waiting", "unknown", "failed", "in_flight", "pending")
#: A channel's state as people read it (the key stays in the record and in --json).
_STATE_WORDS: Mapping[str, str] = {
    "posted": N_("posted"),
    "skipped": N_("skipped"),
    "waiting": N_("waiting"),
    "unknown": N_("unknown"),
    "failed": N_("failed"),
    "in_flight": N_("in flight"),
    "pending": N_("pending"),
}
#: From this many due items on, `run-due` on a terminal shows a progress bar.
_BAR_FROM = 5
#: A worker reports a stretch of quiet passes at least this often.
_QUIET_REPORT_EVERY = dt.timedelta(hours=1)


def _stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def _when(at: dt.datetime, zone: dt.tzinfo) -> str:
    """A time to the second, in ``zone``, with the zone's name."""
    return f"{_local(at, zone, seconds=True)} {_zone_name(zone, at)}"


def _pub_state(state: str) -> str:
    """A channel's state in words (``in flight`` for ``in_flight``), translated."""
    return _(_STATE_WORDS[state]) if state in _STATE_WORDS else state.replace("_", " ")


def _counts(pubs: Iterable[Publication]) -> str:
    """``"1 posted, 1 failed"``: how many channels are in each state."""
    states = [p.state for p in pubs]
    order = [s for s in _STATE_ORDER if s in states] + sorted(set(states) - set(_STATE_ORDER))
    return ", ".join(f"{states.count(s)} {_pub_state(s)}" for s in order) or _("no channels")


def _error_text(pub: Publication) -> str:
    # Scrubbed when recorded; again here for what an older version recorded.
    if pub.error_class and pub.error_message:
        return scrub(f"{pub.error_class}: {pub.error_message}")
    return scrub(pub.error_message or pub.error_class or "")


def _channel_line(name: str, pub: Publication, zone: dt.tzinfo, *, earlier: bool = False) -> str:
    """One channel's outcome in one line: ``"  x: failed after 1 attempt(s): ..."``."""
    detail = ""
    if pub.state == "posted":
        detail = pub.url or pub.platform_id or ""
    elif pub.state == "failed":
        if pub.next_attempt_at is not None:
            detail = _("after {attempts} attempt(s): {error}; retried automatically at "
                       "{time}").format(attempts=pub.attempts, error=_error_text(pub),
                                        time=_when(pub.next_attempt_at, zone))
        else:
            detail = _("after {attempts} attempt(s): {error}; not retried "
                       "automatically").format(attempts=pub.attempts, error=_error_text(pub))
    elif pub.state in ("waiting", "unknown"):
        detail = scrub(pub.error_message or "")
        if pub.state == "unknown" and pub.next_attempt_at is not None:
            detail += "; " + _("looked up on the platform at {time}").format(
                time=_when(pub.next_attempt_at, zone))
    elif pub.state == "in_flight" and pub.claimed_by:
        detail = _("by {worker}").format(worker=pub.claimed_by)
    if earlier and pub.state in ("posted", "skipped"):
        detail = _("{detail} (earlier)").format(detail=detail).lstrip()
    return f"  {name}: {_pub_state(pub.state)} {detail}".rstrip()


def _poster(office: Office, item: ContentItem) -> str:
    """Who answers for posting the item: whoever last had it posted or scheduled, else its
    assignee (the posting step's role may confirm its channels)."""
    for event in reversed(office.history(item.id)):
        if event.action in ("post", "schedule"):
            return event.actor
    return item.assignee or item.created_by


def _coordinator(office: Office, item: ContentItem) -> str:
    """An actor who may skip a channel (the approval step's role), for suggested commands."""
    role = office.engine(item.sop_revision).approval_step.actor
    found = sorted(a.id for a in office.actors() if role and a.has_role(role))
    return found[0] if found else "COORDINATOR"


def _advice(office: Office, item: ContentItem, name: str, pub: Publication, who: str,
            zone: dt.tzinfo) -> list[str]:
    """What to do about one channel that is not settled, with the exact commands."""
    i = item.id
    if pub.state == "waiting":
        return [_("post it on {channel} by hand, then: "
                  "humasflow confirm {id} {channel} --as {who} --url URL").format(
                      channel=name, id=i, who=who)]
    if pub.state == "unknown":
        lookup = []
        if pub.next_attempt_at is not None:
            lookup = [_("nothing yet: it is looked up on {channel} at {time} by "
                        "`humasflow run-due` or a running `humasflow worker`; or settle it "
                        "yourself:").format(channel=name, time=_when(pub.next_attempt_at, zone))]
        return [*lookup,
                _("check whether the post is on {channel} (the last attempt may have posted "
                  "it)").format(channel=name),
                _("if it is:     humasflow confirm {id} {channel} --as {who} --url URL "
                  "--attempt {attempt}").format(id=i, channel=name, who=who,
                                                attempt=pub.attempts),
                _("if it is not: humasflow confirm {id} {channel} --as {who} --not-posted "
                  "--attempt {attempt} (it is posted again)").format(
                      id=i, channel=name, who=who, attempt=pub.attempts)]
    if pub.state == "failed" and pub.next_attempt_at is not None:
        return [_("nothing: it is retried at {time} by `humasflow run-due` (cron) or a "
                  "running `humasflow worker`").format(time=_when(pub.next_attempt_at, zone))]
    if pub.state == "failed":
        return [_("fix the cause of the error, then post it again: "
                  "humasflow retry {id} {channel} --as {who}").format(id=i, channel=name,
                                                                      who=who),
                _("or drop the channel: humasflow skip {id} {channel} --as {coordinator} "
                  "--reason TEXT").format(id=i, channel=name,
                                          coordinator=_coordinator(office, item))]
    if pub.state == "in_flight":
        by = pub.claimed_by or _("a worker")
        if pub.lease_until:
            return [_("wait: an attempt by {worker} is under way; if it stopped, it counts as "
                      "interrupted after {time} and is checked again").format(
                          worker=by, time=_when(pub.lease_until, zone))]
        return [_("wait: an attempt by {worker} is under way; if it stopped, it counts as "
                  "interrupted and is checked again").format(worker=by)]
    return []


class _Listener:
    """Hears each channel's outcome the moment it is recorded, through the publishing hooks.

    Registered as a plugin only while a command posts; it hears only the office (or the
    worker's offices) it was made for.
    """

    #: The publishing hooks it implements (marked as such by :func:`_listening`).
    HOOKS = ("channel_posted", "channel_failed", "channel_unknown")

    def __init__(self, on_channel: Callable[[ContentItem, Publication], None], *,
                 worker: worker.Worker | None = None, office: Office | None = None) -> None:
        self.on_channel = on_channel
        self.worker = worker
        self.office = office

    def _hear(self, office: Office, item: ContentItem, publication: Publication) -> None:
        if self.office is not None and office is not self.office:
            return
        # Only this worker's own outcomes: others in the same process post too.
        if self.worker is not None and not self.worker.posts_through(office):
            return
        self.on_channel(item, publication)

    def channel_posted(self, office: Office, item: ContentItem,
                       publication: Publication) -> None:
        self._hear(office, item, publication)

    def channel_failed(self, office: Office, item: ContentItem,
                       publication: Publication) -> None:
        self._hear(office, item, publication)

    def channel_unknown(self, office: Office, item: ContentItem,
                        publication: Publication) -> None:
        self._hear(office, item, publication)


@contextlib.contextmanager
def _listening(listener: _Listener) -> Iterator[_Listener]:
    from humasflow.hookspecs import hookimpl

    for hook in _Listener.HOOKS:  # marked here: the hooks' module needs pluggy
        hookimpl(getattr(_Listener, hook))
    registry.load_plugins()
    registry.pm.register(listener)
    try:
        yield listener
    finally:
        registry.pm.unregister(listener)


def _report_command(session: _Session, item_id: int, who: str | None,
                    run: Callable[[Office], PostReport], changed: str | None = None) -> None:
    """Run a posting action, print each channel as it settles, then the outcome.

    ``changed`` names a channel the action settles without a hook (a skip): it is shown
    first, and not as settled earlier.

    Exits 1 (``Error: ...``) when a channel failed or is still being posted elsewhere;
    0 when the item is posted or waits only for a person (said how).
    """
    office = session.office()
    zone = session.zone()
    heard: set[str] = set()
    lock = threading.Lock()

    def on_channel(item: ContentItem, pub: Publication) -> None:
        if item.id != item_id:
            return
        with lock:
            heard.add(pub.channel)
            _echo(_channel_line(pub.channel, pub, zone))

    with _listening(_Listener(on_channel, office=office)):
        report = run(office)
    item, pubs = report.item, report.publications
    if changed is not None and changed in pubs and changed not in heard:
        heard.add(changed)
        _echo(_channel_line(changed, pubs[changed], zone))
    for name, pub in sorted(pubs.items()):
        if name not in heard:
            _echo(_channel_line(name, pub, zone, earlier=True))
    if report.done:
        _echo(_("Item {id} is posted: {counts}.").format(id=item.id,
                                                         counts=_counts(pubs.values())))
        return
    _echo(_("Item {id} is not posted yet: {counts}.").format(id=item.id,
                                                             counts=_counts(pubs.values())))
    who = who or _poster(office, item)
    waiting = sorted(n for n, p in pubs.items() if p.state == "waiting")
    # An unknown outcome the platform will be asked about is no person's task yet.
    unknown = sorted(n for n, p in pubs.items()
                     if p.state == "unknown" and p.next_attempt_at is None)
    if waiting and unknown:
        _echo(_("Item {id} waits for a person to post on {waiting} and check {unknown}.").format(
            id=item.id, waiting=", ".join(waiting), unknown=", ".join(unknown)))
    elif waiting:
        _echo(_("Item {id} waits for a person to post on {waiting}.").format(
            id=item.id, waiting=", ".join(waiting)))
    elif unknown:
        _echo(_("Item {id} waits for a person to check {unknown}.").format(
            id=item.id, unknown=", ".join(unknown)))
    for name, pub in sorted(pubs.items()):
        first, *rest = _advice(office, item, name, pub, who, zone) or [""]
        if first:
            _echo(f"  {name}: {first}")
            for line in rest:
                _echo(f"  {'':{len(name) + 1}} {line}")
    stuck = [f"{n} {_pub_state(p.state)}" for n, p in sorted(pubs.items())
             if p.state in ("failed", "in_flight", "pending")]
    if stuck:
        _fail(_("item {id} is not posted on every channel ({channels}); "
                "see `humasflow status {id}`").format(id=item.id, channels=", ".join(stuck)))


@cli.command(short_help="Post the item now to its channels (also: post).")
@_item_argument
@_as_option
@click.pass_obj
def publish(session: _Session, item_id: int, by: str) -> None:
    """Post the item now to every channel not posted yet (also: `post`).

    Prints each channel as it settles, then what is left to do. Exits 1 when a channel
    failed, 0 when the item is posted or waits only for a person.
    """
    _report_command(session, item_id, by, lambda office: office.post(item_id, by=by))


@cli.command()
@_item_argument
@_as_option
@click.option("--at", "when",
              type=click.DateTime(["%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M%z", "%Y-%m-%d %H:%M %z"]),
              metavar="'YYYY-MM-DD HH:MM[+HH:MM]'",
              help="When to post, in the display time zone, or with an explicit UTC offset; "
                   "again to change it.")
@click.option("--clear", is_flag=True, help="Remove the item's schedule.")
@click.option("--allow-past", is_flag=True,
              help="Take a time in the past (the item is posted at the next pass).")
@click.pass_obj
def schedule(session: _Session, item_id: int, by: str, when: dt.datetime | None, clear: bool,
             allow_past: bool) -> None:
    """Have the item posted later, by `humasflow run-due` (cron) or `humasflow worker`.

    Scheduling it again changes the time; --clear removes the schedule. A time in the
    past is refused unless --allow-past is given. A time the display zone skips
    (daylight saving starts) is refused, and so is one it has twice (daylight saving
    ends) unless --at gives the UTC offset.
    """
    if clear == (when is not None):
        raise click.UsageError(_("give either --at TIME or --clear"))
    office = session.office()
    zone = session.zone()
    if when is None:
        before = office.item(item_id)
        item = office.unschedule(item_id, by=by)
        _echo(_("Item {id} is no longer scheduled (it was to be posted at {at}); post it "
                "with `humasflow publish {id} --as {by}` or schedule it again.").format(
                    id=item.id, at=_local(before.post_at, zone), by=by))
        return
    at = when if when.tzinfo is not None else _local_time(when, zone)
    now = session.now()
    if not allow_past and at < now.replace(second=0, microsecond=0):
        _fail(_("--at {at} is in the past (it is {now} now); give a later time, or add "
                "--allow-past to have it posted at the next pass").format(
                    at=_local(at, zone), now=_local(now, zone)))
    before = office.item(item_id)
    item = office.schedule(item_id, at, by=by, allow_past=allow_past)
    if before.is_scheduled(now) and before.post_at is not None:
        _echo(_("Item {id} will be posted at {at} instead of {previous}, by the next "
                "`humasflow run-due` (or a running `humasflow worker`).").format(
                    id=item.id, at=_local(at, zone), previous=_local(before.post_at, zone)))
    else:
        _echo(_("Item {id} will be posted at {at} by the next `humasflow run-due` (or a "
                "running `humasflow worker`).").format(id=item.id, at=_local(at, zone)))


def _local_time(naive: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """``naive`` as a time of ``zone``'s clock, refusing one the clock skips or repeats."""
    at = naive.replace(tzinfo=zone)
    shown = naive.strftime("%Y-%m-%d %H:%M")
    try:
        back = at.astimezone(dt.timezone.utc).astimezone(zone)
    except (OverflowError, ValueError):
        _fail(_("--at {time!r} is outside the times humasflow takes (1900 to 8999)").format(
            time=shown))
    if back.replace(tzinfo=None) != naive:
        example = back.strftime("%Y-%m-%d %H:%M")
        _fail(_("--at {time!r} does not exist in {zone}: the clocks skip it (daylight saving "
                "starts); give a time that exists, e.g. {example}").format(
                    time=shown, zone=zone, example=example))
    other = at.replace(fold=1)
    if other.utcoffset() != at.utcoffset():
        first, second = (f"{shown}{_offset(at)}", f"{shown}{_offset(other)}")
        _fail(_("--at {time!r} happens twice in {zone} (daylight saving ends); say which "
                "with its UTC offset: --at '{first}' (the first) or --at '{second}' "
                "(the second)").format(time=shown, zone=zone, first=first, second=second))
    return at


def _offset(when: dt.datetime) -> str:
    text = when.strftime("%z")
    return f"{text[:3]}:{text[3:5]}"


@cli.command()
@_item_argument
@click.pass_obj
def status(session: _Session, item_id: int) -> None:
    """Each channel of the item: state, attempts, post, last error, retry, what to do."""
    office = session.office()
    report = office.status(item_id)
    item, pubs = report.item, report.publications
    zone, now = session.zone(), session.now()
    posting = office.sop(item.sop_revision).step_for_output("publication")
    at_posting = posting is not None and item.state == posting.key
    here = _step_name(office, item.sop_revision, item.state)
    if item.state in _CLOSED:
        _echo(_("Item {id} {title!r}: {state}.").format(id=item.id, title=item.title,
                                                        state=item.state))
    elif at_posting:
        tried = _counts(pubs.values()) if pubs else _("no channel tried yet")
        _echo(_("Item {id} {title!r}: at step {step}, not posted yet: {tried}.").format(
            id=item.id, title=item.title, step=here, tried=tried))
    elif posting is not None:
        _echo(_("Item {id} {title!r}: at step {step}; it is posted at step {posting}.").format(
            id=item.id, title=item.title, step=here,
            posting=f"{posting.number} {posting.key}"))
    else:
        _echo(_("Item {id} {title!r}: at step {step}; it is posted at step.").format(
            id=item.id, title=item.title, step=here))
    history = office.history(item.id)
    held = next((e for e in reversed(history)
                 if e.action in ("post", "schedule", "schedule_held", "unschedule")), None)
    asked = next((e for e in reversed(history) if e.action in ("post", "schedule")), None)
    post_at = None
    if held is not None and held.action == "unschedule":
        asked = None
        if item.is_open:
            _echo(_("Not scheduled: {actor} removed the schedule at {at}.").format(
                actor=held.actor, at=_when(held.at, zone)))
    if asked is not None and asked.data.get("post_at"):
        post_at = dt.datetime.fromisoformat(asked.data["post_at"])
        if asked.action == "post":
            _echo(_("Published by {actor} at {time}.").format(actor=asked.actor,
                                                              time=_when(post_at, zone)))
        else:
            _echo(_("Scheduled by {actor} for {time}.").format(actor=asked.actor,
                                                               time=_when(post_at, zone)))
    if held is not None and held.action == "schedule_held" and item.is_open:
        _echo(_("Waiting: {reason}").format(reason=held.note))
        post_at = None
    names = list(dict.fromkeys([*item.post.channels, *sorted(pubs)]))
    if not names:
        _echo(_("The item has no target channel."))
        return
    who = _poster(office, item)
    for name in names:
        pub = pubs.get(name)
        _echo("")
        if pub is None:
            _echo(_("{channel}: not tried yet").format(channel=name))
            pub = Publication(item_id=item.id, channel=name, state="pending")
        else:
            _echo(f"{name}: {_pub_state(pub.state)}")
        facts = [
            (_("attempts"), str(pub.attempts)),
            (_("platform id"), pub.platform_id or "-"),
            (_("url"), pub.url or "-"),
            (_("last error"), _error_text(pub) or "-"),
            (_("next retry"), _when(pub.next_attempt_at, zone)
             if pub.next_attempt_at is not None else "-"),
        ]
        todo = _advice(office, item, name, pub, who, zone)
        if pub.state == "pending" and item.is_open:
            if not at_posting:
                todo = [_("nothing yet: it is posted when the item has passed its earlier "
                          "steps")]
            elif post_at is not None and post_at > now:
                todo = [_("nothing: it is posted at {time} by `humasflow run-due` (cron) or a "
                          "running `humasflow worker`").format(time=_when(post_at, zone))]
            else:
                todo = [_("post it: humasflow publish {id} --as {who}").format(id=item.id,
                                                                               who=who)]
        shown = facts + [(_("to do"), line) for line in todo[:1]]
        # The values line up after the longest label (13 columns in English).
        width = max([13, *(len(label) + 1 for label, _value in shown)])
        for label, value in shown:
            _echo(f"  {label + ':':<{width}} {value}")
        for line in todo[1:]:
            _echo(f"  {'':<{width}} {line}")


@attrs.define
class _Tally:
    """What one pass over the due work did."""

    items: int = 0
    closed: int = 0
    channels: list[Publication] = attrs.field(factory=list)
    for_good: list[tuple[ContentItem, str]] = attrs.field(factory=list)
    person: list[tuple[ContentItem, str]] = attrs.field(factory=list)

    def text(self) -> str:
        if not self.items:
            return _("nothing due")
        if self.items - self.closed:
            line = _("{items} item(s) handled: {posted} posted, {open} still open").format(
                items=self.items, posted=self.closed, open=self.items - self.closed)
        else:
            line = _("{items} item(s) handled: {posted} posted").format(items=self.items,
                                                                         posted=self.closed)
        if self.channels:
            line += "; " + _("channels: {counts}").format(counts=_counts(self.channels))
        return line

    def add(self, other: _Tally) -> None:
        self.items += other.items
        self.closed += other.closed
        self.channels += other.channels
        self.for_good += other.for_good
        self.person += other.person


class _PassPrinter:
    """Prints each item of a pass over the due work as soon as it is done.

    A pass posts items one after another, so an outcome heard for a new item means the
    previous one is finished; the last one is printed when the pass returns.
    """

    def __init__(self, store: Store, org: str, zone: dt.tzinfo,
                 echo: Callable[[str], None]) -> None:
        self.store = store
        self.org = org
        self.zone = zone
        self.echo = echo
        self.on_item: Callable[[], None] = lambda: None
        self._lock = threading.Lock()
        self.begin()

    def begin(self) -> None:
        self._current: tuple[str, int] | None = None
        self._heard: dict[tuple[str, int], dict[str, Publication]] = {}
        self._printed: set[tuple[str, int]] = set()
        self._counted: set[tuple[str, int]] = set()
        self.tally = _Tally()

    def heard(self, item: ContentItem, pub: Publication) -> None:
        key = (item.org, item.id)
        with self._lock:
            if self._current is not None and self._current != key:
                self._print(self._current)
            self._current = key
            self._heard.setdefault(key, {})[pub.channel] = pub

    def finish(self, reports: Sequence[PostReport]) -> _Tally:
        """Print what is left of the pass and count what this worker did: an item another
        worker handled meanwhile is neither shown nor counted."""
        with self._lock:
            for report in reports:
                if not (report.outcomes or report.closed):
                    continue
                key = (report.item.org, report.item.id)
                if key not in self._printed:
                    self._print(key, report.item, report.publications)
                self._count(report.item, report.outcomes, report.closed)
                self._counted.add(key)
            for key in list(self._heard):
                if key not in self._printed:
                    self._print(key)
                if key not in self._counted:  # its run failed after these outcomes
                    item = self.store.item(*key)
                    if item is not None:
                        self._count(item, self._heard[key], False)
            return self.tally

    def _print(self, key: tuple[str, int], item: ContentItem | None = None,
               pubs: Mapping[str, Publication] | None = None) -> None:
        org, item_id = key
        item = item or self.store.item(org, item_id)
        if item is None:
            return
        pubs = pubs if pubs is not None else self.store.publications(org, item_id)
        self._printed.add(key)
        heard = self._heard.get(key, {})
        where = f" ({org})" if org != self.org else ""
        state = item.state if item.state in _CLOSED else _("still open ({counts})").format(
            counts=_counts(pubs.values()))
        self.echo(_("Item {id}{org} {title!r}: {state}").format(id=item.id, org=where,
                                                                title=item.title, state=state))
        for name in sorted(heard or pubs):
            if name in pubs:
                self.echo(_channel_line(name, pubs[name], self.zone))
        self.on_item()

    def _count(self, item: ContentItem, outcomes: Mapping[str, Publication],
               closed: bool) -> None:
        tally = self.tally
        tally.items += 1
        tally.closed += closed
        for name, pub in sorted(outcomes.items()):
            tally.channels.append(pub)
            if pub.state == "failed" and pub.next_attempt_at is None:
                tally.for_good.append((item, name))
            elif pub.state == "waiting" or (pub.state == "unknown"
                                            and pub.next_attempt_at is None):
                tally.person.append((item, name))


def _needs_people(tally: _Tally, org: str) -> list[str]:
    """Lines naming the channels of a pass that now need a person."""
    lines = []
    for message, found in (
            (N_("{channel} of item {id} failed for good: see `humasflow{org} status {id}`"),
             tally.for_good),
            (N_("{channel} of item {id} waits for a person: see `humasflow{org} status {id}`"),
             tally.person)):
        for item, name in found:
            # The option as the command to type has it (not a message).
            where = " --org " + item.org if item.org != org else ""
            lines.append(_(message).format(channel=name, id=item.id, org=where))
    return lines


@cli.command("run-due")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              metavar="N", help="At most N items of each organisation in this pass.")
@click.pass_obj
def run_due(session: _Session, limit: int) -> None:
    """Post what is due in every organisation of the store (one pass, for cron).

    Prints each item handled and a summary. Exits 1 only if a channel failed for good
    (it is not retried) in this pass.
    """
    office = session.office()
    store, zone, now = session.store(), session.zone(), session.now()
    due = sum(len(store.due_for_posting(org, now, limit)) for org in store.orgs())
    bar_shown = due >= _BAR_FROM and _stdout_is_tty()
    held: list[str] = []
    printer = _PassPrinter(store, office.org, zone, held.append if bar_shown else _echo)
    one_pass = worker.Worker(store, clock=session.clock, batch=limit,
                             **_credential_options(session))
    with _listening(_Listener(printer.heard, worker=one_pass)):
        if bar_shown:
            label = _("Posting {count} due item(s)").format(count=due)
            with click.progressbar(length=due, label=label) as bar:
                printer.on_item = lambda: bar.update(1)
                tally = printer.finish(one_pass.run_once())
                bar.update(max(due - tally.items, 0))
            for line in held:
                _echo(line)
        else:
            tally = printer.finish(one_pass.run_once())
    if not tally.items:
        _echo(_("Nothing is due."))
        return
    _echo(f"{tally.text()[0].upper()}{tally.text()[1:]}.")
    for line in _needs_people(tally, office.org):
        _echo(line)
    if tally.for_good:
        click.get_current_context().exit(1)


class _EchoPasses(_WorkerBase):
    """What makes a :class:`~humasflow.publishing.worker.Worker` report each pass on the
    terminal: the items of a pass with work as they are done, then a line for the pass; a
    stretch of quiet passes in one line (at the next busy pass, at least hourly, and on
    stopping). :func:`_echo_worker` puts it on the worker class.
    """

    def __init__(self, store: Store, printer: _PassPrinter, *, clock: Clock,
                 **options: Any) -> None:
        super().__init__(store, clock=clock, **options)
        self.printer = printer
        self.passes = 0
        self.total = _Tally()
        #: The quiet stretch not reported yet: first and last pass, and their times.
        self._quiet: tuple[int, int, dt.datetime, dt.datetime] | None = None
        self._pass_at = clock()
        shown = printer.echo

        def echo(line: str) -> None:
            self.flush_quiet()
            shown(line)

        printer.echo = echo
        self._shown = shown

    def run_once(self, now: dt.datetime | None = None) -> list[PostReport]:
        self.passes += 1
        self._pass_at = now or self.clock()
        self.printer.begin()
        reports = super().run_once(now)
        tally = self.printer.finish(reports)
        self.total.add(tally)
        zone = self.printer.zone
        if tally.items:
            self.printer.echo(_("[{time}] pass {number}: {summary}").format(
                time=_when(self._pass_at, zone), number=self.passes, summary=tally.text()))
            for line in _needs_people(tally, self.printer.org):
                self.printer.echo(f"  {line}")
        else:
            first, _last, since, _at = self._quiet or (self.passes, 0, self._pass_at,
                                                       self._pass_at)
            self._quiet = (first, self.passes, since, self._pass_at)
            if self._pass_at - since >= _QUIET_REPORT_EVERY:
                self.flush_quiet()
        return reports

    def flush_quiet(self) -> None:
        """Print the stretch of quiet passes not reported yet."""
        if self._quiet is None:
            return
        first, last_pass, since, last = self._quiet
        self._quiet = None
        zone = self.printer.zone
        at = _when(since, zone)
        if first == last_pass:
            # One quiet pass starts and ends at the same moment: it has no "until".
            line = _("[{time}] pass {number}: nothing due").format(time=at, number=first)
        elif last != since:
            line = _("[{time}] passes {first}-{last}: nothing due (until {until})").format(
                time=at, first=first, last=last_pass, until=_when(last, zone))
        else:
            line = _("[{time}] passes {first}-{last}: nothing due").format(
                time=at, first=first, last=last_pass)
        self._shown(line)


@functools.cache
def _echo_worker() -> type[_EchoPasses]:
    """The worker of ``humasflow worker``: made when that command runs, since the
    publishing module it builds on imports the publishers (and ``requests``)."""
    return type("_EchoWorker", (_EchoPasses, worker.Worker), {})


@cli.command("worker")
@click.option("--interval", type=click.FloatRange(min=0), default=30.0, show_default=True,
              metavar="SECONDS", help="The wait between two passes.")
@click.option("--max-loops", type=click.IntRange(min=1), metavar="N",
              help="Stop after N passes (default: run until stopped).")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              metavar="N", help="At most N items of each organisation in one pass.")
@click.pass_obj
def worker_command(session: _Session, interval: float, max_loops: int | None,
                   limit: int) -> None:
    """Post what is due, pass after pass, until stopped (Ctrl-C or SIGTERM).

    Prints the items of each pass with work, then a line for the pass; quiet passes are
    summed up in one line. A stop request lets the current pass finish.
    """
    office = session.office()
    store, zone = session.store(), session.zone()
    printer = _PassPrinter(store, office.org, zone, _echo)
    options: dict[str, Any] = {"poll_interval": interval, "batch": limit,
                               **_credential_options(session)}
    if session.sleep is not None:
        options["sleep"] = session.sleep
    loop = _echo_worker()(store, printer, clock=session.clock, **options)
    _echo(_("Worker {id} started on {target}: a pass every {interval} over every "
            "organisation. Stop it with Ctrl-C or SIGTERM; the current pass finishes "
            "first.").format(id=loop.worker_id, target=_display_target(office),
                             interval=_duration(dt.timedelta(seconds=interval))))
    with _listening(_Listener(printer.heard, worker=loop)):
        passes = loop.run(max_loops=max_loops)
    loop.flush_quiet()
    done = loop.total
    if max_loops is None or passes < max_loops:
        _echo(_("Worker stopped after {passes} pass(es): {summary}.").format(
            passes=passes, summary=done.text()))
    else:
        _echo(_("Worker stopped after {passes} pass(es) (--max-loops {max_loops}): "
                "{summary}.").format(passes=passes, max_loops=max_loops, summary=done.text()))


def _web_url_option(ctx: click.Context, param: click.Parameter,
                    value: str | None) -> str | None:
    """``--url``: an http(s) address with a host, refused before anything is written."""
    if value is None:
        return None
    try:
        return _input.web_url("--url", value)
    except InputInvalid as exc:
        raise click.BadParameter(_("{value!r} is not a web address (http:// or https:// "
                                   "and a host); give the post's public address, e.g. "
                                   "https://www.instagram.com/p/abc/").format(
                                       value=value[:80])) from exc


@cli.command()
@_item_argument
@click.argument("channel_name", metavar="CHANNEL")
@_as_option
@click.option("--url", callback=_web_url_option,
              help="The public URL (http:// or https://) of the post a person found or made.")
@click.option("--platform-id", help="The platform's id of the post.")
@click.option("--not-posted", is_flag=True, help="The post is not on the platform.")
@click.option("--attempt", type=click.IntRange(min=0),
              help="The attempt you checked, as `humasflow status` shows it: nothing is "
                   "recorded if the channel was tried again since.")
@click.pass_obj
def confirm(session: _Session, item_id: int, channel_name: str, by: str, url: str | None,
            platform_id: str | None, not_posted: bool, attempt: int | None) -> None:
    """Settle a channel a person checked: posted at --url, or --not-posted (posts again)."""
    if not_posted == bool(url or platform_id):
        raise click.UsageError(_("give either --url (or --platform-id) or --not-posted"))
    _report_command(session, item_id, by, lambda office: office.confirm(
        item_id, channel_name, by=by, url=url, platform_id=platform_id,
        not_posted=not_posted, attempt=attempt))


@cli.command()
@_item_argument
@click.argument("channel_name", metavar="[CHANNEL]", required=False)
@_as_option
@click.pass_obj
def retry(session: _Session, item_id: int, channel_name: str | None, by: str) -> None:
    """Post a failed channel again now, once its cause is fixed (e.g. a renewed token).

    Without CHANNEL, every failed channel of the item. Only a failed channel is retried:
    an unknown one may be posted already (confirm it instead). The output and exit code
    are those of `publish`.
    """
    _report_command(session, item_id, by,
                    lambda office: office.retry(item_id, channel_name, by=by))


@cli.command()
@_item_argument
@click.argument("channel_name", metavar="CHANNEL")
@_as_option
@click.option("--reason", required=True, help="Why the channel is dropped.")
@click.pass_obj
def skip(session: _Session, item_id: int, channel_name: str, by: str, reason: str) -> None:
    """Drop one channel of the item (coordinator), so the others can close it."""
    if not reason.strip():
        raise click.BadParameter(_("the reason is empty"), param_hint="--reason")
    # The coordinator cannot confirm channels: suggestions name who had it posted.
    _report_command(session, item_id, None,
                    lambda office: office.skip(item_id, channel_name, by=by, reason=reason),
                    changed=channel_name)


# -- the record -----------------------------------------------------------------------------


@cli.command()
@click.argument("item_id", metavar="[ID]", type=int, required=False)
@click.pass_obj
def log(session: _Session, item_id: int | None) -> None:
    """The recorded events, of one item or of the whole organisation."""
    office = session.office()
    if item_id is not None:
        events = office.history(item_id)
    else:
        events = sorted(office.events(), key=lambda e: e.at)
    if not events:
        _echo(_("No events."))
        return
    zone = session.zone()
    rows = []
    for e in events:
        moved = e.to_state or ""
        if e.from_state and e.from_state != e.to_state:
            moved = f"{e.from_state}->{e.to_state}"
        # Translators: the record of the organisation itself, in the log's Record column.
        stream = _("org") if e.stream == "org" else _("item {id}").format(
            id=e.stream.partition(":")[2])
        rows.append((_local(e.at, zone, seconds=True), stream, e.actor, e.action, moved,
                     _short(_event_note(e, zone), 60)))
    headers = (_("Time ({zone})").format(zone=_zone_name(zone, session.now())), _("Record"),
               _("Actor"), _("Action"), _("From->To"), _("Note"))
    _echo(_table(headers, rows))


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True, help="The file format.")
@click.option("--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write to this file (default: standard output).")
@click.option("--item", "item_id", type=int, help="Only this item's events.")
@click.pass_obj
def export(session: _Session, fmt: str, output: Path | None, item_id: int | None) -> None:
    """Export the record (every event, with its hashes)."""
    office = session.office()
    if item_id is not None:
        office.item(item_id)
    if output is None:
        if fmt == "csv" and _stdout_is_tty():
            # Shown on a terminal: the cells' text must not drive it.
            buffer = io.StringIO()
            office.export(buffer, format=fmt, item_id=item_id)
            _echo(buffer.getvalue(), nl=False)
            return
        office.export(sys.stdout, format=fmt, item_id=item_id)
        return
    try:
        out = output.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        _fail(_("cannot write --output {path!r}: {reason}").format(path=str(output),
                                                                    reason=exc.strerror))
    with out:
        count = office.export(out, format=fmt, item_id=item_id)
    _echo(_("Wrote {count} event(s) to {path}").format(count=count, path=output), err=True)


@cli.group()
def audit() -> None:
    """Check the electronic record."""


@audit.command("verify")
@click.option("--anchor", "anchor", type=click.Path(dir_okay=False, path_type=Path),
              help="An anchor file written by 'audit anchor': the record must extend it.")
@click.option("--visits", is_flag=True,
              help="Also derive every step visit from the events again and compare it with "
                   "the stored one the evaluation report reads.")
@click.pass_obj
def audit_verify(session: _Session, anchor: Path | None, visits: bool) -> None:
    """Check the whole record (exit 1 if broken).

    No event was edited, deleted or reordered, every row is what the events say it
    became, and (with --anchor) the record still extends the anchor.
    """
    with _progress(_("Checking the record")) as advance:
        report = session.office().verify(anchor=anchor, progress=advance, visits=visits)
    if report.ok:
        extends = " " + _("It extends the anchor.") if anchor is not None else ""
        _echo(_("OK: {events} events in {streams} records and {rows} rows, no break "
                "found.").format(events=report.events, streams=report.streams,
                                 rows=report.rows) + extends)
        return
    for finding in report.findings:
        _echo(_("BROKEN {finding}").format(finding=finding))
    _echo(_("{count} finding(s) in {events} events: the record was changed outside "
            "humasflow.").format(count=len(report.findings), events=report.events))
    click.get_current_context().exit(1)


@audit.command("anchor")
@click.option("--out", "out", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Also write the anchor to this file (keep it outside the database).")
@click.pass_obj
def audit_anchor(session: _Session, out: Path | None) -> None:
    """Record a checkpoint of every stream and print the anchor (JSON).

    Keep the anchor somewhere the database's writers cannot change (another machine,
    a signed e-mail, a printout); 'audit verify --anchor FILE' then proves that the
    record still extends it, so even a rewrite of the whole database is caught.
    """
    document = session.office().anchor()
    text = json.dumps(document, indent=2, sort_keys=True)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
        seq = document["seq"]
        _echo(_("Wrote the anchor (organisation stream #{seq}) to {path}").format(
            seq=seq, path=out), err=True)
    _echo(text)


_all_orgs_option = click.option(
    "--all-orgs", is_flag=True,
    help="Every organisation of the store, one after the other (lines start with the "
         "organisation).")


def _org_offices(session: _Session, all_orgs: bool) -> list[tuple[str, Office]]:
    """The office of ``--org``, or (``--all-orgs``) of every organisation, each with the
    prefix of its lines."""
    office = session.office()
    if not all_orgs:
        return [("", office)]
    return [(f"[{org}] ", office if org == office.org else office.for_org(org, create=False))
            for org in office.organisations()]


@cli.command("check-sla")
@_all_orgs_option
@click.pass_obj
def check_sla(session: _Session, all_orgs: bool) -> None:
    """Report each new breach of a step's standard time (once per breach), and each
    channel credential that expires within a week (as it comes near, and when it has
    expired)."""
    for prefix, office in _org_offices(session, all_orgs):
        if prefix:
            _echo(prefix.strip())
        _check_sla_of(session, office)


def _credential_line(warning: Any, channels: Mapping[str, Any], zone: dt.tzinfo,
                     now: dt.datetime) -> str:
    """A warning about a channel's credential, its time in the office's zone."""
    name = warning.channel
    via = f"{name} ({channels[name].publisher})" if name in channels else name
    when = _when(warning.expires_at, zone)
    if warning.expired:
        return _("{channel}: WARNING the credential {credential!r} ({reference}) "
                 "expired at {time}; renew it").format(
            channel=via, credential=warning.credential, reference=warning.reference,
            time=when)
    return _("{channel}: WARNING the credential {credential!r} ({reference}) "
             "expires at {time} (in {left}); renew it before then").format(
        channel=via, credential=warning.credential, reference=warning.reference,
        time=when, left=_duration(warning.expires_at - now))


def _check_sla_of(session: _Session, office: Office) -> None:
    breaches = office.check_sla(session.now())
    zone, now = session.zone(), session.now()
    warnings = office.check_credentials(now=now)
    channels = office.channels() if warnings else {}
    for warning in warnings:
        _echo(_credential_line(warning, channels, zone, now))
    if not breaches:
        _echo(_("No new breach of a standard time."))
        return
    rows = [(b.item.id, _short(b.item.title), _step_name(office, b.item.sop_revision, b.step),
             b.item.assignee or "-", _local(b.due_at, zone), f"+{_duration(b.late_by)}")
            for b in breaches]
    headers = (_("ID"), _("Title"), _("Step"), _("Assignee"),
               _("Due ({zone})").format(zone=_zone_name(zone, now)), _("Late"))
    _echo(_table(headers, rows))
    _echo("\n" + _("{count} new breach(es) reported.").format(count=len(breaches)))


@cli.command()
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="The first day of the period (default: the first day of --until's month).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="The last day of the period, included (default: today).")
@click.option("--by", type=click.Choice(["step", "channel", "staff", "revision"]),
              default="step", show_default=True,
              help="Break the steps down by channel, staff member or SOP revision.")
@click.option("--revision", type=int, help="Only items of this SOP revision.")
@click.option("--channel", "channel_name", metavar="NAME",
              help="Only items posted (or being posted) to this channel.")
@click.option("--staff", metavar="ID", help="Only step visits this person ended.")
@click.option("--compare", type=int, metavar="REVISION",
              help="Compare the items of this SOP revision with those of the revision "
                   "before it, step by step, with the sample sizes.")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "csv", "json", "html"]),
              default="table", show_default=True,
              help="The output format (html: one self-contained page to attach).")
@click.option("--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write to this file (default: standard output).")
@click.option("--chart", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              metavar="FILE",
              help="Also draw the report's charts into FILE, .png or .svg (needs the "
                   "charts extra).")
@click.pass_obj
def report(session: _Session, since: dt.datetime | None, until: dt.datetime | None, by: str,
           revision: int | None, channel_name: str | None, staff: str | None,
           compare: int | None, fmt: str, output: Path | None, chart: Path | None) -> None:
    """Evaluate the procedure over a period (SOP step 9).

    For each step: completions, median, 90th percentile and longest duration against
    its standard time, and the share within it; rejections at approval and rework at
    recheck with their reasons; the lead time from concept to posted; items per week;
    each channel's posting; and every breach. Days are days of the SOP's time zone;
    durations are on the SOP's clock (wall or working time), as the report says.

    With --compare REVISION: the items of that revision against those of the revision
    before it ("did the change help?"), with the number of completions on each side.
    """
    from humasflow.report import render, render_comparison

    office = session.office()
    today = session.now().astimezone(session.zone()).date()
    last = until.date() if until is not None else today
    first = since.date() if since is not None else last.replace(day=1)
    if compare is not None and (revision is not None or by != "step"):
        _fail(_("--compare cannot be combined with --revision or --by: it compares two "
                "revisions step by step; leave those out"))
    if compare is not None and chart is not None:
        _fail(_("--chart draws one period's report, not a comparison: leave out --compare "
                "or --chart"))
    if chart is not None:
        from humasflow.charts import ChartsUnavailable, available, write_chart

        if chart.suffix.lower() not in (".png", ".svg"):
            _fail(_("--chart {path!r} must end in .png or .svg").format(path=str(chart)))
        if not available():
            _fail(str(ChartsUnavailable()))
    try:
        if compare is not None:
            text = render_comparison(office.compare_revisions(
                first, last, compare, channel=channel_name, staff=staff,
                now=session.now()), fmt)
        else:
            found = office.report(first, last, by=None if by == "step" else by,
                                  revision=revision, channel=channel_name, staff=staff,
                                  now=session.now())
            text = render(found, fmt)
    except InputInvalid as exc:
        _fail(str(exc))
    if chart is not None:
        try:
            write_chart(found, chart)
        except OSError as exc:
            _fail(_("cannot write --chart {path!r}: {reason}").format(
                path=str(chart), reason=exc.strerror))
        _echo(_("Drew the charts into {path}").format(path=chart), err=True)
    if output is None:
        _echo(text, nl=not text.endswith("\n"))
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(_("cannot write --output {path!r}: {reason}").format(path=str(output),
                                                                    reason=exc.strerror))
    _echo(_("Wrote the report to {path}").format(path=output), err=True)


@cli.command()
def plugins() -> None:
    """The loaded plugins, the hooks each implements, and the publishers; an installed
    plugin that cannot be loaded is listed as broken, with what to do."""
    broken = registry.broken_plugins()
    rows = [(p["name"], ", ".join(p["hooks"])) for p in registry.get_plugins()]
    rows += [(b.entry_point, _("BROKEN: not loaded ({error})").format(error=b.error))
             for b in broken]
    _echo(_table((_("Plugin"), _("Hooks")), rows))
    _echo("\n" + _("Publishers: {names}").format(
        names=", ".join(sorted(registry.publisher_factories()))))
    for b in broken:
        _echo(_("Broken: {message}").format(message=b.message))


@cli.command("config")
@click.pass_obj
def config_show(session: _Session) -> None:
    """Each setting, its value, and where it came from (flag, environment, file, default).

    Precedence: a flag wins over the environment, the environment over the configuration
    file, the file over the default.
    """
    config = session.config
    _echo(_("Configuration file: {path}").format(
        path=config.path if config.path is not None else _("none (looked for {local} here and "
                                                           "{user})").format(
            local=CONFIG_NAME, user=user_config_path())))
    rows = [(key, "-" if value is None else _printable(value, one_line=True), where)
            for key, (value, where) in session.sources.items()]
    host = config.media.get("host")
    if host:
        rows.append(("media.host", f"{host['folder']} -> {host['base_url']}", str(config.path)))
    if "max_bytes" in config.media:
        rows.append(("media.max_bytes", str(config.media["max_bytes"]), str(config.path)))
    _echo(_table((_("Setting"), _("Value"), _("From")), rows))
    if config.channels:
        _echo("\n" + _("Channels in the configuration file:"))
        channel_rows = [
            (name, section.get("publisher") or "-",
             ", ".join(f"{k}={v}" for k, v in sorted(section["settings"].items())) or "-",
             ", ".join(f"{k}={v}" for k, v in sorted(section["credentials"].items())) or "-")
            for name, section in sorted(config.channels.items())]
        _echo(_table((_("Name"), _("Publisher"), _("Settings"), _("Credentials")),
                     channel_rows))
    for name, section in (("mail", config.mail), ("calendar", config.calendar)):
        if section:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(section.items()) if k != "password")
            _echo("\n" + f"[{name}] " + shown)


# -- the demo -------------------------------------------------------------------------------


def _png(width: int, height: int, top: tuple[int, int, int],
         bottom: tuple[int, int, int]) -> bytes:
    """A small two-colour PNG, written without any imaging library."""
    rows = b"".join(b"\x00" + bytes(top if y < height // 2 else bottom) * width
                    for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def _demo_media(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    colours = {
        "design-v1": ((0, 51, 102), (255, 204, 0)),
        "design-v2": ((0, 51, 102), (255, 255, 255)),
        "final-v1": ((0, 82, 155), (255, 204, 0)),
        "final-v2": ((0, 82, 155), (255, 255, 255)),
    }
    paths = {}
    for name, (top, bottom) in colours.items():
        path = folder / ("dies-natalis-" + name + ".png")  # a file name, not a message
        path.write_bytes(_png(120, 120, top, bottom))
        paths[name] = str(path.resolve())
    return paths


def _demo_script(media: Mapping[str, str]) -> list[tuple[int, str, str, str, dict[str, Any]]]:
    """(minutes after the previous action, actor, action, note, output) for one item."""
    text = ("Selamat Dies Natalis FISIP Universitas Brawijaya! Terima kasih kepada seluruh "
            "sivitas akademika. #FISIPUB #DiesNatalis")
    return [
        (4, "rina", "complete", "", {"text": text}),
        (8, "rina", "complete", "", {"notes": _("Canva template 'Dies Natalis', official logo "
                                                 "pack, 1080x1080 feed format")}),
        (9, "rina", "complete", "", {"media": [media["design-v1"]]}),
        (6, "budi", "reject", _("The faculty logo is too small; use the official logo."), {}),
        (12, "rina", "complete", "", {"media": [media["design-v2"]]}),
        (4, "budi", "approve", _("Approved by email reply: OK to produce."), {}),
        (9, "rina", "complete", "", {"media": [media["final-v1"]]}),
        (7, "rina", "rework", _("The date on the poster is wrong; fix it before posting."), {}),
        (8, "rina", "complete", "", {"media": [media["final-v2"]]}),
        (6, "rina", "pass", _("Checked against the coordinator's email."), {}),
    ]


@cli.command()
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A new SQLite file (must not exist; default: in a new temporary folder).")
@click.option("--outbox", type=click.Path(file_okay=False, path_type=Path),
              help="The outbox folder (default: 'outbox' next to the demo store).")
@click.pass_obj
def demo(session: _Session, db_path: Path | None, outbox: Path | None) -> None:
    """Walk one item through the whole SOP on a fresh store, offline."""
    if db_path is None:
        db_path = Path(tempfile.mkdtemp(prefix="humasflow-demo-")) / "humasflow.db"
    elif db_path.exists():
        _fail(_("{path!r} already exists; the demo only writes a fresh store: give a new "
                "path, or leave --db out to use a temporary folder").format(path=str(db_path)))
    db_path = db_path.expanduser().resolve()
    db_path.parent.mkdir(parents=True, exist_ok=True)
    outbox = (outbox or db_path.parent / "outbox").expanduser().resolve()
    if outbox.exists() and any(outbox.iterdir()):
        _fail(_("the outbox folder {path!r} is not empty; the demo writes into an empty or "
                "new folder only").format(path=str(outbox)))
    media = _demo_media(db_path.parent / "demo-media")
    script = _demo_script(media)
    total = dt.timedelta(minutes=sum(step[0] for step in script) + 3)
    # The walk ends about now, so the store can be explored afterwards with the real clock.
    start = (system_clock() - total).replace(second=0, microsecond=0)
    from humasflow.testing import SteerableClock

    clock = SteerableClock(start)
    office = humasflow.open(str(db_path), org=session.org, clock=clock, environ={},
                            media_roots=[Path(media["design-v1"]).parent])
    try:
        zone = zoneinfo.ZoneInfo(session.tz or office.sop().header.timezone)
        _demo_walk(office, clock, db_path, outbox, media, script, zone, session.lang)
    finally:
        office.close()


def _program() -> str:
    """This command as a person can type it again: ``humasflow`` if that is on the
    ``PATH`` and is this program, else the full path of the program they ran (such as
    ``.venv/bin/humasflow`` outside the virtual environment)."""
    ran = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if ran is None or ran.stem != "humasflow" or not ran.is_file():
        return "humasflow"  # run from Python (python -m, an embedding app, a test)
    found = shutil.which("humasflow")
    if found is not None and Path(found).resolve() == ran.resolve():
        return "humasflow"
    return str(ran.absolute())


def _command_line(*args: str) -> str:
    """A command line that runs this program with ``args``, quoted for a POSIX shell."""
    return shlex.join([_program(), *args])


def _demo_walk(office: Office, clock: SteerableClock, db_path: Path, outbox: Path,
               media: Mapping[str, str],
               script: Sequence[tuple[int, str, str, str, Mapping[str, Any]]],
               zone: zoneinfo.ZoneInfo, lang: str) -> None:
    from humasflow.testing import staffed_office

    staffed_office(office)
    office.add_channel("outbox", "outbox", settings={"path": str(outbox)}, by="admin")
    echo = _echo
    facts = [
        (_("Demo store:"), str(db_path)),
        (_("Outbox:"), str(outbox)),
        (_("Media files:"), str(Path(media["design-v1"]).parent)),
        (_("SOP:"), _("{number} (revision {revision})").format(
            number=office.sop().header.number, revision=office.current_revision())),
    ]
    width = max(len(label) for label, _value in facts) + 2
    for label, value in facts:
        echo(f"{label:<{width}}{value}")
    echo(_("Administrator admin; staff rina and sari, coordinator budi; channel "
           "'outbox'.") + "\n")

    item = office.new_item("Dies Natalis FISIP UB", by="rina")
    created = _("Item {id} {title!r} by {actor} at step {step}. Due {due}.").format(
        id=item.id, title=item.title, actor="rina",
        step=_step_name(office, item.sop_revision, item.state), due=_local(item.due_at, zone))
    # The action keys line up in a column, as the commands name them.
    echo(f"[{_local(clock(), zone)}] {'create':<8} {created}")
    for minutes, actor, action, note, payload in script:
        clock.advance(minutes=minutes)
        before = office.item(item.id)
        item = office.act(item.id, action, by=actor, note=note, **payload)
        line = _move_line(office, before, item, actor, zone, clock())
        echo(f"[{_local(clock(), zone)}] {action:<8} {line}")
        if note:
            echo(f"{'':19}{note}")
    clock.advance(minutes=3)
    before = office.item(item.id)
    report = office.post(item.id, by="rina")
    item = report.item
    line = _move_line(office, before, item, "rina", zone, clock())
    echo(f"[{_local(clock(), zone)}] {'post':<8} {line}")
    for name, pub in sorted(report.publications.items()):
        where = pub.url or pub.error_message or ""
        echo(f"{'':19}{name}: {_pub_state(pub.state)} {where}".rstrip())

    echo("\n" + _item_text(office, item, lang, zone, clock()))
    verdict = office.verify()
    if verdict.ok:
        echo("\n" + _("Audit: OK: {events} events in {streams} records, no break "
                      "found.").format(events=verdict.events, streams=verdict.streams))
    else:
        echo("\n" + _("Audit: BROKEN: {count} finding(s)").format(count=len(verdict.findings)))
    posted = report.publications.get("outbox")
    folder = outbox / (posted.platform_id if posted is not None and posted.platform_id
                       else "item-" + str(item.id) + "-outbox")  # a folder name, not a message
    echo(_("The outbox post was written to {path}").format(path=folder / "post.json"))
    org = [] if office.org == DEFAULT_ORG else ["--org", office.org]
    command = _command_line("--db", str(db_path), *org, "show", str(item.id))
    echo("\n" + _("Explore it: {command}").format(command=command))
    if not verdict.ok or not report.done:
        click.get_current_context().exit(1)


# -- mail ----------------------------------------------------------------------------------


@cli.group()
def mail() -> None:
    """Approval by email: send the requests, read the coordinators' replies."""


def _mail_setup(session: _Session, *, imap: bool = False) -> tuple[Office, Any, bytes, Any,
                                                                    str | None]:
    """The office, the ``[mail]`` settings, the signing secret, the transport answers go
    through (``None`` without ``mail.host``) and the login's password."""
    from humasflow.mail import MailSettings, SMTPTransport, mail_password, mail_secret

    office = session.office()
    settings = MailSettings.from_config(session.config.mail)
    if imap and not settings.imap_host:
        _fail(_("mail.imap_host is not set in the configuration file: say which IMAP "
                "server holds the replies (see docs/mail-replies.md)"))
    secret = mail_secret(office.credentials, settings)
    password = mail_password(office.credentials, settings)
    transport = SMTPTransport(settings, password) if settings.host else None
    return office, settings, secret, transport, password


def _outcome_line(outcome: Any) -> str:
    who = outcome.sender or "?"
    if outcome.status == "accepted":
        if outcome.action == "approve":
            text = _("{id} from {sender}: item {item} approved")
        else:
            text = _("{id} from {sender}: item {item} rejected")
    elif outcome.status == "duplicate":
        text = _("{id} from {sender}: processed already, nothing done")
    else:
        text = _("{id} from {sender}: refused ({reason}): {detail}")
    return text.format(id=outcome.message_id or "?", sender=who, item=outcome.item_id,
                       reason=outcome.reason, detail=outcome.detail)


@mail.command("process")
@click.argument("file", type=click.File("rb"))
@click.pass_obj
def mail_process(session: _Session, file: IO[bytes]) -> None:
    """Process one reply (an .eml file, or - for standard input).

    Exits with 1 when the reply was refused (the sender was answered why).
    """
    from humasflow.mail.answers import process_message

    office, settings, secret, transport, _password = _mail_setup(session)
    raw = file.read()
    source = str(getattr(file, "name", "-"))  # a path, or <stdin>
    if not raw.strip():
        _fail(_("{file} is empty: give a raw email message (an .eml file)").format(
            file=source))
    outcome = process_message(office, raw, settings=settings, secret=secret,
                              transport=transport, now=session.now())
    _echo(_outcome_line(outcome))
    if outcome.status == "refused":
        click.get_current_context().exit(1)


@mail.command("poll")
@click.option("--once", is_flag=True, help="Read the folder once, then stop.")
@click.option("--interval", type=click.FloatRange(min=1), default=60, show_default=True,
              metavar="SECONDS", help="How long to wait between two reads.")
@click.pass_obj
def mail_poll(session: _Session, once: bool, interval: float) -> None:
    """Process the unread replies of the IMAP folder and move them to the done folder."""
    from humasflow.mail.imap import IMAPPoller

    office, settings, secret, transport, password = _mail_setup(session, imap=True)
    poller = IMAPPoller(office, settings, password=password, secret=secret,
                        transport=transport)
    if once:
        outcomes = poller.poll_once()
        for outcome in outcomes:
            _echo(_outcome_line(outcome))
        if not outcomes:
            _echo(_("No unread replies in {folder}.").format(folder=settings.imap_folder))
        return
    _echo(_("Reading {folder} on {host} every {seconds} s; Ctrl+C stops.").format(
        folder=settings.imap_folder, host=settings.imap_host, seconds=f"{interval:g}"))
    try:
        poller.run(interval=interval, on_outcome=lambda o: _echo(_outcome_line(o)))
    except KeyboardInterrupt:
        _echo(_("Stopped."))


def _mail_status(status: str) -> str:
    """A mail queue row's status in words, translated."""
    words = {"queued": N_("queued"), "sending": N_("sending"), "sent": N_("sent"),
             "failed": N_("failed"), "obsolete": N_("obsolete")}
    return _(words[status]) if status in words else status


def _mail_offices(session: _Session, all_orgs: bool) -> list[tuple[str, Office]]:
    """:func:`_org_offices`; fails when mail is not set up."""
    if not session.office().mail_enabled:
        _fail(_("mail is not set up: add a [mail] section with host and sender to the "
                "configuration file (see docs/mail.md)"))
    return _org_offices(session, all_orgs)


@mail.command("send")
@click.option("--limit", type=click.IntRange(min=1, max=10000), default=100,
              show_default=True, help="Send at most this many messages (of each "
              "organisation).")
@_all_orgs_option
@click.pass_obj
def mail_send(session: _Session, limit: int, all_orgs: bool) -> None:
    """Send the queued mail that is due (approval requests, notifications, digests).

    Prints one line per message; exits with 1 when any of them failed this time (it is
    retried later, see `humasflow mail queue`).
    """
    done: list[tuple[str, Any]] = []
    errors: list[str] = []
    for prefix, office in _mail_offices(session, all_orgs):
        try:
            done += [(prefix, row) for row in office.send_mail(now=session.now(),
                                                               limit=limit)]
        except HumasflowError as exc:  # the other organisations still send theirs
            errors.append(prefix + str(exc))
    zone = session.zone()
    failed = bool(errors)
    for prefix, row in done:
        item = str(row.item_id) if row.item_id is not None else "-"
        if row.status == "sent":
            text = _("{id} {kind} (item {item}) to {to}: sent")
        elif row.status == "obsolete":
            text = _("{id} {kind} (item {item}) to {to}: no longer relevant, not sent")
        elif row.status == "failed":
            failed = True
            text = _("{id} {kind} (item {item}) to {to}: failed for good: {error}")
        else:
            failed = True
            text = _("{id} {kind} (item {item}) to {to}: failed ({error}); next attempt "
                     "at {time}")
        _echo(prefix + text.format(id=row.id, kind=row.kind, item=item, to=row.address,
                                   error=row.last_error or "?",
                                   time=_when(row.next_attempt_at, zone)))
    if errors:
        for error in errors:
            _echo(_("Error: {error}").format(error=error), err=True)
    elif not done:
        _echo(_("No mail is due."))
    if failed:
        click.get_current_context().exit(1)


@mail.command("digest")
@click.option("--force", is_flag=True,
              help="Queue another digest even if one was queued today.")
@_all_orgs_option
@click.pass_obj
def mail_digest(session: _Session, force: bool, all_orgs: bool) -> None:
    """Queue the daily digest to the coordinators (sent by `humasflow mail send`).

    It lists what waits, what is late and what was posted, and carries the record's
    anchor, taken now: keep the emails, and `humasflow audit verify --anchor FILE`
    against any of them catches a later rewrite of the record. Run it once a day (cron).
    """
    for prefix, office in _mail_offices(session, all_orgs):
        queued = office.queue_digest(now=session.now(), force=force)
        if queued:
            _echo(prefix + _("Daily digest queued for {count} coordinator(s); `humasflow "
                             "mail send` sends it.").format(count=queued))
        elif force:
            _echo(prefix + _("No digest queued: no active coordinator has an email "
                             "address."))
        else:
            _echo(prefix + _("No digest queued: one was queued today already (--force "
                             "queues another), or no active coordinator has an email "
                             "address."))


@mail.command("queue")
@click.option("--status", type=click.Choice(["queued", "sending", "sent", "failed",
                                             "obsolete"]),
              help="Only the messages with this status.")
@click.option("--limit", type=click.IntRange(min=1, max=10000), default=50,
              show_default=True, help="Show at most this many (newest first).")
@click.pass_obj
def mail_queue(session: _Session, status: str | None, limit: int) -> None:
    """The mail queue: what is waiting, sent, failed or no longer relevant."""
    office = session.office()
    rows = office.mail_queue(status, limit=limit)
    if not rows:
        _echo(_("The mail queue is empty.") if status is None
              else _("No mail is {status}.").format(status=_mail_status(status)))
        return
    zone = session.zone()
    waiting = ("queued", "sending")  # not a message
    _echo(_table((_("ID"), _("Status"), _("Kind"), _("Item"), _("To"), _("Attempts"),
                  _("Next attempt"), _("Last error")), [
        (row.id, _mail_status(row.status), row.kind,
         row.item_id if row.item_id is not None else "-",
         f"{row.recipient} <{row.address}>", row.attempts,
         _when(row.next_attempt_at, zone) if row.status in waiting else "-",
         row.last_error or "-") for row in rows]))
