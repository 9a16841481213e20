-- A counts object of the API from a map state -> count (missing states are 0). `targets` is every target,
-- whatever its state; `retries` counts the retry assignments made and is not a state.
CREATE OR REPLACE FUNCTION ota_rollout_counts_json(c jsonb) RETURNS json LANGUAGE sql IMMUTABLE AS $$
    SELECT json_build_object(
        'targets', (SELECT coalesce(sum(value::bigint), 0) FROM jsonb_each_text(c) WHERE key <> 'retries'),
        'skipped', coalesce((c->>'skipped')::bigint, 0),
        'waiting', coalesce((c->>'waiting')::bigint, 0),
        'blocked', coalesce((c->>'blocked')::bigint, 0),
        'pending', coalesce((c->>'pending')::bigint, 0),
        'delivered', coalesce((c->>'delivered')::bigint, 0),
        'applied', coalesce((c->>'applied')::bigint, 0),
        'failed', coalesce((c->>'failed')::bigint, 0),
        'rolled_back', coalesce((c->>'rolled_back')::bigint, 0),
        'canceled', coalesce((c->>'canceled')::bigint, 0),
        'retries', coalesce((c->>'retries')::bigint, 0))
$$;
