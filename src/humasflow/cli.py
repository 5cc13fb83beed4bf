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

import contextlib
import datetime as dt
import io
import json
import struct
import sys
import tempfile
import textwrap
import threading
import zlib
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, cast

import attrs
import click
from transitions import State
from transitions.extensions.diagrams import GraphMachine

import humasflow
from humasflow import plugins as registry
from humasflow.clock import Clock, system_clock
from humasflow.credentials import CredentialSource, SecretsFile
from humasflow.errors import (
    ActorNotFound,
    CredentialSourceError,
    HumasflowError,
    OrganisationNotFound,
    StepNotFound,
)
from humasflow.evaluation import timeline
from humasflow.hookspecs import hookimpl
from humasflow.i18n import _
from humasflow.models import ADMIN_ROLE, ContentItem, Event, Media, Publication, Variant
from humasflow.office import DEFAULT_ORG, Office, PostReport
from humasflow.publishing import worker
from humasflow.scrubbing import scrub
from humasflow.sop import PHASES, SOP, Label, load_sop
from humasflow.storage.store import Store
from humasflow.testing import SteerableClock, staffed_office

__all__ = ["cli", "main"]

DEFAULT_DB = "humasflow.db"
DEFAULT_ZONE = "Asia/Jakarta"
_CLOSED = ("posted", "cancelled")


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
    click.echo(_printable(message), err=err, nl=nl)


class _Group(click.Group):
    """A group that turns every humasflow error into a one-line ``Error: ...``.

    ``aliases`` maps other names to commands; they work but are not listed in the help.
    """

    def __init__(self, *args: Any, aliases: Mapping[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases = dict(aliases or {})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None and cmd_name in self.aliases:
            found = super().get_command(ctx, self.aliases[cmd_name])
        return found

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


@attrs.define
class _Session:
    """The global options of one invocation, and the office they open (lazily)."""

    db: str
    org: str
    lang: str
    tz: str | None
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
            _fail("--db is empty; give the path of a SQLite file (e.g. humasflow.db) or a "
                  "postgresql:// URL")
        if _is_sqlite_path(self.db) and Path(self.db).is_dir():
            _fail(f"--db {self.db!r} is a directory; give the path of a SQLite file "
                  "(e.g. humasflow.db) or a postgresql:// URL")

    def office(self, *, create: bool = False) -> Office:
        """The office; unless ``create``, the store and the organisation must exist
        already (a misspelt ``--org`` creates nothing)."""
        if self._office is None:
            self._check_db()
            if not create and _is_sqlite_path(self.db) and not Path(self.db).exists():
                _fail(f"no humasflow store at {self.db!r}; create one with `humasflow init` "
                      "(or point --db / HUMASFLOW_DB at an existing one)")
            credentials = self.credentials()
            try:
                self._office = humasflow.open(
                    self.db, org=self.org, clock=self.clock, establish=False,
                    environ=self.environ if credentials is None else None,
                    credentials=credentials, busy_timeout=self.busy_timeout,
                    media=self.media_store, media_roots=self.media_roots, create=create)
            except OrganisationNotFound as exc:
                _fail(_("there is no organisation {org!r} in the store {db}; its "
                        "organisations: {known}. Check --org (or HUMASFLOW_ORG); `humasflow "
                        "--org {org} init --admin ID --name NAME` sets up a new one").format(
                            org=exc.org, db=self.db,
                            known=", ".join(exc.known) or _("none")))
            click.get_current_context().call_on_close(self._office.close)
        return self._office

    def known_orgs(self) -> list[str] | None:
        """The organisations of the store, or ``None`` when there is no store yet (a
        SQLite file that does not exist); creates nothing."""
        self._check_db()
        if _is_sqlite_path(self.db) and not Path(self.db).exists():
            return None
        timeout = self.busy_timeout if self.busy_timeout is not None else 30.0
        store = Store(self.db, busy_timeout=timeout)
        try:
            return store.orgs()
        finally:
            store.close()

    def store(self) -> Store:
        """The store itself, for the worker commands that serve every organisation in it
        (opened after :meth:`office` checked it, closed with the command)."""
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
        raise click.BadParameter(f"{value!r} is not a known time zone (try Asia/Jakarta)") from exc
    return value


def _pairs(values: Iterable[str], what: str) -> dict[str, str]:
    """Turn ``key=value`` arguments into a dict."""
    result: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{value!r} is not {what} (write key=value)")
        result[key.strip()] = rest.strip()
    return result


def _media_label(media: Media) -> str:
    """A media as ``show`` prints it: where it came from, and what is stored."""
    if media.missing:
        return f"{media.source} (MISSING: the file was gone when the store was migrated)"
    if media.passthrough:
        return f"{media.source} (URL passed through)"
    if not media.is_stored:
        return f"{media.source} (not in the media store)"
    size = f", {media.width}x{media.height}" if media.width and media.height else ""
    return f"{media.source} ({media.mime}{size}, sha256 {media.sha256[:12]})"


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
            raise click.BadParameter(f"no file at {value!r}", param_hint="--media")
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
            raise click.BadParameter(f"{positions!r} is not a list of media positions "
                                     "(0,1,...)", param_hint="--variant-media") from None
        result.setdefault(name, {})["media"] = chosen
    for key, raw in _pairs(options, "CHANNEL.KEY=VALUE").items():
        name, dot, option = key.partition(".")
        if not dot or not name or not option:
            raise click.BadParameter(f"{key!r}: write CHANNEL.KEY=VALUE, e.g. x.thread=true",
                                     param_hint="--option")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        result.setdefault(name, {}).setdefault("options", {})[option] = value
    return {name: {k: v for k, v in variant.items() if v is not None and v != {}}
            for name, variant in result.items()}


# -- formatting -----------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], *,
           spaced: bool = False) -> str:
    """Plain-text columns, aligned, with a rule under the headers.

    A cell may hold several lines (``"\\n"``); its row grows to fit them. ``spaced``
    puts a blank line between rows, so that multi-line rows stay apart.
    """
    cells = [[str(c).split("\n") for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], *map(len, cell))

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    lines = [line(headers), line(["-" * w for w in widths])]
    for i, row in enumerate(cells):
        if spaced and i:
            lines.append("")
        for n in range(max(len(cell) for cell in row)):
            lines.append(line([cell[n] if n < len(cell) else "" for cell in row]))
    return "\n".join(lines)


def _local(when: dt.datetime | None, zone: dt.tzinfo, *, seconds: bool = False) -> str:
    """A UTC time shown in ``zone``."""
    if when is None:
        return "-"
    return when.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _zone_name(zone: dt.tzinfo, at: dt.datetime) -> str:
    return at.astimezone(zone).strftime("%Z") or str(zone)


def _duration(delta: dt.timedelta) -> str:
    """A short duration: ``45s``, ``7m``, ``7m30s``, ``1h05m``, ``2d03h``."""
    total = round(delta.total_seconds())
    sign, total = ("-" if total < 0 else ""), abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days}d{hours:02d}h" if hours else f"{days}d"
    elif hours:
        text = f"{hours}h{minutes:02d}m"
    elif minutes:
        text = f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    else:
        text = f"{secs}s"
    return sign + text


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


