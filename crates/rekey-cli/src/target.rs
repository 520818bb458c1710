//! Owns what a command acts on: the resource types the CLI knows (namespace, type, the api-version it
//! sends), the ARM paths built from a name and group, and `--ids`, whose full resource ids are
//! checked against the command's type before anything is sent.

use rekey_core::{ResourceGroupName, SubscriptionId};

use crate::error::CliError;

/// A resource type as the CLI addresses it.
#[derive(Debug)]
pub struct ResourceType {
    pub namespace: &'static str,
    pub type_name: &'static str,
    pub api_version: &'static str,
    /// How messages and prompts name one resource of this type.
    pub noun: &'static str,
}

/// The Cognitive Services SDK's default api-version (checked against the server's list by a test).
pub const COGNITIVE_SERVICES: ResourceType = ResourceType {
    namespace: "Microsoft.CognitiveServices",
    type_name: "accounts",
    api_version: "2025-09-01",
    noun: "Cognitive Services account",
};

/// The version the contract promises besides the SDK's default.
pub const COSMOS_DB: ResourceType = ResourceType {
    namespace: "Microsoft.DocumentDB",
    type_name: "databaseAccounts",
    api_version: "2024-11-15",
    noun: "Cosmos DB account",
};

/// The first Quantum api-version with keys, and the SDK's default.
pub const QUANTUM: ResourceType = ResourceType {
    namespace: "Microsoft.Quantum",
    type_name: "workspaces",
    api_version: "2023-11-13-preview",
    noun: "Quantum workspace",
};

/// `Microsoft.Resources` for resource groups (azure-mgmt-resource's default).
pub const GROUPS_API_VERSION: &str = "2025-04-01";
/// `Microsoft.Resources` for subscriptions (what az sends).
pub const SUBSCRIPTIONS_API_VERSION: &str = "2022-12-01";

/// One resource of a [`ResourceType`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef {
    pub subscription: String,
    pub group: String,
    pub name: String,
}

impl ResourceType {
    /// The path of one resource, which is also its full id.
    pub fn path(&self, r: &ResourceRef) -> String {
        format!(
            "{}/{}",
            self.list_path(&r.subscription, Some(&r.group)),
            segment(&r.name)
        )
    }

    /// The path listing this type in a group, or in the whole subscription.
    pub fn list_path(&self, subscription: &str, group: Option<&str>) -> String {
        match group {
            Some(group) => format!(
                "/subscriptions/{}/resourceGroups/{}/providers/{}/{}",
                segment(subscription),
                segment(group),
                self.namespace,
                self.type_name
            ),
            None => format!(
                "/subscriptions/{}/providers/{}/{}",
                segment(subscription),
                self.namespace,
                self.type_name
            ),
        }
    }

    /// Parses a full resource id of this type.
    pub fn parse_id(&self, raw: &str) -> Result<ResourceRef, CliError> {
        let bad = || {
            CliError::Usage(format!(
                "argument --ids: '{raw}' is not a {} id; expected /subscriptions/{{subscription}}/\
                 resourceGroups/{{group}}/providers/{}/{}/{{name}}",
                self.noun, self.namespace, self.type_name
            ))
        };
        let parts: Vec<&str> = raw.trim().trim_end_matches('/').split('/').collect();
        let [empty, subs, sub, groups, group, providers, namespace, type_name, name] =
            parts.as_slice()
        else {
            return Err(bad());
        };
        let keywords_ok = empty.is_empty()
            && subs.eq_ignore_ascii_case("subscriptions")
            && groups.eq_ignore_ascii_case("resourceGroups")
            && providers.eq_ignore_ascii_case("providers")
            && namespace.eq_ignore_ascii_case(self.namespace)
            && type_name.eq_ignore_ascii_case(self.type_name)
            && !name.is_empty();
        if !keywords_ok {
            return Err(bad());
        }
        Ok(ResourceRef {
            subscription: check_subscription(sub)?,
            group: check_group(group)?,
            name: name.to_string(),
        })
    }
}

