//! Wire mapping of `Microsoft.Quantum/workspaces`: the workspace body, `listKeys` with both keys,
//! their creation times and Azure-format connection strings, and `regenerateKey` with `{"keys":[…]}`
//! naming one or both slots (answered 204, as the SDK expects).

use std::collections::BTreeMap;

use rekey_core::providers::{quantum::WORKSPACES, Slot};
use rekey_core::{slot_state, InvalidInput, KeySlotState, Provider, Resource, ResourceSpec};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::mapping::{
    canonical_body, list_schema_of, merge_properties, optional_property, patch_fields, present,
    require_object, required, rfc3339, schema_of, typed, without_computed, Answer, Answers,
    KeyView, PropertyKind, RenderContext, WireMapping, WireSchemas,
};

/// Body of `PUT` (needs `location`) and `PATCH` (tags and `properties.apiKeyEnabled`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct WorkspaceUpdate {
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    /// `providers`, `storageAccount`, and `apiKeyEnabled` (default true: keys work on the data plane).
    #[serde(default)]
    pub properties: Option<Map<String, Value>>,
    #[serde(default)]
    pub identity: Option<Value>,
}

/// The `properties` a caller may set; other properties are stored as sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceProperties {
    /// `false` refuses every key on the data plane (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub providers: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_account: Option<String>,
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
macro_rules! workspace_create {
    ($location:tt) => {
        /// Body of a create-or-replace `PUT`, as its schema documents it: `location` is required.
        #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
        pub struct WorkspaceCreate {
            #[schema(pattern = $location, max_length = 64)]
            pub location: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tags: Option<BTreeMap<String, String>>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub properties: Option<WorkspaceProperties>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub identity: Option<Value>,
        }
    };
}
rekey_core::location_pattern!(workspace_create);

/// Body of `PATCH`: tags and properties; `location` cannot change and is ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct WorkspacePatch {
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub properties: Option<WorkspaceProperties>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub location: String,
    pub tags: BTreeMap<String, String>,
    /// Stored properties plus `provisioningState`, `endpointUri`, `usable`.
    pub properties: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    pub created_at: String,
    pub key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListKeysResult {
    pub api_key_enabled: bool,
    pub primary_key: ApiKey,
    pub secondary_key: ApiKey,
    pub primary_connection_string: String,
    pub secondary_connection_string: String,
}

/// One entry of `properties.providers`, as the CLI sends it (the server stores whatever is sent).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSku {
    pub provider_id: String,
    pub provider_sku: String,
}

/// Body of `regenerateKey`: one or both of `Primary`, `Secondary`, any case, no repeats. Named
/// `WorkspaceApiKeys` in OpenAPI: Cognitive Services has its own `ApiKeys`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = WorkspaceApiKeys)]
pub struct ApiKeys {
    /// One or both of `Primary`, `Secondary`, each at most once.
    #[schema(value_type = std::collections::BTreeSet<KeyName>, inline, min_items = 1, max_items = 2)]
    pub keys: Vec<String>,
}

/// A key slot as `regenerateKey`'s `keys` documents it. (The server also accepts other letter
/// cases, as PowerShell and the spec's example differ.)
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum KeyName {
    Primary,
    Secondary,
}

const COMPUTED: &[&str] = &["provisioningState", "endpointUri", "usable", "creationTime"];

/// The properties rekey reads, in their canonical spelling.
const READ_PROPERTIES: &[&str] = &[
    "apiKeyEnabled",
    "providers",
    "storageAccount",
    rekey_core::resource::UPSTREAM_PROPERTY,
];
const KNOWN_PROPERTIES: &[&[&str]] = &[READ_PROPERTIES, COMPUTED];

fn check_properties(props: &Map<String, Value>) -> Result<(), InvalidInput> {
    optional_property(props, "apiKeyEnabled", PropertyKind::Bool)?;
    optional_property(props, "providers", PropertyKind::Array)?;
    optional_property(props, "storageAccount", PropertyKind::String)
}

fn writable(props: Map<String, Value>) -> Map<String, Value> {
    without_computed(props, COMPUTED)
}

/// Whether the data plane accepts this workspace's keys.
pub fn api_key_enabled(spec: &ResourceSpec) -> bool {
    !spec
        .settings_named("apiKeyEnabled")
        .any(|v| v.as_bool() == Some(false))
}

pub struct Mapping;

impl Mapping {
    fn connection_string(resource: &Resource, key: &str, ctx: &RenderContext) -> String {
        format!(
            "SubscriptionId={};ResourceGroupName={};WorkspaceName={};ApiKey={key};QuantumEndpoint={};",
            resource.id.subscription,
            resource.id.group,
            resource.id.name,
            ctx.data_plane_url(resource)
        )
    }
}

