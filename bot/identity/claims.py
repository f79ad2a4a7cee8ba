"""Reading a token's claims without verifying it: only to route or label it, never to trust it."""

from __future__ import annotations

import base64
import json
from typing import Any


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, its signature not checked; None for a token that is not a JWT.

    The issuer or the API the token is for verifies it; Frontdesk reads the claims only to pick
    a cache, a route or a label (whose token, for which API, with which permissions).
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    padded = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except ValueError:  # bad base64 (binascii.Error), bad UTF-8 or bad JSON
        return None
    return claims if isinstance(claims, dict) else None
