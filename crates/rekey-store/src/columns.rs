//! Owns how both backends turn records into column values and back where the two agree: times as
//! Unix microseconds, resource types as lower-case keys, the associated data a sealed key is bound
//! to, fresh etags. One place, so a row written by one backend's rules reads the same in the other.

use rekey_core::providers::Provider;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::StoreError;

pub(crate) fn now_micros() -> i64 {
    to_micros(OffsetDateTime::now_utc())
}

pub(crate) fn to_micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

pub(crate) fn from_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn new_etag() -> String {
    format!("\"{}\"", Uuid::new_v4())
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(crate) fn type_key(provider: &Provider) -> String {
    provider.type_name().to_ascii_lowercase()
}

/// The associated data a slot's sealed key is bound to: a sealed value copied to another resource,
/// slot or generation fails to open.
pub(crate) fn seal_context(resource: &Uuid, slot: &str, generation: i64) -> String {
    format!("{}/{slot}/{generation}", resource.simple())
}
