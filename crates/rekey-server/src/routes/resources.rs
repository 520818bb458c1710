//! The keyed resource types of the provider catalogue, served generically: for each provider, its
//! create/get/update/delete/list routes and its key actions, with bodies mapped by the type's
//! [`WireMapping`]. Nothing here names a particular type.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::Json;
use rekey_api::{List, RegenerateReply, WireMapping};
use rekey_core::providers::Slot;
use rekey_core::{Provider, ResourceGroupName, ResourceId, ResourceName, Secret, SubscriptionId};
use rekey_store::Written;

use super::{json_body, ApiVersion, ArmPath, Op, RouteTable};
use crate::app::AppState;
use crate::error::ApiError;

/// Action segments after a resource name, in canonical casing.
pub const ACTIONS: &[&str] = &["listKeys", "regenerateKey"];

type Mapping = &'static dyn WireMapping;

fn resource_id(
    provider: &'static Provider,
    sub: &str,
    group: &str,
    name: &str,
) -> Result<ResourceId, ApiError> {
    Ok(ResourceId {
        subscription: SubscriptionId::parse(sub)?,
        group: ResourceGroupName::parse(group)?,
        provider,
        name: ResourceName::parse(provider, name)?,
    })
}

fn fresh_keys(slots: &[&'static Slot], provider: &Provider) -> Vec<(&'static Slot, Secret)> {
    slots
        .iter()
        .map(|slot| (*slot, provider.key_format.generate()))
        .collect()
}

async fn create(
    m: Mapping,
    state: AppState,
    version: ApiVersion,
    (sub, group, name): (String, String, String),
    body: Bytes,
) -> Result<Response, ApiError> {
    let provider = m.provider();
    version.check(provider.api_versions)?;
    let id = resource_id(provider, &sub, &group, &name)?;
    let spec = m.parse_create(&json_body(&body)?)?;
    let all: Vec<&'static Slot> = provider.slots.iter().collect();
    let (resource, written) = state
        .store
        .put_resource(&id, &spec, fresh_keys(&all, provider))
        .await
        .map_err(|e| ApiError::from_store(e, Some(&id)))?;
    let status = if written == Written::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(m.render(&resource, &state.ctx))).into_response())
}

async fn show(
    m: Mapping,
    state: AppState,
    version: ApiVersion,
    (sub, group, name): (String, String, String),
) -> Result<Response, ApiError> {
    version.check(m.provider().api_versions)?;
    let id = resource_id(m.provider(), &sub, &group, &name)?;
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
    version: ApiVersion,
    (sub, group, name): (String, String, String),
    body: Bytes,
) -> Result<Response, ApiError> {
    version.check(m.provider().api_versions)?;
    let id = resource_id(m.provider(), &sub, &group, &name)?;
    let body = json_body(&body)?;
    let current = state
        .store
        .resource(&id)
        .await
        .map_err(|e| ApiError::from_store(e, Some(&id)))?;
    let spec = m.parse_patch(&current.spec, &body)?;
    let resource = state
        .store
        .update_resource(&id, &spec)
        .await
        .map_err(|e| ApiError::from_store(e, Some(&id)))?;
    Ok(Json(m.render(&resource, &state.ctx)).into_response())
}

async fn remove(
    m: Mapping,
    state: AppState,
    version: ApiVersion,
    (sub, group, name): (String, String, String),
) -> Result<Response, ApiError> {
    version.check(m.provider().api_versions)?;
    let id = resource_id(m.provider(), &sub, &group, &name)?;
    let deleted = state
        .store
        .delete_resource(&id)
        .await
        .map_err(|e| ApiError::from_store(e, Some(&id)))?;
    Ok(if deleted {
        StatusCode::OK
    } else {
        StatusCode::NO_CONTENT
    }
    .into_response())
}

async fn list(
    m: Mapping,
    state: AppState,
    version: ApiVersion,
    sub: String,
    group: Option<String>,
) -> Result<Response, ApiError> {
    version.check(m.provider().api_versions)?;
    let sub = SubscriptionId::parse(&sub)?;
    let group = group.as_deref().map(ResourceGroupName::parse).transpose()?;
    let resources = state
        .store
        .list_resources(&sub, group.as_ref(), m.provider())
        .await?;
    let value = resources.iter().map(|r| m.render(r, &state.ctx)).collect();
    Ok(Json(List::of(value)).into_response())
}

