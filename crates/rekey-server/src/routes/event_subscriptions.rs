//! Owns Event Grid-shaped event subscriptions (`Microsoft.EventGrid/eventSubscriptions`) at
//! subscription, resource group and resource scope: create or replace (with the validation
//! handshake), get, list at a scope, delete, and rekey's `x-rekey-deadLetters` view; and the
//! subscription's key policy (`Rekey/keyPolicy`), the default maximum key age.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Extension, Json};
use rekey_api::event_grid::{
    DeadLetter as WireDeadLetter, Destination, EventSubscription as WireSubscription,
    EventSubscriptionCreate, EventSubscriptionProperties, Filter, KeyPolicy, KeyPolicyCreate,
    KeyPolicyProperties, RetryPolicy, WebHookProperties,
};
use rekey_api::mapping::schema_of;
use rekey_api::List;
use rekey_core::resource::MAX_KEY_AGE_DAYS;
use rekey_core::SubscriptionId;
use rekey_store::events::{rfc3339, AWAITING_MANUAL_ACTION, PROVISIONED};
use rekey_store::{EventSubscription, Written};
use time::OffsetDateTime;
use uuid::Uuid;

use super::scope::{mounts, Mount, Target};
use crate::authz::Caller;
use crate::error::ApiError;
use crate::events::{
    check_endpoint, event_grid_event, new_signing_secret, CLOUD_EVENTS, EVENT_GRID_SCHEMA,
};
use crate::route_table::{object_body, ArmPath, Op, ParamRule, RouteTable};
use crate::state::AppState;

/// The api-versions of `Microsoft.EventGrid` rekey accepts: the default of the current
/// `azure-mgmt-eventgrid` (10.4.0: 2025-02-15), the one `az eventgrid` sends (az 2.91 bundles the
/// SDK's 10.2.0b2: 2021-10-15-preview), and the stable versions between.
pub static EVENT_GRID_API_VERSIONS: &[&str] = &[
    "2020-06-01",
    "2021-10-15-preview",
    "2021-12-01",
    "2022-06-15",
    "2025-02-15",
];

/// The api-versions of rekey's own `Rekey/keyPolicy`.
pub static KEY_POLICY_API_VERSIONS: &[&str] = &["2026-01-01"];

const READ: &str = "Microsoft.EventGrid/eventSubscriptions/read";
const WRITE: &str = "Microsoft.EventGrid/eventSubscriptions/write";
const DELETE: &str = "Microsoft.EventGrid/eventSubscriptions/delete";
const POLICY_READ: &str = "Rekey/keyPolicy/read";
const POLICY_WRITE: &str = "Rekey/keyPolicy/write";
const TYPE: &str = "Microsoft.EventGrid/eventSubscriptions";

/// Event Grid's own rule for event subscription names.
const NAME_RULE: ParamRule = ParamRule {
    pattern: "^[A-Za-z0-9-]+$",
    min_len: 3,
    max_len: 64,
};

/// Event Grid's retry policy bounds and defaults.
const MAX_ATTEMPTS: std::ops::RangeInclusive<i64> = 1..=30;
const TTL_MINUTES: std::ops::RangeInclusive<i64> = 1..=1440;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("InvalidRequest", message)
}

fn name_of(p: &HashMap<String, String>) -> &str {
    p.get("eventSubscriptionName")
        .map(String::as_str)
        .unwrap_or_default()
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound {
        code: "ResourceNotFound",
        message: format!("The event subscription '{name}' could not be found."),
    }
}

/// The endpoint without its query, which may hold a code: what Azure answers as `endpointBaseUrl`.
fn base_url(url: &str) -> String {
    url.split(['?', '#']).next().unwrap_or_default().to_string()
}

