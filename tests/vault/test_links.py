"""Signed link tokens."""

from __future__ import annotations

import time

import pytest

from vault import BadLinkToken, LinkSigner, VaultError


def test_token_round_trip_carries_a_fresh_random_id() -> None:
    signer = LinkSigner("secret")
    link_a, token_a = signer.sign()
    link_b, token_b = signer.sign()
    assert link_a != link_b
    assert len(link_a) >= 20
    assert signer.verify(token_a) == link_a
    assert signer.verify(token_b) == link_b


def test_given_link_id_is_signed() -> None:
    signer = LinkSigner("secret")
    assert signer.verify(signer.sign("row-42")[1]) == "row-42"


@pytest.mark.parametrize("where", ["payload-start", "payload-middle", "signature-start"])
def test_tampered_token_is_refused(where: str) -> None:
    signer = LinkSigner("secret")
    _, token = signer.sign()
    # The final base64 character carries padding bits, so altering it may not change
    # the decoded bytes at all; tamper with characters that carry six data bits.
    position = {
        "payload-start": 0,
        "payload-middle": 5,
        "signature-start": token.rindex(".") + 1,
    }[where]
    chars = list(token)
    chars[position] = "w" if chars[position] != "w" else "A"
    with pytest.raises(BadLinkToken):
        signer.verify("".join(chars))


def test_token_from_another_secret_or_purpose_is_refused() -> None:
    _, token = LinkSigner("secret").sign()
    with pytest.raises(BadLinkToken):
        LinkSigner("other secret").verify(token)
    with pytest.raises(BadLinkToken):
        LinkSigner("secret", salt="session").verify(token)


def test_garbage_is_refused_as_a_vault_error() -> None:
    with pytest.raises(VaultError):
        LinkSigner("secret").verify("not a token")


def test_old_secret_keeps_working_through_fallback() -> None:
    link, token = LinkSigner("old").sign()
    assert LinkSigner("new", fallback_keys=["old"]).verify(token) == link


def test_max_age_expires_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = LinkSigner("secret")
    link, token = signer.sign()
    assert signer.verify(token, max_age=60) == link
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(BadLinkToken):
        signer.verify(token, max_age=60)
