//! Owns writing what the data plane notes about key use: last-use times (each accepted key noted
//! on its index entry with an atomic store, no lock) and per-minute counts with the last client
//! (`rotation`'s counters, one atomic add per use). This task takes them every interval and writes
//! them in one batch each, so no request waits on the store: counts are added to the stored ones,
//! so every node's uses sum up. Slots whose retired keys were presented get their hourly
//! `Rekey.RetiredKeyPresented` event here too, off the request path. Once a minute it also prunes
//! what is older than a day.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rekey_store::Store;
use time::OffsetDateTime;

use super::index::KeyIndex;
use crate::events::Events;

/// How long usage counts and remembered regeneration answers are kept.
pub const USAGE_KEPT: time::Duration = time::Duration::days(1);
/// How often old usage, retired keys and remembered answers are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Rows one store transaction of the flush writes: between them, the store's single writer (on
/// SQLite) takes the management writes waiting for it, so a flush of many slots does not hold
/// `listKeys` or a regeneration back for its whole length.
const ROWS_PER_WRITE: usize = 2_000;

/// Per-minute count rows a node writes a second, on average, at most: past it, counts are written
/// less often than every flush (each flush writes one row per slot used since the last), but always
/// in the first flush of a minute, so each minute's count lands in its minute.
const COUNT_ROWS_PER_SECOND: f64 = 2_000.0;

/// Writes the last-use times noted since the last flush.
pub async fn flush_uses(index: &KeyIndex, store: &dyn Store) {
    let mut batch = index.drain_uses();
    in_key_order(&mut batch, |u| (u.resource, u.slot, 0));
    for rows in batch.chunks(ROWS_PER_WRITE) {
        if let Err(e) = store.record_key_uses(rows).await {
            tracing::warn!(error = %e, dropped = rows.len(), "could not record key last-use times");
        }
    }
}

/// Writes the per-minute counts noted since the last flush, then notes the slots whose retired
/// keys were presented (each batch drained is seen here once, whoever flushes it). Returns how
/// many count rows it wrote.
pub async fn flush_counts(index: &KeyIndex, store: &dyn Store, events: &Events) -> usize {
    let mut counts = index.drain_counts();
    in_key_order(&mut counts, |u| (u.resource, u.slot, u.minute));
    for rows in counts.chunks(ROWS_PER_WRITE) {
        if let Err(e) = store.record_usage(rows).await {
            tracing::warn!(error = %e, dropped = rows.len(), "could not record key usage counts");
            return 0;
        }
    }
    let mut presented: Vec<(uuid::Uuid, &str)> = counts
        .iter()
        .filter(|u| u.retired > 0)
        .map(|u| (u.resource, u.slot))
        .collect();
    if presented.is_empty() {
        return counts.len();
    }
    presented.sort_unstable();
    presented.dedup();
    match store
        .note_retired_presentations(&presented, OffsetDateTime::now_utc())
        .await
    {
        Ok(0) => {}
        Ok(_) => events.wake(),
        Err(e) => tracing::warn!(error = %e, "could not note retired key presentations"),
    }
    counts.len()
}

/// Sorts rows by the stored tables' primary key (resource, slot, then minute), so each write of
/// [`ROWS_PER_WRITE`] rows touches one narrow range of the key's B-tree. In the order the index
/// yields them (by shard, so by hash), every transaction touched pages all over the table: with
/// 200,000 slots in use, SQLite's writer spent about 12 s of CPU on each minute's counts, and the
/// data plane's throughput fell by a third while it did. The internal id's text form, which the
/// stores compare, sorts as its bytes do.
fn in_key_order<T>(rows: &mut [T], key: impl Fn(&T) -> (uuid::Uuid, &'static str, i64)) {
    rows.sort_unstable_by_key(key);
}

/// Deletes usage older than a day, retired keys older than `retired_window` (and a day) whose
/// overlap ended, and remembered answers older than a day.
async fn prune(store: &dyn Store, retired_window: time::Duration) {
    let now = OffsetDateTime::now_utc();
    let oldest = now - USAGE_KEPT;
    let minute = oldest.unix_timestamp().div_euclid(60);
    let retired_before = now - retired_window.max(USAGE_KEPT);
    if let Err(e) = store.prune_rotation(minute, retired_before, oldest).await {
        tracing::warn!(error = %e, "could not prune old key usage");
    }
}

pub fn spawn_flusher(
    dataplane: Arc<super::DataPlane>,
    store: Arc<dyn Store>,
    events: Arc<Events>,
    every: Duration,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        let mut pruned: Option<Instant> = None;
        let retired_window = time::Duration::microseconds(dataplane.retired_window_micros);
        let mut counts_due = Instant::now();
        let mut counted_minute = None;
        loop {
            tick.tick().await;
            flush_uses(&dataplane.index, store.as_ref()).await;
            let minute = OffsetDateTime::now_utc().unix_timestamp().div_euclid(60);
            if Instant::now() >= counts_due || counted_minute != Some(minute) {
                counted_minute = Some(minute);
                let rows = flush_counts(&dataplane.index, store.as_ref(), &events).await;
                counts_due =
                    Instant::now() + Duration::from_secs_f64(rows as f64 / COUNT_ROWS_PER_SECOND);
            }
            if pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                pruned = Some(Instant::now());
                prune(store.as_ref(), retired_window).await;
            }
        }
    });
}
