//! Owns the input rules of rekey's access, token, sign-in and OAuth routes that `/openapi.json`
//! states as patterns. Each [`Rule`] is one regular expression with bounds on the length: the
//! document publishes it and the handler checks its input with it, so what the document promises
//! and what the server accepts cannot drift apart (schemathesis sends what the document allows and
//! what it forbids, and fails on any disagreement).
//!
//! The patterns keep to what JSON Schema validators, Python's `re` (which generators use) and the
//! regex crate read alike: no look-around, no inline flags, `[0-9]` rather than `\d`, `[\s\S]`
//! rather than `.`. JSON Schema validators read `$` as the end of the text, as the regex crate does.

use std::sync::LazyLock;

use regex::Regex;
use rekey_api::authorization::{RoleAssignmentCreateProperties, TokenCreate};
use uuid::Uuid;

use crate::route_table::constrained_string;
pub use crate::route_table::string_schema;

/// A string rule: a pattern, and bounds on the length in characters (as JSON Schema counts them).
pub struct Rule {
    pattern: String,
    min_len: Option<usize>,
    max_len: Option<usize>,
    regex: Regex,
}

impl Rule {
    pub fn new(pattern: impl Into<String>) -> Self {
        let pattern = pattern.into();
        let regex = Regex::new(&pattern).expect("rekey's own patterns compile");
        Self {
            pattern,
            min_len: None,
            max_len: None,
            regex,
        }
    }

    pub fn length(mut self, min: usize, max: usize) -> Self {
        self.min_len = Some(min);
        self.max_len = Some(max);
        self
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Whether `value` keeps the rule.
    pub fn matches(&self, value: &str) -> bool {
        let chars = value.chars().count();
        self.min_len.is_none_or(|min| chars >= min)
            && self.max_len.is_none_or(|max| chars <= max)
            && self.regex.is_match(value)
    }

    /// The rule's matches, for pulling parts out of a value that keeps it.
    pub fn captures<'a>(&self, value: &'a str) -> Option<regex::Captures<'a>> {
        if self.matches(value) {
            self.regex.captures(value)
        } else {
            None
        }
    }

    /// The rule of a path parameter.
    pub fn param_rule(&'static self) -> crate::route_table::ParamRule {
        crate::route_table::ParamRule {
            pattern: &self.pattern,
            min_len: self.min_len.unwrap_or(0),
            max_len: self
                .max_len
                .expect("a path parameter's rule bounds its length"),
        }
    }

    /// A string schema stating the rule (for parameters: a body states its rules in its type).
    pub fn schema(&self) -> utoipa::openapi::Schema {
        let length = self.min_len.zip(self.max_len);
        constrained_string(Some(&self.pattern), length, &[])
    }
}

/// `s` matched literally, ASCII letters in either case.
pub fn any_case(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
            } else {
                regex::escape(&c.to_string())
            }
        })
        .collect()
}

/// The rule a wire type's schema states for its string `property`: its pattern and length bounds.
/// The rules of request bodies live as `#[schema(pattern = …)]` attributes on the types in
/// `rekey-api`; the handler checks with the very pattern the document publishes.
pub fn rule_of<T: utoipa::PartialSchema>(property: &str) -> Rule {
    let schema = serde_json::to_value(T::schema()).expect("a schema serializes");
    let field = &schema["properties"][property];
    let pattern = field["pattern"]
        .as_str()
        .unwrap_or_else(|| panic!("the schema states a pattern for {property}"));
    let mut rule = Rule::new(pattern);
    let bound = |name: &str| field[name].as_u64().map(|n| n as usize);
    if let (Some(min), Some(max)) = (bound("minLength"), bound("maxLength")) {
        rule = rule.length(min, max);
    }
    rule
}

/// A GUID in its hyphenated form, hex digits in either case (ARM's pattern), as a role
/// assignment's `principalId` states it. `Uuid::parse_str` also reads the simple, braced and URN
/// forms; no client sends them, and in a URL path their `{`, `}` and `:` come percent-encoded, so
/// rekey takes this form only.
pub static GUID: LazyLock<Rule> =
    LazyLock::new(|| rule_of::<RoleAssignmentCreateProperties>("principalId"));

/// A GUID as [`GUID`] allows it.
pub fn parse_guid(raw: &str) -> Option<Uuid> {
    GUID.matches(raw)
        .then(|| Uuid::parse_str(raw).ok())
        .flatten()
}

/// `roleDefinitionId` of a role assignment: a role definition's id, or its bare GUID, naming one of
/// the built-in roles (whatever comes before the last `/` is not looked at).
pub static ROLE_DEFINITION_ID: LazyLock<Rule> =
    LazyLock::new(|| rule_of::<RoleAssignmentCreateProperties>("roleDefinitionId"));

