-- The key-age sweep reads only slots old enough to be overdue (a limit is at least a day), so its
-- cost follows the number of old keys, not of all keys.
CREATE INDEX key_slots_created_at ON key_slots (created_at);
