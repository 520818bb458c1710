//! Owns writing what the data plane notes about key use: last-use times (each accepted key noted
//! on its index entry with an atomic store, no lock) and per-minute counts with the last client
//! (`rotation`'s counters, one atomic add per use). This task takes them every interval and writes
//! them in batches, so no request waits on the store: counts are added to the stored ones, so every
//! node's uses sum up. What one take from the index holds is written over the half minute that
//! follows, a chunk each interval ([`Backlog`]), not all at once. Slots whose retired keys were
//! presented get their hourly `Rekey.RetiredKeyPresented` event here too, off the request path.
//! Once a minute it also prunes what is older than a day.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rekey_store::{KeyUse, SlotUsage, Store};
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
const COUNT_ROWS_PER_SECOND: f64 = 2_000.0;

/// Rows of one paced write: a store transaction of its own, short enough that a management write
/// waiting for SQLite's single writer (every `listKeys` writes its audit record) is barely held.
const PACED_ROWS_PER_WRITE: usize = 500;

/// How long the flusher takes, at most, to write the rows of one take from the index (unless
/// [`ROWS_PER_SECOND`] is faster).
const SPREAD: Duration = Duration::from_secs(30);

/// The slowest pace at which the flusher writes what it took.
const ROWS_PER_SECOND: f64 = 2_000.0;

/// Rows taken from the index and not yet written: last uses, or per-minute counts. With many slots
/// in use, a take holds a row per slot, and all of them at once were a burst for the database: with
/// 200,000 slots in use on PostgreSQL, about 4 s of its CPU in a few seconds, during which the
/// data plane answered a fifth fewer calls. (Last uses come in such takes too: every slot first
/// used after a start is due again a minute later, all together.) The flusher writes a backlog at
/// a pace that spreads each take over [`SPREAD`]. Each write holds the backlog, so whoever must
/// see every row written ([`flush_counts`]) waits for a write in flight and takes the rest.
pub struct Backlog<T>(tokio::sync::Mutex<Queue<T>>);

impl<T> Default for Backlog<T> {
    fn default() -> Self {
        Self(tokio::sync::Mutex::new(Queue {
            rows: VecDeque::new(),
            per_second: ROWS_PER_SECOND,
        }))
    }
}

struct Queue<T> {
    /// In the stored table's key order within each take from the index.
    rows: VecDeque<T>,
    /// Rows a second the flusher writes until the backlog is empty.
    per_second: f64,
}

impl<T> Queue<T> {
    /// Adds a take, and sets the pace that writes the whole backlog within [`SPREAD`].
    fn add(&mut self, rows: Vec<T>) {
        self.rows.extend(rows);
        self.per_second = ROWS_PER_SECOND.max(self.rows.len() as f64 / SPREAD.as_secs_f64());
    }

    fn take(&mut self, most: usize) -> Vec<T> {
        let n = most.min(self.rows.len());
        self.rows.drain(..n).collect()
    }
}

impl<T> Backlog<T> {
    /// Adds a take from the index (in key order), returning how many rows it held.
    async fn add(&self, rows: Vec<T>) -> usize {
        let taken = rows.len();
        self.0.lock().await.add(rows);
        taken
    }

    /// How many rows the pace allows in `interval`.
    async fn budget(&self, interval: Duration) -> usize {
        (self.0.lock().await.per_second * interval.as_secs_f64()).ceil() as usize
    }

    /// The next chunk of at most `budget` (and [`PACED_ROWS_PER_WRITE`]) rows, taken off
    /// `budget`, with the backlog held until the guard is dropped: after the chunk is written.
    async fn next_chunk(
        &self,
        budget: &mut usize,
    ) -> Option<(tokio::sync::MutexGuard<'_, Queue<T>>, Vec<T>)> {
        let mut queue = self.0.lock().await;
        let chunk = queue.take((*budget).min(PACED_ROWS_PER_WRITE));
        *budget -= chunk.len();
        (!chunk.is_empty()).then_some((queue, chunk))
    }
}

/// Writes every last use noted so far, taken or not (at shutdown).
pub async fn flush_uses(index: &KeyIndex, backlog: &Backlog<KeyUse>, store: &dyn Store) {
    let mut queue = backlog.0.lock().await;
    queue.add(uses_in_key_order(index));
    let rows = queue.take(usize::MAX);
    write_uses(&rows, store).await;
}

/// Writes every count noted so far, taken or not, then notes the slots whose retired keys were
/// presented. For a reader that must see this node's counts (keyActivity), and at shutdown.
pub async fn flush_counts(
    index: &KeyIndex,
    backlog: &Backlog<SlotUsage>,
    store: &dyn Store,
    events: &Events,
) {
    let mut queue = backlog.0.lock().await;
    queue.add(counts_in_key_order(index));
    let rows = queue.take(usize::MAX);
    write_counts(&rows, store, events).await;
}

/// The flusher's share of the last uses taken: what their pace allows in `interval`.
async fn write_paced_uses(backlog: &Backlog<KeyUse>, interval: Duration, store: &dyn Store) {
    let mut budget = backlog.budget(interval).await;
    // Each chunk is written while the backlog is held (`_held`).
    while let Some((_held, rows)) = backlog.next_chunk(&mut budget).await {
        write_uses(&rows, store).await;
    }
}

/// The flusher's share of the counts taken: what their pace allows in `interval`.
async fn write_paced_counts(
    backlog: &Backlog<SlotUsage>,
    interval: Duration,
    store: &dyn Store,
    events: &Events,
) {
    let mut budget = backlog.budget(interval).await;
    while let Some((_held, rows)) = backlog.next_chunk(&mut budget).await {
        write_counts(&rows, store, events).await;
    }
}

