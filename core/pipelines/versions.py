"""The library versions a model is fitted with, once: what runs record (RUN.yaml, MANIFEST.yaml,
EXPORT.yaml cite them) and what `predict` compares against what is installed now.

Design: docs/DESIGN.md, "Predict".
"""

from __future__ import annotations

import functools

# name -> whether `predict` warns when the installed version differs from the fitting one
LIBRARIES = {
    "python": True,
    "n4afs": True,
    "scikit-learn": True,
    "chemotools": True,
    "numpy": True,
    "scipy": False,  # recorded, never warned about
}


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that fitted the models (a fresh dict)."""
    return dict(_library_versions())


@functools.cache
def _library_versions() -> dict[str, str]:
    """Looked up once per process: package metadata lookups cost ~3 ms a run."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in LIBRARIES:
        if package == "python":
            continue
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "unknown"
    return found


def version_warnings(fitted_with: dict[str, str]) -> list[str]:
    """One line per warned library (`LIBRARIES`) whose installed version is not the one
    recorded when the model was fitted (`fitted_with`, a run's `versions`)."""
    current = library_versions()
    return [
        f"{name} {fitted_with[name]} fitted this model, {current.get(name)} is installed"
        for name, warned in LIBRARIES.items()
        if warned and fitted_with.get(name) and fitted_with[name] != current.get(name)
    ]
