"""Reading a reply: who sent it, what it answers, and what it says.

:func:`read_reply` takes a raw RFC 5322 message (bytes, as a mail server stores it) and
returns a :class:`Reply`: the sender, the ``Message-ID``, the tokens the reply carries
(from ``In-Reply-To`` and ``References`` first, then from the text, so a reply that
quotes the request or a forwarded copy still counts), the verdict of the receiving
server's ``Authentication-Results`` and the coordinator's :class:`Answer`.

The answer is the first line the sender wrote themselves: quoted lines (``>``), the
"On … wrote:" / "Pada … menulis:" line before a quote, an Outlook "From:" / "Dari:"
header block, a forwarded message and a signature (after ``--``) are not read. An
HTML-only reply is turned into text first (quoted ``blockquote`` and Gmail's quote
block left out).

>>> answer_of("Setuju.")
Answer(action='approve', reason='', language='id')
>>> answer_of("reject: the date is wrong")
Answer(action='reject', reason='the date is wrong', language='en')
>>> answer_of("TOLAK") is None, answer_of("Maybe later") is None
(True, True)
"""

from __future__ import annotations

import html
import re
from email import policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from email.utils import getaddresses
from html.parser import HTMLParser
from typing import ClassVar, Literal

import attrs

from humasflow.mail.token import find_tokens

__all__ = ["Answer", "Authentication", "Reply", "answer_of", "answer_text",
           "authentication", "read_reply"]

Action = Literal["approve", "reject"]

_APPROVE = {"setuju": "id", "disetujui": "id", "approve": "en", "approved": "en"}
_REJECT = {"tolak": "id", "ditolak": "id", "reject": "en", "rejected": "en"}
# A keyword alone on its line, with any punctuation around it; a rejection's reason
# follows the keyword after optional punctuation (``TOLAK: ...``, ``Reject - ...``).
_WORD = re.compile(r"^[\W_]*([A-Za-z]+)\b(.*)$", re.DOTALL)
_PUNCT = re.compile(r"^[\W_]*$")
_REASON_LEAD = re.compile("^[\\s:;,.!\\-\u2013\u2014]+")

# Lines that begin what the sender did not write.
_ATTRIBUTION = re.compile(
    r"^(on\b.*\bwrote:?|pada\b.*\bmenulis:?|.*\b(wrote|menulis|schrieb|a écrit)\s*:)\s*$",
    re.IGNORECASE)
_ATTRIBUTION_START = re.compile(r"^(on|pada)\b", re.IGNORECASE)
_ATTRIBUTION_END = re.compile(r"\b(wrote|menulis)\s*:\s*$", re.IGNORECASE)
_HEADER_BLOCK = re.compile(r"^\*?(from|dari|sent|dikirim|to|kepada|subject|subjek|date|"
                           r"tanggal|cc)\*?\s*:", re.IGNORECASE)
_SEPARATOR = re.compile(
    r"^(-{2,}\s*(original message|pesan asli|forwarded message|pesan terusan|"
    r"begin forwarded message)\s*-*|begin forwarded message:|_{5,}|-{5,})\s*$",
    re.IGNORECASE)
_SIGNATURE = re.compile(r"^(--\s?|—|sent from my .*|dikirim dari .*|get outlook for .*)$",
                        re.IGNORECASE)


@attrs.frozen
class Answer:
    """What the coordinator answered.

    Attributes:
        action: ``"approve"`` or ``"reject"``.
        reason: A rejection's reason (empty for an approval).
        language: ``"id"`` or ``"en"``: the language of the keyword, so the answer to
            the sender can be in it.
    """

    action: Action
    reason: str
    language: str


@attrs.frozen
class Authentication:
    """The receiving server's verdict on a message (RFC 8601 ``Authentication-Results``).

    Attributes:
        server: The authserv-id of the header that was read, or ``None`` when there
            was none from that server.
        results: Method -> result (``{"dkim": "pass", "spf": "pass", "dmarc": "pass"}``).
        passed: Whether the message is authenticated for its ``From`` domain: DMARC
            passed, or, without a DMARC result, DKIM passed for the From domain or SPF
            passed for it; never when any of them failed outright.
    """

    server: str | None
    results: dict[str, str]
    passed: bool


