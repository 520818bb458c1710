-- Event Grid-shaped event subscriptions, the transactional outbox of events, and key-age policy.

-- A webhook that receives the events of resources at or below `scope`. The signing secret is sealed
-- like a key (bound to the subscription's id); `provisioning_state` is `Succeeded` once the endpoint
-- answered the validation handshake, `AwaitingManualAction` when it did not (it then gets nothing).
CREATE TABLE event_subscriptions (
    id                   TEXT PRIMARY KEY,
    subscription_id      TEXT NOT NULL,
    scope_key            TEXT NOT NULL,
    scope                TEXT NOT NULL,
    name_key             TEXT NOT NULL,
    name                 TEXT NOT NULL,
    endpoint_url         TEXT NOT NULL,
    included_event_types TEXT,
    delivery_schema      TEXT NOT NULL,
    max_attempts         INTEGER NOT NULL,
    ttl_minutes          INTEGER NOT NULL,
    sealed_secret        BLOB NOT NULL,
    provisioning_state   TEXT NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    UNIQUE (scope_key, name_key)
);
CREATE INDEX event_subscriptions_by_subscription ON event_subscriptions (subscription_id);

-- An event, written in the transaction of the change it reports. `data` is ARM's data object (never
-- a key); the envelope is made at delivery, in the schema each subscription asked for.
CREATE TABLE events (
    id              TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    subject         TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    event_time      INTEGER NOT NULL,
    data            TEXT NOT NULL
);

-- One row per event and subscription that should receive it, until delivered (then deleted) or
-- dead-lettered (`state` = 'dead', kept for the deadLetters view). A node claims a row by setting
-- `lease_owner` and `lease_until`; another node takes it only after the lease ran out.
CREATE TABLE event_deliveries (
    event_id        TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    target_id       TEXT NOT NULL REFERENCES event_subscriptions(id) ON DELETE CASCADE,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until     INTEGER,
    last_error      TEXT,
    dead_reason     TEXT,
    dead_at         INTEGER,
    PRIMARY KEY (event_id, target_id)
);
CREATE INDEX event_deliveries_due ON event_deliveries (state, next_attempt_at);

-- A subscription's default maximum key age, in days.
CREATE TABLE key_policies (
    subscription_id  TEXT PRIMARY KEY,
    max_key_age_days INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

-- Which key generations have had their Rekey.KeyAgeExceeded event: one per slot and generation.
CREATE TABLE key_age_notices (
    resource_id TEXT NOT NULL REFERENCES resources(internal_id) ON DELETE CASCADE,
    slot        TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (resource_id, slot, generation)
);
