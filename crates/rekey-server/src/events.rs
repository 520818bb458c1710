//! Owns sending events to webhooks: the validation handshake a new event subscription's endpoint
//! must answer, the background task that delivers what the store's outbox holds, the envelopes
//! (Event Grid's schema or CloudEvents 1.0), the `x-rekey-signature` HMAC, the retry schedule, and
//! the key-age sweep.
//!
//! Delivery contract. An event is in the outbox exactly when the change it reports committed (the
//! store writes both in one transaction), so nothing here can lose or invent one. The task claims
//! due deliveries with a lease (several nodes never hold one delivery at once), POSTs each, and
//! records the outcome: 2xx removes it; anything else retries after `base * 2^n` (capped at an
//! hour) until the subscription's attempts or time to live (Event Grid's 30 and 24 hours) run out,
//! and then the delivery is kept as a dead letter. A node that dies mid-delivery leaves the lease to
//! run out, and another claim sends it again: delivery is at least once, and receivers dedupe by
//! the event id. One node sends at most [`PER_ENDPOINT`] deliveries to one subscription at a time.
//! Requests never wait for any of this: writers only [`Events::wake`] the task.

use std::sync::Arc;
use std::time::Duration;

use rekey_store::events::{rfc3339, StoredEvent};
use rekey_store::{Delivery, DeliveryOutcome, Store};
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::sync::Notify;
use uuid::Uuid;

/// How long a claimed delivery is this node's: longer than a whole batch can take (each endpoint's
/// share of [`BATCH`], [`PER_ENDPOINT`] at a time, each within [`DELIVERY_TIMEOUT`]: 8 waves of 30 s),
/// so a delivery in flight is never claimed by another node. It is also how long the deliveries a
/// crashed node had claimed wait before another node sends them.
const LEASE: Duration = Duration::from_secs(300);
/// How long an endpoint has to answer a delivery or the handshake (Event Grid waits 30 s).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// Deliveries claimed at once by one node.
const BATCH: i64 = 32;
/// Deliveries one node sends to one subscription at the same time: a receiver with a small
/// accept queue is not flooded (refused connections would count as failed attempts).
const PER_ENDPOINT: usize = 4;
/// The longest wait between two attempts (Event Grid's schedule levels off at an hour).
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);
/// How long an endpoint has to accept a connection: an address that never answers fails fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the validation handshake may take; the PUT that creates a subscription waits for it.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an endpoint's answer to the handshake is read.
const MAX_HANDSHAKE_ANSWER: usize = 64 * 1024;

/// What became of one delivery attempt, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryResult {
    Delivered,
    /// Failed, and will be tried again.
    Retried,
    DeadLettered,
}

impl DeliveryResult {
    /// The metric label: `delivered`, `retried` or `dead_lettered`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retried => "retried",
            Self::DeadLettered => "dead_lettered",
        }
    }
}

/// Where delivery reports what it does (`rekey_event_deliveries_total{result}` and
/// `rekey_event_outbox_depth`); give one to [`Events::with_metrics`].
pub trait EventMetrics: Send + Sync {
    /// One delivery attempt ended.
    fn delivery(&self, result: DeliveryResult);
    /// Deliveries waiting in the outbox (every node's), read each time the outbox is polled.
    fn outbox_depth(&self, depth: i64);
    /// Key slots whose current key is past its maximum age, read after each key-age sweep.
    fn keys_overdue(&self, keys: i64);
}

/// The delivery settings and the handle that wakes the delivery task.
pub struct Events {
    wake: Notify,
    client: reqwest::Client,
    /// Lease owner name of this process.
    node: String,
    retry_base: Duration,
    poll: Duration,
    metrics: Option<Arc<dyn EventMetrics>>,
}

