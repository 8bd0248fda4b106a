"""`n4afs serve` (WebDAV) against the FUSE mount and a plain folder, on the same tree.

Windows and macOS users reach the tree through `n4afs serve`; this measures what that costs
against the Linux FUSE mount and against plain files, in one run, on one tree:

1. LISTING: one folder of `--results` / 10 result folders plus the dataset's own files
   (1,005 entries at the default 10,000 results): a PROPFIND `Depth: 1` through WebDAV (every
   entry's name, type, size and mtime), `os.scandir` + `stat` of every entry on the mount and
   on the folder.
2. SMALL FILES: every file of 100 seeded-random result folders of that dataset (`charts/`
   excluded, as in scripts/bench_mount.py: PNGs are rendered on first read; the big blob's
   result excluded), read whole: one GET each through WebDAV, `open().read()` on the mount
   and on the folder.
3. BIG READ: one `--big-mb` MiB blob file (random bytes), read sequentially in 1 MiB pieces
   (through WebDAV: one streamed GET), MB/s.

Sides: `webdav4` (fsspec's WebdavFileSystem in this process: one HTTP/1.1 keep-alive
connection; `ls(detail=True)`, `cat_file`, `open().read(1 MiB)`), `curl` (one curl process
per operation: PROPFIND, then all the GETs of the small files from one config file over one
connection, then the big GET to /dev/null; the process start is in its time), `mount` (the
FUSE mount, `n4afs mount --foreground`) and `folder` (`n4afs export --link` of the dataset
folder: a plain folder on the same ext4 file system, blob files hard links to the store's
objects, so the same page cache), and `floor`: WsgiDAV's own FilesystemProvider serving
that folder in a process of its own, read with webdav4 (scripts/_webdav_floor.py: the same
server library and settings with no n4afs code, so `webdav4 / floor` is n4afs's share and
`floor / mount` the protocol's). The server is `n4afs serve` started in the background,
as a user starts it, on 127.0.0.1 and a free port.

Warm figures: per operation, each side gets an unmeasured first pass (the mount's and the
server's render memo fill, the page cache holds the blobs), then `--repeats` rounds take the
sides in turn, each round starting one side further, so load changes fall on every side
alike. Medians. Every side's answer (entries, bytes) must equal the folder's.

Goals (#19): listings and small-file reads within 3x the FUSE mount's time, the big read at
least 50 % of the mount's MB/s (webdav4 is the side the goal is judged on: curl's figures
include a process start, given beside it).

The workspace is SYNTHETIC BUT REALISTIC IN SHAPE (scripts/_bench_workspace.py, shared with
scripts/bench_tree.py and scripts/bench_mount.py): one real sweep (10 real results on the
fermentation dataset), then CLONED ROWS over 10 datasets (new ids, the same blobs),
`--results` / 10 each, plus one big random blob.

Run: .venv/bin/python scripts/bench_serve.py [--results 10000] [--big-mb 200] [--repeats 5]
     [--out FILE] [--quick] [--keep]
`--quick`: 1,000 results (a 105-entry folder), 20 MiB, 2 repeats (smoke test).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from _bench_workspace import BIG_STEP, CHUNK, add_workspace_arguments, build_workspace  # noqa: E402
from bench_mount import Mount, fmt_time, in_turn, loadavg, log, op_big, op_read, timed  # noqa: E402

SMALL_RESULTS = 100
SEED = 2026
GOALS = {"list": 3.0, "small": 3.0}  # max WebDAV / mount time
BIG_GOAL = 0.5  # min WebDAV MB/s as a fraction of the mount's
SIDES = ("folder", "mount", "webdav4", "curl", "floor")


# -- the operations: the same three on every side ------------------------------------------
def op_list(root: str) -> int:
    """Names, types, sizes and mtimes of a folder's entries: what a PROPFIND answers."""
    with os.scandir(root) as entries:
        return len([(e.name, e.is_dir(), e.stat().st_size, e.stat().st_mtime) for e in entries])


