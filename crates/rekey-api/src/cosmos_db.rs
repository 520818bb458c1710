//! Wire mapping of `Microsoft.DocumentDB/databaseAccounts`: the account body, the four keys through
//! `listKeys`, `readonlykeys` and `listConnectionStrings`, and `regenerateKey` with `{"keyKind"}`.
//! Create, delete and regenerate are long-running operations in Azure, so they are answered as ones.

use std::collections::BTreeMap;

use rekey_core::providers::{cosmos_db::DATABASE_ACCOUNTS, Slot};
use rekey_core::{slot_state, InvalidInput, KeySlotState, Provider, Resource, ResourceSpec};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::mapping::{
    canonical_body, list_schema_of, merge_properties, one_slot, optional_property, patch_fields,
    present, schema_of, typed, without_computed, Answer, Answers, KeyView, PropertyKind,
    RenderContext, WireMapping, WireSchemas,
};

/// Body of `PUT`: `location`, and `properties` with `databaseAccountOfferType: "Standard"` and at
/// least one entry in `locations`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct DatabaseAccountCreateUpdateParameters {
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub properties: Option<Map<String, Value>>,
    #[serde(default)]
    pub identity: Option<Value>,
}

/// One entry of `properties.locations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseAccountLocation {
    pub location_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub failover_priority: Option<i32>,
    /// Stored as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    pub is_zone_redundant: Option<bool>,
}

/// `properties.consistencyPolicy`, as the CLI sends it (the server stores whatever is sent).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsistencyPolicy {
    /// `Eventual`, `ConsistentPrefix`, `Session`, `BoundedStaleness` or `Strong`.
    pub default_consistency_level: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_interval_in_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_staleness_prefix: Option<u64>,
}

/// The `properties` of a create: `databaseAccountOfferType` (`Standard`) and at least one location
/// are required; other properties are stored as sent.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseAccountCreateProperties {
    #[schema(pattern = "^Standard$")]
    pub database_account_offer_type: String,
    #[schema(min_items = 1)]
    pub locations: Vec<DatabaseAccountLocation>,
    /// `true` refuses every key on the data plane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_local_auth: Option<bool>,
    /// Stored as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Value>)]
    pub consistency_policy: Option<ConsistencyPolicy>,
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
macro_rules! database_account_create {
    ($location:tt) => {
        /// Body of a create-or-replace `PUT`, as its schema documents it.
        #[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
        pub struct DatabaseAccountCreate {
            #[schema(pattern = $location, max_length = 64)]
            pub location: String,
            /// `GlobalDocumentDB` (the default), `MongoDB` or `Parse`, any letter case.
            #[serde(default)]
            #[schema(
                pattern = "^([Gg][Ll][Oo][Bb][Aa][Ll][Dd][Oo][Cc][Uu][Mm][Ee][Nn][Tt][Dd][Bb]|[Mm][Oo][Nn][Gg][Oo][Dd][Bb]|[Pp][Aa][Rr][Ss][Ee])$"
            )]
            pub kind: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub tags: Option<BTreeMap<String, String>>,
            pub properties: DatabaseAccountCreateProperties,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub identity: Option<Value>,
        }
    };
}
rekey_core::location_pattern!(database_account_create);

/// The `properties` of a `PATCH`: each optional, but when present as in a create.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseAccountPatchProperties {
    #[serde(default)]
    #[schema(pattern = "^Standard$")]
    pub database_account_offer_type: String,
    #[serde(default)]
    #[schema(min_items = 1)]
    pub locations: Vec<DatabaseAccountLocation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// Body of `PATCH`: tags and properties; `location` and `kind` cannot change and are ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct DatabaseAccountPatch {
    #[serde(default)]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub properties: Option<DatabaseAccountPatchProperties>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DatabaseAccount {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub location: String,
    pub kind: String,
    pub tags: BTreeMap<String, String>,
    /// Stored properties plus `provisioningState`, `documentEndpoint`, and the computed fields of
    /// `locations`, `readLocations`, `writeLocations` and `failoverPolicies`.
    pub properties: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseAccountListKeysResult {
    pub primary_master_key: String,
    pub secondary_master_key: String,
    pub primary_readonly_master_key: String,
    pub secondary_readonly_master_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseAccountListReadOnlyKeysResult {
    pub primary_readonly_master_key: String,
    pub secondary_readonly_master_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseAccountConnectionString {
    pub connection_string: String,
    pub description: String,
    pub key_kind: String,
    #[serde(rename = "type")]
    pub type_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseAccountListConnectionStringsResult {
    pub connection_strings: Vec<DatabaseAccountConnectionString>,
}

/// Body of `regenerateKey`: `keyKind` is `primary`, `secondary`, `primaryReadonly` or
/// `secondaryReadonly` (any case).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseAccountRegenerateKeyParameters {
    #[schema(
        pattern = "^([Pp][Rr][Ii][Mm][Aa][Rr][Yy]|[Ss][Ee][Cc][Oo][Nn][Dd][Aa][Rr][Yy]|[Pp][Rr][Ii][Mm][Aa][Rr][Yy][Rr][Ee][Aa][Dd][Oo][Nn][Ll][Yy]|[Ss][Ee][Cc][Oo][Nn][Dd][Aa][Rr][Yy][Rr][Ee][Aa][Dd][Oo][Nn][Ll][Yy])$"
    )]
    pub key_kind: String,
}

