"""The ``_subject`` a recipient sees: HMAC-SHA256 under a key of its own, so two
recipients' files do not join."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable


def pseudonymizer(hmac_key: bytes, recipient_id: str, cache_size: int = 100_000) -> Callable[[object], str]:
    """HMAC-SHA256 of the subject id under this recipient's key (derived from the HMAC key);
    a bounded cache, since a subject's rows repeat."""
    key = hmac.new(hmac_key, f"sharing:{recipient_id}".encode(), hashlib.sha256).digest()
    cache: dict = {}

    def pseudonym(subject) -> str:
        found = cache.get(subject)
        if found is None:
            if len(cache) >= cache_size:
                cache.clear()
            found = cache[subject] = hmac.digest(key, str(subject).encode("utf-8"), "sha256").hex()
        return found

    return pseudonym
