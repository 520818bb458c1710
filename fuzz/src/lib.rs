//! Owns what each fuzz target checks, one function per target, over the parsers that read outside
//! input: Cosmos DB's authorization header, string-to-sign, resource path and date; the key format
//! check; ARM resource ids and path normalization; every wire type's JSON bodies; and the data
//! plane's resolution of a call's path before it is checked and forwarded. Each function
//! must not panic on any input, and asserts the properties a parser promises (round trips,
//! idempotence, invariants of what it accepts), so the fuzzer hunts for wrong answers, not only
//! crashes. The workspace replays the seeds and every saved crash input through these same
//! functions in a plain test (crates/rekey-server/tests/fuzz_replay.rs), which is what CI runs.

use rekey_core::cosmos_auth;
use rekey_core::keys::KeyFormat;
use rekey_core::ResourceId;

/// One target's checks.
pub type Target = fn(&[u8]);

/// The targets by name, for the replay test.
pub const TARGETS: &[(&str, Target)] = &[
    ("cosmos_auth", cosmos_auth),
    ("key_format", key_format),
    ("resource_id", resource_id),
    ("arm_path", arm_path),
    ("wire_bodies", wire_bodies),
    ("gateway_path", gateway_path),
];

const RFC1123: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// `Authorization` header, `x-ms-date`, request path, and the string to sign built from them. The
/// input is split on newlines into header, date, verb and path.
pub fn cosmos_auth(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let header = parts.next().unwrap_or_default();
    let date = parts.next().unwrap_or_default();
    let verb = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();

    if let Ok(parsed) = cosmos_auth::parse_authorization(header) {
        assert!(
            !parsed.signature.is_empty(),
            "an accepted header has a signature"
        );
    }
    if let Ok(when) = cosmos_auth::parse_date(date) {
        // What parses must print back to a date that parses to the same instant.
        let printed = when
            .format(RFC1123)
            .expect("a parsed date formats as RFC 1123");
        assert_eq!(
            cosmos_auth::parse_date(&printed).ok(),
            Some(when),
            "{printed}"
        );
    }
    let (resource_type, link) = cosmos_auth::resource_parts(path);
    assert!(
        !resource_type.contains('/'),
        "a resource type is one segment"
    );
    assert!(
        link.is_empty() || (!link.starts_with('/') && !link.ends_with('/')),
        "a link has no outer slashes: {link:?}"
    );
    let signed = cosmos_auth::string_to_sign(verb, &resource_type, &link, date);
    assert!(signed.ends_with("\n\n"));
    assert!(signed.contains(&link), "the link is signed as it is");
    // The first byte's low bit stands for "this POST is a query".
    let _ = cosmos_auth::is_read(verb, data.first().is_some_and(|b| b & 1 == 0));
    // A read-only key's query is at a feed, and never a stored procedure, trigger or function's.
    if cosmos_auth::is_query(path, Some("true"), Some("application/query+json")) {
        let segments = path.trim_matches('/').split('/').count();
        assert!(segments % 2 == 1, "a query names a feed: {path:?}");
        assert!(
            !["sprocs", "triggers", "udfs"]
                .iter()
                .any(|t| t.eq_ignore_ascii_case(&resource_type)),
            "a query may not run code: {path:?}"
        );
    }
    // The content type's parameters never make another media type a query's.
    if cosmos_auth::is_query("dbs", Some("true"), Some(header)) {
        let media_type = header.split(';').next().unwrap_or_default().trim();
        assert!(
            media_type.eq_ignore_ascii_case("application/query+json"),
            "{header:?}"
        );
    }
}

/// A presented key against each format: never a panic, and whatever passes has the format's shape.
pub fn key_format(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for tag in ["cs", "qw"] {
        let format = KeyFormat::Tagged { tag };
        if format.check(text).is_ok() {
            assert!(text.starts_with(&format!("rk{tag}_")), "{text}");
            // `rk` + tag + `_`, 36 body characters, 6 checksum characters.
            assert_eq!(text.len(), 3 + tag.len() + 42, "{text}");
        }
    }
    let cosmos = KeyFormat::RandomBase64 { len: 64 };
    if cosmos.check(text).is_ok() {
        assert_eq!(text.len(), 88, "{text}");
    }
}

