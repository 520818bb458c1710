//! Owns rekey as an identity provider for the real `az` CLI: cloud discovery
//! (`/metadata/endpoints`), OpenID discovery and JWKS under `/{tenantId}/…`, and the OAuth 2.0
//! client-credentials token endpoint. The client id is a principal's id and the client secret its
//! service token; the access token is an ES256 JWT signed with a key kept sealed in the store, and is
//! accepted wherever a service token is, with the same roles (the principal is looked up on every
//! call, so revoking its token ends its JWTs too).

use std::sync::RwLock;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use rekey_api::mapping::schema_of;
use rekey_api::oauth::{
    CloudAuthentication, CloudMetadata, Jwk, Jwks, OAuthError, OAuthToken, OAuthTokenRequest,
    OpenIdConfiguration,
};
use rekey_api::service::SigningKeyRotated;
use rekey_core::secret::constant_time_eq;
use rekey_store::crypto::token_digest;
use rekey_store::{AuditRecord, SigningKey, Store, StoreError};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::authz::Caller;
use crate::error::ApiError;
use crate::route_table::{Op, RouteTable};
use crate::rules;
use crate::state::AppState;

/// Claims rekey puts in, and requires of, an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub tid: String,
    pub oid: String,
    pub sub: String,
    pub appid: String,
    pub azp: String,
    pub ver: String,
    pub idtyp: String,
}

/// Why a JWT was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum JwtError {
    Malformed,
    Signature,
    Expired,
    WrongAudienceOrIssuer,
}

/// Signs and verifies access tokens with the store's signing keys.
pub struct TokenIssuer {
    keys: RwLock<Vec<SigningKey>>,
    rng: SystemRandom,
    pub ttl: time::Duration,
}

fn new_signing_key(rng: &SystemRandom) -> SigningKey {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
        .expect("P-256 key generation needs only the OS random number generator");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng)
        .expect("a freshly generated PKCS#8 key parses");
    let mut kid = [0u8; 8];
    ring::rand::SecureRandom::fill(rng, &mut kid)
        .expect("the OS random number generator is available");
    SigningKey {
        kid: hex::encode(kid),
        pkcs8: zeroize::Zeroizing::new(pkcs8.as_ref().to_vec()),
        public_key: pair.public_key().as_ref().to_vec(),
        created_at: OffsetDateTime::now_utc(),
        retired_at: None,
    }
}

fn system_record(action: &str) -> AuditRecord {
    AuditRecord {
        at: OffsetDateTime::now_utc(),
        principal_id: "rekeyd".into(),
        action: action.into(),
        scope: "/rekey/signing-keys".into(),
        source: "local".into(),
        request_id: crate::state::new_request_id(),
        result: "Succeeded".into(),
    }
}

impl TokenIssuer {
    /// Loads the signing keys, making the first one on a new database.
    pub async fn load(store: &dyn Store, ttl: time::Duration) -> Result<Self, StoreError> {
        let rng = SystemRandom::new();
        let mut keys = store.signing_keys().await?;
        if keys.iter().all(|k| k.retired_at.is_some()) {
            store
                .rotate_signing_key(
                    &new_signing_key(&rng),
                    &system_record("Rekey/signingKeys/write"),
                )
                .await?;
            keys = store.signing_keys().await?;
        }
        Ok(Self {
            keys: RwLock::new(keys),
            rng,
            ttl,
        })
    }

    /// Replaces the active key; tokens signed with retired keys stay valid until they expire.
    pub async fn rotate(
        &self,
        store: &dyn Store,
        audit: &AuditRecord,
    ) -> Result<String, StoreError> {
        let key = new_signing_key(&self.rng);
        let kid = key.kid.clone();
        store.rotate_signing_key(&key, audit).await?;
        self.reload(store).await?;
        Ok(kid)
    }