fn render(s: &EventSubscription, secret: Option<String>) -> WireSubscription {
    WireSubscription {
        id: format!("{}/providers/{TYPE}/{}", s.scope, s.name),
        name: s.name.clone(),
        type_name: TYPE.into(),
        properties: EventSubscriptionProperties {
            topic: s.scope.clone(),
            provisioning_state: s.provisioning_state.clone(),
            destination: Destination {
                endpoint_type: "WebHook".into(),
                properties: Some(WebHookProperties {
                    endpoint_url: None,
                    endpoint_base_url: Some(base_url(&s.endpoint_url)),
                }),
            },
            filter: Filter {
                included_event_types: s.included_event_types.clone(),
            },
            event_delivery_schema: s.delivery_schema.clone(),
            retry_policy: RetryPolicy {
                max_delivery_attempts: Some(s.max_attempts),
                event_time_to_live_in_minutes: Some(s.ttl_minutes),
            },
            signing_secret: secret,
        },
    }
}

/// What a PUT body asks for, every field checked.
struct Requested {
    endpoint_url: String,
    included_event_types: Option<Vec<String>>,
    delivery_schema: String,
    max_attempts: i64,
    ttl_minutes: i64,
}

/// The subscription a PUT body describes, checked field by field.
fn parse_create(body: EventSubscriptionCreate) -> Result<Requested, ApiError> {
    let p = body.properties;
    if !p.destination.endpoint_type.eq_ignore_ascii_case("WebHook") {
        return Err(bad(format!(
            "properties.destination.endpointType must be WebHook; got '{}'.",
            p.destination.endpoint_type
        )));
    }
    let url = p
        .destination
        .properties
        .and_then(|d| d.endpoint_url)
        .ok_or_else(|| bad("properties.destination.properties.endpointUrl is required."))?;
    check_endpoint(&url).map_err(|why| {
        bad(format!(
            "properties.destination.properties.endpointUrl {why}; e.g. \"https://hooks.example.com/rekey\"."
        ))
    })?;
    let types = p.filter.and_then(|f| f.included_event_types);
    if let Some(types) = &types {
        if types.iter().any(|t| t.trim().is_empty() || t.len() > 256) || types.len() > 64 {
            return Err(bad(
                "properties.filter.includedEventTypes must be at most 64 event type names, none empty.",
            ));
        }
    }
    let schema = match p.event_delivery_schema.as_deref() {
        None => EVENT_GRID_SCHEMA.to_string(),
        Some(s) if s.eq_ignore_ascii_case(EVENT_GRID_SCHEMA) => EVENT_GRID_SCHEMA.to_string(),
        Some(s) if s.eq_ignore_ascii_case(CLOUD_EVENTS) => CLOUD_EVENTS.to_string(),
        Some(other) => {
            return Err(bad(format!(
                "properties.eventDeliverySchema must be one of {EVENT_GRID_SCHEMA}, {CLOUD_EVENTS}; got '{other}'."
            )))
        }
    };
    let retry = p.retry_policy.unwrap_or(RetryPolicy {
        max_delivery_attempts: None,
        event_time_to_live_in_minutes: None,
    });
    let attempts = retry.max_delivery_attempts.unwrap_or(*MAX_ATTEMPTS.end());
    if !MAX_ATTEMPTS.contains(&attempts) {
        return Err(bad(format!(
            "properties.retryPolicy.maxDeliveryAttempts must be from 1 to 30; got {attempts}."
        )));
    }
    let ttl = retry
        .event_time_to_live_in_minutes
        .unwrap_or(*TTL_MINUTES.end());
    if !TTL_MINUTES.contains(&ttl) {
        return Err(bad(format!(
            "properties.retryPolicy.eventTimeToLiveInMinutes must be from 1 to 1440; got {ttl}."
        )));
    }
    Ok(Requested {
        endpoint_url: url,
        included_event_types: types,
        delivery_schema: schema,
        max_attempts: attempts,
        ttl_minutes: ttl,
    })
}