/// `ResourceId::parse`: whatever parses prints back to an id that parses to the same id.
pub fn resource_id(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = ResourceId::parse(text) {
        let printed = id.to_string();
        let again = ResourceId::parse(&printed).expect("a printed resource id parses");
        assert_eq!(again.to_string(), printed);
        assert!(
            printed.eq_ignore_ascii_case(text.trim_end_matches('/')),
            "{printed} vs {text}"
        );
    }
}

/// `normalize_path`: it changes only the case of fixed segments, and is idempotent.
pub fn arm_path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(normalized) = rekey_server::routes::normalize_path(text) {
        assert!(
            normalized.eq_ignore_ascii_case(text),
            "only letter case changes: {text:?} -> {normalized:?}"
        );
        assert_eq!(
            rekey_server::routes::normalize_path(&normalized).as_deref(),
            Some(normalized.as_str()),
            "normalizing twice changes nothing"
        );
    }
}

/// Every wire type's create, patch and regenerate bodies: any JSON is either refused with an
/// `InvalidInput` or mapped to a spec the rest of the server can use.
pub fn wire_bodies(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for mapping in rekey_api::mapping::MAPPINGS {
        if let Ok(spec) = mapping.parse_create(&body) {
            assert!(
                !spec.location.trim().is_empty(),
                "a created resource has a location"
            );
            let _ = spec.upstream();
            let _ = spec.key_auth_enabled();
            if let Ok(patched) = mapping.parse_patch(&spec, &body) {
                let _ = patched.upstream();
            }
        }
        let base = rekey_core::ResourceSpec {
            location: "westus".into(),
            kind: None,
            sku: None,
            tags: Default::default(),
            settings: Default::default(),
        };
        if let Ok(patched) = mapping.parse_patch(&base, &body) {
            assert_eq!(
                patched.location, base.location,
                "a patch keeps the location"
            );
            let _ = patched.upstream();
        }
        if let Ok(slots) = mapping.parse_regenerate(&body) {
            assert!(!slots.is_empty(), "a regeneration names a slot");
            for (i, slot) in slots.iter().enumerate() {
                assert!(
                    !slots[..i].iter().any(|s| std::ptr::eq(*s, *slot)),
                    "no slot twice"
                );
                assert!(
                    mapping
                        .provider()
                        .slots
                        .iter()
                        .any(|s| std::ptr::eq(s, *slot)),
                    "a slot of this type"
                );
            }
        }
    }
}

/// `dataplane::path::resolve` over a call's path below its resource: what it accepts holds no dot
/// segment and no escape it would decode, resolves to itself, and never climbs above the resource.
pub fn gateway_path(data: &[u8]) {
    use rekey_server::dataplane::path::resolve;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(resolved) = resolve(text) else {
        return;
    };
    assert!(
        !resolved.split('/').any(|s| s == "." || s == ".."),
        "a dot segment is left: {text:?} -> {resolved:?}"
    );
    let lower = resolved.to_ascii_lowercase();
    for hidden in ["%2e", "%2f", "%5c", "%00", "\\"] {
        assert!(
            !lower.contains(hidden),
            "{hidden} is left: {text:?} -> {resolved:?}"
        );
    }
    assert_eq!(
        resolve(&resolved).as_deref(),
        Ok(resolved.as_ref()),
        "resolving twice changes nothing"
    );
    // The input, its dots decoded, never goes above where it starts.
    let mut depth = 0i64;
    for segment in text.split('/') {
        match segment.to_ascii_lowercase().replace("%2e", ".").as_str() {
            "." => {}
            ".." => depth -= 1,
            _ => depth += 1,
        }
        assert!(depth >= 0, "{text:?} climbs, yet resolved to {resolved:?}");
    }
}
