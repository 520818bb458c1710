//! Wire mapping of `Microsoft.CognitiveServices/accounts`: the account body, `ApiKeys` and
//! `RegenerateKeyParameters` as in Azure's spec.

use std::collections::BTreeMap;

use rekey_core::providers::{cognitive_services::ACCOUNTS, Slot};
use rekey_core::{slot_state, InvalidInput, KeySlotState, Provider, Resource, ResourceSpec};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::mapping::{
    canonical_body, list_schema_of, merge_properties, one_slot, optional_property, patch_fields,
    present, rfc3339, schema_of, typed, without_computed, Answer, Answers, KeyView, PropertyKind,
    RenderContext, WireMapping, WireSchemas,
};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Sku {
    /// Not blank.
    #[schema(pattern = "\\S")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
}

/// Body of `PUT` (all of `location`, `kind`, `sku` needed to create) and of `PATCH`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct AccountUpdate {
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub sku: Option<Sku>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    /// The account's properties; `disableLocalAuth: true` refuses keys on the data plane.
    #[serde(default)]
    pub properties: Option<Map<String, Value>>,
    #[serde(default)]
    pub identity: Option<Value>,
}

/// The `properties` a caller may set; other properties are stored as sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct AccountProperties {
    /// `true` refuses every key on the data plane (keys stay listable).
    #[serde(
        rename = "disableLocalAuth",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub disable_local_auth: Option<bool>,
    /// rekey extension: the `http://` or `https://` base URL authenticated data-plane calls are forwarded to.
    #[serde(
        rename = "x-rekey-upstream",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(pattern = "^https?://[^/?# ][^?# ]*$")]
    pub upstream: Option<String>,
}

// The location pattern is `rekey_core`'s, passed in as a literal for `#[schema]`.
macro_rules! account_create {
    ($location:tt) => {
        /// Body of a create-or-replace `PUT`, as its schema documents it: `location`, `kind` and `sku` are
        /// required. (The server reads bodies through [`Mapping`]; this type describes them.)
        #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
        pub struct AccountCreate {
            #[schema(pattern = $location, max_length = 64)]
            pub location: String,
            pub kind: String,
            pub sku: Sku,
            #[serde(default)]
            pub tags: Option<BTreeMap<String, String>>,
            #[serde(default)]
            pub properties: Option<AccountProperties>,
            #[serde(default)]
            pub identity: Option<Value>,
        }
    };
}
rekey_core::location_pattern!(account_create);

/// Body of `PATCH`: what it changes. Other fields (`location`, `kind`) cannot change and are ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct AccountPatch {
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub sku: Option<Sku>,
    #[serde(default)]
    pub properties: Option<AccountProperties>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Account {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub location: String,
    pub kind: Option<String>,
    pub sku: Option<Sku>,
    pub etag: String,
    pub tags: BTreeMap<String, String>,
    /// The stored properties plus `provisioningState`, `endpoint`, `dateCreated`, `internalId`.
    pub properties: Map<String, Value>,
}

/// The account's two keys.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKeys {
    pub key1: String,
    pub key2: String,
}

/// Body of `regenerateKey`: `keyName` is `Key1` or `Key2`, any case.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegenerateKeyParameters {
    #[schema(pattern = "^[Kk][Ee][Yy][12]$")]
    pub key_name: String,
}

/// Properties rekey computes; a caller cannot set them.
const READ_ONLY_PROPERTIES: &[&str] = &[
    "provisioningState",
    "endpoint",
    "endpoints",
    "dateCreated",
    "internalId",
];

/// The properties rekey reads, in their canonical spelling.
const READ_PROPERTIES: &[&str] = &["disableLocalAuth", rekey_core::resource::UPSTREAM_PROPERTY];
const KNOWN_PROPERTIES: &[&[&str]] = &[READ_PROPERTIES, READ_ONLY_PROPERTIES];

fn check_properties(props: &Map<String, Value>) -> Result<(), InvalidInput> {
    optional_property(props, "disableLocalAuth", PropertyKind::Bool)
}

fn writable(props: Map<String, Value>) -> Map<String, Value> {
    without_computed(props, READ_ONLY_PROPERTIES)
}

fn sku_value(sku: Sku) -> Result<Value, InvalidInput> {
    if sku.name.trim().is_empty() {
        return Err(InvalidInput::new(
            "InvalidRequestContent",
            "The request content has an empty 'sku.name'.",
        ));
    }
    Ok(serde_json::to_value(sku).expect("Sku serializes"))
}

pub struct Mapping;

