//! Owns the bodies of rekey's own routes, outside ARM's resource providers: key verification
//! (`/verify`), the OpenAPI document's envelope, signing-key rotation, and what the web page asks:
//! sign-in and the session, permissions, and key activity.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /verify`.
// Not `Debug`: it carries a key.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct VerifyRequest {
    pub key: String,
}

/// How much a key allows on the data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Access {
    ReadWrite,
    ReadOnly,
}

/// The answer of `POST /verify`: `{"valid":false}`, or which resource and slot the key opens now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResult {
    pub valid: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub resource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub key_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, inline)]
    pub access: Option<Access>,
}

impl VerifyResult {
    pub fn invalid() -> Self {
        Self {
            valid: false,
            resource_id: None,
            key_name: None,
            access: None,
        }
    }
}

/// `GET /openapi.json`: an OpenAPI 3 document (only its envelope is described here).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OpenApiDocument {
    pub openapi: String,
    #[schema(value_type = Object)]
    pub paths: serde_json::Map<String, serde_json::Value>,
}

/// `POST /rekey/signing-keys/rotate`: the new token-signing key's id.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SigningKeyRotated {
    pub kid: String,
}

/// `POST /web/session`, as JSON or the page's form.
// Not `Debug`: it carries a token.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct WebSignIn {
    /// A service token (`rkt_…`)
    // Service tokens are a few dozen characters; the server reads a sign-in body up to 16 KiB,
    // which holds a token this long however it is escaped.
    #[schema(max_length = 1024)]
    pub token: String,
}

/// `GET /web/session`: `{"signedIn":false}`, or who is signed in and the CSRF token for the page's
/// writes.
// Not `Debug`: it carries the CSRF token.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebSession {
    pub signed_in: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub principal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub is_owner: Option<bool>,
    /// The x-csrf-token value for the page's writes with the session cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub csrf_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 0)]
    pub expires_in_seconds: Option<u64>,
}

impl WebSession {
    pub fn signed_out() -> Self {
        Self {
            signed_in: false,
            principal_id: None,
            name: None,
            is_owner: None,
            csrf_token: None,
            expires_in_seconds: None,
        }
    }
}

/// `GET /rekey/permissions`: each asked action, allowed on the scope or not.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Permissions {
    pub scope: String,
    /// Keyed by action name, in the order asked.
    #[schema(value_type = BTreeMap<String, bool>)]
    pub actions: serde_json::Map<String, serde_json::Value>,
}

/// `GET /rekey/keyActivity`: one entry per resource.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyActivity {
    #[schema(inline)]
    pub value: Vec<ResourceKeyActivity>,
}

/// One resource's key ages and last uses.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceKeyActivity {
    pub id: String,
    /// When the oldest of its current keys was made
    #[schema(format = DateTime)]
    pub oldest_key_created_at: Option<String>,
    /// When the data plane last accepted one of its keys
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    /// Each key slot by name: createdAt and lastUsedAt (null when never used)
    #[schema(inline)]
    pub keys: BTreeMap<String, SlotActivity>,
}

/// One key slot's current key: when it was made and last used.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SlotActivity {
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
}