const COMPUTED: &[&str] = &[
    "provisioningState",
    "documentEndpoint",
    "readLocations",
    "writeLocations",
    "failoverPolicies",
];
/// What Azure adds to each entry of `locations`; never stored from a request.
const COMPUTED_PER_LOCATION: &[&str] = &["id", "documentEndpoint", "provisioningState"];

/// The properties rekey reads, in their canonical spelling.
const READ_PROPERTIES: &[&str] = &[
    "databaseAccountOfferType",
    "locations",
    "disableLocalAuth",
    rekey_core::resource::UPSTREAM_PROPERTY,
];
const KNOWN_PROPERTIES: &[&[&str]] = &[READ_PROPERTIES, COMPUTED];
const KINDS: &[&str] = &["GlobalDocumentDB", "MongoDB", "Parse"];

fn bad(message: impl Into<String>) -> InvalidInput {
    InvalidInput::new("InvalidRequestContent", message)
}

fn check_properties(props: &Map<String, Value>, creating: bool) -> Result<(), InvalidInput> {
    match props.get("databaseAccountOfferType") {
        Some(Value::String(s)) if s == "Standard" => {}
        None if !creating => {}
        None => return Err(bad("The request content is missing the required property 'properties.databaseAccountOfferType'.")),
        Some(other) => {
            return Err(InvalidInput::new(
                "InvalidParameter",
                format!("properties.databaseAccountOfferType must be Standard; got {other}."),
            ))
        }
    }
    match props.get("locations") {
        Some(Value::Array(list)) if !list.is_empty() => {
            for (i, loc) in list.iter().enumerate() {
                if !loc.get("locationName").is_some_and(Value::is_string) {
                    return Err(bad(format!(
                        "properties.locations[{i}].locationName must be a string."
                    )));
                }
                // Azure's failoverPriority is a 32-bit integer, 0 for the write region. JSON
                // allows an integer written as `2.0`; that is still an integer.
                let priority_ok = match loc.get("failoverPriority") {
                    None | Some(Value::Null) => true,
                    Some(v) => v.as_f64().is_some_and(|n| {
                        n.fract() == 0.0 && (0.0..=f64::from(i32::MAX)).contains(&n)
                    }),
                };
                if !priority_ok {
                    return Err(InvalidInput::new(
                        "InvalidParameter",
                        format!(
                            "properties.locations[{i}].failoverPriority must be an integer from 0 to {}.",
                            i32::MAX
                        ),
                    ));
                }
            }
        }
        None if !creating => {}
        _ => {
            return Err(bad(
                "The request content needs 'properties.locations' with at least one location.",
            ))
        }
    }
    optional_property(props, "disableLocalAuth", PropertyKind::Bool)
}

fn writable(props: Map<String, Value>) -> Map<String, Value> {
    let mut props = without_computed(props, COMPUTED);
    // A client that sends back the account it read (as a read-modify-write does) sends each
    // location's computed fields too; they are made afresh on every read.
    if let Some(Value::Array(locations)) = props.get_mut("locations") {
        for location in locations.iter_mut().filter_map(Value::as_object_mut) {
            location.retain(|k, _| !COMPUTED_PER_LOCATION.contains(&k.as_str()));
        }
    }
    props
}

/// The account's locations as Azure renders them: each stored entry with its `id`
/// (`{account}-{location}`), `provisioningState`, `failoverPriority`, `isZoneRedundant` and
/// `documentEndpoint`, ordered by failover priority. rekeyd serves one data-plane endpoint per
/// account, so every location names that one (Azure gives each region its own host).
fn rendered_locations(account: &str, stored: Option<&Value>, endpoint: &str) -> Vec<Value> {
    let stored = stored
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut locations: Vec<Value> = stored
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| {
            let mut location = entry.as_object()?.clone();
            let name = location.get("locationName")?.as_str()?;
            let slug: String = name
                .chars()
                .filter(|c| !c.is_whitespace())
                .flat_map(char::to_lowercase)
                .collect();
            location.insert("id".into(), json!(format!("{account}-{slug}")));
            location.insert("documentEndpoint".into(), json!(endpoint));
            location.insert("provisioningState".into(), json!("Succeeded"));
            if location.get("failoverPriority").is_none_or(Value::is_null) {
                location.insert("failoverPriority".into(), json!(i));
            }
            location
                .entry("isZoneRedundant")
                .or_insert_with(|| json!(false));
            Some(Value::Object(location))
        })
        .collect();
    locations.sort_by_key(|l| {
        l["failoverPriority"]
            .as_f64()
            .map_or(i64::MAX, |p| p as i64)
    });
    locations
}

