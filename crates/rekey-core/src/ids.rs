//! Owns the names that identify things in ARM: subscription ids, resource group names, resource names
//! and full resource ids. Each type's only constructor checks its input ("parse, don't validate"), so
//! a handler holding one knows it is well-formed. Lookups are case-insensitive, as in ARM: [`key`]
//! methods give the folded form the store indexes by, while the value keeps the caller's casing.

use std::fmt;

use crate::error::InvalidInput;
use crate::providers::{self, Provider};

/// A subscription id: a UUID, kept in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(String);

impl SubscriptionId {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let groups: Vec<&str> = raw.split('-').collect();
        let shape_ok = groups.len() == 5
            && groups
                .iter()
                .zip([8, 4, 4, 4, 12])
                .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
        if !shape_ok {
            return Err(InvalidInput::new(
                "InvalidSubscriptionId",
                format!("The provided subscription identifier '{raw}' is malformed or invalid."),
            ));
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A resource group name: 1 to 90 characters of letters, digits, `_`, `-`, `.`, `(`, `)`, not ending
/// in `.` (Azure's rule).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceGroupName(String);

impl ResourceGroupName {
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let chars_ok = raw
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '(' | ')'));
        let len = raw.chars().count();
        if len == 0 || len > 90 || !chars_ok || raw.ends_with('.') {
            return Err(InvalidInput::new(
                "InvalidResourceGroupName",
                format!(
                    "Resource group name '{raw}' is invalid: it must be 1 to 90 characters of letters, \
                     digits, '_', '-', '.', '(' or ')', and must not end with '.'."
                ),
            ));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-folded form used for lookups.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for ResourceGroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A resource's own name, checked against its provider's naming rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceName(String);

impl ResourceName {
    pub fn parse(provider: &Provider, raw: &str) -> Result<Self, InvalidInput> {
        (provider.name_rule.check)(raw).map_err(|why| {
            InvalidInput::new(
                "InvalidResourceName",
                format!(
                    "Resource name '{raw}' is invalid for type '{}': {why}",
                    provider.type_name()
                ),
            )
        })?;
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for ResourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A full ARM resource id of a keyed resource.
#[derive(Debug, Clone)]
pub struct ResourceId {
    pub subscription: SubscriptionId,
    pub group: ResourceGroupName,
    pub provider: &'static Provider,
    pub name: ResourceName,
}

impl ResourceId {
    /// Parses `/subscriptions/{s}/resourceGroups/{g}/providers/{ns}/{type}/{name}`; the fixed segments,
    /// namespace and type are matched case-insensitively.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let bad = || {
            InvalidInput::new(
                "InvalidResourceId",
                format!(
                    "'{raw}' is not a resource id of the form \
                     /subscriptions/{{subscriptionId}}/resourceGroups/{{group}}/providers/{{namespace}}/{{type}}/{{name}}."
                ),
            )
        };
        let parts: Vec<&str> = raw.trim_end_matches('/').split('/').collect();
        let [empty, subs, sub, groups, group, providers_kw, namespace, type_name, name] =
            parts.as_slice()
        else {
            return Err(bad());
        };
        if !empty.is_empty()
            || !subs.eq_ignore_ascii_case("subscriptions")
            || !groups.eq_ignore_ascii_case("resourceGroups")
            || !providers_kw.eq_ignore_ascii_case("providers")
        {
            return Err(bad());
        }
        let provider = providers::lookup(namespace, type_name).ok_or_else(|| {
            InvalidInput::new(
                "InvalidResourceType",
                format!("The resource type '{namespace}/{type_name}' is not served by rekey."),
            )
        })?;
        Ok(Self {
            subscription: SubscriptionId::parse(sub)?,
            group: ResourceGroupName::parse(group)?,
            provider,
            name: ResourceName::parse(provider, name)?,
        })
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "/subscriptions/{}/resourceGroups/{}/providers/{}/{}",
            self.subscription,
            self.group,
            self.provider.type_name(),
            self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_id_must_be_a_uuid() {
        assert!(SubscriptionId::parse("00000000-0000-0000-0000-000000000000").is_ok());
        assert_eq!(
            SubscriptionId::parse("ABCDEF00-0000-0000-0000-000000000000")
                .unwrap()
                .as_str(),
            "abcdef00-0000-0000-0000-000000000000"
        );
        for bad in [
            "",
            "not-a-uuid",
            "00000000-0000-0000-0000-00000000000",
            "0000000000000000-0000-0000-00000000",
        ] {
            let err = SubscriptionId::parse(bad).unwrap_err();
            assert_eq!(err.code, "InvalidSubscriptionId");
        }
    }

    #[test]
    fn resource_group_names_follow_azure_rules() {
        for ok in ["rg", "my-rg_1.(x)", "Gruppe-ä"] {
            assert!(ResourceGroupName::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "ends.", "has space", "slash/", &"x".repeat(91)] {
            assert!(ResourceGroupName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resource_id_round_trips_and_ignores_keyword_case() {
        let raw = "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000001/resourcegroups/RG/PROVIDERS/microsoft.cognitiveservices/ACCOUNTS/acct1";
        let id = ResourceId::parse(raw).unwrap();
        assert_eq!(
            id.to_string(),
            "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/RG/providers/Microsoft.CognitiveServices/accounts/acct1"
        );
        assert!(ResourceId::parse("/subscriptions/x").is_err());
        assert!(ResourceId::parse(
            "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Nope/things/a"
        )
        .is_err());
    }
}
