"""The blob store on any fsspec URL (`s3://bucket/prefix`), with a bounded local read cache.

Content addressing is what makes a shared bucket safe without coordination: an object's
name is its sha256, so two writers of the same name write the same bytes, and a writer
first asks whether the object exists (a HEAD, not a download). An S3 PUT is atomic: an
object is visible whole or not at all, so no temporary-and-rename dance is needed remotely.

Reads go through a local cache directory of whole objects (read-only files, 0444),
hash-checked when fetched, when changed since (and by `verify`), and evicted
least-recently-used (to the hour) past `cache_bytes`: the tree, the mount and `load_model`
read local files with `pread` as they do for a local store. A large object is fetched whole
on its first read (ranges are not fetched separately).

Credentials come from where fsspec/s3fs and botocore look (AWS_* variables, including
AWS_ENDPOINT_URL for S3-compatible servers, profiles, instance roles); the workspace
config records only the URL.

Reaching the store is bounded: on S3, connect and read timeouts and one retry layer
(botocore's, `S3_OPTIONS`; s3fs's own retry loop is turned off, it multiplied botocore's:
an endpoint that refused connections took ~22 s to fail, now 2-5 s; each metadata call
has a total deadline, `CALL_TIMEOUT_S`, against a server that accepts and never answers,
which took 45 s per call). A store that cannot be
reached raises `StoreUnreachable` (one line naming the URL), and for `DOWN_S` after that
every call of this store fails at once rather than waiting again (a mount reading many
files, an export).

Design: docs/DESIGN.md, "Storage" and "Scale-out".
"""

from __future__ import annotations

import functools
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

from n4afs_core.errors import BlobCorrupt, BlobNotFound, StoreUnreachable
from n4afs_core.store.ids import BlobId, Sha256, chunks_of, hash_stream
from n4afs_core.store.storage import (
    OBJECTS,
    REFS,
    Source,
    Store,
    blob_id_at,
    not_found,
    object_path,
    ref_name,
)

DEFAULT_CACHE_BYTES = 2 << 30
# How stale a cached copy's mtime (its LRU rank) may get before a read refreshes it. Every
# refresh moves the file's ctime, and readers that verified the copy (`core.store.verified`) hash
# it again when its ctime moves: refreshing on every read re-hashed on every read.
RECENCY_S = 3600.0
# Bounds on reaching S3 (botocore's client config), unless the workspace's storage options
# say otherwise. Measured against moto on loopback with the server stopped (connection
# refused): s3fs's defaults failed `n4afs runs` after 22-24 s; these fail a call in 2-5 s
# on this loaded 2-core machine (one retry: 2.4 s; two, kept for long sweeps on real S3
# against throttling and 5xx answers: up to ~5 s, the backoff's jitter).
S3_OPTIONS = {
    "connect_timeout": 3,
    "read_timeout": 10,
    "retries": {"max_attempts": 3, "mode": "standard"},
}
# A total deadline on each metadata call (HEAD, existence, delete) of an asynchronous
# fsspec store, retries included: a server that accepts and never answers took 45 s per
# call with the bounds above alone. Transfers (GET, PUT) have none: a large object may take
# long; their read timeout bounds a silent server.
CALL_TIMEOUT_S = 12.0
# After a call found the store unreachable, further calls fail at once for this long.
DOWN_S = 30.0


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the store could not be reached (connection refused or reset, a
    timeout), as opposed to an answer (missing key, access denied) that names a fault."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError
    except ImportError:  # no S3 support installed: only builtins can say it
        return False
    return isinstance(exc, (BotoConnectionError, HTTPClientError))


