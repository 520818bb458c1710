//! Owns authorization: the built-in roles (Azure's Owner, Contributor, Reader and Monitoring Reader
//! with their well-known ids, and rekey's Key Operator and Verifier), how an assignment at a scope covers the scopes below
//! it, and the check every handler makes before it acts. A refusal is ARM's 403 `AuthorizationFailed`
//! ([`crate::state::AppState::authorize`] writes it to the audit log).

use std::net::IpAddr;

use rekey_store::{AuditRecord, Principal, RoleAssignment};
use time::OffsetDateTime;
use uuid::{uuid, Uuid};

use crate::error::ApiError;

/// A built-in role: Azure action patterns it allows, and those it excludes.
pub struct Role {
    pub id: Uuid,
    pub name: &'static str,
    pub description: &'static str,
    pub actions: &'static [&'static str],
    pub not_actions: &'static [&'static str],
}

pub static ROLES: &[Role] = &[
    Role {
        id: uuid!("8e3af657-a8ff-443c-a75c-2fe8c4bcb635"),
        name: "Owner",
        description:
            "Grants full access to manage all resources and keys, including assigning roles.",
        actions: &["*"],
        not_actions: &[],
    },
    Role {
        id: uuid!("b24988ac-6180-42a0-ab88-20f7382dd24c"),
        name: "Contributor",
        description:
            "Grants full access to manage all resources and keys, but not to assign roles.",
        actions: &["*"],
        not_actions: &[
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
        ],
    },
    Role {
        id: uuid!("5d1d1c4e-7a0b-4f3e-9b8a-2c6e4f1a0b7d"),
        name: "Key Operator",
        description:
            "Reads the resources in scope, lists and regenerates their keys; changes nothing else.",
        // `*/read`: whoever rotates a resource's keys must be able to find the resource.
        actions: &[
            "*/read",
            "*/listKeys/action",
            "*/regenerateKey/action",
            "*/readonlykeys/action",
            "*/listConnectionStrings/action",
        ],
        not_actions: &[],
    },
    Role {
        id: uuid!("acdd72a7-3385-48ef-bd42-f606fba81ae7"),
        name: "Reader",
        description: "View all resources, but never their keys.",
        actions: &["*/read"],
        not_actions: &[],
    },
    Role {
        id: uuid!("3b9e6c2f-1d4a-4c8e-a7f0-9e2d5b6c8a1f"),
        name: "Verifier",
        description: "May call /verify for keys of resources in scope.",
        actions: &["Rekey/keys/verify/action"],
        not_actions: &[],
    },
    Role {
        // Azure's id for Monitoring Reader. Azure's grants `*/read`; here it is narrowed to what a
        // rekey node has to monitor, its metrics, so a scraper's token cannot read resources.
        id: uuid!("43d0d8ad-25c7-4714-9337-8ba259a9fe05"),
        name: "Monitoring Reader",
        description: "Reads this node's metrics (GET /metrics); nothing else.",
        actions: &[crate::metrics::METRICS_READ],
        not_actions: &[],
    },
];

/// The action `/verify` needs on the resource a key belongs to.
pub const VERIFY_ACTION: &str = "Rekey/keys/verify/action";

pub fn role(id: &Uuid) -> Option<&'static Role> {
    ROLES.iter().find(|r| &r.id == id)
}

pub fn role_by_name(name: &str) -> Option<&'static Role> {
    ROLES.iter().find(|r| r.name.eq_ignore_ascii_case(name))
}

/// Azure action patterns: `*` matches any run of characters; case does not matter.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let (p, a) = (pattern.to_ascii_lowercase(), action.to_ascii_lowercase());
    match p.split_once('*') {
        None => p == a,
        Some((prefix, rest)) => {
            let Some(tail) = a.strip_prefix(prefix) else {
                return false;
            };
            if rest.is_empty() {
                return true;
            }
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && action_matches(rest, &tail[i..]))
        }
    }
}

impl Role {
    pub fn allows(&self, action: &str) -> bool {
        self.actions.iter().any(|p| action_matches(p, action))
            && !self.not_actions.iter().any(|p| action_matches(p, action))
    }
}

/// Whether an assignment at `assigned` covers `scope` (the same scope or one below it).
pub fn covers(assigned: &str, scope: &str) -> bool {
    let (a, s) = (
        assigned.trim_end_matches('/').to_ascii_lowercase(),
        scope.trim_end_matches('/').to_ascii_lowercase(),
    );
    a.is_empty() || s == a || s.starts_with(&format!("{a}/"))
}

/// The authenticated caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub assignments: Vec<RoleAssignment>,
    pub request_id: String,
    pub source: IpAddr,
}

impl Caller {
    pub fn can(&self, action: &str, scope: &str) -> bool {
        self.principal.is_owner
            || self.assignments.iter().any(|a| {
                covers(&a.scope, scope) && role(&a.role_id).is_some_and(|r| r.allows(action))
            })
    }

    /// Whether some role of the caller, at any scope, allows `action`.
    pub fn can_anywhere(&self, action: &str) -> bool {
        self.principal.is_owner
            || self
                .assignments
                .iter()
                .any(|a| role(&a.role_id).is_some_and(|r| r.allows(action)))
    }

