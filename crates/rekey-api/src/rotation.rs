//! The wire types of rekey's own rotation extensions (not Azure's): `listKeyUsage`'s answer. The
//! other extensions take the resource type's `regenerateKey` body (`disableKey`, `enableKey`,
//! `endKeyGrace`) or are headers and `listKeys` fields, described in the README.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST {resource id}/listKeyUsage`: one entry per key slot, in the type's slot order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyUsageList {
    pub value: Vec<KeyUsage>,
}

/// One slot's data-plane use over the last 24 hours, summed over every node.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyUsage {
    /// The slot as the type's `regenerateKey` body names it (`Key1`, `Primary`, `primaryReadonly`).
    pub key_name: String,
    /// The last accepted use of the slot (RFC 3339), if any is known.
    pub last_used: Option<String>,
    /// The client address of the last use within 24 hours.
    pub last_client_address: Option<String>,
    /// Accepted uses within the last 24 hours.
    #[serde(rename = "requests24h")]
    pub requests_24h: u64,
    /// The minutes of the last 24 hours with uses, oldest first; minutes without are left out.
    pub per_minute: Vec<MinuteCount>,
    pub retired: RetiredUsage,
    /// Whole days since the slot's current key was made (as `listKeys`' `x-rekey-keyAge`).
    pub age_days: i64,
    /// Whether the key is older than `maxKeyAgeDays`.
    pub overdue: bool,
    /// The maximum age that applies: the resource's `x-rekey-maxKeyAgeDays`, else the
    /// subscription's key policy; null when neither is set.
    pub max_key_age_days: Option<i64>,
}

/// Uses within one minute.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MinuteCount {
    /// The minute's start (RFC 3339).
    pub start: String,
    pub count: u64,
}

/// Presentations of the slot's replaced keys (refused with a 401 saying when they were replaced).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetiredUsage {
    /// When the slot was last regenerated, if it ever was.
    pub regenerated_at: Option<String>,
    #[serde(rename = "presentations24h")]
    pub presentations_24h: u64,
    pub last_presented: Option<String>,
    pub last_client_address: Option<String>,
}

/// The request headers rekey's rotation extensions add to `regenerateKey`, as the OpenAPI document
/// describes them (a header's schema is this type's property of the same meaning). The handler
/// checks each header against these bounds; a unit test there keeps the two equal.
#[derive(ToSchema)]
pub struct RotationHeaders {
    /// `x-rekey-grace-seconds`.
    #[schema(minimum = 1, maximum = 604800)]
    pub grace_seconds: u32,
    /// `x-rekey-if-unused-for`.
    #[schema(minimum = 1, maximum = 86400)]
    pub if_unused_for: u32,
    /// `Idempotency-Key` and `x-ms-client-request-id`: visible ASCII.
    #[schema(min_length = 1, max_length = 256, pattern = "^[!-~]+$")]
    pub token: String,
}