def _reached(method):
    """The method's calls to the store run inside `RemoteBlobStore.reaching`."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.reaching():
            return method(self, *args, **kwargs)

    return wrapper


class RemoteBlobStore(Store):
    """Objects live at `<url>/<object_path>`, local copies at `<cache_dir>/<object_path>`."""

    remote = True

    def __init__(
        self,
        url: str,
        cache_dir: str | os.PathLike,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        **storage_options: Any,
    ) -> None:
        import fsspec

        self.url = url.rstrip("/")
        options = dict(storage_options)
        if self.url.split("://")[0] in ("s3", "s3a"):
            options["config_kwargs"] = {**S3_OPTIONS, **options.get("config_kwargs", {})}
        self.fs, self.base = fsspec.core.url_to_fs(self.url, **options)
        if hasattr(self.fs, "retries") and "config_kwargs" in options:
            self.fs.retries = 1  # s3fs's loop around botocore's retries: botocore's alone
        self.cache_dir = Path(cache_dir)
        self.cache_bytes = cache_bytes
        self.storage_options = storage_options
        self.tmp_dir = self.cache_dir / "tmp"
        self._down_until = 0.0  # see DOWN_S
        from fsspec.asyn import AsyncFileSystem

        # fsspec's synchronous wrappers of an async file system take `timeout` (seconds)
        self._deadline = {"timeout": CALL_TIMEOUT_S} if isinstance(self.fs, AsyncFileSystem) else {}

    @contextmanager
    def reaching(self) -> Iterator[None]:
        """Calls to the store inside: failing to reach it is `StoreUnreachable`, one line;
        while it is known to be down, at once."""
        if time.monotonic() < self._down_until:
            raise self._unreachable_error(self._down_reason)
        try:
            yield
        except Exception as exc:
            if type(exc).__name__ == "NoCredentialsError":  # botocore's, by name: optional
                raise StoreUnreachable(
                    f"the blob store {self.url} needs credentials and found none: set "
                    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) where "
                    "n4afs runs"
                ) from exc
            if not unreachable(exc):
                raise
            self._down_reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._down_until = time.monotonic() + DOWN_S
            raise self._unreachable_error(self._down_reason) from exc

    def _unreachable_error(self, reason: str) -> StoreUnreachable:
        return StoreUnreachable(
            f"the blob store {self.url} cannot be reached ({reason}); check the network and "
            "the endpoint (AWS_ENDPOINT_URL), then try again. Commands that read only the "
            "index (runs, results, best, ls, RESULTS.csv) work without it"
        )

    # -- identity --------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        return {
            "kind": "remote",
            "url": self.url,
            "cache_dir": str(self.cache_dir),
            "cache_bytes": self.cache_bytes,
            "storage_options": self.storage_options,
        }

    @_reached
    def create(self) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.fs.makedirs(self.base, exist_ok=True)

    def key(self, blob_id: str) -> str:
        return f"{self.base}/{object_path(blob_id)}"

    # -- writing ---------------------------------------------------------------------
    @_reached
    def put(self, source: Source) -> BlobId:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            blob_id = BlobId.of_bytes(data)
            if self._reusable(blob_id, len(data)):
                self._heal_cached_copy(blob_id, data)
                return blob_id
            self.fs.pipe_file(self.key(blob_id), data)
            self._cache_bytes(blob_id, data)
            return blob_id
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as stream:
                return self._put_stream(stream)
        return self._put_stream(source)

    def _put_stream(self, stream: BinaryIO) -> BlobId:
        """Spool to a local temporary while hashing, then upload unless already there."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp_dir, prefix="put-")
        hashing = Sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in hashing.feed(chunks_of(stream)):
                    out.write(chunk)
            blob_id = BlobId(hashing.hexdigest())
            if not self._reusable(blob_id, os.path.getsize(tmp_name)):
                self.fs.put_file(tmp_name, self.key(blob_id))
                self.evict(blob_id)  # a cached copy of a damaged object must not outlive it
            return blob_id
        finally:
            with suppress(FileNotFoundError):
                os.unlink(tmp_name)

    def _reusable(self, blob_id: BlobId, size: int) -> bool:
        """Whether the remote object can stand for `size` new bytes of the same id (it
        exists with that size; then it is touched). One HEAD, as the existence check it
        replaces: an object of another size (a truncated upload, an overwrite) is
        uploaded again over it."""
        try:
            found = int(self.fs.size(self._fresh(blob_id), **self._deadline))
        except FileNotFoundError:
            return False
        return found == size and self.touch(blob_id)

    def _heal_cached_copy(self, blob_id: BlobId, data: bytes) -> None:
        """Rewrite a cached copy that a cheap look shows damaged (size, write bits)."""
        try:
            found = self._cache_path(blob_id).stat()
        except FileNotFoundError:
            return
        if found.st_size != len(data) or found.st_mode & 0o222:
            self._cache_bytes(blob_id, data)

    # `batch`: the interface's; remote PUTs are atomic and durable once acknowledged

    @_reached
    def touch(self, blob_id: str) -> bool:
        """Refresh LastModified (a metadata-only copy onto itself, S3) so gc spares a
        re-used object. Where the store cannot do that, or the object vanished, False:
        the caller then uploads the object again, which refreshes it just as well."""
        key = self.key(blob_id)  # an invalid id is an error, as for every call
        try:
            self.fs.setxattr(key, n4a_touched=str(time.time()))
        except Exception as exc:
            if unreachable(exc):
                raise
            return False
        return True

    @_reached
    def remove(self, blob_id: str) -> None:
        with suppress(FileNotFoundError):
            self.fs.rm_file(self.key(blob_id), **self._deadline)
        self._cache_path(blob_id).unlink(missing_ok=True)

    @_reached
    # -- refs (`core.store.shared`) ------------------------------------------------------
    @_reached
    def put_ref(self, name: str, data: bytes) -> None:
        key = f"{self.base}/{REFS}/{ref_name(name)}"
        try:
            self.fs.pipe_file(key, data)  # a PUT is atomic
        except FileNotFoundError:  # a file system with folders (fsspec's local one)
            self.fs.makedirs(f"{self.base}/{REFS}", exist_ok=True)
            self.fs.pipe_file(key, data)

    @_reached
    def read_refs(self) -> dict[str, bytes]:
        prefix = f"{self.base}/{REFS}"
        self.fs.invalidate_cache(prefix)
        if not self.fs.exists(prefix):
            return {}
        found = {}
        for key in sorted(self.fs.find(prefix)):
            with suppress(FileNotFoundError):
                found[key.rpartition("/")[2]] = self.fs.cat_file(key)
        return found

    @_reached
    def remove_ref(self, name: str) -> None:
        with suppress(FileNotFoundError):
            self.fs.rm_file(f"{self.base}/{REFS}/{ref_name(name)}")

    @_reached
    def quarantine(self, blob_id: str, folder: Path) -> None:
        """Move a corrupt remote object into the local `folder` (kept for inspection) and
        off the store: nothing serves it, and the next put of its bytes uploads them."""
        folder.mkdir(parents=True, exist_ok=True)
        with suppress(FileNotFoundError):
            self.fs.get_file(self.key(blob_id), str(folder / BlobId(blob_id)))
            self.fs.rm_file(self.key(blob_id), **self._deadline)
        self.evict(blob_id)

    def corrupt_cache_copies(self) -> list[BlobId]:
        """Cached copies whose bytes do not match their name. Readers (tree, mount,
        `export --link`) get these files, not the remote object, so `verify` hashes them
        too."""
        bad = []
        for path in sorted((self.cache_dir / OBJECTS).glob("*/*")):
            blob_id = blob_id_at(path.relative_to(self.cache_dir).as_posix())
            if blob_id is not None and path.is_file():
                with open(path, "rb") as stream:
                    digest = hash_stream(stream)
                if digest != blob_id:
                    bad.append(blob_id)
        return bad

    def evict(self, blob_id: str) -> None:
        """Drop the cached copy: the next read fetches (and hash-checks) it again."""
        self._cache_path(blob_id).unlink(missing_ok=True)

    # -- reading ---------------------------------------------------------------------
    @_reached
    def exists(self, blob_id: str) -> bool:
        return self.fs.exists(self._fresh(blob_id), **self._deadline)

    def _fresh(self, blob_id: str) -> str:
        """The object's key, with fsspec's listing cache dropped: other processes write
        to the same bucket, and gc must see their writes and re-uses."""
        key = self.key(blob_id)
        self.fs.invalidate_cache(key)
        return key

    @_reached
    def size(self, blob_id: str) -> int:
        try:
            return int(self.fs.size(self._fresh(blob_id), **self._deadline))
        except FileNotFoundError as exc:
            raise not_found(blob_id) from exc

    @_reached
    def mtime(self, blob_id: str) -> float:
        try:
            return self._modified(self._fresh(blob_id))
        except FileNotFoundError as exc:
            raise not_found(blob_id) from exc

    def _modified(self, key: str) -> float:
        """The object's LastModified; under the call deadline where the file system's
        `info` takes one (s3fs's `modified` is a plain method around it)."""
        if self._deadline:
            stamp = self.fs.info(key, **self._deadline).get("LastModified")
            if stamp is not None:
                return stamp.timestamp()
        return self.fs.modified(key).timestamp()

    @_reached
    def path_of(self, blob_id: str) -> Path:
        """A local, hash-checked copy of the object (fetched once, then cached)."""
        path = self._cache_path(blob_id)
        try:
            used = os.stat(path).st_mtime
        except FileNotFoundError:
            self._fetch(blob_id, path)
            return path
        if time.time() - used > RECENCY_S:
            with suppress(FileNotFoundError):
                os.utime(path)  # recently used: evicted last (to the hour)
        return path

    def open(self, blob_id: str) -> BinaryIO:
        return open(self.path_of(blob_id), "rb")

    def read(self, blob_id: str, verify: bool = True) -> bytes:
        """Whole content of the cached copy; hash-checked again by default (as a local
        store's read), as the copy may have changed on disk since it was fetched."""
        data = self.path_of(blob_id).read_bytes()
        if verify and BlobId.of_bytes(data) != blob_id:
            raise BlobCorrupt(
                f"cached copy of blob {BlobId(blob_id).short} does not match its sha256 "
                f"(in {self.cache_dir}); run `n4afs verify`"
            )
        return data

    @_reached
    def verify(self, blob_id: str) -> bool:
        """Hash the remote object itself (not the cached copy)."""
        try:
            with self.fs.open(self.key(blob_id), "rb") as stream:
                digest = hash_stream(stream)
        except FileNotFoundError:
            return False
        return digest == blob_id

    def verify_copy(self, blob_id: str) -> bool:
        """Check the bytes readers will get: the local copy, hashed when it was fetched
        and re-hashed here (no second download; `verify` checks the remote object)."""
        try:
            path = self.path_of(blob_id)
        except (BlobCorrupt, BlobNotFound):
            return False
        with open(path, "rb") as stream:
            digest = hash_stream(stream)
        return digest == blob_id

    def iter_ids(self) -> Iterator[BlobId]:
        prefix = f"{self.base}/{OBJECTS}"
        self.fs.invalidate_cache(prefix)
        with self.reaching():
            keys = sorted(self.fs.find(prefix)) if self.fs.exists(prefix) else []
        for key in keys:
            blob_id = blob_id_at(key[len(self.base) + 1 :])
            if blob_id is not None:
                yield blob_id

    # -- the local cache ---------------------------------------------------------------
    def _cache_path(self, blob_id: str) -> Path:
        return self.cache_dir / object_path(blob_id)

    def _fetch(self, blob_id: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".fetch-")
        hashing = Sha256()
        try:
            with os.fdopen(fd, "wb") as out, self.fs.open(self.key(blob_id), "rb") as src:
                for chunk in hashing.feed(chunks_of(src)):
                    out.write(chunk)
            if hashing.hexdigest() != blob_id:
                raise BlobCorrupt(
                    f"remote blob {BlobId(blob_id).short} does not match its "
                    "sha256; run `n4afs verify`"
                )
            os.chmod(tmp_name, 0o444)  # read-only like an object: a stray write fails
            os.replace(tmp_name, path)
        except FileNotFoundError as exc:
            raise BlobNotFound(
                f"blob {BlobId(blob_id).short} is missing from {self.url}; run `n4afs verify`"
            ) from exc
        finally:
            with suppress(FileNotFoundError):
                os.unlink(tmp_name)
        self._evict()

    def _cache_bytes(self, blob_id: str, data: bytes) -> None:
        path = self._cache_path(blob_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".fetch-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            os.fchmod(out.fileno(), 0o444)
        os.replace(tmp_name, path)
        self._evict()

    def _evict(self) -> None:
        """Least recently used first, until the cache fits its budget. Other processes (the
        workers of one machine share a cache) evict and fetch at the same time: a copy gone
        between listing and `stat` is simply not counted."""
        files = []
        for p in (self.cache_dir / OBJECTS).rglob("*"):
            try:
                found = p.stat()
            except FileNotFoundError:
                continue
            if stat.S_ISREG(found.st_mode):
                files.append((found.st_mtime, found.st_size, p))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.cache_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
