-- 002 imported bundles: provenance, trust, and the files of imported results (2026-11-25)
-- An imported result keeps the exact files it was exported with (stored as blobs, so
-- shared content is stored once); a dataset imported without its data has no blob.

DROP VIEW IF EXISTS referenced_blobs;           -- it depends on datasets
DROP INDEX IF EXISTS datasets_name;
ALTER TABLE datasets ALTER COLUMN blob_id DROP NOT NULL;
CREATE INDEX IF NOT EXISTS datasets_name ON datasets(name);

CREATE TABLE IF NOT EXISTS imports (
    import_id     VARCHAR PRIMARY KEY,         -- short id
    run_id        VARCHAR NOT NULL,            -- the run that holds the imported results
    bundle_sha256 VARCHAR NOT NULL,            -- of MANIFEST.yaml: the same bundle imports once
    source        VARCHAR NOT NULL,            -- where it was imported from
    export_info   JSON NOT NULL,               -- EXPORT.yaml as found
    trusted       BOOLEAN NOT NULL,            -- may its pickles be loaded without --trust
    created_at    TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS imported_files (
    result_id   VARCHAR NOT NULL,
    path        VARCHAR NOT NULL,              -- inside the result folder, '/'-separated
    blob_id     VARCHAR NOT NULL,
    size        BIGINT NOT NULL,
    PRIMARY KEY (result_id, path)
);

CREATE OR REPLACE VIEW referenced_blobs AS
    SELECT blob_id, 'dataset' AS owner_kind, dataset_id AS owner_id FROM datasets
        WHERE blob_id IS NOT NULL
    UNION ALL
    SELECT predictions_blob, 'result', result_id FROM results WHERE predictions_blob IS NOT NULL
    UNION ALL
    SELECT blob_id, 'artifact', model_id FROM artifacts
    UNION ALL
    SELECT blob_id, 'imported', result_id FROM imported_files;