pub struct Mapping;

impl Mapping {
    fn key(keys: &[KeySlotState], slot: &str) -> String {
        slot_state(keys, slot)
            .expect("a database account has all four slots")
            .secret
            .expose()
            .to_string()
    }
}

impl WireMapping for Mapping {
    fn provider(&self) -> &'static Provider {
        &DATABASE_ACCOUNTS
    }

    fn parse_create(&self, body: &Value) -> Result<ResourceSpec, InvalidInput> {
        let body: DatabaseAccountCreateUpdateParameters =
            typed(&canonical_body(body, KNOWN_PROPERTIES)?)?;
        let location = present(body.location, "location")?;
        rekey_core::check_location(&location)?;
        let kind = body.kind.unwrap_or_else(|| "GlobalDocumentDB".into());
        let Some(kind) = KINDS.iter().find(|k| k.eq_ignore_ascii_case(&kind)) else {
            return Err(InvalidInput::new(
                "InvalidParameter",
                format!("kind must be one of {}; got \"{kind}\".", KINDS.join(", ")),
            ));
        };
        let properties = present(body.properties, "properties")?;
        check_properties(&properties, true)?;
        Ok(ResourceSpec {
            location,
            kind: Some(kind.to_string()),
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
        let body: DatabaseAccountCreateUpdateParameters =
            typed(&patch_fields(body, &["tags", "properties"]))?;
        let mut next = current.clone();
        if let Some(tags) = body.tags {
            next.tags = tags;
        }
        if let Some(props) = body.properties {
            check_properties(&props, false)?;
            merge_properties(&mut next.settings, writable(props));
        }
        Ok(next)
    }

    fn render(&self, resource: &Resource, ctx: &RenderContext) -> Value {
        let mut properties = resource.spec.settings.clone();
        let endpoint = ctx.data_plane_url(resource);
        let locations = rendered_locations(
            resource.id.name.as_str(),
            properties.get("locations"),
            &endpoint,
        );
        // One write region unless the account asked for several, as in Azure.
        let multi_write = properties
            .get("enableMultipleWriteLocations")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let write_count = if multi_write { locations.len() } else { 1 };
        let failover_policies: Vec<Value> = locations
            .iter()
            .map(|l| {
                json!({
                    "id": l["id"],
                    "locationName": l["locationName"],
                    "failoverPriority": l["failoverPriority"],
                })
            })
            .collect();
        properties.insert("provisioningState".into(), json!("Succeeded"));
        properties.insert("documentEndpoint".into(), json!(endpoint));
        properties.insert(
            "writeLocations".into(),
            json!(locations.iter().take(write_count).collect::<Vec<_>>()),
        );
        properties.insert("readLocations".into(), json!(locations));
        properties.insert("failoverPolicies".into(), json!(failover_policies));
        properties.insert("locations".into(), json!(locations));
        json!({
            "id": resource.id.to_string(),
            "name": resource.id.name.as_str(),
            "type": DATABASE_ACCOUNTS.type_name(),
            "location": resource.spec.location,
            "kind": resource.spec.kind,
            "tags": resource.spec.tags,
            "properties": properties,
        })
    }

    fn key_views(&self) -> &'static [KeyView] {
        &[
            KeyView {
                action: "listKeys",
                also_get: false,
                summary: "Lists all four keys.",
            },
            KeyView {
                action: "readonlykeys",
                also_get: true,
                summary: "Lists the two read-only keys.",
            },
            KeyView {
                action: "listConnectionStrings",
                also_get: false,
                summary: "Lists a connection string per key.",
            },
        ]
    }

    fn render_key_view(
        &self,
        action: &str,
        resource: &Resource,
        keys: &[KeySlotState],
        ctx: &RenderContext,
    ) -> Value {
        let k = |slot| Self::key(keys, slot);
        match action {
            "readonlykeys" => json!({
                "primaryReadonlyMasterKey": k("primaryReadonly"),
                "secondaryReadonlyMasterKey": k("secondaryReadonly"),
            }),
            "listConnectionStrings" => {
                let endpoint = ctx.data_plane_url(resource);
                let entry = |slot, kind, description| {
                    json!({
                        "connectionString": format!("AccountEndpoint={endpoint};AccountKey={};", k(slot)),
                        "description": description,
                        "keyKind": kind,
                        "type": "Sql",
                    })
                };
                json!({ "connectionStrings": [
                    entry("primary", "Primary", "Primary SQL Connection String"),
                    entry("secondary", "Secondary", "Secondary SQL Connection String"),
                    entry("primaryReadonly", "PrimaryReadonly", "Primary Read-Only SQL Connection String"),
                    entry("secondaryReadonly", "SecondaryReadonly", "Secondary Read-Only SQL Connection String"),
                ]})
            }
            _ => json!({
                "primaryMasterKey": k("primary"),
                "secondaryMasterKey": k("secondary"),
                "primaryReadonlyMasterKey": k("primaryReadonly"),
                "secondaryReadonlyMasterKey": k("secondaryReadonly"),
            }),
        }
    }

    fn answers(&self) -> Answers {
        Answers {
            create: Answer::AsyncOperation,
            delete: Answer::AsyncOperation,
            regenerate: Answer::AsyncOperation,
        }
    }

    /// `keyKind` spells slots as the catalogue does (`primaryReadonly`).
    fn regenerate_name(&self, slot: &Slot) -> String {
        slot.name.to_string()
    }

    fn parse_regenerate(&self, body: &Value) -> Result<Vec<&'static Slot>, InvalidInput> {
        one_slot(
            &DATABASE_ACCOUNTS,
            body,
            "keyKind",
            "primary, secondary, primaryReadonly, secondaryReadonly",
        )
    }

    fn schemas(&self) -> WireSchemas {
        let mut all = Vec::new();
        WireSchemas {
            create: schema_of::<DatabaseAccountCreate>(&mut all),
            patch: schema_of::<DatabaseAccountPatch>(&mut all),
            resource: schema_of::<DatabaseAccount>(&mut all),
            list: list_schema_of::<DatabaseAccount>(&mut all),
            key_views: vec![
                schema_of::<DatabaseAccountListKeysResult>(&mut all),
                schema_of::<DatabaseAccountListReadOnlyKeysResult>(&mut all),
                schema_of::<DatabaseAccountListConnectionStringsResult>(&mut all),
            ],
            regenerate: schema_of::<DatabaseAccountRegenerateKeyParameters>(&mut all),
            all,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create_body() -> Value {
        json!({"location":"westus","kind":"GlobalDocumentDB","properties":{
            "databaseAccountOfferType":"Standard","locations":[{"locationName":"westus","failoverPriority":0}]}})
    }

    #[test]
    fn failover_priority_must_be_a_32_bit_non_negative_integer() {
        for bad in [
            json!(-1),
            json!(1.5),
            json!("0"),
            json!(9223372036854775808u64),
        ] {
            let mut body = create_body();
            body["properties"]["locations"][0]["failoverPriority"] = bad.clone();
            let err = Mapping.parse_create(&body).unwrap_err();
            assert_eq!(err.code, "InvalidParameter", "{bad}");
        }
        for good in [json!(i32::MAX), json!(2.0)] {
            let mut body = create_body();
            body["properties"]["locations"][0]["failoverPriority"] = good.clone();
            assert!(Mapping.parse_create(&body).is_ok(), "{good}");
        }
    }

    #[test]
    fn create_needs_offer_type_and_locations() {
        assert!(Mapping.parse_create(&create_body()).is_ok());
        let mut no_locations = create_body();
        no_locations["properties"]
            .as_object_mut()
            .unwrap()
            .remove("locations");
        assert!(Mapping
            .parse_create(&no_locations)
            .unwrap_err()
            .message
            .contains("locations"));
        let mut wrong_offer = create_body();
        wrong_offer["properties"]["databaseAccountOfferType"] = json!("Premium");
        assert_eq!(
            Mapping.parse_create(&wrong_offer).unwrap_err().code,
            "InvalidParameter"
        );
        let mut wrong_kind = create_body();
        wrong_kind["kind"] = json!("Cassandra");
        assert_eq!(
            Mapping.parse_create(&wrong_kind).unwrap_err().code,
            "InvalidParameter"
        );
    }

    #[test]
    fn key_kind_names_one_of_four_slots() {
        for (kind, slot) in [
            ("primary", "primary"),
            ("SecondaryReadonly", "secondaryReadonly"),
        ] {
            assert_eq!(
                Mapping
                    .parse_regenerate(&json!({ "keyKind": kind }))
                    .unwrap()[0]
                    .name,
                slot
            );
        }
        assert_eq!(
            Mapping
                .parse_regenerate(&json!({"keyKind":"tertiary"}))
                .unwrap_err()
                .code,
            "InvalidParameter"
        );
    }
}
