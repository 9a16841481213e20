-- Semantic version precedence (semver.org 2.0.0, section 11), as include/ota/semver.h defines it for the server
-- and the device: -1, 0 or 1, NULL when either text is not a version. Build metadata is ignored; a leading 'v' is
-- accepted. In SQL so that ota_assign() can refuse a downgrade in the same transaction that reads the device.
CREATE OR REPLACE FUNCTION ota_semver_cmp(a text, b text) RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    version_re CONSTANT text := '^[vV]?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)'
                                '(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$';
    pa text[] := regexp_match(a, version_re);
    pb text[] := regexp_match(b, version_re);
    ia text[];
    ib text[];
BEGIN
    IF pa IS NULL OR pb IS NULL THEN
        RETURN NULL;
    END IF;
    FOR k IN 1..3 LOOP
        IF pa[k]::numeric <> pb[k]::numeric THEN
            RETURN sign(pa[k]::numeric - pb[k]::numeric)::integer;
        END IF;
    END LOOP;
    -- A version without a pre-release is above every pre-release of it.
    IF pa[4] IS NULL OR pb[4] IS NULL THEN
        RETURN (pa[4] IS NULL)::integer - (pb[4] IS NULL)::integer;
    END IF;
    ia := string_to_array(pa[4], '.');
    ib := string_to_array(pb[4], '.');
    FOR k IN 1..least(cardinality(ia), cardinality(ib)) LOOP
        CONTINUE WHEN ia[k] = ib[k];
        -- Numeric identifiers compare as numbers and are below alphanumeric ones, which compare in ASCII order.
        IF ia[k] ~ '^[0-9]+$' AND ib[k] ~ '^[0-9]+$' THEN
            RETURN sign(ia[k]::numeric - ib[k]::numeric)::integer;
        ELSIF ia[k] ~ '^[0-9]+$' THEN
            RETURN -1;
        ELSIF ib[k] ~ '^[0-9]+$' THEN
            RETURN 1;
        END IF;
        RETURN CASE WHEN ia[k] COLLATE "C" < ib[k] COLLATE "C" THEN -1 ELSE 1 END;
    END LOOP;
    RETURN sign(cardinality(ia) - cardinality(ib))::integer;
END $$;
