-- 006 dataset roles and notes: how a dataset's columns were read, a user's note and keys (2026-12-06)
-- `columns` (JSON): the roles DATASET.yaml shows (sample id column, targets, spectra count,
-- metadata columns with their types, group, ignored columns, numbers not made targets, the
-- references file of two joined files). `note` and `user_keys` (JSON object of text) are
-- what `datasets add --note/--set` said. All three describe the dataset when it was first
-- added (its id is its content; a later add of the same content keeps them); NULL for
-- datasets added before this version.

ALTER TABLE datasets ADD COLUMN IF NOT EXISTS columns JSON;
ALTER TABLE datasets ADD COLUMN IF NOT EXISTS note VARCHAR;
ALTER TABLE datasets ADD COLUMN IF NOT EXISTS user_keys JSON;