    async fn reload(&self, store: &dyn Store) -> Result<(), StoreError> {
        let keys = store.signing_keys().await?;
        *self.keys.write().expect("key lock is never poisoned") = keys;
        Ok(())
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let keys = self.keys.read().expect("key lock is never poisoned");
        let key = keys
            .iter()
            .find(|k| k.retired_at.is_none())
            .expect("an active signing key exists after load");
        let header = json!({ "alg": "ES256", "typ": "JWT", "kid": key.kid });
        let signed = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(serde_json::to_vec(claims).expect("claims serialize"))
        );
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.pkcs8, &self.rng)
                .expect("stored signing keys are valid PKCS#8");
        let signature = pair
            .sign(&self.rng, signed.as_bytes())
            .expect("ECDSA signing does not fail");
        format!("{signed}.{}", B64URL.encode(signature.as_ref()))
    }

    fn verify_signature(&self, kid: &str, message: &[u8], signature: &[u8]) -> Option<bool> {
        let keys = self.keys.read().expect("key lock is never poisoned");
        let key = keys.iter().find(|k| k.kid == kid)?;
        Some(
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &key.public_key)
                .verify(message, signature)
                .is_ok(),
        )
    }

    /// The claims of a valid token for this audience and issuer.
    pub async fn verify(
        &self,
        store: &dyn Store,
        token: &str,
        audience: &str,
        issuer: &str,
    ) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        #[derive(Deserialize)]
        struct Header {
            alg: String,
            kid: String,
        }
        let header: Header = B64URL
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::Malformed)?;
        if header.alg != "ES256" {
            return Err(JwtError::Signature);
        }
        let signature = B64URL.decode(s).map_err(|_| JwtError::Malformed)?;
        let message = &token.as_bytes()[..h.len() + 1 + p.len()];
        let valid = match self.verify_signature(&header.kid, message, &signature) {
            Some(valid) => valid,
            // Another node may have rotated: look again before refusing.
            None => {
                self.reload(store).await.map_err(|_| JwtError::Signature)?;
                self.verify_signature(&header.kid, message, &signature)
                    .unwrap_or(false)
            }
        };
        if !valid {
            return Err(JwtError::Signature);
        }
        let claims: Claims = B64URL
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::Malformed)?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        if claims.exp <= now || claims.nbf > now + 300 {
            return Err(JwtError::Expired);
        }
        if claims.aud.trim_end_matches('/') != audience.trim_end_matches('/')
            || claims.iss != issuer
        {
            return Err(JwtError::WrongAudienceOrIssuer);
        }
        Ok(claims)
    }

    fn jwks(&self) -> Jwks {
        let keys = self.keys.read().expect("key lock is never poisoned");
        let keys = keys
            .iter()
            .filter(|k| k.public_key.len() == 65)
            .map(|k| Jwk {
                kty: "EC".into(),
                crv: "P-256".into(),
                use_: "sig".into(),
                alg: "ES256".into(),
                kid: k.kid.clone(),
                x: B64URL.encode(&k.public_key[1..33]),
                y: B64URL.encode(&k.public_key[33..65]),
            })
            .collect();
        Jwks { keys }
    }
}

async fn metadata_endpoints(State(state): State<AppState>) -> Json<CloudMetadata> {
    let base = &state.ctx.public_url;
    Json(CloudMetadata {
        name: "rekey".into(),
        portal: format!("{base}/web/"),
        resource_manager: format!("{base}/"),
        authentication: CloudAuthentication {
            login_endpoint: base.clone(),
            audiences: vec![state.token_audience()],
            tenant: state.tenant_id.to_string(),
            identity_provider: "AAD".into(),
        },
        suffixes: Default::default(),
    })
}

/// The refusal for a tenant that is not this rekey's, if it is not.
fn wrong_tenant(state: &AppState, tenant: &str) -> Option<Response> {
    if tenant.eq_ignore_ascii_case(&state.tenant_id.to_string()) {
        return None;
    }
    Some(oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_tenant",
        &format!("Tenant '{tenant}' not found: this rekey's tenant is another."),
    ))
}