@attrs.frozen
class Reply:
    """A reply as read (see the module docs).

    Attributes:
        sender: The ``From`` address, lowercased ("" when it has none or several).
        message_id: The reply's ``Message-ID`` ("" when missing).
        tokens: The approval tokens the reply carries, headers first.
        text: The text the answer is read from (plain text, or HTML made text).
        answer: The answer, or ``None`` when the first line is not one.
        first_line: The first line the sender wrote ("" when none).
        reason_missing: The first line is a rejection keyword without a reason.
        language: The keyword's language, if there was a keyword.
        automatic: The message says it was sent by a program (``Auto-Submitted``,
            ``Precedence: bulk``, an out-of-office reply): it is never answered, so
            two programs cannot answer each other forever.
    """

    sender: str
    message_id: str
    tokens: tuple[str, ...]
    text: str
    answer: Answer | None
    first_line: str
    reason_missing: bool = False
    language: str | None = None
    automatic: bool = False


def read_reply(raw: bytes) -> Reply:
    """Read a raw RFC 5322 message.

    Args:
        raw: The message's bytes (headers and body).

    Raises:
        ValueError: ``raw`` is not bytes.
    """
    if not isinstance(raw, (bytes, bytearray)):
        raise ValueError(f"a raw message is bytes, got {type(raw).__name__}")
    message = _parse(bytes(raw))
    text = body_text(message)
    own = own_lines(text)
    first = own[0] if own else ""
    answer = answer_of("\n".join(own[:_paragraph_end(own)]))
    keyword = _keyword(first)
    language = keyword[1] if keyword else None
    missing = bool(keyword and keyword[0] == "reject" and answer is None)
    header_tokens: list[str] = []
    for name in ("In-Reply-To", "References"):
        for value in message.get_all(name, []) or []:
            header_tokens.extend(find_tokens(str(value)))
    tokens = dict.fromkeys([*header_tokens, *find_tokens(text)])
    return Reply(sender=sender_of(message), message_id=_message_id(message),
                 tokens=tuple(tokens), text=text, answer=answer, first_line=first,
                 reason_missing=missing, language=language, automatic=_automatic(message))


