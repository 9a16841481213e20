-- Deleting devices removes them from their rollouts (rollout_targets has no foreign key: see 0001_schema.sql), in
-- the same statement, so the rollouts' counts follow at once. The trigger is made here, with its function.
CREATE OR REPLACE FUNCTION ota_device_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM rollout_targets t USING gone WHERE t.device_id = gone.id;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER devices_deleted
    AFTER DELETE ON devices REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION ota_device_deleted();
