"""Benchmark `n4afs export` of a large folder against `zip -r` of the same folder on disk.

One run builds a real workspace, then compares, on the same folder (`runs/<dataset>`: every
result of the dataset, with its models, predictions, charts and YAML):

- `zip -r -q OUT.zip DIR` (Info-ZIP, default compression level) of the folder MATERIALIZED
  on disk first: the tree walked and every file written (blob files as hard links to the
  store's objects, rendered and composed files as bytes). Materializing is timed once and
  reported apart; `zip -r` only pays reading and compressing.
- `n4afs export runs/<dataset> -o OUT.zip`, COLD: the real CLI in a fresh process (imports,
  index snapshot, every YAML/CSV/PNG rendered, zip written; PNG stored, the rest deflated).
- `n4afs export` to a zip, WARM: in this process, through a tree whose renders are already
  memoized (the one used to materialize). `export()` builds a new `Tree` per call, so a plain
  second `ws.export(...)` is NOT warm (see the render-count check); the warm variants hand
  `export()` the warmed tree by swapping `n4afs.share.export.Tree` for the duration of the call.
- `-o DIR/` (a plain folder, every byte copied) and `-o DIR/ --link` (blob files hard-linked
  to the store), both warm like the warm zip.

Every time is the median of `--repeats` repeats (default 3), the variants' order rotated per
repeat, `gc.collect()` and `os.sync()` before each timed step, no variant fsyncs. Sizes: zip
file bytes; for folders the apparent bytes (sum of file sizes) and the bytes newly written
(files with a single link).

Checks, on the first repeat's outputs: every zip and folder holds the same set of files as
the `zip -r` zip with identical bytes (sha256 of every member, decompressed with Python's
zipfile), apart from the EXPORT.yaml and MANIFEST.yaml n4afs adds at the top; MANIFEST.yaml
lists the right size and sha256 of every file; `unzip -tq` accepts the n4afs zips. A mismatch is
printed loudly and makes the exit status 1.

Also measured once: EXPORT.yaml alone (`export._provenance`, then `renderers.yaml_bytes`; the
same data through libyaml's CSafeDumper for comparison), and how many files two `ws.export`
calls of one result folder in one process render (the same count twice = no reuse).

Memory: the peak RSS (`ru_maxrss`, read by a small wrapper process that runs the command as
its child: Linux carries the peak RSS across fork + exec, so a direct child of this large
process would report at least this process's RSS) of every cold export process and `zip -r`,
against two other fresh export processes: one small PLS result (what imports and one result
cost) and the random-forest result folder alone (the biggest files), to show whether files
are streamed (peak far below the biggest file + baseline) or held whole.

Workspace (built before anything is timed; OUR OWN synthetic NIRS-like set,
`scripts/make_synthetic_nirs.py`, seed 0, 1000 x 1000 by default): the reference sweep SNV /
MSC / Savitzky-Golay 1st derivative x PLS 1..15 (45 results, 5-fold CV + final refit), plus
one SNV + random forest result (`--rf-trees`, default 200, `max_features="sqrt"` so fitting
stays short; fully grown trees make pickles of ~15-18 MB each; 0 leaves it out).
`--quick`: 200 x 300, PLS 1..5 (15 results), 20 trees, 1 repeat.

Scratch directories live under the repository root (`.bench_export-*`, the same filesystem
a workspace would be on) and are removed at the end.

Run from a checkout: `.venv/bin/python scripts/bench_export.py [--repeats 3] [--quick]
[--rf-trees 200] [--out FILE]`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_synthetic_nirs import make as make_synthetic  # noqa: E402

DATASET = "synthetic"
SAVGOL = {"deriv": 1, "window_length": 15, "polyorder": 2}
ADDED = ("EXPORT.yaml", "MANIFEST.yaml")  # what n4afs adds at the top of a bundle
N4AFS = str(Path(sys.executable).parent / "n4afs")


START = time.perf_counter()


def log(text: str) -> None:
    print(f"[{time.perf_counter() - START:5.0f} s] {text}", file=sys.stderr, flush=True)


def human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n:.2f} GB"


# -- the workspace ------------------------------------------------------------------------
def build_workspace(path: Path, n: int, p: int, max_components: int, rf_trees: int) -> Any:
    from n4afs.workspace import Workspace

    X, y, wavelengths = make_synthetic(n, p, seed=0)
    ws = Workspace(path)
    ws.add_arrays(X, y, name=DATASET, feature_names=wavelengths, wavelength_unit="nm")
    pls = [
        {"_or_": ["snv", "msc", {"savgol": SAVGOL}]},
        {"pls": {"n_components": {"_range_": [1, max_components]}}},
    ]
    started = time.perf_counter()
    ws.run(templates=[pls], datasets=[DATASET], cv=5, name="pls")
    log(f"  PLS sweep: {3 * max_components} results in {time.perf_counter() - started:.1f} s")
    if rf_trees:
        rf = {"rf": {"n_estimators": rf_trees, "random_state": 0, "max_features": "sqrt"}}
        started = time.perf_counter()
        ws.run(templates=[["snv", rf]], datasets=[DATASET], cv=5, name="rf")
        log(f"  RF ({rf_trees} trees): 1 result in {time.perf_counter() - started:.1f} s")
    return ws


def materialize(tree: Any, path: tuple[str, ...], dest: Path) -> dict[str, Any]:
    """Write every file of the folder under `dest`: blobs hard-linked, the rest as bytes."""
    from n4afs.tree.content import BlobContent

    files = tree.walk_files(path)
    biggest = ("", 0)
    total = linked = 0
    for rel, node in files:
        target = dest.joinpath(*rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(node.content, BlobContent):
            source = tree.ws.store.path_of(node.content.blob_id)
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
            linked += node.size
        else:
            with open(target, "wb") as out:
                for offset in range(0, node.size, 1 << 20):
                    out.write(tree.read(node, offset, 1 << 20))
        total += node.size
        if node.size > biggest[1]:
            biggest = ("/".join(rel), node.size)
    return {"files": len(files), "bytes": total, "linked": linked, "biggest": biggest}


# -- measuring ------------------------------------------------------------------------------
def settle() -> None:
    gc.collect()
    os.sync()


# Runs the command as ITS child and reports that child's wall time and peak RSS. Linux carries
# a process's peak RSS across fork + exec, so a child forked straight from this (large)
# process would report at least this process's RSS; a grandchild forked from the small
# wrapper does not.
WRAPPER = (
    "import resource, subprocess, sys, time\n"
    "started = time.perf_counter()\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "seconds = time.perf_counter() - started\n"
    "print(seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(code)\n"
)


def run_child(cmd: list[str], cwd: Path | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes) of one command; raises if it fails."""
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *cmd], cwd=cwd, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr}")
    seconds, maxrss_kib = done.stdout.split()
    return float(seconds), int(maxrss_kib) * 1024


