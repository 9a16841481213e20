-- Appends the net change a statement made to rollout targets to the counts ledger (rollout_counts in
-- 0001_schema.sql): one row per (rollout, wave, state) whose count moved, however many targets the statement
-- touched. A statement-level trigger sees every changed row at once in its transition tables; PostgreSQL allows
-- those for one event per trigger, hence three triggers on this one function.
CREATE OR REPLACE FUNCTION ota_rollout_targets_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO rollout_counts (rollout_id, wave, state, n)
            SELECT rollout_id, wave, state, count(*) FROM new_rows GROUP BY 1, 2, 3;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO rollout_counts (rollout_id, wave, state, n)
            SELECT rollout_id, wave, state, -count(*) FROM old_rows GROUP BY 1, 2, 3;
    ELSE
        INSERT INTO rollout_counts (rollout_id, wave, state, n)
            SELECT rollout_id, wave, state, sum(n) FROM (
                SELECT rollout_id, wave, state, -1 AS n FROM old_rows
                UNION ALL
                SELECT rollout_id, wave, state, 1 FROM new_rows) moved
            GROUP BY 1, 2, 3 HAVING sum(n) <> 0;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER rollout_targets_inserted
    AFTER INSERT ON rollout_targets REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ota_rollout_targets_counted();
CREATE OR REPLACE TRIGGER rollout_targets_updated
    AFTER UPDATE ON rollout_targets REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ota_rollout_targets_counted();
CREATE OR REPLACE TRIGGER rollout_targets_deleted
    AFTER DELETE ON rollout_targets REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ota_rollout_targets_counted();