async fn openid_configuration(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
) -> Response {
    if let Some(r) = wrong_tenant(&state, &tenant) {
        return r;
    }
    let base = format!("{}/{}", state.ctx.public_url, state.tenant_id);
    let strings = |values: &[&str]| values.iter().map(|v| v.to_string()).collect();
    Json(OpenIdConfiguration {
        issuer: state.token_issuer_url(),
        token_endpoint: format!("{base}/oauth2/v2.0/token"),
        authorization_endpoint: format!("{base}/oauth2/v2.0/authorize"),
        jwks_uri: format!("{base}/discovery/v2.0/keys"),
        response_types_supported: strings(&["token"]),
        subject_types_supported: strings(&["pairwise"]),
        id_token_signing_alg_values_supported: strings(&["ES256"]),
        token_endpoint_auth_methods_supported: strings(&[
            "client_secret_post",
            "client_secret_basic",
        ]),
        grant_types_supported: strings(&["client_credentials"]),
        tenant_region_scope: "rekey".into(),
    })
    .into_response()
}

async fn jwks(State(state): State<AppState>, Path(tenant): Path<String>) -> Response {
    if let Some(r) = wrong_tenant(&state, &tenant) {
        return r;
    }
    Json(state.issuer.jwks()).into_response()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(OAuthError {
            error: error.into(),
            error_description: description.into(),
        }),
    )
        .into_response()
}

/// The token request's form fields, or why there are none. A body that is not a form is OAuth's
/// `invalid_request` (as Microsoft's endpoint answers it), in OAuth's error shape rather than
/// axum's plain-text 415.
fn token_form(headers: &HeaderMap, body: &Bytes) -> Result<OAuthTokenRequest, String> {
    let is_form = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(FORM));
    if !is_form {
        return Err(format!(
            "The token request must be a form (Content-Type: {FORM})."
        ));
    }
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .map(OAuthTokenRequest::from_fields)
        .map_err(|e| format!("The token request's form cannot be read: {e}."))
}

const FORM: &str = "application/x-www-form-urlencoded";

/// Why a token request's client credentials cannot be read.
enum BadCredentials {
    /// Sent both in `Authorization` and in the form (RFC 6749 §2.3: one method only).
    TwoMethods,
    /// An `Authorization: Basic` header that does not decode to `id:secret`.
    Unreadable,
}

/// The client's id and secret: from `Authorization: Basic` (`client_secret_basic`; RFC 6749
/// §2.3.1 form-encodes each part before base64) or from the form (`client_secret_post`), as the
/// discovery document advertises both. `None` when neither was sent.
fn client_credentials(
    headers: &HeaderMap,
    form: &OAuthTokenRequest,
) -> Result<Option<(String, zeroize::Zeroizing<String>)>, BadCredentials> {
    // Only a Basic header authenticates the client; any other `Authorization` (a bearer token a
    // tool sends everywhere) is not client authentication and is ignored, as before.
    let basic = headers
        .get(axum::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .filter(|v| v.len() > 6 && v[..6].eq_ignore_ascii_case(b"basic "));
    let Some(basic) = basic else {
        return Ok(match (&form.client_id, &form.client_secret) {
            (Some(id), Some(secret)) => Some((id.clone(), secret.clone().into())),
            _ => None,
        });
    };
    if form.client_id.is_some() || form.client_secret.is_some() {
        return Err(BadCredentials::TwoMethods);
    }
    let encoded = std::str::from_utf8(&basic[6..])
        .map_err(|_| BadCredentials::Unreadable)?
        .trim();
    let decoded = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| BadCredentials::Unreadable)?,
    );
    let text = std::str::from_utf8(&decoded).map_err(|_| BadCredentials::Unreadable)?;
    let (id, secret) = text.split_once(':').ok_or(BadCredentials::Unreadable)?;
    let form_decode = |part: &str| -> Result<String, BadCredentials> {
        percent_encoding::percent_decode_str(&part.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| BadCredentials::Unreadable)
    };
    Ok(Some((form_decode(id)?, form_decode(secret)?.into())))
}

