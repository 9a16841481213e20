-- Folds a rollout's counts ledger into one row per (wave, state), once it has grown past p_rows rows. Exact
-- under any concurrency: the rows deleted are exactly those summed, in one statement, and deltas appended
-- meanwhile stay for the next fold.
CREATE OR REPLACE FUNCTION ota_rollout_fold(p_rollout uuid, p_rows integer) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT count(*) FROM rollout_counts WHERE rollout_id = p_rollout) <= p_rows THEN
        RETURN;
    END IF;
    WITH gone AS (DELETE FROM rollout_counts WHERE rollout_id = p_rollout RETURNING wave, state, n)
    INSERT INTO rollout_counts (rollout_id, wave, state, n)
        SELECT p_rollout, wave, state, sum(n) FROM gone GROUP BY wave, state HAVING sum(n) <> 0;
END $$;
