-- 009 instants: every stored time is a TIMESTAMPTZ, one instant whoever wrote it (2026-12-06)
-- A team writes one index from machines in several time zones. Before this version the
-- times were TIMESTAMP: the writer's wall clock, with no zone, so a run written in New York
-- sorted six hours before one written earlier in Paris, and the tree's mtimes were off by
-- the reader's offset. A TIMESTAMPTZ is an instant: it orders and converts right
-- everywhere, and each reader is handed it in its own zone.
-- The times already stored are read as wall-clock times of the zone of the process that
-- upgrades the index (the session's TimeZone: the machine's own, or $TZ), the zone they
-- were written in for a workspace used from one place. A shared PostgreSQL index written
-- from several zones before this version cannot be told apart row by row: its old times
-- are read in the upgrading machine's zone (off by the difference for the other zones'
-- rows), new ones are exact.
-- DuckDB cannot alter a column of a table that has an index: those are dropped and made
-- again around the change. Each table is rewritten once (PostgreSQL holds it exclusively
-- until the migration commits).

ALTER TABLE schema_version ALTER COLUMN applied_at TYPE TIMESTAMPTZ;
ALTER TABLE blobs ALTER COLUMN created_at TYPE TIMESTAMPTZ;

DROP INDEX IF EXISTS datasets_name;
ALTER TABLE datasets ALTER COLUMN created_at TYPE TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS datasets_name ON datasets(name);

ALTER TABLE dataset_aliases ALTER COLUMN created_at TYPE TIMESTAMPTZ;

ALTER TABLE runs ALTER COLUMN created_at TYPE TIMESTAMPTZ;
ALTER TABLE runs ALTER COLUMN finished_at TYPE TIMESTAMPTZ;
ALTER TABLE runs ALTER COLUMN noted_at TYPE TIMESTAMPTZ;

DROP INDEX IF EXISTS results_run;
ALTER TABLE results ALTER COLUMN created_at TYPE TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS results_run ON results(run_id);

DROP INDEX IF EXISTS models_result;
ALTER TABLE models ALTER COLUMN created_at TYPE TIMESTAMPTZ;
CREATE INDEX IF NOT EXISTS models_result ON models(result_id);

ALTER TABLE imports ALTER COLUMN created_at TYPE TIMESTAMPTZ;