impl Events {
    pub fn new(retry_base: Duration, poll: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(DELIVERY_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // A webhook answers where it was registered; a redirect is a failed attempt.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the webhook client's settings are valid");
        Self {
            wake: Notify::new(),
            client,
            node: Uuid::new_v4().to_string(),
            retry_base,
            poll,
            metrics: None,
        }
    }

    pub fn with_metrics(mut self, metrics: Arc<dyn EventMetrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Tells the delivery task that events may have committed; it never blocks the caller.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The delay before the attempt after `attempts` failed ones: `base * 2^(attempts-1)`, at most
    /// an hour.
    fn retry_delay(&self, attempts: i64) -> Duration {
        let doublings = attempts.clamp(1, 20) as u32 - 1;
        self.retry_base
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(MAX_RETRY_DELAY)
    }

    /// The validation handshake: POSTs a `Microsoft.EventGrid.SubscriptionValidationEvent` to
    /// `endpoint`; true only if it answered 200 with `{"validationResponse": <the code>}`.
    pub async fn handshake(&self, endpoint: &str, topic: &str) -> bool {
        let code = Uuid::new_v4().to_string().to_ascii_uppercase();
        let body = json!([{
            "id": Uuid::new_v4().to_string(),
            "topic": topic,
            "subject": "",
            "data": { "validationCode": code },
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "eventTime": rfc3339(OffsetDateTime::now_utc()),
            "metadataVersion": "1",
            "dataVersion": "2",
        }]);
        let sent = self
            .client
            .post(endpoint)
            .header("content-type", "application/json")
            .header("aeg-event-type", "SubscriptionValidation")
            .timeout(HANDSHAKE_TIMEOUT)
            .body(body.to_string())
            .send()
            .await;
        let Ok(mut response) = sent else {
            return false;
        };
        if response.status() != reqwest::StatusCode::OK {
            return false;
        }
        let mut answer = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if answer.len() + chunk.len() <= MAX_HANDSHAKE_ANSWER => {
                    answer.extend_from_slice(&chunk)
                }
                Ok(None) => break,
                _ => return false,
            }
        }
        serde_json::from_slice::<Value>(&answer)
            .ok()
            .and_then(|v| v.get("validationResponse").cloned())
            .is_some_and(|v| v.as_str() == Some(code.as_str()))
    }

    /// Sends one claimed delivery and says what became of it.
    async fn attempt(&self, delivery: &Delivery) -> DeliveryOutcome {
        let (body, content_type) = envelope(&delivery.event, &delivery.target.delivery_schema);
        let body = body.to_string();
        let sent = self
            .client
            .post(&delivery.target.endpoint_url)
            .header("content-type", content_type)
            .header("aeg-event-type", "Notification")
            .header("aeg-subscription-name", delivery.target.name.to_uppercase())
            .header("aeg-delivery-count", delivery.attempts.to_string())
            .header("aeg-data-version", "1")
            .header("aeg-metadata-version", "1")
            .header(
                "x-rekey-signature",
                sign(delivery.secret.expose(), body.as_bytes()),
            )
            .body(body)
            .send()
            .await;
        let (error, retryable) = match sent {
            Ok(r) if r.status().is_success() => return DeliveryOutcome::Delivered,
            // Event Grid gives up at once on these: the request itself is refused.
            Ok(r) if matches!(r.status().as_u16(), 400 | 413) => {
                (format!("the endpoint answered {}", r.status()), false)
            }
            Ok(r) => (format!("the endpoint answered {}", r.status()), true),
            // The error names the URL, which is the subscriber's and not a secret of rekey's; its
            // query (which may hold a code) is dropped.
            Err(e) => (
                format!("the endpoint could not be reached: {}", e.without_url()),
                true,
            ),
        };
        let made = delivery.attempts + 1;
        let next = OffsetDateTime::now_utc() + self.retry_delay(made);
        let expires =
            delivery.event.event_time + time::Duration::minutes(delivery.target.ttl_minutes);
        let reason = if !retryable {
            "DeliveryRefused"
        } else if made >= delivery.target.max_attempts {
            "MaxDeliveryAttemptsExceeded"
        } else if next > expires {
            "TimeToLiveExceeded"
        } else {
            return DeliveryOutcome::Retry { at: next, error };
        };
        DeliveryOutcome::Dead {
            reason: reason.to_string(),
            error,
        }
    }

    fn report(&self, outcome: &DeliveryOutcome) {
        let Some(metrics) = &self.metrics else { return };
        metrics.delivery(match outcome {
            DeliveryOutcome::Delivered => DeliveryResult::Delivered,
            DeliveryOutcome::Retry { .. } => DeliveryResult::Retried,
            DeliveryOutcome::Dead { .. } => DeliveryResult::DeadLettered,
        });
    }
}

/// The hex HMAC-SHA256 of `body` under the subscription's signing secret.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    hex::encode(ring::hmac::sign(&key, body).as_ref())
}

/// A new signing secret: 32 random bytes, hex.
pub fn new_signing_secret() -> rekey_core::Secret {
    use ring::rand::SecureRandom as _;
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    ring::rand::SystemRandom::new()
        .fill(bytes.as_mut())
        .expect("the system random source works");
    rekey_core::Secret::new(hex::encode(bytes.as_ref()))
}

/// The topic of an event about a resource of ARM subscription `sub`.
fn topic(sub: &str) -> String {
    format!("/subscriptions/{sub}")
}

/// The event as Event Grid's schema writes it (one object; deliveries send an array of them).
pub fn event_grid_event(event: &StoredEvent) -> Value {
    json!({
        "id": event.id.to_string(),
        "topic": topic(&event.subscription),
        "subject": event.subject,
        "eventType": event.event_type,
        "eventTime": rfc3339(event.event_time),
        "data": event.data,
        "dataVersion": "1",
        "metadataVersion": "1",
    })
}