/// This rekey's tenant id, in either letter case (the OAuth and OpenID routes serve no other).
pub fn tenant_rule(tenant: Uuid) -> Rule {
    Rule::new(format!("^{}$", any_case(&tenant.hyphenated().to_string())))
}

/// Characters that may not appear in a token's name: the C0 and C1 controls.
#[cfg(test)]
const CONTROLS: &str = "\\x00-\\x1f\\x7f-\\x9f";

/// A token's name: 1 to 100 characters, no control characters, not only white space.
pub static TOKEN_NAME: LazyLock<Rule> = LazyLock::new(|| rule_of::<TokenCreate>("name"));

/// The longest token lifetime: ten years.
pub const MAX_TOKEN_LIFETIME_SECONDS: u64 = 3650 * 86_400;

/// Token lifetime units and their length in seconds.
pub const LIFETIME_UNITS: [(char, u64); 4] = [('s', 1), ('m', 60), ('h', 3600), ('d', 86_400)];

/// `expiresIn` of a new token: a whole number of seconds, minutes, hours or days (`90s`, `30m`,
/// `12h`, `7d`), at least 1 and at most [`MAX_TOKEN_LIFETIME_SECONDS`], without leading zeros.
pub static EXPIRES_IN: LazyLock<Rule> = LazyLock::new(|| rule_of::<TokenCreate>("expiresIn"));

/// What [`EXPIRES_IN`] must be: built from [`LIFETIME_UNITS`] and [`MAX_TOKEN_LIFETIME_SECONDS`].
#[cfg(test)]
fn expires_in_pattern() -> String {
    let units: Vec<String> = LIFETIME_UNITS
        .iter()
        .map(|(unit, seconds)| {
            format!(
                "{}{unit}",
                decimal_up_to(MAX_TOKEN_LIFETIME_SECONDS / seconds)
            )
        })
        .collect();
    format!("^(?:{})$", units.join("|"))
}

/// A pattern of the decimal numbers from 1 to `max`, without leading zeros.
#[cfg(test)]
fn decimal_up_to(max: u64) -> String {
    let digits = max.to_string();
    let n = digits.len();
    let mut alternatives = Vec::new();
    // Fewer digits than `max`: any number.
    match n {
        1 => {}
        2 => alternatives.push("[1-9]".to_string()),
        _ => alternatives.push(format!("[1-9][0-9]{{0,{}}}", n - 2)),
    }
    // As many digits: the first `i` of `max`, a smaller digit, then any digits.
    for (i, d) in digits.bytes().map(|b| b - b'0').enumerate() {
        let low = u8::from(i == 0);
        if d > low {
            let class = if d - 1 == low {
                low.to_string()
            } else {
                format!("[{low}-{}]", d - 1)
            };
            let tail = match n - i - 1 {
                0 => String::new(),
                1 => "[0-9]".to_string(),
                rest => format!("[0-9]{{{rest}}}"),
            };
            alternatives.push(format!("{}{class}{tail}", &digits[..i]));
        }
    }
    alternatives.push(digits);
    format!("(?:{})", alternatives.join("|"))
}

/// `scope` of `GET /rekey/permissions`: a resource id or any other scope, starting with `/`.
pub static PERMISSION_SCOPE: LazyLock<Rule> = LazyLock::new(|| Rule::new("^/").length(1, 2048));

/// `scope` of `GET /rekey/keyActivity`: one subscription (its id a UUID, as ARM's are), or one
/// resource in it.
pub static KEY_ACTIVITY_SCOPE: LazyLock<Rule> = LazyLock::new(|| {
    Rule::new(
        "^/subscriptions/[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\
         (?:/resourceGroups/[^/?#]+/providers/[^/?#]+/[^/?#]+/[^/?#]+)?$",
    )
    .length(1, 2048)
});

/// `actions` of `GET /rekey/permissions`: action names (letters, digits, `.`, `_`, `/`, `*`, `-`)
/// separated by commas.
pub static PERMISSION_ACTIONS: LazyLock<Rule> = LazyLock::new(|| {
    let action = "[A-Za-z0-9._/*-]+";
    Rule::new(format!("^{action}(?:,{action})*$")).length(1, 8192)
});