/// The last uses noted since the last take, sorted by the stored table's key (resource, slot), so
/// each paced write touches one narrow range of it.
fn uses_in_key_order(index: &KeyIndex) -> Vec<KeyUse> {
    let mut uses = index.drain_uses();
    uses.sort_unstable_by_key(|u| (u.resource, u.slot));
    uses
}

/// Writes last uses. Rows that could not be written are dropped, with a warning.
async fn write_uses(uses: &[KeyUse], store: &dyn Store) {
    for rows in uses.chunks(ROWS_PER_WRITE) {
        if let Err(e) = store.record_key_uses(rows).await {
            tracing::warn!(error = %e, dropped = rows.len(), "could not record key last-use times");
        }
    }
}

/// Writes count rows, then notes the slots whose retired keys were presented (each row is written
/// once, whoever writes it). Rows that could not be written are dropped, with a warning.
async fn write_counts(counts: &[SlotUsage], store: &dyn Store, events: &Events) {
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

/// The counts noted since the last take, sorted by the stored table's key (resource, slot, then
/// minute), so each write touches one narrow range of the key's B-tree. In the order the index
/// yields them (by shard, so by hash), every transaction touched pages all over the table: with
/// 200,000 slots in use, SQLite's writer spent about 12 s of CPU on each minute's counts, and the
/// data plane's throughput fell by a third while it did. The internal id's text form, which the
/// stores compare, sorts as its bytes do.
fn counts_in_key_order(index: &KeyIndex) -> Vec<SlotUsage> {
    let mut counts = index.drain_counts();
    counts.sort_unstable_by_key(|u| (u.resource, u.slot, u.minute));
    counts
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
            dataplane
                .uses
                .add(uses_in_key_order(&dataplane.index))
                .await;
            write_paced_uses(&dataplane.uses, every, store.as_ref()).await;
            let minute = OffsetDateTime::now_utc().unix_timestamp().div_euclid(60);
            if Instant::now() >= counts_due || counted_minute != Some(minute) {
                counted_minute = Some(minute);
                let rows = dataplane
                    .counts
                    .add(counts_in_key_order(&dataplane.index))
                    .await;
                counts_due =
                    Instant::now() + Duration::from_secs_f64(rows as f64 / COUNT_ROWS_PER_SECOND);
            }
            write_paced_counts(&dataplane.counts, every, store.as_ref(), &events).await;
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
    use crate::dataplane::test_store::TestStore;
    use rekey_core::ResourceId;

    /// A store with `count` Cognitive Services accounts, its loaded index, and the accounts'
    /// internal ids and ids.
    async fn accounts(
        count: usize,
    ) -> (
        tempfile::TempDir,
        Arc<dyn Store>,
        KeyIndex,
        Vec<uuid::Uuid>,
        Vec<ResourceId>,
    ) {
        let test = TestStore::new().await;
        let (mut ids, mut names) = (Vec::new(), Vec::new());
        for i in 0..count {
            let (resource, id) = test.account(&format!("acct{i}"), &i.to_string()).await;
            ids.push(resource.internal_id);
            names.push(id);
        }
        let TestStore { dir, store, .. } = test;
        let index = KeyIndex::new(store.clone(), Consistency::OnlyWriter)
            .await
            .unwrap();
        index.fill().await.unwrap();
        index.open();
        (dir, store, index, ids, names)
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
        let (_dir, store, index, ids, _) = accounts(200).await;
        let events = Events::new(Duration::from_secs(10), Duration::from_secs(1));
        let now = rotation::now_micros();
        for id in &ids {
            let entry = index.resource(id).expect("loaded");
            for slot in 0..entry.slot_count() {
                entry.usage(slot).count(now, "192.0.2.1".parse().unwrap());
            }
        }
        let backlog = Backlog::default();
        assert_eq!(backlog.add(counts_in_key_order(&index)).await, 400);

        // At the slowest pace, a tenth of a second's share of 400 rows is 200.
        write_paced_counts(
            &backlog,
            Duration::from_millis(100),
            store.as_ref(),
            &events,
        )
        .await;
        assert_eq!(stored_rows(store.as_ref(), &ids).await, 200);

        flush_counts(&index, &backlog, store.as_ref(), &events).await;
        assert_eq!(stored_rows(store.as_ref(), &ids).await, 400);
        write_paced_counts(&backlog, Duration::from_secs(1), store.as_ref(), &events).await;
        let mut total = 0;
        for id in &ids {
            let rows = store.usage(*id, 0).await.unwrap();
            total += rows.iter().map(|r| r.uses).sum::<i64>();
        }
        assert_eq!(total, 400, "each use is written once");
    }

    #[tokio::test]
    async fn last_uses_taken_together_are_written_over_the_spread_and_all_at_shutdown() {
        let (_dir, store, index, ids, names) = accounts(200).await;
        let now = rotation::now_micros();
        for id in &ids {
            let entry = index.resource(id).expect("loaded");
            for slot in 0..entry.slot_count() {
                index.record_use(&entry, slot, now);
            }
        }
        let used = async || {
            let mut used = 0;
            for name in &names {
                let (_, slots) = store.keys(name).await.unwrap();
                used += slots.iter().filter(|s| s.last_used.is_some()).count();
            }
            used
        };
        let backlog = Backlog::default();
        assert_eq!(backlog.add(uses_in_key_order(&index)).await, 400);
        write_paced_uses(&backlog, Duration::from_millis(100), store.as_ref()).await;
        assert_eq!(
            used().await,
            200,
            "a tenth of a second's share at the slowest pace"
        );
        flush_uses(&index, &backlog, store.as_ref()).await;
        assert_eq!(used().await, 400);
    }
}
