//! Owns the domain records the store keeps and the server renders: subscriptions, resource groups,
//! keyed resources and their key slots. Wire shapes live in `rekey-api`; these are what they map to.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::ids::{ResourceGroupName, ResourceId, SubscriptionId};
use crate::providers::Slot;
use crate::secret::Secret;

pub type Tags = BTreeMap<String, String>;

#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub display_name: String,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct ResourceGroup {
    pub subscription: SubscriptionId,
    pub name: ResourceGroupName,
    pub location: String,
    pub tags: Tags,
    pub created_at: OffsetDateTime,
}

/// What a caller may set on a keyed resource. `settings` holds the type's own configuration
/// (Cognitive Services `properties` such as `disableLocalAuth`), already checked by the wire mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSpec {
    pub location: String,
    pub kind: Option<String>,
    pub sku: Option<serde_json::Value>,
    pub tags: Tags,
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// A keyed resource as stored. `id` keeps the casing the resource was created with.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Stable internal id; names the resource on the data plane and in encryption's associated data.
    pub internal_id: Uuid,
    pub id: ResourceId,
    pub spec: ResourceSpec,
    pub etag: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// One key slot's current value.
#[derive(Debug, Clone)]
pub struct KeySlotState {
    pub slot: &'static Slot,
    pub secret: Secret,
    /// Starts at 1, and grows by one with each regeneration.
    pub generation: i64,
    /// When this slot's current key was generated.
    pub created_at: OffsetDateTime,
    /// When the data plane last accepted this slot's current key (recorded in batches).
    pub last_used: Option<OffsetDateTime>,
}

/// Finds a slot's state by name in a list returned by the store.
pub fn slot_state<'a>(slots: &'a [KeySlotState], name: &str) -> Option<&'a KeySlotState> {
    slots.iter().find(|s| s.slot.name == name)
}

/// Passes [`LOCATION_PATTERN`] as one literal token to the macro `callback!`, for attributes that
/// take only literals (the wire types' `#[schema(pattern = …)]`): the pattern is written once, here.
#[macro_export]
macro_rules! location_pattern {
    ($callback:ident) => {
        $callback! { "^[A-Za-z0-9 ]*[A-Za-z0-9][A-Za-z0-9 ]*$" }
    };
}

/// The one token it is given.
#[doc(hidden)]
#[macro_export]
macro_rules! literal {
    ($token:tt) => {
        $token
    };
}

/// Azure region names as clients send them (`westus`, `West US`, `eastus2euap`): ASCII letters,
/// digits and spaces, at least one of them not a space. A location ends up in the URLs and headers
/// of long-running operations, so anything else (a control character, `/`, `?`) is refused here
/// rather than breaking an answer later. The pattern is the one `/openapi.json` documents.
pub const LOCATION_PATTERN: &str = crate::location_pattern!(literal);
pub const LOCATION_MAX_LEN: usize = 64;

