"""API keys: `Authorization: Bearer <key>` or `X-API-Key: <key>`, checked in constant time.

Keys are kept only as SHA-256 digests, and a presented key is compared with every
configured one by `hmac.compare_digest` on the digests: the time taken does not depend
on which key matched, how much of it matched, or its length. Keys are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from enum import Enum

# Answered with every 401 (RFC 6750): the scheme the caller should use.
WWW_AUTHENTICATE = (b"www-authenticate", b'Bearer realm="gateway"')
INVALID_TOKEN = (b"www-authenticate", b'Bearer realm="gateway", error="invalid_token"')

MISSING_MESSAGE = "Missing API key: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
INVALID_MESSAGE = "Invalid API key"


class Verdict(Enum):
    """What the credentials of a request amount to."""

    VALID = "valid"
    MISSING = "missing"
    INVALID = "invalid"


class ApiKeys:
    """The configured keys; `check` judges a request's credentials."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._digests = [_digest(key.encode()) for key in keys]

    def check(self, authorization: bytes | None, api_key: bytes | None) -> Verdict:
        """VALID when the bearer token or the X-API-Key header is one of the keys."""
        candidates = [key for key in (_bearer_token(authorization), api_key) if key]
        if not candidates:
            return Verdict.MISSING
        matched = False
        for candidate in candidates:
            digest = _digest(candidate.strip())
            for known in self._digests:
                # `|` and not `or`: every comparison runs, whichever matches.
                matched |= hmac.compare_digest(digest, known)
        return Verdict.VALID if matched else Verdict.INVALID


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def _bearer_token(authorization: bytes | None) -> bytes | None:
    """The token of `Bearer <token>` (scheme case-insensitive), else None."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(b" ")
    return token if scheme.lower() == b"bearer" else None