def _flags(office: Office, item: ContentItem, now: dt.datetime) -> str:
    flags = []
    if _awaits_approval(office, item):
        flags.append("AWAITS APPROVAL")
    if item.is_overdue(now):
        assert item.due_at is not None
        flags.append(f"OVERDUE +{_duration(now - item.due_at)}")
    return ", ".join(flags)


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
        outcome = run.outcome or "(current step)"
        if run.ended_at is not None and k + 1 < len(moves):
            outcome += f" -> {_step_name(office, item.sop_revision, moves[k + 1].to_state)}"
        rows.append((run.number, run.step, run.ended_by or "-", _local(run.started_at, zone),
                     took, f"LATE +{_duration(over)}" if over else "", outcome))
    headers = ("#", "Step", "Ended by", f"Started ({_zone_name(zone, now)})", "Took / standard",
               "Late", "Outcome")
    return _table(headers, rows)


def _move_line(office: Office, before: ContentItem, after: ContentItem, actor: str,
               zone: dt.tzinfo, now: dt.datetime) -> str:
    """What one action did, in one line (plus where the item waits now)."""
    rev = before.sop_revision
    if before.state == after.state:
        line = f"Item {after.id}: {actor} revised it at step {_step_name(office, rev, after.state)}"
        if before.is_approved and not after.is_approved:
            line += "; the approval is withdrawn, it needs the coordinator again"
        return line + "."
    took = ""
    if before.step_started_at is not None:
        step = office.engine(rev).step(before.state)
        took = f" (took {_duration(now - before.step_started_at)}"
        if step is not None and step.standard_time is not None:
            took += f" / {_duration(step.standard_time)}"
            late = now - before.step_started_at - step.standard_time
            if late > dt.timedelta(0):
                took += f", LATE +{_duration(late)}"
        took += ")"
    line = (f"Item {after.id}: {_step_name(office, rev, before.state)} -> "
            f"{_step_name(office, rev, after.state)} by {actor}{took}.")
    if after.is_open and after.due_at is not None:
        line += f" Due {_local(after.due_at, zone)}."
    if _awaits_approval(office, after):
        line += " Waits for the coordinator's approval."
    return line


def _event_note(event: Event, zone: dt.tzinfo) -> str:
    """The event's note, or a short summary of its data (scrubbed of secrets)."""
    return scrub(_event_summary(event, zone))


def _event_summary(event: Event, zone: dt.tzinfo) -> str:
    if event.note:
        return event.note
    data = event.data
    if event.action == "create":
        return f"title {data.get('title', '')!r}"
    if event.action == "establish":
        return f"SOP revision {data.get('revision')}: {data.get('number', '')}"
    if event.action == "actor":
        return f"{data.get('id')} ({', '.join(data.get('roles', []))})"
    if event.action == "channel":
        return f"{data.get('name')} via {data.get('publisher')}"
    if "post_at" in data:
        return f"post at {_local(dt.datetime.fromisoformat(data['post_at']), zone)}"
    if "channel" in data:
        detail = data.get("url") or data.get("error_message") or ""
        return f"{data['channel']}: {data.get('state', '')} {detail}".rstrip()
    if isinstance(data.get("channels"), Mapping):
        return "posted to " + ", ".join(sorted(data["channels"]))
    return ""


# -- the command group ----------------------------------------------------------------------


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]},
             aliases={"post": "publish", "channels": "channel"})
@click.version_option(humasflow.__version__, prog_name="humasflow")
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
@click.option("--lang", type=click.Choice(["en", "id"]), default="en", show_default=True,
              help="The language of the SOP's labels.")
@click.option("--tz", callback=_zone_option, metavar="ZONE",
              help="Show times in this zone (default: the SOP's, Asia/Jakarta).")
@click.option("--busy-timeout", envvar="HUMASFLOW_BUSY_TIMEOUT", show_envvar=True,
              type=click.FloatRange(min=0, max=86400), metavar="SECONDS",
              help="How long a write waits for another writer's lock (default: 30).")
@click.option("--secrets", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              envvar="HUMASFLOW_SECRETS", show_envvar=True,
              help="Read channel credentials from this TOML file (mode 600) instead of the "
                   "environment; renewed credentials are written back to it.")
@click.pass_context
def cli(ctx: click.Context, db: str, org: str, media_store: str | None,
        media_roots: tuple[str, ...], lang: str, tz: str | None,
        busy_timeout: float | None, secrets: Path | None) -> None:
    """Run a PR office's social-media SOP: items, approvals, records and posting."""
    seam = ctx.obj if isinstance(ctx.obj, Mapping) else {}
    ctx.obj = _Session(db=db, org=org, lang=lang, tz=tz, busy_timeout=busy_timeout,
                       media_store=media_store, media_roots=tuple(media_roots),
                       clock=seam.get("clock", system_clock), environ=seam.get("environ"),
                       sleep=seam.get("sleep"), secrets=secrets,
                       source=seam.get("credentials"))


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
        raise click.BadParameter("give the administrator's name with --name", param_hint="--name")
    # Everything that can be checked is checked before the store is created or changed.
    sop = load_sop(sop_file) if sop_file is not None else None
    if outbox is not None and admin_id is None and by is None:
        _fail("adding the outbox channel needs an administrator: give --admin ID --name "
              "NAME (the first one) or --by ADMIN")
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
    _echo(f"Store: {_display_target(office)} (schema version {office.schema_version})")
    others = [org for org in (known or []) if org != office.org]
    if new_org and others:
        _echo(_("Organisation: {org} (new; the store's other organisations: {others})")
              .format(org=office.org, others=", ".join(others)))
    else:
        _echo(f"Organisation: {office.org}")
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
        _echo(f"Administrator: {admin.id} ({admin.name})")
        by = by or admin.id
    if by is not None and (sop is not None or not office.revisions()):
        # The administrator who runs init establishes the SOP, never its signatory: the
        # approver the document names is a fact of the document (`sop show`).
        rev = office.establish(sop, by=by)
        established = office.sop(rev)
        _echo(f"Established SOP revision {rev}: {established.header.number} "
                   f"({established.header.title.get(session.lang)}), effective "
                   f"{established.header.effective}")
    elif office.revisions():
        latest = office.revisions()[-1]
        _echo(f"SOP already established: revision {latest['id']} ({latest['number']})")
    elif office.administrators():
        _echo(_("No SOP revision established yet: establish it with `humasflow init --by "
                "ADMIN`."))
    if outbox is not None:
        assert by is not None
        folder = outbox.expanduser().resolve()
        office.add_channel("outbox", "outbox", settings={"path": str(folder)}, by=by)
        _echo(f"Channel 'outbox' writes posts into {folder}")
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


