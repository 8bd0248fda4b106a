"""First contact: what a new user sees and types first."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _users_day_block() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## A user's day") :]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    return [line.split("  #")[0].rstrip() for line in block.group(1).splitlines()]


def test_the_readmes_first_commands_find_n4afs_in_a_fresh_shell(tmp_path):
    lines = _users_day_block()
    first = lines[: next(i for i, line in enumerate(lines) if line.startswith("n4afs init")) + 1]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    script = "\n".join(first)
    out = subprocess.run(
        ["bash", "-euc", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "nirs-ws").is_dir()


def test_the_demos_first_line_says_what_it_does():
    demo = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "demo.sh")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ},
    )
    try:
        first = demo.stdout.readline()
    finally:
        os.killpg(demo.pid, signal.SIGTERM)
        demo.wait(timeout=60)
    assert first.startswith("n4afs demo: set up this machine, sweep real NIRS spectra")


def _demo_cleanup(cwd: Path, mnt: str = "demo-mount") -> subprocess.CompletedProcess:
    """The demo's clean-up of a previous mount, run in `cwd` with umount replaced by an echo."""
    script = (ROOT / "scripts" / "demo.sh").read_text(encoding="utf-8")
    start = script.index("if awk")
    cleanup = script[start : script.index("\nfi\n", start) + 4]
    setup = f'mnt={mnt}\nn4afs="echo would-umount"\n'
    return subprocess.run(
        ["bash", "-euc", setup + cleanup], cwd=cwd, capture_output=True, text=True, timeout=30
    )


def test_the_demo_leaves_alone_a_mount_point_that_is_not_mounted(tmp_path):
    fresh = _demo_cleanup(tmp_path)  # a fresh clone: no demo-mount at all
    (tmp_path / "demo-mount").mkdir()
    unmounted = _demo_cleanup(tmp_path)  # a folder left after `n4afs umount`
    for out in (fresh, unmounted):
        assert out.returncode == 0 and out.stdout == "" and out.stderr == ""


def test_the_demo_unmounts_what_the_mount_table_holds_at_its_mount_point():
    points = [Path(line.split()[1]) for line in Path("/proc/mounts").read_text().splitlines()]
    point = next(p for p in points if p.parent != Path("/") and " " not in str(p))
    out = _demo_cleanup(point.parent, point.name)  # a mounted folder stands for demo-mount
    assert out.returncode == 0 and out.stdout == f"would-umount umount {point.name}\n"
