//! Owns Azure-shaped role assignments at subscription, resource group and resource scope
//! (`Microsoft.Authorization/roleAssignments`), and the built-in role definitions they name.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Extension, Json};
use rekey_api::authorization::{
    Permission, RoleAssignment as WireAssignment, RoleAssignmentCreate, RoleAssignmentProperties,
    RoleDefinition, RoleDefinitionProperties,
};
use rekey_api::mapping::schema_of;
use rekey_api::List;
use rekey_core::SubscriptionId;
use rekey_store::{RoleAssignment, Written};
use time::OffsetDateTime;
use uuid::Uuid;

use super::rfc3339;
use super::scope::{mounts, Mount, Target};
use crate::authz::{self, Caller};
use crate::error::ApiError;
use crate::route_table::{object_body, ArmPath, ArmQuery, Op, Parsed, RouteTable};
use crate::rules;
use crate::state::AppState;

/// api-versions of `Microsoft.Authorization` that rekey accepts.
pub static AUTHORIZATION_API_VERSIONS: &[&str] = &[
    "2015-07-01",
    "2018-01-01-preview",
    "2018-07-01",
    "2018-09-01-preview",
    "2020-03-01-preview",
    "2020-04-01-preview",
    "2020-08-01-preview",
    "2020-10-01-preview",
    "2021-04-01-preview",
    "2022-01-01-preview",
    "2022-04-01",
    "2022-05-01-preview",
];

const ASSIGNMENT_READ: &str = "Microsoft.Authorization/roleAssignments/read";
pub(crate) const ASSIGNMENT_WRITE: &str = "Microsoft.Authorization/roleAssignments/write";
const ASSIGNMENT_DELETE: &str = "Microsoft.Authorization/roleAssignments/delete";
const DEFINITION_READ: &str = "Microsoft.Authorization/roleDefinitions/read";

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

fn definition_id(sub: Option<&str>, role: Uuid) -> String {
    match sub {
        Some(sub) => {
            format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role}")
        }
        None => format!("/providers/Microsoft.Authorization/roleDefinitions/{role}"),
    }
}

fn subscription_of(scope: &str) -> Option<&str> {
    scope
        .strip_prefix("/subscriptions/")
        .map(|rest| rest.split('/').next().unwrap_or(rest))
}

fn render_assignment(a: &RoleAssignment) -> WireAssignment {
    WireAssignment {
        id: format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/{}",
            a.scope, a.id
        ),
        name: a.id.to_string(),
        type_name: "Microsoft.Authorization/roleAssignments".into(),
        properties: RoleAssignmentProperties {
            role_definition_id: definition_id(subscription_of(&a.scope), a.role_id),
            principal_id: a.principal_id.to_string(),
            principal_type: "ServicePrincipal".into(),
            scope: a.scope.clone(),
            created_on: rfc3339(a.created_at),
            created_by: a.created_by.clone(),
        },
    }
}

/// A role assignment's name in a path: its GUID, and the name as sent (for messages).
#[derive(Clone)]
struct AssignmentName {
    id: Uuid,
    raw: String,
}

fn assignment_name(raw: &str) -> Result<AssignmentName, ApiError> {
    let id = rules::parse_guid(raw).ok_or_else(|| {
        bad(
            "InvalidRoleAssignmentId",
            format!("The role assignment ID '{raw}' is not valid: it must be a GUID."),
        )
    })?;
    Ok(AssignmentName {
        id,
        raw: raw.to_string(),
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        code: "RoleAssignmentNotFound",
        message: format!("The role assignment '{id}' is not found."),
    }
}

async fn put_assignment(
    state: AppState,
    caller: Caller,
    target: Target,
    AssignmentName { id, .. }: AssignmentName,
    body: Bytes,
) -> Result<Response, ApiError> {
    let audit = state
        .authorize(&caller, ASSIGNMENT_WRITE, &target.requested())
        .await?;
    let scope = target.stored(&state).await?;
    let body: RoleAssignmentCreate = object_body(&body)?;
    let raw_role = body
        .properties
        .role_definition_id
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let role = rules::ROLE_DEFINITION_ID
        .matches(&body.properties.role_definition_id)
        .then(|| Uuid::parse_str(raw_role).ok())
        .flatten()
        .and_then(|id| authz::role(&id))
        .ok_or_else(|| {
            bad(
                "RoleDefinitionDoesNotExist",
                format!("The specified role definition with ID '{raw_role}' does not exist."),
            )
        })?;
    let principal_id = rules::parse_guid(&body.properties.principal_id).ok_or_else(|| {
        bad(
            "InvalidPrincipalId",
            "properties.principalId must be the GUID of a principal.",
        )
    })?;
    if state.store.principal(&principal_id).await?.is_none() {
        return Err(bad(
            "PrincipalNotFound",
            format!(
                "Principal {} does not exist in the directory.",
                principal_id.simple()
            ),
        ));
    }
    // To the microsecond, as stored, so a later read answers the same time as this one.
    let now = OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .expect("a truncated nanosecond is in range");
    let assignment = RoleAssignment {
        id,
        scope,
        role_id: role.id,
        principal_id,
        created_at: now,
        created_by: caller.principal.id.to_string(),
    };
    // The store refuses a different assignment under an existing id, and a second id for the
    // same principal, role and scope (see `ApiError::from_store`).
    let (stored, written) = state.store.put_assignment(&assignment, &audit).await?;
    let status = if written == Written::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(render_assignment(&stored))).into_response())
}

