-- 008 run notes: what a user wrote about a run (`run --note`, `n4afs note RUN`) (2026-12-08)
-- `note`: one line of text, replaced by the next `n4afs note`; `noted_at`: when it was last
-- set (RUN.yaml's mtime follows it, so a note added later is seen as a change). NULL for
-- runs without a note, and for every run made before this version.

ALTER TABLE runs ADD COLUMN IF NOT EXISTS note VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS noted_at TIMESTAMP;
