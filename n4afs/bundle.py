"""Reading export bundles safely: every check happens before anything is written.

A bundle (zip or folder) is refused when any entry has an absolute path, a `..` component,
a backslash or NUL in its name, is a symlink or a special file, when there are too many
entries or the declared total size is too large (zip bombs), when an entry inflates past
its declared size, when EXPORT.yaml or MANIFEST.yaml is missing or does not parse, or when
any file's sha256 differs from the manifest. Nothing here unpickles anything.
"""

from __future__ import annotations

import hashlib
import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import yaml

from core.errors import BundleError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    max_entries: int = 100_000
    max_total_bytes: int = 20 << 30
    max_metadata_bytes: int = 64 << 20  # EXPORT.yaml / MANIFEST.yaml


DEFAULT_LIMITS = Limits()


class Bundle:
    """A verified export: its metadata and a way to stream each file's bytes."""

    def __init__(self, source: Path, limits: Limits = DEFAULT_LIMITS) -> None:
        self.source = Path(source)
        self.limits = limits
        self._zip: zipfile.ZipFile | None = None
        if self.source.is_dir():
            self.sizes = _folder_entries(self.source, limits)
        else:
            self._zip = _open_zip(self.source)
            self.sizes = _zip_entries(self._zip, limits)
        self.export_info = self._yaml("EXPORT.yaml")
        manifest = self._yaml("MANIFEST.yaml")
        self.manifest = _manifest(manifest, self.sizes)
        self.manifest_sha256 = hashlib.sha256(self.read("MANIFEST.yaml")).hexdigest()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------
    def _raw(self, name: str) -> BinaryIO:
        if self._zip is not None:
            return self._zip.open(name)
        return open(self.source / name, "rb")

    def chunks(self, name: str) -> Iterator[bytes]:
        """The file's bytes, refusing any byte past the size the listing declared."""
        declared, seen = self.sizes[name], 0
        try:
            with self._raw(name) as stream:
                while chunk := stream.read(CHUNK):
                    seen += len(chunk)
                    if seen > declared:
                        raise BundleError(
                            f"{name}: more bytes than declared ({declared}): "
                            "refusing a possible zip bomb"
                        )
                    yield chunk
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise BundleError(
                f"{self.source}: {name} cannot be read ({exc}); the archive is damaged or truncated"
            ) from exc
        if seen != declared:
            raise BundleError(f"{name}: {seen} bytes, {declared} declared: damaged archive")

    def read(self, name: str) -> bytes:
        return b"".join(self.chunks(name))

    def _yaml(self, name: str) -> Any:
        if name not in self.sizes:
            raise BundleError(f"{self.source} has no {name}: not an n4afs export")
        if self.sizes[name] > self.limits.max_metadata_bytes:
            raise BundleError(f"{name} is implausibly large ({self.sizes[name]} bytes)")
        try:
            return yaml.safe_load(self.read(name))
        except yaml.YAMLError as exc:
            raise BundleError(f"{name} in {self.source} does not parse: {exc}") from exc

    def verify(self) -> None:
        """Hash every file against the manifest (streamed; nothing is kept)."""
        for name, (_size, digest) in self.manifest.items():
            h = hashlib.sha256()
            for chunk in self.chunks(name):
                h.update(chunk)
            if h.hexdigest() != digest:
                raise BundleError(
                    f"{name}: sha256 does not match MANIFEST.yaml; the bundle "
                    "was altered or damaged, ask for a new export"
                )


def check_name(name: str) -> str:
    if not name or "\x00" in name or "\\" in name:
        raise BundleError(f"unsafe entry name {name!r}")
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/") or ":" in path.parts[0]:
        raise BundleError(f"entry {name!r} has an absolute path: refusing the bundle")
    if any(part == ".." for part in path.parts):
        raise BundleError(f"entry {name!r} climbs out of the bundle with '..': refusing it")
    parts = name.rstrip("/").split("/")
    for part in parts:
        if part in ("", ".") or any(ord(c) < 32 or ord(c) == 127 for c in part):
            raise BundleError(
                f"entry {name!r} has an empty, '.' or control-character "
                "component: refusing the bundle"
            )
        if len(part.encode("utf-8")) > 255:
            raise BundleError(f"entry {name!r} has a component over 255 bytes: refusing it")
    return name


def _open_zip(source: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(source)
    except FileNotFoundError:
        raise BundleError(f"{source}: no such file") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(
            f"{source} is not a readable zip ({exc}); it may be truncated or not an n4afs export"
        ) from exc


def _zip_entries(archive: zipfile.ZipFile, limits: Limits) -> dict[str, int]:
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise BundleError(f"{len(infos)} entries, more than the {limits.max_entries} allowed")
    sizes: dict[str, int] = {}
    for info in infos:
        check_name(info.filename)
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix type recorded (Windows zips)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise BundleError(f"entry {info.filename!r} is a link or special file: refusing")
        if info.is_dir():
            continue
        if info.filename in sizes:
            raise BundleError(f"entry {info.filename!r} appears twice: refusing the bundle")
        sizes[info.filename] = info.file_size
    _check_total(sizes, limits)
    _check_no_file_dir_clash(sizes)
    return sizes


def _check_no_file_dir_clash(sizes: dict[str, int]) -> None:
    """A name cannot be both a file and a folder holding other entries."""
    folders = {"/".join(n.split("/")[:i]) for n in sizes for i in range(1, n.count("/") + 1)}
    clash = sorted(folders & set(sizes))
    if clash:
        raise BundleError(f"entry {clash[0]!r} is both a file and a folder: refusing the bundle")


def _folder_entries(root: Path, limits: Limits) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise BundleError(f"{name} is a link or special file: refusing the bundle")
        if path.is_file():
            sizes[check_name(name)] = path.stat().st_size
        if len(sizes) > limits.max_entries:
            raise BundleError(f"more than {limits.max_entries} files: refusing the bundle")
    _check_total(sizes, limits)
    return sizes


def _check_total(sizes: dict[str, int], limits: Limits) -> None:
    total = sum(sizes.values())
    if total > limits.max_total_bytes:
        raise BundleError(
            f"the bundle declares {total} bytes uncompressed, more than the "
            f"{limits.max_total_bytes} allowed: refusing a possible zip bomb"
        )


def _manifest(manifest: Any, sizes: dict[str, int]) -> dict[str, tuple[int, str]]:
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        raise BundleError("MANIFEST.yaml has no `files` list")
    listed: dict[str, tuple[int, str]] = {}
    for row in manifest["files"]:
        try:
            listed[check_name(str(row["path"]))] = (int(row["size"]), str(row["sha256"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"MANIFEST.yaml row {row!r} is malformed") from exc
    present = set(sizes) - {"MANIFEST.yaml"}
    if set(listed) != present:
        extra = sorted(present - set(listed))[:3]
        missing = sorted(set(listed) - present)[:3]
        raise BundleError(
            f"files and MANIFEST.yaml disagree (not listed: {extra}, missing: {missing})"
        )
    for name, (size, _) in listed.items():
        if sizes[name] != size:
            raise BundleError(f"{name}: {sizes[name]} bytes, MANIFEST.yaml says {size}")
    return listed