async fn list_keys(
    m: Mapping,
    state: AppState,
    version: ApiVersion,
    (sub, group, name): (String, String, String),
) -> Result<Response, ApiError> {
    version.check(m.provider().api_versions)?;
    let id = resource_id(m.provider(), &sub, &group, &name)?;
    let (resource, keys) = state
        .store
        .keys(&id)
        .await
        .map_err(|e| ApiError::from_store(e, Some(&id)))?;
    Ok(Json(m.render_keys(&resource, &keys, &state.ctx)).into_response())
}

async fn regenerate(
    m: Mapping,
    state: AppState,
    version: ApiVersion,
    (sub, group, name): (String, String, String),
    body: Bytes,
) -> Result<Response, ApiError> {
    let provider = m.provider();
    version.check(provider.api_versions)?;
    let id = resource_id(provider, &sub, &group, &name)?;
    let slots = m.parse_regenerate(&json_body(&body)?)?;
    // The reply is built only from what the store committed.
    let (resource, keys) = state
        .store
        .regenerate(&id, fresh_keys(&slots, provider))
        .await
        .map_err(|e| ApiError::from_store(e, Some(&id)))?;
    Ok(match m.regenerate_reply(&resource, &keys, &state.ctx) {
        RegenerateReply::Body(body) => Json(body).into_response(),
        RegenerateReply::Empty => StatusCode::OK.into_response(),
    })
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

    table.route(
        Method::PUT,
        &one,
        Op::arm(
            format!("{tag}_Create"),
            format!("Creates or replaces a {ty} resource; keys are made on create."),
        )
        .body(schemas.create.clone(), true)
        .response(200, "Replaced", Some(schemas.resource.clone()))
        .response(201, "Created", Some(schemas.resource.clone())),
        put(move |State(s), v, ArmPath(p), b| create(m, s, v, p, b)),
    );
    table.route(
        Method::GET,
        &one,
        Op::arm(format!("{tag}_Get"), format!("Gets a {ty} resource.")).response(
            200,
            "The resource",
            Some(schemas.resource.clone()),
        ),
        get(move |State(s), v, ArmPath(p)| show(m, s, v, p)),
    );
    table.route(
        Method::PATCH,
        &one,
        Op::arm(
            format!("{tag}_Update"),
            format!("Updates a {ty} resource's tags, sku or properties."),
        )
        .body(schemas.patch.clone(), true)
        .response(200, "Updated", Some(schemas.resource.clone())),
        patch(move |State(s), v, ArmPath(p), b| update(m, s, v, p, b)),
    );
    table.route(
        Method::DELETE,
        &one,
        Op::arm(
            format!("{tag}_Delete"),
            format!("Deletes a {ty} resource and its keys."),
        )
        .response(200, "Deleted", None)
        .response(204, "Did not exist", None),
        delete(move |State(s), v, ArmPath(p)| remove(m, s, v, p)),
    );
    table.route(
        Method::GET,
        &by_group,
        Op::arm(
            format!("{tag}_ListByResourceGroup"),
            format!("Lists the {ty} of a resource group."),
        )
        .response(200, "The resources", None),
        get(
            move |State(s), v, ArmPath((sub, g)): ArmPath<(String, String)>| {
                list(m, s, v, sub, Some(g))
            },
        ),
    );
    table.route(
        Method::GET,
        &format!("/subscriptions/{{subscriptionId}}/providers/{ns}/{ty}"),
        Op::arm(
            format!("{tag}_List"),
            format!("Lists the {ty} of a subscription."),
        )
        .response(200, "The resources", None),
        get(move |State(s), v, ArmPath(sub): ArmPath<String>| list(m, s, v, sub, None)),
    );
    table.route(
        Method::POST,
        &format!("{one}/listKeys"),
        Op::arm(format!("{tag}_ListKeys"), "Lists the resource's keys.").response(
            200,
            "The keys",
            Some(schemas.keys.clone()),
        ),
        post(move |State(s), v, ArmPath(p)| list_keys(m, s, v, p)),
    );
    table.route(
        Method::POST,
        &format!("{one}/regenerateKey"),
        Op::arm(
            format!("{tag}_RegenerateKey"),
            "Regenerates the named key; the old key stops working when this answers.",
        )
        .body(schemas.regenerate.clone(), true)
        .response(200, "Regenerated", Some(schemas.keys.clone())),
        post(move |State(s), v, ArmPath(p), b| regenerate(m, s, v, p, b)),
    );
    table.schemas(schemas.all);
}
