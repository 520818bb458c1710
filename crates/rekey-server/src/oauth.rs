//! Owns rekey as an identity provider for the real `az` CLI: cloud discovery
//! (`/metadata/endpoints`), OpenID discovery and JWKS under `/{tenantId}/…`, and the OAuth 2.0
//! client-credentials token endpoint. The client id is a principal's id and the client secret its
//! service token; the access token is an ES256 JWT signed with a key kept sealed in the store, and is
//! accepted wherever a service token is, with the same roles (the principal is looked up on every
//! call, so revoking its token ends its JWTs too).

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use base64::Engine as _;
use rekey_api::mapping::schema_of;
use rekey_api::oauth::{
    CloudAuthentication, CloudMetadata, Jwks, OAuthError, OAuthToken, OAuthTokenRequest,
    OpenIdConfiguration,
};
use rekey_api::service::SigningKeyRotated;
use rekey_core::secret::constant_time_eq;
use rekey_store::crypto::token_digest;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::authz::Caller;
use crate::error::ApiError;
pub use crate::jwt::{Claims, JwtError, TokenIssuer};
use crate::route_table::{Op, RouteTable};
use crate::rules;
use crate::state::AppState;

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

/// The `{tenantId}` of an OAuth or OpenID route, checked to be this rekey's (in either letter
/// case, as `rules::tenant_rule` documents it); another is refused with OAuth's `invalid_tenant`
/// before the handler runs. Which tenant is this server's is known only when it runs, so the
/// route table documents the rule but this extractor enforces it.
struct ThisTenant;

impl FromRequestParts<AppState> for ThisTenant {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Path(tenant) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if tenant.eq_ignore_ascii_case(&state.tenant_id.to_string()) {
            return Ok(ThisTenant);
        }
        Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_tenant",
            &format!("Tenant '{tenant}' not found: this rekey's tenant is another."),
        ))
    }
}

async fn openid_configuration(State(state): State<AppState>, _: ThisTenant) -> Response {
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

async fn jwks(State(state): State<AppState>, _: ThisTenant) -> Response {
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
    _: ThisTenant,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