_WORDS: Mapping[str, tuple[str, str]] = {
    # key: (Indonesian, English) — the headings of the signed SOP form.
    "number": ("Nomor SOP", "SOP number"),
    "title": ("Nama SOP", "Title"),
    "institution": ("Unit", "Institution"),
    "made": ("Tanggal pembuatan", "Made"),
    "revised": ("Tanggal revisi", "Revised"),
    "effective": ("Tanggal efektif", "Effective"),
    "approved": ("Disahkan oleh", "Approved by"),
    "revision": ("Revisi terdaftar", "Registered revision"),
    "legal_basis": ("Dasar hukum", "Legal basis"),
    "qualifications": ("Kualifikasi pelaksana", "Executor qualifications"),
    "related": ("Keterkaitan", "Related SOPs"),
    "equipment": ("Peralatan/perlengkapan", "Equipment"),
    "warnings": ("Peringatan", "Warnings"),
    "recording": ("Pencatatan dan pendataan", "Recording"),
    "roles": ("Pelaksana", "Roles"),
    "no": ("No", "No"),
    "activity": ("Kegiatan", "Activity"),
    "actor": ("Pelaksana", "Actor"),
    "time": ("Waktu", "Standard time"),
    "output": ("Output", "Output"),
    "kit": ("Kelengkapan", "Equipment"),
    "phase": ("Tahap", "Phase"),
}


def _word(key: str, lang: str) -> str:
    indonesian, english = _WORDS[key]
    return indonesian if lang == "id" else english


