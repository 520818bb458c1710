//! Owns the bodies of Event Grid-shaped event subscriptions (`Microsoft.EventGrid/eventSubscriptions`,
//! the fields rekey reads and answers with; others a client sends are ignored), their dead letters,
//! and rekey's subscription key policy (`Rekey/keyPolicy`).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// `{"endpointUrl": "https://…"}`; Azure's other webhook settings are accepted and ignored.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = EventSubscriptionWebHookProperties)]
pub struct WebHookProperties {
    /// `https://…`, or `http://` to a loopback address. Answered back only as `endpointBaseUrl`
    /// (without its query, which may hold a code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_base_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = EventSubscriptionDestination)]
pub struct Destination {
    /// Only `WebHook`.
    pub endpoint_type: String,
    #[serde(default)]
    pub properties: Option<WebHookProperties>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = EventSubscriptionFilter)]
pub struct Filter {
    /// The event types delivered; absent or null: all.
    #[serde(default)]
    pub included_event_types: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// 1 to 30 (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_delivery_attempts: Option<i64>,
    /// 1 to 1440 (default 1440: 24 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time_to_live_in_minutes: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventSubscriptionCreateProperties {
    pub destination: Destination,
    #[serde(default)]
    pub filter: Option<Filter>,
    /// `EventGridSchema` (default) or `CloudEventSchemaV1_0`.
    #[serde(default)]
    pub event_delivery_schema: Option<String>,
    #[serde(default)]
    pub retry_policy: Option<RetryPolicy>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventSubscriptionCreate {
    pub properties: EventSubscriptionCreateProperties,
}

/// Not Debug: the creating answer carries the signing secret.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventSubscriptionProperties {
    /// The scope whose events it receives.
    pub topic: String,
    /// `Succeeded`, or `AwaitingManualAction` when the endpoint did not answer the validation
    /// handshake (it then receives nothing).
    pub provisioning_state: String,
    pub destination: Destination,
    pub filter: Filter,
    pub event_delivery_schema: String,
    pub retry_policy: RetryPolicy,
    /// The HMAC-SHA256 key of `x-rekey-signature`; in the answer of the PUT that creates the
    /// subscription only.
    #[serde(
        rename = "x-rekey-signingSecret",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub signing_secret: Option<String>,
}

/// Not Debug: see [`EventSubscriptionProperties`].
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct EventSubscription {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub properties: EventSubscriptionProperties,
}

/// An event that was not delivered: its Event Grid envelope and why it was given up.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub id: String,
    pub topic: String,
    pub subject: String,
    pub event_type: String,
    pub event_time: String,
    #[schema(value_type = Object)]
    pub data: Value,
    pub data_version: String,
    pub metadata_version: String,
    /// `MaxDeliveryAttemptsExceeded`, `TimeToLiveExceeded`, or `DeliveryRefused` (the endpoint
    /// answered 400 or 413, which is not retried).
    pub dead_letter_reason: String,
    pub delivery_attempts: i64,
    pub last_delivery_outcome: String,
    pub dead_lettered_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyPolicyProperties {
    /// Days a key may live before `listKeys` shows it overdue (1 to 3650); a resource's own
    /// `x-rekey-maxKeyAgeDays` takes precedence. Null: no default.
    pub max_key_age_days: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyPolicyCreate {
    pub properties: KeyPolicyProperties,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyPolicy {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub properties: KeyPolicyProperties,
}
