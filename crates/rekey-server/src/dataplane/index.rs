//! Owns the data plane's in-memory key index: every resource by its internal id, with its slots'
//! keyed digests and the facts the data plane needs (key auth on/off, upstream, Cosmos signing
//! keys), and every live key's keyed digest mapped to its resource and slot, so a presented key is
//! found in O(1) without touching the store. A data-plane call names its resource in its path, so
//! its key's digest is compared with that resource's slots; `POST /verify` finds a key by digest
//! alone. Resources are spread over locks by id, so concurrent checks do not contend. rekey's own
//! rotation controls ride on the same entries and the same feed (`rotation`): a per-slot disabled
//! flag and usage counters, and the keyed digests of keys regenerations replaced (also in the
//! digest map), so they follow every node's index exactly as current keys do.
//!
//! The index follows the store's change feed: writers call [`KeyIndex::catch_up`] before they
//! answer, so a regenerated key is gone from the index before the regeneration is acknowledged; a
//! background task catches up every second as a safety net.
//!
//! With several nodes on one database (PostgreSQL) other nodes' changes arrive by notice, and a
//! check must not trust an index that may have missed a change another node has acknowledged. Two
//! ways keep that promise ([`Consistency`]):
//!
//! - **Leased** (`--max-staleness-ms 0`, the default): the node holds a lease in the database's
//!   node table (`membership`), and a regeneration answers only after every node with a lease has
//!   acknowledged applying it, or has lost its lease. The node trusts its index while its lease
//!   holds on its own clock, which ends before any other node may count it as lapsed, so a check
//!   needs no round trip: a regeneration acknowledged by one node is in force on all of them
//!   (linearizable; checked by `tests/reliability/linearizability.py --nodes`). A node that cannot
//!   renew (cut off from the database) refuses checks once its lease ends.
//! - **Bounded** (a positive bound): the index tracks when it last *confirmed* being current, the
//!   start of the last catch-up that succeeded. A check that arrives at time T trusts the index only
//!   if a confirmation started at or after T minus the bound; otherwise it first catches up from
//!   the database itself ([`KeyIndex::confirm`]) or is refused. Regenerations do not wait for other
//!   nodes: an old key may be accepted for up to one bound after another node acknowledged its
//!   regeneration (in practice until the notice arrives, a few milliseconds), and never longer, even
//!   on a node cut off from the database.
//!
//! A single node (SQLite) has no other writers, needs neither, and pays nothing for them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rekey_core::providers::Slot;
use rekey_core::secret::constant_time_eq;
use rekey_core::Provider;
use rekey_store::{IndexedResource, KeyUse, Store, StoreError};
use ring::hmac;
use uuid::Uuid;

use super::rotation;

/// One slot of an indexed resource.
pub struct EntrySlot {
    pub slot: &'static Slot,
    pub generation: i64,
    pub digest: [u8; 32],
    /// The HMAC key clients sign with, for types that sign requests (Cosmos DB).
    pub signing_key: Option<hmac::Key>,
    /// When the data plane last accepted this key (Unix microseconds), not yet written to the
    /// store; 0 when nothing is pending. An atomic store keeps the request path lock-free.
    pub last_used: AtomicI64,
    /// The last use taken for the store (Unix microseconds, 0 for none since this entry was made).
    pub flushed: AtomicI64,
    /// The start of the data plane's self-answer for this slot, up to `"method":` (JSON). It is
    /// the same for every call, so it is rendered once here rather than on each request.
    pub self_answer: Box<[u8]>,
    /// The slot is disabled (rekey's own control): its key is refused without being rotated.
    pub disabled: bool,
    /// Uses on this node per minute, with the last client (`rotation`).
    pub usage: super::rotation::UsageCell,
}

/// `{"authenticated":true,"resourceId":…,"keyName":…,"access":…,"method":` for one slot.
fn self_answer_start(resource_id: &str, slot: &Slot) -> Box<[u8]> {
    let json = |text: &str| serde_json::Value::from(text).to_string();
    let access = if slot.read_only {
        "readOnly"
    } else {
        "readWrite"
    };
    format!(
        "{{\"authenticated\":true,\"resourceId\":{},\"keyName\":{},\"access\":\"{access}\",\"method\":",
        json(resource_id),
        json(slot.name),
    )
    .into_bytes()
    .into_boxed_slice()
}

