-- The bench fleet, loaded by scripts/bench in one transaction (psql -v ...):
--   devices   number of devices
--   size, crc32, sha256, md5   of the one small blob every artifact row describes
--   old_sha256   the SHA-256 release 1.0.0's bin is said to have (its object is the same blob: only heartbeats are
--                measured, which never read it), so that 1.0.0 and 1.1.0 are two images
-- Model 'bench-model'; releases 1.0.0 (what every device runs) and 1.1.0, each with
-- a bin and a ufw artifact (object keys bench/<version>.<kind>, files scripts/bench wrote);
-- device i: id md5('bench' || i)::uuid, serial BENCH-i, token 'otd_bench_' || i,
-- firmware 1.0.0. A ready delta from 1.0.0's image to 1.1.0 (object bench/delta, the same blob), for the runs whose
-- heartbeats say they run that image (firmware_sha256). Every tenth device (i % 10 = 0) has release 1.1.0 assigned and
-- already delivered, so each of its heartbeats re-sends the manifest; the others have none, and the tag
-- 'plain' (what the rollout runs of scripts/bench select).
-- The fleet is in its steady state: device i last wrote its presence (i % 120) seconds ago, so with
-- the default OTA_PRESENCE_INTERVAL of 120 s, devices / 120 of them a second come due for a rewrite,
-- as in production.
\set ON_ERROR_STOP 1
BEGIN;

INSERT INTO models (id, name) VALUES ('bench-model', 'Bench model');

INSERT INTO releases (id, model_id, version, notes)
VALUES (md5('bench-release-1.0.0')::uuid, 'bench-model', '1.0.0', 'bench'),
       (md5('bench-release-1.1.0')::uuid, 'bench-model', '1.1.0', 'bench');

INSERT INTO artifacts (release_id, kind, object_key, size, crc32, sha256, md5)
SELECT md5('bench-release-' || v)::uuid, k, 'bench/' || v || '.' || k, :size, :crc32,
       CASE WHEN v = '1.0.0' AND k = 'bin' THEN :'old_sha256' ELSE :'sha256' END, :'md5'
FROM unnest(ARRAY['1.0.0', '1.1.0']) AS v, unnest(ARRAY['bin', 'ufw']) AS k;

INSERT INTO release_deltas (to_release_id, from_release_id, from_sha256, status, object_key, size, sha256, finished_at)
VALUES (md5('bench-release-1.1.0')::uuid, md5('bench-release-1.0.0')::uuid, :'old_sha256', 'ready', 'bench/delta',
        :size, :'sha256', now());

INSERT INTO devices (id, serial, model_id, token_hash, firmware_version, last_seen_at, ota_status, tags)
SELECT md5('bench' || i)::uuid, 'BENCH-' || i, 'bench-model',
       sha256(convert_to('otd_bench_' || i, 'UTF8')), '1.0.0', now() - (i % 120) * interval '1 second',
       CASE WHEN i % 10 = 0 THEN 'delivered' ELSE 'none' END,
       CASE WHEN i % 10 = 0 THEN '{}'::text[] ELSE '{plain}'::text[] END
FROM generate_series(1, :devices) AS i;

-- Assignments in bulk: the transition trigger (event row, devices.ota_status, NOTIFY per row)
-- is bypassed for the load; its event rows are written set-wise here and
-- devices.ota_status was set above.
SET LOCAL session_replication_role = replica;
-- With what a delivery sends of the release, as ota_assign copies it.
INSERT INTO assignments (id, device_id, release_id, version, status, deliveries, delivered_at,
                         model, object_key, size, crc32, sha256)
SELECT md5('bench-assignment' || i)::uuid, md5('bench' || i)::uuid, md5('bench-release-1.1.0')::uuid,
       '1.1.0', 'delivered', 1, now(), 'bench-model', 'bench/1.1.0.bin', :size, :crc32, :'sha256'
FROM generate_series(10, :devices, 10) AS i;
INSERT INTO assignment_events (assignment_id, device_id, from_status, to_status)
SELECT id, device_id, s.f, s.t FROM assignments,
       (VALUES (NULL, 'pending'), ('pending', 'delivered')) AS s (f, t);
RESET session_replication_role;

COMMIT;
