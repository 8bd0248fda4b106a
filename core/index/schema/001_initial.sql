-- 001 initial schema: blobs, datasets, runs, templates, results, models, artifacts, predictions (2026-11-25)
-- Every blob column below is a sha256 naming an object in the store; `referenced_blobs` is
-- the one place that lists them all (gc marks from it, du sums it).

CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    applied_at  TIMESTAMP NOT NULL,
    note        VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS blobs (
    blob_id     VARCHAR PRIMARY KEY,           -- sha256 hex
    size        BIGINT NOT NULL,
    media_type  VARCHAR NOT NULL,              -- parquet | joblib | png | ...
    created_at  TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS datasets (
    dataset_id      VARCHAR PRIMARY KEY,       -- sha256 of the normalized Parquet blob
    name            VARCHAR NOT NULL,
    blob_id         VARCHAR NOT NULL,
    source_path     VARCHAR,
    source_sha256   VARCHAR,
    source_size     BIGINT,
    task            VARCHAR NOT NULL,          -- regression | classification
    n_samples       INTEGER NOT NULL,
    n_features      INTEGER NOT NULL,
    target_names    VARCHAR[] NOT NULL,
    target_stats    JSON NOT NULL,             -- per target: min/max/mean/std or class counts
    wavelength_min  DOUBLE,
    wavelength_max  DOUBLE,
    wavelength_unit VARCHAR,
    created_at      TIMESTAMP NOT NULL
);
CREATE INDEX IF NOT EXISTS datasets_name ON datasets(name);

-- Per-dataset result numbering: the last number handed out, so numbers are never reused
-- even after results are removed.
CREATE TABLE IF NOT EXISTS dataset_seq (
    dataset_id  VARCHAR PRIMARY KEY,
    last_seq    INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS runs (
    run_id      VARCHAR PRIMARY KEY,           -- <YYYY-MM-DD>_<name>_<hash6>
    name        VARCHAR NOT NULL,
    status      VARCHAR NOT NULL,              -- running | completed | failed | partial
    metric      VARCHAR NOT NULL,
    options     JSON NOT NULL,                 -- cv, seed, test split ... everything to resume
    created_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS run_datasets (
    run_id      VARCHAR NOT NULL,
    dataset_id  VARCHAR NOT NULL,
    position    INTEGER NOT NULL,
    PRIMARY KEY (run_id, dataset_id)
);

-- Templates are saved before expansion; each result keeps the choices that produced it.
CREATE TABLE IF NOT EXISTS templates (
    run_id      VARCHAR NOT NULL,
    position    INTEGER NOT NULL,
    name        VARCHAR NOT NULL,
    body        JSON NOT NULL,
    n_configs   INTEGER NOT NULL,
    PRIMARY KEY (run_id, position)
);

CREATE TABLE IF NOT EXISTS results (
    result_id         VARCHAR PRIMARY KEY,     -- short id
    run_id            VARCHAR NOT NULL,
    dataset_id        VARCHAR NOT NULL,
    seq               INTEGER NOT NULL,        -- per dataset, assigned once, never reused
    name              VARCHAR NOT NULL,        -- readable, e.g. snv-pls15
    config_hash       VARCHAR NOT NULL,        -- sha256 of the canonical config
    config            JSON NOT NULL,           -- the concrete pipeline (a valid template)
    choices           JSON NOT NULL,           -- generator choices that produced it
    template_position INTEGER NOT NULL,
    status            VARCHAR NOT NULL,        -- pending | completed | failed
    metric            VARCHAR NOT NULL,
    score             DOUBLE,                  -- run metric on val (pooled out-of-fold), else test
    predictions_blob  VARCHAR,                 -- Parquet: one row per sample x model x partition
    error             VARCHAR,                 -- traceback of a failed result
    duration_s        DOUBLE,
    created_at        TIMESTAMP NOT NULL,
    UNIQUE (dataset_id, seq),
    UNIQUE (run_id, dataset_id, config_hash)
);
CREATE INDEX IF NOT EXISTS results_run ON results(run_id);

CREATE TABLE IF NOT EXISTS models (
    model_id     VARCHAR PRIMARY KEY,          -- short id
    result_id    VARCHAR NOT NULL,
    role         VARCHAR NOT NULL,             -- fold | final
    fold         INTEGER,                      -- fold number for role = fold
    created_at   TIMESTAMP NOT NULL
);
CREATE INDEX IF NOT EXISTS models_result ON models(result_id);

CREATE TABLE IF NOT EXISTS artifacts (
    model_id    VARCHAR NOT NULL,
    step_index  INTEGER NOT NULL,
    step_name   VARCHAR NOT NULL,              -- semantic: snv, pls_model ...
    class_path  VARCHAR NOT NULL,
    blob_id     VARCHAR NOT NULL,              -- joblib of the fitted step
    PRIMARY KEY (model_id, step_index)
);

-- One row per model x partition x fold with its scores; the arrays live in the result's
-- predictions blob. `model` is fold_<k> | final | avg | w_avg | cv (pooled out-of-fold).
CREATE TABLE IF NOT EXISTS predictions (
    result_id   VARCHAR NOT NULL,
    model       VARCHAR NOT NULL,
    model_id    VARCHAR,                       -- NULL for cv, which pools several models
    partition   VARCHAR NOT NULL,              -- train | val | test
    fold        INTEGER NOT NULL,              -- -1: not one fold
    n_samples   INTEGER NOT NULL,
    scores      JSON NOT NULL,
    PRIMARY KEY (result_id, model, partition)
);

CREATE OR REPLACE VIEW referenced_blobs AS
    SELECT blob_id, 'dataset' AS owner_kind, dataset_id AS owner_id FROM datasets
    UNION ALL
    SELECT predictions_blob, 'result', result_id FROM results WHERE predictions_blob IS NOT NULL
    UNION ALL
    SELECT blob_id, 'artifact', model_id FROM artifacts;
