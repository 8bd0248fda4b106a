-- The DuckDB functions and types n4afs's queries use, for an index on PostgreSQL (2026-12-06)
-- Applied (idempotently) by core/index/postgres.py before the migrations, in the same
-- locked transaction, so the schema files and the queries run unchanged on both engines.
-- Only what n4afs's SQL needs: nothing here is a general DuckDB emulation.

-- the change token: bumped by every committing write (core/index/postgres.py)
CREATE TABLE IF NOT EXISTS n4a_changes (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    counter  BIGINT NOT NULL
);
INSERT INTO n4a_changes VALUES (1, 0) ON CONFLICT DO NOTHING;

-- what every workspace on this index must agree on: `store`, the blobs' URL
CREATE TABLE IF NOT EXISTS n4a_settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

-- DuckDB's DOUBLE (schema columns, CAST(... AS DOUBLE))
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'double'
                   AND typnamespace = current_schema()::regnamespace) THEN
        CREATE DOMAIN "double" AS double precision;
    END IF;
END $$;

-- JSON columns are TEXT here (core/index/postgres.py rewrites the migrations' JSON type):
-- Python writes NaN and Infinity into scores, which PostgreSQL's json type refuses and
-- DuckDB's keeps. These read a key or a '$.a.b' path out of such text, NaN included.
CREATE OR REPLACE FUNCTION n4a_json(doc text) RETURNS json
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$
    SELECT CASE WHEN doc ~ '(NaN|Infinity)'
                THEN regexp_replace(doc, '(-?Infinity|NaN)', '"\1"', 'g')::json
                ELSE doc::json END
$f$;
CREATE OR REPLACE FUNCTION json_extract_string(doc text, path text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$
    SELECT CASE WHEN left(path, 2) = '$.'
                THEN n4a_json(doc) #>> string_to_array(substr(path, 3), '.')
                ELSE n4a_json(doc) ->> path END
$f$;
DROP OPERATOR IF EXISTS ->> (text, text);
CREATE OPERATOR ->> (LEFTARG = text, RIGHTARG = text, FUNCTION = json_extract_string);

-- lists: len, list_contains, list(), list_sort(..., 'ASC'), any_value (PostgreSQL < 16)
CREATE OR REPLACE FUNCTION len(items anyarray) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$ SELECT cardinality(items) $f$;
CREATE OR REPLACE FUNCTION list_contains(items anycompatiblearray, item anycompatible) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$ SELECT item = ANY(items) $f$;
CREATE OR REPLACE FUNCTION list_sort(items anyarray, how text) RETURNS anyarray
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$
    SELECT CASE WHEN upper(how) = 'DESC'
                THEN (SELECT array_agg(x ORDER BY x DESC) FROM unnest(items) x)
                ELSE (SELECT array_agg(x ORDER BY x) FROM unnest(items) x) END
$f$;
CREATE OR REPLACE FUNCTION n4a_append(items anyarray, item anyelement) RETURNS anyarray
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$ SELECT items || item $f$;
CREATE OR REPLACE AGGREGATE list(anyelement) (SFUNC = n4a_append, STYPE = anyarray,
    INITCOND = '{}');
CREATE OR REPLACE FUNCTION n4a_first(kept anyelement, item anyelement) RETURNS anyelement
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$ SELECT coalesce(kept, item) $f$;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'any_value') THEN
        CREATE AGGREGATE any_value(anyelement) (SFUNC = n4a_first, STYPE = anyelement);
    END IF;
END $$;

-- time: `now() - to_seconds(?)`
CREATE OR REPLACE FUNCTION to_seconds(seconds double precision) RETURNS interval
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$ SELECT make_interval(secs => seconds) $f$;
