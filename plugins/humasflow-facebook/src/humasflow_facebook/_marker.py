"""The invisible marker that lets the publisher find its own post again.

A Facebook Page post has no client-reference field, so the post's idempotency key is
written at the end of its message in characters that take no space on screen: an
INVISIBLE PLUS (U+2064) and then each hex digit of the key as two characters out of
four zero-width ones. Readers see nothing; :func:`find` reads the key back from a
message that the Graph API returns.

>>> text = "Selamat Dies Natalis!" + marker("hf-0123456789abcdef0123456789abcdef")
>>> text.startswith("Selamat Dies Natalis!"), len(text) - len("Selamat Dies Natalis!")
(True, 65)
>>> find(text)
'hf-0123456789abcdef0123456789abcdef'
>>> strip(text)
'Selamat Dies Natalis!'
"""

from __future__ import annotations

import re

__all__ = ["LENGTH", "find", "marker", "strip"]

_START = "\u2064"
# ZERO WIDTH SPACE, ZERO WIDTH NON-JOINER, WORD JOINER, INVISIBLE SEPARATOR: none joins
# emoji (no ZERO WIDTH JOINER), so the marker never changes how the text before it looks.
_DIGITS = "\u200b\u200c\u2060\u2063"
_KEY = re.compile(r"^hf-([0-9a-f]{32})$")
_FOUND = re.compile(_START + "([" + _DIGITS + "]{64})")

#: How many characters the marker adds to a message.
LENGTH = 65


def marker(key: str) -> str:
    """The invisible text that carries ``key`` (``"hf-"`` and 32 hex digits); ``""`` for
    a key of another form (then nothing is added and reconcile matches by text)."""
    match = _KEY.match(key or "")
    if match is None:
        return ""
    out = [_START]
    for digit in match.group(1):
        value = int(digit, 16)
        out.append(_DIGITS[value >> 2] + _DIGITS[value & 3])
    return "".join(out)


def find(message: str) -> str | None:
    """The key carried by ``message``'s marker, or ``None`` if it has none."""
    match = _FOUND.search(message or "")
    if match is None:
        return None
    code = match.group(1)
    digits = []
    for i in range(0, 64, 2):
        digits.append("%x" % (_DIGITS.index(code[i]) << 2 | _DIGITS.index(code[i + 1])))
    return "hf-" + "".join(digits)


def strip(message: str) -> str:
    """``message`` without its marker."""
    return _FOUND.sub("", message or "")