@contextlib.contextmanager
def tree_for_export(tree_factory: Callable[..., Any]):
    """Make `n4afs.share.export.export` use `tree_factory(ws)` instead of `Tree(ws)`."""
    import n4afs.share.export as export_module

    saved = export_module.Tree
    export_module.Tree = tree_factory
    try:
        yield
    finally:
        export_module.Tree = saved


def output_size(path: Path) -> tuple[int, int]:
    """(apparent bytes, bytes newly written): a zip is all new; in a folder, linked files
    (more than one link) are not."""
    if path.is_file():
        size = path.stat().st_size
        return size, size
    apparent = new = 0
    for folder, _, names in os.walk(path):
        for name in names:
            st = os.stat(os.path.join(folder, name))
            apparent += st.st_size
            new += st.st_size if st.st_nlink == 1 else 0
    return apparent, new


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


# -- checks ---------------------------------------------------------------------------------
def _digest(stream) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def zip_contents(path: Path) -> tuple[dict[str, tuple[int, str]], dict[str, int]]:
    """name -> (size, sha256) of every file member; and how many members per method."""
    contents, methods = {}, {}
    with zipfile.ZipFile(path) as bundle:
        for info in bundle.infolist():
            if info.is_dir():
                continue
            with bundle.open(info) as member:
                contents[info.filename] = (info.file_size, _digest(member))
            kind = "stored" if info.compress_type == zipfile.ZIP_STORED else "deflated"
            if info.filename.endswith(".png"):
                kind += " (png)"
            methods[kind] = methods.get(kind, 0) + 1
    return contents, methods


