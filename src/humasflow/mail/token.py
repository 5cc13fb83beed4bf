"""The signed code that ties an emailed answer to the concept it answers.

An approval request email carries a token: the item's globally unique key, the SOP
revision it runs under, the content digest the coordinator is asked to approve, an
expiry time and a random nonce, signed with HMAC-SHA256 under the deployment's mail
secret. The token is the request's ``Message-ID`` (so a reply brings it back in
``In-Reply-To`` and ``References``) and is printed in the body (so a reply that quotes
the request, or a forwarded copy, still carries it).

A token proves that *this deployment* asked *this question* about *this content*; it
does not say who answers (the reply's sender and its authentication results do) and
does not stop a second use by itself (the record does: a nonce is accepted once).

>>> import datetime as dt
>>> secret = b"s" * 32
>>> claims = ApprovalClaims(item_key="0d9ae0a4-7c1b-4f7e-9b55-3f1c2a9c1e11",
...                         sop_revision=1, digest="ab" * 32,
...                         expires=dt.datetime(2026, 12, 3, tzinfo=dt.timezone.utc),
...                         nonce="n0nce-exampl")
>>> token = sign(secret, claims)
>>> read = verify(secret, token, now=dt.datetime(2026, 12, 2, tzinfo=dt.timezone.utc))
>>> read.item_key == claims.item_key, read.binds("ab" * 32), read.binds("cd" * 32)
(True, True, False)
>>> find_tokens(f"> Kode: {token}\\n") == [token]
True
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
import secrets as _secrets
import struct
import uuid
from typing import Literal

import attrs

__all__ = [
    "TOKEN_PATTERN",
    "ApprovalClaims",
    "TokenRefused",
    "find_tokens",
    "message_id",
    "new_nonce",
    "sign",
    "token_from_message_id",
    "verify",
]

_VERSION = "hf1"
#: A token as it appears in text: ``hf1.<payload>.<signature>``, URL-safe base64.
TOKEN_PATTERN = re.compile(r"(?<![A-Za-z0-9_.-])hf1\.[A-Za-z0-9_-]{71}\.[A-Za-z0-9_-]{22}"
                           r"(?![A-Za-z0-9_-])")
_MIN_SECRET = 16
_DIGEST = re.compile(r"[0-9a-f]{64}")
_DIGEST_OR_PREFIX = re.compile(r"[0-9a-f]{32}(?:[0-9a-f]{32})?")
_PREFIX = 16  # bytes of the digest the token carries (128 bits)
_LAYOUT = struct.Struct(">16sIQ9s16s")  # item key, revision, expiry, nonce, digest prefix
_SIGNATURE = 16  # bytes of HMAC-SHA256 kept (128 bits)
_UTC = dt.timezone.utc

#: Why a token was refused: not a token of this form, a signature that does not match
#: (tampered, or signed under another secret), or past its expiry.
Reason = Literal["malformed", "signature", "expired"]


class TokenRefused(Exception):
    """A token that cannot be trusted.

    Attributes:
        reason: ``"malformed"``, ``"signature"`` or ``"expired"``.
        claims: What an expired token claimed (its signature was good), else ``None``.
    """

    def __init__(self, reason: Reason, claims: ApprovalClaims | None = None) -> None:
        super().__init__(reason)
        self.reason: Reason = reason
        self.claims = claims


def new_nonce() -> str:
    """A fresh random nonce (72 bits, 12 URL-safe characters)."""
    return _secrets.token_urlsafe(9)


def _utc_second(value: object) -> object:
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(_UTC).replace(microsecond=0)
    return value


@attrs.frozen
class ApprovalClaims:
    """What an approval request's token says.

    Attributes:
        item_key: The item's globally unique key (:attr:`ContentItem.key`, a UUID).
        sop_revision: The SOP revision the item runs under.
        digest: The content digest the coordinator is asked to approve: 64 hex digits
            when signing; a token read back carries its first 32 (128 bits), so
            compare with :meth:`binds`.
        expires: When the token stops being accepted (aware; kept to the second).
        nonce: A random value that makes each request's token unique (12 URL-safe
            characters).
    """

    item_key: str = attrs.field(validator=attrs.validators.instance_of(str))
    sop_revision: int = attrs.field(validator=attrs.validators.instance_of(int))
    digest: str = attrs.field(validator=attrs.validators.instance_of(str))
    expires: dt.datetime = attrs.field(converter=_utc_second)
    nonce: str = attrs.field(factory=new_nonce)

    @item_key.validator
    def _uuid(self, _attribute: object, value: str) -> None:
        try:
            uuid.UUID(value)
        except ValueError:
            raise ValueError(f"item_key must be a UUID, got {value!r:.80}") from None

    @sop_revision.validator
    def _revision(self, _attribute: object, value: int) -> None:
        if not 0 < value < 2**32:
            raise ValueError(f"sop_revision must be from 1 to 2**32-1, got {value}")

    @digest.validator
    def _hex(self, _attribute: object, value: str) -> None:
        if not _DIGEST_OR_PREFIX.fullmatch(value):
            raise ValueError(f"digest must be 64 lowercase hex digits, got {value!r:.80}")

    @expires.validator
    def _aware(self, _attribute: object, value: object) -> None:
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise ValueError(f"expires must be an aware datetime, got {value!r}")

    @nonce.validator
    def _nonce(self, _attribute: object, value: object) -> None:
        try:
            ok = isinstance(value, str) and len(_unb64(value)) == 9 and len(value) == 12
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"nonce must be 12 URL-safe base64 characters, got {value!r}")

    def binds(self, digest: str) -> bool:
        """Whether this token asks about ``digest`` (a full 64-digit content digest)."""
        return isinstance(digest, str) and bool(_DIGEST.fullmatch(digest)) \
            and digest.startswith(self.digest)

    def _payload(self) -> bytes:
        return _LAYOUT.pack(uuid.UUID(self.item_key).bytes, self.sop_revision,
                            int(self.expires.timestamp()), _unb64(self.nonce),
                            bytes.fromhex(self.digest[:2 * _PREFIX]))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: bytes) -> bytes:
    if not isinstance(secret, bytes) or len(secret) < _MIN_SECRET:
        raise ValueError(f"the mail secret must be at least {_MIN_SECRET} bytes")
    mac = hmac.new(secret, _VERSION.encode() + b"." + payload, hashlib.sha256)
    return mac.digest()[:_SIGNATURE]


def sign(secret: bytes, claims: ApprovalClaims) -> str:
    """The token for ``claims``, signed with ``secret`` (at least 16 bytes).

    The token is 98 characters of ``[A-Za-z0-9_.-]``: it fits a ``Message-ID`` and a
    line of an email body.
    """
    payload = claims._payload()
    return f"{_VERSION}.{_b64(payload)}.{_b64(_mac(secret, payload))}"


def verify(secret: bytes, token: str, *, now: dt.datetime) -> ApprovalClaims:
    """The claims of a token signed with ``secret`` and not expired at ``now``.

    The claims' :attr:`~ApprovalClaims.digest` is the 32-digit prefix the token
    carries: check it against the item's current digest with
    :meth:`ApprovalClaims.binds`.

    Raises:
        TokenRefused: The token is malformed, its signature does not match, or it
            has expired (then :attr:`TokenRefused.claims` says what it claimed).
    """
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3 or parts[0] != _VERSION:
        raise TokenRefused("malformed")
    try:
        payload, signature = _unb64(parts[1]), _unb64(parts[2])
    except (binascii.Error, ValueError):
        raise TokenRefused("malformed") from None
    if len(payload) != _LAYOUT.size or len(signature) != _SIGNATURE \
            or _b64(payload) != parts[1] or _b64(signature) != parts[2]:
        # Only the canonical spelling is a token: otherwise the spare bits of the last
        # character would give each token several accepted spellings.
        raise TokenRefused("malformed")
    if not hmac.compare_digest(_mac(secret, payload), signature):
        raise TokenRefused("signature")
    key, revision, expires, nonce, prefix = _LAYOUT.unpack(payload)
    try:
        claims = ApprovalClaims(
            item_key=str(uuid.UUID(bytes=key)), sop_revision=revision, digest=prefix.hex(),
            expires=dt.datetime.fromtimestamp(expires, _UTC), nonce=_b64(nonce))
    except (ValueError, OverflowError, OSError):
        # Signed by this secret but not of this form: treat it as not a token.
        raise TokenRefused("malformed") from None
    if now >= claims.expires:
        raise TokenRefused("expired", claims)
    return claims


def message_id(token: str, domain: str) -> str:
    """The ``Message-ID`` of the request that carries ``token``: ``<token@domain>``."""
    return f"<{token}@{domain}>"


def token_from_message_id(value: str) -> str | None:
    """The token in a ``Message-ID``-shaped value (``<token@domain>``), if any."""
    found = TOKEN_PATTERN.search(value or "")
    return found.group(0) if found else None


def find_tokens(text: str) -> list[str]:
    """Every distinct token in ``text`` (headers or body), in order of appearance."""
    seen: dict[str, None] = {}
    for match in TOKEN_PATTERN.finditer(text or ""):
        seen.setdefault(match.group(0))
    return list(seen)
