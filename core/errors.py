"""One error family for the whole engine and its surfaces.

Callers catch `N4AError` for "a user-facing problem with a message worth printing", or a
subclass when they can do something specific about it. Every message names the object (a
path, a short id), what was expected, what was found, and the next step: the CLI prints it
as one line and exits non-zero, so the message is all the user gets.

Design: docs/DESIGN.md, "Concurrency and failure".
"""

from __future__ import annotations

import errno
import os
import re


class N4AError(Exception):
    """Root of every error n4afs raises on purpose."""


class BlobNotFound(N4AError):
    """A blob id is referenced but no object holds it."""


class BlobCorrupt(N4AError):
    """An object's bytes do not hash to its name: never serve or unpickle them."""


class BlobUnreadable(N4AError):
    """An object exists but cannot be read (permissions, an I/O error of the disk)."""


class StoreUnreachable(BlobUnreadable):
    """The blob store (a bucket, a server) did not answer within its timeouts: the
    network, the endpoint or the credentials' server is down. Commands that read only the
    index never meet it."""


class SharedStoreError(N4AError):
    """A store holding other workspaces' objects used as if it were private, or a
    workspace's published references that cannot be read (gc then removes nothing)."""


class InvalidBlobId(N4AError, ValueError):
    """A string that is not 64 lowercase hex characters was used as a blob id."""


class WorkspaceError(N4AError):
    """The workspace is missing, unreadable, or of an unknown layout."""


class WorkspaceLocked(WorkspaceError):
    """The workspace lock could not be taken within the bounded wait."""


class IndexUnavailable(WorkspaceError):
    """A shared index (PostgreSQL) cannot be reached, or its client is not installed."""


class SchemaError(WorkspaceError):
    """The index was written by a newer n4afs, or a migration failed."""


class QueryError(N4AError):
    """A user's SQL query failed, or tried to write or reach outside the index snapshot."""


class MetricError(N4AError, ValueError):
    """A metric that is unknown, only descriptive, or scores another task than the data's."""


class DatasetError(N4AError, ValueError):
    """Spectra or targets that cannot be used: the message names file, row and column."""


class TemplateError(N4AError, ValueError):
    """A template that cannot be expanded: the message names the path to the bad node."""


class UnknownOperator(TemplateError):
    """An operator name that is not registered; the message lists the closest names."""


class RunError(N4AError):
    """A run that cannot start or resume (unknown run id, nothing to do, bad options)."""


class MountError(N4AError):
    """FUSE is unavailable, the mountpoint is unusable, or unmounting failed."""


class ServeError(N4AError):
    """The WebDAV server cannot start (address, credentials, certificate) or stop."""


class BundleError(N4AError):
    """An export bundle that is malformed, tampered with, or unsafe: nothing was written."""


class UntrustedArchive(N4AError):
    """Pickled models from a bundle were not loaded because nobody said to trust them."""


class DiskFull(N4AError):
    """A write found no space left on its disk (the index's or the blobs'): nothing
    half-written became visible; the message names where, and how to go on."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path  # the file that could not be written, when known


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether `exc`, or an error it was raised from, says a disk is full: an OSError with
    ENOSPC, or the text DuckDB and joblib's wrappers carry instead of an errno."""
    while exc is not None:
        if isinstance(exc, DiskFull):
            return True
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return True
        if "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def full_path(exc: BaseException | None) -> str | None:
    """The file a disk-full error could not write, when it says: an OSError's filename, or
    the quoted path of DuckDB's `Could not write file "..."`."""
    while exc is not None:
        if isinstance(exc, DiskFull) and exc.path:
            return exc.path
        if isinstance(exc, OSError) and exc.filename:
            return os.fsdecode(exc.filename)
        found = re.search(r'file "([^"]+)"', str(exc))
        if found:
            return found.group(1)
        exc = exc.__cause__ or exc.__context__
    return None
