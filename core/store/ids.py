"""Content ids as a value class rather than bare strings.

A `BlobId` is validated on construction (64 lowercase hex characters), so a path is never
built from an unchecked string: `objects/ab/<id>` cannot escape the store. `.short` is what
people see (8 characters, like restic and git).

The content hash lives here too, for every module: `sha256_hex` (or `BlobId.of_bytes`) for
bytes in memory, `hash_stream` for a stream read only to be hashed (the standard library's
loop), and `Sha256.feed` for bytes hashed on their way somewhere (a put, a fetch, an
export, a bundle check): the one hashing loop of the code base.

Design: docs/DESIGN.md, "Storage".
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from n4afs_core.errors import InvalidBlobId

_HEX64 = re.compile(r"[0-9a-f]{64}")
SHORT_LEN = 8
CHUNK = 1 << 20  # bytes per read when content is streamed


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
    def of_bytes(cls, data: bytes | bytearray | memoryview) -> BlobId:
        return cls(sha256_hex(data))

    @property
    def short(self) -> str:
        return self[:SHORT_LEN]

    @property
    def shard(self) -> str:
        """The two-character fan-out directory, so no directory holds millions of files."""
        return self[:2]

    # No `__repr__` of its own: a blob id's repr is its text, whole. Render keys are
    # recorded under their repr (`n4afs.tree.content.key_text`); an abbreviated repr made
    # keys that differed past its 8 hex digits one record.


def sha256_hex(data: bytes | bytearray | memoryview) -> str:
    """The sha256 (hex) of bytes in memory (a plain `str`: manifests store it as text)."""
    return hashlib.sha256(data).hexdigest()


class Sha256:
    """The sha256 and length of the bytes streamed through `feed`.

    `feed` passes the chunks on, so a copy hashes what it writes in the same pass:
    `for chunk in hashing.feed(chunks_of(src)): dst.write(chunk)`.
    """

    __slots__ = ("_digest", "size")

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self.size = 0

    def feed(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self._digest.update(chunk)
            self.size += len(chunk)
            yield chunk

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def chunks_of(stream: BinaryIO) -> Iterator[bytes]:
    """A binary stream's bytes, `CHUNK` at a time, to its end."""
    while chunk := stream.read(CHUNK):
        yield chunk


def hash_chunks(chunks: Iterable[bytes]) -> tuple[str, int]:
    """The sha256 (hex) and length of the bytes of `chunks`."""
    hashing = Sha256()
    for _ in hashing.feed(chunks):
        pass
    return hashing.hexdigest(), hashing.size


def hash_stream(stream: BinaryIO) -> str:
    """The sha256 (hex) of a binary stream's bytes, read to its end: the standard
    library's loop (`hashlib.file_digest`, reading into one reused buffer) where nothing
    else is done with the bytes."""
    return hashlib.file_digest(stream, "sha256").hexdigest()
