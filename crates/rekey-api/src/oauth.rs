//! Owns the bodies of rekey's sign-in protocol routes: cloud discovery (`/metadata/endpoints`),
//! OpenID discovery and its keys (JWKS), and the OAuth 2.0 client-credentials token request and
//! answer, with OAuth's own error shape (not ARM's).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// OAuth's error answer (RFC 6749 §5.2).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OAuthError {
    pub error: String,
    pub error_description: String,
}

/// `GET /metadata/endpoints`: what `az cloud register --endpoint-resource-manager` reads.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudMetadata {
    pub name: String,
    pub portal: String,
    pub resource_manager: String,
    #[schema(inline)]
    pub authentication: CloudAuthentication,
    /// Always empty: rekey serves no other Azure service.
    #[schema(value_type = Object)]
    pub suffixes: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudAuthentication {
    pub login_endpoint: String,
    pub audiences: Vec<String>,
    pub tenant: String,
    pub identity_provider: String,
}

/// OpenID discovery for the tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OpenIdConfiguration {
    pub issuer: String,
    pub token_endpoint: String,
    pub authorization_endpoint: String,
    pub jwks_uri: String,
    pub response_types_supported: Vec<String>,
    pub subject_types_supported: Vec<String>,
    pub id_token_signing_alg_values_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    pub grant_types_supported: Vec<String>,
    pub tenant_region_scope: String,
}

/// The public keys that verify rekey's access tokens.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Jwks {
    #[schema(inline)]
    pub keys: Vec<Jwk>,
}

/// One P-256 public key (RFC 7517, RFC 7518 §6.2).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: String,
    pub kid: String,
    pub x: String,
    pub y: String,
}

/// The token request's form.
// Not `Debug`: it carries the client secret.
#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct OAuthTokenRequest {
    /// Read as sent, so that another grant gets OAuth's `unsupported_grant_type`.
    #[schema(value_type = GrantType, inline, required = true)]
    pub grant_type: Option<String>,
    /// Space-separated scopes, one of them this server's `{resourceManager}.default`.
    #[schema(nullable = false, required = true)]
    pub scope: Option<String>,
    /// A principal id (or send id and secret as `Authorization: Basic`); without it the answer is
    /// 401.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub client_id: Option<String>,
    /// The principal's service token; without it the answer is 401.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub client_secret: Option<String>,
}

impl OAuthTokenRequest {
    /// The request from a form's fields; a field sent twice counts as its last value.
    pub fn from_fields(fields: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut request = Self::default();
        for (name, value) in fields {
            let slot = match name.as_str() {
                "grant_type" => &mut request.grant_type,
                "scope" => &mut request.scope,
                "client_id" => &mut request.client_id,
                "client_secret" => &mut request.client_secret,
                _ => continue,
            };
            *slot = Some(value);
        }
        request
    }
}

/// The one grant rekey's token endpoint serves.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum GrantType {
    #[serde(rename = "client_credentials")]
    ClientCredentials,
}

/// An access token.
// Not `Debug`: it carries the token.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct OAuthToken {
    pub token_type: String,
    pub expires_in: i64,
    pub ext_expires_in: i64,
    pub access_token: String,
}
