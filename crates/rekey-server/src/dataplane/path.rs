//! Owns the one rule for a data-plane call's path below its resource (`/data/{id}/{rest}`): what
//! rekeyd checks a signature over, answers about and forwards. Percent-encoded unreserved characters
//! are decoded (RFC 3986 §6.2.2.2, so `%2e` is a dot) and dot segments are resolved (§5.2.4); a
//! `..` that would climb above the resource, an encoded `/`, `\` or NUL, a literal `\` (some servers
//! take it for `/`) and a malformed `%` escape are refused. What comes out holds no dot segment, so
//! an upstream that resolves dot segments itself cannot be led out of its base path.

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPath {
    /// A `..` segment would climb above the resource.
    ClimbsAboveResource,
    /// `%2F`, `%5C` or `%00`: a separator or NUL hidden from the path's structure.
    EncodedSeparator,
    /// A literal `\` or NUL.
    Backslash,
    /// A `%` not followed by two hexadecimal digits.
    MalformedEscape,
}

impl BadPath {
    pub fn message(self) -> &'static str {
        match self {
            BadPath::ClimbsAboveResource => {
                "The request path is not allowed: a '..' segment climbs above the resource."
            }
            BadPath::EncodedSeparator => {
                "The request path is not allowed: it holds an encoded '/', '\\' or NUL (%2F, %5C, %00)."
            }
            BadPath::Backslash => "The request path is not allowed: it holds a '\\' or NUL.",
            BadPath::MalformedEscape => {
                "The request path is not allowed: a '%' is not followed by two hexadecimal digits."
            }
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_dot_segment(segment: &str) -> bool {
    segment == "." || segment == ".."
}

/// `raw` (the path below `/data/{id}/`, still percent-encoded, without the query) with its
/// unreserved characters decoded and its dot segments resolved; borrowed when nothing changes, which
/// is every path a well-behaved client sends. Empty segments are kept as they are.
pub fn resolve(raw: &str) -> Result<Cow<'_, str>, BadPath> {
    let bytes = raw.as_bytes();
    // One scan decides whether anything changes; most paths have no `%` and no dot segment.
    let mut decodes = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let (Some(high), Some(low)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(BadPath::MalformedEscape);
                };
                let decoded = high << 4 | low;
                if matches!(decoded, b'/' | b'\\' | 0) {
                    return Err(BadPath::EncodedSeparator);
                }
                decodes |= unreserved(decoded);
                i += 3;
            }
            b'\\' | 0 => return Err(BadPath::Backslash),
            _ => i += 1,
        }
    }
    let decoded: Cow<'_, str> = if decodes {
        let mut out = String::with_capacity(raw.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                // Checked above: two hex digits follow.
                let byte = hex(bytes[i + 1]).unwrap_or(0) << 4 | hex(bytes[i + 2]).unwrap_or(0);
                if unreserved(byte) {
                    out.push(char::from(byte));
                } else {
                    out.push_str(&raw[i..i + 3]);
                }
                i += 3;
            } else {
                // Copy up to the next escape in one piece (a `%` is ASCII, so this is a char
                // boundary).
                let end = raw[i..].find('%').map_or(raw.len(), |at| i + at);
                out.push_str(&raw[i..end]);
                i = end;
            }
        }
        Cow::Owned(out)
    } else {
        Cow::Borrowed(raw)
    };
    // Split by bytes: a path is short, and `str::split` sets up a memchr search per segment.
    if !decoded
        .as_bytes()
        .split(|&b| b == b'/')
        .any(|segment| segment == b"." || segment == b"..")
    {
        return Ok(decoded);
    }
    let mut kept: Vec<&str> = Vec::new();
    let mut ends_in_dots = false;
    for segment in decoded.split('/') {
        ends_in_dots = is_dot_segment(segment);
        match segment {
            "." => {}
            ".." => {
                kept.pop().ok_or(BadPath::ClimbsAboveResource)?;
            }
            _ => kept.push(segment),
        }
    }
    // `a/b/..` names the directory `a/`, as in RFC 3986's algorithm.
    if ends_in_dots {
        kept.push("");
    }
    Ok(Cow::Owned(kept.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_paths_come_back_borrowed() {
        for raw in [
            "",
            "a",
            "text/analytics/v3.1/languages",
            "a%20b",
            "x/",
            "a//b",
            "..a/b..",
        ] {
            assert!(
                matches!(resolve(raw), Ok(Cow::Borrowed(r)) if r == raw),
                "{raw}"
            );
        }
    }

    #[test]
    fn dot_segments_resolve_below_the_resource() {
        for (raw, resolved) in [
            ("a/./b", "a/b"),
            ("a/b/../c", "a/c"),
            ("a/b/..", "a/"),
            ("a/..", ""),
            ("./", ""),
            (".", ""),
            ("a/%2e%2E/b", "b"),
            ("a/.%2e/b", "b"),
            ("%41%7e%2d", "A~-"),
            ("a%20%3b", "a%20%3b"),
        ] {
            assert_eq!(resolve(raw).as_deref(), Ok(resolved), "{raw}");
        }
    }

    #[test]
    fn climbing_and_hidden_separators_are_refused() {
        for (raw, why) in [
            ("..", BadPath::ClimbsAboveResource),
            ("../tenantB/secret", BadPath::ClimbsAboveResource),
            ("a/../../b", BadPath::ClimbsAboveResource),
            ("%2e%2e/b", BadPath::ClimbsAboveResource),
            ("%2E%2E/b", BadPath::ClimbsAboveResource),
            ("..%2fb", BadPath::EncodedSeparator),
            ("%2e%2e%2fb", BadPath::EncodedSeparator),
            ("a%5cb", BadPath::EncodedSeparator),
            ("a%00", BadPath::EncodedSeparator),
            ("..\\b", BadPath::Backslash),
            ("a%", BadPath::MalformedEscape),
            ("a%2", BadPath::MalformedEscape),
            ("a%zz", BadPath::MalformedEscape),
        ] {
            assert_eq!(resolve(raw), Err(why), "{raw}");
        }
    }

    fn path() -> impl Strategy<Value = String> {
        let segment = prop_oneof![
            Just(".".to_string()),
            Just("..".to_string()),
            Just("%2e".to_string()),
            Just("%2E%2e".to_string()),
            Just(".%2e".to_string()),
            Just(String::new()),
            "[a-z.%0-9A-F]{1,4}",
        ];
        proptest::collection::vec(segment, 0..8).prop_map(|s| s.join("/"))
    }

    proptest! {
        #[test]
        fn resolved_paths_hold_no_dot_segment_never_climb_and_resolve_to_themselves(raw in path()) {
            if let Ok(resolved) = resolve(&raw) {
                prop_assert!(!resolved.split('/').any(is_dot_segment), "{raw:?} -> {resolved:?}");
                let again = resolve(&resolved);
                prop_assert_eq!(again.as_deref(), Ok(resolved.as_ref()));
                // Below the resource: the resolved path never has more `..` than segments before.
                let mut depth = 0i32;
                for segment in raw.split('/') {
                    let segment = segment.replace("%2e", ".").replace("%2E", ".");
                    match segment.as_str() {
                        "." => {}
                        ".." => depth -= 1,
                        _ => depth += 1,
                    }
                    prop_assert!(depth >= 0, "{raw:?} climbs but resolved to {resolved:?}");
                }
            }
        }

        #[test]
        fn any_text_resolves_or_is_refused_without_panicking(raw in ".*") {
            if let Ok(resolved) = resolve(&raw) {
                prop_assert!(!resolved.split('/').any(is_dot_segment));
                let again = resolve(&resolved);
                prop_assert_eq!(again.as_deref(), Ok(resolved.as_ref()));
            }
        }
    }
}
