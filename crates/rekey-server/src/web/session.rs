//! Owns the web page's sign-in sessions: a pasted management token becomes a random session id in an
//! HttpOnly, SameSite=Strict cookie (Secure when rekeyd's public URL is HTTPS), so the token itself
//! never sits in the browser's storage or in a URL. Called by `auth::require_principal` when a
//! request has no `Authorization` header, and by the `/web/session` handlers.
//!
//! Sessions live in memory, keyed by the SHA-256 digest of their id (so the map holds nothing a
//! cookie could be rebuilt from). A restart signs everyone out, and behind several nodes a session
//! is known only to the node that made it; both are acceptable for a page a person signs in to for a
//! rotation. A session ends on sign-out, after [`SESSION_LIFETIME`], or as soon as its token is
//! revoked or expires: the principal is looked up again on every request, as for a bearer token.
//!
//! Cookie-authenticated requests that may change something (every method but GET and HEAD) must
//! carry the session's CSRF token in `x-csrf-token`. SameSite=Strict already keeps other sites'
//! requests from carrying the cookie; the token is the second lock, for browsers or proxies that
//! do not honour SameSite.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::header::COOKIE;
use axum::http::{HeaderMap, HeaderValue, Method};
use rekey_core::keys::random_base62;
use rekey_store::crypto::token_digest;
use uuid::Uuid;

use crate::error::ApiError;

/// The cookie's name.
pub const COOKIE_NAME: &str = "rekey_session";
/// The request header a cookie-authenticated write must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts from sign-in, whatever happens in between: long enough for a working
/// session, short enough that a forgotten browser tab does not stay signed in for days.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// The most sessions one principal keeps; its next sign-in ends its own oldest. A token can thus
/// never push another principal's sessions out, however often it signs in.
pub const MAX_SESSIONS_PER_PRINCIPAL: usize = 20;
/// The most sessions kept at once (about 200 bytes each), so sign-ins cannot grow memory without
/// bound. When it is reached, new sign-ins are refused until sessions end, rather than ending
/// someone else's: filling it takes `MAX_SESSIONS / MAX_SESSIONS_PER_PRINCIPAL` distinct tokens,
/// which only owners can make.
pub const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Clone)]
pub struct Session {
    pub principal_id: Uuid,
    pub csrf_token: String,
    pub started: Instant,
    pub expires: Instant,
}

/// The sessions of this node.
pub struct Sessions {
    by_digest: Mutex<HashMap<[u8; 32], Session>>,
    /// Add `Secure` to the cookie: rekeyd is reached over HTTPS.
    secure: bool,
}

impl Sessions {
    pub fn new(secure: bool) -> Self {
        Self {
            by_digest: Mutex::new(HashMap::new()),
            secure,
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        // A panic while holding the lock cannot leave the map half-changed (every change is one
        // insert or remove), so a poisoned lock is still safe to use.
        self.by_digest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a session for `principal_id`; returns its id (for the cookie only) and the session,
    /// or `None` when [`MAX_SESSIONS`] sessions of other principals are live.
    pub fn start(&self, principal_id: Uuid) -> Option<(String, Session)> {
        self.start_within(principal_id, MAX_SESSIONS)
    }

    fn start_within(&self, principal_id: Uuid, max_sessions: usize) -> Option<(String, Session)> {
        let now = Instant::now();
        let mut map = self.map();
        map.retain(|_, s| s.expires > now);
        let mut own: Vec<([u8; 32], Instant)> = map
            .iter()
            .filter(|(_, s)| s.principal_id == principal_id)
            .map(|(k, s)| (*k, s.started))
            .collect();
        if own.len() >= MAX_SESSIONS_PER_PRINCIPAL {
            own.sort_by_key(|(_, started)| *started);
            for (key, _) in &own[..=own.len() - MAX_SESSIONS_PER_PRINCIPAL] {
                map.remove(key);
            }
        } else if map.len() >= max_sessions {
            return None;
        }
        let id = random_base62(43);
        let session = Session {
            principal_id,
            csrf_token: random_base62(43),
            started: now,
            expires: now + SESSION_LIFETIME,
        };
        map.insert(token_digest(&id), session.clone());
        Some((id, session))
    }

    /// The live session named by the request's cookie, if any.
    pub fn find(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie_value(headers, COOKIE_NAME)?;
        let digest = token_digest(id);
        let mut map = self.map();
        match map.get(&digest) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(&digest);
                None
            }
            None => None,
        }
    }

    /// Ends the session named by the request's cookie; true if there was one.
    pub fn end(&self, headers: &HeaderMap) -> bool {
        cookie_value(headers, COOKIE_NAME)
            .map(|id| self.map().remove(&token_digest(id)).is_some())
            .unwrap_or(false)
    }

    /// Ends the session with this id (one just started whose sign-in then failed).
    pub fn forget(&self, id: &str) {
        self.map().remove(&token_digest(id));
    }

    /// Ends every session of a principal whose token no longer works.
    pub fn end_all_of(&self, principal_id: Uuid) {
        self.map().retain(|_, s| s.principal_id != principal_id);
    }

    /// The `Set-Cookie` value that hands `id` to the browser.
    pub fn cookie(&self, id: &str) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let max_age = SESSION_LIFETIME.as_secs();
        HeaderValue::from_str(&format!(
            "{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
        ))
        .expect("a base62 id is a header value")
    }

    /// The `Set-Cookie` value that makes the browser forget the cookie.
    pub fn clearing_cookie(&self) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
        ))
        .expect("a fixed string is a header value")
    }
}