    /// Whether any of the caller's assignments reaches `scope`: at it, above it or below it.
    pub fn sees(&self, scope: &str) -> bool {
        self.principal.is_owner
            || self
                .assignments
                .iter()
                .any(|a| covers(&a.scope, scope) || covers(scope, &a.scope))
    }

    pub fn record(&self, action: &str, scope: &str, result: &str) -> AuditRecord {
        AuditRecord {
            at: OffsetDateTime::now_utc(),
            principal_id: self.principal.id.to_string(),
            action: action.to_string(),
            scope: scope.to_string(),
            source: self.source.to_string(),
            request_id: self.request_id.clone(),
            result: result.to_string(),
        }
    }

    pub(crate) fn denied(&self, action: &str, scope: &str) -> ApiError {
        let id = self.principal.id;
        ApiError::Forbidden {
            code: "AuthorizationFailed",
            message: format!(
                "The client '{id}' with object id '{id}' does not have authorization to perform action '{action}' \
                 over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials."
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_patterns_follow_azure_wildcards() {
        assert!(action_matches(
            "*",
            "Microsoft.CognitiveServices/accounts/read"
        ));
        assert!(action_matches(
            "*/read",
            "Microsoft.CognitiveServices/accounts/read"
        ));
        assert!(!action_matches(
            "*/read",
            "Microsoft.CognitiveServices/accounts/listKeys/action"
        ));
        assert!(action_matches(
            "Microsoft.Authorization/*/Write",
            "microsoft.authorization/roleAssignments/write"
        ));
        assert!(!action_matches(
            "Microsoft.Authorization/*/Write",
            "Microsoft.Resources/subscriptions/resourceGroups/write"
        ));
    }

    #[test]
    fn roles_allow_what_the_issue_says() {
        let [owner, contributor, operator, reader, verifier] = [
            ROLES[0].id,
            ROLES[1].id,
            ROLES[2].id,
            ROLES[3].id,
            ROLES[4].id,
        ]
        .map(|id| role(&id).unwrap());
        let list_keys = "Microsoft.CognitiveServices/accounts/listKeys/action";
        let assign = "Microsoft.Authorization/roleAssignments/write";
        assert!(owner.allows(assign) && owner.allows(list_keys));
        assert!(contributor.allows(list_keys) && !contributor.allows(assign));
        assert!(
            operator.allows(list_keys)
                && operator.allows("Microsoft.DocumentDB/databaseAccounts/regenerateKey/action")
        );
        // It reads what it rotates, and changes nothing but keys.
        assert!(operator.allows("Microsoft.CognitiveServices/accounts/read"));
        assert!(!operator.allows("Microsoft.CognitiveServices/accounts/write"));
        assert!(!operator.allows("Microsoft.CognitiveServices/accounts/delete"));
        assert!(!operator.allows(assign));
        assert!(
            reader.allows("Microsoft.CognitiveServices/accounts/read") && !reader.allows(list_keys)
        );
        assert!(!reader.allows("Microsoft.DocumentDB/databaseAccounts/readonlykeys/action"));
        assert!(
            verifier.allows(VERIFY_ACTION)
                && !verifier.allows("Microsoft.CognitiveServices/accounts/read")
        );
    }

    #[test]
    fn monitoring_reader_reads_metrics_and_nothing_else() {
        let monitoring = role_by_name("Monitoring Reader").unwrap();
        assert_eq!(monitoring.id, uuid!("43d0d8ad-25c7-4714-9337-8ba259a9fe05"));
        let metrics = crate::metrics::METRICS_READ;
        assert!(monitoring.allows(metrics));
        for action in [
            "Microsoft.CognitiveServices/accounts/read",
            "Microsoft.CognitiveServices/accounts/listKeys/action",
            "Microsoft.Authorization/roleAssignments/read",
            VERIFY_ACTION,
        ] {
            assert!(!monitoring.allows(action), "{action}");
        }
        // Whoever may read every resource may read the node's metrics too; a verifier may not.
        for (name, allowed) in [
            ("Owner", true),
            ("Contributor", true),
            ("Reader", true),
            ("Key Operator", true),
            ("Verifier", false),
        ] {
            assert_eq!(
                role_by_name(name).unwrap().allows(metrics),
                allowed,
                "{name}"
            );
        }
    }

    #[test]
    fn scopes_cover_what_is_below_them() {
        let sub = "/subscriptions/00000000-0000-0000-0000-000000000001";
        assert!(covers(
            sub,
            &format!("{sub}/resourceGroups/RG/providers/X/y/z")
        ));
        assert!(covers(
            &format!("{sub}/resourceGroups/rg"),
            &format!("{sub}/resourcegroups/RG/providers/X/y/z")
        ));
        assert!(!covers(
            &format!("{sub}/resourceGroups/rg"),
            &format!("{sub}/resourceGroups/rg2")
        ));
        assert!(!covers(
            &format!("{sub}/resourceGroups/rg/x"),
            &format!("{sub}/resourceGroups/rg")
        ));
    }
}
