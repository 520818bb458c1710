-- Keys that sign the OAuth access tokens rekey issues (ES256). The private key is sealed like a
-- resource key; retired keys stay to verify tokens issued before a rotation until they expire.
CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    sealed     BYTEA NOT NULL,
    public_key BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