/// What the data plane knows about one resource.
pub struct Entry {
    pub internal_id: Uuid,
    pub resource_id: String,
    pub name: String,
    pub location: String,
    pub provider: &'static Provider,
    pub key_auth_enabled: bool,
    pub upstream: Option<String>,
    pub slots: Vec<EntrySlot>,
    /// Keys regenerations replaced, by keyed digest (`rotation`); empty for most resources.
    pub retired: Box<[super::rotation::RetiredEntry]>,
}

impl Entry {
    /// The slot whose current key digests to `digest`, each slot compared in constant time. The
    /// caller found this entry in the index by the id in the request's path, so the keyed digest
    /// is checked against this resource's slots alone: no second map lookup, and no second lock
    /// shared by every check.
    pub fn slot_with_digest(&self, digest: &[u8; 32]) -> Option<usize> {
        let mut found = None;
        // Every slot is compared, whichever matches, so the time does not say which one did.
        for (i, slot) in self.slots.iter().enumerate() {
            if constant_time_eq(&slot.digest, digest) {
                found = Some(i);
            }
        }
        found
    }
}

type ByDigest = HashMap<[u8; 32], Uuid, Uniform>;
type Resources = HashMap<Uuid, Arc<Entry>, Uniform>;

/// How many locks the resources are spread over. Every data-plane check takes one of them for
/// reading; with one lock for all, each check's two atomic updates of the lock's count moved its
/// cache line between the cores on every call.
const SHARDS: usize = 64;

/// One shard's lock on its own cache lines, so checks on different shards share nothing.
#[repr(align(128))]
#[derive(Default)]
struct Shard(RwLock<Resources>);

fn shard_index(id: &Uuid) -> usize {
    // Internal ids are random (version 4), so their first byte spreads resources evenly.
    usize::from(id.as_bytes()[0]) % SHARDS
}

/// Hashes keys that are already uniformly random, and that no client can choose, by their first
/// eight bytes: keyed digests (HMAC-SHA256 under a secret key) and internal ids (random UUIDs made
/// by rekey). SipHash's protection against chosen colliding keys buys nothing for them, and it was
/// a measurable part of each data-plane check.
#[derive(Default, Clone, Copy)]
struct Uniform;

impl std::hash::BuildHasher for Uniform {
    type Hasher = FirstBytes;
    fn build_hasher(&self) -> FirstBytes {
        FirstBytes(0)
    }
}

struct FirstBytes(u64);

impl std::hash::Hasher for FirstBytes {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // An array hashes as its length (the same for every key here), then its bytes.
        let mut first = [0u8; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(first);
    }
}

fn insert(by_digest: &mut ByDigest, resources: &mut Resources, entry: Entry) {
    for s in &entry.slots {
        by_digest.insert(s.digest, entry.internal_id);
    }
    for r in entry.retired.iter() {
        by_digest.insert(r.digest, entry.internal_id);
    }
    resources.insert(entry.internal_id, Arc::new(entry));
}

fn entry_of(indexed: IndexedResource) -> Entry {
    let r = indexed.resource;
    let resource_id = r.id.to_string();
    let slots = indexed
        .slots
        .into_iter()
        .map(|s| EntrySlot {
            slot: s.slot,
            generation: s.generation,
            digest: s.digest,
            signing_key: s.secret.and_then(|secret| {
                let bytes = zeroize::Zeroizing::new(
                    base64::engine::general_purpose::STANDARD
                        .decode(secret.expose())
                        .ok()?,
                );
                Some(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
            }),
            last_used: AtomicI64::new(0),
            flushed: AtomicI64::new(0),
            self_answer: self_answer_start(&resource_id, s.slot),
            disabled: false,
            usage: Default::default(),
        })
        .collect();
    Entry {
        internal_id: r.internal_id,
        resource_id,
        name: r.id.name.to_string(),
        location: r.spec.location.clone(),
        provider: r.id.provider,
        key_auth_enabled: r.spec.key_auth_enabled(),
        upstream: r.spec.upstream().ok().flatten(),
        slots,
        retired: Box::default(),
    }
}

/// Takes the uses noted on `entry`'s slots.
fn pending_uses(entry: &Entry) -> Vec<KeyUse> {
    entry
        .slots
        .iter()
        .filter_map(|s| {
            // Most slots have nothing pending: read before writing, so a flush dirties only those.
            let micros = match s.last_used.load(Ordering::Relaxed) {
                0 => 0,
                _ => s.last_used.swap(0, Ordering::Relaxed),
            };
            if micros != 0 {
                s.flushed.store(micros, Ordering::Relaxed);
            }
            (micros != 0).then(|| KeyUse {
                resource: entry.internal_id,
                slot: s.slot.name,
                generation: s.generation,
                at: time::OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1000)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            })
        })
        .collect()
}

