//! rekey's domain, free of I/O: who a resource is ([`ids`]), what a key looks like ([`keys`]), which
//! resource types exist and which key slots each has ([`providers`]). The server, store and CLI all
//! speak in these types so that a name or key that has not been checked cannot travel far.

pub mod cosmos_auth;
pub mod error;
pub mod ids;
pub mod keys;
pub mod providers;
pub mod resource;
pub mod secret;

pub use error::InvalidInput;
pub use ids::{ResourceGroupName, ResourceId, ResourceName, SubscriptionId};
pub use providers::{Provider, CATALOGUE};
pub use resource::{
    check_location, slot_state, KeySlotState, Resource, ResourceGroup, ResourceSpec, Subscription,
    Tags,
};
pub use secret::Secret;
