-- The firmware versions devices run (the distinct values of devices.firmware_version) that satisfy every
-- comparator of p_range by semver precedence (ota_semver_cmp): space-separated comparators such as "<1.2.0",
-- ">=1.0.0 <1.2.0" or "=1.1.0", each an operator (<, <=, >, >=, =) and a version, as the server normalizes a
-- range (server/core/version_range.h). A text that is no such range matches no version.
--
-- The distinct versions come from a loose index scan of devices_firmware_version: one index probe for each next
-- version, so the cost grows with the number of versions in the fleet, not with the number of devices.
-- PL/pgSQL, bound at its first call, because ota_semver_cmp's file sorts after this one (server/db/migrate.h).
CREATE OR REPLACE FUNCTION ota_fleet_versions(p_range text) RETURNS text[]
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        WITH RECURSIVE v(version) AS (
            (SELECT firmware_version FROM devices WHERE firmware_version IS NOT NULL ORDER BY firmware_version LIMIT 1)
            UNION ALL
            SELECT (SELECT d.firmware_version FROM devices d WHERE d.firmware_version > v.version
                    ORDER BY d.firmware_version LIMIT 1)
            FROM v WHERE v.version IS NOT NULL
        ), c AS (
            SELECT coalesce(m[1], '=') AS op, m[2] AS version
            FROM regexp_split_to_table(btrim(p_range), ' +') AS x, regexp_match(x, '^(<=|>=|<|>|=)?(.+)$') AS m
        )
        SELECT coalesce(array_agg(v.version ORDER BY v.version), '{}')
        FROM v
        WHERE v.version IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM c WHERE NOT coalesce(CASE c.op
                WHEN '<' THEN ota_semver_cmp(v.version, c.version) < 0
                WHEN '<=' THEN ota_semver_cmp(v.version, c.version) <= 0
                WHEN '>' THEN ota_semver_cmp(v.version, c.version) > 0
                WHEN '>=' THEN ota_semver_cmp(v.version, c.version) >= 0
                ELSE ota_semver_cmp(v.version, c.version) = 0
            END, false))
    );
END $$;
