//! Owns the bodies of role assignments and role definitions (Azure's `Microsoft.Authorization`
//! shapes), of rekey's service-token extension, and of the activity log (Azure Monitor's shape).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleAssignmentCreateProperties {
    /// A built-in role: its role definition id, or the id's last segment (the role's GUID).
    // The server's built-in roles, each GUID in either letter case (checked by a test there).
    #[schema(
        pattern = "^(?:[\\s\\S]*/)?(?:8[eE]3[aA][fF]657\\-[aA]8[fF][fF]\\-443[cC]\\-[aA]75[cC]\\-2[fF][eE]8[cC]4[bB][cC][bB]635|[bB]24988[aA][cC]\\-6180\\-42[aA]0\\-[aA][bB]88\\-20[fF]7382[dD][dD]24[cC]|5[dD]1[dD]1[cC]4[eE]\\-7[aA]0[bB]\\-4[fF]3[eE]\\-9[bB]8[aA]\\-2[cC]6[eE]4[fF]1[aA]0[bB]7[dD]|[aA][cC][dD][dD]72[aA]7\\-3385\\-48[eE][fF]\\-[bB][dD]42\\-[fF]606[fF][bB][aA]81[aA][eE]7|3[bB]9[eE]6[cC]2[fF]\\-1[dD]4[aA]\\-4[cC]8[eE]\\-[aA]7[fF]0\\-9[eE]2[dD]5[bB]6[cC]8[aA]1[fF]|43[dD]0[dD]8[aA][dD]\\-25[cC]7\\-4714\\-9337\\-8[bB][aA]259[aA]9[fF][eE]05)$"
    )]
    pub role_definition_id: String,
    /// The principal (a token's principalId); one that does not exist is answered 400
    /// PrincipalNotFound.
    // ARM's GUID pattern: hyphenated, hex digits in either case.
    #[schema(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        min_length = 36,
        max_length = 36
    )]
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
    /// Surrounding white space is dropped.
    // 1 to 100 characters, no C0 or C1 control characters, not only white space.
    #[schema(
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$",
        min_length = 1,
        max_length = 100
    )]
    pub name: String,
    /// `90s`, `30m`, `12h` or `7d`, up to ten years (3650d); without it the token does not expire.
    // Each unit's whole numbers from 1 up to ten years, without leading zeros (the server's
    // tests check this against the lifetime units).
    #[serde(default)]
    #[schema(
        pattern = "^(?:(?:[1-9][0-9]{0,7}|[1-2][0-9]{8}|30[0-9]{7}|31[0-4][0-9]{6}|315[0-2][0-9]{5}|3153[0-5][0-9]{4}|315360000)s|(?:[1-9][0-9]{0,5}|[1-4][0-9]{6}|5[0-1][0-9]{5}|52[0-4][0-9]{4}|525[0-5][0-9]{3}|5256000)m|(?:[1-9][0-9]{0,3}|[1-7][0-9]{4}|8[0-6][0-9]{3}|87[0-5][0-9]{2}|87600)h|(?:[1-9][0-9]{0,2}|[1-2][0-9]{3}|3[0-5][0-9]{2}|36[0-4][0-9]|3650)d)$"
    )]
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