/// An RFC 3339 date and time that is a real instant: a calendar date (29 February only in leap
/// years), hours 00–23, no leap second, at most nanoseconds, `Z` or an offset up to ±23:59.
fn rfc3339_pattern() -> String {
    let month_day = "(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])\
                     |(?:0[13-9]|1[0-2])-(?:29|30)\
                     |(?:0[13578]|1[02])-31)";
    let leap_year = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])\
                     |(?:[02468][048]|[13579][26])00)";
    let date = format!("(?:[0-9]{{4}}-{month_day}|{leap_year}-02-29)");
    let time = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,9})?";
    let offset = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])";
    format!("{date}[Tt]{time}{offset}")
}

/// `$filter` of the activity log: OData clauses joined by ` and `, one of which is
/// `eventTimestamp ge '<RFC 3339 date and time>'` (quotes optional, as clients differ); the others
/// are not looked at. The time is the pattern's group `since`.
pub static ACTIVITY_LOG_FILTER: LazyLock<Rule> = LazyLock::new(|| {
    Rule::new(format!(
        "^(?:[\\s\\S]* and )?eventTimestamp ge '?(?P<since>{})'?(?: and [\\s\\S]*)?$",
        rfc3339_pattern()
    ))
});

/// `scope` of the OAuth token request: space-separated scopes, one of which is `{audience}.default`
/// (slashes between the two are allowed, as MSAL sometimes doubles them).
pub fn oauth_scope_rule(audience: &str) -> Rule {
    let base = regex::escape(audience.trim_end_matches('/'));
    Rule::new(format!("^(?:[^ ]* )*{base}/*\\.default(?: [^ ]*)*$"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GUID, hex digits in either case: of the one given.
    fn guid_form(guid: Uuid) -> String {
        any_case(&guid.hyphenated().to_string())
    }

    #[test]
    fn the_role_definition_pattern_names_exactly_the_built_in_roles() {
        let roles: Vec<String> = crate::authz::ROLES
            .iter()
            .map(|r| guid_form(r.id))
            .collect();
        let expected = format!("^(?:[\\s\\S]*/)?(?:{})$", roles.join("|"));
        assert_eq!(ROLE_DEFINITION_ID.pattern(), expected);
    }

    #[test]
    fn the_token_rules_are_the_lifetime_units_and_printable_names() {
        assert_eq!(EXPIRES_IN.pattern(), expires_in_pattern());
        let controls = CONTROLS;
        assert_eq!(
            TOKEN_NAME.pattern(),
            format!("^[^{controls}]*[^\\s{controls}][^{controls}]*$")
        );
        let guid = [8, 4, 4, 4, 12].map(|n| format!("[0-9a-fA-F]{{{n}}}"));
        assert_eq!(GUID.pattern(), format!("^{}$", guid.join("-")));
    }

    #[test]
    fn guids_are_hyphenated_in_either_case() {
        let g = Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap();
        for form in [
            "67e55044-10b1-426f-9247-bb680e5fe0c8",
            "67E55044-10B1-426F-9247-BB680E5FE0C8",
        ] {
            assert_eq!(parse_guid(form), Some(g), "{form}");
        }
        for bad in [
            "",
            "0",
            "67e55044-10b1-426f-9247-bb680e5fe0c",
            "67e55044-10b1-426f-9247-bb680e5fe0c8 ",
            "67e55044-10b1-426f-9247-bb680e5fe0g8",
            "67e55044-10b1-426f-9247-bb680e5fe0c8\n",
            "67e5504410b1426f9247bb680e5fe0c8",
            "{67e55044-10b1-426f-9247-bb680e5fe0c8}",
            "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
        ] {
            assert_eq!(parse_guid(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn role_definition_ids_name_a_built_in_role() {
        let reader = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
        for ok in [
            reader.to_string(),
            reader.to_uppercase(),
            format!("/subscriptions/x/providers/Microsoft.Authorization/roleDefinitions/{reader}"),
            format!("anything\nat all/{reader}"),
        ] {
            assert!(ROLE_DEFINITION_ID.matches(&ok), "{ok}");
        }
        for bad in [
            "".to_string(),
            Uuid::new_v4().to_string(),
            format!("{reader}/"),
            format!("{reader}x"),
            format!("{{{reader}}}"),
            reader.replace('-', ""),
        ] {
            assert!(!ROLE_DEFINITION_ID.matches(&bad), "{bad}");
        }
    }

    #[test]
    fn decimal_ranges_hold_exactly_the_numbers_up_to_their_maximum() {
        for max in (1..=1200).chain([3650, 87_600, 5_256_000, 315_360_000]) {
            let rule = Rule::new(format!("^{}$", decimal_up_to(max)));
            let probes = (0..=1300).chain([max - 1, max, max + 1, max * 10, max + 10]);
            for n in probes {
                assert_eq!(
                    rule.matches(&n.to_string()),
                    n >= 1 && n <= max,
                    "{n} ≤ {max}"
                );
            }
            assert!(!rule.matches(&format!("0{max}")), "no leading zero");
        }
    }

    #[test]
    fn token_names_are_printable_and_not_blank() {
        for ok in ["a", " a ", "ci deploy", "Ünïcødé", &"x".repeat(100)] {
            assert!(TOKEN_NAME.matches(ok), "{ok:?}");
        }
        for bad in [
            "",
            " ",
            "\u{3000}",
            "a\nb",
            "a\u{1c}",
            "\u{85}",
            &"x".repeat(101),
        ] {
            assert!(!TOKEN_NAME.matches(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_activity_log_filter_needs_a_real_instant() {
        let since = |f: &str| {
            ACTIVITY_LOG_FILTER
                .captures(f)
                .map(|c| c["since"].to_string())
        };
        assert_eq!(
            since("eventTimestamp ge '2026-01-02T03:04:05Z'").as_deref(),
            Some("2026-01-02T03:04:05Z")
        );
        assert_eq!(
            since(
                "eventTimestamp ge '2024-02-29T00:00:00.1234567+01:00' and eventTimestamp le 'x'"
            )
            .as_deref(),
            Some("2024-02-29T00:00:00.1234567+01:00")
        );
        assert_eq!(
            since("resourceGroupName eq 'rg' and eventTimestamp ge 2000-02-29t23:59:59z")
                .as_deref(),
            Some("2000-02-29t23:59:59z")
        );
        for bad in [
            "",
            "eventTimestamp ge '2023-02-29T00:00:00Z'",
            "eventTimestamp ge '1900-02-29T00:00:00Z'",
            "eventTimestamp ge '2026-04-31T00:00:00Z'",
            "eventTimestamp ge '2026-01-01T24:00:00Z'",
            "eventTimestamp ge '2026-12-31T23:59:60Z'",
            "eventTimestamp ge '2026-01-01 00:00:00Z'",
            "eventTimestamp ge '2026-01-01T00:00:00+24:00'",
            " eventTimestamp ge '2026-01-01T00:00:00Z'",
            "xand eventTimestamp ge '2026-01-01T00:00:00Z'",
        ] {
            assert_eq!(since(bad), None, "{bad}");
        }
        // Whatever the pattern takes, RFC 3339 parsing takes too.
        for date in [
            "0000-02-29T00:00:00Z",
            "9999-12-31T23:59:59.999999999-23:59",
        ] {
            let filter = format!("eventTimestamp ge '{date}'");
            let since = since(&filter).unwrap();
            time::OffsetDateTime::parse(&since, &time::format_description::well_known::Rfc3339)
                .unwrap();
        }
    }

    #[test]
    fn key_activity_scopes_are_a_subscription_id_or_a_resource_in_one() {
        let sub = "/subscriptions/d1d648cd-2613-4351-b076-7807c3d20c41";
        assert!(KEY_ACTIVITY_SCOPE.matches(sub));
        assert!(KEY_ACTIVITY_SCOPE.matches(&format!(
            "{sub}/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/a1"
        )));
        assert!(!KEY_ACTIVITY_SCOPE.matches(&format!("/subscriptions/{}", "0".repeat(64))));
        assert!(!KEY_ACTIVITY_SCOPE.matches(&format!("{sub}/resourceGroups/rg")));
    }

    #[test]
    fn permission_questions_name_a_scope_and_actions() {
        assert!(PERMISSION_SCOPE.matches("/subscriptions/x"));
        assert!(!PERMISSION_SCOPE.matches("subscriptions/x"));
        assert!(!PERMISSION_SCOPE.matches(&format!("/{}", "é".repeat(2048))));
        assert!(PERMISSION_ACTIONS.matches("Microsoft.CognitiveServices/accounts/listKeys/action"));
        assert!(PERMISSION_ACTIONS.matches("a,b/*,c"));
        for bad in ["", "a,", ",a", "a,,b", "a, b", "a b"] {
            assert!(!PERMISSION_ACTIONS.matches(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_oauth_scope_is_this_servers_default_scope() {
        let rule = oauth_scope_rule("https://rekey.example:8443/");
        for ok in [
            "https://rekey.example:8443/.default",
            "https://rekey.example:8443//.default",
            "https://rekey.example:8443.default",
            "openid https://rekey.example:8443/.default offline_access",
        ] {
            assert!(rule.matches(ok), "{ok}");
        }
        for bad in [
            "",
            "https://rekey.example:8443/",
            "https://rekey.example:8443/.defaults",
            "https://rekeyXexample:8443/.default",
            "xhttps://rekey.example:8443/.default",
        ] {
            assert!(!rule.matches(bad), "{bad}");
        }
    }
}
