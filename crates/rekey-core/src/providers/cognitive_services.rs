//! `Microsoft.CognitiveServices/accounts`: two keys, `key1` and `key2`, sent on the data plane in
//! `Ocp-Apim-Subscription-Key`.

use super::{check_chars, NameRule, Provider, Slot};
use crate::keys::KeyFormat;

pub static ACCOUNTS: Provider = Provider {
    namespace: "Microsoft.CognitiveServices",
    resource_type: "accounts",
    name_param: "accountName",
    slots: &[
        Slot {
            name: "key1",
            read_only: false,
        },
        Slot {
            name: "key2",
            read_only: false,
        },
    ],
    key_format: KeyFormat::Tagged { tag: "cs" },
    signs_requests: false,
    key_header: Some("ocp-apim-subscription-key"),
    api_versions: &[
        "2016-02-01-preview",
        "2017-04-18",
        "2021-04-30",
        "2021-10-01",
        "2022-03-01",
        "2022-10-01",
        "2022-12-01",
        "2023-05-01",
        "2023-10-01-preview",
        "2024-04-01-preview",
        "2024-06-01-preview",
        "2024-10-01",
        "2025-04-01-preview",
        "2025-06-01",
        "2025-07-01-preview",
        "2025-09-01",
        "2025-10-01-preview",
        "2025-12-01",
        "2026-01-15-preview",
        "2026-03-01",
        "2026-05-15-preview",
    ],
    name_rule: NameRule {
        pattern: "^[a-zA-Z0-9][a-zA-Z0-9_.-]*$",
        min_len: 2,
        max_len: 64,
        check: |name| {
            check_chars(
                name,
                2,
                64,
                |c| c.is_ascii_alphanumeric(),
                |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'),
                "^[a-zA-Z0-9][a-zA-Z0-9_.-]*$",
            )
        },
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_follow_the_spec_pattern() {
        for ok in ["ab", "my.acct_1-x", &"a".repeat(64)] {
            assert!((ACCOUNTS.name_rule.check)(ok).is_ok(), "{ok}");
        }
        for bad in ["a", "-abc", "_abc", "has space", "ü-acct", &"a".repeat(65)] {
            assert!((ACCOUNTS.name_rule.check)(bad).is_err(), "{bad}");
        }
    }
}
