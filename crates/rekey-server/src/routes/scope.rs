//! Owns the ARM scopes that extension resources (role assignments, event subscriptions) are
//! mounted under: the subscription, a resource group, or a resource of each catalogued type; the
//! routes' prefixes and operation-id tags, and the scope a request names.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use rekey_core::{Provider, ResourceGroupName, ResourceId, SubscriptionId};

use crate::error::ApiError;
use crate::route_table::{Op, Parsed};
use crate::state::AppState;

/// Where an extension resource's routes are mounted.
#[derive(Clone, Copy)]
pub enum Level {
    Subscription,
    Group,
    Resource(&'static Provider),
}

impl Level {
    /// `op` with the path parameter a resource scope adds (its name and its rule).
    pub fn op(self, op: Op) -> Op {
        match self {
            Level::Resource(provider) => op.param(provider),
            _ => op,
        }
    }
}

/// One scope level: the path prefix its routes go under and the tag its operation ids end with
/// (`…AtSubscription`, `…AtResourceGroup`, `…AtMicrosoftCognitiveServicesaccounts`).
pub struct Mount {
    pub prefix: String,
    pub level: Level,
    pub tag: String,
}

/// Every scope level: the subscription, a resource group, and a resource of each catalogued type.
pub fn mounts() -> Vec<Mount> {
    let sub = "/subscriptions/{subscriptionId}";
    let group = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}";
    let mut mounts = vec![
        Mount {
            prefix: sub.into(),
            level: Level::Subscription,
            tag: "Subscription".into(),
        },
        Mount {
            prefix: group.into(),
            level: Level::Group,
            tag: "ResourceGroup".into(),
        },
    ];
    mounts.extend(rekey_core::CATALOGUE.iter().map(|&provider| Mount {
        prefix: format!(
            "{group}/providers/{}/{}/{{{}}}",
            provider.namespace, provider.resource_type, provider.name_param
        ),
        level: Level::Resource(provider),
        tag: format!(
            "{}{}",
            provider.namespace.replace('.', ""),
            provider.resource_type
        ),
    }));
    mounts
}

/// The scope a route's path names, parsed but not yet looked up.
pub enum Target {
    Subscription(SubscriptionId),
    Group(SubscriptionId, ResourceGroupName),
    Resource(ResourceId),
}

/// The scope of the route, from the path values its layer parsed: a resource's id on a resource's
/// route, else the group on a group's, else the subscription.
impl<S: Send + Sync> FromRequestParts<S> for Target {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if let Some(id) = parts.extensions.get::<ResourceId>() {
            return Ok(Self::Resource(id.clone()));
        }
        let Parsed(sub) = Parsed::<SubscriptionId>::from_request_parts(parts, state).await?;
        Ok(match parts.extensions.get::<ResourceGroupName>() {
            Some(group) => Self::Group(sub, group.clone()),
            None => Self::Subscription(sub),
        })
    }
}

impl Target {
    pub fn subscription(&self) -> &SubscriptionId {
        match self {
            Self::Subscription(sub) | Self::Group(sub, _) => sub,
            Self::Resource(id) => &id.subscription,
        }
    }

    /// The scope as the caller spelled it. Authorization checks this before anything is looked
    /// up, so a caller without rights gets the same refusal whether the scope exists or not.
    pub fn requested(&self) -> String {
        match self {
            Self::Subscription(sub) => format!("/subscriptions/{sub}"),
            Self::Group(sub, group) => format!("/subscriptions/{sub}/resourceGroups/{group}"),
            Self::Resource(id) => id.to_string(),
        }
    }

    /// The scope as stored (with the casing its group or resource was created with), or the
    /// scope's not-found; only for an authorized caller.
    pub async fn stored(&self, state: &AppState) -> Result<String, ApiError> {
        match self {
            Self::Subscription(sub) => {
                state.store.subscription(sub).await?;
                Ok(format!("/subscriptions/{sub}"))
            }
            Self::Group(sub, group) => {
                let stored = state.store.group(sub, group).await?;
                Ok(format!(
                    "/subscriptions/{sub}/resourceGroups/{}",
                    stored.name
                ))
            }
            Self::Resource(id) => {
                let stored = state
                    .store
                    .resource(id)
                    .await
                    .map_err(|e| ApiError::from_store(e, Some(id)))?;
                Ok(stored.id.to_string())
            }
        }
    }
}
