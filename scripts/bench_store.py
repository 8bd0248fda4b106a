"""Benchmark the n4afs blob store against plain file writes and reads of the same bytes.

What is compared, side by side in one run and on one filesystem:

- writes: `open(path, "wb").write(data)` into a plain directory, the same followed by
  `os.fsync`, and `BlobStore.put(data)` (temporary file, sha256, fsync, rename into a shard
  directory, fsync of that directory, dedup check). The two plain variants show what durability
  alone costs; the gap between "plain write + fsync" and `put` is what n4afs adds on top.
- reads: `open(path, "rb").read()` against `BlobStore.read(id)` (sha256-verified) and
  `BlobStore.read(id, verify=False)`. Reads are warm: the objects were just written, so they
  come from the page cache. That is the common case for a workspace being worked on.
- a component row, sha256 of the bytes with no I/O, to show how much of the put and verified
  read overhead is hashing.
- dedup: the medium objects are put a second time into the store that already holds them; the
  store should grow by zero bytes (the temporary is still written, fsynced and dropped).

Workloads mirror what a workspace stores: many small objects (joblib'd transformers, YAML),
medium ones (prediction Parquet) and a few large ones (a big model). Bytes come from
`os.urandom` so nothing dedups by accident. Each measurement is repeated `--repeats` times,
variants interleaved within a repeat so machine noise hits them alike, and the median is
reported with throughput and the time ratio to the plain baseline.

Run from a checkout: `.venv/bin/python scripts/bench_store.py [--repeats 5] [--scale 1.0]`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from n4afs_core.store.blobstore import BlobStore

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class Workload:
    name: str
    count: int
    size: int
    dedup: bool = False

    @property
    def total_bytes(self) -> int:
        return self.count * self.size


@dataclass
class Row:
    """One measured operation: its per-repeat times and what it is compared against."""

    workload: Workload
    operation: str
    times: list[float] = field(default_factory=list)
    vs_plain: str | None = None  # operation name of the baseline for the "× plain" column
    vs_fsync: str | None = None  # operation name of the baseline for the "× plain+fsync" column
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.times)


# -- workloads ------------------------------------------------------------------------------
def make_workloads(scale: float) -> list[Workload]:
    def n(count: int) -> int:
        return max(1, round(count * scale))

    return [
        Workload("small", n(2000), 4 * KIB),
        Workload("medium", n(200), 256 * KIB, dedup=True),
        Workload("large", n(5), 64 * MIB),
    ]


def make_payloads(workload: Workload) -> list[bytes]:
    return [os.urandom(workload.size) for _ in range(workload.count)]


# -- the operations being timed -----------------------------------------------------------
def plain_write(directory: Path, payloads: list[bytes], fsync: bool) -> list[Path]:
    paths = []
    for i, data in enumerate(payloads):
        path = directory / f"obj-{i:06d}"
        with open(path, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        paths.append(path)
    return paths


def store_put(store: BlobStore, payloads: list[bytes]) -> list[str]:
    return [store.put(data) for data in payloads]


def plain_read(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        with open(path, "rb") as f:
            total += len(f.read())
    return total


def store_read(store: BlobStore, ids: list[str], verify: bool) -> int:
    return sum(len(store.read(blob_id, verify=verify)) for blob_id in ids)


def hash_only(payloads: list[bytes]) -> int:
    return sum(len(hashlib.sha256(data).hexdigest()) for data in payloads)


# -- helpers ------------------------------------------------------------------------------
def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Run fn after flushing earlier writeback, so one step's dirty pages don't bill the next."""
    os.sync()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def fresh_dir(parent: Path, name: str) -> Path:
    path = parent / name
    if path.exists():
        shutil.rmtree(path)  # read-only objects go too: unlinking needs only the dir's mode
    path.mkdir()
    return path


