"""nirs4all's fitted models read without nirs4all and converted to n4afs's own classes.

The rule: a nirs4all joblib file is never loaded by joblib or pickle as such. It is read by
`_SafeUnpickler`, joblib's `NumpyUnpickler` (which reads the arrays joblib stores beside the
pickle) whose `find_class` hands back only the globals listed in `ALLOWED`: numpy's array and
scalar reconstruction, joblib's array wrapper, a few builtin number types, the scikit-learn
and chemotools classes nirs4all's models hold, and nirs4all's own class names, each mapped to
an inert stand-in defined here (it keeps the pickled state and runs nothing). nirs4all is never
imported and none of its code runs. Any other global refuses the file, naming the global (it is
never imported): a class (CamelCase name) under `nirs4all.`, `sklearn.`, `chemotools.`,
`numpy.` or `scipy.` makes the model only not convertible (the result is imported score-only,
and its `logs/import.txt` says which class); anything else (`os.system`, `builtins.eval`,
`subprocess.Popen`, a library's function) is no part of a nirs4all model and refuses the whole
import (`UnsafePickle`), before anything is written. So do arrays declared beyond
`MAX_ARRAY_BYTES` (numpy's `_reconstruct` and an array's state can declare any shape without
its bytes): every array's shape and data are checked before numpy sees them.

The stand-ins are then converted to the classes n4afs itself fits: nirs4all's SNV → chemotools
`StandardNormalVariate`, MSC → chemotools `MultiplicativeScatterCorrection` (its reference
spectrum kept), Savitzky–Golay → chemotools `SavitzkyGolay` with nirs4all's `mode="interp"`
(delta 1, or any delta without a derivative: chemotools has no delta), PLS-DA → n4afs's
`PLSDAClassifier` (its fitted PLS kept; binary: the one score column read as two), while
scikit-learn's PLS and LDA stay as they are; class codes (nirs4all encodes classes 0..k-1)
become the class names when the dataset is given, else the codes as text, as the imported
prediction tables show them. Each converted model is checked by predicting the training rows
nirs4all stored (its inputs were float32: the check feeds float32 spectra) and kept only when
it reproduces them (`REGRESSION_RTOL`; classes: every one); the largest difference goes to the
result's `logs/import.txt`. Without the spectra (`--data`) there is nothing to predict: the
model is kept, marked not checked.

Design: docs/DESIGN.md, "Package map" (n4afs/share).
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import importlib
import io
import pickle
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import yaml
from n4afs_core.errors import BundleError

MAX_UNPICKLED_BYTES = 1 << 28  # decompressed pickle + arrays of one nirs4all joblib file
# every array one file declares, together (a fitted PLS of 2,000 wavelengths holds ~1 MB): a
# pickle may declare an array's shape without its bytes (numpy's _reconstruct + BUILD), which
# numpy would allocate (or, for objects, leave unset and crash on): checked before numpy sees it
MAX_ARRAY_BYTES = 1 << 28
# a converted regression model must reproduce nirs4all's stored predictions to this relative
# difference (of the predictions' range): nirs4all stores float32-rounded values (~6e-8)
REGRESSION_RTOL = 1e-5


class UnsafePickle(BundleError):
    """A pickle naming a global no nirs4all model contains: the import is refused."""


class NotConvertible(Exception):
    """A model n4afs cannot rebuild as its own classes; the reason is one line."""


# -- what a nirs4all joblib file may name ---------------------------------------------------
class Nirs4allObject:
    """A nirs4all object read without nirs4all: its class name and pickled state, inert."""

    nirs4all_class = ""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"{self.nirs4all_class}: state is not a mapping")
        self.__dict__["state"] = dict(state)

    @property
    def state(self) -> dict[str, Any]:
        return self.__dict__.get("state", {})


def _stand_in(path: str) -> type:
    name = path.rsplit(".", 1)[1]
    return type(name, (Nirs4allObject,), {"nirs4all_class": path, "__module__": __name__})


_NIRS4ALL_CLASSES = (
    "nirs4all.operators.transforms.scalers.StandardNormalVariate",
    "nirs4all.operators.transforms.nirs.MultiplicativeScatterCorrection",
    "nirs4all.operators.transforms.nirs.SavitzkyGolay",
    "nirs4all.operators.models.sklearn.plsda.PLSDA",
    "nirs4all.api.result._DagmlExportedModel",
)
STAND_INS = {path: _stand_in(path) for path in _NIRS4ALL_CLASSES}

# (module, name) -> "module:attr" to import, or a stand-in class
ALLOWED: dict[tuple[str, str], Any] = {
    **{tuple(p.rsplit(".", 1)): cls for p, cls in STAND_INS.items()},
    ("joblib.numpy_pickle", "NumpyArrayWrapper"): "joblib.numpy_pickle:NumpyArrayWrapper",
    ("numpy", "ndarray"): "numpy:ndarray",
    ("numpy", "dtype"): "numpy:dtype",
    **{("numpy", t): f"numpy:{t}" for t in ("float64", "float32", "int64", "int32", "bool_")},
    **{
        (m, n): "numpy._core.multiarray:" + n
        for m in ("numpy.core.multiarray", "numpy._core.multiarray")  # numpy 1 / numpy 2 names
        for n in ("_reconstruct", "scalar")
    },
    **{("builtins", t): f"builtins:{t}" for t in ("float", "int", "bool", "complex")},
    ("sklearn.pipeline", "Pipeline"): "sklearn.pipeline:Pipeline",
    ("sklearn.cross_decomposition._pls", "PLSRegression"): (
        "sklearn.cross_decomposition:PLSRegression"
    ),
    ("sklearn.discriminant_analysis", "LinearDiscriminantAnalysis"): (
        "sklearn.discriminant_analysis:LinearDiscriminantAnalysis"
    ),
    ("sklearn.preprocessing._encoders", "OneHotEncoder"): "sklearn.preprocessing:OneHotEncoder",
    ("sklearn.preprocessing._label", "LabelEncoder"): "sklearn.preprocessing:LabelEncoder",
    ("chemotools.scatter._standard_normal_variate", "StandardNormalVariate"): (
        "chemotools.scatter:StandardNormalVariate"
    ),
    ("chemotools.scatter._multiplicative_scatter_correction", "MultiplicativeScatterCorrection"): (
        "chemotools.scatter:MultiplicativeScatterCorrection"
    ),
    ("chemotools.derivative._savitzky_golay", "SavitzkyGolay"): (
        "chemotools.derivative:SavitzkyGolay"
    ),
}
_LIBRARIES = ("nirs4all.", "sklearn.", "chemotools.", "numpy.", "scipy.")


def _resolve(module: str, name: str) -> Any:
    target = ALLOWED[(module, name)]
    if not isinstance(target, str):
        return target
    where, attr = target.split(":")
    return getattr(importlib.import_module(where), attr)


class _Refused(Exception):
    def __init__(self, global_name: str) -> None:
        super().__init__(global_name)
        self.global_name = global_name


def _safe_unpickler_class() -> type:
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

    class _SafeUnpickler(NumpyUnpickler):
        dispatch = NumpyUnpickler.dispatch.copy()

        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            self.array_bytes = 0  # declared by every array so far (MAX_ARRAY_BYTES)

        def find_class(self, module: str, name: str) -> Any:
            if (module, name) not in ALLOWED:
                raise _Refused(f"{module}.{name}")
            if name == "_reconstruct":
                return self.reconstruct
            if name == "scalar":
                return self.scalar
            return _resolve(module, name)

        def persistent_load(self, pid: Any) -> Any:
            raise _Refused("a persistent id")

        def charge(self, shape: Any, dtype: Any) -> int:
            """Count an array's bytes against MAX_ARRAY_BYTES before numpy allocates it;
            returns its number of elements."""
            if not isinstance(dtype, np.dtype):
                raise pickle.UnpicklingError("an array without a numpy dtype")
            shape = (shape,) if isinstance(shape, (int, np.integer)) else shape
            if not isinstance(shape, tuple) or not all(
                isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0
                for n in shape
            ):
                raise pickle.UnpicklingError(f"an array of shape {str(shape)[:40]}")
            count = 1
            for n in shape:  # Python ints: no overflow
                count *= int(n)
            size = count * max(dtype.itemsize, 1)
            self.array_bytes += size
            if self.array_bytes > MAX_ARRAY_BYTES:
                raise _TooLarge(f"an array of shape {shape} ({size:,} bytes)")
            return count

        def reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> Any:
            # numpy's ndarray pickles call _reconstruct(ndarray, (0,), b'b'), then BUILD
            if subtype is not np.ndarray:
                raise pickle.UnpicklingError("an array of another class than numpy.ndarray")
            self.charge(shape, np.dtype("b" if isinstance(dtype, bytes) else dtype))
            return _resolve("numpy._core.multiarray", "_reconstruct")(subtype, shape, dtype)

        def scalar(self, dtype: Any, *value: Any) -> Any:
            self.charge((), dtype)
            if dtype.hasobject or len(value) != 1 or not isinstance(value[0], bytes):
                raise pickle.UnpicklingError("a numpy scalar of another kind than plain bytes")
            if len(value[0]) != dtype.itemsize:
                raise pickle.UnpicklingError("a numpy scalar whose bytes do not fit its dtype")
            return _resolve("numpy._core.multiarray", "scalar")(dtype, value[0])

        def load_build(self) -> None:
            # joblib reads an array's bytes on the wrapper's BUILD, numpy sets an array's
            # shape and data on its own: check what either would allocate first
            state = self.stack[-1]
            target = self.stack[-2] if len(self.stack) > 1 else None
            if isinstance(target, NumpyArrayWrapper):
                _check_wrapper_state(state, self)
            elif isinstance(target, np.ndarray):
                _check_array_state(state, self)
            NumpyUnpickler.load_build(self)

        dispatch[pickle.BUILD[0]] = load_build

    return _SafeUnpickler


class _TooLarge(Exception):
    """A pickle declaring arrays beyond MAX_ARRAY_BYTES: no nirs4all model is that large."""


def _check_wrapper_state(state: Any, unpickler: Any) -> None:
    if not isinstance(state, dict):
        raise pickle.UnpicklingError("a joblib array wrapper without state")
    if state.get("subclass") is not np.ndarray:
        raise pickle.UnpicklingError("a joblib array of another class than numpy.ndarray")
    unpickler.charge(state.get("shape"), state.get("dtype"))
    if "allow_mmap" in state:
        state["allow_mmap"] = False


def _check_array_state(state: Any, unpickler: Any) -> None:
    """numpy's ndarray state, (version,) shape, dtype, is_fortran, data: the data must be
    exactly the declared shape's (bytes, or a list of as many objects)."""
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise pickle.UnpicklingError("an array state numpy does not write")
    shape, dtype, _, data = state[-4:]
    count = unpickler.charge(shape, dtype)
    if dtype.hasobject:
        if not isinstance(data, list) or len(data) != count:
            raise pickle.UnpicklingError("an object array whose items do not fit its shape")
    elif not isinstance(data, (bytes, bytearray)) or len(data) != count * dtype.itemsize:
        raise pickle.UnpicklingError("an array whose bytes do not fit its shape")


