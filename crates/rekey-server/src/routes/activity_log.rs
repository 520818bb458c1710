//! Owns reading the audit log: Azure's activity-log shape (`Microsoft.Insights/eventtypes`) for
//! one subscription's events, and rekey's check of the log's hash chain (`/rekey/audit/verify`).

use axum::extract::State;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json};
use rekey_api::authorization::AuditVerification;
use rekey_api::mapping::schema_of;
use rekey_api::monitor::{EventAuthorization, EventData, HttpRequestInfo, LocalizableString};
use rekey_api::List;
use rekey_core::SubscriptionId;
use rekey_store::ChainCheck;
use time::OffsetDateTime;

use super::rfc3339;
use crate::authz::Caller;
use crate::error::ApiError;
use crate::route_table::{ArmQuery, Op, Parsed, RouteTable};
use crate::rules;
use crate::state::AppState;

/// The activity log's only api-version.
static ACTIVITY_LOG_API_VERSIONS: &[&str] = &["2015-04-01"];

async fn activity_log(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Parsed(sub): Parsed<SubscriptionId>,
    ArmQuery(query): ArmQuery,
) -> Result<Response, ApiError> {
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
    let value: Vec<EventData> = state
        .store
        .audit_records(sub.as_str(), since)
        .await?
        .into_iter()
        .rev()
        .map(|e| {
            let r = e.record;
            let level = match r.result.as_str() {
                "Succeeded" => "Informational",
                "Denied" => "Warning",
                _ => "Error",
            };
            EventData {
                id: format!("{}/events/{}", r.scope, e.seq),
                authorization: EventAuthorization {
                    action: r.action.clone(),
                    scope: r.scope.clone(),
                },
                caller: r.principal_id,
                channels: "Operation".into(),
                correlation_id: r.request_id.clone(),
                event_data_id: e.seq.to_string(),
                event_name: LocalizableString {
                    value: "EndRequest".into(),
                    localized_value: "End request".into(),
                },
                category: LocalizableString::same("Administrative"),
                event_timestamp: rfc3339(r.at),
                submission_timestamp: rfc3339(r.at),
                level: level.into(),
                operation_id: r.request_id,
                operation_name: LocalizableString::same(r.action),
                resource_id: r.scope,
                status: LocalizableString::same(r.result),
                subscription_id: sub.as_str().to_string(),
                tenant_id: state.tenant_id.to_string(),
                http_request: HttpRequestInfo {
                    client_ip_address: r.source,
                },
            }
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

pub fn register(table: &mut RouteTable) {
    let mut schemas = Vec::new();
    let verification = schema_of::<AuditVerification>(&mut schemas);
    schema_of::<EventData>(&mut schemas);
    table.schemas(schemas);
    let events = table.list_schema::<EventData>();
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
