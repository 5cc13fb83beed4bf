"""Scrubbing: secrets never reach the record, a log line or an export.

Text that comes from outside humasflow (a publisher's exception, a platform's answer, a
person's note about a channel) is scrubbed where it enters the record, before it is
written, so the hash chain never holds a secret. :func:`scrub` removes

- every credential value this process handed to a publisher, or that a publisher
  handed back as refreshed (:func:`remember_secret`; values of at least
  :data:`MIN_SECRET_LENGTH` characters, so a short value cannot blank out every ``a`` of
  a message), also in their URL-encoded forms;
- token-shaped parameters: ``access_token=…``, ``client_secret=…``, ``"refresh_token":
  "…"``, ``oauth_signature="…"`` and their kin, in URLs, forms, JSON and reprs;
- ``Authorization:`` header values, ``Bearer …``/``OAuth …`` credentials, a password
  in a URL (``https://user:password@host``), and well-known token shapes (Facebook and
  Instagram access tokens, JSON web tokens).

>>> scrub("GET https://graph.facebook.com/v19.0/me?fields=id&access_token=EAAGm0PX4ZCps")
'GET https://graph.facebook.com/v19.0/me?fields=id&access_token=[redacted]'
>>> scrub("{'Authorization': 'Bearer 9f8e7d6c5b4a'}")
"{'Authorization': '[redacted]'}"
>>> scrub("the token tok-live-1234 was refused", secrets=["tok-live-1234"])
'the token [redacted] was refused'

:class:`ScrubFilter` does the same to every record of the ``humasflow`` loggers.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "ScrubFilter",
    "get_logger",
    "looks_like_token",
    "remember_secret",
    "scrub",
    "scrub_data",
]

#: What a secret is replaced with.
REDACTED = "[redacted]"

#: Credential values shorter than this are not scrubbed as literal text (token-shaped
#: parameters still are, whatever their length).
MIN_SECRET_LENGTH = 8

# A parameter or key whose value is a secret: access_token, refresh_token, client_secret,
# oauth_token_secret, consumer_key, api_key, password, oauth_signature…
_SECRET_NAME = (r"[A-Za-z0-9_.\-]*?(?:token|secret|password|passwd|pwd|signature|"  # noqa: S105
                r"api[_\-]?key|apikey|consumer[_\-]?key|access[_\-]?key|private[_\-]?key|"
                r"appsecret_proof|client_assertion)")

# name=value in a URL, a form body or a header parameter (quoted or not).
_PARAM = re.compile(
    rf"(?P<name>(?<![A-Za-z0-9_.\-]){_SECRET_NAME})(?P<sep>=)"
    r"""(?P<value>\[redacted\]|"[^"]*"|'[^']*'|[^\s&"'<>#,;)\]}]+)""",
    re.IGNORECASE)

# "name": "value" or 'name': 'value' (JSON, Python reprs).
_KEYED = re.compile(
    rf"""(?P<name>(?P<q>["']){_SECRET_NAME}(?P=q))(?P<sep>\s*:\s*)"""
    r"""(?P<value>\[redacted\]|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s,}\]]+)""",
    re.IGNORECASE)

# Authorization / Proxy-Authorization header, as a header line, a dict item or a keyword.
_AUTH_HEADER = re.compile(
    r"""(?P<name>\b(?:proxy-)?authorization["']?\s*[:=]\s*)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|(?:[A-Za-z0-9_]+="[^"\r\n]*"|[^\r\n"'])+)""",
    re.IGNORECASE)

# A credential after its scheme: "Bearer abc123…", "OAuth abc123…".
_SCHEME = re.compile(r"\b(?P<name>(?:Bearer|OAuth|Basic|Token)\s+)(?P<value>[A-Za-z0-9\-._~+/]+=*)")

# A password in a URL: scheme://user:password@host.
_USERINFO = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]+:)(?P<value>[^\s/@]+)(?=@)")

# Well-known token shapes, found anywhere: Facebook/Instagram Graph access tokens, the
# Instagram Basic Display ones, JSON web tokens, X app-only bearer tokens.
_SHAPES = re.compile(
    r"\b(?:EAA[A-Za-z0-9]{20,}|IG(?:QV|AA)[A-Za-z0-9_\-]{20,}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"
    r"|A{16,}[A-Za-z0-9%]{20,})")

# Every pattern above needs one of these (in lower case) to match.
_TRIGGERS = ("token", "secret", "passw", "pwd", "signature", "key", "appsecret",
             "assertion", "authorization", "bearer", "oauth", "basic", "://", "eaa", "igqv",
             "igaa", "eyj", "aaaaaaaaaaaaaaaa")

_HEX = re.compile(r"[0-9a-f]{32,}|[0-9A-F]{32,}")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9+/=_\-.~]+")