/// Checks a `location` against [`LOCATION_PATTERN`] and [`LOCATION_MAX_LEN`].
pub fn check_location(raw: &str) -> Result<(), crate::InvalidInput> {
    if raw.trim().is_empty() {
        return Err(crate::InvalidInput::new(
            "LocationRequired",
            "The location property is required and must not be empty.",
        ));
    }
    let chars_ok = raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ');
    if !chars_ok || raw.len() > LOCATION_MAX_LEN {
        return Err(crate::InvalidInput::new(
            "InvalidResourceLocation",
            format!(
                "The location '{}' is invalid: it must be 1 to {LOCATION_MAX_LEN} ASCII letters, \
                 digits or spaces, such as 'westus' or 'West US'.",
                raw.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// The rekey extension property naming the upstream a resource's data-plane requests are forwarded
/// to (`http://host:port/base` or `https://…`); without it rekeyd answers authenticated requests itself.
pub const UPSTREAM_PROPERTY: &str = "x-rekey-upstream";

/// The rekey extension property capping the age of a resource's keys, in days (1 to 3650); past it
/// `listKeys` shows the slot overdue and a `Rekey.KeyAgeExceeded` event is emitted.
pub const MAX_KEY_AGE_PROPERTY: &str = "x-rekey-maxKeyAgeDays";

/// The range `x-rekey-maxKeyAgeDays` and the subscription key policy accept.
pub const MAX_KEY_AGE_DAYS: std::ops::RangeInclusive<i64> = 1..=3650;

impl ResourceSpec {
    /// The resource's own maximum key age in days, checked: an integer in [`MAX_KEY_AGE_DAYS`].
    pub fn max_key_age_days(&self) -> Result<Option<i64>, crate::InvalidInput> {
        match self.settings_named(MAX_KEY_AGE_PROPERTY).next() {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => match v.as_i64() {
                Some(days) if MAX_KEY_AGE_DAYS.contains(&days) => Ok(Some(days)),
                _ => Err(crate::InvalidInput::new(
                    "InvalidParameter",
                    format!(
                        "properties.{MAX_KEY_AGE_PROPERTY} must be an integer from {} to {}; got {v}.",
                        MAX_KEY_AGE_DAYS.start(),
                        MAX_KEY_AGE_DAYS.end()
                    ),
                )),
            },
        }
    }

    /// The values of the setting `name` under any letter case of it. The wire mappings store one
    /// spelling per name; reading every spelling keeps a switch stored otherwise from being
    /// ignored.
    pub fn settings_named<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a serde_json::Value> + 'a {
        self.settings
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether keys open this resource: Cognitive Services' `disableLocalAuth: true` and Quantum's
    /// `apiKeyEnabled: false` turn every key off (the keys stay listable, as in Azure). Property
    /// names are matched in any letter case, as ARM does, and any spelling that turns keys off wins.
    pub fn key_auth_enabled(&self) -> bool {
        let disabled = self
            .settings_named("disableLocalAuth")
            .any(|v| v.as_bool() == Some(true));
        let api_keys_off = self
            .settings_named("apiKeyEnabled")
            .any(|v| v.as_bool() == Some(false));
        !(disabled || api_keys_off)
    }

    /// The configured upstream base URL, checked: `http://` or `https://` with a host, no query or
    /// fragment.
    pub fn upstream(&self) -> Result<Option<String>, crate::InvalidInput> {
        let bad = |why: &str| {
            crate::InvalidInput::new(
                "InvalidParameter",
                format!(
                    "properties.{UPSTREAM_PROPERTY} {why}; e.g. \"http://127.0.0.1:9000/api\"."
                ),
            )
        };
        match self.settings.get(UPSTREAM_PROPERTY) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(url)) => {
                let rest = url
                    .strip_prefix("http://")
                    .or_else(|| url.strip_prefix("https://"))
                    .ok_or_else(|| bad("must be an http:// or https:// URL"))?;
                let host = rest.split('/').next().unwrap_or_default();
                if host.is_empty() || url.contains(['?', '#', ' ']) {
                    return Err(bad(
                        "must name a host and have no query, fragment or spaces",
                    ));
                }
                Ok(Some(url.trim_end_matches('/').to_string()))
            }
            Some(_) => Err(bad("must be a string")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(settings: serde_json::Value) -> ResourceSpec {
        ResourceSpec {
            location: "westus".into(),
            kind: None,
            sku: None,
            tags: Tags::new(),
            settings: settings.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn key_auth_is_on_unless_a_type_flag_turns_it_off() {
        assert!(spec(json!({})).key_auth_enabled());
        assert!(!spec(json!({"disableLocalAuth": true})).key_auth_enabled());
        assert!(!spec(json!({"apiKeyEnabled": false})).key_auth_enabled());
        assert!(spec(json!({"apiKeyEnabled": true, "disableLocalAuth": false})).key_auth_enabled());
        for off in [
            json!({"DisableLocalAuth": true}),
            json!({"disablelocalauth": true}),
            json!({"ApiKeyEnabled": false}),
            json!({"disableLocalAuth": false, "DISABLELOCALAUTH": true}),
        ] {
            assert!(!spec(off.clone()).key_auth_enabled(), "{off}");
        }
    }

    #[test]
    fn locations_are_ascii_letters_digits_and_spaces() {
        for ok in ["westus", "West US", "eastus2euap", " westus "] {
            assert_eq!(check_location(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_location("").unwrap_err().code, "LocationRequired");
        assert_eq!(check_location("   ").unwrap_err().code, "LocationRequired");
        // A control character once reached an Azure-AsyncOperation header and panicked the handler.
        for bad in [
            "west\u{1}us",
            "x\u{7f}",
            "wést",
            "a/b?c",
            "west\nus",
            &"w".repeat(65),
        ] {
            assert_eq!(
                check_location(bad).unwrap_err().code,
                "InvalidResourceLocation",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn upstream_must_be_an_http_or_https_url() {
        assert_eq!(
            spec(json!({UPSTREAM_PROPERTY: "http://127.0.0.1:9000/api/"}))
                .upstream()
                .unwrap()
                .unwrap(),
            "http://127.0.0.1:9000/api"
        );
        assert_eq!(
            spec(json!({UPSTREAM_PROPERTY: "https://api.example/v1"}))
                .upstream()
                .unwrap()
                .unwrap(),
            "https://api.example/v1"
        );
        for bad in [
            json!("ftp://x"),
            json!("https://"),
            json!("HTTP://x"),
            json!("http://"),
            json!("http://x/?q=1"),
            json!(5),
        ] {
            assert!(
                spec(json!({UPSTREAM_PROPERTY: bad})).upstream().is_err(),
                "{bad}"
            );
        }
    }
}