/// The body and content type of a delivery in `schema`: Event Grid's array of events, or one
/// structured CloudEvents 1.0 event.
fn envelope(event: &StoredEvent, schema: &str) -> (Value, &'static str) {
    if schema == CLOUD_EVENTS {
        let body = json!({
            "specversion": "1.0",
            "id": event.id.to_string(),
            "source": topic(&event.subscription),
            "subject": event.subject,
            "type": event.event_type,
            "time": rfc3339(event.event_time),
            "datacontenttype": "application/json",
            "data": event.data,
        });
        (body, "application/cloudevents+json; charset=utf-8")
    } else {
        (json!([event_grid_event(event)]), "application/json")
    }
}

/// The delivery schemas a subscription may ask for.
pub const EVENT_GRID_SCHEMA: &str = "EventGridSchema";
pub const CLOUD_EVENTS: &str = "CloudEventSchemaV1_0";

/// Starts the delivery task and the key-age sweep.
pub fn spawn(store: Arc<dyn Store>, events: Arc<Events>, sweep_every: Duration) {
    let deliverer = events.clone();
    let outbox = store.clone();
    tokio::spawn(async move {
        let mut polled = tokio::time::Instant::now();
        loop {
            let claimed = match outbox.claim_deliveries(&deliverer.node, LEASE, BATCH).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the event outbox");
                    Vec::new()
                }
            };
            let full = claimed.len() as i64 == BATCH;
            let mut sending = tokio::task::JoinSet::new();
            let mut endpoints = std::collections::HashMap::new();
            for delivery in claimed {
                let (events, store) = (deliverer.clone(), outbox.clone());
                let turn = endpoints
                    .entry(delivery.target.id)
                    .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(PER_ENDPOINT)))
                    .clone();
                sending.spawn(async move {
                    let _turn = turn.acquire_owned().await;
                    let outcome = events.attempt(&delivery).await;
                    events.report(&outcome);
                    if let DeliveryOutcome::Dead { reason, error } = &outcome {
                        tracing::warn!(event = %delivery.event.id, subscription = %delivery.target.name, reason, error, "dead-lettered an event");
                    }
                    let finished = store
                        .finish_delivery(
                            &delivery.event.id,
                            &delivery.target.id,
                            &events.node,
                            &outcome,
                        )
                        .await;
                    if let Err(e) = finished {
                        // The lease runs out and the delivery is sent again.
                        tracing::warn!(error = %e, "could not record an event delivery");
                    }
                });
            }
            while sending.join_next().await.is_some() {}
            if full {
                continue;
            }
            if let Some(metrics) = &deliverer.metrics {
                if polled.elapsed() >= deliverer.poll {
                    polled = tokio::time::Instant::now();
                    if let Ok(depth) = outbox.outbox_depth().await {
                        metrics.outbox_depth(depth);
                    }
                }
            }
            let _ = tokio::time::timeout(deliverer.poll, deliverer.wake.notified()).await;
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(sweep_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match store.sweep_key_ages(OffsetDateTime::now_utc()).await {
                Ok(overdue) if !overdue.is_empty() => {
                    tracing::info!(keys = overdue.len(), "keys passed their maximum age");
                    events.wake();
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not check key ages"),
            }
            if let Some(metrics) = &events.metrics {
                if let Ok(keys) = store.overdue_keys().await {
                    metrics.keys_overdue(keys);
                }
            }
        }
    });
}

/// Whether `url` may receive events: `https://` with a host, or `http://` to a loopback address
/// (tests and sidecars on the same machine). `Err` says why not.
pub fn check_endpoint(url: &str) -> Result<(), &'static str> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "is not a URL")?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("has no host");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not hold credentials");
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let host = parsed.host_str().unwrap_or_default();
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || bare
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(())
            } else {
                Err("must be https:// (http:// only to a loopback address)")
            }
        }
        _ => Err("must be https:// (http:// only to a loopback address)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_https_or_loopback_http() {
        for good in [
            "https://hooks.example.com/rekey?code=1",
            "http://127.0.0.1:9000/hook",
            "http://[::1]:80/",
            "http://localhost:8080/x",
        ] {
            assert!(check_endpoint(good).is_ok(), "{good}");
        }
        for bad in [
            "http://hooks.example.com/",
            "http://10.0.0.1/",
            "ftp://127.0.0.1/",
            "https://user:pw@example.com/",
            "not a url",
            "http://127.0.0.1.example.com/",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retries_double_from_the_base_up_to_an_hour() {
        let events = Events::new(Duration::from_secs(10), Duration::from_secs(1));
        assert_eq!(events.retry_delay(1), Duration::from_secs(10));
        assert_eq!(events.retry_delay(2), Duration::from_secs(20));
        assert_eq!(events.retry_delay(4), Duration::from_secs(80));
        assert_eq!(events.retry_delay(30), MAX_RETRY_DELAY);
    }

    #[test]
    fn the_signature_is_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
