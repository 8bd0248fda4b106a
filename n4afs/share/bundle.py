"""Reading export bundles safely: every check happens before anything is written.

A bundle (zip or folder) is refused when any entry has an absolute path, a `..` component,
a backslash or NUL in its name, is a symlink or a special file, when there are too many
entries or the declared total size is too large (zip bombs), when an entry inflates past
its declared size, when EXPORT.yaml or MANIFEST.yaml is missing or does not parse, or when
any file's sha256 differs from the manifest. Nothing here unpickles anything.

Design: docs/DESIGN.md, "Surfaces".
"""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import yaml
from n4afs_core.errors import BundleError
from n4afs_core.index.names import CONTROL
from n4afs_core.store.ids import chunks_of, hash_chunks, sha256_hex

_READABLE_COMPRESSION = (
    zipfile.ZIP_STORED,
    zipfile.ZIP_DEFLATED,
    zipfile.ZIP_BZIP2,
    zipfile.ZIP_LZMA,
)


@dataclass(frozen=True)
class Limits:
    """What an import accepts; `n4afs import --max-bytes/--max-ratio` override the two a
    legitimate bundle may exceed. A result of the reference sweep exports to ~2 MB at a
    compression ratio under 3; a with-data export of a whole dataset to a few hundred MB."""

    max_entries: int = 100_000
    max_total_bytes: int = 4 << 30  # uncompressed, all files together
    max_ratio: float = 100.0  # uncompressed / compressed, per file and for the whole zip
    max_metadata_bytes: int = 16 << 20  # EXPORT.yaml / MANIFEST.yaml / any parsed YAML
    max_table_bytes: int = 512 << 20  # one CSV parsed whole (predictions, spectra)


DEFAULT_LIMITS = Limits()


class Archive:
    """A zip or folder whose entries passed the checks above (names, links, sizes, ratios),
    and a way to stream each file's bytes within its declared size. `Bundle` is an n4afs
    export; `n4afs.share.nirs4all_source` reads nirs4all's `.n4a` bundles through it too."""

    def __init__(self, source: Path, limits: Limits = DEFAULT_LIMITS) -> None:
        self.source = Path(source)
        self.limits = limits
        self._zip: zipfile.ZipFile | None = None
        if self.source.is_dir():
            self.sizes = _folder_entries(self.source, limits)
        else:
            self._zip = _open_zip(self.source)
            self.sizes = _zip_entries(self._zip, limits)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> Archive:
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
                for chunk in chunks_of(stream):
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

    def metadata(self, name: str) -> bytes:
        """A metadata file's bytes, within the metadata size limit."""
        if self.sizes.get(name, 0) > self.limits.max_metadata_bytes:
            raise BundleError(f"{name} is implausibly large ({self.sizes[name]} bytes)")
        return self.read(name)

    def yaml(self, name: str) -> Any:
        """A YAML file of the bundle, parsed without alias expansion (a few hundred bytes of
        nested aliases expand to megabytes) and within the metadata size limit."""
        return load_untrusted_yaml(self.metadata(name), name)


class Bundle(Archive):
    """A verified n4afs export: its metadata and a way to stream each file's bytes."""

    def __init__(self, source: Path, limits: Limits = DEFAULT_LIMITS) -> None:
        super().__init__(source, limits)
        self.export_info = self._yaml("EXPORT.yaml")
        manifest = self._yaml("MANIFEST.yaml")
        self.manifest = _manifest(manifest, self.sizes)
        self.manifest_sha256 = sha256_hex(self.read("MANIFEST.yaml"))

    def _yaml(self, name: str) -> Any:
        if name not in self.sizes:
            raise BundleError(f"{self.source} has no {name}: not an n4afs export")
        return self.yaml(name)

    def verify(self) -> None:
        """Hash every file against the manifest (streamed; nothing is kept)."""
        for name, (_size, digest) in self.manifest.items():
            if hash_chunks(self.chunks(name))[0] != digest:
                raise BundleError(
                    f"{name}: sha256 does not match MANIFEST.yaml; the bundle "
                    "was altered or damaged, ask for a new export"
                )


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases: n4afs never writes them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases are not allowed", mark)
        return super().compose_node(parent, index)


def load_untrusted_yaml(data: bytes, name: str) -> Any:
    """YAML from a bundle: safe types only, no aliases; a one-line BundleError otherwise."""
    try:
        return yaml.load(data, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BundleError(f"{name} does not parse as n4afs writes it: {first}") from exc


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
        if part in ("", ".") or CONTROL.search(part):
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
    compressed = 0
    for info in infos:
        check_name(info.filename)
        if info.flag_bits & 0x1:
            raise BundleError(f"entry {info.filename!r} is encrypted: refusing the bundle")
        if info.compress_type not in _READABLE_COMPRESSION:
            raise BundleError(
                f"entry {info.filename!r} uses compression method {info.compress_type}, "
                "which n4afs does not read: refusing the bundle"
            )
        kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no Unix type recorded (Windows zips)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise BundleError(f"entry {info.filename!r} is a link or special file: refusing")
        if info.is_dir():
            continue
        if info.filename in sizes:
            raise BundleError(f"entry {info.filename!r} appears twice: refusing the bundle")
        _check_ratio(info.filename, info.file_size, info.compress_size, limits)
        sizes[info.filename] = info.file_size
        compressed += info.compress_size
    _check_total(sizes, limits)
    _check_ratio("the archive", sum(sizes.values()), compressed, limits)
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


def _check_ratio(what: str, size: int, compressed: int, limits: Limits) -> None:
    """Refuse what inflates more than `max_ratio` times (1 MiB of slack for tiny files,
    which compress well and cannot hurt)."""
    if size > (1 << 20) and size > limits.max_ratio * max(compressed, 1):
        raise BundleError(
            f"{what} inflates {size / max(compressed, 1):.0f}x ({compressed} -> {size} bytes), "
            f"more than the {limits.max_ratio:g}x allowed: refusing a possible zip bomb "
            "(override with --max-ratio if you trust it)"
        )


def _check_total(sizes: dict[str, int], limits: Limits) -> None:
    total = sum(sizes.values())
    if total > limits.max_total_bytes:
        raise BundleError(
            f"the bundle declares {total} bytes uncompressed, more than the "
            f"{limits.max_total_bytes} allowed: refusing a possible zip bomb "
            "(override with --max-bytes if you trust it)"
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
