-- Opens wave p_wave of rollout r: records it and makes it the current wave. Its targets are moved from
-- 'waiting' to 'blocked' by ota_rollout_admit, in batches, so opening a wave of a million targets is no
-- long transaction.
CREATE OR REPLACE FUNCTION ota_rollout_open_wave(r rollouts, p_wave integer, p_event text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE rollout_waves SET opened_at = now() WHERE rollout_id = r.id AND wave = p_wave AND opened_at IS NULL;
    UPDATE rollouts SET current_wave = p_wave, started_at = coalesce(started_at, now()) WHERE id = r.id;
    PERFORM ota_rollout_event(r.id, p_event, r.status, p_wave, NULL);
END $$;
