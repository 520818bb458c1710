-- When each slot's current key was last accepted on the data plane (batched, off the request path);
-- NULL for a key never used. A regeneration resets it.
ALTER TABLE key_slots ADD COLUMN last_used_at BIGINT;
