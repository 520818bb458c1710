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

/// Whether a request may be served with a read-only key: reads, and POSTs that are queries.
pub fn is_read(method: &str, is_query: bool) -> bool {
    matches!(method, "GET" | "HEAD") || (method == "POST" && is_query)
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

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".*") {
            let _ = parse_authorization(&s);
            let _ = parse_date(&s);
            let (t, link) = resource_parts(&s);
            prop_assert!(t.len() <= s.len() && link.len() <= s.len());
        }
    }
}
