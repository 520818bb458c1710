//! Owns the domain records the store keeps and the server renders: subscriptions, resource groups,
//! keyed resources and their key slots. Wire shapes live in `rekey-api`; these are what they map to.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::{ResourceGroupName, ResourceId, SubscriptionId};
use crate::providers::Slot;
use crate::secret::Secret;

pub type Tags = BTreeMap<String, String>;

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub display_name: String,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct ResourceGroup {
    pub subscription: SubscriptionId,
    pub name: ResourceGroupName,
    pub location: String,
    pub tags: Tags,
    pub created_at: OffsetDateTime,
}

/// What a caller may set on a keyed resource. `settings` holds the type's own configuration
/// (Cognitive Services `properties` such as `disableLocalAuth`), already checked by the wire mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSpec {
    pub location: String,
    pub kind: Option<String>,
    pub sku: Option<serde_json::Value>,
    pub tags: Tags,
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// A keyed resource as stored. `id` keeps the casing the resource was created with.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Stable internal id; names the resource on the data plane and in encryption's associated data.
    pub internal_id: Uuid,
    pub id: ResourceId,
    pub spec: ResourceSpec,
    pub etag: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// One key slot's current value.
#[derive(Debug, Clone)]
pub struct KeySlotState {
    pub slot: &'static Slot,
    pub secret: Secret,
    /// Starts at 1, and grows by one with each regeneration.
    pub generation: i64,
    /// When this slot's current key was generated.
    pub created_at: OffsetDateTime,
}

/// Finds a slot's state by name in a list returned by the store.
pub fn slot_state<'a>(slots: &'a [KeySlotState], name: &str) -> Option<&'a KeySlotState> {
    slots.iter().find(|s| s.slot.name == name)
}
