-- rekey's schema for PostgreSQL, the same tables as migrations/sqlite with PostgreSQL's types: times are
-- Unix microseconds (BIGINT), byte strings BYTEA, JSON documents TEXT (the store reads and writes them
-- as opaque text, as on SQLite). Key values exist here only sealed (AES-256-GCM) and as keyed digests;
-- tokens only as SHA-256 digests.

CREATE TABLE subscriptions (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE principals (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    token_digest BYTEA NOT NULL UNIQUE,
    is_owner     BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE TABLE bootstrap (
    id              BIGINT PRIMARY KEY CHECK (id = 1),
    tenant_id       TEXT NOT NULL,
    subscription_id TEXT NOT NULL REFERENCES subscriptions(id),
    principal_id    TEXT NOT NULL REFERENCES principals(id),
    created_at      BIGINT NOT NULL
);

CREATE TABLE resource_groups (
    subscription_id TEXT NOT NULL REFERENCES subscriptions(id),
    name_key        TEXT NOT NULL,
    name            TEXT NOT NULL,
    location        TEXT NOT NULL,
    tags            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (subscription_id, name_key)
);

CREATE TABLE resources (
    internal_id     TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    group_key       TEXT NOT NULL,
    type_key        TEXT NOT NULL,
    name_key        TEXT NOT NULL,
    name            TEXT NOT NULL,
    location        TEXT NOT NULL,
    kind            TEXT,
    sku             TEXT,
    tags            TEXT NOT NULL,
    settings        TEXT NOT NULL,
    etag            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (subscription_id, group_key, type_key, name_key),
    FOREIGN KEY (subscription_id, group_key)
        REFERENCES resource_groups(subscription_id, name_key) ON DELETE CASCADE
);

CREATE TABLE key_slots (
    resource_id TEXT NOT NULL REFERENCES resources(internal_id) ON DELETE CASCADE,
    slot        TEXT NOT NULL,
    generation  BIGINT NOT NULL,
    sealed      BYTEA NOT NULL,
    digest      BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (resource_id, slot)
);

-- The change feed: every key change or resource deletion; caches follow it by seq. A sequence alone
-- would hand out numbers in the order transactions ask, not the order they commit; the store takes
-- one advisory lock around appending here and commits under it, so seq order is commit order (see
-- src/postgres.rs, `append_log`).
CREATE TABLE changes (
    seq         BIGSERIAL PRIMARY KEY,
    resource_id TEXT NOT NULL,
    slot        TEXT,
    change      TEXT NOT NULL,
    at          BIGINT NOT NULL
);
