"""Secrets the portal must read back, sealed at rest (Fernet: AES-128-CBC with an HMAC-SHA256).

The portal keeps as few secrets as it can: API tokens and single-use links are stored as
hashes, and kubeconfigs are read from the platform on each download and never stored. A
webhook's signing secret cannot be hashed (the portal signs with it), so it is sealed with
``seal`` and read back with ``unseal`` only at the moment of signing.

Keys: ``ENCRYPTION_KEYS`` (Fernet keys, comma-separated; the first seals, every one unseals),
or when it is empty, keys derived from ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS`` (HKDF), so
that rotating the secret key the Django way keeps sealed values readable. A value sealed with a
key no longer listed cannot be read: ``UnsealError``.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

_INFO = b"kube-portal sealed secrets v1"


class UnsealError(Exception):
    """A sealed value that none of the configured keys opens."""


def _derived(secret: str) -> bytes:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        secret.encode())
    return base64.urlsafe_b64encode(key)


def _keys() -> list[bytes]:
    configured = [k.strip() for k in getattr(settings, "ENCRYPTION_KEYS", []) if k.strip()]
    if configured:
        return [k.encode() for k in configured]
    return [_derived(str(s)) for s in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
            if s]


@lru_cache(maxsize=1)
def _box() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in _keys()])


@receiver(setting_changed)
def _forget_keys(*, setting: str, **kwargs: object) -> None:
    if setting in ("ENCRYPTION_KEYS", "SECRET_KEY", "SECRET_KEY_FALLBACKS"):
        _box.cache_clear()


def seal(plaintext: str) -> str:
    """``plaintext`` encrypted and authenticated with the current key (ASCII, for a text
    column)."""
    return _box().encrypt(plaintext.encode()).decode()


def unseal(sealed: str) -> str:
    """The plaintext of a ``seal``-ed value; ``UnsealError`` if no configured key opens it."""
    try:
        return _box().decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise UnsealError("no configured key opens this value") from None
