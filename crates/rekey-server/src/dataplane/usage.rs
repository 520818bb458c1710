//! Owns writing what the data plane notes about key use: last-use times (each accepted key noted
//! on its index entry with an atomic store, no lock) and per-minute counts with the last client
//! (`rotation`'s counters, one atomic add per use). This task takes them every interval and writes
//! them in batches, so no request waits on the store: counts are added to the stored ones, so every
//! node's uses sum up. A minute's counts are written over the half minute that follows, a chunk
//! each interval ([`PendingCounts`]), not all at once. Slots whose retired keys were presented get
//! their hourly `Rekey.RetiredKeyPresented` event here too, off the request path. Once a minute it
//! also prunes what is older than a day.

use std::collections::VecDeque;
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

/// Per-minute count rows a node takes from the index a second, on average, at most: past it,
/// counts are taken less often than every flush (each take holds one row per slot used since the
/// last), but always in the first flush of a minute, so each minute's count lands in its minute.
/// Also the slowest pace at which the flusher writes what it took.
const COUNT_ROWS_PER_SECOND: f64 = 2_000.0;

/// Writes the last-use times noted since the last flush.
pub async fn flush_uses(index: &KeyIndex, store: &dyn Store) {
    let batch = index.drain_uses();
    for rows in batch.chunks(ROWS_PER_WRITE) {
        if let Err(e) = store.record_key_uses(rows).await {
            tracing::warn!(error = %e, dropped = rows.len(), "could not record key last-use times");
        }
    }
}

/// Count rows taken from the index and not yet written. With many slots in use, the rows of a
/// minute (one per slot) were written as soon as the minute ended, all at once: with 200,000 slots
/// in use on PostgreSQL, about 4 s of the database's CPU in a few seconds, during which the data
/// plane answered a fifth fewer calls. The flusher now writes them at a pace that spreads them over
/// [`SPREAD`]; whoever must see every count at once ([`PendingCounts::flush_all`]) takes the rest.
#[derive(Default)]
pub struct PendingCounts(tokio::sync::Mutex<Backlog>);

#[derive(Default)]
struct Backlog {
    /// In the stored table's key order within each take from the index.
    rows: VecDeque<rekey_store::SlotUsage>,
    /// Rows a second the flusher writes until the backlog is empty.
    per_second: f64,
}

/// Rows of one paced write: a store transaction of its own, short enough that a management write
/// waiting for SQLite's single writer (every `listKeys` writes its audit record) is barely held.
const PACED_ROWS_PER_WRITE: usize = 500;

/// How long the flusher takes, at most, to write the rows of one take from the index (unless
/// [`COUNT_ROWS_PER_SECOND`] is faster).
const SPREAD: Duration = Duration::from_secs(30);

impl PendingCounts {
    /// Writes every count noted so far, taken or not, then notes the slots whose retired keys were
    /// presented. For a reader that must see this node's counts (keyActivity), and at shutdown.
    pub async fn flush_all(&self, index: &KeyIndex, store: &dyn Store, events: &Events) {
        let mut backlog = self.0.lock().await;
        backlog.take(index);
        let rows: Vec<_> = backlog.rows.drain(..).collect();
        write_counts(&rows, store, events).await;
    }

    /// Takes what the index counted since the last take into the backlog, and sets the pace that
    /// writes the whole backlog within [`SPREAD`]. Returns how many rows it took.
    async fn take(&self, index: &KeyIndex) -> usize {
        self.0.lock().await.take(index)
    }

    /// Writes the backlog's next rows: as many as its pace allows in `interval`, a chunk of
    /// [`PACED_ROWS_PER_WRITE`] at a time, letting [`Self::flush_all`] in between chunks.
    async fn write_paced(&self, interval: Duration, store: &dyn Store, events: &Events) {
        let mut budget = {
            let backlog = self.0.lock().await;
            (backlog.per_second * interval.as_secs_f64()).ceil() as usize
        };
        while budget > 0 {
            let chunk: Vec<_> = {
                let mut backlog = self.0.lock().await;
                let n = budget.min(PACED_ROWS_PER_WRITE).min(backlog.rows.len());
                backlog.rows.drain(..n).collect()
            };
            if chunk.is_empty() {
                return;
            }
            budget -= chunk.len();
            write_counts(&chunk, store, events).await;
        }
    }
}

impl Backlog {
    fn take(&mut self, index: &KeyIndex) -> usize {
        let mut counts = index.drain_counts();
        in_key_order(&mut counts);
        let taken = counts.len();
        self.rows.extend(counts);
        self.per_second = COUNT_ROWS_PER_SECOND.max(self.rows.len() as f64 / SPREAD.as_secs_f64());
        taken
    }
}

