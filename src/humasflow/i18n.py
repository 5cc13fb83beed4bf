"""Messages in Indonesian and English: gettext catalogs managed with Babel.

Every message a person can read (the command's output, its help, errors raised by the
library) is written in English in the source, marked with :func:`_` (or :func:`N_`
where it must be translated later, such as click's help texts), and translated from
the ``humasflow`` gettext catalog under ``humasflow/locale/``. The catalogs are made and
kept with Babel's ``pybabel extract / update / compile`` (see ``docs/translating.md``).

The language is a context variable, so one thread or task can speak Indonesian while
another speaks English::

    from humasflow import i18n

    with i18n.use("id"):
        office.approve(item_id, by="coord")   # errors raised here are in Indonesian

English is the default and needs no catalog: it is the source text.

Messages use ``str.format`` placeholders with names, never f-strings, so a translation
can reorder them::

    _("Item {id} waits for approval.").format(id=item.id)
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import gettext
import os
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "N_",
    "Translator",
    "_",
    "format_date",
    "format_datetime",
    "format_duration",
    "from_environment",
    "language",
    "ngettext",
    "normalise",
    "set_language",
    "use",
]

#: The languages humasflow speaks; the first is the source language.
LANGUAGES = ("en", "id")
DEFAULT_LANGUAGE = "en"
DOMAIN = "humasflow"
LOCALE_DIR = Path(__file__).with_name("locale")

_current: contextvars.ContextVar[str] = contextvars.ContextVar(
    "humasflow_language", default=DEFAULT_LANGUAGE)

#: Other spellings people type for the two languages.
_ALIASES = {"in": "id", "ind": "id", "indonesian": "id", "bahasa": "id",
            "eng": "en", "english": "en"}


def normalise(name: str | None) -> str | None:
    """``"id"`` or ``"en"`` for a language name or locale (``id_ID.UTF-8``, ``en-GB``,
    ``Indonesian``); ``None`` for anything humasflow does not speak."""
    if not name:
        return None
    code = name.strip().split(".", 1)[0].replace("-", "_").split("_", 1)[0].lower()
    code = _ALIASES.get(code, code)
    return code if code in LANGUAGES else None


@cache
def _catalog(lang: str) -> gettext.NullTranslations:
    if lang == DEFAULT_LANGUAGE:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[lang], fallback=True)


def language() -> str:
    """The language messages are made in now."""
    return _current.get()


def set_language(lang: str) -> contextvars.Token[str]:
    """Speak ``lang`` from now on in this context; returns a token for
    :meth:`contextvars.ContextVar.reset`. An unknown language is a :class:`ValueError`."""
    code = normalise(lang)
    if code is None:
        raise ValueError(f"unknown language {lang!r}; humasflow speaks {', '.join(LANGUAGES)}")
    return _current.set(code)


@contextlib.contextmanager
def use(lang: str) -> Iterator[str]:
    """Speak ``lang`` inside the ``with`` block."""
    token = set_language(lang)
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def _(message: str) -> str:
    """``message`` in the current language (the English text when it has no translation)."""
    lang = _current.get()
    if lang == DEFAULT_LANGUAGE:
        return message
    return _catalog(lang).gettext(message)


class Translator:
    """The translation functions of a plugin's own gettext catalog, in the language of
    the moment (the same context as humasflow's own messages)::

        # humasflow_x/__init__.py
        from pathlib import Path
        from humasflow.i18n import Translator

        _ = Translator("humasflow_x", Path(__file__).with_name("locale"))

    The catalog is kept like humasflow's: ``python -m humasflow._catalogs --domain
    humasflow_x --package-dir src/humasflow_x`` extracts, updates and compiles it.
    """

    def __init__(self, domain: str, locale_dir: str | os.PathLike[str]) -> None:
        self.domain = domain
        self.locale_dir = Path(locale_dir)

    def _catalog(self) -> gettext.NullTranslations:
        found: gettext.NullTranslations = _plugin_catalog(self.domain, str(self.locale_dir),
                                                          _current.get())
        return found

    def __call__(self, message: str) -> str:
        """``message`` in the current language (as :func:`_`)."""
        if _current.get() == DEFAULT_LANGUAGE:
            return message
        return self._catalog().gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        """The form of a message for ``n`` (as :func:`ngettext`)."""
        if _current.get() == DEFAULT_LANGUAGE:
            return singular if n == 1 else plural
        return self._catalog().ngettext(singular, plural, n)


@cache
def _plugin_catalog(domain: str, locale_dir: str, lang: str) -> gettext.NullTranslations:
    return gettext.translation(domain, locale_dir, languages=[lang], fallback=True)


def N_(message: str) -> str:
    """Mark ``message`` for the catalog without translating it now (help texts, labels
    kept in tables): translate it with :func:`_` when it is shown."""
    return message


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form of a message for ``n``, in the current language."""
    lang = _current.get()
    if lang == DEFAULT_LANGUAGE:
        return singular if n == 1 else plural
    return _catalog(lang).ngettext(singular, plural, n)


def from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """The language asked for by ``HUMASFLOW_LANG`` (``None`` when unset or unknown)."""
    env = os.environ if environ is None else environ
    return normalise(env.get("HUMASFLOW_LANG"))


def format_datetime(when: dt.datetime, zone: dt.tzinfo | None = None, *,
                    seconds: bool = False) -> str:
    """A moment as people in the current language write it, in ``zone``.

    The form is numeric and sortable in both languages (``2026-12-02 19:00``), the way
    an office's records and tables show it; use :func:`format_date` for prose.
    """
    local = when.astimezone(zone) if zone is not None else when
    return local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def format_date(when: dt.date | dt.datetime, zone: dt.tzinfo | None = None) -> str:
    """A date in words: ``2 Desember 2026`` / ``2 December 2026``."""
    from babel.dates import format_date as babel_date

    if isinstance(when, dt.datetime):
        when = when.astimezone(zone).date() if zone is not None else when.date()
    return babel_date(when, format="long", locale=_locale())


def format_duration(delta: dt.timedelta, *, words: bool = False) -> str:
    """A duration, short for tables (``1h05m`` / ``1j05m``) or, with ``words``, as Babel
    says it (``2 hours`` / ``2 jam``)."""
    if words:
        from babel.dates import format_timedelta

        return format_timedelta(delta, locale=_locale(), threshold=1.0)
    total = round(delta.total_seconds())
    sign, total = ("-" if total < 0 else ""), abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    # Translators: the unit letters of a short duration (day, hour, minute, second).
    d, h, m, s = _("d h m s").split()
    if days:
        text = f"{days}{d}{hours:02d}{h}" if hours else f"{days}{d}"
    elif hours:
        text = f"{hours}{h}{minutes:02d}{m}"
    elif minutes:
        text = f"{minutes}{m}{secs:02d}{s}" if secs else f"{minutes}{m}"
    else:
        text = f"{secs}{s}"
    return sign + text


def _locale() -> str:
    return {"id": "id_ID", "en": "en_GB"}[_current.get()]
