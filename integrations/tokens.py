"""API token format: `wp_<8-char id>_<secret>`, 256 random bits, only a SHA-256 hash stored.

The id is the visible prefix (shown in lists and logs, used to find the row); the whole token is what
is hashed. SHA-256 rather than a password hash: the secret is random and long, so there is nothing
to brute-force, and the check stays far under P11's 0.1 ms budget.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "wp_"
_TOKEN = re.compile(r"^wp_([A-Za-z0-9]{8})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewToken:
    key_id: str
    plaintext: str  # shown once, never stored
    sha256: str


def token_hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def token_generate() -> NewToken:
    key_id = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789") for _ in range(8))
    plaintext = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return NewToken(key_id=key_id, plaintext=plaintext, sha256=token_hash(plaintext))


def token_key_id(plaintext: str) -> str | None:
    """The visible id of a well-formed token, or None."""
    match = _TOKEN.match(plaintext)
    return match.group(1) if match else None


def token_matches(plaintext: str, stored_hash: str) -> bool:
    return hmac.compare_digest(token_hash(plaintext), stored_hash)
