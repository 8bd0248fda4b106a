"""`pipeline.pkl` assembled from the stored step artifacts, without storing it again.

The file is a tiny hand-written pickle program that calls `sklearn.pipeline.Pipeline` on a
list of `(name, pickle.loads(<artifact bytes>))` pairs. The artifact bytes sit in it verbatim,
so the file is a concatenation: glue, blob, glue, blob, ..., glue. The tree serves it as
segments straight from the blobs; its size is known from the blob sizes alone, and the
model's bytes stay stored once. `joblib.load` and `pickle.load` both read it and return a
fitted Pipeline.

Design: docs/DESIGN.md, "The tree".
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass

from n4afs_core.pickles import PACKAGE

_PROTO = b"\x80\x04"
_PIPELINE = b"csklearn.pipeline\nPipeline\n"
_LOADS = b"cpickle\nloads\n"
# A step pickled before the engine was renamed names `core.operators...`: its bytes are
# read by n4afs's loader, which reads that old name as the new one (n4afs_core.pickles).
_LEGACY_LOADS = f"c{PACKAGE}.pickles\nloads\n".encode()


@dataclass(frozen=True)
class BlobSegment:
    blob_id: str
    size: int


Segment = bytes | BlobSegment


def _unicode(text: str) -> bytes:
    data = text.encode("utf-8")
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def compose(steps: list[tuple[str, str, int, bool]]) -> list[Segment]:
    """(step name, blob id, blob size, pickled under the old name) in pipeline order -> the
    file's segments."""
    segments: list[Segment] = []
    glue = _PROTO + _PIPELINE + pickle.MARK + pickle.EMPTY_LIST + pickle.MARK
    for name, blob_id, size, legacy in steps:
        glue += pickle.MARK + _unicode(name) + (_LEGACY_LOADS if legacy else _LOADS)
        glue += pickle.MARK + pickle.BINBYTES8 + struct.pack("<Q", size)
        segments += [glue, BlobSegment(blob_id, size)]
        glue = pickle.TUPLE + pickle.REDUCE + pickle.TUPLE
    glue += pickle.APPENDS + pickle.TUPLE + pickle.REDUCE + pickle.STOP
    segments.append(glue)
    return segments


def wrap_legacy(blob_id: str, size: int) -> list[Segment]:
    """A step's `.pkl` pickled under the engine's old name, as a file that loads anywhere
    n4afs is installed: a call of n4afs's loader on the step's bytes, kept verbatim."""
    head = _PROTO + _LEGACY_LOADS + pickle.BINBYTES8 + struct.pack("<Q", size)
    return [head, BlobSegment(blob_id, size), pickle.TUPLE1 + pickle.REDUCE + pickle.STOP]


def segment_size(segment: Segment) -> int:
    return segment.size if isinstance(segment, BlobSegment) else len(segment)


def total_size(segments: list[Segment]) -> int:
    return sum(segment_size(s) for s in segments)
