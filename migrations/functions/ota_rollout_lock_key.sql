-- The advisory lock that one rollout's engine steps and operator actions hold while they change it, so that
-- they take turns whichever instance runs them. (A rollout's row is not locked for this: a heartbeat whose
-- failure trips the gate updates that row after locking its device, so every transaction locks a rollout's
-- row last, after any device.)
CREATE OR REPLACE FUNCTION ota_rollout_lock_key(p_rollout uuid) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtextextended('ota_rollout:' || p_rollout::text, 0)
$$;
