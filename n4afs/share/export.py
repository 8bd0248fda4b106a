"""`n4afs export`: any folder of the tree as real files, in a zip or a plain folder.

The files are exactly the tree's bytes (same readers as the mount and fsspec), streamed in
1 MiB pieces: nothing is held whole in memory. Two files are added at the top:
EXPORT.yaml (where it came from: workspace, results, datasets, versions, date, command —
and what `predict` needs: each result's wavelength columns) and MANIFEST.yaml (path, size
and sha256 of every other file, which `import` verifies).

Levels: `minimal` keeps what predicting needs (pipeline.yaml, scores.yaml, the final
model) and the prediction tables an import recomputes its scores from; `default` the whole
folder; `with-data` adds each dataset as CSV under `data/`.

Nothing is written outside the target: every name is checked (no absolute, empty, `.` or
`..` part, none over 255 bytes) before the first byte goes out. A zip or a folder is built
under a temporary sibling name and renamed into place once complete, so a failed export
(a blob missing or corrupt, a full disk) leaves nothing behind.

`--link` exports a folder whose blob files share the store's disk blocks: a reflink (a
copy-on-write clone: a separate file, safe to edit) where the file system has them
(XFS, btrfs), else a hard link, which IS the stored object (never chmod or edit it).
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import sys
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from n4afs_core.errors import N4AError
from n4afs_core.store.ids import CHUNK, Sha256, sha256_hex

from n4afs.tree import renderers
from n4afs.tree.content import FILE_MODE, BlobContent, Node, TreePath
from n4afs.tree.tree import Tree

FORMAT = "n4afs-export/1"
LEVELS = ("minimal", "default", "with-data")
STORED_SUFFIXES = (".png", ".zip", ".parquet", ".gz")  # already compressed
NAME_MAX = 255  # bytes in one path component, on every common file system
FICLONE = 0x40049409  # Linux ioctl: make dst a copy-on-write clone of src


@dataclass
class ExportSummary:
    out: Path
    files: int = 0
    bytes: int = 0
    results: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Entry:
    name: str  # path inside the bundle, '/'-separated
    node: Node


def export(
    ws: Any,
    tree_path: TreePath,
    out: Path,
    level: str = "default",
    link: bool = False,
    command: str | None = None,
) -> ExportSummary:
    if level not in LEVELS:
        raise N4AError(f"unknown export level {level!r}: use one of {', '.join(LEVELS)}")
    tree = ws.tree  # shared: renders memoized by an earlier export or listing are reused
    top = tree.lookup(tree_path)
    if top is None:
        raise N4AError(f"no such path in the tree: /{'/'.join(tree_path)}")
    root = tree_path[-1] if tree_path else "workspace"
    results = _results_below(tree, tree_path)
    entries = _entries(tree, tree_path, root, level, results)
    for entry in entries:
        check_name(entry.name)
    provenance = _provenance(ws, tree, tree_path, level, results, command)
    writer = _ZipWriter(out) if out.suffix == ".zip" else _DirWriter(out, link, tree)
    summary = ExportSummary(out, results=[r.label for r, _ in results])
    manifest = []
    with writer:
        export_yaml = renderers.yaml_bytes(provenance)
        manifest.append(writer.add_bytes("EXPORT.yaml", export_yaml))
        for entry in entries:
            manifest.append(writer.add(entry, tree))
            summary.files += 1
            summary.bytes += entry.node.size
        writer.add_bytes(
            "MANIFEST.yaml", renderers.yaml_bytes({"format": FORMAT, "files": manifest})
        )
    return summary


# -- what goes in -------------------------------------------------------------------------
def _results_below(tree: Tree, path: TreePath) -> list[tuple[Any, TreePath]]:
    """Every result folder at or below `path`, with its tree path."""
    found = tree.result_at(path)
    if found is not None:
        result, depth = found
        return [(result, path[:depth])]
    results = []
    for rel, _ in tree.walk_files(path):
        candidate = tree.result_at((*path, *rel))
        if candidate is not None:
            result, depth = candidate
            folder = (*path, *rel)[:depth]
            if all(folder != f for _, f in results):
                results.append((result, folder))
    return results


def _entries(
    tree: Tree, path: TreePath, root: str, level: str, results: list[tuple[Any, TreePath]]
) -> list[Entry]:
    files = tree.walk_files(path)
    if level == "minimal":
        files = _minimal(tree, path, results)
    entries = [Entry("/".join((root, *rel)), node) for rel, node in files]
    if level == "with-data":
        for dataset_id in dict.fromkeys(r.dataset_id for r, _ in results):
            folder = tree.dataset_folder(dataset_id)
            for rel, node in tree.walk_files(("datasets", folder)):
                entries.append(Entry("/".join(("data", folder, *rel)), node))
    return entries


def _minimal(tree: Tree, path: TreePath, results) -> list[tuple[TreePath, Node]]:
    if len(results) != 1 or results[0][1] != path:
        raise N4AError(
            "--minimal exports one result folder (runs/<dataset>/<NNNN_...>); "
            "give a result's path or drop --minimal"
        )
    kept = []
    for rel, node in tree.walk_files(path):
        is_final_model = len(rel) >= 2 and rel[0] == "models" and rel[1].startswith("final_")
        is_evidence = rel[0] == "predictions"  # what an importer recomputes scores from
        if rel in (("pipeline.yaml",), ("scores.yaml",)) or is_final_model or is_evidence:
            kept.append((rel, node))
    return kept


def _provenance(ws, tree, path, level, results, command) -> dict[str, Any]:
    """EXPORT.yaml: one entry per result, and each dataset once (with its wavelength
    columns, which `predict` checks new spectra against)."""
    from n4afs_core.pipelines.versions import library_versions

    root = path[-1] if path else "workspace"
    datasets = {str(d.dataset_id): d for d in ws.datasets()}
    runs = {r.run_id: r for r in ws.runs()}
    entries = []
    for result, folder in results:
        dataset = datasets[str(result.dataset_id)]
        entries.append(
            {
                "path": "/".join((root, *folder[len(path) :])),
                "result": result.label,
                "result_id": result.result_id,
                "run": result.run_id,
                "dataset": dataset.name,
                "dataset_id": str(dataset.dataset_id),
                "task": dataset.task,
                "metric": result.metric,
                "score": result.score,
                "config_hash": result.config_hash,
                "target": result.target,
                "targets": dataset.target_names,
                "wavelength_unit": dataset.wavelength_unit,
                "versions_at_fit": runs[result.run_id].options.get("versions", {}),
            }
        )
    used = dict.fromkeys(e["dataset_id"] for e in entries)
    return {
        "format": FORMAT,
        "level": level,
        "exported": "/" + "/".join(path),
        "workspace": str(Path(ws.path).absolute()),
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command or " ".join(sys.argv),
        "versions": library_versions(),
        "results": entries,
        "datasets": {d: _dataset_entry(ws, tree, datasets[d]) for d in used},
    }


def _dataset_entry(ws: Any, tree: Tree, dataset: Any) -> dict[str, Any]:
    features = None
    if dataset.blob_id is not None:
        features = tree.files.spectra(dataset.blob_id).feature_names  # parsed once, cached
    return {
        "name": dataset.name,
        "task": dataset.task,
        "features": features,
        "n_samples": dataset.n_samples,
        "n_features": dataset.n_features,
        "target_stats": dataset.target_stats,
        "wavelength_min": dataset.wavelength_min,
        "wavelength_max": dataset.wavelength_max,
        "source_path": dataset.source_path,
        "source_sha256": dataset.source_sha256,
        "source_size": dataset.source_size,
    }


# -- how it goes out ------------------------------------------------------------------------
def _chunks(tree: Tree, node: Node):
    for offset in range(0, node.size, CHUNK):
        yield tree.read(node, offset, CHUNK)


def _manifest_row(name: str, size: int, digest: str) -> dict[str, Any]:
    return {"path": name, "size": size, "sha256": digest}


class _ZipWriter:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.tmp: Path | None = None

    def __enter__(self) -> _ZipWriter:
        """The zip is written to a new file of its own (created exclusively, like the
        folder writer's: two exports to one path, or a link planted there, cannot meet)."""
        import tempfile

        self.out.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            prefix=f".{self.out.name}.", suffix=".part", dir=self.out.parent
        )
        self.tmp = Path(name)
        self.zip = zipfile.ZipFile(os.fdopen(fd, "w+b"), "w", allowZip64=True)
        return self

    def __exit__(self, kind, value, tb) -> None:
        handle = self.zip.fp
        self.zip.close()
        if handle is not None:
            handle.close()
        if kind is None:
            os.chmod(self.tmp, 0o644)  # mkstemp made it private; a zip is for sharing
            os.replace(self.tmp, self.out)  # a failed export leaves no half zip behind
        else:
            self.tmp.unlink(missing_ok=True)

    def _info(self, name: str, mtime: float) -> zipfile.ZipInfo:
        stamp = datetime.fromtimestamp(max(mtime, 315532800)).timetuple()[:6]  # zip: >= 1980
        info = zipfile.ZipInfo(name, date_time=stamp)
        info.compress_type = (
            zipfile.ZIP_STORED if name.endswith(STORED_SUFFIXES) else zipfile.ZIP_DEFLATED
        )
        info.external_attr = FILE_MODE << 16  # the tree's file mode (n4afs.tree.content)
        return info

    def add(self, entry: Entry, tree: Tree) -> dict[str, Any]:
        hashing = Sha256()
        info = self._info(entry.name, entry.node.mtime)
        with self.zip.open(info, "w", force_zip64=entry.node.size > (1 << 31)) as dst:
            for chunk in hashing.feed(_chunks(tree, entry.node)):
                dst.write(chunk)
        return _manifest_row(entry.name, entry.node.size, hashing.hexdigest())

    def add_bytes(self, name: str, data: bytes) -> dict[str, Any]:
        self.zip.writestr(self._info(name, datetime.now().timestamp()), data)
        return _manifest_row(name, len(data), sha256_hex(data))


