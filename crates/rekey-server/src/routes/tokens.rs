//! Owns rekey's service-token extension (`/rekey/tokens`): creating a token (shown only once),
//! listing the tokens a caller may see, and revoking one.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json};
use rekey_api::authorization::{TokenCreate, TokenCreated, TokenInfo};
use rekey_api::mapping::schema_of;
use rekey_api::List;
use rekey_store::crypto::token_digest;
use rekey_store::Principal;
use time::OffsetDateTime;
use uuid::Uuid;

use super::rfc3339;
use crate::authz::Caller;
use crate::error::ApiError;
use crate::route_table::{object_body, ArmPath, Op, RouteTable};
use crate::rules;
use crate::state::AppState;

/// `90s`, `30m`, `12h`, `7d`: see [`rules::EXPIRES_IN`].
fn parse_duration(raw: &str) -> Option<time::Duration> {
    if !rules::EXPIRES_IN.matches(raw) {
        return None;
    }
    let (last, unit) = raw.char_indices().last()?;
    let n: u64 = raw[..last].parse().ok()?;
    let (_, unit_seconds) = rules::LIFETIME_UNITS.iter().find(|(u, _)| *u == unit)?;
    let seconds = n.checked_mul(*unit_seconds)?;
    let seconds = i64::try_from(seconds).ok()?;
    Some(time::Duration::seconds(seconds))
}

async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // "The owner of a scope creates tokens": whoever may assign roles somewhere.
    if !caller.can_anywhere(super::role_assignments::ASSIGNMENT_WRITE) {
        state
            .authorize(&caller, "Rekey/tokens/write", "/rekey/tokens")
            .await?;
    }
    let body: TokenCreate = object_body(&body)?;
    if !rules::TOKEN_NAME.matches(&body.name) {
        return Err(ApiError::bad_request(
            "InvalidParameter",
            "name must be 1 to 100 characters, not all white space, with no control characters.",
        ));
    }
    // Surrounding white space is not part of the name.
    let name = body.name.trim();
    let now = OffsetDateTime::now_utc();
    let expires_at = match body.expires_in.as_deref() {
        None => None,
        Some(raw) => Some(now + parse_duration(raw).ok_or_else(|| {
            ApiError::bad_request("InvalidParameter", format!("expiresIn must be a whole number of s, m, h or d without leading zeros, like 90s, 30m, 12h or 7d, from 1s up to 3650d; got \"{raw}\"."))
        })?),
    };
    let token = crate::bootstrap::new_token();
    let principal = Principal {
        id: Uuid::new_v4(),
        display_name: name.to_string(),
        is_owner: false,
        expires_at,
        revoked_at: None,
        created_by: Some(caller.principal.id.to_string()),
        created_at: now,
    };
    let audit = caller.record(
        "Rekey/tokens/write",
        &format!("/rekey/tokens/{}", principal.id),
        "Succeeded",
    );
    state
        .store
        .create_principal(&principal, token_digest(token.expose()), &audit)
        .await?;
    let created = TokenCreated {
        principal_id: principal.id.to_string(),
        name: principal.display_name,
        token: token.expose().to_string(),
        expires_at: expires_at.map(rfc3339),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

fn visible_to(caller: &Caller, p: &Principal) -> bool {
    caller.principal.is_owner
        || p.id == caller.principal.id
        || p.created_by.as_deref() == Some(&caller.principal.id.to_string())
}

async fn list_tokens(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let value: Vec<_> = state
        .store
        .list_principals()
        .await?
        .into_iter()
        .filter(|p| visible_to(&caller, p))
        .map(|p| TokenInfo {
            principal_id: p.id.to_string(),
            name: p.display_name,
            created_at: rfc3339(p.created_at),
            expires_at: p.expires_at.map(rfc3339),
            revoked: p.revoked_at.is_some(),
            created_by: p.created_by,
        })
        .collect();
    Ok(Json(List::of(value)).into_response())
}

async fn revoke_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ArmPath(id): ArmPath<String>,
) -> Result<Response, ApiError> {
    let missing = || ApiError::NotFound {
        code: "PrincipalNotFound",
        message: format!("No token has principal id '{id}'."),
    };
    let pid = Uuid::parse_str(&id).map_err(|_| missing())?;
    let principal = state
        .store
        .principal(&pid)
        .await?
        .filter(|p| visible_to(&caller, p))
        .ok_or_else(missing)?;
    // The request is well formed; what refuses it is the token's state (it keeps the service
    // reachable), so 409 as ARM answers for a protected resource, not 400.
    if principal.is_owner {
        return Err(ApiError::Conflict {
            code: "OwnerTokenProtected",
            message: "The bootstrap owner's token cannot be revoked through the API.".into(),
        });
    }
    let audit = caller.record(
        "Rekey/tokens/delete",
        &format!("/rekey/tokens/{pid}"),
        "Succeeded",
    );
    state.store.revoke_principal(&pid, &audit).await?;
    Ok(StatusCode::OK.into_response())
}

pub fn register(table: &mut RouteTable) {
    let mut schemas = Vec::new();
    let token_body = schema_of::<TokenCreate>(&mut schemas);
    let token = schema_of::<TokenCreated>(&mut schemas);
    schema_of::<TokenInfo>(&mut schemas);
    table.schemas(schemas);
    let tokens = table.list_schema::<TokenInfo>();
    table.route(
        Method::POST,
        "/rekey/tokens",
        Op::authenticated(
            "Tokens_Create",
            "Creates a service token (rekey extension); the token is shown only here.",
        )
        .body(token_body, true)
        .response(201, "Created", Some(token)),
        post(create_token),
    );
    table.route(
        Method::GET,
        "/rekey/tokens",
        Op::authenticated(
            "Tokens_List",
            "Lists the tokens the caller made (all, for the bootstrap owner).",
        )
        .response(200, "The tokens", Some(tokens)),
        get(list_tokens),
    );
    table.route(
        Method::DELETE,
        "/rekey/tokens/{principalId}",
        Op::authenticated("Tokens_Revoke", "Revokes a token at once.")
            .response(200, "Revoked (or already revoked)", None)
            .response(
                409,
                "The bootstrap owner's token, which cannot be revoked",
                Some("ErrorResponse".into()),
            ),
        delete(revoke_token),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Some(time::Duration::seconds(90)));
        assert_eq!(parse_duration("7d"), Some(time::Duration::days(7)));
        for bad in ["", "d", "0h", "-1h", "5y", "99999d", "5é", "é"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
