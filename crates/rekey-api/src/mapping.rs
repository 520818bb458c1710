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
    /// The list envelope of `resource`.
    pub list: String,
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

/// Collects the schema of `{T}List`, ARM's list envelope of `T` ([`crate::List`]), and returns its
/// name. `T`'s own schema is collected by [`schema_of`].
pub fn list_schema_of<T: utoipa::ToSchema>(all: &mut NamedSchemas) -> String {
    let name = format!("{}List", T::name());
    all.push((
        name.clone(),
        <crate::List<T> as utoipa::PartialSchema>::schema(),
    ));
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

    /// A slot as this type's `regenerateKey` body spells it (`key1` is `Key1`).
    fn regenerate_name(&self, slot: &Slot) -> String {
        let mut name = slot.name.to_string();
        if let Some(first) = name.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        name
    }

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

/// Reads a body (with [`canonical_body`]'s spelling) into its wire type `T`. A property of the wrong
/// shape is refused naming its path (`sku.name`); whether the properties a call needs are there is
/// for the caller to check on `T` ([`present`]), in the order it always has.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(body: &Value) -> Result<T, InvalidInput> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        InvalidInput::new(
            "InvalidRequestContent",
            format!(
                "The request content has an invalid value for '{}': {}.",
                e.path(),
                e.inner()
            ),
        )
    })
}

/// A property a call needs, from its typed body: absent (or `null`) is refused naming it.
pub(crate) fn present<T>(value: Option<T>, name: &str) -> Result<T, InvalidInput> {
    value.ok_or_else(|| {
        InvalidInput::new(
            "InvalidRequestContent",
            format!("The request content is missing the required property '{name}'."),
        )
    })
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

/// The top-level fields of a resource body.
const BODY_FIELDS: &[&str] = &["location", "kind", "sku", "tags", "properties", "identity"];

/// A create or patch body with its names in one spelling. ARM reads property names without regard
/// to letter case (`DisableLocalAuth` is `disableLocalAuth`), so the body's fields, and the names in
/// `properties` that the type knows (`known`: lists of those it reads and those it computes), take their
/// canonical spelling here: storage and the data plane then see only that one, and a switch sent
/// in another case is enforced rather than stored and ignored. An object naming one property twice
/// in different cases is refused, since which one was meant cannot be told.
pub(crate) fn canonical_body(body: &Value, known: &[&[&str]]) -> Result<Value, InvalidInput> {
    require_object(body)?;
    let fields = body.as_object().expect("checked to be an object");
    let mut fields = canonical_names(fields, &[BODY_FIELDS], "")?;
    if let Some(Value::Object(props)) = fields.get("properties") {
        let props = canonical_names(props, known, "properties.")?;
        fields.insert("properties".into(), Value::Object(props));
    }
    Ok(Value::Object(fields))
}

fn canonical_names(
    object: &serde_json::Map<String, Value>,
    known: &[&[&str]],
    path: &str,
) -> Result<serde_json::Map<String, Value>, InvalidInput> {
    let mut out = serde_json::Map::with_capacity(object.len());
    let mut seen: std::collections::HashMap<String, &str> = Default::default();
    for (name, value) in object {
        if let Some(first) = seen.insert(name.to_ascii_lowercase(), name) {
            return Err(InvalidInput::new(
                "InvalidRequestContent",
                format!(
                    "The request content names one property twice, as '{path}{first}' and '{path}{name}': property names are case-insensitive, so send it once."
                ),
            ));
        }
        let canonical = known
            .iter()
            .flat_map(|list| list.iter())
            .find(|k| k.eq_ignore_ascii_case(name))
            .map_or_else(|| name.clone(), |k| k.to_string());
        out.insert(canonical, value.clone());
    }
    Ok(out)
}

/// The fields of a `PATCH` body a type reads; the others (`location`, `kind`, …) cannot change and
/// are ignored whatever they hold, as Azure ignores them.
pub(crate) fn patch_fields(body: Value, read: &[&str]) -> Value {
    match body {
        Value::Object(mut fields) => {
            fields.retain(|name, _| read.contains(&name.as_str()));
            Value::Object(fields)
        }
        other => other,
    }
}

/// Applies a patch's `properties` to the stored ones: a patched name replaces the stored property
/// of that name in any letter case.
pub(crate) fn merge_properties(
    settings: &mut serde_json::Map<String, Value>,
    patch: serde_json::Map<String, Value>,
) {
    for (name, value) in patch {
        settings.retain(|k, _| !k.eq_ignore_ascii_case(&name));
        settings.insert(name, value);
    }
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
    fn property_names_take_their_canonical_spelling_and_two_spellings_are_refused() {
        use serde_json::json;
        let cs = &crate::cognitive_services::Mapping;
        let spec = cs
            .parse_create(&json!({"Location":"westus","KIND":"k","Sku":{"name":"S0"},
                "Properties":{"DisableLocalAuth":true,"Endpoint":"https://evil/","other":1}}))
            .unwrap();
        assert_eq!(
            serde_json::Value::Object(spec.settings.clone()),
            json!({"disableLocalAuth": true, "other": 1})
        );
        assert!(!spec.key_auth_enabled());
        let err = cs
            .parse_create(&json!({"location":"westus","kind":"k","sku":{"name":"S0"},
                "properties":{"disableLocalAuth":false,"DISABLELOCALAUTH":true}}))
            .unwrap_err();
        assert_eq!(err.code, "InvalidRequestContent");
        assert!(err.message.contains("DISABLELOCALAUTH"), "{}", err.message);
        // A patch replaces the property under whatever spelling it was stored.
        let mut stored = spec.clone();
        stored.settings = json!({"DisableLocalAuth": true})
            .as_object()
            .unwrap()
            .clone();
        let next = cs
            .parse_patch(&stored, &json!({"properties":{"disablelocalauth":false}}))
            .unwrap();
        assert_eq!(
            serde_json::Value::Object(next.settings),
            json!({"disableLocalAuth": false})
        );
        let quantum = &crate::quantum::Mapping;
        let ws = quantum
            .parse_create(&json!({"location":"westus","properties":{"ApiKeyEnabled":false}}))
            .unwrap();
        assert_eq!(ws.settings["apiKeyEnabled"], json!(false));
        assert!(!ws.key_auth_enabled());
    }

    #[test]
    fn every_catalogue_provider_has_a_mapping() {
        for p in rekey_core::CATALOGUE {
            assert!(std::ptr::eq(mapping_for(p).provider(), *p));
        }
    }
}
