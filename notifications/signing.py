"""Webhook signatures: ``Portal-Signature: t=<unix time>,v1=<hex>[,v1=<hex>]``.

Each ``v1`` is the hex HMAC-SHA256, keyed with a signing secret (the whole ``whsec_…`` string,
as UTF-8), of ``"<t>.<body>"``: the timestamp, a dot, and the raw request body. A receiver
recomputes it with its secret, compares in constant time, and refuses a ``t`` too far from its
own clock, so a captured request cannot be replayed later. While a rotated secret's overlap
lasts, the request carries one ``v1`` per secret (the new one first): a receiver that still has
the old secret accepts it, as does one that already has the new one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime

from django.utils import timezone

SIGNATURE_HEADER = "Portal-Signature"
SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 300


def new_secret() -> str:
    """A fresh signing secret: 256 random bits after a recognisable prefix."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hint(secret: str) -> str:
    """The first characters after the prefix, to recognise a secret by (``whsec_AbC1…``)."""
    return secret[: len(SECRET_PREFIX) + 4]


def sign(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(signing_secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    parts = [f"t={timestamp}"] + [f"v1={sign(s, timestamp, body)}" for s in signing_secrets]
    return ",".join(parts)


def parse_header(header: str) -> tuple[int | None, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in (header or "").split(","):
        key, _sep, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            signatures.append(value)
    return timestamp, signatures


def verify(header: str, body: bytes, secret: str, *, now: datetime | None = None,
           tolerance: int = TOLERANCE_SECONDS) -> bool:
    """What a receiver does: is ``header`` a signature of ``body`` with ``secret``, made within
    ``tolerance`` seconds of ``now``?"""
    timestamp, signatures = parse_header(header)
    if timestamp is None or not signatures:
        return False
    now_ts = int((now or timezone.now()).timestamp())
    if abs(now_ts - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)
