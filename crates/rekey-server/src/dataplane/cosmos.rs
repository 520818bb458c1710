//! Cosmos DB's master-key check: the request's `Authorization` signature is recomputed with each of
//! the account's keys over the string to sign (verb, resource type, resource link, `x-ms-date`), and
//! the date must be within 15 minutes of now, so a captured request cannot be replayed later. Also
//! what rekeyd answers itself for an account without an upstream: the account read, and a Cosmos
//! DB-shaped 501 for everything else.

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use rekey_core::cosmos_auth::{self, CosmosAuthError};
use ring::hmac;
use time::OffsetDateTime;

use super::index::Entry;

/// How far `x-ms-date` may be from the server's clock.
pub const MAX_SKEW: time::Duration = time::Duration::minutes(15);

#[derive(Debug, PartialEq, Eq)]
pub enum CosmosRefusal {
    /// No header, a malformed one, or no key of the account signed it.
    BadSignature,
    /// `x-ms-date` missing, malformed, or too far from now.
    StaleDate,
}

/// The index of the slot whose key signed this request.
pub fn signing_slot(
    entry: &Entry,
    method: &str,
    path_below_account: &str,
    call: &impl super::Call,
    now: OffsetDateTime,
) -> Result<usize, CosmosRefusal> {
    let header = |name: &str| call.header(name);
    let auth = header("authorization")
        .ok_or(CosmosRefusal::BadSignature)
        .and_then(|raw| {
            cosmos_auth::parse_authorization(raw).map_err(|_| CosmosRefusal::BadSignature)
        })?;
    let date_text = header("x-ms-date").ok_or(CosmosRefusal::StaleDate)?;
    let date = cosmos_auth::parse_date(date_text)
        .map_err(|_: CosmosAuthError| CosmosRefusal::StaleDate)?;
    if (now - date).abs() > MAX_SKEW {
        return Err(CosmosRefusal::StaleDate);
    }
    let signature = base64::engine::general_purpose::STANDARD
        .decode(auth.signature.as_bytes())
        .map_err(|_| CosmosRefusal::BadSignature)?;
    let (resource_type, link) = cosmos_auth::resource_parts(path_below_account);
    let to_sign = cosmos_auth::string_to_sign(method, &resource_type, &link, date_text);
    (0..entry.slot_count())
        .position(|i| {
            // ring's verify compares in constant time.
            entry
                .signing_key(i)
                .is_some_and(|key| hmac::verify(key, to_sign.as_bytes(), &signature).is_ok())
        })
        .or_else(|| {
            // A replaced key in its overlap still signs for its slot.
            let now = (now.unix_timestamp_nanos() / 1000) as i64;
            super::rotation::grace_signer(entry, to_sign.as_bytes(), &signature, now)
        })
        .ok_or(CosmosRefusal::BadSignature)
}

/// Whether rekeyd answers this authenticated call itself when the account has no upstream: only
/// the account read (`GET` at the account root), which every Cosmos DB SDK makes when a client is
/// created. Anything else (databases, containers, documents) needs a real Cosmos DB behind rekeyd.
pub fn serves_itself(method: &Method, path_below_account: &str) -> bool {
    method == Method::GET && path_below_account.trim_matches('/').is_empty()
}

/// The answer to an authenticated call rekeyd does not serve itself, in Cosmos DB's error shape so
/// the SDKs raise their own error type (`CosmosHttpResponseError`, `ErrorResponse`) with a message
/// that says what to do.
pub fn not_implemented() -> super::Answer {
    let body = serde_json::json!({
        "code": "NotImplemented",
        "message": "rekeyd checked the key, but serves only the account read (GET /) for this Cosmos DB account itself. To serve databases, containers and documents, set the account's properties.x-rekey-upstream to the base URL of a Cosmos DB-compatible service; authenticated calls are then forwarded to it.",
    });
    super::Answer::Json {
        status: StatusCode::NOT_IMPLEMENTED,
        body: body.to_string().into_bytes(),
        retry_after: None,
    }
}

/// The database-account document azure-cosmos reads when a client is created: its endpoints point
/// back at this account's data plane.
pub fn account_document(
    entry: &Entry,
    endpoint: &str,
    who: serde_json::Value,
) -> serde_json::Value {
    let location =
        serde_json::json!({ "name": entry.location(), "databaseAccountEndpoint": endpoint });
    serde_json::json!({
        "_self": "",
        "id": entry.name(),
        "_rid": format!("{}.rekey", entry.name()),
        "media": "//media/",
        "addresses": "//addresses/",
        "_dbs": "//dbs/",
        "writableLocations": [location.clone()],
        "readableLocations": [location],
        "enableMultipleWriteLocations": false,
        "continuousBackupEnabled": false,
        "enableNRegionSynchronousCommit": false,
        "userReplicationPolicy": { "asyncReplication": false, "minReplicaSetSize": 3, "maxReplicasetSize": 4 },
        "userConsistencyPolicy": { "defaultConsistencyLevel": "Session" },
        "systemReplicationPolicy": { "minReplicaSetSize": 3, "maxReplicasetSize": 4 },
        "readPolicy": { "primaryReadCoefficient": 1, "secondaryReadCoefficient": 1 },
        "queryEngineConfiguration": "{}",
        "x-rekey-authenticated": who,
    })
}