_known: set[str] = set()
_known_forms: tuple[str, ...] = ()
_lock = threading.Lock()


def remember_secret(value: str | None) -> None:
    """Have every later :func:`scrub` in this process remove ``value``.

    The office calls it for each credential it hands to a publisher and for each refreshed
    credential a publisher hands back. Values shorter than :data:`MIN_SECRET_LENGTH` are
    ignored.
    """
    global _known_forms
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _known:
            return
        _known.add(value)
        forms = set(_known_forms)
        forms.update(_forms(value))
        _known_forms = tuple(sorted(forms, key=len, reverse=True))


def _forms(value: str) -> set[str]:
    """The value as it may appear in text: itself and URL-encoded."""
    return {value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret, every ``secrets`` value and everything
    token-shaped replaced by :data:`REDACTED`.

    Args:
        text: Any text about to be written (a message, a note, a log line).
        secrets: More values to remove (besides those remembered); values shorter than
            :data:`MIN_SECRET_LENGTH` are left alone.
    """
    if not text:
        return text
    forms = _known_forms
    extra = [s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH]
    if extra:
        more = set(forms)
        for value in extra:
            more.update(_forms(value))
        forms = tuple(sorted(more, key=len, reverse=True))
    for form in forms:
        if form in text:
            text = text.replace(form, REDACTED)
    lowered = text.lower()
    if not any(word in lowered for word in _TRIGGERS):
        return text  # nothing any pattern could match: the common case, made quick
    text = _AUTH_HEADER.sub(_keep_quotes, text)
    text = _KEYED.sub(_keep_quotes, text)
    text = _PARAM.sub(_keep_quotes, text)
    text = _USERINFO.sub(_keep_quotes, text)
    text = _SCHEME.sub(_scheme_value, text)
    return _SHAPES.sub(REDACTED, text)


def _keep_quotes(match: re.Match[str]) -> str:
    value = match["value"]
    if value.strip(" \"'") in ("", REDACTED):
        return match[0]
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = f"{value[0]}{REDACTED}{value[0]}"
    else:
        value = REDACTED
    return match[0][:match.start("value") - match.start()] + value


def _scheme_value(match: re.Match[str]) -> str:
    value = match["value"]
    # "Bearer tokens are refused" is prose, "Bearer 9f8e7d6c" a credential.
    if value == REDACTED.strip("[]") or not _random_looking(value):
        return match[0]
    return match["name"] + REDACTED


def _random_looking(value: str) -> bool:
    if len(value) < MIN_SECRET_LENGTH:
        return False
    return (any(c.isdigit() for c in value) or any(c in "-._~+/=" for c in value)
            or (any(c.islower() for c in value) and any(c.isupper() for c in value[1:])))


def looks_like_token(value: str) -> bool:
    """Whether ``value`` looks like a secret rather than a name, an id, a path or a URL.

    True for well-known token shapes, for text holding a token-shaped parameter or
    header (a URL with ``access_token=``), for long hexadecimal strings, and for long
    runs of token characters that mix upper case, lower case and digits or end in
    base64 padding.

    >>> looks_like_token("X_ACCESS_TOKEN"), looks_like_token("1234567890123456")
    (False, False)
    >>> looks_like_token("da39a3ee5e6b4b0d3255bfef95601890afd80709")
    True
    """
    text = value.strip()
    if not text:
        return False
    if scrub(text) != text:  # the patterns only, plus secrets this process knows
        return True
    if len(text) < 24 or not _TOKEN_CHARS.fullmatch(text):
        return False
    if text[0] in "/.~" or "//" in text:
        return False
    if _HEX.fullmatch(text):
        return True
    lower = any(c.islower() for c in text)
    upper = any(c.isupper() for c in text)
    digit = any(c.isdigit() for c in text)
    return (lower and upper and digit) or (text.endswith("=") and (lower or upper))


def scrub_data(value: Any, secrets: Iterable[str] = ()) -> Any:
    """A copy of plain data (dicts, lists, strings) with every string scrubbed."""
    secrets = tuple(secrets)
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, Mapping):
        return {k: scrub_data(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(scrub_data(v, secrets) for v in value)
    return value


class ScrubFilter(logging.Filter):
    """Scrubs each log record's message and traceback before any handler sees it.

    The message is rendered (arguments merged) and scrubbed; a traceback is rendered to
    text and scrubbed, and the exception object is dropped from the record so that no
    handler renders it again unscrubbed.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to logging's own error report
            return True
        record.msg, record.args = scrub(message), ()
        if record.exc_info:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            record.exc_text = scrub(text)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


_FILTER = ScrubFilter()


def get_logger(name: str) -> logging.Logger:
    """The logger ``name`` with a :class:`ScrubFilter` (a logger's filters apply only to
    records logged to it, not to those of its children, so each logger gets one)."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
