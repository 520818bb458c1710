//! The keyed resource types of the provider catalogue, served generically: for each provider, its
//! create/get/update/delete/list routes and its key actions, with bodies mapped by the type's
//! [`WireMapping`]. Nothing here names a particular type.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Extension, Json};
use rekey_api::arm::{OperationAccepted, OperationResult, OperationStatus};
use rekey_api::mapping::schema_of;
use rekey_api::{Answer, KeyView, List, RenderContext, WireMapping};
use rekey_core::providers::Slot;
use rekey_core::{Provider, ResourceGroupName, ResourceId, Secret, SubscriptionId};
use rekey_store::{AuditRecord, Operation, StoreError, Written};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::authz::Caller;
use crate::error::ApiError;
use crate::route_table::{json_body, ApiVersion, ArmPath, Op, Parsed, RouteTable};
use crate::routes::rotation::Reply;
use crate::state::AppState;

/// Action segments after a resource name, in canonical casing.
pub const ACTIONS: &[&str] = &[
    "listKeys",
    "regenerateKey",
    "readonlykeys",
    "listConnectionStrings",
];

/// Segments of the operation routes below `providers/{namespace}/locations/{location}/`.
pub const OPERATION_KINDS: &[&str] = &["operationsStatus", "operationResults"];

type Mapping = &'static dyn WireMapping;

