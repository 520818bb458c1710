//! Owns the activity log's event body: Azure Monitor's `EventData` (`Microsoft.Insights`), the
//! fields rekey fills from an audit record.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One audited call.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventData {
    #[schema(inline)]
    pub authorization: EventAuthorization,
    /// The principal id.
    pub caller: String,
    pub channels: String,
    pub correlation_id: String,
    pub event_data_id: String,
    #[schema(inline)]
    pub event_name: LocalizableString,
    #[schema(inline)]
    pub category: LocalizableString,
    pub event_timestamp: String,
    pub submission_timestamp: String,
    pub id: String,
    #[schema(value_type = EventLevel, inline)]
    pub level: String,
    pub operation_id: String,
    #[schema(inline)]
    pub operation_name: LocalizableString,
    pub resource_id: String,
    #[schema(inline)]
    pub status: LocalizableString,
    pub subscription_id: String,
    pub tenant_id: String,
    #[schema(inline)]
    pub http_request: HttpRequestInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventAuthorization {
    pub action: String,
    pub scope: String,
}

/// A value and its display form (rekey's are the same).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalizableString {
    pub value: String,
    pub localized_value: String,
}

impl LocalizableString {
    pub fn same(value: impl Into<String>) -> Self {
        let value = value.into();
        Self {
            localized_value: value.clone(),
            value,
        }
    }
}

/// An event's level: a refused call is a warning, a failed one an error.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum EventLevel {
    Informational,
    Warning,
    Error,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestInfo {
    pub client_ip_address: String,
}