async fn token(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = wrong_tenant(&state, &tenant) {
        return r;
    }
    let form = match token_form(&headers, &body) {
        Ok(form) => form,
        Err(why) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &why),
    };
    if form.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only grant_type=client_credentials is supported.",
        );
    }
    let audience = state.token_audience();
    let scope_ok = form
        .scope
        .as_ref()
        .is_some_and(|scopes| rules::oauth_scope_rule(&audience).matches(scopes));
    if !scope_ok {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            &format!("The scope must be '{audience}.default'."),
        );
    }
    let refuse = || {
        oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Invalid client id or client secret.",
        )
    };
    let (client_id, secret) = match client_credentials(&headers, &form) {
        Ok(Some(credentials)) => credentials,
        Ok(None) | Err(BadCredentials::Unreadable) => return refuse(),
        Err(BadCredentials::TwoMethods) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Send the client credentials either in the Authorization header or in the form, not both.",
            )
        }
    };
    let Ok(client) = Uuid::parse_str(&client_id) else {
        return refuse();
    };
    let principal = match state.store.principal_by_token(&token_digest(&secret)).await {
        Ok(p) => p,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let now = OffsetDateTime::now_utc();
    let Some(principal) =
        principal.filter(|p| constant_time_eq(p.id.as_bytes(), client.as_bytes()) && p.active(now))
    else {
        tracing::info!(client = %client, "token request refused: wrong client id or secret");
        return refuse();
    };
    let mut exp = now + state.issuer.ttl;
    if let Some(token_expiry) = principal.expires_at {
        exp = exp.min(token_expiry);
    }
    let id = principal.id.to_string();
    let claims = Claims {
        aud: audience.clone(),
        iss: state.token_issuer_url(),
        iat: now.unix_timestamp(),
        nbf: now.unix_timestamp(),
        exp: exp.unix_timestamp(),
        tid: state.tenant_id.to_string(),
        oid: id.clone(),
        sub: id.clone(),
        appid: id.clone(),
        azp: id,
        ver: "2.0".into(),
        idtyp: "app".into(),
    };
    let expires_in = claims.exp - claims.iat;
    Json(OAuthToken {
        token_type: "Bearer".into(),
        expires_in,
        ext_expires_in: expires_in,
        access_token: state.issuer.sign(&claims),
    })
    .into_response()
}

async fn rotate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let audit = state
        .authorize(&caller, "Rekey/signingKeys/write", "/")
        .await?;
    let kid = state.issuer.rotate(state.store.as_ref(), &audit).await?;
    Ok(Json(SigningKeyRotated { kid }).into_response())
}

/// Registers the bodies of the discovery and token routes; returns the names of the OAuth error,
/// the cloud metadata, the OpenID configuration, the JWKS, the token request, the token and a
/// signing-key rotation's answer.
fn schemas(table: &mut RouteTable) -> [String; 7] {
    let mut all = Vec::new();
    let names = [
        schema_of::<OAuthError>(&mut all),
        schema_of::<CloudMetadata>(&mut all),
        schema_of::<OpenIdConfiguration>(&mut all),
        schema_of::<Jwks>(&mut all),
        schema_of::<OAuthTokenRequest>(&mut all),
        schema_of::<OAuthToken>(&mut all),
        schema_of::<SigningKeyRotated>(&mut all),
    ];
    table.schemas(all);
    names
}

/// States in `/openapi.json` what only the running server knows: the one tenant id its OAuth and
/// OpenID routes serve, and the scope its token endpoint grants (`{public_url}/.default`).
pub fn describe_this_server(doc: &mut serde_json::Value, tenant: Uuid, public_url: &str) {
    let mut tenant_schema =
        serde_json::to_value(rules::tenant_rule(tenant).schema()).expect("a schema serializes");
    tenant_schema["description"] = "This rekey's tenant id (bootstrap.json `tenantId`).".into();
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            if !path.starts_with("/{tenantId}/") {
                continue;
            }
            let operations = item
                .as_object_mut()
                .into_iter()
                .flat_map(|o| o.values_mut());
            for operation in operations {
                let parameters = operation["parameters"].as_array_mut().into_iter().flatten();
                for parameter in parameters.filter(|p| p["name"] == "tenantId") {
                    parameter["schema"] = tenant_schema.clone();
                }
            }
        }
    }
    let scope = &mut doc["components"]["schemas"]["OAuthTokenRequest"]["properties"]["scope"];
    if scope.is_object() {
        scope["pattern"] = rules::oauth_scope_rule(&format!("{public_url}/"))
            .pattern()
            .into();
    }
}