async fn get_assignment(
    state: AppState,
    caller: Caller,
    target: Target,
    AssignmentName { id, raw }: AssignmentName,
) -> Result<Response, ApiError> {
    state
        .authorize(&caller, ASSIGNMENT_READ, &target.requested())
        .await?;
    let scope = target.stored(&state).await?;
    let found = state
        .store
        .assignment(&id)
        .await?
        .filter(|a| a.scope.eq_ignore_ascii_case(&scope));
    Ok(Json(render_assignment(&found.ok_or_else(|| not_found(&raw))?)).into_response())
}

async fn delete_assignment(
    state: AppState,
    caller: Caller,
    target: Target,
    AssignmentName { id, .. }: AssignmentName,
) -> Result<Response, ApiError> {
    let audit = state
        .authorize(&caller, ASSIGNMENT_DELETE, &target.requested())
        .await?;
    let scope = target.stored(&state).await?;
    match state.store.assignment(&id).await? {
        Some(a) if a.scope.eq_ignore_ascii_case(&scope) => {
            let deleted = state.store.delete_assignment(&id, &audit).await?;
            Ok(match deleted {
                Some(a) => Json(render_assignment(&a)).into_response(),
                None => StatusCode::NO_CONTENT.into_response(),
            })
        }
        _ => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// The value of `principalId eq '…'` in an OData `$filter`, if that is what it says.
fn filter_value<'a>(filter: &'a str, field: &str) -> Option<&'a str> {
    let rest = filter.trim().strip_prefix(field)?.trim_start();
    let rest = rest.strip_prefix("eq")?.trim_start();
    rest.strip_prefix('\'')?.split('\'').next()
}

async fn list_assignments(
    state: AppState,
    caller: Caller,
    target: Target,
    query: HashMap<String, String>,
) -> Result<Response, ApiError> {
    state
        .authorize(&caller, ASSIGNMENT_READ, &target.requested())
        .await?;
    let scope = target.stored(&state).await?;
    let principal = query
        .get("$filter")
        .and_then(|f| filter_value(f, "principalId"));
    let value: Vec<_> = state
        .store
        .list_assignments()
        .await?
        .into_iter()
        // At, above and below the scope, as Azure lists them.
        .filter(|a| authz::covers(&a.scope, &scope) || authz::covers(&scope, &a.scope))
        .filter(|a| principal.is_none_or(|p| a.principal_id.to_string().eq_ignore_ascii_case(p)))
        .map(|a| render_assignment(&a))
        .collect();
    Ok(Json(List::of(value)).into_response())
}

fn render_definition(sub: &str, role: &authz::Role) -> RoleDefinition {
    RoleDefinition {
        id: definition_id(Some(sub), role.id),
        name: role.id.to_string(),
        type_name: "Microsoft.Authorization/roleDefinitions".into(),
        properties: RoleDefinitionProperties {
            role_name: role.name.into(),
            type_name: "BuiltInRole".into(),
            description: role.description.into(),
            assignable_scopes: vec!["/".into()],
            permissions: vec![Permission {
                actions: role.actions.iter().map(|s| s.to_string()).collect(),
                not_actions: role.not_actions.iter().map(|s| s.to_string()).collect(),
                data_actions: Vec::new(),
                not_data_actions: Vec::new(),
            }],
        },
    }
}

/// Role definitions are for whoever holds some role at, above or below the subscription (Azure lets
/// every member of the tenant read them); anyone else is refused before the subscription is looked
/// up, so the answer tells a stranger nothing about which subscriptions exist.
async fn definitions_subscription(
    state: &AppState,
    caller: &Caller,
    sub: SubscriptionId,
) -> Result<SubscriptionId, ApiError> {
    let scope = format!("/subscriptions/{sub}");
    if !caller.sees(&scope) {
        state.authorize(caller, DEFINITION_READ, &scope).await?;
    }
    state.store.subscription(&sub).await?;
    Ok(sub)
}

async fn list_definitions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Parsed(sub): Parsed<SubscriptionId>,
    ArmQuery(query): ArmQuery,
) -> Result<Response, ApiError> {
    let sub = definitions_subscription(&state, &caller, sub).await?;
    let name = query
        .get("$filter")
        .and_then(|f| filter_value(f, "roleName"));
    let value: Vec<_> = authz::ROLES
        .iter()
        .filter(|r| name.is_none_or(|n| r.name.eq_ignore_ascii_case(n)))
        .map(|r| render_definition(sub.as_str(), r))
        .collect();
    Ok(Json(List::of(value)).into_response())
}