fn fresh_keys(slots: &[&'static Slot], provider: &Provider) -> Vec<(&'static Slot, Secret)> {
    slots
        .iter()
        .map(|slot| (*slot, provider.key_format.generate()))
        .collect()
}

/// Azure's action name for `verb` on this type: `Microsoft.CognitiveServices/accounts/read`.
pub(crate) fn action(m: Mapping, verb: &str) -> String {
    format!("{}/{verb}", m.provider().type_name())
}

/// Maps a failed store call to its ARM error, recording the failed attempt in the audit log.
pub(crate) async fn failed(
    state: &AppState,
    audit: &AuditRecord,
    id: &ResourceId,
    e: StoreError,
) -> ApiError {
    // A database that cannot be reached cannot take the record either; the caller gets 503 at once.
    if e.is_unavailable() {
        return ApiError::from_store(e, Some(id));
    }
    if let Err(audit_error) = state.store.append_audit(&audit.with_result("Failed")).await {
        tracing::warn!(error = %audit_error, "could not record a failed call in the audit log");
    }
    ApiError::from_store(e, Some(id))
}

async fn create(
    m: Mapping,
    state: AppState,
    caller: Caller,
    version: ApiVersion,
    id: ResourceId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let provider = m.provider();
    let audit = state
        .authorize(&caller, &action(m, "write"), &id.to_string())
        .await?;
    let started = OffsetDateTime::now_utc();
    let spec = m.parse_create(&json_body(&body)?)?;
    spec.upstream()?;
    spec.max_key_age_days()?;
    let all: Vec<&'static Slot> = provider.slots.iter().collect();
    let lro = m.answers().create == Answer::AsyncOperation;
    let operation = lro.then(|| Operation::succeeded(&id, &spec.location, started));
    let stored = state
        .store
        .put_resource(
            &id,
            &spec,
            fresh_keys(&all, provider),
            operation.as_ref(),
            &audit,
        )
        .await;
    let (resource, written) = match stored {
        Ok(v) => v,
        Err(e) => return Err(failed(&state, &audit, &id, e).await),
    };
    let body = Json(m.render(&resource, &state.ctx));
    Ok(match operation {
        // The SDKs of such types accept only 200 here, with the operation to poll in a header.
        Some(op) => {
            let headers = operation_headers(&state.ctx, &op, version.as_str(), false);
            (StatusCode::OK, headers, body).into_response()
        }
        None if written == Written::Created => (StatusCode::CREATED, body).into_response(),
        None => (StatusCode::OK, body).into_response(),
    })
}

async fn show(
    m: Mapping,
    state: AppState,
    caller: Caller,
    id: ResourceId,
) -> Result<Response, ApiError> {
    state
        .authorize(&caller, &action(m, "read"), &id.to_string())
        .await?;
    let resource = state
        .store
        .resource(&id)
        .await
        .map_err(|e| ApiError::from_store(e, Some(&id)))?;
    Ok(Json(m.render(&resource, &state.ctx)).into_response())
}

async fn update(
    m: Mapping,
    state: AppState,
    caller: Caller,
    id: ResourceId,
    body: Bytes,
) -> Result<Response, ApiError> {
    let audit = state
        .authorize(&caller, &action(m, "write"), &id.to_string())
        .await?;
    let body = json_body(&body)?;
    let current = state
        .store
        .resource(&id)
        .await
        .map_err(|e| ApiError::from_store(e, Some(&id)))?;
    let spec = m.parse_patch(&current.spec, &body)?;
    spec.upstream()?;
    spec.max_key_age_days()?;
    match state.store.update_resource(&id, &spec, &audit).await {
        Ok(resource) => Ok(Json(m.render(&resource, &state.ctx)).into_response()),
        Err(e) => Err(failed(&state, &audit, &id, e).await),
    }
}

async fn remove(
    m: Mapping,
    state: AppState,
    caller: Caller,
    version: ApiVersion,
    id: ResourceId,
) -> Result<Response, ApiError> {
    let audit = state
        .authorize(&caller, &action(m, "delete"), &id.to_string())
        .await?;
    let started = OffsetDateTime::now_utc();
    // The operation's location comes from the resource; a missing resource records no operation.
    let operation = match m.answers().delete {
        Answer::AsyncOperation => match state.store.resource(&id).await {
            Ok(r) => Some(Operation::succeeded(&id, &r.spec.location, started)),
            Err(StoreError::ResourceNotFound(_)) => None,
            Err(e) => return Err(ApiError::from_store(e, Some(&id))),
        },
        _ => None,
    };
    let deleted = match state
        .store
        .delete_resource(&id, operation.as_ref(), &audit)
        .await
    {
        Ok(deleted) => deleted,
        Err(e) => return Err(failed(&state, &audit, &id, e).await),
    };
    Ok(match (deleted, operation) {
        (true, Some(op)) => accepted(&state.ctx, &op, version.as_str()),
        (true, None) => StatusCode::OK.into_response(),
        (false, _) => StatusCode::NO_CONTENT.into_response(),
    })
}

async fn list(
    m: Mapping,
    state: AppState,
    caller: Caller,
    sub: SubscriptionId,
    group: Option<ResourceGroupName>,
) -> Result<Response, ApiError> {
    let read = action(m, "read");
    // A caller with no role at, above or below the scope is refused before the lookup, so the
    // answer is the same whether the subscription or group exists.
    let scope = match &group {
        Some(g) => format!("/subscriptions/{sub}/resourceGroups/{g}"),
        None => format!("/subscriptions/{sub}"),
    };
    if !caller.sees(&scope) {
        state.authorize(&caller, &read, &scope).await?;
    }
    let resources = state
        .store
        .list_resources(&sub, group.as_ref(), m.provider())
        .await?;
    // A list shows what the caller may read, as Azure's does.
    let value = resources
        .iter()
        .filter(|r| caller.can(&read, &r.id.to_string()))
        .map(|r| m.render(r, &state.ctx))
        .collect();
    Ok(Json(List::of(value)).into_response())
}

async fn key_view(
    m: Mapping,
    view: &'static KeyView,
    state: AppState,
    caller: Caller,
    id: ResourceId,
) -> Result<Response, ApiError> {
    let audit = state
        .authorize(
            &caller,
            &action(m, &format!("{}/action", view.action)),
            &id.to_string(),
        )
        .await?;
    let (resource, keys) = match state.store.keys(&id).await {
        Ok(v) => v,
        Err(e) => return Err(failed(&state, &audit, &id, e).await),
    };
    // Every key read is in the audit log before the keys leave.
    state.audit_read(&audit).await?;
    let mut body = m.render_key_view(view.action, &resource, &keys, &state.ctx);
    if view.action == "listKeys" {
        // rekey extension: when each slot's key was last accepted, so an operator can see which key
        // is still in use before rotating it. Clients that do not know the field ignore it.
        let last_used: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .map(|k| (k.slot.name.to_string(), k.last_used.map(rfc3339).into()))
            .collect();
        // rekey extension: when each slot's current key was made (Quantum's body has it already;
        // the other types' bodies have no place for it), so the web page can show every type alike.
        let created: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .map(|k| (k.slot.name.to_string(), rfc3339(k.created_at).into()))
            .collect();
        let key_age = key_ages(&state, &resource, &keys).await?;
        if let Some(object) = body.as_object_mut() {
            object.insert(LAST_USED_FIELD.into(), last_used.into());
            object.insert(CREATED_FIELD.into(), created.into());
            object.insert(KEY_AGE_FIELD.into(), key_age.into());
        }
        super::rotation::decorate_list_keys(&state, &id, &mut body).await?;
    }
    Ok(Json(body).into_response())
}

/// The `listKeys` extension field with each slot's age in whole days, whether it is past the
/// maximum age (the resource's `x-rekey-maxKeyAgeDays`, else the subscription's key policy), and
/// that maximum (`maxKeyAgeDays`, when one applies).
pub const KEY_AGE_FIELD: &str = "x-rekey-keyAge";

async fn key_ages(
    state: &AppState,
    resource: &rekey_core::Resource,
    keys: &[rekey_core::KeySlotState],
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    let max = max_key_age(state, resource).await?;
    let now = OffsetDateTime::now_utc();
    Ok(keys
        .iter()
        .map(|k| {
            let age = key_age(max, k.created_at, now);
            let mut age = serde_json::json!({"ageDays": age.age_days, "overdue": age.overdue});
            // The limit travels with the age so a client can say how far past it a key is.
            if let Some(days) = max {
                age["maxKeyAgeDays"] = days.into();
            }
            (k.slot.name.to_string(), age)
        })
        .collect())
}

/// The maximum key age that applies to `resource`: its `x-rekey-maxKeyAgeDays`, else its
/// subscription's key policy, else none. `listKeys` and `listKeyUsage` both judge ages by it.
pub async fn max_key_age(
    state: &AppState,
    resource: &rekey_core::Resource,
) -> Result<Option<i64>, ApiError> {
    let default = state.store.key_policy(&resource.id.subscription).await?;
    Ok(rekey_store::events::max_key_age_days(
        &resource.spec.settings,
        default,
    ))
}

/// A key's age and whether it is past `max` days, as `listKeys` and `listKeyUsage` show it.
pub struct KeyAge {
    pub age_days: i64,
    pub overdue: bool,
}

pub fn key_age(max: Option<i64>, created: OffsetDateTime, now: OffsetDateTime) -> KeyAge {
    KeyAge {
        age_days: rekey_store::events::age_days(created, now),
        overdue: max.is_some_and(|days| now - created > time::Duration::days(days)),
    }
}

/// The `listKeys` extension field with each slot's last data-plane use.
pub const LAST_USED_FIELD: &str = "x-rekey-lastUsed";
/// The `listKeys` extension field with when each slot's current key was made.
pub const CREATED_FIELD: &str = "x-rekey-createdAt";

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("an OffsetDateTime always formats as RFC 3339")
}