def _decompressed(data: bytes, name: str) -> bytes:
    """joblib's file: a bare pickle, or zlib / gzip compressed (nirs4all writes zlib)."""
    if data[:1] == b"\x80":
        return data
    try:
        if data[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
                out = stream.read(MAX_UNPICKLED_BYTES + 1)
        elif data[:1] == b"\x78":
            inflater = zlib.decompressobj()
            out = inflater.decompress(data, MAX_UNPICKLED_BYTES + 1)
        else:
            raise NotConvertible(f"{name} is not a joblib file n4afs reads (not zlib or gzip)")
    except (OSError, EOFError, zlib.error) as exc:
        raise NotConvertible(f"{name} does not decompress ({exc})") from None
    if len(out) > MAX_UNPICKLED_BYTES:
        raise NotConvertible(f"{name} decompresses to more than {MAX_UNPICKLED_BYTES} bytes")
    return out


def load_restricted(data: bytes, name: str) -> Any:
    """The objects of a nirs4all joblib file, built only from `ALLOWED` (module doc)."""
    raw = _decompressed(data, name)
    unpickler = _safe_unpickler_class()(name, io.BytesIO(raw), True)
    try:
        return unpickler.load()
    except _TooLarge as large:
        raise UnsafePickle(
            f"{name}: its pickle declares {large}, more than the {MAX_ARRAY_BYTES:,} bytes of "
            "arrays a nirs4all model file may hold: refusing the import (nothing was allocated)"
        ) from None
    except _Refused as refused:
        if _library_class(refused.global_name):
            raise NotConvertible(
                f"{name} holds {refused.global_name}, which n4afs does not convert"
            ) from None
        raise UnsafePickle(
            f"{name}: its pickle names the global {refused.global_name}, which no nirs4all "
            "model holds: refusing the import (nothing was loaded or run)"
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        MemoryError,
        RecursionError,
    ) as exc:
        text = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise NotConvertible(f"{name} is not a model pickle n4afs reads ({text})") from None


def _library_class(global_name: str) -> bool:
    """A class of the libraries nirs4all models are made of (`nirs4all.…`, `sklearn.…`,
    `chemotools.…`, `numpy.…`, `scipy.…`) that n4afs does not convert: a model that is not
    carried over, not an attack. By name only (it is never imported): a CamelCase class name
    in one of those packages. Anything else (os.system, builtins.eval, subprocess.Popen, a
    library's function) is no part of a nirs4all model and refuses the import."""
    module, _, name = global_name.rpartition(".")
    return (
        global_name.startswith(_LIBRARIES)
        and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", module) is not None
        and re.fullmatch(r"_?[A-Z][A-Za-z0-9_]*", name) is not None
    )


# -- conversion -----------------------------------------------------------------------------
@dataclass
class Converted:
    """A model as n4afs's steps: (operator, fitted object) in pipeline order."""

    steps: list[tuple[str, Any]]
    sources: list[str] = field(default_factory=list)  # the nirs4all files it came from

    def config(self) -> list[tuple[str, dict[str, Any]]]:
        """The n4afs config these fitted steps are: (operator, the parameters that differ
        between configs)."""
        keys = {
            "savgol": ("window_length", "polyorder", "deriv", "mode"),
            "pls": ("n_components",),
            "plsda": ("n_components",),
        }
        return [(op, {k: getattr(step, k) for k in keys.get(op, ())}) for op, step in self.steps]

    def pipeline(self) -> Any:
        from sklearn.pipeline import Pipeline

        return Pipeline([(f"s{i}", step) for i, (_, step) in enumerate(self.steps)])


def estimator_of(obj: Any, name: str) -> list[Any]:
    """nirs4all's model object -> its fitted steps: a dag-ml artifact's dict wrapper or
    `_DagmlExportedModel` (an sklearn Pipeline, no y transform), or one step (legacy)."""
    if isinstance(obj, Nirs4allObject) and obj.nirs4all_class.endswith("_DagmlExportedModel"):
        obj = obj.state
    if isinstance(obj, dict):
        if obj.get("y_transform") is not None:
            raise NotConvertible(f"{name}: a model with a y transform, which n4afs does not apply")
        if "estimator" not in obj:
            raise NotConvertible(f"{name}: a nirs4all artifact without an estimator")
        obj = obj["estimator"]
    from sklearn.pipeline import Pipeline

    if isinstance(obj, Pipeline):
        return [step for _, step in obj.steps]
    return [obj]


def convert(objects: list[Any], labels: list[str] | None) -> Converted:
    """Fitted nirs4all steps (stand-ins, sklearn or chemotools objects) as n4afs's steps.
    `labels`: the class names of codes 0..k-1 (classification), else None."""
    if not objects:
        raise NotConvertible("a model without steps")
    n_features = _n_features(objects)
    steps = [_convert_step(obj, n_features) for obj in objects[:-1]]
    steps.append(_convert_model(objects[-1], labels))
    return Converted(steps)


def _class_name(obj: Any) -> str:
    if isinstance(obj, Nirs4allObject):
        return obj.nirs4all_class
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _n_features(objects: list[Any]) -> int:
    for obj in reversed(objects):
        state = obj.state if isinstance(obj, Nirs4allObject) else vars(obj)
        if isinstance(state.get("n_features_in_"), (int, np.integer)):
            return int(state["n_features_in_"])
        if isinstance(state.get("reference_"), np.ndarray):
            return len(state["reference_"])
    raise NotConvertible("the model does not say how many wavelengths it reads")


def _convert_step(obj: Any, n_features: int) -> tuple[str, Any]:
    from chemotools.derivative import SavitzkyGolay
    from chemotools.scatter import MultiplicativeScatterCorrection, StandardNormalVariate

    fit_on = np.zeros((2, n_features))
    if isinstance(obj, (StandardNormalVariate, MultiplicativeScatterCorrection, SavitzkyGolay)):
        op = {StandardNormalVariate: "snv", MultiplicativeScatterCorrection: "msc"}
        return op.get(type(obj), "savgol"), obj
    cls = _class_name(obj)
    state = obj.state if isinstance(obj, Nirs4allObject) else {}
    if cls.endswith(".StandardNormalVariate"):
        wanted = {"axis": 1, "with_mean": True, "with_std": True, "ddof": 0}
        if any(state.get(k, v) != v for k, v in wanted.items()):
            raise NotConvertible(f"nirs4all SNV with {_params(state)}: only the row-wise default")
        return "snv", StandardNormalVariate().fit(fit_on)
    if cls.endswith(".MultiplicativeScatterCorrection"):
        reference = state.get("reference_")
        if not isinstance(reference, np.ndarray) or reference.shape != (n_features,):
            raise NotConvertible("nirs4all MSC without a fitted reference spectrum")
        return "msc", MultiplicativeScatterCorrection().fit(reference.reshape(1, -1))
    if cls.endswith(".SavitzkyGolay"):
        # scipy divides the derivative by delta**deriv; chemotools' SG has no delta: only
        # smoothing (deriv 0), where delta changes nothing, or delta 1 are the same filter
        if float(state.get("delta", 1.0)) != 1.0 and int(state.get("deriv", 0)) != 0:
            raise NotConvertible(
                f"nirs4all Savitzky-Golay with delta {state['delta']} and deriv "
                f"{state.get('deriv')}: chemotools' SG has no delta"
            )
        step = SavitzkyGolay(
            window_length=int(state.get("window_length", 11)),
            polyorder=int(state.get("polyorder", 3)),
            deriv=int(state.get("deriv", 0)),
            mode="interp",  # nirs4all calls scipy's savgol_filter with its default mode
        )
        return "savgol", step.fit(fit_on)
    raise NotConvertible(f"{cls} has no n4afs equivalent")


def _params(state: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in sorted(state.items()) if not k.endswith("_"))


def _convert_model(obj: Any, labels: list[str] | None) -> tuple[str, Any]:
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    if isinstance(obj, PLSRegression):
        if getattr(obj, "coef_", None) is None or obj.coef_.shape[0] != 1:
            raise NotConvertible("a PLS model of several targets: n4afs models one at a time")
        return "pls", obj
    if isinstance(obj, LinearDiscriminantAnalysis):
        obj.classes_ = _relabelled(obj.classes_, labels)
        return "lda", obj
    if _class_name(obj).endswith(".plsda.PLSDA"):
        return "plsda", _plsda(obj.state, labels)
    raise NotConvertible(f"{_class_name(obj)} has no n4afs equivalent")


def _plsda(state: dict, labels: list[str] | None) -> Any:
    from n4afs_core.pipelines.operators import PLSDAClassifier
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.preprocessing import LabelEncoder, OneHotEncoder

    classes, pls, encoder = state.get("classes_"), state.get("pls_"), state.get("encoder_")
    if not isinstance(classes, np.ndarray) or not isinstance(pls, PLSRegression):
        raise NotConvertible("nirs4all PLS-DA without its fitted PLS")
    if len(classes) == 2:
        if not isinstance(encoder, LabelEncoder) or not np.array_equal(
            np.asarray(encoder.classes_, dtype=float), classes.astype(float)
        ):
            raise NotConvertible("binary nirs4all PLS-DA without its label encoder")
        pls = _two_columns(pls)
    elif not isinstance(encoder, OneHotEncoder):
        raise NotConvertible("nirs4all PLS-DA of several classes without its one-hot encoder")
    elif not np.array_equal(np.asarray(encoder.categories_[0], dtype=float), classes.astype(float)):
        raise NotConvertible("nirs4all PLS-DA whose encoder's classes differ from its classes")
    model = PLSDAClassifier(
        n_components=int(pls.n_components), scale=pls.scale, max_iter=pls.max_iter, tol=pls.tol
    )
    model.pls_ = pls
    model.classes_ = _relabelled(classes, labels)
    model.n_features_in_ = int(state.get("n_features_in_", pls.n_features_in_))
    model.n_iter_ = pls.n_iter_
    return model


def _two_columns(pls: Any) -> Any:
    """Binary nirs4all PLS-DA fitted one PLS column y in {0, 1} and predicts class 1 when its
    score exceeds 0.5; n4afs's PLS-DA takes the larger of one score per class. The same PLS
    read as two columns, (1 - score, score), makes the two rules one (score > 0.5 exactly
    when it is the larger), with the same latent variables: its y side is mirrored."""
    if getattr(pls, "coef_", None) is None or pls.coef_.shape[0] != 1:
        raise NotConvertible("binary nirs4all PLS-DA whose PLS is not one column")
    two = copy.deepcopy(pls)
    for name in ("coef_", "y_loadings_", "y_weights_"):
        value = getattr(pls, name)
        setattr(two, name, np.vstack([-value, value]))
    mean, std = np.ravel(pls._y_mean), np.ravel(pls._y_std)  # noqa: SLF001 - sklearn's state
    two._y_mean, two._y_std = np.array([1 - mean[0], mean[0]]), np.array([std[0], std[0]])
    two.intercept_ = np.array([1 - np.ravel(pls.intercept_)[0], np.ravel(pls.intercept_)[0]])
    two._predict_1d = False
    return two


def _relabelled(classes: np.ndarray, labels: list[str] | None) -> np.ndarray:
    """nirs4all's class codes (0.0 .. k-1) as the labels the imported tables show."""
    codes = np.asarray(classes, dtype=float)
    if not np.array_equal(codes, np.arange(len(codes))):
        raise NotConvertible(f"class codes {codes.tolist()} are not nirs4all's 0..k-1")
    if labels is None:
        return np.array([str(i) for i in range(len(codes))], dtype=object)
    if len(labels) != len(codes):
        raise NotConvertible(f"the model has {len(codes)} classes, the dataset {len(labels)}")
    return np.array(labels, dtype=object)


# -- the check ------------------------------------------------------------------------------
@dataclass
class Check:
    n_rows: int
    largest: float  # regression: largest |difference|; classification: rows that differ
    tolerance: float
    task: str

    @property
    def passed(self) -> bool:
        return self.largest <= self.tolerance

    def line(self) -> str:
        if self.task == "regression":
            return (
                f"{self.n_rows} stored training predictions reproduced, largest difference "
                f"{self.largest:.3g} (allowed {self.tolerance:.3g}: float32 rounding)"
            )
        return f"{self.n_rows} stored training predictions, {int(self.largest)} differ"


def check(model: Converted, X: np.ndarray, stored: np.ndarray, task: str, labels) -> Check:
    """Predict nirs4all's stored rows again (float32 spectra, as nirs4all fed them)."""
    try:
        predicted = model.pipeline().predict(np.asarray(X, dtype=np.float32))
    except (ValueError, TypeError, AttributeError, IndexError) as exc:
        raise NotConvertible(
            f"the converted model does not predict the stored rows ({exc})"
        ) from None
    if task == "regression":
        predicted = np.asarray(predicted, dtype=float).reshape(len(stored), -1)[:, 0]
        scale = max(float(np.ptp(stored)) if len(stored) else 0.0, 1.0)
        diff = float(np.max(np.abs(predicted - stored))) if len(stored) else 0.0
        return Check(len(stored), diff, REGRESSION_RTOL * scale, task)
    expected = _relabelled(np.arange(int(max(stored, default=0)) + 1, dtype=float), None)
    names = labels if labels is not None else list(expected)
    wanted = [names[int(round(v))] for v in stored]
    differ = sum(str(p) != str(w) for p, w in zip(predicted, wanted, strict=True))
    return Check(len(stored), float(differ), 0.0, task)


# -- the files an imported result holds -----------------------------------------------------
def model_files(model: Converted, role: str, fold: int | None, notes: list[str]) -> dict:
    """`models/<final|fold<k>>_<id>/`: one `.pkl` per step, `pipeline.pkl`, MANIFEST.yaml,
    as an n4afs export holds them (`n4afs.share.import_plan` reads them back)."""
    from n4afs_core.pipelines.runner import step_names

    names = step_names([(op, {}) for op, _ in model.steps])
    blobs = [pickle.dumps(step, protocol=5) for _, step in model.steps]  # as persist does
    model_id = hashlib.sha256(b"".join(hashlib.sha256(b).digest() for b in blobs)).hexdigest()
    folder = f"models/{role if fold is None else f'fold{fold}'}_{model_id[:12]}"
    files = {f"{folder}/{n}.pkl": b for n, b in zip(names, blobs, strict=True)}
    files[f"{folder}/pipeline.pkl"] = _pipeline_pickle(names, blobs)
    manifest = {
        "model": model_id[:12],
        "role": role,
        "fold": fold,
        "steps": [
            {
                "file": f"{n}.pkl",
                "class": f"{type(s).__module__}.{type(s).__qualname__}",
                "sha256": hashlib.sha256(b).hexdigest(),
                "size": len(b),
            }
            for n, (_, s), b in zip(names, model.steps, blobs, strict=True)
        ],
        "pipeline": "pipeline.pkl = sklearn Pipeline of the steps above, in order",
        "converted_from": model.sources,
        "check": notes,
    }
    files[f"{folder}/MANIFEST.yaml"] = yaml.safe_dump(manifest, sort_keys=False).encode()
    return files


def _pipeline_pickle(names: list[str], blobs: list[bytes]) -> bytes:
    from n4afs.tree.pipeline_pickle import BlobSegment, compose

    pairs = enumerate(zip(names, blobs, strict=True))
    segments = compose([(n, str(i), len(b), False) for i, (n, b) in pairs])
    return b"".join(blobs[int(s.blob_id)] if isinstance(s, BlobSegment) else s for s in segments)
