//! `Microsoft.Quantum/workspaces`: two keys, `primary` and `secondary`, sent on the data plane in
//! `x-ms-quantum-api-key` (the azure-quantum SDK takes it from the connection string's `ApiKey`).

use super::{check_chars, NameRule, Provider, Slot};
use crate::keys::KeyFormat;

pub static WORKSPACES: Provider = Provider {
    namespace: "Microsoft.Quantum",
    resource_type: "workspaces",
    name_param: "workspaceName",
    slots: &[
        Slot {
            name: "primary",
            read_only: false,
        },
        Slot {
            name: "secondary",
            read_only: false,
        },
    ],
    key_format: KeyFormat::Tagged { tag: "qw" },
    signs_requests: false,
    key_header: Some("x-ms-quantum-api-key"),
    api_versions: &[
        "2022-01-10-preview",
        "2023-11-13-preview",
        "2025-01-01-preview",
        "2025-12-15-preview",
    ],
    name_rule: NameRule {
        pattern: "^[a-zA-Z0-9]+(-*[a-zA-Z0-9])*$",
        min_len: 2,
        max_len: 54,
        check: |name| {
            let rule = "^[a-zA-Z0-9]+(-*[a-zA-Z0-9])*$";
            check_chars(
                name,
                2,
                54,
                |c| c.is_ascii_alphanumeric(),
                |c| c.is_ascii_alphanumeric() || c == '-',
                rule,
            )?;
            if name.ends_with('-') {
                return Err(format!("it must not end with '-' ({rule})"));
            }
            Ok(())
        },
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_names_follow_the_spec_pattern() {
        for ok in ["ws", "my--ws-1", "A1"] {
            assert!((WORKSPACES.name_rule.check)(ok).is_ok(), "{ok}");
        }
        for bad in ["w", "-ws", "ws-", "ws_1", "ws.1"] {
            assert!((WORKSPACES.name_rule.check)(bad).is_err(), "{bad}");
        }
    }
}