def webdav_ops(
    fs: Any, base: str, small: list[str], big: str, extra: int = 0
) -> dict[str, Callable[[], int]]:
    """`extra`: entries of the served folder that are not the dataset's (an export's own)."""

    def big_read() -> int:
        total = 0
        with fs.open(f"{base}/{big}", "rb", block_size=CHUNK) as f:
            while chunk := f.read(CHUNK):
                total += len(chunk)
        return total

    return {
        "list": lambda: len(fs.ls(base, detail=True)) - extra,
        "small": lambda: sum(len(fs.cat_file(f"{base}/{rel}")) for rel in small),
        "big": big_read,
    }


def curl(*args: str) -> str:
    return subprocess.run(
        ["curl", "-sS", "--fail", *args], check=True, capture_output=True, text=True
    ).stdout


def curl_ops(url: str, small: list[str], big: str, config: Path) -> dict[str, Callable[[], int]]:
    config.write_text(
        "".join(f'url = "{url}{quote(rel)}"\noutput = "/dev/null"\n' for rel in small)
    )

    def listing() -> int:
        answer = curl("-X", "PROPFIND", "-H", "Depth: 1", url)
        return len(list(ElementTree.fromstring(answer).iter("{DAV:}response"))) - 1  # itself

    def small_reads() -> int:
        return sum(map(int, curl("-K", str(config), "-w", "%{size_download}\n").split()))

    def big_read() -> int:
        return int(curl("-o", "/dev/null", "-w", "%{size_download}", url + quote(big)))

    return {"list": listing, "small": small_reads, "big": big_read}


class Floor:
    """scripts/_webdav_floor.py in its own process, as `n4afs serve` runs in its own."""

    def __init__(self, folder: Path, log_path: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/"
        command = [sys.executable, str(REPO / "scripts" / "_webdav_floor.py"), str(folder)]
        with open(log_path, "wb") as out:
            self.proc = subprocess.Popen([*command, str(port)], stdout=out, stderr=out)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=1).close()
                return
            except urllib.error.HTTPError:
                return  # any status is an answer
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the WebDAV floor did not start: {log_path}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


# -- the run ----------------------------------------------------------------------------------
def measure(
    ops: dict[str, dict[str, Callable[[], int]]], repeats: int
) -> tuple[dict[tuple[str, str], list[float]], dict[tuple[str, str], int]]:
    """Per operation: every side's unmeasured first pass (its answer kept for the checks),
    then `repeats` rounds over the sides in turn."""
    seconds: dict[tuple[str, str], list[float]] = {}
    answers: dict[tuple[str, str], int] = {}
    for name in ("list", "small", "big"):
        for side in SIDES:
            answers[side, name] = ops[side][name]()
        for rep in range(repeats):
            for side in in_turn(list(SIDES), rep):
                seconds.setdefault((side, name), []).append(timed(ops[side][name])[0])
        log(f"  {name}: done")
    return seconds, answers