/// How precisely last uses are kept: a slot's recorded last use is at most this old.
pub const USE_RESOLUTION_MICROS: i64 = 60_000_000;

/// A key found in the index.
pub struct Found {
    pub entry: Arc<Entry>,
    pub slot: usize,
}

/// How the index knows it holds every change another node has acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// This process is the store's only writer: the index is always current.
    OnlyWriter,
    /// A check trusts a confirmation (a catch-up that succeeded) up to this old.
    Bounded(Duration),
    /// A check trusts the index while this node's lease holds ([`KeyIndex::extend_lease`]):
    /// regenerations wait for every leased node to acknowledge them.
    Leased,
}

/// How current the index is known to be, for a store that other nodes write to.
struct Freshness {
    /// How old a confirmation may be, at a check's arrival, and still be trusted for it; `None`
    /// under a lease, which alone then decides.
    bound: Option<Duration>,
    /// The origin of the nanosecond clock below.
    origin: Instant,
    /// When the last successful catch-up started (nanoseconds since `origin`).
    confirmed: AtomicU64,
    /// When the last failed catch-up started (nanoseconds since `origin`, 0 for never).
    failed: AtomicU64,
    /// Under a lease: the moment (nanoseconds since `origin`) the lease ends, 0 while none holds.
    leased_until: AtomicU64,
}

impl Freshness {
    /// Nanoseconds since `origin`, never 0 (0 means "never"): u64 nanoseconds last 584 years.
    fn nanos(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.origin).as_nanos() as u64).max(1)
    }

    /// Whether the index may be trusted for a check that arrived at `arrived`. Under a bound: the
    /// last confirmation started no earlier than one bound before, so it read every change
    /// committed before `arrived - bound` (with a zero bound, only a catch-up that started after
    /// the check arrived does). Under a lease: the lease still holds.
    fn covers(&self, arrived: u64) -> bool {
        match self.bound {
            Some(bound) => {
                let confirmed = self.confirmed.load(Ordering::Acquire);
                confirmed.saturating_add(bound.as_nanos() as u64) >= arrived
            }
            None => arrived < self.leased_until.load(Ordering::Acquire),
        }
    }

    fn record(&self, started: Instant, ok: bool) {
        let at = self.nanos(started);
        let slot = if ok { &self.confirmed } else { &self.failed };
        slot.fetch_max(at, Ordering::AcqRel);
    }
}

/// The index cannot confirm that it is current: the caller must not trust it now.
#[derive(Debug, thiserror::Error)]
#[error("the key index could not confirm it is current within the staleness bound")]
pub struct Stale;

pub struct KeyIndex {
    store: Arc<dyn Store>,
    /// Every live key's digest: its resource, whose entry then gives the slot (for `POST /verify`, which has no resource).
    /// Changed only under `applied`, and held for writing while the shards' entries are replaced.
    by_digest: RwLock<ByDigest>,
    resources: Box<[Shard]>,
    /// Uses noted on entries that a catch-up replaced before they were flushed.
    spilled: Mutex<Vec<KeyUse>>,
    /// The last change-feed sequence number applied; the lock also serializes catch-ups.
    applied: tokio::sync::Mutex<i64>,
    /// `applied` as last published, readable without the lock (to skip notices already applied).
    applied_hint: AtomicI64,
    /// `None` when this process is the store's only writer: then the index is always current.
    freshness: Option<Freshness>,
}

