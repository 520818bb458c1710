//! Owns this node's lease in the store's node table (PostgreSQL with `--max-staleness-ms 0`), and
//! the wait that makes a management write answer only once every node's index has applied it. Then a
//! data-plane check needs no round trip to the database: the index's lease ([`KeyIndex::extend_lease`])
//! is the only test.
//!
//! The promise: once a regeneration answers, no node accepts the old key. The writing node's index
//! caught up before the answer; every other node in the table either acknowledged the change's feed
//! position (its index applied it) or was expelled, and a node trusts its index only while its lease
//! holds. The lease runs on the node's own monotonic clock, for [`TRUSTED_FOR`] after it *sent* a
//! renewal that then succeeded. Wall clocks are never compared:
//!
//! - A renewal commits after it was sent, and another node reads the row version it made after that
//!   commit. So a node that first saw renewal number `n` at its own time `w` (taken after its read
//!   returned) knows that the lease `n` granted ends before `w + TRUSTED_FOR`.
//! - Another node expels a node (with that number `n`) only once it has seen `n` unchanged for
//!   [`EXPIRES_AFTER`] (= `TRUSTED_FOR + MARGIN`) on its own clock, and only if no later renewal has
//!   committed: the expulsion and a racing renewal both update the row, so its lock orders them and
//!   the loser finds the other's work. So every lease of an expelled node ended at least [`MARGIN`]
//!   before it was expelled. The margin absorbs the clocks' rate difference (parts per million) and
//!   a check's thread paused between its lease test and its index read (both synchronous).
//! - An expelled node's renewals fail: it stops trusting its index at once, catches up, and joins
//!   again, which succeeds only if it has applied every committed change (the join holds the lock
//!   that orders the feed's commits, so none can commit in between).
//! - A node that keeps renewing but does not acknowledge (its catch-ups fail) is expelled outright
//!   after [`ACK_PATIENCE`]; the write then waits [`EXPIRES_AFTER`] more, for the lease that node may
//!   still hold to end.
//!
//! So a write waits for other nodes at most `ACK_PATIENCE + EXPIRES_AFTER` (5 s). Each node also
//! expels silent nodes it sees while renewing, so a crashed node delays only writes in the first
//! `EXPIRES_AFTER` after its last renewal; a node that shuts down leaves the table at once.
//!
//! A known case: if the writing node loses the database after its commit, the wait fails and the
//! write answers 503 although it committed (as any 503 from a write may mean). A node that had not
//! applied it yet may then accept the old key until it catches up (its next notice or renewal, 250
//! ms at most while it reaches the database) or its lease ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rekey_store::{NodeTable, StoreError};
use uuid::Uuid;

use super::index::KeyIndex;

/// How often a node renews its lease (and re-reads the feed, in case a notice was lost).
pub const RENEW_EVERY: Duration = Duration::from_millis(250);
/// How long a node trusts its index after sending a renewal that succeeded: eight renewals' worth,
/// so a database slow to answer (seconds, on an overloaded machine) does not interrupt checks. A
/// longer lease costs only a longer wait for writes right after a node stops (see the module doc).
pub const TRUSTED_FOR: Duration = Duration::from_millis(2_000);
/// How much sooner a node's own lease ends than the others may count it lapsed.
pub const MARGIN: Duration = Duration::from_millis(500);
/// How long another node must see a node's renewal number unchanged before expelling it.
pub const EXPIRES_AFTER: Duration = TRUSTED_FOR.saturating_add(MARGIN);
/// How long a write waits for a node that renews but does not acknowledge before expelling it.
pub const ACK_PATIENCE: Duration = EXPIRES_AFTER;
/// How often a waiting write reads the table again without an acknowledgement notice (one may be
/// lost with the listening connection).
const RECHECK_EVERY: Duration = Duration::from_millis(25);

pub struct Membership {
    table: Box<dyn NodeTable>,
    id: Uuid,
    /// Serializes renewals and joins, so a lease granted by one is never reordered with an
    /// expulsion another found.
    renewing: tokio::sync::Mutex<()>,
    /// The last position this node acknowledged.
    acknowledged: AtomicI64,
    /// A position every node in the table has acknowledged: a write at or below it need not wait
    /// (a node joins only having applied every committed change, so this stays true).
    acked_everywhere: AtomicI64,
    /// Woken on every acknowledgement notice.
    acks: tokio::sync::Notify,
    /// Each other node's last renewal number, and when this node first saw it.
    seen: Mutex<HashMap<Uuid, (i64, Instant)>>,
}

