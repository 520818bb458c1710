//! Owns reading the audit log: Azure's activity-log shape (`Microsoft.Insights/eventtypes`) for
//! one subscription's events, and rekey's check of the log's hash chain (`/rekey/audit/verify`).

use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json};
use rekey_api::authorization::AuditVerification;
use rekey_api::mapping::schema_of;
use rekey_api::List;
use rekey_core::SubscriptionId;
use rekey_store::ChainCheck;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::rfc3339;
use crate::authz::Caller;
use crate::error::ApiError;
use crate::route_table::{ArmPath, ArmQuery, Op, RouteTable};
use crate::rules;
use crate::state::AppState;

/// The activity log's only api-version.
static ACTIVITY_LOG_API_VERSIONS: &[&str] = &["2015-04-01"];

async fn activity_log(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ArmPath(sub): ArmPath<String>,
    ArmQuery(query): ArmQuery,
) -> Result<Response, ApiError> {
    let sub = SubscriptionId::parse(&sub)?;
    let scope = format!("/subscriptions/{sub}");
    state
        .authorize(&caller, "Microsoft.Insights/eventtypes/values/read", &scope)
        .await?;
    let since = match query.get("$filter") {
        Some(filter) => {
            let captures = rules::ACTIVITY_LOG_FILTER.captures(filter).ok_or_else(|| {
                ApiError::bad_request(
                    "BadRequest",
                    "$filter must include eventTimestamp ge '<RFC 3339 date and time>', such as eventTimestamp ge '2026-01-01T00:00:00Z'.",
                )
            })?;
            let raw = &captures["since"];
            OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).map_err(
                |_| {
                    ApiError::bad_request(
                        "BadRequest",
                        format!("eventTimestamp '{raw}' is not an RFC 3339 time."),
                    )
                },
            )?
        }
        None => OffsetDateTime::now_utc() - time::Duration::days(90),
    };
    let value: Vec<Value> = state
        .store
        .audit_records(sub.as_str(), since)
        .await?
        .into_iter()
        .rev()
        .map(|e| {
            let r = &e.record;
            let level = match r.result.as_str() {
                "Succeeded" => "Informational",
                "Denied" => "Warning",
                _ => "Error",
            };
            json!({
                "authorization": { "action": r.action, "scope": r.scope },
                "caller": r.principal_id,
                "channels": "Operation",
                "correlationId": r.request_id,
                "eventDataId": e.seq.to_string(),
                "eventName": { "value": "EndRequest", "localizedValue": "End request" },
                "category": { "value": "Administrative", "localizedValue": "Administrative" },
                "eventTimestamp": rfc3339(r.at),
                "submissionTimestamp": rfc3339(r.at),
                "id": format!("{}/events/{}", r.scope, e.seq),
                "level": level,
                "operationId": r.request_id,
                "operationName": { "value": r.action, "localizedValue": r.action },
                "resourceId": r.scope,
                "status": { "value": r.result, "localizedValue": r.result },
                "subscriptionId": sub.as_str(),
                "tenantId": state.tenant_id.to_string(),
                "httpRequest": { "clientIpAddress": r.source },
            })
        })
        .collect();
    Ok(Json(List::of(value)).into_response())
}

async fn verify_audit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, ApiError> {
    state.authorize(&caller, "Rekey/audit/read", "/").await?;
    let answer = match state.store.verify_audit_chain().await? {
        ChainCheck::Intact { records } => AuditVerification {
            intact: true,
            records,
            first_broken_seq: None,
            reason: None,
        },
        ChainCheck::Broken {
            seq,
            records_before,
            reason,
        } => AuditVerification {
            intact: false,
            records: records_before,
            first_broken_seq: Some(seq),
            reason: Some(reason),
        },
    };
    Ok(Json(answer).into_response())
}

/// Registers the schema of one activity-log event (Azure Monitor's `EventData`, the fields rekey
/// fills) and returns its name.
fn event_schema(table: &mut RouteTable) -> String {
    use utoipa::openapi::{ObjectBuilder, Type};
    let text = || ObjectBuilder::new().schema_type(Type::String);
    let localizable = || {
        ObjectBuilder::new()
            .property("value", text())
            .property("localizedValue", text())
            .required("value")
            .required("localizedValue")
    };
    let mut event = ObjectBuilder::new()
        .property(
            "authorization",
            ObjectBuilder::new()
                .property("action", text())
                .property("scope", text())
                .required("action")
                .required("scope"),
        )
        .property(
            "level",
            text().enum_values(Some(["Informational", "Warning", "Error"])),
        )
        .property(
            "httpRequest",
            ObjectBuilder::new()
                .property("clientIpAddress", text())
                .required("clientIpAddress"),
        );
    for field in [
        "caller",
        "channels",
        "correlationId",
        "eventDataId",
        "eventTimestamp",
        "submissionTimestamp",
        "id",
        "operationId",
        "resourceId",
        "subscriptionId",
        "tenantId",
    ] {
        event = event.property(field, text());
    }
    for field in ["eventName", "category", "operationName", "status"] {
        event = event.property(field, localizable());
    }
    for field in [
        "authorization",
        "caller",
        "eventDataId",
        "eventTimestamp",
        "id",
        "level",
        "operationName",
        "resourceId",
        "status",
        "subscriptionId",
    ] {
        event = event.required(field);
    }
    let name = "EventData".to_string();
    table.schemas(vec![(name.clone(), event.build().into())]);
    name
}

pub fn register(table: &mut RouteTable) {
    let mut schemas = Vec::new();
    let verification = schema_of::<AuditVerification>(&mut schemas);
    table.schemas(schemas);
    let event = event_schema(table);
    let events = table.list_schema(&event);
    table.route(
        Method::GET,
        "/subscriptions/{subscriptionId}/providers/Microsoft.Insights/eventtypes/management/values",
        Op::arm(
            "ActivityLogs_List",
            "The audit log in Azure's activity-log shape, newest first.",
        )
        .versions(ACTIVITY_LOG_API_VERSIONS)
        .query(
            "$filter",
            false,
            "OData clauses joined by ` and `, one of them `eventTimestamp ge '<RFC 3339 time>'`: events from then on. Without it, the last 90 days.",
            rules::ACTIVITY_LOG_FILTER.schema(),
        )
        .response(200, "The events", Some(events)),
        get(activity_log),
    );
    table.route(
        Method::GET,
        "/rekey/audit/verify",
        Op::authenticated(
            "Audit_Verify",
            "Checks the audit log's hash chain and names the first broken record.",
        )
        .response(200, "The result", Some(verification)),
        get(verify_audit),
    );
}
