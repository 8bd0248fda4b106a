-- 004 imports whose scores n4afs recomputed (2026-12-06)
-- Imports made before this version kept the score rows their bundle claimed; they stay
-- listed but can never be best (core.trust.UNTRUSTED_RUNS), even when trusted, until the
-- bundle is imported again (`n4afs rm RUN`, then `n4afs import`), which recomputes them.
ALTER TABLE imports ADD COLUMN scores_recomputed BOOLEAN DEFAULT false;