async fn regenerate(
    m: Mapping,
    state: AppState,
    caller: Caller,
    version: ApiVersion,
    id: ResourceId,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let provider = m.provider();
    let audit = state
        .authorize(&caller, &action(m, "regenerateKey/action"), &id.to_string())
        .await?;
    let started = OffsetDateTime::now_utc();
    let slots = m.parse_regenerate(&json_body(&body)?)?;
    // rekey's own headers: a replay, a refusal, or what the regeneration must also do.
    let prepared =
        match super::rotation::prepare(&state, &caller, m, &id, &slots, &headers, &audit).await {
            Ok(prepared) => prepared,
            Err(answer) => return Ok(answer),
        };
    let answer = m.answers().regenerate;
    // The operation needs the resource's location; a missing resource fails in `regenerate` below.
    let operation = match answer {
        Answer::AsyncOperation => match state.store.resource(&id).await {
            Ok(r) => Some(Operation::succeeded(&id, &r.spec.location, started)),
            Err(e) => return Err(failed(&state, &audit, &id, e).await),
        },
        _ => None,
    };
    // The answer, rendered from the committed state: sent, and remembered for a replay.
    let ctx = state.ctx.clone();
    let reply = |resource: &rekey_core::Resource, keys: &[rekey_core::KeySlotState]| match (
        answer, &operation,
    ) {
        (Answer::AsyncOperation, Some(op)) => {
            let headers = operation_headers(&ctx, op, version.as_str(), true);
            Reply::new(
                StatusCode::ACCEPTED,
                &headers,
                Some(serde_json::to_value(OperationAccepted::enqueued()).expect("serializes")),
            )
        }
        (Answer::NoContent, _) => Reply::new(StatusCode::NO_CONTENT, &HeaderMap::new(), None),
        _ => {
            let list_keys = m.key_views()[0].action;
            let body = m.render_key_view(list_keys, resource, keys, &ctx);
            Reply::new(StatusCode::OK, &HeaderMap::new(), Some(body))
        }
    };
    let remembered = |resource: &rekey_core::Resource, keys: &[rekey_core::KeySlotState]| {
        reply(resource, keys).to_bytes()
    };
    // Every answer below is sent only after the store committed the new keys.
    let regenerated = state
        .store
        .regenerate_with(
            &id,
            fresh_keys(&slots, provider),
            operation.as_ref(),
            &audit,
            &prepared.options(&remembered),
        )
        .await;
    let (resource, keys) = match regenerated {
        Ok(v) => v,
        Err(StoreError::IdempotencyTaken) => {
            return super::rotation::replay_after_race(&state, &prepared, &audit).await
        }
        Err(e) => return Err(failed(&state, &audit, &id, e).await),
    };
    crate::metrics::regenerated(provider);
    Ok(reply(&resource, &keys).into_response())
}