impl KeyIndex {
    /// Loads every resource. The feed position is read first, so changes made during the load are
    /// applied again by the next catch-up (reloading is idempotent). Under a lease the index is not
    /// trusted until the first lease is granted.
    pub async fn load(store: Arc<dyn Store>, consistency: Consistency) -> Result<Self, StoreError> {
        let origin = Instant::now();
        let latest = store.latest_change().await?;
        let mut by_digest = ByDigest::default();
        let mut resources: Vec<Resources> = (0..SHARDS).map(|_| Resources::default()).collect();
        let mut controls = rotation::by_resource(store.slot_controls(None).await?);
        for indexed in store.index_entries(None).await? {
            let mut entry = entry_of(indexed);
            let id = entry.internal_id;
            rotation::apply(&mut entry, controls.remove(&id));
            let shard = &mut resources[shard_index(&entry.internal_id)];
            insert(&mut by_digest, shard, entry);
        }
        Ok(Self {
            store,
            by_digest: RwLock::new(by_digest),
            resources: resources
                .into_iter()
                .map(|r| Shard(RwLock::new(r)))
                .collect(),
            spilled: Mutex::new(Vec::new()),
            applied: tokio::sync::Mutex::new(latest),
            applied_hint: AtomicI64::new(latest),
            freshness: match consistency {
                Consistency::OnlyWriter => None,
                Consistency::Bounded(bound) => Some(Some(bound)),
                Consistency::Leased => Some(None),
            }
            .map(|bound| Freshness {
                bound,
                origin,
                // The load itself read everything committed before `origin`.
                confirmed: AtomicU64::new(1),
                failed: AtomicU64::new(0),
                leased_until: AtomicU64::new(0),
            }),
        })
    }

    /// The last change-feed sequence number applied.
    pub fn applied(&self) -> i64 {
        self.applied_hint.load(Ordering::Acquire)
    }

    /// Whether a check arriving now may trust the index without asking the store: always when this
    /// process is the store's only writer, under a lease while it holds, else only while a
    /// confirmation covers it (never with a zero bound). The cheap test before [`Self::confirm`].
    pub fn is_current(&self) -> bool {
        self.freshness
            .as_ref()
            .is_none_or(|freshness| freshness.covers(freshness.nanos(Instant::now())))
    }

    /// How far behind the change feed the index may be now: zero when this process is the store's
    /// only writer; else the time since the start of the last catch-up that succeeded.
    pub fn lag(&self) -> Duration {
        self.freshness.as_ref().map_or(Duration::ZERO, |freshness| {
            let now = freshness.nanos(Instant::now());
            let confirmed = freshness.confirmed.load(Ordering::Acquire);
            Duration::from_nanos(now.saturating_sub(confirmed))
        })
    }

    /// Makes sure the index holds every change committed before this call (before it, less the
    /// staleness bound), catching up from the store if no confirmation vouches for that yet. Call it
    /// before trusting the index for a check. Concurrent callers share catch-ups: one that started
    /// after a caller arrived answers for it, and a caller that waited while such an attempt failed
    /// takes that failure as its own answer instead of queueing another attempt. Under a lease a
    /// catch-up proves nothing (the lease is what writers wait on): without one, the answer is no.
    pub async fn confirm(&self) -> Result<(), Stale> {
        let Some(freshness) = &self.freshness else {
            return Ok(());
        };
        let arrived = freshness.nanos(Instant::now());
        if freshness.covers(arrived) {
            return Ok(());
        }
        let Some(bound) = freshness.bound else {
            return Err(Stale);
        };
        let attempt = async {
            let mut applied = self.applied.lock().await;
            if freshness.covers(arrived) {
                return Ok(());
            }
            let failed = freshness.failed.load(Ordering::Acquire);
            if failed != 0 && failed >= arrived {
                return Err(Stale);
            }
            self.catch_up_locked(&mut applied).await.map_err(|e| {
                tracing::warn!(error = %e, "the key index could not confirm it is current");
                Stale
            })
        };
        // A caller waits about one bound at most, and at least a second, so that a reachable but
        // busy database can answer (with a zero bound every check waits for it).
        let patience = bound.max(Duration::from_secs(1));
        tokio::time::timeout(patience, attempt)
            .await
            .map_err(|_| Stale)?
    }

