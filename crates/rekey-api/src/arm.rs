//! Owns the bodies common to every ARM call: the error envelope, lists, subscriptions and resource
//! groups (`Microsoft.Resources`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// ARM's error envelope: `{"error":{"code","message","target","details","additionalInfo"}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    #[schema(no_recursion)]
    pub details: Vec<ErrorDetail>,
    #[serde(default)]
    pub additional_info: Vec<serde_json::Value>,
}

impl ErrorResponse {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                target: None,
                details: Vec::new(),
                additional_info: Vec::new(),
            },
        }
    }
}

/// ARM's list envelope.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct List<T> {
    pub value: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(nullable = false)]
    pub next_link: Option<String>,
}

impl<T> List<T> {
    pub fn of(value: Vec<T>) -> Self {
        Self {
            value,
            next_link: None,
        }
    }
}

/// Body of `PUT /subscriptions/{id}` (a rekey extension: Azure creates subscriptions elsewhere).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionCreate {
    /// 1 to 64 characters, not blank.
    #[schema(pattern = "\\S", max_length = 64)]
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionPolicies {
    pub location_placement_id: String,
    pub quota_id: String,
    pub spending_limit: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    pub subscription_id: String,
    pub tenant_id: String,
    pub display_name: String,
    pub state: String,
    pub subscription_policies: SubscriptionPolicies,
    pub authorization_source: String,
}

// The location pattern is `rekey_core`'s, passed in as a literal for `#[schema]`.
macro_rules! resource_group_create {
    ($location:tt) => {
        /// Body of `PUT /subscriptions/{sub}/resourcegroups/{name}`.
        #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct ResourceGroupCreate {
            #[schema(pattern = $location, max_length = 64)]
            pub location: String,
            #[serde(default)]
            pub tags: Option<BTreeMap<String, String>>,
            #[serde(default)]
            pub managed_by: Option<String>,
        }
    };
}
rekey_core::location_pattern!(resource_group_create);

/// Body of `PATCH /subscriptions/{sub}/resourcegroups/{name}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ResourceGroupPatch {
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceGroupProperties {
    pub provisioning_state: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResourceGroup {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub location: String,
    pub tags: BTreeMap<String, String>,
    pub properties: ResourceGroupProperties,
}

/// The states of a long-running operation, as ARM names them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum OperationState {
    InProgress,
    Succeeded,
    Failed,
    Canceled,
}

/// The states of a finished long-running operation.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum FinishedState {
    Succeeded,
    Failed,
    Canceled,
}

/// `GET …/locations/{location}/operationsStatus/{operationId}`: a long-running operation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    pub id: String,
    pub name: String,
    /// As stored; one of the states of an operation.
    #[schema(value_type = OperationState, inline)]
    pub status: String,
    pub start_time: String,
    pub end_time: String,
    #[schema(maximum = 100)]
    pub percent_complete: u8,
}

/// `GET …/locations/{location}/operationResults/{operationId}`: a finished operation's status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperationResult {
    /// As stored; one of the states of a finished operation.
    #[schema(value_type = FinishedState, inline)]
    pub status: String,
}

/// The body of a `202 Accepted` long-running delete or regenerate: `{"status":"Enqueued"}`, as
/// Azure answers for an operation it has queued.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OperationAccepted {
    #[schema(pattern = "^Enqueued$")]
    pub status: String,
}

impl OperationAccepted {
    pub fn enqueued() -> Self {
        Self {
            status: "Enqueued".into(),
        }
    }
}
