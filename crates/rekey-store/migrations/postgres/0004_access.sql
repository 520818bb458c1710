-- Service tokens as principals with optional expiry and revocation; Azure-shaped role assignments;
-- the audit log, hash-chained so an edited or deleted record is detected.
ALTER TABLE principals ADD COLUMN expires_at BIGINT;
ALTER TABLE principals ADD COLUMN revoked_at BIGINT;
ALTER TABLE principals ADD COLUMN created_by TEXT;

CREATE TABLE role_assignments (
    id           TEXT PRIMARY KEY,
    scope        TEXT NOT NULL,
    scope_key    TEXT NOT NULL,
    role_id      TEXT NOT NULL,
    principal_id TEXT NOT NULL REFERENCES principals(id),
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL
);
CREATE INDEX role_assignments_by_principal ON role_assignments(principal_id);

-- Appended only under the store's log lock (src/postgres.rs, `append_log`), so records chain in one
-- line across every node.
CREATE TABLE audit_log (
    seq             BIGINT PRIMARY KEY,
    at              BIGINT NOT NULL,
    principal_id    TEXT NOT NULL,
    action          TEXT NOT NULL,
    scope           TEXT NOT NULL,
    subscription_id TEXT,
    source          TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    result          TEXT NOT NULL,
    prev_hash       BYTEA NOT NULL,
    hash            BYTEA NOT NULL
);
CREATE INDEX audit_log_by_subscription ON audit_log(subscription_id, at);
