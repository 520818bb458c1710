//! `Microsoft.DocumentDB/databaseAccounts` (Cosmos DB): four keys, two of them read-only. Keys are 64
//! random bytes in base64, because Cosmos clients decode the key to sign each request with HMAC-SHA256.

use super::{check_chars, NameRule, Provider, Slot};
use crate::keys::KeyFormat;

pub static DATABASE_ACCOUNTS: Provider = Provider {
    namespace: "Microsoft.DocumentDB",
    resource_type: "databaseAccounts",
    name_param: "accountName",
    slots: &[
        Slot {
            name: "primary",
            read_only: false,
        },
        Slot {
            name: "secondary",
            read_only: false,
        },
        Slot {
            name: "primaryReadonly",
            read_only: true,
        },
        Slot {
            name: "secondaryReadonly",
            read_only: true,
        },
    ],
    key_format: KeyFormat::RandomBase64 { len: 64 },
    signs_requests: true,
    key_header: None,
    api_versions: &[
        "2021-04-15",
        "2021-10-15",
        "2022-05-15",
        "2022-08-15",
        "2022-11-15",
        "2023-04-15",
        "2023-09-15",
        "2023-11-15",
        "2024-05-15",
        "2024-08-15",
        "2024-11-15",
        "2025-04-15",
        "2025-10-15",
        "2026-03-15",
    ],
    name_rule: NameRule {
        pattern: "^[a-z0-9-]{3,44}$",
        min_len: 3,
        max_len: 44,
        check: |name| {
            let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
            check_chars(
                name,
                3,
                44,
                allowed,
                allowed,
                "^[a-z0-9-]{3,44}$ (lower-case letters, digits and '-')",
            )
        },
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_are_lower_case_3_to_44() {
        for ok in ["abc", "docdb-test", &"a".repeat(44)] {
            assert!((DATABASE_ACCOUNTS.name_rule.check)(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "Upper", "under_score", &"a".repeat(45)] {
            assert!((DATABASE_ACCOUNTS.name_rule.check)(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn two_of_the_four_slots_are_read_only() {
        let ro: Vec<_> = DATABASE_ACCOUNTS
            .slots
            .iter()
            .filter(|s| s.read_only)
            .map(|s| s.name)
            .collect();
        assert_eq!(ro, ["primaryReadonly", "secondaryReadonly"]);
    }
}
