-- Long-running operations (Cosmos DB create, delete, regenerate). rekey finishes the work before it
-- answers, so an operation is written in the same transaction as its change, already Succeeded; the
-- record lets clients poll it, also after a restart. The id is random (122 bits): unguessable.
CREATE TABLE operations (
    id              TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    namespace       TEXT NOT NULL,
    location        TEXT NOT NULL,
    resource_id     TEXT NOT NULL,
    status          TEXT NOT NULL,
    started_at      BIGINT NOT NULL,
    ended_at        BIGINT NOT NULL
);