async fn put_subscription(
    state: AppState,
    caller: Caller,
    target: Target,
    p: HashMap<String, String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = name_of(&p).to_string();
    let audit = state.authorize(&caller, WRITE, &target.requested()).await?;
    let scope = target.stored(&state).await?;
    let requested = parse_create(object_body(&body)?)?;
    let url = requested.endpoint_url;
    let existing = state.store.event_subscription(&scope, &name).await?;
    // An endpoint that already proved itself is not asked again; a new or changed one is.
    let validated = match &existing {
        Some(old) if old.endpoint_url == url && old.provisioning_state == PROVISIONED => true,
        _ => state.events.handshake(&url, &scope).await,
    };
    let now = OffsetDateTime::now_utc();
    let subscription = EventSubscription {
        id: existing.as_ref().map_or_else(Uuid::new_v4, |old| old.id),
        subscription: target.subscription().to_string(),
        scope,
        name,
        endpoint_url: url,
        included_event_types: requested.included_event_types,
        delivery_schema: requested.delivery_schema,
        max_attempts: requested.max_attempts,
        ttl_minutes: requested.ttl_minutes,
        provisioning_state: if validated {
            PROVISIONED
        } else {
            AWAITING_MANUAL_ACTION
        }
        .into(),
        created_at: now,
        updated_at: now,
    };
    let secret = new_signing_secret();
    let (stored, written) = state
        .store
        .put_event_subscription(&subscription, &secret, &audit)
        .await?;
    Ok(match written {
        // The signing secret is shown once, to whoever created the subscription.
        Written::Created => (
            StatusCode::CREATED,
            Json(render(&stored, Some(secret.expose().to_string()))),
        )
            .into_response(),
        Written::Updated => (StatusCode::OK, Json(render(&stored, None))).into_response(),
    })
}

async fn get_subscription(
    state: AppState,
    caller: Caller,
    target: Target,
    p: HashMap<String, String>,
) -> Result<Response, ApiError> {
    state.authorize(&caller, READ, &target.requested()).await?;
    let scope = target.stored(&state).await?;
    let found = state.store.event_subscription(&scope, name_of(&p)).await?;
    let found = found.ok_or_else(|| not_found(name_of(&p)))?;
    Ok(Json(render(&found, None)).into_response())
}

async fn list_subscriptions(
    state: AppState,
    caller: Caller,
    target: Target,
) -> Result<Response, ApiError> {
    state.authorize(&caller, READ, &target.requested()).await?;
    let scope = target.stored(&state).await?;
    let value: Vec<_> = state
        .store
        .list_event_subscriptions(&scope)
        .await?
        .iter()
        .map(|s| render(s, None))
        .collect();
    Ok(Json(List::of(value)).into_response())
}

async fn delete_subscription(
    state: AppState,
    caller: Caller,
    target: Target,
    p: HashMap<String, String>,
) -> Result<Response, ApiError> {
    let audit = state
        .authorize(&caller, DELETE, &target.requested())
        .await?;
    let scope = target.stored(&state).await?;
    let deleted = state
        .store
        .delete_event_subscription(&scope, name_of(&p), &audit)
        .await?;
    Ok(if deleted {
        StatusCode::OK
    } else {
        StatusCode::NO_CONTENT
    }
    .into_response())
}

async fn dead_letters(
    state: AppState,
    caller: Caller,
    target: Target,
    p: HashMap<String, String>,
) -> Result<Response, ApiError> {
    state.authorize(&caller, READ, &target.requested()).await?;
    let scope = target.stored(&state).await?;
    let found = state.store.event_subscription(&scope, name_of(&p)).await?;
    let found = found.ok_or_else(|| not_found(name_of(&p)))?;
    let value: Vec<_> = state
        .store
        .dead_letters(&found.id)
        .await?
        .into_iter()
        .map(|d| {
            let event = event_grid_event(&d.event);
            let text = |k: &str| event[k].as_str().unwrap_or_default().to_string();
            WireDeadLetter {
                id: text("id"),
                topic: text("topic"),
                subject: text("subject"),
                event_type: text("eventType"),
                event_time: text("eventTime"),
                data: d.event.data,
                data_version: text("dataVersion"),
                metadata_version: text("metadataVersion"),
                dead_letter_reason: d.reason,
                delivery_attempts: d.attempts,
                last_delivery_outcome: d.last_error,
                dead_lettered_at: rfc3339(d.dead_at),
            }
        })
        .collect();
    Ok(Json(List::of(value)).into_response())
}