pub fn register(table: &mut RouteTable) {
    let [error, metadata, configuration, keys, request, token_answer, rotated] = schemas(table);
    // Which tenant is this server's is known only when it runs (see `describe_this_server`).
    let tenant = rules::GUID.param_rule();
    let wrong_tenant = "Not this rekey's tenant (`invalid_tenant`)";
    table.route(
        Method::GET,
        "/metadata/endpoints",
        Op::public(
            "Metadata_Endpoints",
            "Cloud discovery for `az cloud register --endpoint-resource-manager`.",
        )
        .response(200, "This cloud's endpoints", Some(metadata)),
        get(metadata_endpoints),
    );
    table.route(
        Method::GET,
        "/{tenantId}/v2.0/.well-known/openid-configuration",
        Op::public("OpenId_Configuration", "OpenID discovery for the tenant.")
            .path_rule("tenantId", tenant)
            .response(200, "The configuration", Some(configuration))
            .response(400, wrong_tenant, Some(error.clone())),
        get(openid_configuration),
    );
    table.route(
        Method::GET,
        "/{tenantId}/discovery/v2.0/keys",
        Op::public(
            "OpenId_Keys",
            "The public keys that verify rekey's access tokens (JWKS).",
        )
        .path_rule("tenantId", tenant)
        .response(200, "JWKS", Some(keys))
        .response(400, wrong_tenant, Some(error.clone())),
        get(jwks),
    );
    table.route(
        Method::POST,
        "/{tenantId}/oauth2/v2.0/token",
        Op::public(
            "OAuth_Token",
            "OAuth 2.0 client credentials: client_id = principal id, client_secret = its token.",
        )
        .path_rule("tenantId", tenant)
        .body_as(FORM, request, true)
        .response(200, "An access token (JWT)", Some(token_answer))
        .response(
            400,
            "`invalid_tenant`, `invalid_request` (not a form, or credentials both in `Authorization` and the form), `unsupported_grant_type` or `invalid_scope`",
            Some(error.clone()),
        )
        .response(
            401,
            "`invalid_client`: no such principal, or not its token",
            Some(error),
        )
        .response(
            503,
            "The store did not answer",
            Some("ErrorResponse".into()),
        ),
        post(token),
    );
    table.route(
        Method::POST,
        "/rekey/signing-keys/rotate",
        Op::authenticated(
            "SigningKeys_Rotate",
            "Makes a new token-signing key; older tokens stay valid until they expire.",
        )
        .response(200, "The new key id", Some(rotated)),
        post(rotate),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_in: i64) -> Claims {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        Claims {
            aud: "https://rekey/".into(),
            iss: "https://rekey/t/v2.0".into(),
            iat: now,
            nbf: now,
            exp: now + exp_in,
            tid: "t".into(),
            oid: "o".into(),
            sub: "o".into(),
            appid: "o".into(),
            azp: "o".into(),
            ver: "2.0".into(),
            idtyp: "app".into(),
        }
    }

    fn issuer() -> TokenIssuer {
        let rng = SystemRandom::new();
        TokenIssuer {
            keys: RwLock::new(vec![new_signing_key(&rng)]),
            rng,
            ttl: time::Duration::hours(1),
        }
    }

    #[test]
    fn signed_tokens_verify_and_tampered_ones_do_not() {
        let issuer = issuer();
        let token = issuer.sign(&claims(60));
        let (h, rest) = token.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let message = format!("{h}.{p}");
        let sig = B64URL.decode(s).unwrap();
        let kid = issuer.keys.read().unwrap()[0].kid.clone();
        assert_eq!(
            issuer.verify_signature(&kid, message.as_bytes(), &sig),
            Some(true)
        );
        let mut forged: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(p).unwrap()).unwrap();
        forged["oid"] = json!("someone-else");
        let forged_message = format!("{h}.{}", B64URL.encode(forged.to_string()));
        assert_eq!(
            issuer.verify_signature(&kid, forged_message.as_bytes(), &sig),
            Some(false)
        );
        assert_eq!(
            issuer.verify_signature("unknown", message.as_bytes(), &sig),
            None
        );
    }
}
