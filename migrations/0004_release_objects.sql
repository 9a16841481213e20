-- A release's objects are its own. A release made from a presigned upload used to keep the upload's object
-- (uploads/<id>/<kind>) as its artifact, while the upload's PUT URL stayed valid; now the upload is copied to
-- releases/<release id>/<kind> (server/api/release_create.c). The object key then no longer names the upload, so
-- upload_id does, and its uniqueness keeps one upload to one release. Rows made before keep the upload's key.
ALTER TABLE artifacts ADD COLUMN upload_id uuid UNIQUE;
UPDATE artifacts SET upload_id = substring(object_key FROM 9 FOR 36)::uuid
 WHERE object_key ~ '^uploads/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/';

-- Whose turn it is to sweep object storage (server/releases/object_sweeper.c): one row; the instance whose update
-- moves next_at forward sweeps, the others wait for the next turn.
CREATE TABLE object_sweeps (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    next_at  timestamptz NOT NULL
);
INSERT INTO object_sweeps (next_at) VALUES (now());