def _sop_text(sop: SOP, meta: Mapping[str, Any], lang: str, zone: dt.tzinfo) -> str:
    h = sop.header

    def w(key: str) -> str:
        return _word(key, lang)

    approver = h.approved_by_name or "-"
    if h.approved_by_position is not None:
        approver += f", {h.approved_by_position.get(lang)}"
    if h.approved_by_nip:
        approver += f" (NIP {h.approved_by_nip})"
    facts = [
        (w("number"), h.number),
        (w("title"), h.title.get(lang)),
        (w("institution"), _label(h.institution, lang)),
        (w("made"), str(h.made or "-")),
        (w("revised"), str(h.revised or "-")),
        (w("effective"), str(h.effective)),
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


class _LabelledState(State):
    """A state that carries a display label into transitions' diagrams."""

    def __init__(self, *args: Any, label: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if label:
            self.label = label


class _DiagramMachine(GraphMachine):
    state_cls = _LabelledState


def _mermaid(office: Office, revision: int, lang: str) -> str:
    """The item lifecycle of a revision as a Mermaid ``stateDiagram-v2``.

    The graph comes from transitions' own Mermaid engine, fed with the states and
    transitions of the revision's Engine; only the title block is written here, because
    transitions 0.9.3 puts a bare title where Mermaid expects ``title: ...``.
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
    transitions = [{"trigger": trigger, "source": t.source, "dest": t.dest}
                   for trigger, event in engine.machine.events.items()
                   for group in event.transitions.values() for t in group]
    title = f"{sop.header.title.get(lang)}: content item lifecycle"
    machine = _DiagramMachine(model=None, states=states, transitions=transitions,
                              initial=engine.first_step, auto_transitions=False,
                              graph_engine="mermaid", title=title)
    # A graph of the machine itself, not of a model: no state is marked as active.
    # (The stub types the argument as the machine class; the engine takes the instance.)
    graph = cast(Callable[[GraphMachine], Any], machine.graph_cls)(machine)
    source = str(graph.get_graph(title=title).draw(None))
    lines = source.splitlines()
    body = lines[next(i for i, line in enumerate(lines) if line.startswith("stateDiagram")):]
    body += [f"  {name} --> [*]" for name in _CLOSED]
    return "\n".join(["---", f"title: {json.dumps(title, ensure_ascii=False)}", "---", *body])


@sop.command("diagram")
@click.option("--revision", type=int, help="A registered revision (default: the current one).")
@click.pass_obj
def sop_diagram(session: _Session, revision: int | None) -> None:
    """The item lifecycle as a Mermaid state diagram."""
    office = session.office()
    rev = revision if revision is not None else office.current_revision()
    _echo(_mermaid(office, rev, session.lang))


@sop.command("register")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_admin_by
@click.option("--effective", type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="From when it applies (default: the file's effective date).")
@click.pass_obj
def sop_register(session: _Session, file: Path, by: str,
                 effective: dt.datetime | None) -> None:
    """Establish a new revision of the SOP from FILE (step 1)."""
    definition = load_sop(file)
    office = session.office()
    rev = office.establish(definition, by=by,
                           effective=effective.date() if effective is not None else None)
    meta = next(r for r in office.revisions() if r["id"] == rev)
    _echo(f"Established SOP revision {rev}: {definition.header.number} "
               f"({definition.header.title.get(session.lang)}) by {meta['established_by']}, "
               f"effective {_local(meta['effective_from'], session.zone())}")
    if office.current_revision() != rev:
        _echo(f"Not in effect yet: new items use revision {office.current_revision()} "
                   "until then. Items keep the revision they started under.")


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
@_admin_by
@click.pass_obj
def actor_add(session: _Session, actor_id: str, name: str, email: str,
              roles: tuple[str, ...], by: str) -> None:
    """Add an actor (or replace their name, email and roles)."""
    if not actor_id.strip():
        raise click.BadParameter("the id is empty: use a stable id such as a username")
    office = session.office()
    known = {key for r in office.revisions() for key in office.sop(int(r["id"])).roles}
    unknown = sorted(set(roles) - known - {ADMIN_ROLE}) if known else []
    if unknown:
        _fail(f"the SOP has no role {unknown[0]!r}; its roles: {', '.join(sorted(known))} "
              f"(and {ADMIN_ROLE!r}, the administrators)")
    added = office.add_actor(actor_id.strip(), name, email=email, roles=roles, by=by)
    _echo(f"Actor {added.id} ({added.name}): {', '.join(sorted(added.roles))}")


@actor.command("list")
@click.pass_obj
def actor_list(session: _Session) -> None:
    """The organisation's actors."""
    office = session.office()
    actors = office.actors()
    if not actors:
        _echo("No actors yet; add one with `humasflow actor add`.")
        return
    roles: dict[str, str] = {}
    if office.revisions():
        roles = {k: r.name.get(session.lang) for k, r in office.sop().roles.items()}
    roles[ADMIN_ROLE] = "administrator"
    _echo(_table(("ID", "Name", "Email", "Roles", "Status"), [
        (a.id, a.name, a.email or "-",
         ", ".join(f"{r} ({roles[r]})" if r in roles else r for r in sorted(a.roles)),
         "active" if a.active else "deactivated")
        for a in actors]))


@actor.command("deactivate")
@click.argument("actor_id", metavar="ID")
@_admin_by
@click.option("--reason", default="", help="Why (kept in the record).")
@click.pass_obj
def actor_deactivate(session: _Session, actor_id: str, by: str, reason: str) -> None:
    """Deactivate an actor: kept in the record, but cannot act or be assigned."""
    done = session.office().deactivate_actor(actor_id, by=by, reason=reason)
    _echo(f"Actor {done.id} ({done.name}) is deactivated")


@actor.command("activate")
@click.argument("actor_id", metavar="ID")
@_admin_by
@click.option("--reason", default="", help="Why (kept in the record).")
@click.pass_obj
def actor_activate(session: _Session, actor_id: str, by: str, reason: str) -> None:
    """Reactivate a deactivated actor."""
    done = session.office().activate_actor(actor_id, by=by, reason=reason)
    _echo(f"Actor {done.id} ({done.name}) is active")


@cli.group(short_help="Add, list and check channels (also: channels).")
def channel() -> None:
    """Add, list and check the channels items are posted to (also: `channels`)."""


@channel.command("add")
@click.argument("name")
@click.option("--publisher", required=True, help="An installed publisher, e.g. outbox.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A publisher setting (repeatable).")
@click.option("--credential", "credentials", multiple=True, metavar="KEY=ENV_VAR",
              help="A credential, as the environment variable (or secrets-file key) "
                   "holding it, never the secret itself (repeatable).")
@_admin_by
@click.pass_obj
def channel_add(session: _Session, name: str, publisher: str, settings: tuple[str, ...],
                credentials: tuple[str, ...], by: str) -> None:
    """Configure a target channel (or replace its configuration).

    A setting or credential that looks like a secret is refused: secrets live in the
    environment or the secrets file, and the channel names them.
    """
    office = session.office()
    added = office.add_channel(name, publisher, settings=_pairs(settings, "a setting"),
                               credentials=_pairs(credentials, "a credential"), by=by)
    _echo(f"Channel {added.name!r} posts via {added.publisher}")


@channel.command("list")
@click.pass_obj
def channel_list(session: _Session) -> None:
    """The organisation's channels (credentials by variable name, never their value)."""
    office = session.office()
    channels = office.channels()
    if not channels:
        _echo("No channels yet; add one with `humasflow channel add`.")
        return
    rows = []

    def held(var: str) -> str:
        try:
            return "set" if office.credential_value(var) else "NOT SET"
        except CredentialSourceError:
            return "UNREADABLE"

    for c in channels.values():
        settings = ", ".join(f"{k}={v}" for k, v in sorted(c.settings.items())) or "-"
        creds = ", ".join(f"{k}={var} ({held(var)})"
                          for k, var in sorted(c.credentials.items())) or "-"
        rows.append((c.name, c.publisher, settings, creds,
                     "active" if c.active else "deactivated"))
    _echo(_table(("Name", "Publisher", "Settings", "Credentials", "Status"), rows))


@channel.command("deactivate")
@click.argument("name")
@_admin_by
@click.option("--reason", default="", help="Why (kept in the record).")
@click.pass_obj
def channel_deactivate(session: _Session, name: str, by: str, reason: str) -> None:
    """Deactivate a channel: kept in the record, no default target, not posted to."""
    done = session.office().deactivate_channel(name, by=by, reason=reason)
    _echo(f"Channel {done.name!r} is deactivated")


@channel.command("activate")
@click.argument("name")
@_admin_by
@click.option("--reason", default="", help="Why (kept in the record).")
@click.pass_obj
def channel_activate(session: _Session, name: str, by: str, reason: str) -> None:
    """Reactivate a deactivated channel."""
    done = session.office().activate_channel(name, by=by, reason=reason)
    _echo(f"Channel {done.name!r} is active")


@channel.command("check")
@click.option("--warn-days", type=click.FloatRange(min=0), default=7.0, show_default=True,
              metavar="DAYS", help="Warn about credentials that expire within DAYS.")
@click.pass_obj
def channel_check(session: _Session, warn_days: float) -> None:
    """Check every channel's credentials with its platform, without posting.

    Prints OK or the error for each channel (never a secret), and a warning for each
    credential known to expire within --warn-days (or expired); exits 1 if any channel
    failed its check.
    """
    office = session.office()
    channels = office.channels()
    if not channels:
        _echo("No channels yet; add one with `humasflow channel add`.")
        return

    def masked(text: str) -> str:
        # A publisher's message should never hold a secret; if one does, it is scrubbed.
        return " ".join(scrub(text).split())

    try:
        results = office.check_channels()
    except Exception as exc:
        _fail(masked(f"checking the channels stopped: {type(exc).__name__}: {exc}"))
    failed = 0
    for name, error in sorted(results.items()):
        via = f"{name} ({channels[name].publisher})" if name in channels else name
        if error is None:
            _echo(f"  {via}: OK")
        else:
            failed += 1
            _echo(f"  {via}: FAILED {type(error).__name__}: {masked(str(error))}")
    zone, now = session.zone(), session.now()
    for warning in office.credential_warnings(dt.timedelta(days=warn_days), now):
        name = warning.channel
        via = f"{name} ({channels[name].publisher})" if name in channels else name
        when = _when(warning.expires_at, zone)
        what = f"the credential {warning.credential!r} ({warning.reference})"
        if warning.expired:
            _echo(f"  {via}: WARNING {what} expired at {when}; renew it")
        else:
            left = _duration(warning.expires_at - now)
            _echo(f"  {via}: WARNING {what} expires at {when} (in {left}); renew it "
                       "before then")
    if not failed:
        _echo(f"All {len(results)} channel(s) OK.")
        return
    _echo(f"{failed} of {len(results)} channel(s) failed the check.")
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
        raise click.BadParameter("the title is empty: give the item a short title")
    office = session.office()
    variants = _variants(variant_texts, variant_media, variant_opts)
    item = office.new_item(title, by=by, text=text, media=_media_paths(media), link=link,
                           channels=list(channels) or None, assignee=assignee,
                           variants=variants)
    _echo(item.id)
    _echo(f"Created item {item.id} {item.title!r} at step "
               f"{_step_name(office, item.sop_revision, item.state)}, due "
               f"{_local(item.due_at, session.zone())}.", err=True)
    if not item.post.channels:
        _echo("Warning: the item has no target channel; add one with "
                   "`humasflow channel add` before it goes to approval.", err=True)
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
        _echo("No items.")
        return
    zone, now = session.zone(), session.now()
    rows = [(i.id, _short(i.title), _step_name(office, i.sop_revision, i.state),
             i.assignee or "-", _local(i.due_at, zone) if i.is_open else "-",
             _flags(office, i, now)) for i in items]
    headers = ("ID", "Title", "Step", "Assignee", f"Due ({_zone_name(zone, now)})", "Flags")
    _echo(_table(headers, rows))
    waiting = sum(1 for i in items if _awaits_approval(office, i))
    late = sum(1 for i in items if i.is_overdue(now))
    _echo(f"\n{len(items)} item(s); {waiting} awaiting approval; {late} overdue.")


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
        return f"approved by {approval.get('by', '?')}: {approval.get('answer', '')}"
    decisions = [e for e in office.history(item.id) if e.action in ("approve", "reject")]
    last = decisions[-1] if decisions else None
    if last is not None and last.action == "reject":
        return f"rejected by {last.actor}: {last.note}"
    if last is not None or item.approved_digest is not None:
        return "withdrawn: the content changed after approval; it needs approval again"
    if _awaits_approval(office, item):
        return "waiting for the coordinator"
    return "not approved yet"


def _variant_text(variant: Variant) -> str:
    """One channel's variant as the coordinator approves it."""
    parts = []
    if variant.text is not None:
        parts.append(repr(variant.text))
    if variant.media is not None:
        parts.append("media " + (",".join(map(str, variant.media)) or "none"))
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
        ("Item", f"{item.id} {item.title!r}"),
        ("State", where),
        ("Assignee", item.assignee or "-"),
        ("Created", f"{_local(item.created_at, zone)} by {item.created_by}"),
    ]
    if item.is_open:
        due = _local(item.due_at, zone)
        flags = _flags(office, item, now)
        facts.append(("Due", f"{due}  {flags}".rstrip()))
        facts.append(("Next", ", ".join(_commands(office, item)) or "-"))
    facts += [
        ("Text", item.post.text or "-"),
        ("Link", item.post.link or "-"),
        ("Media", ", ".join(_media_label(m) for m in item.post.media) or "-"),
        ("Produced", ", ".join(_media_label(m) for m in item.produced) or "-"),
        ("Channels", ", ".join(item.post.channels) or "-"),
    ]
    for name, variant in sorted(item.post.variants.items()):
        facts.append((f"Variant {name}", _variant_text(variant)))
    warnings = _warning_lines(office, item)
    if warnings:
        facts.append((_("Warnings"), "\n".join(warnings)))
    facts.append(("Approval", _approval_status(office, item)))
    if item.outputs.get("notes"):
        facts.append(("Notes", str(item.outputs["notes"])))
    recheck = item.outputs.get("recheck")
    if isinstance(recheck, Mapping):
        note = f": {recheck.get('note')}" if recheck.get("note") else ""
        facts.append(("Recheck", f"{recheck.get('result')} by {recheck.get('by')}{note}"))
    facts.append(("SOP revision", str(item.sop_revision)))
    width = max(len(k) for k, _ in facts)
    # Warnings are one a line, under each other.
    lines = [f"{k + ':':<{width + 1}}  " + (("\n" + " " * (width + 3)).join(warnings)
                                           if warnings and k == _("Warnings") else v)
             for k, v in facts]
    history = office.history(item.id)
    lines += ["", "Timeline:", _timeline_table(office, item, history, zone, now)]
    publications = office.publications(item.id)
    lines += ["", "Publications:"]
    if not publications:
        lines.append("  none yet")
    for name, pub in sorted(publications.items()):
        detail = pub.url or pub.platform_id or ""
        if pub.error_message:
            detail = _error_text(pub)
        lines.append(f"  {name}: {pub.state} (attempts {pub.attempts}) {detail}".rstrip())
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
#: From this many due items on, `run-due` on a terminal shows a progress bar.
_BAR_FROM = 5
#: A worker reports a stretch of quiet passes at least this often.
_QUIET_REPORT_EVERY = dt.timedelta(hours=1)


def _stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def _when(at: dt.datetime, zone: dt.tzinfo) -> str:
    """A time to the second, in ``zone``, with the zone's name."""
    return f"{_local(at, zone, seconds=True)} {_zone_name(zone, at)}"


def _counts(pubs: Iterable[Publication]) -> str:
    """``"1 posted, 1 failed"``: how many channels are in each state."""
    states = [p.state for p in pubs]
    order = [s for s in _STATE_ORDER if s in states] + sorted(set(states) - set(_STATE_ORDER))
    return ", ".join(f"{states.count(s)} {s.replace('_', ' ')}" for s in order) or "no channels"


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
        detail = f"after {pub.attempts} attempt(s): {_error_text(pub)}; "
        detail += (f"retried automatically at {_when(pub.next_attempt_at, zone)}"
                   if pub.next_attempt_at is not None else "not retried automatically")
    elif pub.state in ("waiting", "unknown"):
        detail = scrub(pub.error_message or "")
        if pub.state == "unknown" and pub.next_attempt_at is not None:
            detail += f"; looked up on the platform at {_when(pub.next_attempt_at, zone)}"
    elif pub.state == "in_flight" and pub.claimed_by:
        detail = f"by {pub.claimed_by}"
    if earlier and pub.state in ("posted", "skipped"):
        detail = f"{detail} (earlier)".lstrip()
    return f"  {name}: {pub.state.replace('_', ' ')} {detail}".rstrip()


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
        return [f"post it on {name} by hand, then: "
                f"humasflow confirm {i} {name} --as {who} --url URL"]
    if pub.state == "unknown":
        lookup = []
        if pub.next_attempt_at is not None:
            lookup = [f"nothing yet: it is looked up on {name} at "
                      f"{_when(pub.next_attempt_at, zone)} by `humasflow run-due` or a "
                      "running `humasflow worker`; or settle it yourself:"]
        return [*lookup,
                f"check whether the post is on {name} (the last attempt may have posted it)",
                f"if it is:     humasflow confirm {i} {name} --as {who} --url URL",
                f"if it is not: humasflow confirm {i} {name} --as {who} --not-posted "
                "(it is posted again)"]
    if pub.state == "failed" and pub.next_attempt_at is not None:
        return [f"nothing: it is retried at {_when(pub.next_attempt_at, zone)} by "
                "`humasflow run-due` (cron) or a running `humasflow worker`"]
    if pub.state == "failed":
        return ["fix the cause of the error, then post it again: "
                f"humasflow confirm {i} {name} --as {who} --not-posted",
                f"or drop the channel: humasflow skip {i} {name} "
                f"--as {_coordinator(office, item)} --reason TEXT"]
    if pub.state == "in_flight":
        until = f" after {_when(pub.lease_until, zone)}" if pub.lease_until else ""
        return [f"wait: an attempt by {pub.claimed_by or 'a worker'} is under way; if it "
                f"stopped, it counts as interrupted{until} and is checked again"]
    return []


class _Listener:
    """Hears each channel's outcome the moment it is recorded, through the publishing hooks.

    Registered as a plugin only while a command posts; it hears only the store (or the
    office) it was made for.
    """

    def __init__(self, on_channel: Callable[[ContentItem, Publication], None], *,
                 store: Store | None = None, office: Office | None = None) -> None:
        self.on_channel = on_channel
        self.store = store
        self.office = office

    def _hear(self, office: Office, item: ContentItem, publication: Publication) -> None:
        if self.office is not None and office is not self.office:
            return
        if self.store is not None and office.store_uuid != self.store.uuid:
            return
        self.on_channel(item, publication)

    @hookimpl
    def channel_posted(self, office: Office, item: ContentItem,
                       publication: Publication) -> None:
        self._hear(office, item, publication)

    @hookimpl
    def channel_failed(self, office: Office, item: ContentItem,
                       publication: Publication) -> None:
        self._hear(office, item, publication)

    @hookimpl
    def channel_unknown(self, office: Office, item: ContentItem,
                        publication: Publication) -> None:
        self._hear(office, item, publication)


@contextlib.contextmanager
def _listening(listener: _Listener) -> Iterator[_Listener]:
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
        _echo(f"Item {item.id} is posted: {_counts(pubs.values())}.")
        return
    _echo(f"Item {item.id} is not posted yet: {_counts(pubs.values())}.")
    who = who or _poster(office, item)
    waiting = sorted(n for n, p in pubs.items() if p.state == "waiting")
    # An unknown outcome the platform will be asked about is no person's task yet.
    unknown = sorted(n for n, p in pubs.items()
                     if p.state == "unknown" and p.next_attempt_at is None)
    if waiting or unknown:
        tasks = ([f"post on {', '.join(waiting)}"] if waiting else []) + (
            [f"check {', '.join(unknown)}"] if unknown else [])
        _echo(f"Item {item.id} waits for a person to {' and '.join(tasks)}.")
    for name, pub in sorted(pubs.items()):
        first, *rest = _advice(office, item, name, pub, who, zone) or [""]
        if first:
            _echo(f"  {name}: {first}")
            for line in rest:
                _echo(f"  {'':{len(name) + 1}} {line}")
    stuck = [f"{n} {p.state.replace('_', ' ')}" for n, p in sorted(pubs.items())
             if p.state in ("failed", "in_flight", "pending")]
    if stuck:
        _fail(f"item {item.id} is not posted on every channel ({', '.join(stuck)}); "
              f"see `humasflow status {item.id}`")


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
@click.option("--at", "when", required=True,
              type=click.DateTime(["%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M%z", "%Y-%m-%d %H:%M %z"]),
              metavar="'YYYY-MM-DD HH:MM[+HH:MM]'",
              help="When to post, in the display time zone, or with an explicit UTC offset.")
@click.pass_obj
def schedule(session: _Session, item_id: int, by: str, when: dt.datetime) -> None:
    """Have the item posted later, by `humasflow run-due` (cron) or `humasflow worker`.

    A time the display zone skips (daylight saving starts) is refused, and so is one it
    has twice (daylight saving ends) unless --at gives the UTC offset.
    """
    zone = session.zone()
    at = when if when.tzinfo is not None else _local_time(when, zone)
    item = session.office().schedule(item_id, at, by=by)
    _echo(f"Item {item.id} will be posted at {_local(at, zone)} "
          "by the next `humasflow run-due` (or a running `humasflow worker`).")


def _local_time(naive: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """``naive`` as a time of ``zone``'s clock, refusing one the clock skips or repeats."""
    at = naive.replace(tzinfo=zone)
    shown = naive.strftime("%Y-%m-%d %H:%M")
    try:
        back = at.astimezone(dt.timezone.utc).astimezone(zone)
    except (OverflowError, ValueError):
        _fail(f"--at {shown!r} is outside the times humasflow takes (1900 to 8999)")
    if back.replace(tzinfo=None) != naive:
        _fail(f"--at {shown!r} does not exist in {zone}: the clocks skip it (daylight saving "
              f"starts); give a time that exists, e.g. {back.strftime('%Y-%m-%d %H:%M')}")
    other = at.replace(fold=1)
    if other.utcoffset() != at.utcoffset():
        first, second = (f"{shown}{_offset(at)}", f"{shown}{_offset(other)}")
        _fail(f"--at {shown!r} happens twice in {zone} (daylight saving ends); say which "
              f"with its UTC offset: --at '{first}' (the first) or --at '{second}' "
              "(the second)")
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
    title = f"Item {item.id} {item.title!r}"
    if item.state in _CLOSED:
        _echo(f"{title}: {item.state}.")
    elif at_posting:
        tried = _counts(pubs.values()) if pubs else "no channel tried yet"
        _echo(f"{title}: at step {_step_name(office, item.sop_revision, item.state)}, "
                   f"not posted yet: {tried}.")
    else:
        step = f" {posting.number} {posting.key}" if posting is not None else ""
        _echo(f"{title}: at step {_step_name(office, item.sop_revision, item.state)}; "
                   f"it is posted at step{step}.")
    history = office.history(item.id)
    held = next((e for e in reversed(history)
                 if e.action in ("post", "schedule", "schedule_held")), None)
    asked = next((e for e in reversed(history) if e.action in ("post", "schedule")), None)
    post_at = None
    if asked is not None and asked.data.get("post_at"):
        post_at = dt.datetime.fromisoformat(asked.data["post_at"])
        if asked.action == "post":
            _echo(f"Published by {asked.actor} at {_when(post_at, zone)}.")
        else:
            _echo(f"Scheduled by {asked.actor} for {_when(post_at, zone)}.")
    if held is not None and held.action == "schedule_held" and item.is_open:
        _echo(f"Waiting: {held.note}")
        post_at = None
    names = list(dict.fromkeys([*item.post.channels, *sorted(pubs)]))
    if not names:
        _echo("The item has no target channel.")
        return
    who = _poster(office, item)
    for name in names:
        pub = pubs.get(name)
        _echo("")
        if pub is None:
            _echo(f"{name}: not tried yet")
            pub = Publication(item_id=item.id, channel=name, state="pending")
        else:
            _echo(f"{name}: {pub.state.replace('_', ' ')}")
        facts = [
            ("attempts", str(pub.attempts)),
            ("platform id", pub.platform_id or "-"),
            ("url", pub.url or "-"),
            ("last error", _error_text(pub) or "-"),
            ("next retry", _when(pub.next_attempt_at, zone)
             if pub.next_attempt_at is not None else "-"),
        ]
        todo = _advice(office, item, name, pub, who, zone)
        if pub.state == "pending" and item.is_open:
            if not at_posting:
                todo = ["nothing yet: it is posted when the item has passed its earlier steps"]
            elif post_at is not None and post_at > now:
                todo = [f"nothing: it is posted at {_when(post_at, zone)} by `humasflow "
                        "run-due` (cron) or a running `humasflow worker`"]
            else:
                todo = [f"post it: humasflow publish {item.id} --as {who}"]
        for label, value in facts + [("to do", line) for line in todo[:1]]:
            _echo(f"  {label + ':':<13} {value}")
        for line in todo[1:]:
            _echo(f"  {'':<13} {line}")


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
            return "nothing due"
        line = f"{self.items} item(s) handled: {self.closed} posted"
        if self.items - self.closed:
            line += f", {self.items - self.closed} still open"
        if self.channels:
            line += f"; channels: {_counts(self.channels)}"
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
        self.tally = _Tally()

    def heard(self, item: ContentItem, pub: Publication) -> None:
        key = (item.org, item.id)
        with self._lock:
            if self._current is not None and self._current != key:
                self._print(self._current)
            self._current = key
            self._heard.setdefault(key, {})[pub.channel] = pub

    def finish(self, reports: Sequence[PostReport]) -> _Tally:
        with self._lock:
            for report in reports:
                key = (report.item.org, report.item.id)
                if key not in self._printed:
                    self._print(key, report.item, report.publications)
            for key in list(self._heard):
                if key not in self._printed:
                    self._print(key)
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
        state = item.state if item.state in _CLOSED else f"still open ({_counts(pubs.values())})"
        self.echo(f"Item {item.id}{where} {item.title!r}: {state}")
        for name in sorted(heard or pubs):
            if name in pubs:
                self.echo(_channel_line(name, pubs[name], self.zone))
        tally = self.tally
        tally.items += 1
        tally.closed += item.state == "posted"
        for name, pub in sorted(heard.items()):
            tally.channels.append(pub)
            if pub.state == "failed" and pub.next_attempt_at is None:
                tally.for_good.append((item, name))
            elif pub.state == "waiting" or (pub.state == "unknown"
                                            and pub.next_attempt_at is None):
                tally.person.append((item, name))
        self.on_item()


def _needs_people(tally: _Tally, org: str) -> list[str]:
    """Lines naming the channels of a pass that now need a person."""
    lines = []
    for what, found in (("failed for good", tally.for_good),
                        ("waits for a person", tally.person)):
        for item, name in found:
            where = f" --org {item.org}" if item.org != org else ""
            lines.append(f"{name} of item {item.id} {what}: see "
                         f"`humasflow{where} status {item.id}`")
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
    with _listening(_Listener(printer.heard, store=store)):
        if bar_shown:
            with click.progressbar(length=due, label=f"Posting {due} due item(s)") as bar:
                printer.on_item = lambda: bar.update(1)
                tally = printer.finish(one_pass.run_once())
                bar.update(max(due - tally.items, 0))
            for line in held:
                _echo(line)
        else:
            tally = printer.finish(one_pass.run_once())
    if not tally.items:
        _echo("Nothing is due.")
        return
    _echo(f"{tally.text()[0].upper()}{tally.text()[1:]}.")
    for line in _needs_people(tally, office.org):
        _echo(line)
    if tally.for_good:
        click.get_current_context().exit(1)


class _EchoWorker(worker.Worker):
    """A :class:`~humasflow.publishing.worker.Worker` that reports each pass on the terminal:
    the items of a pass with work as they are done, then a line for the pass; a stretch
    of quiet passes in one line (at the next busy pass, at least hourly, and on stopping).
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
            self.printer.echo(f"[{_when(self._pass_at, zone)}] pass {self.passes}: "
                              f"{tally.text()}")
            for line in _needs_people(tally, self.printer.org):
                self.printer.echo(f"  {line}")
        else:
            first, _, since, _ = self._quiet or (self.passes, 0, self._pass_at, self._pass_at)
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
        passes = f"pass {first}" if first == last_pass else f"passes {first}-{last_pass}"
        until = f" (until {_when(last, zone)})" if last != since else ""
        self._shown(f"[{_when(since, zone)}] {passes}: nothing due{until}")


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
    loop = _EchoWorker(store, printer, clock=session.clock, **options)
    _echo(f"Worker {loop.worker_id} started on {_display_target(office)}: a pass every "
               f"{_duration(dt.timedelta(seconds=interval))} over every organisation. "
               "Stop it with Ctrl-C or SIGTERM; the current pass finishes first.")
    with _listening(_Listener(printer.heard, store=store)):
        passes = loop.run(max_loops=max_loops)
    loop.flush_quiet()
    why = "" if max_loops is None or passes < max_loops else f" (--max-loops {max_loops})"
    done = loop.total
    _echo(f"Worker stopped after {passes} pass(es){why}: {done.text()}.")


@cli.command()
@_item_argument
@click.argument("channel_name", metavar="CHANNEL")
@_as_option
@click.option("--url", help="The public URL of the post a person found or made.")
@click.option("--platform-id", help="The platform's id of the post.")
@click.option("--not-posted", is_flag=True, help="The post is not on the platform.")
@click.pass_obj
def confirm(session: _Session, item_id: int, channel_name: str, by: str, url: str | None,
            platform_id: str | None, not_posted: bool) -> None:
    """Settle a channel a person checked: posted at --url, or --not-posted (posts again)."""
    if not_posted == bool(url or platform_id):
        raise click.UsageError("give either --url (or --platform-id) or --not-posted")
    _report_command(session, item_id, by, lambda office: office.confirm(
        item_id, channel_name, by=by, url=url, platform_id=platform_id,
        not_posted=not_posted))


@cli.command()
@_item_argument
@click.argument("channel_name", metavar="CHANNEL")
@_as_option
@click.option("--reason", required=True, help="Why the channel is dropped.")
@click.pass_obj
def skip(session: _Session, item_id: int, channel_name: str, by: str, reason: str) -> None:
    """Drop one channel of the item (coordinator), so the others can close it."""
    if not reason.strip():
        raise click.BadParameter("the reason is empty", param_hint="--reason")
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
        _echo("No events.")
        return
    zone = session.zone()
    rows = []
    for e in events:
        moved = e.to_state or ""
        if e.from_state and e.from_state != e.to_state:
            moved = f"{e.from_state}->{e.to_state}"
        stream = "org" if e.stream == "org" else f"item {e.stream.partition(':')[2]}"
        rows.append((_local(e.at, zone, seconds=True), stream, e.actor, e.action, moved,
                     _short(_event_note(e, zone), 60)))
    headers = (f"Time ({_zone_name(zone, session.now())})", "Record", "Actor", "Action",
               "From->To", "Note")
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
        _fail(f"cannot write --output {str(output)!r}: {exc.strerror}")
    with out:
        count = office.export(out, format=fmt, item_id=item_id)
    _echo(f"Wrote {count} event(s) to {output}", err=True)


@cli.group()
def audit() -> None:
    """Check the electronic record."""


@audit.command("verify")
@click.option("--anchor", "anchor", type=click.Path(dir_okay=False, path_type=Path),
              help="An anchor file written by 'audit anchor': the record must extend it.")
@click.pass_obj
def audit_verify(session: _Session, anchor: Path | None) -> None:
    """Check the whole record (exit 1 if broken).

    No event was edited, deleted or reordered, every row is what the events say it
    became, and (with --anchor) the record still extends the anchor.
    """
    report = session.office().verify(anchor=anchor)
    if report.ok:
        extends = " It extends the anchor." if anchor is not None else ""
        _echo(f"OK: {report.events} events in {report.streams} records and "
                   f"{report.rows} rows, no break found.{extends}")
        return
    for finding in report.findings:
        _echo(f"BROKEN {finding}")
    _echo(f"{len(report.findings)} finding(s) in {report.events} events: "
               "the record was changed outside humasflow.")
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
        _echo(f"Wrote the anchor (organisation stream #{document['seq']}) to {out}",
                   err=True)
    _echo(text)


@cli.command("check-sla")
@click.pass_obj
def check_sla(session: _Session) -> None:
    """Report each new breach of a step's standard time (once per breach)."""
    office = session.office()
    breaches = office.check_sla(session.now())
    if not breaches:
        _echo("No new breach of a standard time.")
        return
    zone, now = session.zone(), session.now()
    rows = [(b.item.id, _short(b.item.title), _step_name(office, b.item.sop_revision, b.step),
             b.item.assignee or "-", _local(b.due_at, zone), f"+{_duration(b.late_by)}")
            for b in breaches]
    headers = ("ID", "Title", "Step", "Assignee", f"Due ({_zone_name(zone, now)})", "Late")
    _echo(_table(headers, rows))
    _echo(f"\n{len(breaches)} new breach(es) reported.")


@cli.command()
def plugins() -> None:
    """The loaded plugins, the hooks each implements, and the publishers."""
    _echo(_table(("Plugin", "Hooks"), [(p["name"], ", ".join(p["hooks"]))
                                            for p in registry.get_plugins()]))
    _echo(f"\nPublishers: {', '.join(sorted(registry.publisher_factories()))}")


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
        path = folder / f"dies-natalis-{name}.png"
        path.write_bytes(_png(120, 120, top, bottom))
        paths[name] = str(path.resolve())
    return paths


def _demo_script(media: Mapping[str, str]) -> list[tuple[int, str, str, str, dict[str, Any]]]:
    """(minutes after the previous action, actor, action, note, output) for one item."""
    text = ("Selamat Dies Natalis FISIP Universitas Brawijaya! Terima kasih kepada seluruh "
            "sivitas akademika. #FISIPUB #DiesNatalis")
    return [
        (4, "rina", "complete", "", {"text": text}),
        (8, "rina", "complete", "", {"notes": "Canva template 'Dies Natalis', official logo "
                                               "pack, 1080x1080 feed format"}),
        (9, "rina", "complete", "", {"media": [media["design-v1"]]}),
        (6, "budi", "reject", "The faculty logo is too small; use the official logo.", {}),
        (12, "rina", "complete", "", {"media": [media["design-v2"]]}),
        (4, "budi", "approve", "Approved by email reply: OK to produce.", {}),
        (9, "rina", "complete", "", {"media": [media["final-v1"]]}),
        (7, "rina", "rework", "The date on the poster is wrong; fix it before posting.", {}),
        (8, "rina", "complete", "", {"media": [media["final-v2"]]}),
        (6, "rina", "pass", "Checked against the coordinator's email.", {}),
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
        _fail(f"{str(db_path)!r} already exists; the demo only writes a fresh store: "
              "give a new path, or leave --db out to use a temporary folder")
    db_path = db_path.expanduser().resolve()
    db_path.parent.mkdir(parents=True, exist_ok=True)
    outbox = (outbox or db_path.parent / "outbox").expanduser().resolve()
    if outbox.exists() and any(outbox.iterdir()):
        _fail(f"the outbox folder {str(outbox)!r} is not empty; the demo writes into an "
              "empty or new folder only")
    media = _demo_media(db_path.parent / "demo-media")
    script = _demo_script(media)
    total = dt.timedelta(minutes=sum(step[0] for step in script) + 3)
    # The walk ends about now, so the store can be explored afterwards with the real clock.
    start = (system_clock() - total).replace(second=0, microsecond=0)
    clock = SteerableClock(start)
    office = humasflow.open(str(db_path), clock=clock, environ={},
                            media_roots=[Path(media["design-v1"]).parent])
    try:
        zone = zoneinfo.ZoneInfo(session.tz or office.sop().header.timezone)
        _demo_walk(office, clock, db_path, outbox, media, script, zone, session.lang)
    finally:
        office.close()


def _demo_walk(office: Office, clock: SteerableClock, db_path: Path, outbox: Path,
               media: Mapping[str, str],
               script: Sequence[tuple[int, str, str, str, Mapping[str, Any]]],
               zone: zoneinfo.ZoneInfo, lang: str) -> None:
    staffed_office(office)
    office.add_channel("outbox", "outbox", settings={"path": str(outbox)}, by="admin")
    echo = _echo
    echo(f"Demo store:   {db_path}")
    echo(f"Outbox:       {outbox}")
    echo(f"Media files:  {Path(media['design-v1']).parent}")
    echo(f"SOP:          {office.sop().header.number} (revision {office.current_revision()})")
    echo("Administrator admin; staff rina and sari, coordinator budi; channel 'outbox'.\n")

    item = office.new_item("Dies Natalis FISIP UB", by="rina")
    echo(f"[{_local(clock(), zone)}] create   Item {item.id} {item.title!r} by rina at step "
         f"{_step_name(office, item.sop_revision, item.state)}. Due {_local(item.due_at, zone)}.")
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
    echo(f"[{_local(clock(), zone)}] post     {line}")
    for name, pub in sorted(report.publications.items()):
        echo(f"{'':19}{name}: {pub.state} {pub.url or pub.error_message or ''}".rstrip())

    echo("\n" + _item_text(office, item, lang, zone, clock()))
    verdict = office.verify()
    echo("\nAudit: " + (f"OK: {verdict.events} events in {verdict.streams} records, "
                        "no break found." if verdict.ok else
                        f"BROKEN: {len(verdict.findings)} finding(s)"))
    posted = report.publications.get("outbox")
    folder = outbox / (posted.platform_id if posted is not None and posted.platform_id
                       else f"item-{item.id}-outbox")
    echo(f"The outbox post was written to {folder / 'post.json'}")
    echo(f"\nExplore it: humasflow --db {db_path} show {item.id}")
    if not verdict.ok or not report.done:
        click.get_current_context().exit(1)
