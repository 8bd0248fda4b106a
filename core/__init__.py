"""The n4afs engine: blob store, DuckDB index, datasets, templates, runner, metrics.

Nouns: a *blob* is immutable content named by its sha256 (`BlobId`); the *index* is the
DuckDB file describing datasets, runs, results, models and their blobs; a *dataset* is
spectra + targets. `core` knows nothing of the folder tree users browse: that is `n4afs`.

Design: docs/DESIGN.md, "Package map".
"""
