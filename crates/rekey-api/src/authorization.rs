//! Owns the bodies of role assignments and role definitions (Azure's `Microsoft.Authorization`
//! shapes), of rekey's service-token extension, and of the activity log (Azure Monitor's shape).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignmentCreateProperties {
    /// `/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role id}`, or the bare id.
    pub role_definition_id: String,
    pub principal_id: String,
    #[serde(default)]
    pub principal_type: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoleAssignmentCreate {
    pub properties: RoleAssignmentCreateProperties,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignmentProperties {
    pub role_definition_id: String,
    pub principal_id: String,
    pub principal_type: String,
    pub scope: String,
    pub created_on: String,
    pub created_by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoleAssignment {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub properties: RoleAssignmentProperties,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    pub data_actions: Vec<String>,
    pub not_data_actions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleDefinitionProperties {
    pub role_name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub description: String,
    pub assignable_scopes: Vec<String>,
    pub permissions: Vec<Permission>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoleDefinition {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub properties: RoleDefinitionProperties,
}

/// Body of `POST /rekey/tokens` (rekey extension).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenCreate {
    pub name: String,
    /// `90s`, `30m`, `12h` or `7d`; without it the token does not expire.
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// The answer to `POST /rekey/tokens`: the only time the token is shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenCreated {
    pub principal_id: String,
    pub name: String,
    pub token: String,
    pub expires_at: Option<String>,
}

/// A token as listed: never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub principal_id: String,
    pub name: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked: bool,
    pub created_by: Option<String>,
}

/// `GET /rekey/audit/verify`: whether the audit chain is intact, and where it first breaks.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerification {
    pub intact: bool,
    pub records: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_broken_seq: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
