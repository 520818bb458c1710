//! rekey's own rotation extensions to the management API (not Azure's; Azure's wire behaviour is
//! unchanged without them): `listKeyUsage` (per-slot use over 24 hours), `disableKey` /
//! `enableKey` and `endKeyGrace` (with the type's `regenerateKey` body), the `listKeys` fields
//! `x-rekey-retiring` and `x-rekey-disabled`, and what a `regenerateKey` may ask for by header:
//! `x-rekey-if-unused-for` (refuse while the slot is in use), `x-rekey-grace-seconds` (keep the old
//! key for an overlap), and replay instead of a second rotation for a repeated `Idempotency-Key` or
//! `x-ms-client-request-id`. The regenerate handler itself (`resources`) calls [`prepare`] first and
//! answers through [`Reply`], so a committed answer and its replay are the same bytes.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json};
use rekey_api::rotation::{KeyUsage, KeyUsageList, MinuteCount, RetiredUsage, RotationHeaders};
use rekey_api::{ErrorResponse, WireMapping};
use rekey_core::providers::Slot;
use rekey_core::ResourceId;
use rekey_store::{RegenerateOptions, Remember};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::authz::Caller;
use crate::dataplane::usage;
use crate::error::ApiError;
use crate::route_table::{json_body, Op, Parsed, RouteTable};
use crate::routes::resources::{action, failed};
use crate::routes::rfc3339;
use crate::state::{AppState, CLIENT_REQUEST_ID};

type Mapping = &'static dyn WireMapping;

/// Action segments this module serves after a resource name, in canonical casing.
pub const ACTIONS: &[&str] = &["listKeyUsage", "disableKey", "enableKey", "endKeyGrace"];

/// Asks a regeneration to be refused while the slot was used within this many seconds.
pub const IF_UNUSED_FOR: &str = "x-rekey-if-unused-for";
/// Asks the replaced key to keep working this many seconds beside the new one.
pub const GRACE_SECONDS: &str = "x-rekey-grace-seconds";
/// A client's token for "this request, once": a repeat replays the first answer.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Marks a replayed answer.
pub const REPLAYED: &str = "x-rekey-replayed";
/// The `listKeys` field naming slots whose replaced key is in its overlap, and until when.
pub const RETIRING_FIELD: &str = "x-rekey-retiring";
/// The `listKeys` field naming disabled slots.
pub const DISABLED_FIELD: &str = "x-rekey-disabled";

/// The longest overlap a regeneration may ask for: a week.
pub const MAX_GRACE_SECONDS: u64 = 604_800;
/// The longest `x-rekey-if-unused-for`: usage is kept for a day.
pub const MAX_IF_UNUSED_SECONDS: u64 = 86_400;
/// How long an `Idempotency-Key` answer is replayed.
const IDEMPOTENCY_KEY_KEPT: time::Duration = time::Duration::hours(24);
/// How long an `x-ms-client-request-id` answer is replayed: the SDKs' and az's own retries.
const CLIENT_REQUEST_ID_KEPT: time::Duration = time::Duration::minutes(10);
/// Longest accepted idempotency token.
const MAX_TOKEN_LEN: usize = 256;

/// An answer as the regenerate handler sends it, and as it is remembered (sealed) for a replay.
#[derive(Serialize, Deserialize)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

impl Reply {
    pub fn new(status: StatusCode, headers: &HeaderMap, body: Option<Value>) -> Self {
        Self {
            status: status.as_u16(),
            headers: headers
                .iter()
                .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_string())))
                .collect(),
            body,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a reply serializes")
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut response = match self.body {
            Some(body) => (status, Json(body)).into_response(),
            None => status.into_response(),
        };
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::from_str(&value),
            ) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// What a regeneration's headers asked for, checked.
pub struct Prepared {
    grace: Option<time::Duration>,
    token: Option<Token>,
}

struct Token {
    principal: String,
    kind: &'static str,
    value: String,
    fingerprint: [u8; 32],
    kept: time::Duration,
}

