//! Owns ARM's request ids: the `x-ms-request-id` every answer carries, its companions
//! (`x-ms-correlation-request-id`, `x-ms-client-request-id`), and making new ids cheaply.

use axum::http::{HeaderName, HeaderValue};
use uuid::Uuid;

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
