//! Owns the management API's ARM routes (subscriptions, resource groups, resources, role
//! assignments, event subscriptions, tokens, the activity log), the path normalization that makes ARM's fixed segments
//! case-insensitive, and the small helpers those routes share.

pub mod activity_log;
pub mod event_subscriptions;
pub mod resource_groups;
pub mod resources;
pub mod role_assignments;
pub mod rotation;
pub mod scope;
pub mod subscriptions;
pub mod tokens;

use axum::http::Uri;

/// A time as ARM writes it: RFC 3339.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("an OffsetDateTime formats as RFC 3339")
}

/// ARM treats `subscriptions`, `resourceGroups`, `providers`, namespaces, types and actions as
/// case-insensitive; axum does not. This rewrites them to the canonical casing the routes use, and
/// leaves names (which keep their casing) alone.
pub fn normalize_path(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('/').collect();
    // ["", "subscriptions", sub, ("resourceGroups", rg,)? "providers", ns, type, name, action | "providers" …]
    if segments.len() < 2
        || !segments[0].is_empty()
        || !segments[1].eq_ignore_ascii_case("subscriptions")
    {
        return None;
    }
    let mut out: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
    out[1] = "subscriptions".into();
    let canon = |out: &mut Vec<String>, at: usize, words: &[&str]| {
        if let Some(seg) = segments.get(at) {
            if let Some(word) = words.iter().find(|w| w.eq_ignore_ascii_case(seg)) {
                out[at] = (*word).to_string();
            }
        }
    };
    let mut at = 3;
    if segments
        .get(3)
        .is_some_and(|s| s.eq_ignore_ascii_case("resourcegroups"))
    {
        // Azure's own spec spells it `resourcegroups` for group operations and `resourceGroups`
        // below a group; the routes follow it.
        out[3] = if segments.len() <= 5 {
            "resourcegroups"
        } else {
            "resourceGroups"
        }
        .into();
        at = 5;
    }
    // Each `providers/{namespace}/{type}/…` run, including extension resources below a resource.
    while segments
        .get(at)
        .is_some_and(|s| s.eq_ignore_ascii_case("providers"))
    {
        out[at] = "providers".into();
        let Some(ns) = segments.get(at + 1) else {
            break;
        };
        if let Some(known) = NAMESPACES.iter().find(|n| n.eq_ignore_ascii_case(ns)) {
            out[at + 1] = (*known).to_string();
        }
        let namespace = out[at + 1].clone();
        let Some(ty) = segments.get(at + 2) else {
            break;
        };
        if let Some(provider) = rekey_core::providers::lookup(&namespace, ty) {
            out[at + 2] = provider.resource_type.into();
            canon(&mut out, at + 4, resources::ACTIONS);
            canon(&mut out, at + 4, rotation::ACTIONS);
            at += 4;
            continue;
        }
        canon(
            &mut out,
            at + 2,
            &[
                "locations",
                "roleAssignments",
                "roleDefinitions",
                "eventtypes",
                "eventSubscriptions",
                "keyPolicy",
            ],
        );
        if out[at + 2] == "locations" {
            canon(&mut out, at + 4, resources::OPERATION_KINDS);
        }
        break;
    }
    Some(out.join("/"))
}

/// Namespaces whose casing is canonicalized: the catalogue's, and those of rekey's ARM extras.
static NAMESPACES: &[&str] = &[
    "Microsoft.CognitiveServices",
    "Microsoft.Quantum",
    "Microsoft.DocumentDB",
    "Microsoft.Authorization",
    "Microsoft.Insights",
    "Microsoft.EventGrid",
    "Rekey",
];

/// Applies [`normalize_path`] to a request URI, keeping its query.
pub fn normalize_uri(uri: &Uri) -> Option<Uri> {
    // Clients that join a base URL ending in `/` with a path starting with `/` (az does, for
    // `/metadata/endpoints`) send `//`; ARM treats repeated slashes as one.
    let collapsed;
    let mut path = uri.path();
    if path.contains("//") {
        collapsed = collapse_slashes(path);
        path = &collapsed;
    }
    let path = match normalize_path(path) {
        Some(p) => p,
        None if path.len() != uri.path().len() => path.to_string(),
        None => return None,
    };
    let rebuilt = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    rebuilt.parse().ok()
}

fn collapse_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_slashes_are_one() {
        let uri: Uri = "//metadata/endpoints?api-version=2022-09-01"
            .parse()
            .unwrap();
        assert_eq!(
            normalize_uri(&uri).unwrap(),
            "/metadata/endpoints?api-version=2022-09-01"
        );
        let uri: Uri = "/healthz".parse().unwrap();
        assert!(normalize_uri(&uri).is_none());
    }

    #[test]
    fn fixed_segments_are_canonicalized_and_names_kept() {
        let sub = "00000000-0000-0000-0000-000000000001";
        assert_eq!(
            normalize_path(&format!("/SUBSCRIPTIONS/{sub}/RESOURCEGROUPS/MyRG/PROVIDERS/microsoft.cognitiveservices/ACCOUNTS/MyAcct/LISTKEYS")).unwrap(),
            format!("/subscriptions/{sub}/resourceGroups/MyRG/providers/Microsoft.CognitiveServices/accounts/MyAcct/listKeys")
        );
        assert_eq!(
            normalize_path(&format!("/subscriptions/{sub}/resourceGroups/MyRG")).unwrap(),
            format!("/subscriptions/{sub}/resourcegroups/MyRG")
        );
        assert_eq!(
            normalize_path(&format!(
                "/Subscriptions/{sub}/Providers/Microsoft.CognitiveServices/Accounts"
            ))
            .unwrap(),
            format!("/subscriptions/{sub}/providers/Microsoft.CognitiveServices/accounts")
        );
        assert!(normalize_path("/healthz").is_none());
        assert_eq!(
            normalize_path(&format!("/subscriptions/{sub}/resourcegroups/rg/providers/microsoft.documentdb/databaseaccounts/a/PROVIDERS/microsoft.authorization/ROLEASSIGNMENTS/x")).unwrap(),
            format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.DocumentDB/databaseAccounts/a/providers/Microsoft.Authorization/roleAssignments/x")
        );
        assert_eq!(
            normalize_path(&format!("/subscriptions/{sub}/providers/microsoft.documentdb/LOCATIONS/West US/operationsstatus/x")).unwrap(),
            format!("/subscriptions/{sub}/providers/Microsoft.DocumentDB/locations/West US/operationsStatus/x")
        );
    }
}
