"""Standard Webhooks signatures (https://www.standardwebhooks.com): `webhook-id`, `webhook-timestamp`
and `webhook-signature` headers, HMAC-SHA256 over `<id>.<timestamp>.<body>` with the exact body bytes
sent. A key is `whsec_` + base64. During a rotation the secret holds the current and the next key and
both signatures are sent (space-separated), so the receiver may switch keys at any moment."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Final

KEY_PREFIX: Final = "whsec_"
SIGNATURE_HEADERS: Final = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature"})
MIN_KEY_BYTES: Final = 24  # the specification recommends 24 to 64 random bytes
MAX_KEYS: Final = 2


class SigningKeyError(ValueError):
    """A signing secret that holds no usable key. Its text never includes the secret's value."""


def parse_signing_keys(value: str) -> tuple[bytes, ...]:
    """Keys from a secret's value: one `whsec_` key, several separated by spaces, or a JSON object
    {"current": "whsec_...", "next": "whsec_..."}."""
    text = value.strip()
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            raise SigningKeyError("the signing secret is not valid JSON") from None
        if not isinstance(document, dict) or not isinstance(document.get("current"), str):
            raise SigningKeyError('a JSON signing secret needs a "current" key (and optionally "next")')
        encoded = [document["current"]]
        if document.get("next"):
            if not isinstance(document["next"], str):
                raise SigningKeyError('the signing secret\'s "next" key must be a string')
            encoded.append(document["next"])
    else:
        encoded = text.split()
    if not encoded:
        raise SigningKeyError("the signing secret is empty: store a whsec_ key in it")
    if len(encoded) > MAX_KEYS:
        raise SigningKeyError(f"the signing secret holds {len(encoded)} keys: keep the current and the next")
    return tuple(_decode(item) for item in encoded)


def _decode(item: str) -> bytes:
    if not item.startswith(KEY_PREFIX):
        raise SigningKeyError("a signing key must start with whsec_, then the base64 of 32 random bytes")
    try:
        key = base64.b64decode(item.removeprefix(KEY_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise SigningKeyError("a signing key is not valid base64 after whsec_") from None
    if len(key) < MIN_KEY_BYTES:
        raise SigningKeyError(f"a signing key decodes to {len(key)} bytes: use at least {MIN_KEY_BYTES}")
    return key


def sign(keys: tuple[bytes, ...], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one message."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    signatures = [
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys
    ]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signatures),
    }


def generate_key() -> str:
    """A new random key in the `whsec_` form."""
    import secrets

    return KEY_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