class _DirWriter:
    """A plain folder, built as a hidden sibling and renamed into place when complete.

    With `link`, blob files share the store's blocks (`_share`) instead of being copied.
    """

    def __init__(self, out: Path, link: bool, tree: Tree) -> None:
        self.out, self.link, self.tree = Path(os.path.abspath(out)), link, tree
        self.tmp = self.out.with_name(f".{self.out.name}.part-{secrets.token_hex(4)}")

    def __enter__(self) -> _DirWriter:
        _refuse_non_empty(self.out)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir()
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            try:
                os.rename(self.tmp, self.out)  # replaces an empty folder, never a full one
            except OSError as exc:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise N4AError(
                    f"{self.out} could not be written ({exc.strerror}): "
                    "export into a new or empty folder"
                ) from exc
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)  # a failed export leaves nothing

    def _target(self, name: str) -> Path:
        """Where `name` goes; refused unless it resolves inside the folder being built."""
        target = self.tmp / name
        root = os.path.realpath(self.tmp)
        if not os.path.realpath(target).startswith(root + os.sep):
            raise N4AError(f"refusing to export {name!r}: it resolves outside {self.out}")
        return target

    def add(self, entry: Entry, tree: Tree) -> dict[str, Any]:
        target = self._target(entry.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        content = entry.node.content
        if self.link and isinstance(content, BlobContent):
            self._share(entry.node, content, target)
            return _manifest_row(entry.name, content.size, content.blob_id)
        hashing = Sha256()
        with open(target, "wb") as dst:
            for chunk in hashing.feed(_chunks(tree, entry.node)):
                dst.write(chunk)
        os.utime(target, (entry.node.mtime, entry.node.mtime))
        return _manifest_row(entry.name, entry.node.size, hashing.hexdigest())

    def _share(self, node: Node, content: BlobContent, target: Path) -> None:
        """The object's bytes without copying them, read-only (0444): a reflink where the
        file system clones (a separate file), else a hard link (the object itself: never
        chmod or edit it), else a copy. The object is hash-checked first, so a missing or
        corrupt one fails the export instead of being handed out."""
        self.tree.check(node)
        source = self.tree.ws.store.path_of(content.blob_id)
        if _reflink(source, target):
            return
        try:
            os.link(source, target)
        except OSError:  # another file system: a copy, still read-only
            shutil.copyfile(source, target)
            os.chmod(target, 0o444)

    def add_bytes(self, name: str, data: bytes) -> dict[str, Any]:
        self._target(name).write_bytes(data)
        return _manifest_row(name, len(data), sha256_hex(data))


def _refuse_non_empty(out: Path) -> None:
    if out.is_dir() and any(out.iterdir()) or out.exists() and not out.is_dir():
        raise N4AError(f"{out} is not empty: export into a new or empty folder")


def _reflink(source: str | Path, target: Path) -> bool:
    """Clone `source` into a new read-only `target` (Linux FICLONE). False, with nothing
    left at `target`, where the file system cannot (ext4, tmpfs, across file systems) or
    the platform has no `fcntl` (Windows: a hard link is made instead)."""
    try:
        import fcntl
    except ImportError:
        return False
    src_fd = os.open(source, os.O_RDONLY)
    try:
        dst_fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            fcntl.ioctl(dst_fd, FICLONE, src_fd)
        except OSError as exc:
            os.close(dst_fd)
            os.unlink(target)
            if exc.errno in _NO_REFLINK:
                return False
            raise
        os.close(dst_fd)
    finally:
        os.close(src_fd)
    return True


_NO_REFLINK = {errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EBADF}


def check_name(name: str) -> None:
    """Refuse a bundle path that could land outside the export's target or that no file
    system accepts: absolute, an empty, `.` or `..` part, a NUL, a part over 255 bytes."""
    for part in name.split("/"):
        if part in ("", ".", "..") or "\0" in part:
            raise N4AError(f"refusing to export {name!r}: {part!r} is not a file name")
        if len(os.fsencode(part)) > NAME_MAX:
            raise N4AError(
                f"refusing to export {name[:60]!r}...: a name part is "
                f"{len(os.fsencode(part))} bytes (at most {NAME_MAX})"
            )