    /// Under a lease: trusts the index for checks that arrive before `until` (never for less time
    /// than already granted). The caller grants only what a renewal that succeeded allows.
    pub fn extend_lease(&self, until: Instant) {
        if let Some(freshness) = &self.freshness {
            let until = freshness.nanos(until);
            freshness.leased_until.fetch_max(until, Ordering::AcqRel);
        }
    }

    /// Under a lease: stops trusting the index at once (this node was expelled).
    pub fn end_lease(&self) {
        if let Some(freshness) = &self.freshness {
            freshness.leased_until.store(0, Ordering::Release);
        }
    }

    /// Applies every change committed since the last catch-up.
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        let mut applied = self.applied.lock().await;
        self.catch_up_locked(&mut applied).await
    }

    /// [`Self::catch_up`] with the position lock held; records the outcome for freshness.
    async fn catch_up_locked(&self, applied: &mut i64) -> Result<(), StoreError> {
        let started = Instant::now();
        let outcome = self.apply_changes(applied).await;
        if let Some(freshness) = &self.freshness {
            freshness.record(started, outcome.is_ok());
        }
        outcome
    }

    async fn apply_changes(&self, applied: &mut i64) -> Result<(), StoreError> {
        let (latest, changed) = self.store.changes_since(*applied).await?;
        if changed.is_empty() {
            *applied = latest;
            self.applied_hint.store(latest, Ordering::Release);
            return Ok(());
        }
        let mut fresh: HashMap<Uuid, Entry> = self
            .store
            .index_entries(Some(&changed))
            .await?
            .into_iter()
            .map(|indexed| (indexed.resource.internal_id, entry_of(indexed)))
            .collect();
        let mut controls = rotation::by_resource(self.store.slot_controls(Some(&changed)).await?);
        for (id, entry) in fresh.iter_mut() {
            rotation::apply(entry, controls.remove(id));
        }
        let mut by_digest = self
            .by_digest
            .write()
            .expect("index lock is never poisoned: no panics under it");
        for id in &changed {
            // The old entry is replaced under its shard's lock, so a check sees the old entry or
            // the new one, never neither.
            let mut shard = self
                .shard(id)
                .write()
                .expect("index lock is never poisoned: no panics under it");
            let old = shard.remove(id);
            if let (Some(old), Some(new)) = (&old, fresh.get(id)) {
                rotation::carry_over(old, new);
            }
            if let Some(old) = old {
                let pending = pending_uses(&old);
                if !pending.is_empty() {
                    self.spilled
                        .lock()
                        .expect("spill lock is never poisoned")
                        .extend(pending);
                }
                for s in &old.slots {
                    by_digest.remove(&s.digest);
                }
                for r in old.retired.iter() {
                    by_digest.remove(&r.digest);
                }
            }
            if let Some(entry) = fresh.remove(id) {
                insert(&mut by_digest, &mut shard, entry);
            }
        }
        *applied = latest;
        self.applied_hint.store(latest, Ordering::Release);
        Ok(())
    }

    fn shard(&self, id: &Uuid) -> &RwLock<Resources> {
        &self.resources[shard_index(id)].0
    }

    pub fn resource(&self, id: &Uuid) -> Option<Arc<Entry>> {
        self.shard(id)
            .read()
            .expect("index lock is never poisoned")
            .get(id)
            .cloned()
    }

    /// The resource and slot whose current key digests to `digest`, compared in constant time.
    pub fn find(&self, digest: &[u8; 32]) -> Option<Found> {
        let id = *self
            .by_digest
            .read()
            .expect("index lock is never poisoned")
            .get(digest)?;
        // The entry, read after the digest map, has the final say: a key replaced in between
        // no longer matches any of its slots.
        let entry = self.resource(&id)?;
        let slot = match entry.slot_with_digest(digest) {
            Some(slot) => slot,
            // A replaced key opens its slot only during its overlap.
            None => match rotation::old_key(&entry, digest, rotation::now_micros(), 0)? {
                rotation::OldKey::Grace(slot) => slot,
                rotation::OldKey::Retired(_) => return None,
            },
        };
        Some(Found { entry, slot })
    }

    /// Notes that `entry`'s slot accepted a request at `now` (Unix microseconds, the caller's
    /// [`rotation::now_micros`]: one clock read per call). A slot in constant use is noted once per
    /// [`USE_RESOLUTION_MICROS`]: its first use in each such window is what the store gets, so the
    /// flush writes a row per slot a minute, not a row per slot each flush (with 20,000 keys in
    /// use, that was 20,000 updates a second).
    pub fn record_use(&self, entry: &Entry, slot: usize, now: i64) {
        let slot = &entry.slots[slot];
        if now - slot.flushed.load(Ordering::Relaxed) >= USE_RESOLUTION_MICROS
            && slot.last_used.load(Ordering::Relaxed) == 0
        {
            slot.last_used.store(now, Ordering::Relaxed);
        }
    }

    /// Takes every use noted since the last call, for the store.
    pub fn drain_uses(&self) -> Vec<KeyUse> {
        let mut out =
            std::mem::take(&mut *self.spilled.lock().expect("spill lock is never poisoned"));
        for shard in self.resources.iter() {
            let shard = shard.0.read().expect("index lock is never poisoned");
            for entry in shard.values() {
                out.extend(pending_uses(entry));
            }
        }
        out
    }

    /// Takes every per-minute count noted since the last call (`rotation`), one record per
    /// resource, slot and minute.
    pub fn drain_counts(&self) -> Vec<rekey_store::SlotUsage> {
        let now = rotation::now_micros();
        let mut out = HashMap::new();
        for shard in self.resources.iter() {
            let shard = shard.0.read().expect("index lock is never poisoned");
            for entry in shard.values() {
                rotation::take_usage(entry, now, &mut out);
            }
        }
        out.into_values().collect()
    }

    pub fn len(&self) -> usize {
        self.by_digest
            .read()
            .expect("index lock is never poisoned")
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry_with_digests(digests: &[[u8; 32]]) -> Entry {
        let provider = &rekey_core::providers::cosmos_db::DATABASE_ACCOUNTS;
        Entry {
            internal_id: Uuid::new_v4(),
            resource_id: "/subscriptions/s/resourceGroups/g/providers/p/t/n".into(),
            name: "n".into(),
            location: "westus".into(),
            provider,
            key_auth_enabled: true,
            upstream: None,
            slots: provider
                .slots
                .iter()
                .zip(digests)
                .map(|(slot, digest)| EntrySlot {
                    slot,
                    generation: 1,
                    digest: *digest,
                    signing_key: None,
                    last_used: AtomicI64::new(0),
                    flushed: AtomicI64::new(0),
                    self_answer: Box::default(),
                    disabled: false,
                    usage: Default::default(),
                })
                .collect(),
            retired: Box::default(),
        }
    }

    #[test]
    fn a_digest_opens_only_its_own_slot_of_the_resource() {
        let digests = [[1u8; 32], [2u8; 32], [3u8; 32], [4u8; 32]];
        let entry = entry_with_digests(&digests);
        assert_eq!(entry.slots.len(), 4);
        for (i, digest) in digests.iter().enumerate() {
            assert_eq!(entry.slot_with_digest(digest), Some(i));
        }
        let mut near = [4u8; 32];
        near[31] = 5;
        assert_eq!(entry.slot_with_digest(&near), None);
        assert_eq!(entry.slot_with_digest(&[0u8; 32]), None);
    }

    #[test]
    fn resources_spread_over_every_shard() {
        let mut seen = [false; SHARDS];
        for _ in 0..SHARDS * 64 {
            seen[shard_index(&Uuid::new_v4())] = true;
        }
        assert!(seen.iter().all(|&s| s), "some shard never chosen: {seen:?}");
    }

    #[test]
    fn keys_alike_in_their_first_bytes_are_still_told_apart() {
        let mut map: HashMap<[u8; 32], usize, Uniform> = HashMap::default();
        let mut a = [7u8; 32];
        let mut b = [7u8; 32];
        a[31] = 1;
        b[31] = 2;
        map.insert(a, 1);
        map.insert(b, 2);
        assert_eq!((map.get(&a), map.get(&b)), (Some(&1), Some(&2)));
        assert_eq!(map.get(&[7u8; 32]), None);
    }
}