def _automatic(message: EmailMessage) -> bool:
    auto = str(message.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(message.get("Precedence", "")).strip().lower()
    return (auto not in ("", "no") or precedence in ("bulk", "junk", "list", "auto_reply")
            or message.get("X-Autoreply") is not None
            or message.get("X-Autorespond") is not None)


def _parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def _message_id(message: EmailMessage) -> str:
    value = message.get("Message-ID")
    return str(value).strip() if value is not None else ""


def sender_of(message: EmailMessage) -> str:
    """The single ``From`` address of ``message``, lowercased, or ""."""
    try:
        header = message.get_all("From", []) or []
        addresses = [a for _, a in getaddresses([str(h) for h in header]) if a]
    except (ValueError, IndexError, TypeError):
        return ""
    if len(addresses) != 1 or "@" not in addresses[0]:
        return ""  # no sender, or several: none can be trusted as the one who answered
    return addresses[0].strip().lower()


def body_text(message: EmailMessage) -> str:
    """The reply's own text: its ``text/plain`` body, else its ``text/html`` as text."""
    part = message.get_body(preferencelist=("plain",))
    if part is not None:
        return _content(part)
    part = message.get_body(preferencelist=("html",))
    if part is not None:
        return html_to_text(_content(part))
    return ""


def _content(part: MIMEPart) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset: read what can be read
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


class _Text(HTMLParser):
    """HTML to lines of text, leaving out quoted blocks and what follows a reply header."""

    _BLOCK: ClassVar[frozenset[str]] = frozenset(
        {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul",
         "ol", "pre", "hr"})
    _QUOTE_CLASSES: ClassVar[frozenset[str]] = frozenset(
        {"gmail_quote", "gmail_extra", "yahoo_quoted", "moz-cite-prefix"})
    _STOP_IDS: ClassVar[frozenset[str]] = frozenset(
        {"divrplyfwdmsg", "appendonsend", "mail-editor-reference-message-container"})
    _VOID: ClassVar[frozenset[str]] = frozenset(
        {"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0  # depth inside a quoted block
        self.stack: list[bool] = []  # per open element: whether it began a skip
        self.stopped = False
        self.hidden = 0  # inside <style>, <script>, <head>

    def handle_starttag(self, tag: str, attrs_: list[tuple[str, str | None]]) -> None:
        if self.stopped:
            return
        values = {k: (v or "") for k, v in attrs_}
        if tag in ("style", "script", "head", "title"):
            self.hidden += 1
            return
        if tag == "hr" and not self.skip:
            self.stopped = True  # Outlook puts its reply header after a rule
            return
        if values.get("id", "").lower() in self._STOP_IDS:
            self.stopped = True
            return
        if tag in self._BLOCK:
            self.parts.append("\n")
        if tag in self._VOID:
            return
        classes = set(values.get("class", "").split())
        quoted = tag == "blockquote" or bool(classes & self._QUOTE_CLASSES)
        self.stack.append(quoted)
        if quoted:
            self.skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head", "title"):
            self.hidden = max(0, self.hidden - 1)
            return
        if self.stopped or tag in self._VOID:
            return
        if self.stack and self.stack.pop():
            self.skip -= 1
        if tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.stopped and not self.skip and not self.hidden:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """The text of an HTML body, one line per block, without quoted blocks."""
    parser = _Text()
    parser.feed(markup)
    parser.close()
    text = html.unescape("".join(parser.parts)).replace("\xa0", " ")
    return "\n".join(" ".join(line.split()) for line in text.splitlines())


def own_lines(text: str) -> list[str]:
    """The non-empty lines the sender wrote, before any quote, reply header, forwarded
    message or signature (leading and trailing spaces removed)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    own: list[str] = []
    for index, raw_line in enumerate(lines):
        line = raw_line.strip().replace("\u200b", "").replace("\ufeff", "")
        if not line:
            own.append("")
            continue
        if line.startswith(">") or _ATTRIBUTION.match(line) or _SEPARATOR.match(line) \
                or _SIGNATURE.match(line):
            break
        if _ATTRIBUTION_START.match(line) and any(
                _ATTRIBUTION_END.search(" ".join(x.strip() for x in lines[index:index + j]))
                for j in (2, 3)):
            break  # "On Tue, 1 Dec 2026 at 10:00, Someone <a@b>\nwrote:" (wrapped)
        if _HEADER_BLOCK.match(line) and _is_header_block(lines, index):
            break
        own.append(line)
    while own and not own[0]:
        own.pop(0)
    return own


def _is_header_block(lines: list[str], index: int) -> bool:
    """Whether ``lines[index]`` starts a quoted message's header block (two or more
    header-like lines in a row, as Outlook writes "From: / Sent: / To: / Subject:")."""
    following = [x.strip() for x in lines[index + 1:index + 4] if x.strip()]
    return any(_HEADER_BLOCK.match(x) for x in following[:2])


def _paragraph_end(lines: list[str]) -> int:
    """Where the first paragraph of ``lines`` ends (its first empty line)."""
    return lines.index("") if "" in lines else len(lines)


def _keyword(line: str) -> tuple[Action, str] | None:
    found = _WORD.match(line or "")
    if not found:
        return None
    word = found.group(1).lower()
    if word in _APPROVE:
        return "approve", _APPROVE[word]
    if word in _REJECT:
        return "reject", _REJECT[word]
    return None


def answer_of(text: str) -> Answer | None:
    """The answer ``text`` (the sender's first paragraph) gives, if it is one.

    ``SETUJU`` / ``APPROVE`` alone (any case, any punctuation) approves; ``TOLAK
    <alasan>`` / ``REJECT <reason>`` rejects with the rest of the paragraph as reason.
    A rejection without a reason, or any other text, is no answer.
    """
    first, _sep, rest = (text or "").strip().partition("\n")
    keyword = _keyword(first)
    if keyword is None:
        return None
    action, language = keyword
    found = _WORD.match(first.strip())
    assert found is not None
    tail = found.group(2)
    if action == "approve":
        if not _PUNCT.match(tail):
            return None  # "Approve? Not yet…" is a sentence, not the keyword
        return Answer("approve", "", language)
    reason = " ".join(_REASON_LEAD.sub("", tail).split() + rest.split())
    if not reason or _PUNCT.match(reason):
        return None
    return Answer("reject", reason, language)


def answer_text(text: str) -> Answer | None:
    """The answer a whole body of text (quotes and signature included) gives."""
    own = own_lines(text)
    return answer_of("\n".join(own[:_paragraph_end(own)]))


_RESINFO = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*=\s*([A-Za-z0-9_-]+)(.*)$", re.DOTALL)
_PROPERTY = re.compile(r"([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\s*=\s*(\"[^\"]*\"|[^\s;]+)")
_COMMENT = re.compile(r"\([^()]*\)")


def _uncomment(value: str) -> str:
    previous = None
    while previous != value:
        previous, value = value, _COMMENT.sub(" ", value)
    return value


def authentication(raw_or_message: bytes | EmailMessage, server: str) -> Authentication:
    """What the receiving server ``server`` (its authserv-id) says of the message.

    Only the topmost ``Authentication-Results`` header with that authserv-id is read:
    the receiving server adds it on top, and one lower down may have been written by
    the sender to look like it.
    """
    message = raw_or_message if isinstance(raw_or_message, EmailMessage) \
        else _parse(bytes(raw_or_message))
    sender = sender_of(message)
    domain = sender.rsplit("@", 1)[1] if "@" in sender else ""
    for header in message.get_all("Authentication-Results", []) or []:
        value = _uncomment(str(header))
        parts = [p.strip() for p in value.split(";")]
        authserv = parts[0].split()[0].lower() if parts and parts[0].split() else ""
        if authserv != server.lower():
            continue
        results: dict[str, str] = {}
        aligned: dict[str, bool] = {}
        for part in parts[1:]:
            found = _RESINFO.match(part)
            if not found:
                continue
            method, result, rest = found.group(1).lower(), found.group(2).lower(), found.group(3)
            props = {k.lower(): v.strip('"').lower() for k, v in _PROPERTY.findall(rest)}
            if method in results and results[method] == "pass":
                continue  # several signatures: one that passes for the domain counts
            results[method] = result
            aligned[method] = _aligned(method, props, domain)
        return Authentication(server=server, results=results,
                              passed=_passed(results, aligned))
    return Authentication(server=None, results={}, passed=False)


def _aligned(method: str, props: dict[str, str], domain: str) -> bool:
    if not domain:
        return False
    if method == "dkim":
        value = props.get("header.d") or props.get("header.i", "").rsplit("@", 1)[-1]
    elif method == "spf":
        value = props.get("smtp.mailfrom", "").rsplit("@", 1)[-1] or props.get("smtp.helo", "")
    elif method == "dmarc":
        value = props.get("header.from", domain).rsplit("@", 1)[-1]
    else:
        return False
    value = value.strip().lower()
    return bool(value) and (domain == value or domain.endswith("." + value)
                            or value.endswith("." + domain))


def _passed(results: dict[str, str], aligned: dict[str, bool]) -> bool:
    if any(results.get(m) in ("fail", "permerror") for m in ("dmarc", "dkim")) \
            or results.get("spf") == "fail":
        return False
    if "dmarc" in results:
        return results["dmarc"] == "pass" and aligned["dmarc"]
    return any(results.get(m) == "pass" and aligned.get(m) for m in ("dkim", "spf"))

