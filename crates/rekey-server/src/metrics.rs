//! Owns rekeyd's Prometheus metrics: the counters and gauges every part of the server updates, and
//! `GET /metrics`, which renders them in the OpenMetrics text format (Prometheus's own exposition
//! format, what `prometheus-client` writes) for a caller `--metrics-access` admits.
//!
//! The data plane is the hot path, so what it counts costs a few relaxed atomic additions on a
//! cache line its thread rarely shares: counters are kept per (type, result) in [`SHARDS`] shards,
//! each thread adding to its own, and summed only when scraped. Its duration histogram has fixed
//! buckets of atomic counts, and only one call in [`TIMED_EVERY`] per thread is timed, because
//! reading the clock twice cost more on this kind of machine than everything else counted here
//! (see `docs/operations.md`). Nothing on the request path takes a lock; the registry is built at
//! scrape time and reads the atomics then ([`Collector`]).
//!
//! Metrics from other parts (regenerations, key age, event delivery) are set through the functions
//! here, so their owners need not know how they are exposed. No metric carries a resource id, a
//! subscription, a key or a token: labels are resource types, operation ids, results and statuses.

use std::cell::Cell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use rekey_core::{Provider, CATALOGUE};

use crate::authz::{covers, role, Caller};
use crate::dataplane::DataPlane;
use crate::error::ApiError;
use crate::state::AppState;

/// The Azure action that reading metrics needs (Azure Monitor's own). Monitoring Reader allows
/// only this; Owner, Contributor, Key Operator and Reader allow it through `*` or `*/read`.
pub const METRICS_READ: &str = "Microsoft.Insights/metrics/read";

/// Who may read `GET /metrics` (`--metrics-access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Access {
    /// A caller on this host without a token, anyone else with a token allowed to read metrics.
    #[default]
    LoopbackOrToken,
    /// Only a caller on this host, without a token.
    Loopback,
    /// Only a caller with a token allowed to read metrics, wherever it calls from.
    Token,
    /// Nobody: `/metrics` answers 404.
    Off,
}

/// What became of a data-plane call: the `result` label of `rekey_dataplane_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Authenticated, and answered or forwarded.
    Ok,
    /// No valid key (or a Cosmos DB signature out of date).
    Unauthorized,
    /// A valid key that may not do this: key authentication off for the resource, or a read-only
    /// key writing.
    Forbidden,
    /// The client address had too many failed checks (429).
    Throttled,
    /// A key retired by rotation, presented after its grace period.
    Retired,
    /// A key disabled by its owner.
    Disabled,
    /// No resource is served at the path's id.
    NotFound,
    /// A path or body the data plane refuses (400, 413).
    BadRequest,
    /// The key store cannot confirm the index is current (503).
    Unavailable,
    /// The resource's upstream did not answer, or its certificate is not trusted (502).
    UpstreamFailed,
}

impl Outcome {
    const ALL: [Outcome; 10] = [
        Outcome::Ok,
        Outcome::Unauthorized,
        Outcome::Forbidden,
        Outcome::Throttled,
        Outcome::Retired,
        Outcome::Disabled,
        Outcome::NotFound,
        Outcome::BadRequest,
        Outcome::Unavailable,
        Outcome::UpstreamFailed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Forbidden => "forbidden",
            Outcome::Throttled => "throttled",
            Outcome::Retired => "retired",
            Outcome::Disabled => "disabled",
            Outcome::NotFound => "not_found",
            Outcome::BadRequest => "bad_request",
            Outcome::Unavailable => "unavailable",
            Outcome::UpstreamFailed => "upstream_failed",
        }
    }
}

const RESULTS: usize = Outcome::ALL.len();
/// Resource types the counters have room for: the catalogue's, then one for calls whose type is
/// not known (no such resource). A unit test checks the catalogue fits.
const TYPES: usize = 8;
/// Thread shards of the data-plane counters: enough that the runtime's worker threads rarely
/// share one.
pub const SHARDS: usize = 16;
/// One data-plane call in this many (per thread) is timed for the duration histogram.
pub const TIMED_EVERY: u32 = 16;
/// Upper bounds of the duration histogram's buckets, in seconds (then +Inf). A self-answered call
/// takes tens of microseconds; a forwarded one, its upstream's time.
const BUCKETS: [f64; 14] = [
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.5, 2.5,
];