impl WireMapping for Mapping {
    fn provider(&self) -> &'static Provider {
        &WORKSPACES
    }

    fn parse_create(&self, body: &Value) -> Result<ResourceSpec, InvalidInput> {
        let body: WorkspaceUpdate = typed(&canonical_body(body, KNOWN_PROPERTIES)?)?;
        let location = present(body.location, "location")?;
        rekey_core::check_location(&location)?;
        let mut properties = body.properties.unwrap_or_default();
        check_properties(&properties)?;
        properties
            .entry("apiKeyEnabled")
            .or_insert(Value::Bool(true));
        Ok(ResourceSpec {
            location,
            kind: None,
            sku: None,
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
        let body: WorkspaceUpdate = typed(&patch_fields(body, &["tags", "properties"]))?;
        let mut next = current.clone();
        if let Some(tags) = body.tags {
            next.tags = tags;
        }
        if let Some(props) = body.properties {
            check_properties(&props)?;
            merge_properties(&mut next.settings, writable(props));
        }
        Ok(next)
    }

    fn render(&self, resource: &Resource, ctx: &RenderContext) -> Value {
        let mut properties = resource.spec.settings.clone();
        properties.insert("provisioningState".into(), json!("Succeeded"));
        properties.insert("endpointUri".into(), json!(ctx.data_plane_url(resource)));
        properties.insert("usable".into(), json!("Yes"));
        properties.insert("creationTime".into(), json!(rfc3339(resource.created_at)));
        json!({
            "id": resource.id.to_string(),
            "name": resource.id.name.as_str(),
            "type": WORKSPACES.type_name(),
            "location": resource.spec.location,
            "tags": resource.spec.tags,
            "properties": properties,
        })
    }

    fn key_views(&self) -> &'static [KeyView] {
        &[KeyView {
            action: "listKeys",
            also_get: false,
            summary: "Lists both keys with their creation times and connection strings.",
        }]
    }

    fn render_key_view(
        &self,
        _action: &str,
        resource: &Resource,
        keys: &[KeySlotState],
        ctx: &RenderContext,
    ) -> Value {
        let slot = |name| {
            let state =
                slot_state(keys, name).expect("a workspace has primary and secondary slots");
            (state.secret.expose().to_string(), rfc3339(state.created_at))
        };
        let (primary, primary_at) = slot("primary");
        let (secondary, secondary_at) = slot("secondary");
        json!({
            "apiKeyEnabled": api_key_enabled(&resource.spec),
            "primaryKey": { "createdAt": primary_at, "key": primary },
            "secondaryKey": { "createdAt": secondary_at, "key": secondary },
            "primaryConnectionString": Self::connection_string(resource, &primary, ctx),
            "secondaryConnectionString": Self::connection_string(resource, &secondary, ctx),
        })
    }

    fn answers(&self) -> Answers {
        Answers {
            create: Answer::Plain,
            delete: Answer::Plain,
            regenerate: Answer::NoContent,
        }
    }

    fn parse_regenerate(&self, body: &Value) -> Result<Vec<&'static Slot>, InvalidInput> {
        require_object(body)?;
        let names: Vec<String> = required(body, "keys")?;
        if names.is_empty() {
            return Err(InvalidInput::new(
                "InvalidParameter",
                "keys must name at least one of Primary, Secondary; got an empty list.",
            ));
        }
        let mut slots: Vec<&'static Slot> = Vec::new();
        for name in &names {
            let slot = WORKSPACES.slot(name).ok_or_else(|| {
                InvalidInput::new(
                    "InvalidParameter",
                    format!("keys must be Primary or Secondary; got \"{name}\"."),
                )
            })?;
            if slots.iter().any(|s| std::ptr::eq(*s, slot)) {
                return Err(InvalidInput::new(
                    "InvalidParameter",
                    format!("keys names \"{name}\" more than once."),
                ));
            }
            slots.push(slot);
        }
        Ok(slots)
    }

    fn schemas(&self) -> WireSchemas {
        let mut all = Vec::new();
        WireSchemas {
            create: schema_of::<WorkspaceCreate>(&mut all),
            patch: schema_of::<WorkspacePatch>(&mut all),
            resource: schema_of::<Workspace>(&mut all),
            list: list_schema_of::<Workspace>(&mut all),
            key_views: vec![schema_of::<ListKeysResult>(&mut all)],
            regenerate: schema_of::<ApiKeys>(&mut all),
            all,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regenerate_names_one_or_both_slots_without_repeats() {
        let both = Mapping
            .parse_regenerate(&json!({"keys":["primary","Secondary"]}))
            .unwrap();
        assert_eq!(
            both.iter().map(|s| s.name).collect::<Vec<_>>(),
            ["primary", "secondary"]
        );
        for bad in [
            json!({"keys":[]}),
            json!({"keys":["Tertiary"]}),
            json!({"keys":["Primary","PRIMARY"]}),
        ] {
            assert_eq!(
                Mapping.parse_regenerate(&bad).unwrap_err().code,
                "InvalidParameter",
                "{bad}"
            );
        }
        assert_eq!(
            Mapping.parse_regenerate(&json!({})).unwrap_err().code,
            "InvalidRequestContent"
        );
    }

    #[test]
    fn api_keys_are_enabled_unless_turned_off() {
        let spec = Mapping.parse_create(&json!({"location":"westus"})).unwrap();
        assert!(api_key_enabled(&spec));
        let off = Mapping
            .parse_patch(&spec, &json!({"properties":{"apiKeyEnabled":false}}))
            .unwrap();
        assert!(!api_key_enabled(&off));
    }
}
