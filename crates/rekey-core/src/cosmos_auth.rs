//! Owns the pure parts of Cosmos DB's master-key authorization: parsing the `Authorization` header
//! (`type=master&ver=1.0&sig=…`, URL-encoded), deriving the resource type and link from a request
//! path, and building the string a client signs. The data plane does the HMAC; nothing here does I/O.

use std::borrow::Cow;

use time::OffsetDateTime;

/// Why an authorization header could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CosmosAuthError {
    #[error("the authorization header is not valid percent-encoded UTF-8")]
    Encoding,
    #[error("the authorization header lacks type, ver or sig")]
    Incomplete,
    #[error("only master-key authorization (type=master, ver=1.0) is accepted")]
    Unsupported,
    #[error("x-ms-date is missing or not an RFC 1123 date")]
    BadDate,
}

/// A parsed `type=master&ver=1.0&sig=…` header: the base64 signature it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterAuthorization {
    pub signature: String,
}

fn percent_decode(raw: &str) -> Result<Cow<'_, str>, CosmosAuthError> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| CosmosAuthError::Encoding)
}

/// Parses the `Authorization` header value. Clients URL-encode the whole value; some do not.
pub fn parse_authorization(raw: &str) -> Result<MasterAuthorization, CosmosAuthError> {
    let decoded = percent_decode(raw)?;
    let (mut kind, mut version, mut signature) = (None, None, None);
    for part in decoded.split('&') {
        match part.split_once('=') {
            Some(("type", v)) => kind = Some(v),
            Some(("ver", v)) => version = Some(v),
            // The signature is base64 and may itself contain '='.
            Some(("sig", v)) => signature = Some(v),
            _ => {}
        }
    }
    let (Some(kind), Some(version), Some(signature)) = (kind, version, signature) else {
        return Err(CosmosAuthError::Incomplete);
    };
    if kind != "master" || version != "1.0" || signature.is_empty() {
        return Err(CosmosAuthError::Unsupported);
    }
    Ok(MasterAuthorization {
        signature: signature.to_string(),
    })
}

/// The resource type and resource link a request path (below the account endpoint) names, as Cosmos
/// signs them: `dbs/db1/colls/c1/docs` is a feed of type `docs` with link `dbs/db1/colls/c1`;
/// `dbs/db1/colls/c1` is an item of type `colls` with link `dbs/db1/colls/c1`; the empty path is the
/// account itself.
pub fn resource_parts(path: &str) -> (String, String) {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.len() {
        0 => (String::new(), String::new()),
        n if n % 2 == 1 => (segments[n - 1].to_string(), segments[..n - 1].join("/")),
        n => (segments[n - 2].to_string(), segments.join("/")),
    }
}

/// `lower(verb)\nlower(resourceType)\nresourceLink\nlower(date)\n\n`.
pub fn string_to_sign(verb: &str, resource_type: &str, resource_link: &str, date: &str) -> String {
    format!(
        "{}\n{}\n{}\n{}\n\n",
        verb.to_lowercase(),
        resource_type.to_lowercase(),
        resource_link,
        date.to_lowercase()
    )
}

const RFC1123: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// Parses an `x-ms-date` value (`Tue, 01 Nov 1994 08:12:31 GMT`, any letter case).
pub fn parse_date(raw: &str) -> Result<OffsetDateTime, CosmosAuthError> {
    // Normalize case so `tue, 01 nov …` parses too; the format wants `Tue`, `Nov`, `GMT`.
    let normalized: String = raw
        .split(' ')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) if word.eq_ignore_ascii_case("gmt") => {
                    let _ = first;
                    "GMT".to_string()
                }
                Some(first) => {
                    first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
                }
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    time::PrimitiveDateTime::parse(&normalized, RFC1123)
        .map(|t| t.assume_utc())
        .map_err(|_| CosmosAuthError::BadDate)
}

