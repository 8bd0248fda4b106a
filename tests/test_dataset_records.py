"""A dataset with roles, metadata, a group, a note and user keys, as the workspace stores it
and the tree shows it (issue #18); and the content id of a dataset without them unchanged."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import yaml
from n4afs_core.data import datasets
from n4afs_core.store.ids import sha256_hex

from tests.cli_process import cli
from tests.conftest import write_csv
from tests.dataset_files import plain_csv, wheat_columns

REPO = Path(__file__).resolve().parents[1]
# The last commit before datasets had metadata: ids computed by its code are the ids every
# workspace made before holds, and must stay what n4afs computes for the same data.
BEFORE_METADATA = "c4846d0a7f264f794d245821a63059ef5dc73b5e"


@pytest.fixture(scope="module")
def wheat():
    return wheat_columns()


def grouped(wheat):
    header, rows = wheat
    header = [header[0], "sample_no", *header[1:]]
    return header, [[row[0], i // 3 + 1, *row[1:]] for i, row in enumerate(rows)]


def old_datasets_module() -> types.ModuleType:
    """core/datasets.py as it was at BEFORE_METADATA, loaded under another name (its one
    engine import that has moved since, `n4afs_core.ids`, read from where it lives now)."""
    done = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{BEFORE_METADATA}:core/datasets.py"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(f"cannot read the old core/datasets.py from git: {done.stderr.strip()}")
    source = done.stdout.replace("from n4afs_core.ids import", "from n4afs_core.store.ids import")
    spec = importlib.util.spec_from_loader("n4afs_old_datasets", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules["n4afs_old_datasets"] = module  # dataclasses look their module up
    try:
        exec(compile(source, "old_datasets.py", "exec"), module.__dict__)
    finally:
        del sys.modules["n4afs_old_datasets"]
    return module


def test_content_id_without_metadata_is_unchanged(tmp_path):
    old = old_datasets_module()

    def both(load) -> tuple[str, str]:
        return (
            sha256_hex(old.to_parquet_bytes(load(old))),
            sha256_hex(datasets.to_parquet_bytes(load(datasets))),
        )

    for spec in ("chemotools:coffee", "chemotools:fermentation"):
        old_id, new_id = both(lambda m, spec=spec: m.load_chemotools(spec))
        assert old_id == new_id, spec
    plain = write_csv(
        tmp_path / "p.csv", "sample_id,protein,1100,1102\nA,12.5,0.1,0.2\nB,13,0.3,0.1\n"
    )
    old_id, new_id = both(lambda m: m.load_csv(plain))
    assert old_id == new_id
    semicolon = write_csv(
        tmp_path / "s.csv", "id;protein;1100;1102\nA;12,5;0,1;0,2\nB;13;0,3;0,1\n"
    )
    old_id, new_id = both(lambda m: m.load_csv(semicolon))
    assert old_id == new_id


def test_dataset_yaml_and_metadata_csv_show_the_roles(ws, tmp_path, wheat):
    path = plain_csv(tmp_path / "wheat.csv", *grouped(wheat))
    info = ws.add_dataset(
        path,
        targets=["protein"],
        ignore=["moisture"],
        note="harvest 2025, FOSS DS2500",
        keys={"instrument": "DS2500", "site": "Reims"},
    )
    assert info.note == "harvest 2025, FOSS DS2500"
    assert info.keys == {"instrument": "DS2500", "site": "Reims"}
    tree = ws.tree
    doc = yaml.safe_load(tree.read(tree.lookup(("datasets", "wheat", "DATASET.yaml"))))
    assert doc["targets"] == ["protein"]
    assert doc["note"] == "harvest 2025, FOSS DS2500"
    assert doc["keys"] == {"instrument": "DS2500", "site": "Reims"}
    assert doc["columns"] == {
        "sample_id": "sample_id",
        "targets": ["protein"],
        "metadata": {"sample_no": "integer", "operator": "text"},
        "group": "sample_no",
        "ignored": ["moisture"],
        "spectra": 105,
    }
    names = set(tree.list_dir(("datasets", "wheat")))
    assert names == {"DATASET.yaml", "spectra.csv", "targets.csv", "metadata.csv"}
    node = tree.lookup(("datasets", "wheat", "metadata.csv"))
    text = tree.read(node).decode()
    assert node.size == len(text.encode())
    lines = text.splitlines()
    assert lines[0] == "sample_id,sample_no,operator"
    assert lines[1] == "W001,1,ana" and lines[4] == "W004,2,ana"
    spectra_header = tree.read(tree.lookup(("datasets", "wheat", "spectra.csv"))).decode()
    assert spectra_header.splitlines()[0].split(",")[1:] == wheat[0][4:]


def test_not_chosen_references_are_said_to_be_metadata(ws, tmp_path, wheat):
    ws.add_dataset(plain_csv(tmp_path / "wheat.csv", *wheat), targets=["moisture"])
    tree = ws.tree
    doc = yaml.safe_load(tree.read(tree.lookup(("datasets", "wheat", "DATASET.yaml"))))
    assert doc["wavelengths"]["min"] == 428
    assert doc["columns"]["metadata"] == {"protein": "number", "operator": "text"}
    assert "protein" in doc["columns"]["not_targets"]


def test_a_dataset_without_metadata_has_no_metadata_csv(ws):
    ws.add_dataset("chemotools:fermentation")
    names = set(ws.tree.list_dir(("datasets", "fermentation")))
    assert names == {"DATASET.yaml", "spectra.csv", "targets.csv"}


def test_same_content_twice_keeps_the_first_note(ws, tmp_path, wheat):
    path = plain_csv(tmp_path / "wheat.csv", *wheat)
    ws.add_dataset(path, note="first", keys={"instrument": "DS2500"})
    admitted = ws.admit_dataset(path, name="wheat2", note="second", keys={"site": "x"})
    assert admitted.info.note == "first" and admitted.info.keys == {"instrument": "DS2500"}
    assert "note and keys of the first add are kept" in admitted.note


def test_cli_add_with_roles_note_and_keys(tmp_path, wheat):
    ws = tmp_path / "ws"
    path = plain_csv(tmp_path / "wheat.csv", *grouped(wheat))
    done = cli(
        "-w", str(ws), "datasets", "add", str(path),
        "--target", "protein", "--target", "moisture", "--meta", "operator",
        "--group", "sample_no", "--id", "sample_id",
        "--note", "harvest 2025", "--set", "instrument=DS2500", "--set", "site=Reims",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "targets protein, moisture" in done.stdout
    assert "metadata sample_no (group), operator" in done.stdout
    from n4afs.workspace import Workspace

    info = Workspace(ws).dataset("wheat")
    assert info.keys == {"instrument": "DS2500", "site": "Reims"} and info.note == "harvest 2025"
    bad = cli("-w", str(ws), "datasets", "add", str(path), "--set", "instrument")
    assert bad.returncode == 2 and "--set KEY=VALUE" in bad.stderr


def test_cli_ambiguous_file_fails_with_the_table_and_stores_nothing(tmp_path):
    ws = tmp_path / "ws"
    text = "sample_id,origin,operator,1100,1102\nA,Brasil,ana,0.1,0.2\nB,Vietnam,bob,0.3,0.1\n"
    done = cli("-w", str(ws), "datasets", "add", str(write_csv(tmp_path / "c.csv", text)))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "--target origin" in done.stderr and "--meta operator" in done.stderr
    from n4afs.workspace import Workspace

    assert Workspace(ws).datasets() == []
    assert [p for p in (ws / "objects").rglob("*") if p.is_file()] == []


def test_cli_joined_files_and_xlsx(tmp_path, wheat):
    from tests.dataset_files import german_csv, xlsx

    ws = tmp_path / "ws"
    header, rows = wheat
    spectra = plain_csv(
        tmp_path / "X.csv", [header[0], *header[4:]], [[r[0], *r[4:]] for r in rows]
    )
    refs = plain_csv(tmp_path / "Y.csv", header[:4], [r[:4] for r in rows])
    joined = cli(
        "-w", str(ws), "datasets", "add", "--spectra", str(spectra), "--targets", str(refs),
        "--on", "sample_id", "--name", "wheat",
    )  # fmt: skip
    assert joined.returncode == 0, joined.stderr
    book = xlsx(tmp_path / "wheat.xlsx", *wheat, sheet="Spectra")
    added = cli("-w", str(ws), "datasets", "add", str(book), "--sheet", "Spectra")
    assert added.returncode == 0, added.stderr
    assert "same content as dataset 'wheat'" in added.stdout
    german = german_csv(tmp_path / "wheat_de.csv", *wheat)
    added = cli("-w", str(ws), "datasets", "add", str(german))
    assert "same content as dataset 'wheat'" in added.stdout


def test_a_bundle_with_data_brings_the_metadata_back(tmp_path, wheat):
    """Exported `--with-data`, a dataset's metadata.csv (typed by its DATASET.yaml) rebuilds
    the same content (`same_content`; the id may differ, as for any CSV dataset: the bundle
    names the wavelength unit the CSV left unsaid)."""
    from n4afs.share.importer import import_bundle
    from n4afs.workspace import Workspace

    origin = Workspace(tmp_path / "origin")
    header, rows = grouped(wheat)
    rows[5][4] = ""  # a gap in a number metadata column
    path = plain_csv(tmp_path / "wheat.csv", header, rows)
    info = origin.add_dataset(path, targets=["protein"])
    assert info.columns["metadata"] == {"sample_no": "integer", "moisture": "number"} | {
        "operator": "text"
    }
    origin.run(templates=[["snv", {"pls": {"n_components": 2}}]], datasets=["wheat"], cv=3)
    (result,) = origin.results("wheat")
    bundle = tmp_path / "bundle.zip"
    origin.export(f"runs/wheat/{result.row.label}", bundle, level="with-data")
    target = Workspace(tmp_path / "target")
    import_bundle(target, bundle)
    back = target.load_dataset("wheat")
    assert datasets.same_content(back, origin.load_dataset("wheat"))
    assert back.group_column == "sample_no" and list(back.metadata) == list(
        info.columns["metadata"]
    )


def test_the_example_file_is_two_targets_metadata_and_replicate_groups():
    path = REPO / "examples" / "fermentation_multi.csv"
    assert path.stat().st_size < 300_000
    s = datasets.load_csv(path)
    assert s.target_names == ["glucose", "ethanol"] and s.task == "regression"
    assert datasets.metadata_types(s) == {"sample_no": "text", "operator": "text"}
    assert s.group_column == "sample_no"
    groups, counts = np.unique(s.groups, return_counts=True)
    assert len(groups) == 34 and set(counts) == {3}
    assert np.all(s.X.std(axis=1) > 0)  # no flat scan: SNV divides by it
