"""Signatures a receiver can check: ``t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from notifications import signing

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BODY = b'{"id":"evt_1","type":"cluster.ready"}'


def test_the_signature_is_the_hmac_of_timestamp_dot_body_with_the_whole_secret():
    secret = signing.new_secret()
    header = signing.signature_header([secret], int(NOW.timestamp()), BODY)
    expected = hmac.new(secret.encode(), f"{int(NOW.timestamp())}.".encode() + BODY,
                        hashlib.sha256).hexdigest()
    assert header == f"t={int(NOW.timestamp())},v1={expected}"
    assert signing.verify(header, BODY, secret, now=NOW)


def test_a_changed_body_another_secret_or_an_old_timestamp_is_refused():
    secret = signing.new_secret()
    header = signing.signature_header([secret], int(NOW.timestamp()), BODY)
    assert not signing.verify(header, BODY + b" ", secret, now=NOW)
    assert not signing.verify(header, BODY, signing.new_secret(), now=NOW)
    assert not signing.verify(header, BODY, secret, now=NOW + timedelta(minutes=6))
    assert not signing.verify("v1=abc", BODY, secret, now=NOW)
    assert not signing.verify("", BODY, secret, now=NOW)


def test_during_an_overlap_both_secrets_verify_the_same_request():
    old, new = signing.new_secret(), signing.new_secret()
    header = signing.signature_header([new, old], int(NOW.timestamp()), BODY)
    assert header.count("v1=") == 2
    assert signing.verify(header, BODY, old, now=NOW)
    assert signing.verify(header, BODY, new, now=NOW)


def test_secrets_are_long_random_and_recognisable():
    first, second = signing.new_secret(), signing.new_secret()
    assert first != second and first.startswith("whsec_") and len(first) >= 40
    assert signing.hint(first) == first[:10]


def test_a_secret_never_reaches_a_log_line():
    from portal.logging import redact

    secret = signing.new_secret()
    assert secret not in redact(f"rotated to {secret} for https://hooks.example.com/")
    assert "whsec_[redacted]" in redact(f"{secret}")