def table(
    seconds: dict[tuple[str, str], list[float]], labels: dict[str, str], big_size: int
) -> tuple[str, dict[str, float]]:
    """The medians per side, WebDAV against the mount, and whether each goal is met."""
    med = {key: statistics.median(values) for key, values in seconds.items()}
    rows = [
        "| operation | folder (export --link) | FUSE mount | webdav4 | curl "
        "| WsgiDAV floor (webdav4) | webdav4 / mount | curl / mount | floor / mount "
        "| webdav4 / floor | goal | met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    ratios: dict[str, float] = {}
    for name in ("list", "small"):
        cells = [fmt_time(med[side, name]) for side in SIDES]
        w, c = med["webdav4", name] / med["mount", name], med["curl", name] / med["mount", name]
        f, wf = med["floor", name] / med["mount", name], med["webdav4", name] / med["floor", name]
        ratios[name] = w
        met = "met" if w <= GOALS[name] else f"NOT met ({w / GOALS[name]:.1f}x over)"
        rows.append(
            f"| {labels[name]} | {' | '.join(cells)} | {w:.2f}x | {c:.2f}x | {f:.2f}x "
            f"| {wf:.2f}x | <= {GOALS[name]:.0f}x | {met} |"
        )
    mbs = {side: big_size / med[side, "big"] / 1e6 for side in SIDES}
    w, c = mbs["webdav4"] / mbs["mount"], mbs["curl"] / mbs["mount"]
    f, wf = mbs["floor"] / mbs["mount"], mbs["webdav4"] / mbs["floor"]
    ratios["big"] = w
    met = "met" if w >= BIG_GOAL else f"NOT met ({w:.0%} of the mount)"
    cells = [f"{mbs[side]:,.0f} MB/s" for side in SIDES]
    rows.append(
        f"| {labels['big']} | {' | '.join(cells)} | {w:.0%} | {c:.0%} | {f:.0%} | {wf:.0%} "
        f"| >= {BIG_GOAL:.0%} | {met} |"
    )
    return "\n".join(rows), ratios


def main() -> int:  # noqa: PLR0915 - one linear script, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_workspace_arguments(parser)
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    if args.quick:
        args.results, args.big_mb, args.repeats = 1_000, 20, 2

    from webdav4.fsspec import WebdavFileSystem

    scratch = Path(tempfile.mkdtemp(prefix=".bench_serve-", dir=REPO))
    os.environ["N4AFS_STATE"] = str(scratch / "state")  # this run's server record only
    ws_dir, mnt = scratch / "ws", scratch / "mnt"
    n4afs = [sys.executable, "-m", "n4afs.cli"]
    mount = Mount([*n4afs, "mount", str(ws_dir), str(mnt), "--foreground"], mnt, scratch / "m.log")
    ws = floor = None
    try:
        info = build_workspace(
            ws_dir, args.results, args.big_mb, scratch, dataset_tag="bench-serve", log=log
        )
        ws = info.ws
        log(f"workspace: {info.summary()}")
        views = ws.tree.views
        by_id = {d.dataset_id: name for name, d in views.datasets.items()}
        labels = {r.result_id: (by_id[r.dataset_id], r.label) for r in views.snapshot.results}
        dataset, big_label = labels[info.big_result_id]  # the listing's folder holds the blob

        started, _ = timed(lambda: ws.export(f"runs/{dataset}", scratch / "plain", link=True))
        folder = scratch / "plain"
        if not (folder / big_label).is_dir():  # the export's root folder, if it makes one
            folder = next(p for p in folder.iterdir() if (p / big_label).is_dir())
        log(f"export --link of runs/{dataset}: {started:.1f} s")
        big_dir = folder / big_label / "models"
        big_model = next(d for d in os.listdir(big_dir) if d.endswith(info.big_model_id))
        big = f"{big_label}/models/{big_model}/{BIG_STEP}.pkl"
        big_size = os.path.getsize(folder / big)
        pool = sorted(lb for ds, lb in labels.values() if ds == dataset and lb != big_label)
        chosen = random.Random(SEED).sample(pool, min(SMALL_RESULTS, len(pool)))
        small: list[str] = []
        for label in chosen:
            for root, dirs, files in os.walk(folder / label):
                dirs[:] = sorted(d for d in dirs if d != "charts")
                rel = os.path.relpath(root, folder)
                small += [f"{rel}/{f}" for f in sorted(files)]
        small_bytes = op_read(str(folder), small)
        n_entries = len(ws.tree.list_dir(("runs", dataset)))
        extra = len({"EXPORT.yaml", "MANIFEST.yaml"} & set(os.listdir(folder)))  # export's
        log(
            f"listing runs/{dataset}: {n_entries:,} entries; small files: {len(small):,} in "
            f"{len(chosen)} result folders ({small_bytes / 1e6:.1f} MB); big: {big} "
            f"({big_size / 2**20:.0f} MiB)"
        )

        served = ws.serve(port=0)  # `n4afs serve` in the background, as a user starts it
        log(f"n4afs serve: {served.url} (PID {served.pid})")
        mount.start()
        log(f"n4afs mount: {mnt} ({mount.started_s:.1f} s to mount)")
        fs = WebdavFileSystem(served.url)
        floor = Floor(folder, scratch / "floor.log")
        log(f"WebDAV floor (WsgiDAV over the folder): {floor.url}")
        base = f"runs/{dataset}"
        m = f"{mnt}/{base}"
        ops = {
            "folder": {
                "list": lambda: op_list(str(folder)) - extra,
                "small": lambda: op_read(str(folder), small),
                "big": lambda: op_big(str(folder / big)),
            },
            "mount": {
                "list": lambda: op_list(m),
                "small": lambda: op_read(m, small),
                "big": lambda: op_big(f"{m}/{big}"),
            },
            "webdav4": webdav_ops(fs, base, small, big),
            "curl": curl_ops(f"{served.url}{quote(base)}/", small, big, scratch / "curl.cfg"),
            "floor": webdav_ops(WebdavFileSystem(floor.url), "", small, big, extra),
        }
        loads = [f"before {loadavg()}"]
        log(f"warm, sides in turns ({', '.join(SIDES)}), {args.repeats} repeats ...")
        seconds, answers = measure(ops, args.repeats)
        loads.append(f"after {loadavg()}")
        want = {"list": n_entries, "small": small_bytes, "big": big_size}
        wrong = {k: v for k, v in answers.items() if v != want[k[1]]}
        if wrong:
            raise SystemExit(f"sides disagree with the folder ({want}): {wrong}")
        tracebacks = sum(
            p.read_text(errors="replace").count("Traceback")
            for p in (ws_dir / "logs" / "serve.log", mount.log_path)
            if p.exists()
        )

        labels_ = {
            "list": f"list `runs/<dataset>` ({n_entries:,} entries; PROPFIND `Depth: 1` / "
            "`scandir` + `stat`)",
            "small": f"read {len(small):,} small files of {len(chosen)} result folders "
            f"({small_bytes / 1e6:.1f} MB; charts/ excluded)",
            "big": f"read a {big_size / 2**20:.0f} MiB blob file, 1 MiB pieces (MB/s; "
            "ratios: % of the mount's MB/s)",
        }
        text, _ = table(seconds, labels_, big_size)
        c = info.counts
        notes = [
            f"Workspace: {c['results']:,} results over {c['datasets']} datasets, {info.n_real} "
            f"real and the rest CLONED rows (synthetic; same blobs), plus one {args.big_mb} MiB "
            "random blob.",
            f"Medians of {args.repeats} warm repeats, the sides in turns (each round starting "
            "with the next side), after one unmeasured pass per side.",
            "`folder`: `n4afs export --link` of the dataset folder (hard links to the store's "
            f"objects; {started:.0f} s to export). `curl`: one process per operation, its start "
            "included; small files: all GETs from one config file (one connection).",
            f"Logs of the server and the mount: {tracebacks} tracebacks. Load average "
            f"(1 / 5 / 15 min, {os.cpu_count()} CPUs): " + "; ".join(loads) + ".",
        ]
        text += "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
        print("\n" + text)
        if args.out:
            args.out.write_text(text)
        return 0
    finally:
        mount.stop()
        if floor is not None:
            floor.stop()
        if ws is not None and (scratch / "state" / "servers").is_dir():
            try:
                ws.stop_serving()
            except Exception as exc:  # noqa: BLE001 - cleaning up: say it, go on
                log(f"stopping the server: {exc}")
        if args.keep:
            log(f"kept {scratch}")
        else:
            subprocess.run(["rm", "-rf", "--one-file-system", str(scratch)], check=False)
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