fn render_policy(sub: &SubscriptionId, days: Option<i64>) -> KeyPolicy {
    KeyPolicy {
        id: format!("/subscriptions/{sub}/providers/Rekey/keyPolicy"),
        name: "keyPolicy".into(),
        type_name: "Rekey/keyPolicy".into(),
        properties: KeyPolicyProperties {
            max_key_age_days: days,
        },
    }
}

async fn put_policy(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ArmPath(sub): ArmPath<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let sub = SubscriptionId::parse(&sub)?;
    let audit = state
        .authorize(&caller, POLICY_WRITE, &format!("/subscriptions/{sub}"))
        .await?;
    let body: KeyPolicyCreate = object_body(&body)?;
    let days = body
        .properties
        .max_key_age_days
        .filter(|d| MAX_KEY_AGE_DAYS.contains(d))
        .ok_or_else(|| {
            ApiError::bad_request(
                "InvalidParameter",
                "properties.maxKeyAgeDays must be an integer from 1 to 3650.",
            )
        })?;
    state.store.put_key_policy(&sub, days, &audit).await?;
    Ok(Json(render_policy(&sub, Some(days))).into_response())
}

async fn get_policy(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ArmPath(sub): ArmPath<String>,
) -> Result<Response, ApiError> {
    let sub = SubscriptionId::parse(&sub)?;
    state
        .authorize(&caller, POLICY_READ, &format!("/subscriptions/{sub}"))
        .await?;
    state.store.subscription(&sub).await?;
    let days = state.store.key_policy(&sub).await?;
    Ok(Json(render_policy(&sub, days)).into_response())
}