def tree_bytes(root: Path) -> tuple[int, int]:
    """(files, bytes) under root, counting temporaries too: what a dedup put leaves behind."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(dirpath, name)).st_size
    return files, size


def filesystem_of(path: Path) -> str:
    """Filesystem type and mount point holding path, from /proc/mounts (Linux)."""
    mount = Path(os.path.realpath(path))
    while not os.path.ismount(mount):
        mount = mount.parent
    fstype = "unknown"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] == str(mount):
                    fstype = parts[2]  # the last matching line is the visible mount
    except OSError:
        pass
    return f"{fstype} (mounted on {mount})"


def progress(message: str) -> None:
    print(message, flush=True)


# -- one workload -------------------------------------------------------------------------
def bench_workload(workload: Workload, workdir: Path, repeats: int) -> list[Row]:
    payloads = make_payloads(workload)
    rows = {
        "plain write": Row(workload, "plain write (no fsync)"),
        "plain write+fsync": Row(workload, "plain write + fsync", vs_plain="plain write"),
        "n4afs put": Row(
            workload, "n4afs put", vs_plain="plain write", vs_fsync="plain write+fsync"
        ),
        "sha256": Row(workload, "sha256 only (component, no I/O)", vs_fsync="plain write+fsync"),
    }
    if workload.dedup:
        rows["dedup"] = Row(
            workload, "n4afs re-put same bytes (dedup)", vs_fsync="plain write+fsync"
        )
    rows |= {
        "plain read": Row(workload, "plain read (warm)"),
        "n4afs read noverify": Row(
            workload, "n4afs read, verify=False (warm)", vs_plain="plain read"
        ),
        "n4afs read": Row(workload, "n4afs read, verified (warm)", vs_plain="plain read"),
    }
    added: list[tuple[int, int]] = []
    for rep in range(1, repeats + 1):
        store, ids, paths = _bench_writes(workload, workdir, payloads, rows, added, rep)
        _bench_reads(store, ids, paths, rows, rep)
        progress(
            f"  {workload.name} repeat {rep}/{repeats}: "
            + ", ".join(f"{key} {row.times[-1]:.3f}s" for key, row in rows.items())
        )
    if added:
        files, size = max(added)
        rows["dedup"].note = f"store grew by {files} files / {size} bytes (max over repeats)"
    _resolve_baselines(rows)
    return list(rows.values())


def rotated(items: list, shift: int) -> list:
    """The same items starting at position shift, so no variant always runs first."""
    shift %= len(items)
    return items[shift:] + items[:shift]


def _bench_writes(
    workload: Workload,
    workdir: Path,
    payloads: list[bytes],
    rows: dict[str, Row],
    added: list[tuple[int, int]],
    rep: int,
) -> tuple[BlobStore, list[str], list[Path]]:
    nosync_dir = fresh_dir(workdir, "plain-nosync")
    sync_dir = fresh_dir(workdir, "plain-fsync")
    store = BlobStore(fresh_dir(workdir, "store"))
    store.create()
    results: dict[str, object] = {}
    variants: list[tuple[str, Callable[[], object]]] = [
        ("plain write", lambda: plain_write(nosync_dir, payloads, fsync=False)),
        ("plain write+fsync", lambda: plain_write(sync_dir, payloads, fsync=True)),
        ("n4afs put", lambda: store_put(store, payloads)),
        ("sha256", lambda: hash_only(payloads)),
    ]
    for key, fn in rotated(variants, rep):
        t, results[key] = timed(fn)
        rows[key].times.append(t)
    ids = cast(list[str], results["n4afs put"])
    paths = cast(list[Path], results["plain write+fsync"])

    if workload.dedup:
        before = tree_bytes(store.root)
        t, again = timed(lambda: store_put(store, payloads))
        rows["dedup"].times.append(t)
        after = tree_bytes(store.root)
        if again != ids:
            raise RuntimeError("dedup re-put returned different ids for the same bytes")
        added.append((after[0] - before[0], after[1] - before[1]))
    return store, ids, paths


def _bench_reads(
    store: BlobStore, ids: list[str], paths: list[Path], rows: dict[str, Row], rep: int
) -> None:
    plain_read(paths)  # warm-up pass so every variant reads from the page cache
    store_read(store, ids, verify=False)
    variants: list[tuple[str, Callable[[], object]]] = [
        ("plain read", lambda: plain_read(paths)),
        ("n4afs read noverify", lambda: store_read(store, ids, verify=False)),
        ("n4afs read", lambda: store_read(store, ids, verify=True)),
    ]
    for key, fn in rotated(variants, rep):
        t, _ = timed(fn)
        rows[key].times.append(t)


def _resolve_baselines(rows: dict[str, Row]) -> None:
    """Turn baseline keys into the baselines' display names (kept as keys until now)."""
    for row in rows.values():
        row.vs_plain = rows[row.vs_plain].operation if row.vs_plain else None
        row.vs_fsync = rows[row.vs_fsync].operation if row.vs_fsync else None


# -- reporting ----------------------------------------------------------------------------
def ratio(row: Row, baseline: str | None, all_rows: list[Row]) -> str:
    if baseline is None:
        return "—"
    base = next(r for r in all_rows if r.workload is row.workload and r.operation == baseline)
    return f"{row.median / base.median:.2f}×"


def human_size(size: int) -> str:
    return f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"


def markdown_table(rows: list[Row]) -> str:
    lines = [
        "| workload | operation | median s | MB/s | objects/s | × plain | × plain+fsync |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        w = row.workload
        label = f"{w.name} ({w.count} × {human_size(w.size)})"
        mbps = w.total_bytes / row.median / 1e6
        objs = w.count / row.median
        lines.append(
            f"| {label} | {row.operation} | {row.median:.4f} | {mbps:,.0f} | {objs:,.0f} "
            f"| {ratio(row, row.vs_plain, rows)} | {ratio(row, row.vs_fsync, rows)} |"
        )
    notes = [f"- {r.workload.name}, {r.operation}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


# -- entry point ----------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply object counts (0.1 = smoke run)"
    )
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="parent directory for the scratch dir (default: the current directory, so the "
        "benchmark runs on the filesystem you work on, not on a tmpfs /tmp)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.scale <= 0:
        parser.error("--repeats must be >= 1 and --scale > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    parent = args.workdir or Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=".bench_store-", dir=parent))
    progress(f"scratch dir {workdir.resolve()} on {filesystem_of(workdir)}")
    progress(f"repeats {args.repeats}, scale {args.scale}; reads are warm (page cache)")
    start = time.perf_counter()
    rows: list[Row] = []
    try:
        for workload in make_workloads(args.scale):
            progress(f"{workload.name}: {workload.count} × {human_size(workload.size)}")
            rows += bench_workload(workload, workdir, args.repeats)
    finally:
        shutil.rmtree(workdir)
    table = markdown_table(rows)
    progress(f"\ndone in {time.perf_counter() - start:.0f}s; medians of {args.repeats}:\n")
    print(table)
    if args.out:
        args.out.write_text(table)
        progress(f"table written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
