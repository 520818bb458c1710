//! Owns the seam between wire and domain: each resource type's [`WireMapping`] turns its ARM request
//! bodies into `rekey-core` records and renders records back into its ARM response bodies. The server's
//! handlers are generic and call only this trait, so a new type adds a mapping, not a handler.

use rekey_core::providers::Slot;
use rekey_core::{InvalidInput, KeySlotState, Provider, Resource, ResourceSpec};
use serde_json::Value;
use utoipa::openapi::{RefOr, Schema};

/// What the server needs to know to render absolute URLs.
#[derive(Debug, Clone)]
pub struct RenderContext {
    /// The base URL clients reach this node at, without a trailing slash (`https://host:8443`).
    pub public_url: String,
}

impl RenderContext {
    /// The data-plane URL of one resource: `{public_url}/data/{internal id}/`.
    pub fn data_plane_url(&self, resource: &Resource) -> String {
        format!(
            "{}/data/{}/",
            self.public_url,
            resource.internal_id.simple()
        )
    }
}

/// How a type answers a successful regeneration.
#[derive(Debug)]
pub enum RegenerateReply {
    /// 200 with this body (Cognitive Services returns both keys).
    Body(Value),
    /// 200 with no body (Quantum).
    Empty,
}

/// A named JSON schema for the OpenAPI description, with the schemas it refers to.
pub type NamedSchemas = Vec<(String, RefOr<Schema>)>;

/// The OpenAPI schema names a type's operations use, and every schema to register.
pub struct WireSchemas {
    pub create: String,
    pub patch: String,
    pub resource: String,
    pub keys: String,
    pub regenerate: String,
    pub all: NamedSchemas,
}

/// Collects `T`'s schema and those it refers to.
pub fn schema_of<T: utoipa::ToSchema>(all: &mut NamedSchemas) -> String {
    let name = T::name().into_owned();
    all.push((name.clone(), T::schema()));
    T::schemas(all);
    name
}

/// One resource type's wire mapping.
pub trait WireMapping: Send + Sync {
    fn provider(&self) -> &'static Provider;

    /// The body of a create-or-replace `PUT`.
    fn parse_create(&self, body: &Value) -> Result<ResourceSpec, InvalidInput>;

    /// A `PATCH` body applied to the current spec.
    fn parse_patch(
        &self,
        current: &ResourceSpec,
        body: &Value,
    ) -> Result<ResourceSpec, InvalidInput>;

    /// The resource as `GET` returns it.
    fn render(&self, resource: &Resource, ctx: &RenderContext) -> Value;

    /// The body of `listKeys`.
    fn render_keys(&self, resource: &Resource, keys: &[KeySlotState], ctx: &RenderContext)
        -> Value;

    /// The slots a `regenerateKey` body names: at least one, no duplicates.
    fn parse_regenerate(&self, body: &Value) -> Result<Vec<&'static Slot>, InvalidInput>;

    /// The answer to a committed regeneration, given all slots after it.
    fn regenerate_reply(
        &self,
        resource: &Resource,
        keys: &[KeySlotState],
        ctx: &RenderContext,
    ) -> RegenerateReply;

    fn schemas(&self) -> WireSchemas;
}

/// Every type's mapping, in catalogue order.
pub static MAPPINGS: &[&dyn WireMapping] = &[&crate::cognitive_services::Mapping];

/// The mapping of a catalogue provider.
pub fn mapping_for(provider: &Provider) -> &'static dyn WireMapping {
    MAPPINGS
        .iter()
        .copied()
        .find(|m| std::ptr::eq(m.provider(), provider))
        .expect("every catalogue provider has a wire mapping (checked by a test)")
}

/// Reads an optional field of a JSON object as `T`, naming the field when it has the wrong type.
pub(crate) fn field<T: serde::de::DeserializeOwned>(
    body: &Value,
    name: &str,
) -> Result<Option<T>, InvalidInput> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| {
            InvalidInput::new(
                "InvalidRequestContent",
                format!("The request content has an invalid value for '{name}': {e}."),
            )
        }),
    }
}

pub(crate) fn required<T: serde::de::DeserializeOwned>(
    body: &Value,
    name: &str,
) -> Result<T, InvalidInput> {
    field(body, name)?.ok_or_else(|| {
        InvalidInput::new(
            "InvalidRequestContent",
            format!("The request content is missing the required property '{name}'."),
        )
    })
}

pub(crate) fn require_object(body: &Value) -> Result<(), InvalidInput> {
    if body.is_object() {
        Ok(())
    } else {
        Err(InvalidInput::new(
            "InvalidRequestContent",
            "The request content must be a JSON object.",
        ))
    }
}

pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("an OffsetDateTime always formats as RFC 3339")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_provider_has_a_mapping() {
        for p in rekey_core::CATALOGUE {
            assert!(std::ptr::eq(mapping_for(p).provider(), *p));
        }
    }
}
