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

/// How a type answers a committed change: ARM types differ, and each SDK accepts only its own codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Create: 201 (200 on replace) with the resource. Delete: 200 (204 when absent).
    /// Regenerate: 200 with the `listKeys` body.
    Plain,
    /// 204 with no body (Quantum's regenerate).
    NoContent,
    /// A long-running operation that is already done when answered: create 200 with the resource,
    /// delete and regenerate 202, each with `Azure-AsyncOperation` and `Location` headers naming a
    /// stored operation that reports `Succeeded` (Cosmos DB).
    AsyncOperation,
}

/// How a type answers each changing call.
#[derive(Debug, Clone, Copy)]
pub struct Answers {
    pub create: Answer,
    pub delete: Answer,
    pub regenerate: Answer,
}

/// A read of a resource's keys, served at `…/{name}/{action}` (`listKeys`, Cosmos DB's
/// `readonlykeys`, `listConnectionStrings`).
#[derive(Debug, Clone, Copy)]
pub struct KeyView {
    pub action: &'static str,
    /// Cosmos DB serves `readonlykeys` on GET as well as POST.
    pub also_get: bool,
    pub summary: &'static str,
}

/// A named JSON schema for the OpenAPI description, with the schemas it refers to.
pub type NamedSchemas = Vec<(String, RefOr<Schema>)>;

/// The OpenAPI schema names a type's operations use, and every schema to register.
pub struct WireSchemas {
    pub create: String,
    pub patch: String,
    pub resource: String,
    /// One schema per key view, in the same order.
    pub key_views: Vec<String>,
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

    /// The key reads this type serves; the first is `listKeys`.
    fn key_views(&self) -> &'static [KeyView];

    /// The body of one key read, `action` being one of [`WireMapping::key_views`].
    fn render_key_view(
        &self,
        action: &str,
        resource: &Resource,
        keys: &[KeySlotState],
        ctx: &RenderContext,
    ) -> Value;

    fn answers(&self) -> Answers;

    /// The slots a `regenerateKey` body names: at least one, no duplicates.
    fn parse_regenerate(&self, body: &Value) -> Result<Vec<&'static Slot>, InvalidInput>;

    fn schemas(&self) -> WireSchemas;
}

/// Every type's mapping, in catalogue order.
pub static MAPPINGS: &[&dyn WireMapping] = &[
    &crate::cognitive_services::Mapping,
    &crate::quantum::Mapping,
    &crate::cosmos_db::Mapping,
];

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

/// Checks that `properties.{name}`, if present, has the JSON type `kind` names.
pub(crate) fn optional_property(
    props: &serde_json::Map<String, Value>,
    name: &str,
    kind: PropertyKind,
) -> Result<(), InvalidInput> {
    let ok = matches!(
        (props.get(name), kind),
        (None | Some(Value::Null), _)
            | (Some(Value::Bool(_)), PropertyKind::Bool)
            | (Some(Value::Array(_)), PropertyKind::Array)
            | (Some(Value::String(_)), PropertyKind::String)
    );
    if ok {
        return Ok(());
    }
    let what = match kind {
        PropertyKind::Bool => "true or false",
        PropertyKind::Array => "an array",
        PropertyKind::String => "a string",
    };
    Err(InvalidInput::new(
        "InvalidRequestContent",
        format!(
            "The request content has an invalid value for 'properties.{name}': it must be {what}."
        ),
    ))
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum PropertyKind {
    Bool,
    Array,
    String,
}

/// `props` without the properties rekey computes, which a caller cannot set.
pub(crate) fn without_computed(
    mut props: serde_json::Map<String, Value>,
    computed: &[&str],
) -> serde_json::Map<String, Value> {
    props.retain(|k, _| !computed.contains(&k.as_str()));
    props
}

/// The one slot a regenerate body's `field` names (any case), for types that regenerate one slot
/// per call; `allowed` lists the values as the type's documentation spells them.
pub(crate) fn one_slot(
    provider: &'static Provider,
    body: &Value,
    field: &str,
    allowed: &str,
) -> Result<Vec<&'static Slot>, InvalidInput> {
    require_object(body)?;
    let name: String = required(body, field)?;
    let slot = provider.slot(&name).ok_or_else(|| {
        InvalidInput::new(
            "InvalidParameter",
            format!("{field} must be one of {allowed}; got \"{name}\"."),
        )
    })?;
    Ok(vec![slot])
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
    fn create_schemas_document_the_location_rule_the_server_checks() {
        for m in MAPPINGS {
            let schemas = m.schemas();
            let (_, create) = schemas
                .all
                .iter()
                .find(|(name, _)| *name == schemas.create)
                .expect("the create schema is registered");
            let create = serde_json::to_value(create).expect("a schema serializes");
            assert_eq!(
                create["properties"]["location"]["pattern"],
                rekey_core::resource::LOCATION_PATTERN,
                "{}",
                schemas.create
            );
        }
        let group = serde_json::to_value(
            <crate::arm::ResourceGroupCreate as utoipa::PartialSchema>::schema(),
        )
        .expect("a schema serializes");
        assert_eq!(
            group["properties"]["location"]["pattern"],
            rekey_core::resource::LOCATION_PATTERN
        );
    }

    #[test]
    fn every_catalogue_provider_has_a_mapping() {
        for p in rekey_core::CATALOGUE {
            assert!(std::ptr::eq(mapping_for(p).provider(), *p));
        }
    }
}
