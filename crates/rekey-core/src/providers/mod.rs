//! Owns the provider catalogue: every resource type rekey serves, with its key slots, key format,
//! naming rule and supported api-versions. Handlers and the store are generic over [`Provider`]; a new
//! resource type is a new module here plus its wire mapping in `rekey-api`.

pub mod cognitive_services;
pub mod cosmos_db;
pub mod quantum;

use crate::keys::KeyFormat;

/// One key slot of a resource type, named as the store and the data plane name it.
#[derive(Debug, PartialEq, Eq)]
pub struct Slot {
    pub name: &'static str,
    /// A read-only slot opens only reads on the data plane (Cosmos DB's read-only keys).
    pub read_only: bool,
}

/// A resource naming rule: the pattern for documentation and the check that enforces it.
pub struct NameRule {
    pub pattern: &'static str,
    pub min_len: usize,
    pub max_len: usize,
    pub check: fn(&str) -> Result<(), String>,
}

impl std::fmt::Debug for NameRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.pattern)
    }
}

/// One resource type.
#[derive(Debug)]
pub struct Provider {
    /// ARM namespace, canonical casing: `Microsoft.CognitiveServices`.
    pub namespace: &'static str,
    /// ARM type below the namespace: `accounts`.
    pub resource_type: &'static str,
    /// The name of the path parameter in Azure's spec (`accountName`), used in OpenAPI.
    pub name_param: &'static str,
    pub slots: &'static [Slot],
    pub key_format: KeyFormat,
    /// Clients sign requests with the key instead of sending it (Cosmos DB), so the data plane needs
    /// the plain key in memory rather than only its digest.
    pub signs_requests: bool,
    /// The request header that carries the key on the data plane, for types that send it.
    pub key_header: Option<&'static str>,
    /// Supported api-versions, oldest first.
    pub api_versions: &'static [&'static str],
    pub name_rule: NameRule,
}

impl Provider {
    /// `Microsoft.CognitiveServices/accounts`.
    pub fn type_name(&self) -> String {
        format!("{}/{}", self.namespace, self.resource_type)
    }

    /// The slot with this name, matched case-insensitively.
    pub fn slot(&self, name: &str) -> Option<&'static Slot> {
        self.slots
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    pub fn supports_api_version(&self, version: &str) -> bool {
        self.api_versions.contains(&version)
    }
}

/// Every resource type rekey serves.
pub static CATALOGUE: &[&Provider] = &[
    &cognitive_services::ACCOUNTS,
    &quantum::WORKSPACES,
    &cosmos_db::DATABASE_ACCOUNTS,
];

/// The provider for `namespace/type`, both matched case-insensitively as ARM does.
pub fn lookup(namespace: &str, resource_type: &str) -> Option<&'static Provider> {
    CATALOGUE.iter().copied().find(|p| {
        p.namespace.eq_ignore_ascii_case(namespace)
            && p.resource_type.eq_ignore_ascii_case(resource_type)
    })
}

/// api-versions of `Microsoft.Resources` (subscriptions, resource groups) that rekey accepts: the
/// ones current SDKs and `az` send and the older ones scripts still name.
pub static RESOURCES_API_VERSIONS: &[&str] = &[
    "2014-04-01",
    "2015-01-01",
    "2015-11-01",
    "2016-02-01",
    "2016-06-01",
    "2016-09-01",
    "2017-05-10",
    "2018-02-01",
    "2018-05-01",
    "2018-06-01",
    "2019-03-01",
    "2019-05-01",
    "2019-05-10",
    "2019-06-01",
    "2019-07-01",
    "2019-08-01",
    "2019-10-01",
    "2019-11-01",
    "2020-01-01",
    "2020-06-01",
    "2020-08-01",
    "2020-10-01",
    "2021-01-01",
    "2021-04-01",
    "2022-01-01",
    "2022-09-01",
    "2022-12-01",
    "2023-07-01",
    "2024-03-01",
    "2024-07-01",
    "2024-11-01",
    "2025-01-01",
    "2025-03-01",
    "2025-04-01",
];

/// A name of `min..=max` characters, the first matching `first`, the rest matching `rest`.
pub(crate) fn check_chars(
    name: &str,
    min: usize,
    max: usize,
    first: fn(char) -> bool,
    rest: fn(char) -> bool,
    rule: &str,
) -> Result<(), String> {
    let len = name.chars().count();
    let mut chars = name.chars();
    let ok = (min..=max).contains(&len) && chars.next().is_some_and(first) && chars.all(rest);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "it must be {min} to {max} characters and match {rule}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive() {
        let p = lookup("microsoft.COGNITIVESERVICES", "Accounts").unwrap();
        assert_eq!(p.type_name(), "Microsoft.CognitiveServices/accounts");
        assert!(lookup("Microsoft.Nope", "accounts").is_none());
    }

    #[test]
    fn every_provider_has_slots_and_versions() {
        for p in CATALOGUE {
            assert!(p.slots.len() >= 2, "{} needs two live keys", p.type_name());
            assert!(!p.api_versions.is_empty());
        }
    }
}
