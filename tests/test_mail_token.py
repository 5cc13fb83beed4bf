"""The signed code of an approval request: what it binds and what it refuses."""

from __future__ import annotations

import datetime as dt

import pytest

from humasflow.mail import (
    ApprovalClaims,
    TokenRefused,
    find_tokens,
    message_id,
    sign,
    token_from_message_id,
    verify,
)

UTC = dt.timezone.utc
SECRET = b"0123456789abcdef-deployment"
NOW = dt.datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
KEY = "0d9ae0a4-7c1b-4f7e-9b55-3f1c2a9c1e11"
DIGEST = "3f" * 32


def claims(**changes: object) -> ApprovalClaims:
    fields: dict[str, object] = {"item_key": KEY, "sop_revision": 2, "digest": DIGEST,
                                 "expires": NOW + dt.timedelta(days=2)}
    fields.update(changes)
    return ApprovalClaims(**fields)  # type: ignore[arg-type]


def test_a_token_reads_back_what_it_was_signed_with() -> None:
    signed = claims()
    read = verify(SECRET, sign(SECRET, signed), now=NOW)
    assert (read.item_key, read.sop_revision, read.expires, read.nonce) == (
        KEY, 2, signed.expires, signed.nonce)
    assert read.binds(DIGEST)
    assert not read.binds("3e" + "3f" * 31)
    assert not read.binds(DIGEST[:32])


def test_each_request_gets_its_own_token() -> None:
    assert sign(SECRET, claims()) != sign(SECRET, claims())


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.mark.parametrize("position", [p for p in range(4, 98) if p != 75])
def test_changing_any_character_is_refused(position: int) -> None:
    token = sign(SECRET, claims())
    assert token[75] == "."
    for replacement in ALPHABET.replace(token[position], ""):
        tampered = token[:position] + replacement + token[position + 1:]
        with pytest.raises(TokenRefused) as refused:
            verify(SECRET, tampered, now=NOW)
        assert refused.value.reason in ("signature", "malformed")


def test_another_deployments_secret_is_refused() -> None:
    token = sign(b"another-deployment-secret", claims())
    with pytest.raises(TokenRefused) as refused:
        verify(SECRET, token, now=NOW)
    assert refused.value.reason == "signature"


def test_an_expired_token_is_refused_and_says_what_it_claimed() -> None:
    token = sign(SECRET, claims(expires=NOW))
    with pytest.raises(TokenRefused) as refused:
        verify(SECRET, token, now=NOW)
    assert refused.value.reason == "expired"
    assert refused.value.claims is not None
    assert refused.value.claims.item_key == KEY
    assert verify(SECRET, token, now=NOW - dt.timedelta(seconds=1)).item_key == KEY


@pytest.mark.parametrize("token", ["", "hf1", "hf1..", "hf2.AAAA.BBBB", "hf1.!!!.???",
                                   "hf1.AAAA.BBBB", None, 42])
def test_what_is_not_a_token_is_malformed(token: object) -> None:
    with pytest.raises(TokenRefused) as refused:
        verify(SECRET, token, now=NOW)  # type: ignore[arg-type]
    assert refused.value.reason == "malformed"


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        sign(b"short", claims())


@pytest.mark.parametrize("changes", [
    {"item_key": "not-a-uuid"}, {"sop_revision": 0}, {"digest": "XYZ"},
    {"expires": dt.datetime(2026, 12, 3)}, {"nonce": "x"},
])
def test_bad_claims_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        claims(**changes)


def test_tokens_are_found_in_quoted_replies_and_in_message_ids() -> None:
    token = sign(SECRET, claims())
    other = sign(SECRET, claims())
    body = f"SETUJU\n\nOn Tue, ... wrote:\n> Kode persetujuan: {token}\n> {token}.\n{other}"
    assert find_tokens(body) == [token, other]
    assert token_from_message_id(message_id(token, "fisip.ub.ac.id")) == token
    assert token_from_message_id("<abc@example.org>") is None
    assert find_tokens("x" + token) == []
