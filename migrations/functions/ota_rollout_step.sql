-- One step of the engine on one rollout, which the caller holds the rollout's engine lock for: folds its counts,
-- then, if it runs, checks the failure gate, the success gate and admits a batch, or completes it when nothing
-- is left to do; if it is paused or canceled, takes back a batch of its assignments. Returns how much it did
-- (0: nothing left for now).
CREATE OR REPLACE FUNCTION ota_rollout_step(p_rollout uuid, p_batch integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    r rollouts%ROWTYPE;
    done integer;
BEGIN
    PERFORM ota_rollout_fold(p_rollout, 64);
    SELECT * INTO r FROM rollouts WHERE id = p_rollout;
    IF r.status <> 'running' THEN
        RETURN ota_rollout_withdraw(r, p_batch);
    END IF;
    IF ota_rollout_failure_gate(r, true) OR ota_rollout_success_gate(r) THEN
        RETURN 1;
    END IF;
    done := ota_rollout_admit(r, p_batch);
    IF done = 0 THEN
        PERFORM ota_rollout_complete(r);
    END IF;
    RETURN done;
END $$;