impl Prepared {
    /// The store's options, with `answer` rendering what is remembered.
    pub fn options<'a>(
        &'a self,
        answer: &'a (dyn Fn(&rekey_core::Resource, &[rekey_core::KeySlotState]) -> Vec<u8>
                 + Send
                 + Sync),
    ) -> RegenerateOptions<'a> {
        RegenerateOptions {
            grace: self.grace,
            remember: self.token.as_ref().map(|t| Remember {
                principal: &t.principal,
                kind: t.kind,
                token: &t.value,
                fingerprint: t.fingerprint,
                expired_before: OffsetDateTime::now_utc() - t.kept,
                answer,
            }),
        }
    }
}

fn header_refusal(name: &str, rule: &str, raw: &str) -> ApiError {
    ApiError::bad_request(
        "InvalidHeaderValue",
        format!("The header {name} must be {rule}; got '{raw}'."),
    )
}

/// A whole number of seconds from 1 to `max` in header `name`, if sent.
fn seconds_header(headers: &HeaderMap, name: &str, max: u64) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let raw = value.to_str().unwrap_or("");
    let rule = format!("a whole number of seconds from 1 to {max}");
    match raw.trim().parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
        _ => Err(header_refusal(name, &rule, raw)),
    }
}

/// The idempotency token a regeneration carries: `Idempotency-Key`, else a client request id.
fn token_of(
    headers: &HeaderMap,
) -> Result<Option<(&'static str, String, time::Duration)>, ApiError> {
    let (kind, kept) = if headers.contains_key(IDEMPOTENCY_KEY) {
        (IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_KEPT)
    } else if headers.contains_key(&CLIENT_REQUEST_ID) {
        ("x-ms-client-request-id", CLIENT_REQUEST_ID_KEPT)
    } else {
        return Ok(None);
    };
    let raw = headers
        .get(kind)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ok =
        !raw.is_empty() && raw.len() <= MAX_TOKEN_LEN && raw.bytes().all(|b| b.is_ascii_graphic());
    if !ok {
        let rule = format!("1 to {MAX_TOKEN_LEN} visible ASCII characters");
        let shown: String = raw.chars().take(64).collect();
        return Err(header_refusal(kind, &rule, &shown));
    }
    Ok(Some((kind, raw.to_string(), kept)))
}