/// One thread shard of the data plane's counters, on cache lines of its own.
#[repr(align(128))]
struct Shard {
    calls: [AtomicU64; TYPES * RESULTS],
    /// Timed calls per bucket (not cumulative; the last is +Inf).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    timed_nanos: AtomicU64,
}

impl Shard {
    const fn new() -> Self {
        Shard {
            calls: [const { AtomicU64::new(0) }; TYPES * RESULTS],
            buckets: [const { AtomicU64::new(0) }; BUCKETS.len() + 1],
            timed_nanos: AtomicU64::new(0),
        }
    }
}

static DATA_PLANE: [Shard; SHARDS] = [const { Shard::new() }; SHARDS];
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard, and how many calls it has seen since it last timed one.
    static THREAD: Cell<(usize, u32)> = const { Cell::new((usize::MAX, 0)) };
}

fn shard() -> &'static Shard {
    let index = THREAD.with(|t| {
        let (mut index, seen) = t.get();
        if index == usize::MAX {
            index = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
            t.set((index, seen));
        }
        index
    });
    &DATA_PLANE[index]
}

fn type_index(provider: Option<&Provider>) -> usize {
    provider
        .and_then(|p| CATALOGUE.iter().position(|c| std::ptr::eq(*c, p)))
        .unwrap_or(CATALOGUE.len())
}

/// Counts one data-plane call of `provider`'s type (`None`: no known resource) as `outcome`.
#[inline]
pub fn data_plane_call(provider: Option<&Provider>, outcome: Outcome) {
    let at = type_index(provider) * RESULTS + outcome as usize;
    shard().calls[at].fetch_add(1, Ordering::Relaxed);
}

/// A data-plane call's timer: `Some` on the calls that are timed (one in [`TIMED_EVERY`]).
#[inline]
pub fn start_call() -> Option<Instant> {
    let due = THREAD.with(|t| {
        let (index, seen) = t.get();
        let due = seen + 1 >= TIMED_EVERY;
        t.set((index, if due { 0 } else { seen + 1 }));
        due
    });
    due.then(Instant::now)
}

/// Ends a call started by [`start_call`].
#[inline]
pub fn end_call(started: Option<Instant>) {
    if let Some(started) = started {
        observe(started.elapsed());
    }
}

fn observe(elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    let bucket = BUCKETS
        .iter()
        .position(|&upper| seconds <= upper)
        .unwrap_or(BUCKETS.len());
    let shard = shard();
    shard.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    shard
        .timed_nanos
        .fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
}

