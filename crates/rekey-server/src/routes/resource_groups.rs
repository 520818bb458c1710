//! `Microsoft.Resources` resource groups: create/update, get, check existence, patch tags, list, and
//! delete, which takes the group's resources and their keys with it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, head, patch, put};
use axum::{Extension, Json};
use rekey_api::arm::{
    ResourceGroup as WireGroup, ResourceGroupCreate, ResourceGroupPatch, ResourceGroupProperties,
};
use rekey_api::mapping::schema_of;
use rekey_api::List;
use rekey_core::providers::RESOURCES_API_VERSIONS;
use rekey_core::{ResourceGroup, ResourceGroupName, SubscriptionId};
use rekey_store::Written;
use time::OffsetDateTime;

use crate::authz::Caller;
use crate::error::ApiError;
use crate::route_table::{object_body, Op, Parsed, RouteTable};
use crate::state::AppState;

fn render(group: &ResourceGroup) -> WireGroup {
    WireGroup {
        id: format!(
            "/subscriptions/{}/resourceGroups/{}",
            group.subscription, group.name
        ),
        name: group.name.to_string(),
        type_name: "Microsoft.Resources/resourceGroups".into(),
        location: group.location.clone(),
        tags: group.tags.clone(),
        properties: ResourceGroupProperties {
            provisioning_state: "Succeeded".into(),
        },
    }
}

fn scope(sub: &SubscriptionId, name: &ResourceGroupName) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{name}")
}

const READ: &str = "Microsoft.Resources/subscriptions/resourceGroups/read";
const WRITE: &str = "Microsoft.Resources/subscriptions/resourceGroups/write";
const DELETE: &str = "Microsoft.Resources/subscriptions/resourceGroups/delete";

async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Parsed(sub): Parsed<SubscriptionId>,
    Parsed(name): Parsed<ResourceGroupName>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let audit = state.authorize(&caller, WRITE, &scope(&sub, &name)).await?;
    let body: ResourceGroupCreate = object_body(&body)?;
    rekey_core::check_location(&body.location)?;
    let group = ResourceGroup {
        subscription: sub,
        name,
        location: body.location,
        tags: body.tags.unwrap_or_default(),
        created_at: OffsetDateTime::now_utc(),
    };
    let (stored, written) = state.store.put_group(&group, &audit).await?;
    let status = if written == Written::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(render(&stored))).into_response())
}

async fn show(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Parsed(sub): Parsed<SubscriptionId>,
    Parsed(name): Parsed<ResourceGroupName>,
) -> Result<Response, ApiError> {
    state.authorize(&caller, READ, &scope(&sub, &name)).await?;
    Ok(Json(render(&state.store.group(&sub, &name).await?)).into_response())
}

async fn exists(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Parsed(sub): Parsed<SubscriptionId>,
    Parsed(name): Parsed<ResourceGroupName>,
) -> Result<Response, ApiError> {
    state.authorize(&caller, READ, &scope(&sub, &name)).await?;
    state.store.group(&sub, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Parsed(sub): Parsed<SubscriptionId>,
    Parsed(name): Parsed<ResourceGroupName>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let audit = state.authorize(&caller, WRITE, &scope(&sub, &name)).await?;
    let body: ResourceGroupPatch = object_body(&body)?;
    let mut current = state.store.group(&sub, &name).await?;
    if let Some(tags) = body.tags {
        current.tags = tags;
    }
    let (stored, _) = state.store.put_group(&current, &audit).await?;
    Ok(Json(render(&stored)).into_response())
}

async fn remove(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Parsed(sub): Parsed<SubscriptionId>,
    Parsed(name): Parsed<ResourceGroupName>,
) -> Result<Response, ApiError> {
    let audit = state
        .authorize(&caller, DELETE, &scope(&sub, &name))
        .await?;
    // Azure answers 202 and deletes later; rekey deletes at once, so the operation is already done.
    if state.store.delete_group(&sub, &name, &audit).await? {
        Ok(StatusCode::OK.into_response())
    } else {
        Err(ApiError::NotFound {
            code: "ResourceGroupNotFound",
            message: format!("Resource group '{name}' could not be found."),
        })
    }
}

async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Parsed(sub): Parsed<SubscriptionId>,
) -> Result<Response, ApiError> {
    // A caller with no role in the subscription is refused before the lookup, so the answer is
    // the same whether the subscription exists.
    let sub_scope = format!("/subscriptions/{sub}");
    if !caller.sees(&sub_scope) {
        state.authorize(&caller, READ, &sub_scope).await?;
    }
    let groups = state.store.list_groups(&sub).await?;
    // The groups the caller has some role in, at, above or below the group.
    let value = groups
        .iter()
        .filter(|g| caller.sees(&scope(&g.subscription, &g.name)))
        .map(render)
        .collect();
    Ok(Json(List::of(value)).into_response())
}

pub fn register(table: &mut RouteTable) {
    let mut schemas = Vec::new();
    let wire = schema_of::<WireGroup>(&mut schemas);
    let create_body = schema_of::<ResourceGroupCreate>(&mut schemas);
    let patch_body = schema_of::<ResourceGroupPatch>(&mut schemas);
    table.schemas(schemas);
    let list_schema = table.list_schema::<WireGroup>();
    let arm = |id: &str, summary: &str| Op::arm(id, summary).versions(RESOURCES_API_VERSIONS);
    let path = "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}";
    table.route(
        Method::PUT,
        path,
        arm(
            "ResourceGroups_CreateOrUpdate",
            "Creates or updates a resource group.",
        )
        .body(create_body, true)
        .response(200, "Updated", Some(wire.clone()))
        .response(201, "Created", Some(wire.clone())),
        put(create),
    );
    table.route(
        Method::GET,
        path,
        arm("ResourceGroups_Get", "Gets a resource group.").response(
            200,
            "The group",
            Some(wire.clone()),
        ),
        get(show),
    );
    table.route(
        Method::HEAD,
        path,
        arm(
            "ResourceGroups_CheckExistence",
            "Checks whether a resource group exists.",
        )
        .response(204, "It exists", None),
        head(exists),
    );
    table.route(
        Method::PATCH,
        path,
        arm("ResourceGroups_Update", "Updates a resource group's tags.")
            .body(patch_body, true)
            .response(200, "Updated", Some(wire)),
        patch(update),
    );
    table.route(
        Method::DELETE,
        path,
        arm(
            "ResourceGroups_Delete",
            "Deletes a resource group with its resources and their keys.",
        )
        .response(200, "Deleted", None),
        delete(remove),
    );
    table.route(
        Method::GET,
        "/subscriptions/{subscriptionId}/resourcegroups",
        arm(
            "ResourceGroups_List",
            "Lists the resource groups of a subscription.",
        )
        .response(200, "The groups", Some(list_schema)),
        get(list),
    );
}