impl WireMapping for Mapping {
    fn provider(&self) -> &'static Provider {
        &ACCOUNTS
    }

    fn parse_create(&self, body: &Value) -> Result<ResourceSpec, InvalidInput> {
        let body: AccountUpdate = typed(&canonical_body(body, KNOWN_PROPERTIES)?)?;
        let location = present(body.location, "location")?;
        rekey_core::check_location(&location)?;
        let kind = present(body.kind, "kind")?;
        let sku = present(body.sku, "sku")?;
        let properties = body.properties.unwrap_or_default();
        check_properties(&properties)?;
        Ok(ResourceSpec {
            location,
            kind: Some(kind),
            sku: Some(sku_value(sku)?),
            tags: body.tags.unwrap_or_default(),
            settings: writable(properties),
        })
    }

    fn parse_patch(
        &self,
        current: &ResourceSpec,
        body: &Value,
    ) -> Result<ResourceSpec, InvalidInput> {
        let body = canonical_body(body, KNOWN_PROPERTIES)?;
        let body: AccountUpdate = typed(&patch_fields(body, &["tags", "sku", "properties"]))?;
        let mut next = current.clone();
        if let Some(tags) = body.tags {
            next.tags = tags;
        }
        if let Some(sku) = body.sku {
            next.sku = Some(sku_value(sku)?);
        }
        if let Some(props) = body.properties {
            check_properties(&props)?;
            merge_properties(&mut next.settings, writable(props));
        }
        Ok(next)
    }

    fn render(&self, resource: &Resource, ctx: &RenderContext) -> Value {
        let spec = &resource.spec;
        let mut properties = spec.settings.clone();
        properties.insert("provisioningState".into(), json!("Succeeded"));
        properties.insert("endpoint".into(), json!(ctx.data_plane_url(resource)));
        properties.insert("dateCreated".into(), json!(rfc3339(resource.created_at)));
        properties.insert(
            "internalId".into(),
            json!(resource.internal_id.simple().to_string()),
        );
        json!({
            "id": resource.id.to_string(),
            "name": resource.id.name.as_str(),
            "type": ACCOUNTS.type_name(),
            "location": spec.location,
            "kind": spec.kind,
            "sku": spec.sku,
            "etag": resource.etag,
            "tags": spec.tags,
            "properties": properties,
        })
    }

    fn key_views(&self) -> &'static [KeyView] {
        &[KeyView {
            action: "listKeys",
            also_get: false,
            summary: "Lists the account's two keys.",
        }]
    }

    fn render_key_view(
        &self,
        _action: &str,
        _resource: &Resource,
        keys: &[KeySlotState],
        _ctx: &RenderContext,
    ) -> Value {
        let key = |name| slot_state(keys, name).map(|s| s.secret.expose().to_string());
        json!({ "key1": key("key1"), "key2": key("key2") })
    }

    fn answers(&self) -> Answers {
        Answers {
            create: Answer::Plain,
            delete: Answer::Plain,
            regenerate: Answer::Plain,
        }
    }

    fn parse_regenerate(&self, body: &Value) -> Result<Vec<&'static Slot>, InvalidInput> {
        one_slot(&ACCOUNTS, body, "keyName", "Key1, Key2")
    }

    fn schemas(&self) -> WireSchemas {
        let mut all = Vec::new();
        WireSchemas {
            create: schema_of::<AccountCreate>(&mut all),
            patch: schema_of::<AccountPatch>(&mut all),
            resource: schema_of::<Account>(&mut all),
            list: list_schema_of::<Account>(&mut all),
            key_views: vec![schema_of::<ApiKeys>(&mut all)],
            regenerate: schema_of::<RegenerateKeyParameters>(&mut all),
            all,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_needs_location_kind_and_sku_and_names_the_missing_field() {
        let ok = json!({"location":"westus","kind":"TextAnalytics","sku":{"name":"S0"}});
        assert!(Mapping.parse_create(&ok).is_ok());
        for (field, body) in [
            (
                "location",
                json!({"kind":"TextAnalytics","sku":{"name":"S0"}}),
            ),
            ("kind", json!({"location":"westus","sku":{"name":"S0"}})),
            ("sku", json!({"location":"westus","kind":"TextAnalytics"})),
        ] {
            let err = Mapping.parse_create(&body).unwrap_err();
            assert_eq!(err.code, "InvalidRequestContent");
            assert!(err.message.contains(field), "{}", err.message);
        }
    }

    #[test]
    fn a_wrongly_typed_property_is_refused_naming_its_path() {
        let body = json!({"location":"westus","kind":"k","sku":{"name":5}});
        let err = Mapping.parse_create(&body).unwrap_err();
        assert_eq!(err.code, "InvalidRequestContent");
        assert!(err.message.contains("'sku.name'"), "{}", err.message);
        let body = json!({"location":"westus","kind":"k","sku":{"name":"S0"},"tags":{"a":1}});
        let err = Mapping.parse_create(&body).unwrap_err();
        assert!(err.message.contains("'tags.a'"), "{}", err.message);
    }

    #[test]
    fn a_patch_ignores_the_fields_it_cannot_change_whatever_they_hold() {
        let current = Mapping
            .parse_create(&json!({"location":"westus","kind":"k","sku":{"name":"S0"}}))
            .unwrap();
        let next = Mapping
            .parse_patch(
                &current,
                &json!({"location": 5, "kind": [], "tags": {"team": "a"}}),
            )
            .unwrap();
        assert_eq!(next.location, "westus");
        assert_eq!(next.kind.as_deref(), Some("k"));
        assert_eq!(next.tags["team"], "a");
        let err = Mapping
            .parse_patch(&current, &json!({"tags": 5}))
            .unwrap_err();
        assert!(err.message.contains("'tags'"), "{}", err.message);
    }

    #[test]
    fn computed_properties_cannot_be_set() {
        let body = json!({"location":"w","kind":"k","sku":{"name":"S0"},
            "properties":{"endpoint":"https://evil/","disableLocalAuth":true}});
        let spec = Mapping.parse_create(&body).unwrap();
        assert!(!spec.settings.contains_key("endpoint"));
        assert_eq!(spec.settings["disableLocalAuth"], json!(true));
    }

    #[test]
    fn key_name_is_case_insensitive_and_checked() {
        for name in ["Key1", "key1", "KEY1"] {
            let slots = Mapping
                .parse_regenerate(&json!({ "keyName": name }))
                .unwrap();
            assert_eq!(slots[0].name, "key1");
        }
        let err = Mapping
            .parse_regenerate(&json!({"keyName":"Key3"}))
            .unwrap_err();
        assert_eq!(err.code, "InvalidParameter");
        assert!(err.message.contains("Key1, Key2") && err.message.contains("Key3"));
        assert_eq!(
            Mapping.parse_regenerate(&json!({})).unwrap_err().code,
            "InvalidRequestContent"
        );
    }
}