/// What identifies a regeneration for its token: the resource, the slots and the overlap asked.
fn fingerprint(id: &ResourceId, slots: &[&'static Slot], grace: Option<u64>) -> [u8; 32] {
    let mut names: Vec<&str> = slots.iter().map(|s| s.name).collect();
    names.sort_unstable();
    let text = format!(
        "{}\n{}\n{}",
        id.to_string().to_lowercase(),
        names.join(","),
        grace.map(|g| g.to_string()).unwrap_or_default()
    );
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

fn unprocessable(kind: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(ErrorResponse::new(
            "IdempotencyKeyReused",
            format!("The {kind} was already used for another request (another resource, key or {GRACE_SECONDS}); send a new one."),
        )),
    )
        .into_response()
}

/// The remembered answer of `token`, as a replay (or 422 for another request's token).
async fn replay(
    state: &AppState,
    token: &Token,
    audit: &rekey_store::AuditRecord,
) -> Result<Option<Response>, ApiError> {
    let since = OffsetDateTime::now_utc() - token.kept;
    let Some(remembered) = state
        .store
        .remembered(&token.principal, token.kind, &token.value, since)
        .await?
    else {
        return Ok(None);
    };
    if remembered.fingerprint != token.fingerprint {
        return Ok(Some(unprocessable(token.kind)));
    }
    let reply: Reply =
        serde_json::from_slice(&remembered.answer).map_err(|_| ApiError::Internal)?;
    // A replay hands out keys again: recorded like any key read, before they leave.
    state.audit_read(&audit.with_result("Replayed")).await?;
    let mut response = reply.into_response();
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(Some(response))
}

/// The last use of `slot` known here: this node's, not yet flushed, and every node's flushed
/// (to within the flush interval): time and client.
async fn last_use(
    state: &AppState,
    resource: &rekey_core::Resource,
    slot: &str,
    store_last: Option<OffsetDateTime>,
    since: OffsetDateTime,
) -> Result<Option<(OffsetDateTime, Option<String>)>, ApiError> {
    let mut best: Option<(OffsetDateTime, Option<String>)> = store_last.map(|t| (t, None));
    let mut consider = |at: OffsetDateTime, client: Option<String>| {
        if best.as_ref().is_none_or(|(t, _)| *t <= at) {
            best = Some((at, client));
        }
    };
    if let Some(entry) = state.dataplane.index.resource(&resource.internal_id) {
        let cell = (0..entry.slot_count())
            .find(|&i| entry.slot(i).name == slot)
            .and_then(|i| Some(&entry.noted_uses()?[i].counts));
        if let Some(cell) = cell {
            if let Some((micros, client)) = cell.last() {
                let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                consider(at, Some(client.to_string()));
            }
        }
    }
    let minute = since.unix_timestamp().div_euclid(60);
    for row in state.store.usage(resource.internal_id, minute).await? {
        if let (true, Some(at)) = (row.slot == slot, row.last_at) {
            consider(at, row.last_client);
        }
    }
    Ok(best)
}

/// Checks a regeneration's rotation headers before anything changes: a replay or a refusal is
/// the answer (`Err`), else what the regeneration must do.
pub async fn prepare(
    state: &AppState,
    caller: &Caller,
    m: Mapping,
    id: &ResourceId,
    slots: &[&'static Slot],
    headers: &HeaderMap,
    audit: &rekey_store::AuditRecord,
) -> Result<Prepared, Response> {
    let checked = async {
        let grace = seconds_header(headers, GRACE_SECONDS, MAX_GRACE_SECONDS)?;
        let unused_for = seconds_header(headers, IF_UNUSED_FOR, MAX_IF_UNUSED_SECONDS)?;
        let token = token_of(headers)?.map(|(kind, value, kept)| Token {
            principal: caller.principal.id.to_string(),
            kind,
            value,
            fingerprint: fingerprint(id, slots, grace),
            kept,
        });
        Ok::<_, ApiError>((grace, unused_for, token))
    };
    let (grace, unused_for, token) = checked.await.map_err(IntoResponse::into_response)?;
    if let Some(token) = &token {
        match replay(state, token, audit).await {
            Ok(Some(answer)) => return Err(answer),
            Ok(None) => {}
            Err(e) => return Err(e.into_response()),
        }
    }
    if let Some(seconds) = unused_for {
        guard(state, m, id, slots, seconds)
            .await
            .map_err(IntoResponse::into_response)?;
    }
    Ok(Prepared {
        grace: grace.map(|g| time::Duration::seconds(g as i64)),
        token,
    })
}

/// Refuses with 409 `KeyInUse` when one of `slots` was used within `seconds`.
async fn guard(
    state: &AppState,
    m: Mapping,
    id: &ResourceId,
    slots: &[&'static Slot],
    seconds: u64,
) -> Result<(), ApiError> {
    let (resource, rotation) = state
        .store
        .rotation_state(id)
        .await
        .map_err(|e| ApiError::from_store(e, Some(id)))?;
    let now = OffsetDateTime::now_utc();
    let since = now - time::Duration::seconds(seconds as i64);
    for slot in slots {
        let stored = rotation
            .iter()
            .find(|s| s.slot == slot.name)
            .and_then(|s| s.last_used);
        let Some((at, client)) = last_use(state, &resource, slot.name, stored, since).await? else {
            continue;
        };
        if at > since {
            let from = client.map(|c| format!(" from {c}")).unwrap_or_default();
            return Err(ApiError::Conflict {
                code: "KeyInUse",
                message: format!(
                    "{} was last used at {}{from}, within the last {seconds} seconds ({IF_UNUSED_FOR}); nothing was changed.",
                    m.regenerate_name(slot),
                    rfc3339(at)
                ),
            });
        }
    }
    Ok(())
}

/// The answer when a concurrent request with the same token committed first.
pub async fn replay_after_race(
    state: &AppState,
    prepared: &Prepared,
    audit: &rekey_store::AuditRecord,
) -> Result<Response, ApiError> {
    let Some(token) = &prepared.token else {
        return Err(ApiError::Internal);
    };
    replay(state, token, audit)
        .await?
        .ok_or(ApiError::Conflict {
            code: "Conflict",
            message: format!(
                "Another request with this {} is in progress; retry it.",
                token.kind
            ),
        })
}

/// Adds `x-rekey-retiring` and `x-rekey-disabled` to a `listKeys` body, when there is something
/// to say.
pub async fn decorate_list_keys(
    state: &AppState,
    id: &ResourceId,
    body: &mut Value,
) -> Result<(), ApiError> {
    let (_, slots) = state.store.rotation_state(id).await?;
    let now = OffsetDateTime::now_utc();
    let retiring: serde_json::Map<String, Value> = slots
        .iter()
        .filter_map(|s| {
            let until = s.grace_until.filter(|t| *t > now)?;
            Some((
                s.slot.clone(),
                serde_json::json!({ "until": rfc3339(until) }),
            ))
        })
        .collect();
    let disabled: serde_json::Map<String, Value> = slots
        .iter()
        .filter(|s| s.disabled)
        .map(|s| (s.slot.clone(), Value::Bool(true)))
        .collect();
    if let Some(object) = body.as_object_mut() {
        if !retiring.is_empty() {
            object.insert(RETIRING_FIELD.into(), retiring.into());
        }
        if !disabled.is_empty() {
            object.insert(DISABLED_FIELD.into(), disabled.into());
        }
    }
    Ok(())
}

fn minute_start(minute: i64) -> String {
    rfc3339(
        OffsetDateTime::from_unix_timestamp(minute.saturating_mul(60))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
    )
}

async fn list_key_usage(
    m: Mapping,
    state: AppState,
    caller: Caller,
    id: ResourceId,
) -> Result<Response, ApiError> {
    state
        .authorize(&caller, &action(m, "listKeys/action"), &id.to_string())
        .await?;
    let (resource, slots) = state
        .store
        .rotation_state(&id)
        .await
        .map_err(|e| ApiError::from_store(e, Some(&id)))?;
    // This node's counts so far are in the answer; other nodes' are within their flush interval.
    let dataplane = &state.dataplane;
    usage::flush_counts(
        &dataplane.index,
        &dataplane.counts,
        state.store.as_ref(),
        &state.events,
    )
    .await;
    let max_age = super::resources::max_key_age(&state, &resource).await?;
    let now = OffsetDateTime::now_utc();
    let first_minute = (now - usage::USAGE_KEPT).unix_timestamp().div_euclid(60) + 1;
    let rows = state
        .store
        .usage(resource.internal_id, first_minute)
        .await?;
    let mut by_slot: HashMap<&str, Vec<&rekey_store::UsageRow>> = HashMap::new();
    for row in &rows {
        by_slot.entry(row.slot.as_str()).or_default().push(row);
    }
    let latest = |pairs: &mut dyn Iterator<Item = (OffsetDateTime, Option<&String>)>| {
        pairs.max_by_key(|(t, _)| *t).map(|(t, c)| (t, c.cloned()))
    };
    let value = slots
        .iter()
        .filter_map(|state_of| {
            let slot = resource.id.provider.slot(&state_of.slot)?;
            let rows = by_slot.get(slot.name).map(Vec::as_slice).unwrap_or(&[]);
            let used = latest(
                &mut rows
                    .iter()
                    .filter_map(|r| Some((r.last_at?, r.last_client.as_ref()))),
            );
            let presented = latest(
                &mut rows
                    .iter()
                    .filter_map(|r| Some((r.retired_at?, r.retired_client.as_ref()))),
            );
            let last_used = match (&used, state_of.last_used) {
                (Some((t, _)), Some(stored)) => Some((*t).max(stored)),
                (Some((t, _)), None) => Some(*t),
                (None, stored) => stored,
            };
            let age = super::resources::key_age(max_age, state_of.created_at, now);
            Some(KeyUsage {
                key_name: m.regenerate_name(slot),
                last_used: last_used.map(rfc3339),
                last_client_address: used.and_then(|(_, c)| c),
                requests_24h: rows.iter().map(|r| r.uses.max(0) as u64).sum(),
                per_minute: rows
                    .iter()
                    .filter(|r| r.uses > 0)
                    .map(|r| MinuteCount {
                        start: minute_start(r.minute),
                        count: r.uses as u64,
                    })
                    .collect(),
                retired: RetiredUsage {
                    regenerated_at: (state_of.generation > 1).then(|| rfc3339(state_of.created_at)),
                    presentations_24h: rows.iter().map(|r| r.retired.max(0) as u64).sum(),
                    last_presented: presented.as_ref().map(|(t, _)| rfc3339(*t)),
                    last_client_address: presented.and_then(|(_, c)| c),
                },
                age_days: age.age_days,
                overdue: age.overdue,
                max_key_age_days: max_age,
            })
        })
        .collect();
    Ok(Json(KeyUsageList { value }).into_response())
}

/// What `disableKey`, `enableKey` and `endKeyGrace` do.
#[derive(Clone, Copy)]
enum Control {
    Disable,
    Enable,
    EndGrace,
}

impl Control {
    fn action(self) -> &'static str {
        match self {
            Control::Disable => "disableKey",
            Control::Enable => "enableKey",
            Control::EndGrace => "endKeyGrace",
        }
    }
}

async fn control(
    m: Mapping,
    control: Control,
    state: AppState,
    caller: Caller,
    id: ResourceId,
    body: Bytes,
) -> Result<Response, ApiError> {
    // The same roles as regenerating; the audit log names what was done.
    let mut audit = state
        .authorize(&caller, &action(m, "regenerateKey/action"), &id.to_string())
        .await?;
    audit.action = action(m, &format!("{}/action", control.action()));
    let slots = m.parse_regenerate(&json_body(&body)?)?;
    let done = match control {
        Control::Disable | Control::Enable => state
            .store
            .set_disabled(&id, &slots, matches!(control, Control::Disable), &audit)
            .await
            .map(drop),
        Control::EndGrace => state.store.end_grace(&id, &slots, &audit).await.map(drop),
    };
    match done {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => Err(failed(&state, &audit, &id, e).await),
    }
}

/// Documents the rotation headers and answers on a type's `regenerateKey` operation.
pub fn regenerate_extensions(op: Op) -> Op {
    let text = || header_schema("token");
    op.header(
        "Idempotency-Key",
        false,
        "rekey extension: a repeat within 24 hours (same caller, resource and key) answers the first answer again, with x-rekey-replayed: true, and rotates nothing; with another request, 422.",
        text(),
    )
    .header(
        "x-ms-client-request-id",
        false,
        "A repeat within 10 minutes is replayed like Idempotency-Key (the Azure SDKs and az resend it on their own retries).",
        text(),
    )
    .header(
        "x-rekey-if-unused-for",
        false,
        "rekey extension: refuse with 409 KeyInUse, changing nothing, when the slot was used within this many seconds.",
        header_schema("if_unused_for"),
    )
    .header(
        "x-rekey-grace-seconds",
        false,
        "rekey extension: the old key keeps working this many seconds beside the new one.",
        header_schema("grace_seconds"),
    )
    .response(409, "rekey extension: KeyInUse (x-rekey-if-unused-for)", Some("ErrorResponse".into()))
    .response(
        422,
        "rekey extension: the idempotency token was used for another request",
        Some("ErrorResponse".into()),
    )
}

/// One header's schema, derived from [`RotationHeaders`].
fn header_schema(property: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    use utoipa::openapi::{RefOr, Schema};
    match <RotationHeaders as utoipa::PartialSchema>::schema() {
        RefOr::T(Schema::Object(o)) => o
            .properties
            .get(property)
            .cloned()
            .unwrap_or_else(|| panic!("RotationHeaders describes {property}")),
        _ => unreachable!("RotationHeaders derives an object schema"),
    }
}

pub fn register(table: &mut RouteTable) {
    let mut all = Vec::new();
    let usage_schema = rekey_api::mapping::schema_of::<KeyUsageList>(&mut all);
    table.schemas(all);
    for m in rekey_api::mapping::MAPPINGS.iter().copied() {
        register_type(table, m, &usage_schema);
    }
}

fn register_type(table: &mut RouteTable, m: Mapping, usage_schema: &str) {
    let p = m.provider();
    let regenerate_body = m.schemas().regenerate;
    let tag = format!("{}_{}", p.namespace.replace('.', ""), p.resource_type);
    let one = format!(
        "/subscriptions/{{subscriptionId}}/resourceGroups/{{resourceGroupName}}/providers/{}/{}/{{{}}}",
        p.namespace, p.resource_type, p.name_param
    );
    let arm = |id: String, summary: &str| Op::arm(id, summary).versions(p.api_versions).param(p);
    table.route(
        Method::POST,
        &format!("{one}/listKeyUsage"),
        arm(
            format!("{tag}_ListKeyUsage"),
            "rekey extension: each key slot's data-plane use over the last 24 hours (per minute, last client, presentations of replaced keys), summed over every node.",
        )
        .response(200, "The usage", Some(usage_schema.to_string())),
        post(move |State(s), Extension(c), Parsed(id)| list_key_usage(m, s, c, id)),
    );
    for (control_of, summary) in [
        (Control::Disable, "rekey extension: the named key stops working on the data plane (401 \"this key is disabled\") without being rotated."),
        (Control::Enable, "rekey extension: a disabled key works again."),
        (Control::EndGrace, "rekey extension: the overlap of the named slot's replaced key ends now."),
    ] {
        let segment = control_of.action();
        let mut op_id = segment.to_string();
        op_id[..1].make_ascii_uppercase();
        table.route(
            Method::POST,
            &format!("{one}/{segment}"),
            arm(format!("{tag}_{op_id}"), summary)
                .body(regenerate_body.clone(), true)
                .response(204, "Done", None),
            post(move |State(s), Extension(c), Parsed(id), b| {
                control(m, control_of, s, c, id, b)
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_header_bounds_are_the_checked_ones() {
        let doc = |p: &str| serde_json::to_value(header_schema(p)).unwrap();
        assert_eq!(doc("grace_seconds")["maximum"], MAX_GRACE_SECONDS);
        assert_eq!(doc("if_unused_for")["maximum"], MAX_IF_UNUSED_SECONDS);
        assert_eq!(doc("token")["maxLength"], MAX_TOKEN_LEN);
    }

    #[test]
    fn a_remembered_reply_renders_as_the_first_one_did() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "azure-asyncoperation",
            HeaderValue::from_static("http://x/op"),
        );
        let reply = Reply::new(
            StatusCode::ACCEPTED,
            &headers,
            Some(serde_json::json!({"status":"Enqueued"})),
        );
        let again: Reply = serde_json::from_slice(&reply.to_bytes()).unwrap();
        let response = again.into_response();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(response.headers()["azure-asyncoperation"], "http://x/op");
    }

    #[test]
    fn grace_seconds_outside_one_to_a_week_are_refused_naming_the_header() {
        for bad in ["0", "604801", "-1", "1.5", "soon"] {
            let mut headers = HeaderMap::new();
            headers.insert(GRACE_SECONDS, HeaderValue::from_str(bad).unwrap());
            let refusal = seconds_header(&headers, GRACE_SECONDS, MAX_GRACE_SECONDS).unwrap_err();
            let ApiError::BadRequest { message, .. } = refusal else {
                panic!("{bad}: not a 400")
            };
            assert!(message.contains(GRACE_SECONDS), "{message}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(GRACE_SECONDS, HeaderValue::from_static("604800"));
        assert_eq!(
            seconds_header(&headers, GRACE_SECONDS, MAX_GRACE_SECONDS).unwrap(),
            Some(604_800)
        );
    }
}