/// The path of a resource group (ARM's own spelling for group operations is `resourcegroups`).
pub fn group_path(subscription: &str, group: &str) -> String {
    format!(
        "/subscriptions/{}/resourcegroups/{}",
        segment(subscription),
        segment(group)
    )
}

/// Parses a resource group id `/subscriptions/{s}/resourceGroups/{g}` into (subscription, group).
pub fn parse_group_id(raw: &str) -> Result<(String, String), CliError> {
    let parts: Vec<&str> = raw.trim().trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        [empty, subs, sub, groups, group]
            if empty.is_empty()
                && subs.eq_ignore_ascii_case("subscriptions")
                && groups.eq_ignore_ascii_case("resourceGroups") =>
        {
            Ok((check_subscription(sub)?, check_group(group)?))
        }
        _ => Err(CliError::Usage(format!(
            "argument --ids: '{raw}' is not a resource group id; expected \
             /subscriptions/{{subscription}}/resourceGroups/{{group}}"
        ))),
    }
}

fn check_subscription(raw: &str) -> Result<String, CliError> {
    SubscriptionId::parse(raw)
        .map(|s| s.to_string())
        .map_err(|e| CliError::Usage(format!("argument --ids: {}", e.message)))
}

fn check_group(raw: &str) -> Result<String, CliError> {
    ResourceGroupName::parse(raw)
        .map(|g| g.to_string())
        .map_err(|e| CliError::Usage(format!("argument --ids: {}", e.message)))
}

/// Percent-encodes one path segment, so a name cannot add segments or a query to the URL.
pub fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~()".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "00000000-0000-0000-0000-000000000001";

    #[test]
    fn ids_of_the_right_type_parse_whatever_the_keyword_case() {
        let id = format!(
            "/SUBSCRIPTIONS/{SUB}/resourcegroups/RG/providers/microsoft.cognitiveservices/ACCOUNTS/acct1"
        );
        let r = COGNITIVE_SERVICES.parse_id(&id).unwrap();
        assert_eq!(
            r,
            ResourceRef {
                subscription: SUB.into(),
                group: "RG".into(),
                name: "acct1".into()
            }
        );
        assert_eq!(
            COGNITIVE_SERVICES.path(&r),
            format!("/subscriptions/{SUB}/resourceGroups/RG/providers/Microsoft.CognitiveServices/accounts/acct1")
        );
    }

    #[test]
    fn ids_of_another_type_or_shape_are_usage_errors() {
        let cosmos =
            format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.DocumentDB/databaseAccounts/a");
        for bad in [cosmos.as_str(), "/subscriptions/x", "acct1", ""] {
            let err = COGNITIVE_SERVICES.parse_id(bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
        assert!(COSMOS_DB.parse_id(&cosmos).is_ok());
        let bad_sub = "/subscriptions/nope/resourceGroups/rg/providers/Microsoft.DocumentDB/databaseAccounts/a";
        assert_eq!(COSMOS_DB.parse_id(bad_sub).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn group_ids_parse() {
        assert_eq!(
            parse_group_id(&format!("/subscriptions/{SUB}/resourceGroups/rg1")).unwrap(),
            (SUB.to_string(), "rg1".to_string())
        );
        assert!(parse_group_id("/subscriptions/x/resourceGroups").is_err());
    }

    #[test]
    fn names_cannot_escape_their_path_segment() {
        assert_eq!(segment("a/b?c#d e"), "a%2Fb%3Fc%23d%20e");
        assert_eq!(segment("my-rg_1.(x)"), "my-rg_1.(x)");
    }

    #[test]
    fn the_cognitive_services_version_is_one_the_server_accepts() {
        let provider = &rekey_core::providers::cognitive_services::ACCOUNTS;
        assert!(provider.supports_api_version(COGNITIVE_SERVICES.api_version));
        assert!(rekey_core::providers::RESOURCES_API_VERSIONS.contains(&GROUPS_API_VERSION));
        assert!(rekey_core::providers::RESOURCES_API_VERSIONS.contains(&SUBSCRIPTIONS_API_VERSION));
    }
}