impl Membership {
    pub fn new(table: Box<dyn NodeTable>) -> Self {
        Self {
            table,
            id: Uuid::new_v4(),
            renewing: tokio::sync::Mutex::new(()),
            acknowledged: AtomicI64::new(0),
            acked_everywhere: AtomicI64::new(0),
            acks: tokio::sync::Notify::new(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The last feed position this node acknowledged.
    pub fn acknowledged(&self) -> i64 {
        self.acknowledged.load(Ordering::Acquire)
    }

    /// Joins the table, once `index` has applied every committed change; the index is trusted from
    /// then on, while renewals succeed.
    pub async fn join(&self, index: &KeyIndex) -> Result<(), StoreError> {
        let _renewing = self.renewing.lock().await;
        self.join_locked(index).await
    }

    async fn join_locked(&self, index: &KeyIndex) -> Result<(), StoreError> {
        loop {
            index.catch_up().await?;
            let applied = index.applied();
            let sent = Instant::now();
            if self.table.join(self.id, applied).await? {
                index.extend_lease(sent + TRUSTED_FOR);
                self.acknowledged.fetch_max(applied, Ordering::AcqRel);
                return Ok(());
            }
            // A change committed since the catch-up: catch up again.
        }
    }

    /// Renews the lease, acknowledging what `index` has applied. If this node was expelled, it stops
    /// trusting its index at once and joins again.
    pub async fn renew(&self, index: &KeyIndex) -> Result<(), StoreError> {
        let _renewing = self.renewing.lock().await;
        let applied = index.applied();
        let sent = Instant::now();
        if self.table.renew(self.id, applied).await? {
            index.extend_lease(sent + TRUSTED_FOR);
            self.acknowledged.fetch_max(applied, Ordering::AcqRel);
            return Ok(());
        }
        index.end_lease();
        tracing::warn!("this node was expelled by the others (its lease lapsed): joining again");
        self.join_locked(index).await?;
        tracing::info!("joined the other nodes again");
        Ok(())
    }

    /// Leaves the table (on shutdown, once no check is served any more).
    pub async fn leave(&self, index: &KeyIndex) -> Result<(), StoreError> {
        let _renewing = self.renewing.lock().await;
        index.end_lease();
        self.table.leave(self.id).await
    }

    /// Another node renewed: a waiting write may look again.
    pub fn heard_acknowledgement(&self) {
        self.acks.notify_waiters();
    }

    /// When this node first saw `node` with renewal number `renewal` (now, if it just did).
    fn first_seen(&self, node: Uuid, renewal: i64, now: Instant) -> Instant {
        let mut seen = self.seen.lock().expect("seen lock is never poisoned");
        let entry = seen.entry(node).or_insert((renewal, now));
        if entry.0 != renewal {
            *entry = (renewal, now);
        }
        entry.1
    }

    /// Expels `node` if its renewal `renewal` is older than [`EXPIRES_AFTER`] as this node saw it.
    async fn expel_if_lapsed(
        &self,
        node: Uuid,
        renewal: i64,
        now: Instant,
        position: i64,
    ) -> Result<(), StoreError> {
        if now.duration_since(self.first_seen(node, renewal, now)) >= EXPIRES_AFTER
            && self.table.expel(node, Some(renewal), position).await?
        {
            tracing::warn!(%node, "expelled a node whose lease lapsed");
        }
        Ok(())
    }

    /// Expels the other nodes that stopped renewing (crashed, or cut off from the database), so
    /// writes need not wait for them to lapse.
    pub async fn expel_silent(&self) -> Result<(), StoreError> {
        let others = self.table.lagging(self.id, i64::MAX).await?;
        let now = Instant::now();
        {
            let mut seen = self.seen.lock().expect("seen lock is never poisoned");
            seen.retain(|node, _| others.iter().any(|(other, _)| other == node));
        }
        for (node, renewal) in others {
            self.expel_if_lapsed(node, renewal, now, i64::MAX).await?;
        }
        Ok(())
    }

    /// Whether every live node has acknowledged `position`, asked once without waiting.
    pub async fn acked_by_all(&self, position: i64) -> Result<bool, StoreError> {
        if self.acked_everywhere.load(Ordering::Acquire) >= position {
            return Ok(true);
        }
        let all = self.table.lagging(self.id, position).await?.is_empty();
        if all {
            self.acked_everywhere.fetch_max(position, Ordering::AcqRel);
        }
        Ok(all)
    }

    /// Returns once every other node in the table has acknowledged `position` or was expelled and
    /// its lease has ended (see the module doc for the timing). An error (the database cannot be
    /// reached) leaves the question open: the caller must not claim the write is in force.
    pub async fn wait_for_acks(&self, position: i64) -> Result<(), StoreError> {
        if self.acked_everywhere.load(Ordering::Acquire) >= position {
            return Ok(());
        }
        let started = Instant::now();
        loop {
            // Listening before reading, so an acknowledgement between the two is not missed.
            let acked = self.acks.notified();
            tokio::pin!(acked);
            acked.as_mut().enable();
            let lagging = self.table.lagging(self.id, position).await?;
            if lagging.is_empty() {
                self.acked_everywhere.fetch_max(position, Ordering::AcqRel);
                return Ok(());
            }
            let now = Instant::now();
            let out_of_patience = now.duration_since(started) >= ACK_PATIENCE;
            let mut forced = false;
            for (node, renewal) in lagging {
                self.expel_if_lapsed(node, renewal, now, position).await?;
                if out_of_patience && self.table.expel(node, None, position).await? {
                    tracing::warn!(%node, "expelled a node that renews but does not acknowledge");
                    forced = true;
                }
            }
            if forced {
                // The expelled node's last renewal was sent before the expulsion: its lease ends
                // before this sleep does.
                tokio::time::sleep(EXPIRES_AFTER).await;
            } else {
                let _ = tokio::time::timeout(RECHECK_EVERY, acked).await;
            }
        }
    }
}