/// Writes count rows, then notes the slots whose retired keys were presented (each row is written
/// once, whoever writes it). Rows that could not be written are dropped, with a warning.
async fn write_counts(counts: &[rekey_store::SlotUsage], store: &dyn Store, events: &Events) {
    for rows in counts.chunks(ROWS_PER_WRITE) {
        if let Err(e) = store.record_usage(rows).await {
            tracing::warn!(error = %e, dropped = rows.len(), "could not record key usage counts");
        }
    }
    let mut presented: Vec<(uuid::Uuid, &str)> = counts
        .iter()
        .filter(|u| u.retired > 0)
        .map(|u| (u.resource, u.slot))
        .collect();
    if presented.is_empty() {
        return;
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
}

/// Sorts count rows by the stored table's primary key (resource, slot, then minute), so each write
/// of [`ROWS_PER_WRITE`] rows touches one narrow range of the key's B-tree (the stores order
/// last-use rows themselves). In the order the index
/// yields them (by shard, so by hash), every transaction touched pages all over the table: with
/// 200,000 slots in use, SQLite's writer spent about 12 s of CPU on each minute's counts, and the
/// data plane's throughput fell by a third while it did. The internal id's text form, which the
/// stores compare, sorts as its bytes do.
fn in_key_order(rows: &mut [rekey_store::SlotUsage]) {
    rows.sort_unstable_by_key(|u| (u.resource, u.slot, u.minute));
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
                let rows = dataplane.counts.take(&dataplane.index).await;
                counts_due =
                    Instant::now() + Duration::from_secs_f64(rows as f64 / COUNT_ROWS_PER_SECOND);
            }
            dataplane
                .counts
                .write_paced(every, store.as_ref(), &events)
                .await;
            if pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                pruned = Some(Instant::now());
                prune(store.as_ref(), retired_window).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::index::Consistency;
    use crate::dataplane::rotation;
    use rekey_core::providers::cognitive_services::ACCOUNTS;
    use rekey_core::{ResourceGroupName, ResourceId, ResourceName, ResourceSpec, SubscriptionId};
    use rekey_store::{MasterKey, Sealer, SqliteStore};

    fn audit() -> rekey_store::AuditRecord {
        rekey_store::AuditRecord {
            at: OffsetDateTime::now_utc(),
            principal_id: "tester".into(),
            action: "test".into(),
            scope: "/".into(),
            source: "127.0.0.1".into(),
            request_id: uuid::Uuid::new_v4().to_string(),
            result: "Succeeded".into(),
        }
    }

    /// A store with `count` Cognitive Services accounts, and its loaded index.
    async fn accounts(
        count: usize,
    ) -> (tempfile::TempDir, Arc<dyn Store>, KeyIndex, Vec<uuid::Uuid>) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(
                &SqliteStore::url_in(dir.path()),
                Sealer::new(&MasterKey::generate()),
            )
            .await
            .expect("SQLite opens"),
        );
        let subscription = SubscriptionId::random();
        store
            .put_subscription(&subscription, "test", &audit())
            .await
            .unwrap();
        let group = ResourceGroupName::parse("rg").unwrap();
        store
            .put_group(
                &rekey_core::ResourceGroup {
                    subscription: subscription.clone(),
                    name: group.clone(),
                    location: "westeurope".into(),
                    tags: Default::default(),
                    created_at: OffsetDateTime::now_utc(),
                },
                &audit(),
            )
            .await
            .unwrap();
        let spec = ResourceSpec {
            location: "westeurope".into(),
            kind: None,
            sku: None,
            tags: Default::default(),
            settings: serde_json::Map::new(),
        };
        let mut ids = Vec::new();
        for i in 0..count {
            let id = ResourceId {
                subscription: subscription.clone(),
                group: group.clone(),
                provider: &ACCOUNTS,
                name: ResourceName::parse(&ACCOUNTS, &format!("acct{i}")).unwrap(),
            };
            let keys = ACCOUNTS
                .slots
                .iter()
                .map(|slot| (slot, rekey_core::Secret::new(format!("{i}-{}", slot.name))))
                .collect();
            let (resource, _) = store
                .put_resource(&id, &spec, keys, None, &audit())
                .await
                .unwrap();
            ids.push(resource.internal_id);
        }
        let index = KeyIndex::new(store.clone(), Consistency::OnlyWriter)
            .await
            .unwrap();
        index.fill().await.unwrap();
        index.open();
        (dir, store, index, ids)
    }

    /// How many of `ids`' slots have a count row stored.
    async fn stored_rows(store: &dyn Store, ids: &[uuid::Uuid]) -> usize {
        let mut rows = 0;
        for id in ids {
            rows += store.usage(*id, 0).await.unwrap().len();
        }
        rows
    }

    #[tokio::test]
    async fn a_flush_writes_its_share_of_a_minutes_counts_and_a_reader_still_gets_them_all() {
        let (_dir, store, index, ids) = accounts(200).await;
        let events = Events::new(Duration::from_secs(10), Duration::from_secs(1));
        let now = rotation::now_micros();
        for id in &ids {
            let entry = index.resource(id).expect("loaded");
            for slot in 0..entry.slot_count() {
                entry.usage(slot).count(now, "192.0.2.1".parse().unwrap());
            }
        }
        let pending = PendingCounts::default();
        assert_eq!(pending.take(&index).await, 400);

        // At the slowest pace, a tenth of a second's share of 400 rows is 200.
        pending
            .write_paced(Duration::from_millis(100), store.as_ref(), &events)
            .await;
        assert_eq!(stored_rows(store.as_ref(), &ids).await, 200);

        pending.flush_all(&index, store.as_ref(), &events).await;
        assert_eq!(stored_rows(store.as_ref(), &ids).await, 400);
        pending
            .write_paced(Duration::from_secs(1), store.as_ref(), &events)
            .await;
        let total: i64 = {
            let mut total = 0;
            for id in &ids {
                total += store
                    .usage(*id, 0)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.uses)
                    .sum::<i64>();
            }
            total
        };
        assert_eq!(total, 400, "each use is written once");
    }
}
