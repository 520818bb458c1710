-- Keys that sign the OAuth access tokens rekey issues (ES256). The private key is sealed like a
-- resource key; retired keys stay to verify tokens issued before a rotation until they expire.
CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    sealed     BLOB NOT NULL,
    public_key BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);
