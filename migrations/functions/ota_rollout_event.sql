-- Records what happened to a rollout (created, wave_opened, paused, resumed, advanced, completed, canceled) for
-- GET /v1/events, and wakes the listeners like an assignment transition does.
CREATE OR REPLACE FUNCTION ota_rollout_event(p_rollout uuid, p_event text, p_status text, p_wave integer,
                                             p_reason text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollout_events (rollout_id, event, status, wave, reason)
        VALUES (p_rollout, p_event, p_status, p_wave, left(p_reason, 500));
    PERFORM pg_notify('ota_events', p_rollout::text);
END $$;