async fn get_definition(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Parsed(sub): Parsed<SubscriptionId>,
    ArmPath((_, role)): ArmPath<(String, String)>,
) -> Result<Response, ApiError> {
    let sub = definitions_subscription(&state, &caller, sub).await?;
    let found = Uuid::parse_str(&role)
        .ok()
        .and_then(|id| authz::role(&id))
        .ok_or_else(|| ApiError::NotFound {
            code: "RoleDefinitionDoesNotExist",
            message: format!("The specified role definition with ID '{role}' does not exist."),
        })?;
    Ok(Json(render_definition(sub.as_str(), found)).into_response())
}

pub fn register(table: &mut RouteTable) {
    let mut schemas = Vec::new();
    let assignment = schema_of::<WireAssignment>(&mut schemas);
    let create = schema_of::<RoleAssignmentCreate>(&mut schemas);
    let definition = schema_of::<RoleDefinition>(&mut schemas);
    table.schemas(schemas);
    let assignments = table.list_schema::<WireAssignment>();
    let definitions = table.list_schema::<RoleDefinition>();
    let guid = rules::GUID.param_rule();

    for Mount { prefix, level, tag } in mounts() {
        let base = format!("{prefix}/providers/Microsoft.Authorization/roleAssignments");
        let one = format!("{base}/{{roleAssignmentName}}");
        let arm = |id: String, summary: &str| {
            level.op(Op::arm(id, summary).versions(AUTHORIZATION_API_VERSIONS))
        };
        table.route(
            Method::PUT,
            &one,
            arm(
                format!("RoleAssignments_CreateAt{tag}"),
                "Assigns a role to a principal at this scope.",
            )
            .path_value("roleAssignmentName", guid, assignment_name)
            .body(create.clone(), true)
            .response(200, "Updated", Some(assignment.clone()))
            .response(201, "Created", Some(assignment.clone())),
            put(|State(s), Extension(c), target, Parsed(name), b| {
                put_assignment(s, c, target, name, b)
            }),
        );
        table.route(
            Method::GET,
            &one,
            arm(
                format!("RoleAssignments_GetAt{tag}"),
                "Gets a role assignment.",
            )
            .path_value("roleAssignmentName", guid, assignment_name)
            .response(200, "The assignment", Some(assignment.clone())),
            get(|State(s), Extension(c), target, Parsed(name)| get_assignment(s, c, target, name)),
        );
        table.route(
            Method::DELETE,
            &one,
            arm(
                format!("RoleAssignments_DeleteAt{tag}"),
                "Deletes a role assignment.",
            )
            .path_value("roleAssignmentName", guid, assignment_name)
            .response(200, "Deleted", Some(assignment.clone()))
            .response(204, "Did not exist", None),
            delete(|State(s), Extension(c), target, Parsed(name)| {
                delete_assignment(s, c, target, name)
            }),
        );
        table.route(
            Method::GET,
            &base,
            arm(
                format!("RoleAssignments_ListFor{tag}"),
                "Lists role assignments at, above and below this scope.",
            )
            .query(
                "$filter",
                false,
                "`principalId eq '{id}'` lists only that principal's assignments; any other filter lists them all.",
                rules::string_schema(),
            )
            .response(200, "The assignments", Some(assignments.clone())),
            get(|State(s), Extension(c), target, ArmQuery(q)| {
                list_assignments(s, c, target, q)
            }),
        );
    }
    table.route(
        Method::GET,
        "/subscriptions/{subscriptionId}/providers/Microsoft.Authorization/roleDefinitions",
        Op::arm("RoleDefinitions_List", "Lists the built-in roles.")
            .versions(AUTHORIZATION_API_VERSIONS)
            .query(
                "$filter",
                false,
                "`roleName eq '{name}'` picks one role (any letter case); any other filter lists them all.",
                rules::string_schema(),
            )
            .response(200, "The roles", Some(definitions)),
        get(list_definitions),
    );
    table.route(
        Method::GET,
        "/subscriptions/{subscriptionId}/providers/Microsoft.Authorization/roleDefinitions/{roleDefinitionId}",
        Op::arm("RoleDefinitions_Get", "Gets a built-in role.")
            .versions(AUTHORIZATION_API_VERSIONS)
            .response(200, "The role", Some(definition)),
        get(get_definition),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_and_role_filters_parse() {
        assert_eq!(
            filter_value("principalId eq 'abc'", "principalId"),
            Some("abc")
        );
        assert_eq!(
            filter_value("roleName eq 'Key Operator'", "roleName"),
            Some("Key Operator")
        );
        assert_eq!(filter_value("atScope()", "principalId"), None);
    }
}
