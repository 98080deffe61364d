"""Seeds derived from a run's identity by hashing, so that adding a run never changes another run's draws."""

from __future__ import annotations

import hashlib


def seed_hash(*parts) -> int:
    """A stable 31-bit seed from any printable parts, e.g. ``seed_hash(base_seed, "siemens_3", "splits")``."""
    digest = hashlib.md5(repr(parts).encode("utf-8")).hexdigest()
    return int(digest, 16) % (2**31)