pub fn register(table: &mut RouteTable) {
    let mut schemas = Vec::new();
    let subscription = schema_of::<WireSubscription>(&mut schemas);
    let create = schema_of::<EventSubscriptionCreate>(&mut schemas);
    schema_of::<WireDeadLetter>(&mut schemas);
    let policy = schema_of::<KeyPolicy>(&mut schemas);
    let policy_create = schema_of::<KeyPolicyCreate>(&mut schemas);
    table.schemas(schemas);
    let subscriptions = table.list_schema::<WireSubscription>();
    let dead_letters_list = table.list_schema::<WireDeadLetter>();

    for Mount { prefix, level, tag } in mounts() {
        let base = format!("{prefix}/providers/{TYPE}");
        let one = format!("{base}/{{eventSubscriptionName}}");
        let arm = |id: String, summary: &str| {
            level.op(Op::arm(id, summary).versions(EVENT_GRID_API_VERSIONS))
        };
        table.route(
            Method::PUT,
            &one,
            arm(
                format!("EventSubscriptions_CreateOrUpdateAt{tag}"),
                "Creates or replaces a webhook event subscription for the events of this scope. \
                 The endpoint must answer the validation handshake, or the subscription stays \
                 AwaitingManualAction and receives nothing. The 201 shows the signing secret once.",
            )
            .path_rule("eventSubscriptionName", NAME_RULE)
            .body(create.clone(), true)
            .response(200, "Replaced", Some(subscription.clone()))
            .response(
                201,
                "Created; properties.x-rekey-signingSecret is shown only here",
                Some(subscription.clone()),
            ),
            put(|State(s), Extension(c), target, ArmPath(p), b| {
                put_subscription(s, c, target, p, b)
            }),
        );
        table.route(
            Method::GET,
            &one,
            arm(
                format!("EventSubscriptions_GetAt{tag}"),
                "Gets an event subscription.",
            )
            .path_rule("eventSubscriptionName", NAME_RULE)
            .response(200, "The event subscription", Some(subscription.clone())),
            get(|State(s), Extension(c), target, ArmPath(p)| get_subscription(s, c, target, p)),
        );
        table.route(
            Method::DELETE,
            &one,
            arm(
                format!("EventSubscriptions_DeleteAt{tag}"),
                "Deletes an event subscription, its pending deliveries and its dead letters.",
            )
            .path_rule("eventSubscriptionName", NAME_RULE)
            .response(200, "Deleted", None)
            .response(204, "Did not exist", None),
            delete(|State(s), Extension(c), target, ArmPath(p)| {
                delete_subscription(s, c, target, p)
            }),
        );
        table.route(
            Method::GET,
            &base,
            arm(
                format!("EventSubscriptions_ListAt{tag}"),
                "Lists the event subscriptions at exactly this scope.",
            )
            .response(200, "The event subscriptions", Some(subscriptions.clone())),
            get(|State(s), Extension(c), target| list_subscriptions(s, c, target)),
        );
        table.route(
            Method::GET,
            &format!("{one}/x-rekey-deadLetters"),
            arm(
                format!("EventSubscriptions_DeadLettersAt{tag}"),
                "The events this subscription could not be sent within its retry policy.",
            )
            .path_rule("eventSubscriptionName", NAME_RULE)
            .response(200, "The dead letters", Some(dead_letters_list.clone())),
            get(|State(s), Extension(c), target, ArmPath(p)| dead_letters(s, c, target, p)),
        );
    }
    let path = "/subscriptions/{subscriptionId}/providers/Rekey/keyPolicy";
    table.route(
        Method::PUT,
        path,
        Op::arm(
            "KeyPolicy_CreateOrUpdate",
            "Sets the subscription's default maximum key age (a resource's x-rekey-maxKeyAgeDays wins).",
        )
        .versions(KEY_POLICY_API_VERSIONS)
        .body(policy_create, true)
        .response(200, "The policy", Some(policy.clone())),
        put(put_policy),
    );
    table.route(
        Method::GET,
        path,
        Op::arm("KeyPolicy_Get", "Gets the subscription's key policy.")
            .versions(KEY_POLICY_API_VERSIONS)
            .response(
                200,
                "The policy; maxKeyAgeDays null when unset",
                Some(policy),
            ),
        get(get_policy),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> EventSubscriptionCreate {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn an_http_endpoint_off_this_machine_is_refused_naming_the_field() {
        let refused = parse_create(body(serde_json::json!({"properties": {
            "destination": {"endpointType": "WebHook", "properties": {"endpointUrl": "http://hooks.example.com/x"}}
        }})));
        let Err(ApiError::BadRequest { message, .. }) = refused else {
            panic!("not a 400")
        };
        assert!(message.contains("properties.destination.properties.endpointUrl"));
    }

    #[test]
    fn an_unknown_delivery_schema_and_retry_bounds_are_refused() {
        let hook = serde_json::json!({"endpointType": "WebHook", "properties": {"endpointUrl": "https://h.example/x"}});
        assert!(parse_create(body(serde_json::json!({"properties": {"destination": hook, "eventDeliverySchema": "Custom"}}))).is_err());
        assert!(parse_create(body(serde_json::json!({"properties": {"destination": hook, "retryPolicy": {"maxDeliveryAttempts": 31}}}))).is_err());
        let Ok(r) = parse_create(body(
            serde_json::json!({"properties": {"destination": hook, "eventDeliverySchema": "cloudeventschemav1_0"}}),
        )) else {
            panic!("a valid body was refused")
        };
        assert_eq!(
            (r.delivery_schema.as_str(), r.max_attempts, r.ttl_minutes),
            (CLOUD_EVENTS, 30, 1440)
        );
    }
}
