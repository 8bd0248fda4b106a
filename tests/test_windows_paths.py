"""`n4a://` paths name local folders on Windows as on POSIX (#19: paths built for the
platform): a drive letter is a drive, not a folder under "/"."""

from __future__ import annotations

from pathlib import PureWindowsPath

import pytest

from n4afs.surfaces.fs import local_path


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("C:", "Users", "ana", "ws"), r"C:\Users\ana\ws"),
        (("d:", "nirs"), r"d:\nirs"),
        (("C:",), "C:\\"),
        (("server", "share", "ws"), r"\server\share\ws"),
    ],
)
def test_a_windows_drive_is_a_drive_not_a_folder_under_the_root(parts, expected):
    assert local_path(parts, windows=True) == expected
    assert PureWindowsPath(local_path(parts, windows=True)).parts[0] != "\\C:"


def test_posix_paths_stay_under_the_root():
    assert local_path(("home", "ana", "ws"), windows=False) == "/home/ana/ws"
    assert local_path(("C:", "x"), windows=False) == "/C:/x"  # a folder named C: on POSIX
