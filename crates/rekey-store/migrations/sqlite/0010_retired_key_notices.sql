-- When each slot last had its Rekey.RetiredKeyPresented event: at most one per slot an hour, on
-- every node together (the conditional upsert of this row is the guard).
CREATE TABLE retired_key_notices (
    resource_id TEXT NOT NULL REFERENCES resources(internal_id) ON DELETE CASCADE,
    slot        TEXT NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (resource_id, slot)
);
