"""Chart details a chemometrician sees (#20): the spectral axis named from the dataset's unit
("wavenumber (cm⁻¹)", "wavelength (nm)"), integer ticks on integer axes (components, folds,
counts), the target's name on the target axis; classification results get precision and
recall per class, and ROC curves where the model gives probabilities."""

from __future__ import annotations

import pytest
from sklearn.metrics import precision_recall_fscore_support

from n4afs.tree import renderers
from n4afs.tree.tree import Tree
from n4afs.workspace import Workspace
from tests.tree_reading import listing, read, rows


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("details") / "ws")
    ws.run([["snv", {"pls": {"n_components": 3}}]], ["chemotools:fermentation"], cv=3,
           test_size=0.2, name="ferm")  # fmt: skip
    ws.run([["snv", "lda"]], ["chemotools:coffee"], cv=3, test_size=0.25, name="coffee")
    ws.run([["snv", {"plsda": {"n_components": 2}}]], ["coffee"], cv=3, test_size=0.25,
           name="plsda")  # fmt: skip
    return ws


@pytest.fixture
def figures(monkeypatch):
    """Every figure a renderer draws, kept for its axes to be read."""
    drawn = []
    original = renderers.png_bytes

    def keep(fig):
        drawn.append(fig)
        return original(fig)

    monkeypatch.setattr(renderers, "png_bytes", keep)
    return drawn


def chart(ws, figures, dataset: str, name: str):
    result = ws.best(dataset).row.label
    read_with_fresh_tree(ws, ("runs", dataset, result, "charts", name))
    assert len(figures) == 1
    return figures[0].axes


def read_with_fresh_tree(ws, path):
    tree = Tree(ws)  # its own memo: the chart is drawn here
    return tree.read(tree.lookup(path))


def is_integer_locator(axis) -> bool:
    return bool(getattr(axis.get_major_locator(), "_integer", False))


def test_the_spectral_axis_is_named_from_the_unit(ws, figures):
    assert ws.dataset("fermentation").wavelength_unit == "cm-1"
    (ax,) = chart(ws, figures, "fermentation", "spectra.png")
    assert ax.get_xlabel() == "wavenumber (cm⁻¹)"
    assert renderers.axis_label("nm") == "wavelength (nm)"
    assert renderers.axis_label("index") == "variable"


def test_the_targets_name_is_on_the_target_axes(ws, figures):
    (ax,) = chart(ws, figures, "fermentation", "predictions_scatter.png")
    assert "glucose" in ax.get_xlabel() and "glucose" in ax.get_ylabel()
    figures.clear()
    (ax,) = chart(ws, figures, "fermentation", "y_distribution.png")
    assert ax.get_xlabel() == "glucose"


def test_integer_axes_have_integer_ticks(ws, figures):
    (ax,) = chart(ws, figures, "fermentation", "folds.png")
    assert is_integer_locator(ax.yaxis)
    figures.clear()
    (ax,) = chart(ws, figures, "coffee", "y_distribution.png")
    assert is_integer_locator(ax.yaxis)  # sample counts
    figures.clear()
    read_with_fresh_tree(ws, ("runs", "fermentation", "charts", "rmsecv_vs_components.png"))
    assert is_integer_locator(figures[0].axes[0].xaxis)


def test_classification_results_have_precision_and_recall_per_class(ws):
    label = ws.best("coffee").row.label
    assert "per_class.csv" in listing(ws, f"runs/coffee/{label}")
    table = rows(read(ws, f"runs/coffee/{label}/per_class.csv"))
    cv = rows(read(ws, f"runs/coffee/{label}/predictions/cv.csv"))
    classes = sorted({r["y_true"] for r in cv} | {r["y_pred"] for r in cv})
    precision, recall, f1, support = precision_recall_fscore_support(
        [r["y_true"] for r in cv], [r["y_pred"] for r in cv], labels=classes, zero_division=0
    )
    mine = [r for r in table if r["partition"] == "cv"]
    assert [r["class"] for r in mine] == classes
    for row, p, rc, f, n in zip(mine, precision, recall, f1, support, strict=True):
        assert int(row["support"]) == n
        assert float(row["precision"]) == pytest.approx(p)
        assert float(row["recall"]) == pytest.approx(rc)
        assert float(row["f1"]) == pytest.approx(f)
    assert {r["partition"] for r in table} == {"cv", "test"}
    ferm = ws.best("fermentation").row.label
    assert "per_class.csv" not in listing(ws, f"runs/fermentation/{ferm}")


def test_a_classifier_with_probabilities_has_roc_curves_from_its_fold_models(ws):
    import numpy as np
    from sklearn.metrics import roc_auc_score

    best = next(r for r in ws.results("coffee") if r.row.name == "snv-lda")
    label = best.row.label
    assert "roc.csv" in listing(ws, f"runs/coffee/{label}")
    assert "roc.png" in listing(ws, f"runs/coffee/{label}/charts")
    table = rows(read(ws, f"runs/coffee/{label}/roc.csv"))
    auc = {r["class"]: float(r["auc"]) for r in table}
    # by hand: each fold model's probabilities on the samples it validated
    cv = rows(read(ws, f"runs/coffee/{label}/predictions/cv.csv"))
    spectra = ws.load_dataset("coffee")
    row_of = {sid: i for i, sid in enumerate(spectra.sample_ids)}
    truth, scores = [], {}
    for fold in sorted({int(r["fold"]) for r in cv}):
        model = best.load_model(fold)
        mine = [r for r in cv if int(r["fold"]) == fold]
        proba = model.predict_proba(spectra.X[[row_of[r["sample_id"]] for r in mine]])
        for r, p in zip(mine, proba, strict=True):
            truth.append(r["y_true"])
            for c, value in zip(model.classes_, p, strict=True):
                scores.setdefault(str(c), []).append(value)
    assert set(auc) == set(scores)
    for c, values in scores.items():
        expected = roc_auc_score(np.array(truth) == c, values)
        assert auc[c] == pytest.approx(expected, abs=1e-12)


def test_a_model_without_probabilities_has_no_roc(ws):
    plsda = next(r for r in ws.results("coffee") if "plsda" in r.row.name)
    label = plsda.row.label
    assert "roc.csv" not in listing(ws, f"runs/coffee/{label}")
    assert "roc.png" not in listing(ws, f"runs/coffee/{label}/charts")