/// Lower-case, no spaces: `West US` becomes `westus`, as ARM spells locations in paths. Only ASCII
/// letters and digits are kept (locations are checked to be nothing else), so operation URLs are
/// always valid header values.
fn location_slug(location: &str) -> String {
    location
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn operation_url(ctx: &RenderContext, op: &Operation, kind: &str, api_version: &str) -> String {
    format!(
        "{}/subscriptions/{}/providers/{}/locations/{}/{kind}/{}?api-version={api_version}",
        ctx.public_url,
        op.subscription,
        op.namespace,
        location_slug(&op.location),
        op.id
    )
}

/// `Azure-AsyncOperation` (and `Location` where the SDK polls it for the final result), with
/// `Retry-After: 0`: the operation is already finished, so clients need not wait to poll.
fn operation_headers(
    ctx: &RenderContext,
    op: &Operation,
    api_version: &str,
    with_location: bool,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let value = |s: String| HeaderValue::from_str(&s).expect("operation URLs are ASCII");
    headers.insert(
        "azure-asyncoperation",
        value(operation_url(ctx, op, "operationsStatus", api_version)),
    );
    if with_location {
        headers.insert(
            "location",
            value(operation_url(ctx, op, "operationResults", api_version)),
        );
    }
    headers.insert("retry-after", HeaderValue::from_static("0"));
    headers
}

/// The `202 Accepted` of a long-running delete or regenerate: the operation's headers and Azure's
/// body for an operation it has queued, `{"status":"Enqueued"}`. The change is already committed;
/// the status the client polls next says `Succeeded`.
fn accepted(ctx: &RenderContext, op: &Operation, api_version: &str) -> Response {
    let headers = operation_headers(ctx, op, api_version, true);
    let body = Json(OperationAccepted::enqueued());
    (StatusCode::ACCEPTED, headers, body).into_response()
}

async fn operation_status(
    state: AppState,
    caller: Caller,
    sub: SubscriptionId,
    (_, location, operation): (String, String, String),
    results: bool,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound {
        code: "OperationNotFound",
        message: format!("The operation '{operation}' could not be found."),
    };
    let id = Uuid::parse_str(&operation).map_err(|_| not_found())?;
    let op = state
        .store
        .operation(&sub, &id)
        .await?
        // Whoever can reach the resource an operation changed may poll it (a Key Operator too).
        .filter(|op| caller.sees(&op.resource_id))
        .ok_or_else(not_found)?;
    if location_slug(&location) != location_slug(&op.location) {
        return Err(not_found());
    }
    if results {
        // The SDKs that read the final result at `Location` accept only 200, 201 or 202 there
        // (@azure/arm-cosmosdb's poller throws on 204); Azure answers 200 with the status.
        return Ok(Json(OperationResult { status: op.status }).into_response());
    }
    Ok(Json(OperationStatus {
        id: format!(
            "/subscriptions/{}/providers/{}/locations/{}/operationsStatus/{}",
            op.subscription,
            op.namespace,
            location_slug(&op.location),
            op.id
        ),
        name: op.id.to_string(),
        status: op.status,
        start_time: rfc3339(op.started_at),
        end_time: rfc3339(op.ended_at),
        percent_complete: 100,
    })
    .into_response())
}

/// Registers the bodies of the operation routes (status, result) and of a `202 Accepted`; returns
/// their names.
fn operation_schemas(table: &mut RouteTable) -> (String, String, String) {
    let mut all = Vec::new();
    let names = (
        schema_of::<OperationStatus>(&mut all),
        schema_of::<OperationResult>(&mut all),
        schema_of::<OperationAccepted>(&mut all),
    );
    table.schemas(all);
    names
}

pub fn register(table: &mut RouteTable) {
    for m in rekey_api::mapping::MAPPINGS.iter().copied() {
        register_type(table, m);
    }
}

fn register_type(table: &mut RouteTable, m: Mapping) {
    let p = m.provider();
    let schemas = m.schemas();
    let tag = format!("{}_{}", p.namespace.replace('.', ""), p.resource_type);
    let (ns, ty, param) = (p.namespace, p.resource_type, p.name_param);
    let by_group = format!("/subscriptions/{{subscriptionId}}/resourceGroups/{{resourceGroupName}}/providers/{ns}/{ty}");
    let one = format!("{by_group}/{{{param}}}");
    let list_schema = schemas.list.clone();
    let (status_schema, result_schema, accepted_schema) = operation_schemas(table);
    let arm = |id: String, summary: &str| Op::arm(id, summary).versions(p.api_versions).param(p);

    table.route(
        Method::PUT,
        &one,
        arm(
            format!("{tag}_Create"),
            &format!("Creates or replaces a {ty} resource; keys are made on create."),
        )
        .body(schemas.create.clone(), true)
        .response(200, "Replaced", Some(schemas.resource.clone()))
        .response(201, "Created", Some(schemas.resource.clone())),
        put(move |State(s), Extension(c), v, Parsed(id), b| create(m, s, c, v, id, b)),
    );
    table.route(
        Method::GET,
        &one,
        arm(format!("{tag}_Get"), &format!("Gets a {ty} resource.")).response(
            200,
            "The resource",
            Some(schemas.resource.clone()),
        ),
        get(move |State(s), Extension(c), Parsed(id)| show(m, s, c, id)),
    );
    table.route(
        Method::PATCH,
        &one,
        arm(
            format!("{tag}_Update"),
            &format!("Updates a {ty} resource's tags, sku or properties."),
        )
        .body(schemas.patch.clone(), true)
        .response(200, "Updated", Some(schemas.resource.clone())),
        patch(move |State(s), Extension(c), Parsed(id), b| update(m, s, c, id, b)),
    );
    table.route(
        Method::DELETE,
        &one,
        arm(
            format!("{tag}_Delete"),
            &format!("Deletes a {ty} resource and its keys."),
        )
        .response(200, "Deleted", None)
        .response(
            202,
            "Deleted; the body is {\"status\":\"Enqueued\"}, the operation in Azure-AsyncOperation reports Succeeded",
            Some(accepted_schema.clone()),
        )
        .response(204, "Did not exist", None),
        delete(move |State(s), Extension(c), v, Parsed(id)| remove(m, s, c, v, id)),
    );
    table.route(
        Method::GET,
        &by_group,
        arm(
            format!("{tag}_ListByResourceGroup"),
            &format!("Lists the {ty} of a resource group."),
        )
        .response(200, "The resources", Some(list_schema.clone())),
        get(move |State(s), Extension(c), Parsed(sub), Parsed(g)| list(m, s, c, sub, Some(g))),
    );
    table.route(
        Method::GET,
        &format!("/subscriptions/{{subscriptionId}}/providers/{ns}/{ty}"),
        arm(
            format!("{tag}_List"),
            &format!("Lists the {ty} of a subscription."),
        )
        .response(200, "The resources", Some(list_schema.clone())),
        get(move |State(s), Extension(c), Parsed(sub)| list(m, s, c, sub, None)),
    );
    for (view, schema) in m.key_views().iter().zip(&schemas.key_views) {
        let path = format!("{one}/{}", view.action);
        let op = |method: &str| {
            arm(format!("{tag}_{}{method}", view.action), view.summary).response(
                200,
                "The keys",
                Some(schema.clone()),
            )
        };
        table.route(
            Method::POST,
            &path,
            op(""),
            post(move |State(s), Extension(c), Parsed(id)| key_view(m, view, s, c, id)),
        );
        if view.also_get {
            table.route(
                Method::GET,
                &path,
                op("Get"),
                get(move |State(s), Extension(c), Parsed(id)| key_view(m, view, s, c, id)),
            );
        }
    }
    table.route(
        Method::POST,
        &format!("{one}/regenerateKey"),
        super::rotation::regenerate_extensions(arm(
            format!("{tag}_RegenerateKey"),
            "Regenerates the named key; the old key stops working when this answers.",
        ))
        .body(schemas.regenerate.clone(), true)
        .response(200, "Regenerated", Some(schemas.key_views[0].clone()))
        .response(
            202,
            "Regenerated; the body is {\"status\":\"Enqueued\"}, the operation in Azure-AsyncOperation reports Succeeded",
            Some(accepted_schema.clone()),
        )
        .response(204, "Regenerated", None),
        post(move |State(s), Extension(c), v, Parsed(id), h, b| regenerate(m, s, c, v, id, h, b)),
    );
    let answers = m.answers();
    if [answers.create, answers.delete, answers.regenerate].contains(&Answer::AsyncOperation) {
        let base =
            format!("/subscriptions/{{subscriptionId}}/providers/{ns}/locations/{{location}}");
        table.route(
            Method::GET,
            &format!("{base}/operationsStatus/{{operationId}}"),
            arm(
                format!("{tag}_OperationsStatus"),
                "The status of a long-running operation.",
            )
            .response(200, "The operation", Some(status_schema)),
            get(move |State(s), Extension(c), Parsed(sub), ArmPath(p)| {
                operation_status(s, c, sub, p, false)
            }),
        );
        table.route(
            Method::GET,
            &format!("{base}/operationResults/{{operationId}}"),
            arm(
                format!("{tag}_OperationResults"),
                "The result of a finished long-running operation.",
            )
            .response(200, "The finished operation's status", Some(result_schema)),
            get(move |State(s), Extension(c), Parsed(sub), ArmPath(p)| {
                operation_status(s, c, sub, p, true)
            }),
        );
    }
    table.schemas(schemas.all);
}