/// Metrics set outside the data plane, where a lock-free counter per label set is not needed.
struct Others {
    management: Family<[(&'static str, String); 2], Counter>,
    regenerations: Family<[(&'static str, String); 1], Counter>,
    keys_overdue: Gauge,
    event_deliveries: Family<[(&'static str, String); 1], Counter>,
    event_outbox_depth: Gauge,
}

static OTHERS: LazyLock<Others> = LazyLock::new(|| Others {
    management: Family::default(),
    regenerations: Family::default(),
    keys_overdue: Gauge::default(),
    event_deliveries: Family::default(),
    event_outbox_depth: Gauge::default(),
});

/// Counts one management call: the route table's operation id, and the answer's status.
pub fn management_call(operation: &str, status: u16) {
    OTHERS
        .management
        .get_or_create(&[
            ("operation", operation.to_string()),
            ("status", status.to_string()),
        ])
        .inc();
}

/// Counts one acknowledged key regeneration of a resource of `provider`'s type.
pub fn regenerated(provider: &Provider) {
    OTHERS
        .regenerations
        .get_or_create(&[("type", provider.type_name())])
        .inc();
}

/// Sets how many keys are older than the key-age policy allows.
pub fn set_keys_overdue(keys: u64) {
    OTHERS
        .keys_overdue
        .set(i64::try_from(keys).unwrap_or(i64::MAX));
}

/// Counts one event delivery attempt by its result (`delivered`, `failed`, `dropped`, …).
pub fn event_delivered(result: &str) {
    OTHERS
        .event_deliveries
        .get_or_create(&[("result", result.to_string())])
        .inc();
}

/// Sets how many events wait in the outbox.
pub fn set_event_outbox_depth(events: u64) {
    OTHERS
        .event_outbox_depth
        .set(i64::try_from(events).unwrap_or(i64::MAX));
}

/// Reads the data plane's atomics, and its index, when scraped.
struct DataPlaneCollector(Arc<DataPlane>);

impl std::fmt::Debug for DataPlaneCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataPlaneCollector")
    }
}

impl Collector for DataPlaneCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let sum = |read: &dyn Fn(&Shard) -> u64| DATA_PLANE.iter().map(read).sum::<u64>();
        let mut calls = encoder.encode_descriptor(
            "rekey_dataplane_requests",
            "Data-plane calls by resource type and result.",
            None,
            MetricType::Counter,
        )?;
        let types = CATALOGUE
            .iter()
            .map(|p| p.type_name())
            .chain(["unknown".to_string()]);
        for (t, type_name) in types.enumerate() {
            for outcome in Outcome::ALL {
                let at = t * RESULTS + outcome as usize;
                let count = sum(&|s| s.calls[at].load(Ordering::Relaxed));
                let labels = [("type", type_name.as_str()), ("result", outcome.label())];
                ConstCounter::new(count).encode(calls.encode_family(&labels)?)?;
            }
        }

        let mut cumulative = Vec::with_capacity(BUCKETS.len() + 1);
        for (i, upper) in BUCKETS.iter().chain([&f64::INFINITY]).enumerate() {
            cumulative.push((*upper, sum(&|s| s.buckets[i].load(Ordering::Relaxed))));
        }
        let count = cumulative.iter().map(|(_, n)| n).sum();
        let seconds = sum(&|s| s.timed_nanos.load(Ordering::Relaxed)) as f64 / 1e9;
        let unit = Unit::Seconds;
        encoder
            .encode_descriptor(
                "rekey_dataplane_request_duration",
                &format!(
                    "Time to check and answer a data-plane call (to the upstream's answer \
                     headers when forwarded); one call in {TIMED_EVERY} per thread is timed."
                ),
                Some(&unit),
                MetricType::Histogram,
            )?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                seconds,
                count,
                &cumulative,
                None,
            )?;

        let keys = i64::try_from(self.0.index.len()).unwrap_or(i64::MAX);
        ConstGauge::new(keys).encode(encoder.encode_descriptor(
            "rekey_index_keys",
            "Key digests in the data plane's in-memory index: current keys and recently replaced ones.",
            None,
            MetricType::Gauge,
        )?)?;

        ConstGauge::new(self.0.index.lag().as_secs_f64()).encode(encoder.encode_descriptor(
            "rekey_change_feed_lag",
            "How far behind the change feed the key index may be: 0 on a single node; with \
             several nodes, the time since the index last confirmed holding every committed change.",
            Some(&unit),
            MetricType::Gauge,
        )?)?;
        Ok(())
    }
}

/// The text of every metric, as of now.
pub fn render(dataplane: Arc<DataPlane>) -> String {
    let mut registry = Registry::default();
    let others = &*OTHERS;
    registry.register(
        "rekey_management_requests",
        "Management API calls by operation id and status.",
        others.management.clone(),
    );
    registry.register(
        "rekey_regenerations",
        "Acknowledged key regenerations by resource type.",
        others.regenerations.clone(),
    );
    registry.register(
        "rekey_keys_overdue",
        "Keys older than the key-age policy allows.",
        others.keys_overdue.clone(),
    );
    registry.register(
        "rekey_event_deliveries",
        "Event delivery attempts by result.",
        others.event_deliveries.clone(),
    );
    registry.register(
        "rekey_event_outbox_depth",
        "Events waiting in the outbox to be delivered.",
        others.event_outbox_depth.clone(),
    );
    registry.register_collector(Box::new(DataPlaneCollector(dataplane)));
    let mut text = String::with_capacity(8 * 1024);
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("encoding into a String cannot fail");
    text
}

/// Whether the call comes from this host itself: from a loopback address, and not relayed by a
/// proxy (a proxy on this host would make every client it relays look local).
fn from_this_host(peer: IpAddr, request: &Request) -> bool {
    let relayed = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|name| request.headers().contains_key(*name));
    peer.to_canonical().is_loopback() && !relayed
}

