-- 007 result targets: each result models one target of its dataset, part of its identity (2026-12-06)
-- A dataset may hold several reference values (protein, moisture); a run models those asked
-- for, one result per (config x target). Results written before this version modelled their
-- dataset's first target (the runner's `spectra.target()`), so they get that name here: no
-- NULL meaning "the first". The UNIQUE key gains the target, which DuckDB cannot alter in
-- place: the table is rebuilt with its rows, in the same order, and its index and the
-- `referenced_blobs` view are made again.

DROP VIEW IF EXISTS referenced_blobs;           -- it depends on results

CREATE TABLE results_006 (
    result_id         VARCHAR PRIMARY KEY,     -- short id
    run_id            VARCHAR NOT NULL,
    dataset_id        VARCHAR NOT NULL,
    seq               INTEGER NOT NULL,        -- per dataset (shared by its targets), never reused
    name              VARCHAR NOT NULL,        -- readable, e.g. snv-pls15
    config_hash       VARCHAR NOT NULL,        -- sha256 of the canonical config
    config            JSON NOT NULL,           -- the concrete pipeline (a valid template)
    choices           JSON NOT NULL,           -- generator choices that produced it
    template_position INTEGER NOT NULL,
    status            VARCHAR NOT NULL,        -- pending | completed | failed | broken
    metric            VARCHAR NOT NULL,
    score             DOUBLE,                  -- run metric on val (pooled out-of-fold), else test
    predictions_blob  VARCHAR,                 -- Parquet: one row per sample x model x partition
    error             VARCHAR,                 -- traceback of a failed result
    duration_s        DOUBLE,
    created_at        TIMESTAMP NOT NULL,
    target            VARCHAR,                 -- the target modelled (one of target_names)
    UNIQUE (dataset_id, seq),
    UNIQUE (run_id, dataset_id, target, config_hash)
);

INSERT INTO results_006
SELECT r.result_id, r.run_id, r.dataset_id, r.seq, r.name, r.config_hash, r.config, r.choices,
       r.template_position, r.status, r.metric, r.score, r.predictions_blob, r.error,
       r.duration_s, r.created_at, d.target_names[1]
FROM results r LEFT JOIN datasets d USING (dataset_id)
ORDER BY r.dataset_id, r.seq;

DROP INDEX IF EXISTS results_run;
DROP TABLE results;
ALTER TABLE results_006 RENAME TO results;
CREATE INDEX IF NOT EXISTS results_run ON results(run_id);

CREATE OR REPLACE VIEW referenced_blobs AS
    SELECT blob_id, 'dataset' AS owner_kind, dataset_id AS owner_id FROM datasets
        WHERE blob_id IS NOT NULL
    UNION ALL
    SELECT predictions_blob, 'result', result_id FROM results WHERE predictions_blob IS NOT NULL
    UNION ALL
    SELECT blob_id, 'artifact', model_id FROM artifacts
    UNION ALL
    SELECT blob_id, 'imported', result_id FROM imported_files;