/// Whether a request may be served with a read-only key: reads, and POSTs that are queries (see
/// [`is_query`]).
pub fn is_read(method: &str, is_query: bool) -> bool {
    matches!(method, "GET" | "HEAD") || (method == "POST" && is_query)
}

/// The resource types whose feeds a read-only key may query. Stored procedures, triggers and
/// user-defined functions are left out: a POST under them runs code, which may write.
const QUERYABLE_FEEDS: &[&str] = &[
    "dbs",
    "colls",
    "docs",
    "users",
    "permissions",
    "pkranges",
    "offers",
    "clientencryptionkeys",
    "conflicts",
    "attachments",
];

/// Whether a POST is a query as Cosmos DB serves one to a read-only key: `x-ms-documentdb-isquery:
/// true`, a content type whose media type is exactly `application/query+json` (any letter case,
/// well-formed parameters allowed), at a feed (`dbs/db1/colls/c1/docs`: an odd number of segments)
/// whose every type segment is a queryable feed, so nothing under `sprocs`, `triggers` or `udfs`.
/// `path` is the decoded path below the account, dot segments already resolved.
pub fn is_query(path: &str, is_query_header: Option<&str>, content_type: Option<&str>) -> bool {
    let flagged = is_query_header.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    flagged && content_type.is_some_and(is_query_media_type) && is_queryable_feed(path)
}

fn is_queryable_feed(path: &str) -> bool {
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    let segments = path.split('/');
    let mut count = 0;
    for (i, segment) in segments.enumerate() {
        count += 1;
        if segment.is_empty() {
            return false;
        }
        if i % 2 == 0
            && !QUERYABLE_FEEDS
                .iter()
                .any(|feed| feed.eq_ignore_ascii_case(segment))
        {
            return false;
        }
    }
    count % 2 == 1
}

/// `application/query+json`, optionally with RFC 9110 parameters (`; name=value`, the value a token
/// or a quoted string).
fn is_query_media_type(value: &str) -> bool {
    let (media_type, mut parameters) = match value.split_once(';') {
        Some((media_type, rest)) => (media_type, Some(rest)),
        None => (value, None),
    };
    if !media_type
        .trim_matches([' ', '\t'])
        .eq_ignore_ascii_case("application/query+json")
    {
        return false;
    }
    while let Some(rest) = parameters {
        let rest = rest.trim_start_matches([' ', '\t']);
        let Some((name, after)) = rest.split_once('=') else {
            return false;
        };
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return false;
        }
        let (value_ok, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted_string_end(quoted) {
                Some(end) => (true, &quoted[end..]),
                None => return false,
            }
        } else {
            let end = after.find(';').unwrap_or(after.len());
            let token = after[..end].trim_end_matches([' ', '\t']);
            (
                !token.is_empty() && token.bytes().all(is_token_byte),
                &after[end..],
            )
        };
        if !value_ok {
            return false;
        }
        let next = next.trim_start_matches([' ', '\t']);
        parameters = match next.strip_prefix(';') {
            Some(rest) => Some(rest),
            None if next.is_empty() => None,
            None => return false,
        };
    }
    true
}