def dir_contents(path: Path) -> dict[str, tuple[int, str]]:
    contents = {}
    for folder, _, names in os.walk(path):
        for name in names:
            full = Path(folder, name)
            with open(full, "rb") as stream:
                contents[full.relative_to(path).as_posix()] = (full.stat().st_size, _digest(stream))
    return contents


def compare(label: str, reference: dict, got: dict, manifest: bytes | None) -> list[str]:
    """Problems of `got` (an n4afs output) against the zip -r reference and its MANIFEST."""
    import yaml

    problems = []
    missing = [k for k in ADDED if k not in got]
    if missing:
        problems.append(f"{label}: no {', '.join(missing)}")
    files = {k: v for k, v in got.items() if k not in ADDED}
    only_ref, only_got = sorted(reference.keys() - files.keys()), sorted(files.keys() - reference)
    if only_ref:
        problems.append(f"{label}: {len(only_ref)} files missing, e.g. {only_ref[:3]}")
    if only_got:
        problems.append(f"{label}: {len(only_got)} extra files, e.g. {only_got[:3]}")
    differ = sorted(k for k in reference.keys() & files.keys() if reference[k] != files[k])
    if differ:
        problems.append(f"{label}: {len(differ)} files with other bytes, e.g. {differ[:3]}")
    if manifest is not None:
        rows = yaml.safe_load(manifest)["files"]
        listed = {row["path"]: (row["size"], row["sha256"]) for row in rows}
        expected = {k: v for k, v in got.items() if k != "MANIFEST.yaml"}
        if listed != expected:
            bad = sorted(
                k for k in listed.keys() | expected.keys() if listed.get(k) != expected.get(k)
            )
            problems.append(f"{label}: MANIFEST.yaml wrong for {len(bad)} files, e.g. {bad[:3]}")
    return problems


def check_outputs(outputs: dict[str, Path]) -> tuple[list[str], list[str]]:
    """Compare every n4afs output of one repeat with the `zip -r` zip: (lines, problems)."""
    lines, problems = [], []
    reference, ref_methods = zip_contents(outputs["zip -r"])
    lines.append(
        f"`zip -r` zip: {len(reference)} files, "
        + ", ".join(f"{n} {k}" for k, n in sorted(ref_methods.items()))
    )
    for key, path in outputs.items():
        if key == "zip -r":
            continue
        if path.suffix == ".zip":
            got, methods = zip_contents(path)
            with zipfile.ZipFile(path) as bundle:
                names = set(bundle.namelist())
                manifest = bundle.read("MANIFEST.yaml") if "MANIFEST.yaml" in names else None
            detail = ", ".join(f"{n} {k}" for k, n in sorted(methods.items()))
        else:
            got = dir_contents(path)
            listing = path / "MANIFEST.yaml"
            manifest = listing.read_bytes() if listing.exists() else None
            detail = "folder"
        found = compare(key, reference, got, manifest)
        problems += found
        n_files = len(got)
        verdict = "same files, identical bytes" if not found else "MISMATCH"
        lines.append(
            f"{key}: {n_files} files ({detail}) — {verdict} vs `zip -r` "
            f"(+{', '.join(ADDED)}); MANIFEST.yaml "
            + ("consistent" if not any("MANIFEST" in f for f in found) else "WRONG")
        )
    for key, path in outputs.items():
        if path.suffix == ".zip" and key != "zip -r":
            test = subprocess.run(["unzip", "-tq", str(path)], capture_output=True, text=True)
            ok = test.returncode == 0
            lines.append(f"`unzip -tq` {key}: {'OK' if ok else 'FAILED'} ({test.stdout.strip()})")
            if not ok:
                problems.append(f"unzip -tq {key}: {test.stdout} {test.stderr}")
    return lines, problems


