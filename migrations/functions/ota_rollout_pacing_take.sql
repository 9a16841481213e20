-- The pacing budget of a rollout: at most p_max first deliveries in any 60 seconds, across every server
-- instance. Deliveries are counted in 5-second buckets by the database's clock; a delivery is allowed while
-- the buckets of the last 65 seconds (which cover any 60-second window ending now) hold fewer than p_max, so
-- the budget is spent over 60 to 65 seconds and never more than p_max go out in a minute. With p_take the row
-- is locked, checked and counted: concurrent heartbeats of the rollout take turns on it until they commit.
-- Without, it is only read. False when the budget is spent.
CREATE OR REPLACE FUNCTION ota_rollout_pacing_take(p_rollout uuid, p_max integer, p_take boolean) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    p rollout_pacing%ROWTYPE;
    now_bucket bigint;
    used bigint;
BEGIN
    IF p_take THEN
        SELECT * INTO p FROM rollout_pacing WHERE rollout_id = p_rollout FOR UPDATE;
    ELSE
        SELECT * INTO p FROM rollout_pacing WHERE rollout_id = p_rollout;
    END IF;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    now_bucket := floor(extract(epoch FROM clock_timestamp()) / 5);
    SELECT coalesce(sum(c), 0) INTO used FROM unnest(p.buckets, p.counts) AS x(b, c) WHERE b >= now_bucket - 12;
    IF used >= p_max THEN
        RETURN false;
    END IF;
    IF p_take THEN
        UPDATE rollout_pacing SET (buckets, counts) = (
            SELECT array_agg(b ORDER BY b), array_agg(c ORDER BY b) FROM (
                SELECT b, sum(c)::integer AS c FROM (
                    SELECT * FROM unnest(p.buckets, p.counts) AS x(b, c) WHERE b >= now_bucket - 12
                    UNION ALL SELECT now_bucket, 1) kept
                GROUP BY b) merged)
            WHERE rollout_id = p_rollout;
    END IF;
    RETURN true;
END $$;
