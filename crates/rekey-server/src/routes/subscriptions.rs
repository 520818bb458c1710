//! `Microsoft.Resources` subscriptions: list and get as in ARM, and `PUT /subscriptions/{id}` with
//! `{"displayName"}`, a rekey extension (Azure creates subscriptions through billing) open to owners.

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Extension, Json};
use rekey_api::arm::{Subscription as WireSubscription, SubscriptionCreate, SubscriptionPolicies};
use rekey_api::mapping::schema_of;
use rekey_api::List;
use rekey_core::providers::RESOURCES_API_VERSIONS;
use rekey_core::{Subscription, SubscriptionId};
use rekey_store::Written;

use crate::authz::Caller;
use crate::error::ApiError;
use crate::route_table::{object_body, Op, Parsed, RouteTable};
use crate::state::AppState;

fn render(state: &AppState, sub: &Subscription) -> WireSubscription {
    WireSubscription {
        id: format!("/subscriptions/{}", sub.id),
        subscription_id: sub.id.to_string(),
        tenant_id: state.tenant_id.to_string(),
        display_name: sub.display_name.clone(),
        state: "Enabled".into(),
        subscription_policies: SubscriptionPolicies {
            location_placement_id: "Public_2014-09-01".into(),
            quota_id: "rekey".into(),
            spending_limit: "Off".into(),
        },
        authorization_source: "RoleBased".into(),
    }
}

async fn list(
    state: axum::extract::State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    let subs = state.store.list_subscriptions().await?;
    // Like Azure: the subscriptions in which the caller holds some role.
    let value: Vec<_> = subs
        .iter()
        .filter(|s| caller.sees(&format!("/subscriptions/{}", s.id)))
        .map(|s| render(&state, s))
        .collect();
    Ok(Json(List::of(value)).into_response())
}

async fn show(
    state: axum::extract::State<AppState>,
    Extension(caller): Extension<Caller>,
    Parsed(id): Parsed<SubscriptionId>,
) -> Result<Response, ApiError> {
    let scope = format!("/subscriptions/{id}");
    if !caller.sees(&scope) {
        state
            .authorize(&caller, "Microsoft.Resources/subscriptions/read", &scope)
            .await?;
    }
    let sub = state.store.subscription(&id).await?;
    Ok(Json(render(&state, &sub)).into_response())
}

async fn create(
    state: axum::extract::State<AppState>,
    Extension(caller): Extension<Caller>,
    Parsed(id): Parsed<SubscriptionId>,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Only an Owner above the subscription (the bootstrap owner) can make a new one.
    let audit = state
        .authorize(
            &caller,
            "Microsoft.Subscription/subscriptions/write",
            &format!("/subscriptions/{id}"),
        )
        .await?;
    let body: SubscriptionCreate = object_body(&body)?;
    let name = body.display_name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::bad_request(
            "InvalidParameter",
            "displayName must be 1 to 64 characters.",
        ));
    }
    let (stored, written) = state.store.put_subscription(&id, name, &audit).await?;
    let status = if written == Written::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(render(&state, &stored))).into_response())
}

pub fn register(table: &mut RouteTable) {
    let mut schemas = Vec::new();
    let wire = schema_of::<WireSubscription>(&mut schemas);
    let body = schema_of::<SubscriptionCreate>(&mut schemas);
    table.schemas(schemas);
    let list_schema = table.list_schema::<WireSubscription>();
    table.route(
        Method::GET,
        "/subscriptions",
        Op::arm(
            "Subscriptions_List",
            "Lists the subscriptions the caller can see.",
        )
        .versions(RESOURCES_API_VERSIONS)
        .response(200, "The subscriptions", Some(list_schema)),
        get(list),
    );
    table.route(
        Method::GET,
        "/subscriptions/{subscriptionId}",
        Op::arm("Subscriptions_Get", "Gets a subscription.")
            .versions(RESOURCES_API_VERSIONS)
            .response(200, "The subscription", Some(wire.clone())),
        get(show),
    );
    table.route(
        Method::PUT,
        "/subscriptions/{subscriptionId}",
        Op::arm(
            "Subscriptions_CreateOrUpdate",
            "Creates or renames a subscription (rekey extension, owners only).",
        )
        .versions(RESOURCES_API_VERSIONS)
        .body(body, true)
        .response(200, "Renamed", Some(wire.clone()))
        .response(201, "Created", Some(wire)),
        put(create),
    );
}