/// The index just past the closing quote of a quoted string whose opening quote was already read.
fn quoted_string_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            b'\t' | b' '..=b'~' => i += 1,
            _ => return None,
        }
    }
    None
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_encoded_and_plain_headers() {
        let plain = "type=master&ver=1.0&sig=abc+/=";
        let encoded = "type%3Dmaster%26ver%3D1.0%26sig%3Dabc%2B%2F%3D";
        for raw in [plain, encoded] {
            assert_eq!(parse_authorization(raw).unwrap().signature, "abc+/=");
        }
        assert_eq!(
            parse_authorization("type=aad&ver=1.0&sig=x"),
            Err(CosmosAuthError::Unsupported)
        );
        assert_eq!(
            parse_authorization("type=master&ver=1.0"),
            Err(CosmosAuthError::Incomplete)
        );
        assert_eq!(
            parse_authorization("%FF%FE"),
            Err(CosmosAuthError::Encoding)
        );
    }

    #[test]
    fn resource_parts_follow_cosmos_rules() {
        assert_eq!(resource_parts(""), ("".into(), "".into()));
        assert_eq!(resource_parts("/dbs"), ("dbs".into(), "".into()));
        assert_eq!(resource_parts("dbs/Db1"), ("dbs".into(), "dbs/Db1".into()));
        assert_eq!(
            resource_parts("dbs/db1/colls/c1/docs"),
            ("docs".into(), "dbs/db1/colls/c1".into())
        );
        assert_eq!(
            resource_parts("dbs/db1/colls/c1/docs/d1/"),
            ("docs".into(), "dbs/db1/colls/c1/docs/d1".into())
        );
    }

    #[test]
    fn string_to_sign_lowers_all_but_the_link() {
        assert_eq!(
            string_to_sign(
                "GET",
                "Colls",
                "dbs/ToDoList/colls/Items",
                "Thu, 27 Apr 2017 00:51:12 GMT"
            ),
            "get\ncolls\ndbs/ToDoList/colls/Items\nthu, 27 apr 2017 00:51:12 gmt\n\n"
        );
    }

    #[test]
    fn dates_parse_in_any_case() {
        let a = parse_date("Thu, 27 Apr 2017 00:51:12 GMT").unwrap();
        let b = parse_date("thu, 27 apr 2017 00:51:12 gmt").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.unix_timestamp(), 1493254272);
        assert!(parse_date("yesterday").is_err());
    }

    #[test]
    fn only_a_flagged_query_at_a_queryable_feed_is_a_query() {
        let ct = Some("application/query+json");
        let yes = Some("True");
        for path in [
            "dbs",
            "dbs/db1/colls",
            "/dbs/db1/colls/c1/docs",
            "dbs/d/colls/c/docs/",
            "offers",
        ] {
            assert!(is_query(path, yes, ct), "{path}");
        }
        for path in [
            "",
            "dbs/db1",
            "dbs/d/colls/c/sprocs",
            "dbs/d/colls/c/sprocs/s1",
            "dbs/d/colls/c/sprocs/s1/docs",
            "dbs/d/colls/c/triggers",
            "dbs/d/colls/c/udfs",
            "dbs/d/colls/c/docs/d1",
            "dbs//colls",
            "dbs/d/colls/c/operations/partitionkeydelete",
        ] {
            assert!(!is_query(path, yes, ct), "{path}");
        }
        let docs = "dbs/d/colls/c/docs";
        assert!(!is_query(docs, None, ct), "the isquery header is needed");
        assert!(!is_query(docs, Some("false"), ct));
        assert!(!is_query(docs, yes, None), "so is the content type");
        assert!(!is_query(docs, yes, Some("application/json")));
    }

    #[test]
    fn the_query_media_type_is_exact_and_its_parameters_well_formed() {
        for good in [
            "application/query+json",
            "Application/Query+JSON",
            "application/query+json; charset=utf-8",
            "application/query+json;charset=\"utf-8\"",
            "application/query+json ; a=b ;c=d",
        ] {
            assert!(is_query_media_type(good), "{good}");
        }
        for bad in [
            "application/query+jsonx",
            "application/query+json-patch",
            "application/query+json,application/json",
            "application/query+json; charset",
            "application/query+json; =x",
            "application/query+json; a=",
            "application/query+json; a=\"unterminated",
            "application/query+json; a=b c",
            "application/query+json;;",
            "application/json",
            "",
        ] {
            assert!(!is_query_media_type(bad), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".*") {
            let _ = parse_authorization(&s);
            let _ = parse_date(&s);
            let _ = is_query(&s, Some("true"), Some(&s));
            let (t, link) = resource_parts(&s);
            prop_assert!(t.len() <= s.len() && link.len() <= s.len());
        }
    }
}
