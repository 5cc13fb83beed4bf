"""A post's text as X counts it, and the split of a long text into a numbered thread.

The length is X's *weighted* length (the twitter-text configuration v3: 280 weighted
characters, every URL counts 23, code points outside the light ranges such as CJK and
emoji count 2, an emoji sequence counts as one emoji, the text NFC-normalised first),
computed by the ``twitter-text-parser`` port. This plugin's tests run it against the
official conformance cases of ``twitter/twitter-text`` (``conformance/validate.yml``).

>>> weighted_length("Selamat Dies Natalis! https://fisip.ub.ac.id/dies-natalis-44")
45
>>> parts = split_thread("kata " * 120, limit=280)
>>> [weighted_length(p) <= 280 for p in parts], parts[0][-4:]
([True, True, True], ' 1/3')
"""

from __future__ import annotations

import re

import attrs
from twitter_text import extract_urls, parse_tweet

__all__ = ["MAX_WEIGHTED_LENGTH", "ThreadSplitError", "is_valid", "split_thread",
           "weighted_length"]

#: The most weighted characters in one X post.
MAX_WEIGHTED_LENGTH = 280

_SPACE = re.compile(r"(\s+)")
# A word with one of these may be a hashtag, a cashtag or a mention (also in the
# full-width forms X recognises): it is never cut.
_ENTITY_MARKS = ("#", "@", "$", "\uff03", "\uff20")


def weighted_length(text: str) -> int:
    """The weighted length of ``text`` as X counts it."""
    return int(parse_tweet(text).weightedLength)


def is_valid(text: str) -> bool:
    """Whether ``text`` fits one post and has no character X refuses (and is not empty)."""
    return bool(parse_tweet(text).valid)


def has_invalid_characters(text: str) -> bool:
    """Whether ``text`` holds a character X refuses (U+FFFE, U+FEFF, U+FFFF, U+202A–E)."""
    result = parse_tweet(text)
    return not result.valid and 0 < result.weightedLength <= MAX_WEIGHTED_LENGTH


@attrs.frozen
class ThreadSplitError(ValueError):
    """The text cannot be split into a thread: ``word`` (a URL, hashtag or mention,
    which is never cut) does not fit one post, or more than ``max_parts`` are needed."""

    reason: str
    word: str = ""
    parts: int = 0

    def __str__(self) -> str:
        return self.reason


def split_thread(text: str, *, limit: int = MAX_WEIGHTED_LENGTH, max_parts: int = 25,
                 numbering: str = " {i}/{n}") -> list[str]:
    """Split ``text`` into the parts of a numbered thread, each within ``limit``.

    Parts end between words (at white space), so a URL, hashtag or mention is never
    cut; a plain word longer than a whole post is the only thing cut inside. Each part
    ends with its number (``numbering``, e.g. `` 2/5``); a text that fits one post is
    one part, without a number.

    Raises:
        ThreadSplitError: A URL, hashtag or mention does not fit in a post, or the
            thread would need more than ``max_parts`` parts.
    """
    text = text.strip()
    if weighted_length(text) <= limit:
        return [text]
    digits = 1
    while True:
        reserve = numbering.format(i="9" * digits, n="9" * digits)
        chunks = _chunks(text, limit, reserve)
        if len(str(len(chunks))) <= digits:
            break
        digits += 1
    if len(chunks) > max_parts:
        raise ThreadSplitError(
            f"the text needs {len(chunks)} posts; a thread here has at most {max_parts}",
            parts=len(chunks))
    n = len(chunks)
    return [chunk + numbering.format(i=i, n=n) for i, chunk in enumerate(chunks, 1)]


def _chunks(text: str, limit: int, reserve: str) -> list[str]:
    """Split at white space so that each chunk plus ``reserve`` fits ``limit``.

    Weights are added word by word (parsing the whole candidate each time is quadratic),
    then every chunk is measured whole; if one does not fit (a URL that the words' sums
    misjudged), the split is made again measuring each candidate whole.
    """
    chunks = _greedy(text, limit, reserve, exact=False)
    if all(weighted_length(chunk + reserve) <= limit for chunk in chunks):
        return chunks
    return _greedy(text, limit, reserve, exact=True)


def _greedy(text: str, limit: int, reserve: str, *, exact: bool) -> list[str]:
    pieces = _SPACE.split(text)  # word, space, word, space, ...
    budget = limit - weighted_length(reserve)
    chunks: list[str] = []
    current, weight = "", 0
    for index in range(0, len(pieces), 2):
        word = pieces[index]
        space = pieces[index - 1] if index else ""
        if not word:
            continue
        if current:
            candidate = f"{current}{space}{word}"
            grown = (weighted_length(candidate + reserve) - weighted_length(reserve) if exact
                     else weight + weighted_length(space) + weighted_length(word))
            if grown <= budget:
                current, weight = candidate, grown
                continue
            chunks.append(current)
            current, weight = "", 0
        alone = weighted_length(word)
        if alone <= budget:
            current, weight = word, alone
            continue
        if not _breakable(word):
            raise ThreadSplitError(
                f"{word[:40]!r} is longer than one post and a URL, hashtag or mention is "
                "never cut", word=word)
        pieces_of_word = _cut(word, limit, reserve)
        chunks.extend(pieces_of_word[:-1])
        current = pieces_of_word[-1]
        weight = weighted_length(current)
    if current:
        chunks.append(current)
    return chunks


def _breakable(word: str) -> bool:
    return not extract_urls(word) and not any(mark in word for mark in _ENTITY_MARKS)


def _cut(word: str, limit: int, reserve: str) -> list[str]:
    """Cut a plain word that is longer than a post into pieces that fit."""
    budget = limit - weighted_length(reserve)
    pieces: list[str] = []
    current, weight = "", 0
    for char in word:
        step = weighted_length(char)
        if current and weight + step > budget:
            pieces.append(current)
            current, weight = "", 0
        current += char
        weight += step
    pieces.append(current)
    return pieces
