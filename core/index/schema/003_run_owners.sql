-- 003 run owners: the processes that run a run, so gc can tell a live run from a dead one (2026-12-06)
-- One row per process that started or resumed the run (a concurrent resume adds a second).
-- A run is in flight while its status is 'running' and one of its owners is alive
-- (core/liveness.py); 'running' with every owner gone is an interrupted run.
-- A table of its own rather than columns of `runs`: rows of `runs` are inserted by position.

CREATE TABLE IF NOT EXISTS run_owners (
    run_id      VARCHAR NOT NULL,
    host        VARCHAR NOT NULL,              -- socket.gethostname()
    boot_id     VARCHAR,                       -- /proc/sys/kernel/random/boot_id: PIDs restart at boot
    pid         INTEGER NOT NULL,
    pid_start   BIGINT,                        -- /proc/<pid>/stat starttime (clock ticks after boot): a reused PID differs
    started     DOUBLE NOT NULL                -- epoch seconds (time.time()) when it took the run
);
CREATE INDEX IF NOT EXISTS run_owners_run ON run_owners(run_id);
