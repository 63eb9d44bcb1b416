"""Signed link tokens."""

from __future__ import annotations

import string
import time

import pytest
from itsdangerous import BadData, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode

from vault import BadLinkToken, LinkSigner, VaultError
from vault.links import is_canonical


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


# -- one token, one spelling ----------------------------------------------------------------

ALPHABET = string.ascii_letters + string.digits + "-_"
# Printable ASCII outside the alphabet, and a few characters a decoder might skip silently.
JUNK = [c for c in string.printable if c not in ALPHABET] + ["é", "\u200b", "\x00", "%3D", "%2e"]


def spellings(token: str) -> dict[str, str]:
    """Other spellings of ``token``: each must be refused. Keys name the variant."""
    found: dict[str, str] = {}
    for padding in ("=", "==", "==="):
        found[f"padded {padding}"] = token + padding
    for char in ALPHABET:  # every other last character, low bits included
        if char != token[-1]:
            found[f"last {char}"] = token[:-1] + char
    for position, char in enumerate(token):  # case changes, one character at a time
        if char.swapcase() != char:
            found[f"case {position}"] = token[:position] + char.swapcase() + token[position + 1 :]
    middle = token.rindex(".") + 5
    for char in JUNK:
        # Single junk characters upset the padding arithmetic; pairs slip through it.
        for junk in (char, char * 2):
            found[f"trailing {junk!r}"] = token + junk
            found[f"inside {junk!r}"] = token[:middle] + junk + token[middle:]
            found[f"leading {junk!r}"] = junk + token
    found["doubled"] = token + token
    found["signature only"] = token[token.rindex(".") + 1 :]
    found["empty"] = ""
    return found


def lenient_loads(token: str) -> str | None:
    """What plain itsdangerous makes of a spelling: the link id, or None when it refuses."""
    serializer = URLSafeTimedSerializer(b"secret", salt="vaultdesk.vault.download-link")
    try:
        return serializer.loads(token)
    except BadData:
        return None


def test_only_the_issued_spelling_of_a_token_verifies() -> None:
    signer = LinkSigner("secret")
    link, token = signer.sign()
    assert is_canonical(token) and signer.verify(token) == link
    variants = spellings(token)
    # Without the check, the decoder alone accepts many of these as the very same link:
    # padding, the unused low bits of the last character, skipped junk characters.
    lenient = [name for name, variant in variants.items() if lenient_loads(variant) == link]
    assert len(lenient) >= 55, lenient
    assert {"padded =", "padded =="} <= set(lenient)
    signature = token.rsplit(".", 1)[1]
    unused_bits = len(signature) * 6 - len(base64_decode(signature)) * 8
    assert unused_bits > 0
    assert sum(name.startswith("last ") for name in lenient) == 2**unused_bits - 1
    for name in lenient:
        assert not is_canonical(variants[name]), name
    for variant in variants.values():  # the others fail the signature, as before
        with pytest.raises(BadLinkToken):
            signer.verify(variant)


def test_every_issued_token_is_canonical() -> None:
    """The check refuses nothing the signer makes (ids of any length, old keys too)."""
    signer = LinkSigner("new", fallback_keys=["old"])
    old = LinkSigner("old")
    for length in range(1, 80):
        link_id = ("x" * length)[:length]
        for issuer in (signer, old):
            token = issuer.sign(link_id)[1]
            assert is_canonical(token), token
            assert signer.verify(token) == link_id


def test_compressed_payloads_stay_verifiable() -> None:
    """A long, repetitive value is zlib-compressed by itsdangerous (leading ".")."""
    signer = LinkSigner("secret")
    token = signer.sign("ab" * 200)[1]
    assert token.startswith(".")
    assert signer.verify(token) == "ab" * 200
    with pytest.raises(BadLinkToken):
        signer.verify(token + "=")
