-- Before the data plane's index has loaded, a presented key is looked up in the store by digest:
-- a replaced key in its overlap is found as fast as a current one (key_slots.digest is unique).
CREATE INDEX retired_keys_by_digest ON retired_keys (digest);
