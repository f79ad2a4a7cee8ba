"""unverified_claims: the one reader of a token's claims (routing and labels only)."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from bot.identity.claims import unverified_claims


def _segment(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def test_a_signed_jwt_gives_its_claims_without_the_key() -> None:
    token = jwt.encode(
        {"oid": "user-1", "tid": "tenant-1"},
        "a key only the issuer knows, 32 bytes at least",
        "HS256",
    )

    assert unverified_claims(token) == {"oid": "user-1", "tid": "tenant-1"}


@pytest.mark.parametrize(
    "token",
    [
        "opaque-token",
        "a.b",
        "a.b.c.d",
        f"h.{_segment(b'not json')}.s",
        f"h.{_segment(json.dumps(['a', 'list']).encode())}.s",
        f"h.{_segment(bytes([0xFF, 0xFE]))}.s",
        "h.%%%.s",
    ],
)
def test_anything_else_is_not_a_jwt(token: str) -> None:
    assert unverified_claims(token) is None
