"""Content ids as a value class rather than bare strings.

A `BlobId` is validated on construction (64 lowercase hex characters), so a path is never
built from an unchecked string: `objects/ab/<id>` cannot escape the store. `.short` is what
people see (8 characters, like restic and git).

Design: docs/DESIGN.md, "Storage".
"""

from __future__ import annotations

import hashlib
import re

from n4afs_core.errors import InvalidBlobId

_HEX64 = re.compile(r"[0-9a-f]{64}")
SHORT_LEN = 8


class BlobId(str):
    """A sha256 hex digest naming immutable content."""

    __slots__ = ()

    def __new__(cls, value: str) -> BlobId:
        if isinstance(value, BlobId):
            return value
        if not isinstance(value, str) or not _HEX64.fullmatch(value):
            shown = repr(value)[:80]
            raise InvalidBlobId(
                f"invalid blob id {shown}: expected 64 lowercase hex characters (a sha256)"
            )
        return super().__new__(cls, value)

    @classmethod
    def of_bytes(cls, data: bytes) -> BlobId:
        return cls(hashlib.sha256(data).hexdigest())

    @property
    def short(self) -> str:
        return self[:SHORT_LEN]

    @property
    def shard(self) -> str:
        """The two-character fan-out directory, so no directory holds millions of files."""
        return self[:2]

    def __repr__(self) -> str:
        return f"BlobId({self.short}…)"
