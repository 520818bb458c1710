-- Each slot's last use on the data plane moves out of key_slots into a narrow table of its own.
-- The data plane writes a slot's last use about once a minute while it is in use: as an UPDATE of
-- key_slots, each write copied the whole wide row (sealed key, digest) and, with no room left on a
-- bulk-loaded page, added entries to all three of its indexes. Here a write is an upsert of a small
-- row whose only index is the key it is found by. A use counts for the slot's generation it names:
-- reads join on it, so a regeneration needs no reset and a late use of a replaced key stays hidden.
CREATE TABLE key_last_uses (
    resource_id TEXT NOT NULL REFERENCES resources(internal_id) ON DELETE CASCADE,
    slot        TEXT NOT NULL,
    generation  BIGINT NOT NULL,
    used_at     BIGINT NOT NULL,
    PRIMARY KEY (resource_id, slot)
);
INSERT INTO key_last_uses (resource_id, slot, generation, used_at)
    SELECT resource_id, slot, generation, last_used_at FROM key_slots WHERE last_used_at IS NOT NULL;
ALTER TABLE key_slots DROP COLUMN last_used_at;