def render_count_check(ws: Any, folder: str, scratch: Path) -> list[int]:
    """Renders done by each of two `ws.export` calls of one folder in one process."""
    import n4afs.share.export as export_module

    trees: list[Any] = []
    real_tree = export_module.Tree

    def recording(*args: Any, **kwargs: Any) -> Any:
        tree = real_tree(*args, **kwargs)
        trees.append(tree)
        return tree

    with tree_for_export(recording):
        for i in range(2):
            ws.export(folder, scratch / f"twice-{i}.zip")
    for i in range(2):
        (scratch / f"twice-{i}.zip").unlink()
    return [t.memo.renders for t in trees]


# -- the benchmark ----------------------------------------------------------------------------
def measure(ws: Any, tree: Any, scratch: Path, repeats: int) -> dict[str, Any]:
    from n4afs.tree.tree import Tree

    path = ("runs", DATASET)
    mat_root = scratch / "materialized"
    log("materializing runs/<dataset> on disk (renders every file once) ...")
    settle()
    started = time.perf_counter()
    inventory = materialize(tree, path, mat_root / DATASET)
    inventory["seconds"] = time.perf_counter() - started
    log(
        f"  {inventory['files']} files, {human(inventory['bytes'])} "
        f"({human(inventory['linked'])} hard-linked blobs) in {inventory['seconds']:.1f} s; "
        f"biggest {inventory['biggest'][0]} ({human(inventory['biggest'][1])})"
    )

    views = tree.views
    results = views.results_by_dataset[views.datasets[DATASET].dataset_id]
    small = min((r for r in results if r.label.split("_")[1].endswith("pls1")), key=lambda r: r.seq)
    big = [r for r in results if "-rf" in r.label]

    log("render-count check: ws.export of one result folder twice in this process ...")
    renders = render_count_check(ws, f"runs/{DATASET}/{small.label}", scratch)
    log(f"  renders per call: {renders}")

    log("timing EXPORT.yaml provenance alone (export._provenance) ...")
    import yaml

    from n4afs.share import export as export_module
    from n4afs.tree import renderers

    found = export_module._results_below(tree, path)  # noqa: SLF001
    settle()
    started = time.perf_counter()
    provenance = export_module._provenance(ws, tree, path, "default", found, "bench")  # noqa: SLF001
    provenance_s = time.perf_counter() - started
    export_yaml = renderers.yaml_bytes(provenance)
    yaml_s = time.perf_counter() - started - provenance_s
    started = time.perf_counter()
    c_yaml = yaml.dump(
        provenance,
        Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    ).encode("utf-8")
    c_yaml_s = time.perf_counter() - started
    same_yaml = c_yaml == export_yaml
    log(
        f"  gather {provenance_s:.2f} s for {len(found)} results, render {yaml_s:.2f} s "
        f"(libyaml CSafeDumper: {c_yaml_s:.2f} s, same bytes: {same_yaml}); "
        f"EXPORT.yaml {human(len(export_yaml))}"
    )

    def out(key: str, i: int) -> Path:
        name = key.replace(" ", "_").replace("/", "").replace("-", "")
        return scratch / f"{name}-{i}" / (f"{DATASET}.zip" if "zip" in key else "dir")

    def zip_r(i: int) -> tuple[float, int | None]:
        target = out("zip -r", i)
        target.parent.mkdir()
        return run_child(["zip", "-r", "-q", str(target), DATASET], cwd=mat_root)

    def cold(i: int) -> tuple[float, int | None]:
        target = out("n4afs zip cold", i)
        cmd = [N4AFS, "-w", str(ws.path), "export", "/".join(path), "-o", str(target)]
        return run_child(cmd)

    def warm(key: str, link: bool) -> Callable[[int], tuple[float, int | None]]:
        def variant(i: int) -> tuple[float, int | None]:
            target = out(key, i)
            started = time.perf_counter()
            with tree_for_export(lambda *a, **k: tree):
                ws.export("/".join(path), target, link=link)
            return time.perf_counter() - started, None

        return variant

    variants: dict[str, Callable[[int], tuple[float, int | None]]] = {
        "zip -r": zip_r,
        "n4afs zip cold": cold,
        "n4afs zip warm": warm("n4afs zip warm", False),
        "n4afs dir warm": warm("n4afs dir warm", False),
        "n4afs dir link warm": warm("n4afs dir link warm", True),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    sizes: dict[str, tuple[int, int]] = {}
    rss: dict[str, list[int]] = {}
    check_lines: list[str] = []
    problems: list[str] = []
    keys = list(variants)
    for i in range(repeats):
        order = keys[i % len(keys) :] + keys[: i % len(keys)]
        for key in order:
            log(f"repeat {i + 1}/{repeats}: {key} ...")
            settle()
            seconds, peak = variants[key](i)
            times[key].append(seconds)
            if peak is not None:
                rss.setdefault(key, []).append(peak)
            sizes[key] = output_size(out(key, i))
            log(f"  {seconds:.2f} s, {human(sizes[key][0])}")
        if i == 0:
            log("checking that every output holds the same bytes ...")
            check_lines, problems = check_outputs({k: out(k, 0) for k in keys})
            for line in check_lines:
                log("  " + line)
        for key in keys:
            remove(out(key, i).parent)

    log("peak memory of fresh export processes: one small result, the RF result ...")
    probes = {}
    for label, result in [("one PLS result", small)] + [("the RF result", r) for r in big]:
        target = scratch / f"probe-{result.seq}.zip"
        cmd = [N4AFS, "-w", str(ws.path), "export", f"runs/{DATASET}/{result.label}"]
        _, peak = run_child([*cmd, "-o", str(target)])
        sub = Tree(ws)
        biggest = max((n.size for _, n in sub.walk_files(("runs", DATASET, result.label))))
        probes[label] = (result.label, peak, biggest, target.stat().st_size)
        target.unlink()
        log(f"  {label} ({result.label}): maxrss {human(peak)}, biggest file {human(biggest)}")
    return {
        "inventory": inventory,
        "times": times,
        "sizes": sizes,
        "rss": rss,
        "probes": probes,
        "renders": renders,
        "small": small.label,
        "provenance": (provenance_s, yaml_s, c_yaml_s, same_yaml, len(found), len(export_yaml)),
        "checks": check_lines,
        "problems": problems,
    }


LABELS = {
    "zip -r": "`zip -r -q` of the materialized folder",
    "n4afs zip cold": "`n4afs export -o OUT.zip`, cold (fresh CLI process)",
    "n4afs zip warm": "n4afs export to zip, warm (renders memoized)",
    "n4afs dir warm": "n4afs export `-o DIR/`, warm",
    "n4afs dir link warm": "n4afs export `-o DIR/ --link`, warm",
}


def report(r: dict[str, Any]) -> str:
    ref_time = statistics.median(r["times"]["zip -r"])
    ref_size = r["sizes"]["zip -r"][0]
    inv = r["inventory"]
    lines = [
        "| variant | median s | range s | × zip -r time | output bytes | × zip -r bytes |"
        " bytes newly written | peak RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, label in LABELS.items():
        values = r["times"][key]
        median = statistics.median(values)
        apparent, new = r["sizes"][key]
        ratio = "—" if key == "zip -r" else f"{median / ref_time:.2f}×"
        size_ratio = "—" if key == "zip -r" else f"{apparent / ref_size:.2f}×"
        peaks = r["rss"].get(key)
        peak = human(statistics.median(peaks)) if peaks else "(in process)"
        lines.append(
            f"| {label} | {median:.2f} | {min(values):.2f}–{max(values):.2f} | {ratio} | "
            f"{human(apparent)} | {size_ratio} | {human(new)} | {peak} |"
        )
    prov_s, yaml_s, c_yaml_s, same_yaml, n_results, yaml_bytes = r["provenance"]
    notes = [
        "",
        f"- Folder: `runs/{DATASET}`, {inv['files']} files, {human(inv['bytes'])} "
        f"({human(inv['linked'])} of it blob files, the rest rendered YAML/CSV/PNG and composed "
        f"`pipeline.pkl`); biggest file `{inv['biggest'][0]}` ({human(inv['biggest'][1])}). "
        f"Materializing it on disk (walk + render + write, blobs hard-linked) took "
        f"{inv['seconds']:.1f} s once, not included in the `zip -r` row.",
        f"- Render memo across calls: two `ws.export` calls of one result folder "
        f"(`{r['small']}`) in one process rendered {r['renders'][0]} and {r['renders'][1]} "
        "files: each call builds its own `Tree`, so nothing is reused between calls.",
        f"- EXPORT.yaml alone ({n_results} results), paid by every n4afs row: gathering "
        f"(`export._provenance`) {prov_s:.2f} s, rendering (`renderers.yaml_bytes`, PyYAML's "
        f"pure-Python SafeDumper) {yaml_s:.2f} s; {human(yaml_bytes)}. The same data through "
        f"libyaml's CSafeDumper: {c_yaml_s:.2f} s, "
        + ("identical bytes." if same_yaml else "NOT byte-identical (formatting differs)."),
        "- Peak RSS = `ru_maxrss` of the command, measured by a small wrapper process (a "
        "child forked from this large process would inherit its peak).",
    ]
    for label, (result, peak, biggest, zipped) in r["probes"].items():
        notes.append(
            f"- Peak RSS, fresh `n4afs export` of {label} (`{result}`, zip {human(zipped)}): "
            f"{human(peak)}; its biggest file {human(biggest)}."
        )
    notes.append("- Checks (first repeat): " + "; ".join(r["checks"]) + ".")
    if r["problems"]:
        notes.append("- **PROBLEMS:** " + "; ".join(r["problems"]))
    return "\n".join(lines + notes) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None, help="default 3 (1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 x 300, 1 repeat")
    parser.add_argument("--rf-trees", type=int, default=None, help="default 200 (20 quick)")
    parser.add_argument("--out", help="also write the Markdown table to this file")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    n, p, max_components = (200, 300, 5) if args.quick else (1000, 1000, 15)
    rf_trees = args.rf_trees if args.rf_trees is not None else (20 if args.quick else 200)
    if shutil.which("zip") is None or shutil.which("unzip") is None:
        raise SystemExit("needs Info-ZIP `zip` and `unzip` on PATH")

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(dir=ROOT, prefix=".bench_export-"))
    try:
        from n4afs.tree.tree import Tree

        log(f"building a workspace in {scratch}: synthetic {n} × {p} ...")
        ws = build_workspace(scratch / "ws", n, p, max_components, rf_trees)
        results = measure(ws, Tree(ws), scratch, repeats)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    header = (
        f"Synthetic {n} × {p} (ours, seed 0); {3 * max_components} PLS results"
        + (f" + 1 random forest ({rf_trees} trees)" if rf_trees else "")
        + f"; medians of {repeats} repeats; total script wall time "
        f"{time.perf_counter() - started:.0f} s; 1-min load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after.\n\n"
    )
    text = header + report(results)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    if results["problems"]:
        log("!!! n4afs export output differs from the materialized folder: see above !!!")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