/// Whether `caller` may read metrics: the owner, or a role allowing [`METRICS_READ`] assigned at a
/// whole subscription. Metrics are the node's, not a subscription's, so a role on one resource
/// group or resource is not enough.
fn may_read(caller: &Caller) -> bool {
    caller.principal.is_owner
        || caller.assignments.iter().any(|a| {
            let whole_subscription = a.scope.trim_end_matches('/').split('/').count() == 3
                && covers("/subscriptions", &a.scope);
            whole_subscription && role(&a.role_id).is_some_and(|r| r.allows(METRICS_READ))
        })
}

/// `GET /metrics`.
pub async fn serve(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    request: Request,
) -> Response {
    let access = state.metrics_access;
    if access == Access::Off {
        return ApiError::NotFound {
            code: "NotFound",
            message: "Metrics are turned off on this node (--metrics-access off).".into(),
        }
        .into_response();
    }
    let local = from_this_host(peer.ip(), &request);
    let admitted =
        match access {
            Access::LoopbackOrToken | Access::Loopback if local => true,
            Access::Loopback => return ApiError::Forbidden {
                code: "AuthorizationFailed",
                message:
                    "Metrics are served only to callers on this host (--metrics-access loopback)."
                        .into(),
            }
            .into_response(),
            _ => false,
        };
    if !admitted {
        let (parts, body) = request.into_parts();
        drop(body);
        let caller = match crate::auth::authenticate(&state, &parts).await {
            Ok(caller) => caller,
            Err(refusal) => return refusal,
        };
        if !may_read(&caller) {
            return state
                .authorize(&caller, METRICS_READ, "/")
                .await
                .err()
                .unwrap_or(ApiError::Internal)
                .into_response();
        }
    }
    let mut response = render(state.dataplane.clone()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Event delivery and the key-age sweep report here.
pub struct EventCounts;

impl crate::events::EventMetrics for EventCounts {
    fn delivery(&self, result: crate::events::DeliveryResult) {
        event_delivered(result.label());
    }
    fn outbox_depth(&self, depth: i64) {
        set_event_outbox_depth(u64::try_from(depth).unwrap_or(0));
    }
    fn keys_overdue(&self, keys: i64) {
        set_keys_overdue(u64::try_from(keys).unwrap_or(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_type_and_unknown_have_counters() {
        assert!(CATALOGUE.len() < TYPES);
    }

    #[test]
    fn durations_land_in_the_first_bucket_that_holds_them() {
        let before: Vec<u64> = (0..=BUCKETS.len())
            .map(|i| {
                DATA_PLANE
                    .iter()
                    .map(|s| s.buckets[i].load(Ordering::Relaxed))
                    .sum()
            })
            .collect();
        observe(Duration::from_micros(30));
        observe(Duration::from_secs(10));
        let after: Vec<u64> = (0..=BUCKETS.len())
            .map(|i| {
                DATA_PLANE
                    .iter()
                    .map(|s| s.buckets[i].load(Ordering::Relaxed))
                    .sum()
            })
            .collect();
        let moved: Vec<usize> = (0..after.len()).filter(|&i| after[i] > before[i]).collect();
        // 30 µs is above the first bound (25 µs); 10 s above the last.
        assert_eq!(moved, vec![1, BUCKETS.len()]);
    }

    #[test]
    fn one_call_in_timed_every_is_timed() {
        let timed = std::thread::spawn(|| {
            (0..TIMED_EVERY * 4)
                .filter(|_| start_call().is_some())
                .count()
        })
        .join()
        .unwrap();
        assert_eq!(timed, 4);
    }
}