/// The first cookie named `name` in the request's `Cookie` headers.
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Whether `method` may change something, and so needs the CSRF token when the cookie authenticates.
pub fn needs_csrf(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuses a write that does not carry the session's CSRF token.
pub fn check_csrf(session: &Session, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if !needs_csrf(method) {
        return Ok(());
    }
    let sent = headers.get(CSRF_HEADER).map(HeaderValue::as_bytes);
    match sent {
        Some(sent) if constant_time_eq(sent, session.csrf_token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::Forbidden {
            code: "InvalidCsrfToken",
            message: format!("The {CSRF_HEADER} header does not match this session's CSRF token."),
        }),
        None => Err(ApiError::Forbidden {
            code: "CsrfTokenMissing",
            message: format!(
                "A request authenticated by the session cookie that may change something must carry the {CSRF_HEADER} header (GET /web/session gives its value)."
            ),
        }),
    }
}

/// Compares without stopping at the first difference, so the time taken tells nothing about how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; rekey_session=abc ; b=2")]);
        assert_eq!(cookie_value(&h, COOKIE_NAME), Some("abc"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "rekey_session=xyz")]);
        assert_eq!(cookie_value(&h, COOKIE_NAME), Some("xyz"));
        assert_eq!(
            cookie_value(&headers(&[("cookie", "rekey_session=")]), COOKIE_NAME),
            None
        );
        assert_eq!(cookie_value(&HeaderMap::new(), COOKIE_NAME), None);
    }

    #[test]
    fn a_started_session_is_found_by_its_cookie_until_it_ends() {
        let sessions = Sessions::new(false);
        let principal = Uuid::new_v4();
        let (id, session) = sessions.start(principal).unwrap();
        let h = headers(&[("cookie", &format!("{COOKIE_NAME}={id}"))]);
        let found = sessions.find(&h).expect("the session is live");
        assert_eq!(found.principal_id, principal);
        assert_eq!(found.csrf_token, session.csrf_token);
        assert!(sessions
            .find(&headers(&[("cookie", "rekey_session=guess")]))
            .is_none());
        assert!(sessions.end(&h));
        assert!(sessions.find(&h).is_none());
    }

    #[test]
    fn ending_a_principals_sessions_ends_only_theirs() {
        let sessions = Sessions::new(false);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (id_a, _) = sessions.start(a).unwrap();
        let (id_b, _) = sessions.start(b).unwrap();
        sessions.end_all_of(a);
        assert!(sessions
            .find(&headers(&[("cookie", &format!("{COOKIE_NAME}={id_a}"))]))
            .is_none());
        assert!(sessions
            .find(&headers(&[("cookie", &format!("{COOKIE_NAME}={id_b}"))]))
            .is_some());
    }

    fn cookie_of(id: &str) -> HeaderMap {
        headers(&[("cookie", &format!("{COOKIE_NAME}={id}"))])
    }

    #[test]
    fn ten_thousand_sign_ins_of_one_principal_end_only_its_own_oldest_sessions() {
        let sessions = Sessions::new(false);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (id_a, _) = sessions.start(a).unwrap();
        let ids_b: Vec<String> = (0..MAX_SESSIONS)
            .map(|_| {
                sessions
                    .start(b)
                    .expect("a principal may always sign in again")
                    .0
            })
            .collect();
        assert!(
            sessions.find(&cookie_of(&id_a)).is_some(),
            "A is still signed in"
        );
        let (kept, dropped) = ids_b.split_at(MAX_SESSIONS - MAX_SESSIONS_PER_PRINCIPAL);
        assert!(kept
            .iter()
            .all(|id| sessions.find(&cookie_of(id)).is_none()));
        assert!(dropped
            .iter()
            .all(|id| sessions.find(&cookie_of(id)).is_some()));
        assert_eq!(sessions.map().len(), 1 + MAX_SESSIONS_PER_PRINCIPAL);
    }

    #[test]
    fn a_full_table_refuses_new_principals_and_ends_no_one() {
        let sessions = Sessions::new(false);
        let first = Uuid::new_v4();
        let (id_first, _) = sessions.start_within(first, 3).unwrap();
        for _ in 0..2 {
            sessions.start_within(Uuid::new_v4(), 3).unwrap();
        }
        assert!(sessions.start_within(Uuid::new_v4(), 3).is_none());
        assert!(sessions.find(&cookie_of(&id_first)).is_some());
        // One who holds sessions may still sign in: it ends its own oldest once at its cap, and
        // below the cap it is refused like anyone else while the table is full.
        assert!(sessions.start_within(first, 3).is_none());
        assert_eq!(sessions.map().len(), 3);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_only_over_tls() {
        let plain = Sessions::new(false).cookie("x");
        let plain = plain.to_str().unwrap();
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        let tls = Sessions::new(true).cookie("x");
        assert!(tls.to_str().unwrap().ends_with("; Secure"));
    }

    #[test]
    fn writes_need_the_matching_csrf_token_and_reads_do_not() {
        let sessions = Sessions::new(false);
        let (_, session) = sessions.start(Uuid::new_v4()).unwrap();
        let none = HeaderMap::new();
        assert!(check_csrf(&session, &Method::GET, &none).is_ok());
        assert!(check_csrf(&session, &Method::POST, &none).is_err());
        let wrong = headers(&[(CSRF_HEADER, "nope")]);
        assert!(check_csrf(&session, &Method::DELETE, &wrong).is_err());
        let right = headers(&[(CSRF_HEADER, &session.csrf_token)]);
        assert!(check_csrf(&session, &Method::POST, &right).is_ok());
    }
}
