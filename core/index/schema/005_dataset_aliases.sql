-- 005 dataset aliases: the other names of a dataset whose content was added or imported again under another name (2026-12-07)
-- Same content is one dataset (core.datasets.same_content): a second name given to it is
-- recorded here and finds it like its first name (`best other`, `run -d other`); the tree
-- shows the dataset once, under its first name (datasets.name).

CREATE TABLE IF NOT EXISTS dataset_aliases (
    name        VARCHAR NOT NULL,
    dataset_id  VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (name, dataset_id)
);
