//! Owns the state every handler shares ([`AppState`]) and what is done with it on every route:
//! authorizing a caller (writing the refusal to the audit log), auditing reads, the token
//! audience and issuer; and ARM's request ids (`x-ms-request-id` and its companions).

use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use rekey_api::RenderContext;
use rekey_store::{AuditRecord, Store};
use uuid::Uuid;

use crate::authz::Caller;
use crate::error::ApiError;

/// What every handler shares: the store, how answers are rendered, the data plane's index, the
/// token issuer and the web page's sessions.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub ctx: Arc<RenderContext>,
    pub tenant_id: Uuid,
    pub openapi: Arc<serde_json::Value>,
    pub dataplane: Arc<crate::dataplane::DataPlane>,
    pub issuer: Arc<crate::oauth::TokenIssuer>,
    /// The web page's sign-in sessions (`web::session`).
    pub sessions: Arc<crate::web::session::Sessions>,
    /// Who may read `GET /metrics` (`--metrics-access`).
    pub metrics_access: crate::metrics::Access,
}

impl AppState {
    /// Allows the call, or refuses it with 403 and records the refusal. Returns the audit record to
    /// write with the change.
    pub async fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        scope: &str,
    ) -> Result<AuditRecord, ApiError> {
        if caller.can(action, scope) {
            return Ok(caller.record(action, scope, "Succeeded"));
        }
        self.store
            .append_audit(&caller.record(action, scope, "Denied"))
            .await?;
        Err(caller.denied(action, scope))
    }

    /// Records a completed read (a key read) before its answer leaves; without the record, no answer.
    pub async fn audit_read(&self, record: &AuditRecord) -> Result<(), ApiError> {
        self.store.append_audit(record).await.map_err(|e| {
            tracing::error!(error = %e, "could not write an audit record; refusing the read");
            ApiError::Unavailable
        })
    }

    /// The audience rekey's access tokens carry: the management endpoint, as az uses it.
    pub fn token_audience(&self) -> String {
        format!("{}/", self.ctx.public_url)
    }

    pub fn token_issuer_url(&self) -> String {
        format!("{}/{}/v2.0", self.ctx.public_url, self.tenant_id)
    }
}

/// The request's `x-ms-request-id`, for handlers and audit records.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-request-id");
pub(crate) const CORRELATION_ID: HeaderName =
    HeaderName::from_static("x-ms-correlation-request-id");
pub(crate) const CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-client-request-id");

/// A request id in UUID form: a random per-process prefix and a counter. Request ids need to be
/// unique, not secret, so this avoids an OS random-number call per request.
/// Each thread takes counter values in blocks, so threads do not contend for one counter on
/// every request.
pub(crate) fn next_request_id() -> Uuid {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    const BLOCK: u64 = 1024;
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static NEXT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
    }
    let prefix = *PREFIX.get_or_init(|| Uuid::new_v4().as_u64_pair().0);
    let n = NEXT.with(|next| {
        let (mut at, mut end) = next.get();
        if at == end {
            at = COUNTER.fetch_add(BLOCK, Ordering::Relaxed);
            end = at + BLOCK;
        }
        next.set((at + 1, end));
        at
    });
    Uuid::from_u64_pair(prefix, n)
}

pub fn new_request_id() -> String {
    next_request_id().to_string()
}

/// A new request id as a header value, formatted on the stack.
pub fn request_id_header() -> HeaderValue {
    let mut buf = Uuid::encode_buffer();
    let text = next_request_id().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(text).expect("a UUID is a header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_across_threads() {
        let take = || (0..3000).map(|_| next_request_id()).collect::<Vec<_>>();
        let other = std::thread::spawn(take);
        let mut ids = take();
        ids.extend(other.join().unwrap());
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count);
    }
}
