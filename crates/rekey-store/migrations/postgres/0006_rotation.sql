-- rekey's own rotation controls (beyond Azure): disabled slots, retired keys, per-minute usage and
-- the answers of idempotent regenerations.

-- A disabled slot's key is refused on the data plane without being rotated.
ALTER TABLE key_slots ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0;

-- Keys replaced by a regeneration, by keyed digest only, so a presented old key is told apart from a
-- guess. `grace_until`: the key still opens the slot until then (an overlap asked for); `sealed` is
-- the key itself, encrypted as in key_slots, kept only during an overlap of a type whose clients
-- sign requests with it (Cosmos DB) and cleared when the overlap ends.
CREATE TABLE retired_keys (
    resource_id    TEXT NOT NULL REFERENCES resources(internal_id) ON DELETE CASCADE,
    slot           TEXT NOT NULL,
    generation     BIGINT NOT NULL,
    digest         BYTEA NOT NULL,
    regenerated_at BIGINT NOT NULL,
    grace_until    BIGINT,
    sealed         BYTEA,
    PRIMARY KEY (resource_id, slot, generation)
);

-- Data-plane uses of each slot per minute (Unix minutes), summed over every node: each node adds
-- its counts. `retired`: presentations of the slot's retired keys. Rows older than a day are pruned;
-- rows of a deleted resource go with them.
CREATE TABLE key_usage (
    resource_id    TEXT NOT NULL,
    slot           TEXT NOT NULL,
    minute         BIGINT NOT NULL,
    uses           BIGINT NOT NULL DEFAULT 0,
    last_at        BIGINT,
    last_client    TEXT,
    retired        BIGINT NOT NULL DEFAULT 0,
    retired_at     BIGINT,
    retired_client TEXT,
    PRIMARY KEY (resource_id, slot, minute)
);
CREATE INDEX key_usage_by_minute ON key_usage (minute);

-- The committed answers of regenerations sent with an Idempotency-Key or x-ms-client-request-id,
-- encrypted (they hold keys); `fingerprint` identifies the request the answer belongs to.
CREATE TABLE idempotency (
    principal_id TEXT NOT NULL,
    kind         TEXT NOT NULL,
    token        TEXT NOT NULL,
    fingerprint  BYTEA NOT NULL,
    sealed       BYTEA,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (principal_id, kind, token)
);
CREATE INDEX idempotency_by_age ON idempotency (created_at);
