//! Owns the data plane's in-memory key index: every resource by its internal id, with its slots'
//! keyed digests and the facts the data plane needs (key auth on/off, upstream, Cosmos signing
//! keys), and every live key's keyed digest mapped to its resource and slot, so a presented key is
//! found in O(1) without touching the store. A data-plane call names its resource in its path, so
//! its key's digest is compared with that resource's slots; `POST /verify` finds a key by digest
//! alone. Resources are spread over locks by id, so concurrent checks do not contend. rekey's own
//! rotation controls ride on the same entries and the same feed (`rotation`): a per-slot disabled
//! flag and usage counters, and the keyed digests of keys regenerations replaced (also mapped to
//! their entries), so they follow every node's index exactly as current keys do.
//!
//! The index is laid out for a million resources in a few hundred megabytes (bench/scale): each
//! shard keeps its entries in a vector, each entry with one allocation for its slots' digests and
//! its name, and one hash table from the first eight bytes of every key it holds (internal ids and
//! key digests alike) to an entry's location (a `u32`). Eight bytes find the entry; the entry has
//! the final say (its full internal id, or a constant-time compare of the full digest), and the
//! rare key whose eight bytes are already taken goes to a small overflow table keyed by all its
//! bytes. A resource id is stored as its scope (subscription, group, type; interned per shard) and
//! its name. What only some resources have (an upstream, signing keys, replaced keys) is boxed
//! apart, and a slot's use counters are allocated on its entry's first accepted call.
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
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rekey_core::providers::Slot;
use rekey_core::secret::constant_time_eq;
use rekey_core::Provider;
use rekey_store::{IndexedResource, KeyUse, Store, StoreError};
use ring::hmac;
use uuid::Uuid;

use super::rotation::{self, RetiredEntry, UsageCell};
use super::upstream::Upstream;

/// Bytes one slot takes at the start of an entry's [`Entry::packed`]: its key's digest, then its
/// generation (a little-endian `u32`: one past `u32::MAX` regenerations is out of reach).
const SLOT_BYTES: usize = 36;

/// One slot's uses on this node: allocated for an entry on its first accepted call, so the many
/// resources never called pay nothing for them.
#[derive(Default)]
pub struct SlotUse {
    /// When the data plane last accepted this key (Unix microseconds), not yet taken for the
    /// store; 0 when nothing is pending. An atomic store keeps the request path lock-free.
    last_used: AtomicI64,
    /// The last use taken for the store (Unix microseconds, 0 for none since this entry was made).
    flushed: AtomicI64,
    /// Uses per minute, with the last client (`rotation`).
    pub counts: UsageCell,
}

impl SlotUse {
    /// Notes a use at `now` (Unix microseconds), unless one is pending or was taken for the store
    /// within [`USE_RESOLUTION_MICROS`].
    fn note_use(&self, now: i64) {
        if now - self.flushed.load(Ordering::Relaxed) >= USE_RESOLUTION_MICROS
            && self.last_used.load(Ordering::Relaxed) == 0
        {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }
}

/// What only some resources have: an upstream, request-signing keys (Cosmos DB), the location the
/// Cosmos DB account document names, and keys regenerations replaced. Boxed, so the common entry
/// pays one pointer for it.
struct Rare {
    location: Box<str>,
    gateway: Option<Arc<Gateway>>,
    /// Per slot, the HMAC key clients sign with (types that sign requests).
    signing_keys: Box<[Option<hmac::Key>]>,
    /// Keys regenerations replaced, by keyed digest (`rotation`).
    retired: Box<[RetiredEntry]>,
}

/// What a resource's calls are forwarded with: its upstream (split once) and its resource id, sent
/// as `x-rekey-resource-id`. Shared with the calls being forwarded, as its entry's lock is not
/// held while the upstream answers, rather than copied for each.
pub struct Gateway {
    pub upstream: Upstream,
    pub resource_id: Box<str>,
}

/// What the data plane knows about one resource.
pub struct Entry {
    pub internal_id: Uuid,
    pub provider: &'static Provider,
    /// Each of the provider's slots in its order ([`SLOT_BYTES`] each), then the resource's name:
    /// one allocation for both.
    packed: Box<[u8]>,
    rare: Option<Box<Rare>>,
    /// Per slot, its uses on this node; unset until the entry's first accepted call.
    uses: OnceLock<Box<[SlotUse]>>,
    /// The resource id up to its name, in its shard's [`Shard::scopes`].
    scope: u32,
    pub key_auth_enabled: bool,
    /// Bit `i` set: slot `i` is disabled (rekey's own control), its key refused without rotation.
    disabled: u8,
}

impl Entry {
    /// The slot `i` holds the key of.
    pub fn slot(&self, i: usize) -> &'static Slot {
        &self.provider.slots[i]
    }

    /// How many slots the entry has (its provider's).
    pub fn slot_count(&self) -> usize {
        self.provider.slots.len()
    }

    /// Slot `i`'s current key's keyed digest.
    pub fn digest(&self, i: usize) -> &[u8; 32] {
        self.packed[i * SLOT_BYTES..][..32]
            .try_into()
            .expect("32 bytes")
    }

    /// Slot `i`'s key's generation.
    pub fn generation(&self, i: usize) -> i64 {
        let at = i * SLOT_BYTES + 32;
        i64::from(u32::from_le_bytes(
            self.packed[at..at + 4].try_into().expect("4 bytes"),
        ))
    }

    /// The resource's name.
    pub fn name(&self) -> &str {
        std::str::from_utf8(&self.packed[self.slot_count() * SLOT_BYTES..]).unwrap_or_default()
    }

    /// Whether slot `i` is disabled (rekey's own control).
    pub fn disabled(&self, i: usize) -> bool {
        self.disabled & (1 << i) != 0
    }

    pub fn upstream(&self) -> Option<&str> {
        self.gateway().map(|g| g.upstream.url())
    }

    /// What its calls are forwarded with, when the resource has an upstream.
    pub fn gateway(&self) -> Option<&Arc<Gateway>> {
        self.rare.as_ref().and_then(|r| r.gateway.as_ref())
    }

    /// The resource's location; kept for types that sign requests (Cosmos DB's account document
    /// names it) and resources with an upstream or replaced keys, empty for the others.
    pub fn location(&self) -> &str {
        self.rare.as_ref().map_or("", |r| &r.location)
    }

    /// The HMAC key clients sign with using slot `i`'s key (types that sign requests).
    pub fn signing_key(&self, i: usize) -> Option<&hmac::Key> {
        self.rare
            .as_ref()
            .and_then(|r| r.signing_keys.get(i))
            .and_then(Option::as_ref)
    }

    /// Keys regenerations replaced (`rotation`); empty for most resources.
    pub fn retired(&self) -> &[RetiredEntry] {
        self.rare.as_ref().map_or(&[], |r| &r.retired)
    }

    /// Slot `i`'s uses on this node, made on first need.
    fn uses(&self) -> &[SlotUse] {
        self.uses
            .get_or_init(|| (0..self.slot_count()).map(|_| SlotUse::default()).collect())
    }

    /// Slot `i`'s per-minute use counter (`rotation`).
    pub fn usage(&self, i: usize) -> &UsageCell {
        &self.uses()[i].counts
    }

    /// The slots' uses, if any call was ever accepted on this entry.
    pub fn noted_uses(&self) -> Option<&[SlotUse]> {
        self.uses.get().map(|uses| &**uses)
    }

    /// Every key the index maps to this entry: its slots' digests and its replaced keys' digests.
    fn keys(&self) -> Vec<[u8; 32]> {
        let mut keys: Vec<[u8; 32]> = Vec::with_capacity(self.slot_count());
        // A key can be both a slot's and a replaced one when the two reads an entry is made from
        // straddle a regeneration; it is mapped once.
        for key in (0..self.slot_count())
            .map(|i| *self.digest(i))
            .chain(self.retired().iter().map(|r| r.digest))
        {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }

    /// The slot whose current key digests to `digest`, each slot compared in constant time. The
    /// caller found this entry in the index by the id in the request's path, so the keyed digest
    /// is checked against this resource's slots alone: no second map lookup, and no second lock
    /// shared by every check.
    pub fn slot_with_digest(&self, digest: &[u8; 32]) -> Option<usize> {
        let mut found = None;
        // Every slot is compared, whichever matches, so the time does not say which one did.
        for i in 0..self.slot_count() {
            if constant_time_eq(self.digest(i), digest) {
                found = Some(i);
            }
        }
        found
    }
}

/// An entry, read under its shard's lock: hold it only for the synchronous part of a call (it is
/// not `Send`, so it cannot be held across an `.await`).
pub struct EntryRef<'a> {
    shard: RwLockReadGuard<'a, Shard>,
    at: usize,
}

impl std::ops::Deref for EntryRef<'_> {
    type Target = Entry;
    fn deref(&self) -> &Entry {
        self.shard.entries[self.at]
            .as_ref()
            .expect("a located entry is present while its shard is locked")
    }
}

impl EntryRef<'_> {
    /// The resource's ARM id, as the client created it.
    pub fn resource_id(&self) -> String {
        let scope = self.scope();
        let name = self.name();
        let mut id = String::with_capacity(scope.len() + name.len());
        id.push_str(scope);
        id.push_str(name);
        id
    }

    /// The resource id up to its name (`/subscriptions/…/providers/{namespace}/{type}/`).
    pub fn scope(&self) -> &str {
        &self.shard.scopes[self.scope as usize]
    }
}

/// How many locks the resources are spread over. Every data-plane check takes one of them for
/// reading; with one lock for all, each check's two atomic updates of the lock's count moved its
/// cache line between the cores on every call.
const SHARDS: usize = 64;
/// An entry's location: its shard in the top bits, its place in the shard's vector below.
const PLACE_BITS: u32 = 26;

fn location(shard: usize, place: usize) -> u32 {
    ((shard as u32) << PLACE_BITS) | place as u32
}

fn split(at: u32) -> (usize, usize) {
    (
        (at >> PLACE_BITS) as usize,
        (at & ((1 << PLACE_BITS) - 1)) as usize,
    )
}

fn shard_index(key: &[u8]) -> usize {
    // Internal ids are random (version 4) and digests are HMAC outputs: their first byte spreads
    // keys evenly.
    usize::from(key[0]) % SHARDS
}

/// A key's first eight bytes, as two `u32`s so a table slot is 12 bytes, not 16.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Prefix([u32; 2]);

impl Prefix {
    fn of(key: &[u8]) -> Self {
        let word = |i: usize| u32::from_le_bytes(key[i..i + 4].try_into().expect("4 bytes"));
        Self([word(0), word(4)])
    }
}

impl std::hash::Hash for Prefix {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from(self.0[0]) | u64::from(self.0[1]) << 32);
    }
}

/// Hashes keys that are already uniformly random, and that no client can choose (keyed digests,
/// and internal ids rekey makes): SipHash's protection against chosen colliding keys buys nothing
/// for them, and it was a measurable part of each data-plane check. The bits are still mixed: every
/// key in a shard shares its first byte's low bits.
#[derive(Default, Clone, Copy)]
struct Mixed;

impl std::hash::BuildHasher for Mixed {
    type Hasher = Mixer;
    fn build_hasher(&self) -> Mixer {
        Mixer(0)
    }
}

struct Mixer(u64);

impl std::hash::Hasher for Mixer {
    fn finish(&self) -> u64 {
        let h = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^ (h >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(5) ^ n;
    }
}

/// One shard: its entries, the first eight bytes of every key it holds (internal ids of its own
/// entries, digests of any entry's keys) with their entries' locations, and its scopes.
#[derive(Default)]
struct Shard {
    keys: HashMap<Prefix, u32, Mixed>,
    entries: Vec<Option<Entry>>,
    /// Places in `entries` free for the next new entry.
    vacant: Vec<u32>,
    /// Resource ids up to the name, each stored once (never removed: one per group and type ever
    /// seen).
    scopes: Vec<Box<str>>,
    scope_ids: HashMap<Box<str>, u32>,
    /// Under a lease, this shard's unsettled resources ([`KeyIndex::unsettled`]) with the
    /// position of their change; almost always empty.
    unsettled: HashMap<Uuid, i64>,
}

impl Shard {
    fn scope_id(&mut self, scope: &str) -> u32 {
        if let Some(&id) = self.scope_ids.get(scope) {
            return id;
        }
        let id = self.scopes.len() as u32;
        self.scopes.push(scope.into());
        self.scope_ids.insert(scope.into(), id);
        id
    }
}

/// One shard's lock on its own cache lines, so checks on different shards share nothing.
#[repr(align(128))]
#[derive(Default)]
struct Padded(RwLock<Shard>);

/// A key the overflow table holds: a digest, or an internal id followed by zeros.
fn full_key(key: &[u8]) -> [u8; 32] {
    let mut full = [0u8; 32];
    full[..key.len()].copy_from_slice(key);
    full
}

/// Every entry, and every key mapped to its entry's location. Changed by one writer at a time
/// (the load, then catch-ups under [`KeyIndex::applied`]).
struct Table {
    shards: Box<[Padded]>,
    /// Keys whose first eight bytes another key already took; almost always empty.
    overflow: Mutex<HashMap<[u8; 32], u32>>,
    overflowed: AtomicUsize,
    /// Live key digests.
    digests: AtomicUsize,
}

impl Table {
    fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
            overflow: Mutex::new(HashMap::new()),
            overflowed: AtomicUsize::new(0),
            digests: AtomicUsize::new(0),
        }
    }

    fn read(&self, shard: usize) -> RwLockReadGuard<'_, Shard> {
        self.shards[shard]
            .0
            .read()
            .expect("index lock is never poisoned: no panics under it")
    }

    fn write(&self, shard: usize) -> RwLockWriteGuard<'_, Shard> {
        self.shards[shard]
            .0
            .write()
            .expect("index lock is never poisoned: no panics under it")
    }

    fn overflow_get(&self, key: &[u8]) -> Option<u32> {
        if self.overflowed.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.overflow
            .lock()
            .expect("overflow lock is never poisoned")
            .get(&full_key(key))
            .copied()
    }

    fn insert_key(&self, shard: &mut Shard, key: &[u8], at: u32) {
        match shard.keys.entry(Prefix::of(key)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(at);
            }
            std::collections::hash_map::Entry::Occupied(_) => {
                let mut overflow = self
                    .overflow
                    .lock()
                    .expect("overflow lock is never poisoned");
                overflow.insert(full_key(key), at);
                self.overflowed.store(overflow.len(), Ordering::Release);
            }
        }
    }

    fn remove_key(&self, shard: &mut Shard, key: &[u8], at: u32) {
        if self.overflowed.load(Ordering::Acquire) != 0 {
            let mut overflow = self
                .overflow
                .lock()
                .expect("overflow lock is never poisoned");
            if overflow.remove(&full_key(key)).is_some() {
                self.overflowed.store(overflow.len(), Ordering::Release);
                return;
            }
        }
        let prefix = Prefix::of(key);
        if shard.keys.get(&prefix) == Some(&at) {
            shard.keys.remove(&prefix);
        }
    }

    /// Where the entry with internal id `id` is, in its shard (locked by the caller).
    fn locate(&self, shard: &Shard, id: &Uuid) -> Option<usize> {
        let own = shard_index(id.as_bytes());
        // The eight bytes may be another key's (a digest's, pointing into another shard).
        let is_it = |at: u32| {
            let (at_shard, place) = split(at);
            (at_shard == own
                && shard
                    .entries
                    .get(place)?
                    .as_ref()
                    .is_some_and(|e| e.internal_id == *id))
            .then_some(place)
        };
        shard
            .keys
            .get(&Prefix::of(id.as_bytes()))
            .and_then(|&at| is_it(at))
            .or_else(|| self.overflow_get(id.as_bytes()).and_then(is_it))
    }

    fn resource(&self, id: &Uuid) -> Option<EntryRef<'_>> {
        let shard = self.read(shard_index(id.as_bytes()));
        let at = self.locate(&shard, id)?;
        Some(EntryRef { shard, at })
    }

    fn find(&self, digest: &[u8; 32]) -> Option<Found<'_>> {
        let at = self
            .read(shard_index(digest))
            .keys
            .get(&Prefix::of(digest))
            .copied();
        // The entry, read after the key's shard, has the final say: a key replaced in between no
        // longer matches any of its slots.
        let open = |at: u32| {
            let (shard, place) = split(at);
            let shard = self.read(shard);
            let entry = shard.entries.get(place)?.as_ref()?;
            let slot = match entry.slot_with_digest(digest) {
                Some(slot) => slot,
                // A replaced key opens its slot only during its overlap.
                None => match rotation::old_key(entry, digest, rotation::now_micros(), 0)? {
                    rotation::OldKey::Grace(slot) => slot,
                    rotation::OldKey::Retired(_) => return None,
                },
            };
            Some(Found {
                entry: EntryRef { shard, at: place },
                slot,
            })
        };
        at.and_then(open)
            .or_else(|| self.overflow_get(digest).and_then(open))
    }

    fn owner(&self, digest: &[u8; 32]) -> Option<Uuid> {
        let holds = |at: u32| {
            let (shard, place) = split(at);
            let shard = self.read(shard);
            let entry = shard.entries.get(place)?.as_ref()?;
            entry.keys().contains(digest).then_some(entry.internal_id)
        };
        let at = self
            .read(shard_index(digest))
            .keys
            .get(&Prefix::of(digest))
            .copied();
        at.and_then(holds)
            .or_else(|| self.overflow_get(digest).and_then(holds))
    }

    /// Puts `entry` in the index, in place of the entry with its internal id if there is one (at
    /// the same location, so the keys it keeps go on finding it, and with the old entry's use
    /// counters); returns the uses noted on the entry it replaced.
    fn put(&self, mut entry: Entry) -> Vec<KeyUse> {
        let shard_at = shard_index(entry.internal_id.as_bytes());
        let new = entry.keys();
        let mut shard = self.write(shard_at);
        let (place, old, pending) = match self.locate(&shard, &entry.internal_id) {
            Some(place) => {
                let mut old = shard.entries[place].take().expect("located");
                let pending = pending_uses(&old);
                carry_over(&mut old, &mut entry);
                shard.entries[place] = Some(entry);
                (place, old.keys(), pending)
            }
            None => {
                let place = match shard.vacant.pop() {
                    Some(place) => place as usize,
                    None => {
                        shard.entries.push(None);
                        shard.entries.len() - 1
                    }
                };
                let id = entry.internal_id;
                shard.entries[place] = Some(entry);
                self.insert_key(&mut shard, id.as_bytes(), location(shard_at, place));
                (place, Vec::new(), Vec::new())
            }
        };
        drop(shard);
        let at = location(shard_at, place);
        // Keys both entries hold stay mapped throughout: a check of one never misses.
        for digest in old.iter().filter(|d| !new.contains(d)) {
            self.remove_key(&mut self.write(shard_index(digest)), digest, at);
        }
        for digest in new.iter().filter(|d| !old.contains(d)) {
            self.insert_key(&mut self.write(shard_index(digest)), digest, at);
        }
        self.digests.fetch_add(new.len(), Ordering::Relaxed);
        self.digests.fetch_sub(old.len(), Ordering::Relaxed);
        pending
    }

    /// Removes the entry with internal id `id`, if any; returns the uses noted on it.
    fn remove(&self, id: &Uuid) -> Vec<KeyUse> {
        let shard_at = shard_index(id.as_bytes());
        let mut shard = self.write(shard_at);
        let Some(place) = self.locate(&shard, id) else {
            return Vec::new();
        };
        let old = shard.entries[place].take().expect("located");
        let at = location(shard_at, place);
        self.remove_key(&mut shard, id.as_bytes(), at);
        drop(shard);
        let keys = old.keys();
        for digest in &keys {
            self.remove_key(&mut self.write(shard_index(digest)), digest, at);
        }
        self.digests.fetch_sub(keys.len(), Ordering::Relaxed);
        // Only now that no key names this place may another entry take it.
        self.write(shard_at).vacant.push(place as u32);
        pending_uses(&old)
    }

    /// Makes the entry for `indexed`, with its rotation controls, its scope interned in its
    /// shard; `None` (and a warning) for a resource whose slots do not match its type's, which
    /// then serves no key.
    fn entry_of(
        &self,
        indexed: IndexedResource,
        controls: Option<rotation::Controls>,
    ) -> Option<Entry> {
        let r = indexed.resource;
        let provider = r.id.provider;
        let name = r.id.name.as_str();
        let mut packed = vec![0u8; provider.slots.len() * SLOT_BYTES + name.len()];
        let mut present = vec![false; provider.slots.len()];
        let mut signing_keys: Vec<Option<hmac::Key>> =
            provider.slots.iter().map(|_| None).collect();
        for s in indexed.slots {
            let Some(i) = provider.slots.iter().position(|p| p.name == s.slot.name) else {
                continue;
            };
            signing_keys[i] = s.secret.and_then(|secret| signing_key(secret.expose()));
            let at = i * SLOT_BYTES;
            packed[at..at + 32].copy_from_slice(&s.digest);
            let generation = u32::try_from(s.generation).unwrap_or(u32::MAX);
            packed[at + 32..at + 36].copy_from_slice(&generation.to_le_bytes());
            present[i] = true;
        }
        if present.contains(&false) {
            tracing::warn!(internal_id = %r.internal_id, "a resource lacks some of its type's key slots; it serves no key");
            return None;
        }
        packed[provider.slots.len() * SLOT_BYTES..].copy_from_slice(name.as_bytes());
        let (disabled, retired) = rotation::controls_of(provider, controls);
        let full = r.id.to_string();
        let gateway = r.spec.upstream().ok().flatten().map(|url| {
            Arc::new(Gateway {
                upstream: Upstream::new(url),
                resource_id: full.as_str().into(),
            })
        });
        let rare =
            (gateway.is_some() || provider.signs_requests || !retired.is_empty()).then(|| {
                Box::new(Rare {
                    location: r.spec.location.as_str().into(),
                    gateway,
                    signing_keys: signing_keys.into_boxed_slice(),
                    retired: retired.into_boxed_slice(),
                })
            });
        let scope = full.strip_suffix(name).unwrap_or(&full);
        let scope = self
            .write(shard_index(r.internal_id.as_bytes()))
            .scope_id(scope);
        Some(Entry {
            internal_id: r.internal_id,
            provider,
            packed: packed.into_boxed_slice(),
            rare,
            uses: OnceLock::new(),
            scope,
            key_auth_enabled: r.spec.key_auth_enabled(),
            disabled,
        })
    }
}

/// The HMAC key a client signs with, from its base64 account key (types that sign requests).
pub fn signing_key(secret: &str) -> Option<hmac::Key> {
    let bytes = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(secret)
            .ok()?,
    );
    Some(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
}

/// Gives `new`, about to replace `old`, what `old` counted and last saw. Its pending last uses were
/// taken first (with `old`'s generations); the new entry notes its slots' next uses afresh.
fn carry_over(old: &mut Entry, new: &mut Entry) {
    if let Some(uses) = old.uses.take() {
        for slot in uses.iter() {
            slot.last_used.store(0, Ordering::Relaxed);
            slot.flushed.store(0, Ordering::Relaxed);
        }
        if new.slot_count() == uses.len() {
            let _ = new.uses.set(uses);
        }
    }
    rotation::carry_over(old, new);
}

/// Takes the uses noted on `entry`'s slots.
fn pending_uses(entry: &Entry) -> Vec<KeyUse> {
    let Some(uses) = entry.noted_uses() else {
        return Vec::new();
    };
    uses.iter()
        .enumerate()
        .filter_map(|(i, s)| {
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
                slot: entry.slot(i).name,
                generation: entry.generation(i),
                at: time::OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1000)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            })
        })
        .collect()
}

/// How precisely last uses are kept: a slot's recorded last use is at most this old.
pub const USE_RESOLUTION_MICROS: i64 = 60_000_000;

/// A key found in the index: its entry (read under its shard's lock) and slot.
pub struct Found<'a> {
    pub entry: EntryRef<'a>,
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
    table: Table,
    /// Uses noted on entries that a catch-up replaced before they were flushed.
    spilled: Mutex<Vec<KeyUse>>,
    /// The last change-feed sequence number applied; the lock also serializes catch-ups (and so
    /// every change to the table).
    applied: tokio::sync::Mutex<i64>,
    /// `applied` as last published, readable without the lock (to skip notices already applied).
    applied_hint: AtomicI64,
    /// `None` when this process is the store's only writer: then the index is always current.
    freshness: Option<Freshness>,
    /// [`LOADING`], then [`JOINING`], then [`OPEN`]: until the index is open, checks read their
    /// resource from the store ([`KeyIndex::read_resource`]).
    phase: AtomicU8,
    /// How many resources are unsettled ([`Self::unsettled`]) in all shards: with none, a check
    /// pays one atomic load for the question.
    unsettled_count: AtomicUsize,
    /// Counts taken from the one-resource tables of calls served while the index loaded.
    spilled_counts: Mutex<HashMap<(Uuid, &'static str, i64), rekey_store::SlotUsage>>,
}

/// The index is being filled: catch-ups wait for it to finish (every check reads the store).
const LOADING: u8 = 0;
/// The index is filled and follows the feed, and the node is joining the others (under a lease):
/// checks still read the store, since the index is not trusted before the first lease.
const JOINING: u8 = 1;
/// Checks read the index.
const OPEN: u8 = 2;

/// One resource read from the store for one check, while the index loads: the same entry the
/// index would hold, in a table of its own.
pub struct Single(Table);

impl Single {
    pub fn resource(&self, id: &Uuid) -> Option<EntryRef<'_>> {
        self.0.resource(id)
    }

    pub fn find(&self, digest: &[u8; 32]) -> Option<Found<'_>> {
        self.0.find(digest)
    }
}

/// Where a check finds its resource: the index, or (while it loads) the one resource read for it.
#[derive(Clone, Copy)]
pub enum Lookup<'a> {
    Index(&'a KeyIndex),
    Single(&'a Single),
}

impl<'a> Lookup<'a> {
    /// The one resource read for this call if there is one, else the index.
    pub fn of(index: &'a KeyIndex, single: Option<&'a Single>) -> Self {
        single.map_or(Lookup::Index(index), Lookup::Single)
    }

    pub fn resource(self, id: &Uuid) -> Option<EntryRef<'a>> {
        match self {
            Lookup::Index(index) => index.resource(id),
            Lookup::Single(single) => single.resource(id),
        }
    }

    pub fn find(self, digest: &[u8; 32]) -> Option<Found<'a>> {
        match self {
            Lookup::Index(index) => index.find(digest),
            Lookup::Single(single) => single.find(digest),
        }
    }
}

impl KeyIndex {
    /// An empty index at the change feed's current position, to be filled by [`Self::fill`]; until
    /// it is open ([`Self::open`]) checks read their resource from the store, so a node answers
    /// its first call long before a million resources have loaded. Under a lease the index is
    /// not trusted until the first lease is granted.
    pub async fn new(store: Arc<dyn Store>, consistency: Consistency) -> Result<Self, StoreError> {
        let origin = Instant::now();
        let latest = store.latest_change().await?;
        Ok(Self {
            store,
            table: Table::new(),
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
                confirmed: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                leased_until: AtomicU64::new(0),
            }),
            phase: AtomicU8::new(LOADING),
            unsettled_count: AtomicUsize::new(0),
            spilled_counts: Mutex::new(HashMap::new()),
        })
    }

    /// Loads every resource, then applies every change committed since [`Self::new`] read the
    /// feed's position (reloading is idempotent, so a change both read and applied is harmless).
    /// Nothing else changes the table meanwhile: catch-ups wait for the load's end. Called again
    /// after a failure, it starts over on the same table.
    pub async fn fill(&self) -> Result<(), StoreError> {
        let origin = Instant::now();
        let mut controls = rotation::by_resource(self.store.slot_controls(None).await?);
        let controls_read = origin.elapsed();
        let mut building = Duration::ZERO;
        let table = &self.table;
        self.store
            .each_index_entry(&mut |indexed| {
                let started = Instant::now();
                let id = indexed.resource.internal_id;
                if let Some(entry) = table.entry_of(indexed, controls.remove(&id)) {
                    table.put(entry);
                }
                building += started.elapsed();
            })
            .await?;
        let read = origin.elapsed();
        for shard in table.shards.iter() {
            let mut shard = shard.0.write().expect("index lock is never poisoned");
            shard.entries.shrink_to_fit();
            shard.keys.shrink_to_fit();
        }
        tracing::info!(
            controls_ms = controls_read.as_millis() as u64,
            read_ms = (read - controls_read - building).as_millis() as u64,
            build_ms = building.as_millis() as u64,
            shrink_ms = (origin.elapsed() - read).as_millis() as u64,
            "key index load timings"
        );
        // The load's two reads (controls, then keys) are not one snapshot: this catch-up makes
        // every resource changed meanwhile right. A catch-up asked for while the index loaded
        // returned at once (its caller's change is in this one, as it committed before); from
        // here on they apply changes to the table.
        let mut applied = self.applied.lock().await;
        self.catch_up_locked(&mut applied).await?;
        self.phase.store(JOINING, Ordering::Release);
        Ok(())
    }

    /// Lets checks read the index (after [`Self::fill`], and after joining under a lease).
    pub fn open(&self) {
        self.phase.store(OPEN, Ordering::Release);
    }

    /// Whether checks must read their resource from the store: the index is not open yet.
    pub fn is_loading(&self) -> bool {
        self.phase.load(Ordering::Acquire) != OPEN
    }

    /// Reads the resource with internal id `id` (text from a request path) from the store, as a
    /// catch-up would ([`Self::read_entries`]).
    pub async fn read_resource(&self, id: &str) -> Result<Single, StoreError> {
        let table = Table::new();
        if let Ok(id) = Uuid::try_parse(id) {
            for entry in self.read_entries(&table, &[id]).await?.into_values() {
                table.put(entry);
            }
        }
        Ok(Single(table))
    }

    /// Reads the entries of the resources `only` from the store, for `table` (which interns their
    /// scopes); a deleted resource is absent.
    async fn read_entries(
        &self,
        table: &Table,
        only: &[Uuid],
    ) -> Result<HashMap<Uuid, Entry>, StoreError> {
        // Keys first, then controls: the two reads are not one snapshot, and a regeneration that
        // commits between them must not leave its slot's key in neither. Read in this order, the
        // key it replaced is still current in the first read and already in its overlap in the
        // second; read the other way round, it would be in neither, and refused as unknown until
        // the next catch-up (the linearizability checker found that history).
        let indexed = self.store.index_entries(Some(only)).await?;
        let mut controls = rotation::by_resource(self.store.slot_controls(Some(only)).await?);
        let mut entries = HashMap::new();
        for indexed in indexed {
            let id = indexed.resource.internal_id;
            if let Some(entry) = table.entry_of(indexed, controls.remove(&id)) {
                entries.insert(id, entry);
            }
        }
        Ok(entries)
    }

    /// Reads the resource one of whose keys digests to `digest` from the store (`POST /verify`
    /// while the index loads).
    pub async fn read_key(&self, digest: &[u8; 32]) -> Result<Single, StoreError> {
        match self.store.resource_with_key(digest).await? {
            Some(id) => self.read_resource(&id.to_string()).await,
            None => Ok(Single(Table::new())),
        }
    }

    /// Keeps what a call counted on its one-resource table, for the next flush.
    pub fn spill(&self, single: Single) {
        let now = rotation::now_micros();
        let mut counts = self
            .spilled_counts
            .lock()
            .expect("spill lock is never poisoned");
        let mut uses = self.spilled.lock().expect("spill lock is never poisoned");
        for shard in single.0.shards.iter() {
            let shard = shard.0.read().expect("index lock is never poisoned");
            for entry in shard.entries.iter().flatten() {
                uses.extend(pending_uses(entry));
                rotation::take_usage(entry, now, &mut counts);
            }
        }
    }

    /// After [`Self::catch_up`]: a feed position at or after every change committed before it.
    /// While the index loads, the catch-up applied nothing, and the feed's latest position is
    /// what other nodes must have applied.
    pub async fn caught_up_through(&self) -> Result<i64, StoreError> {
        if self.phase.load(Ordering::Acquire) == LOADING {
            return self.store.latest_change().await;
        }
        Ok(self.applied())
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
        if self.phase.load(Ordering::Acquire) == LOADING {
            // Checks read the store until the load ends, and the load's own catch-up, which takes
            // this lock after it is released, applies every change committed before now.
            return Ok(());
        }
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
        let mut fresh = self.read_entries(&self.table, &changed).await?;
        if self
            .freshness
            .as_ref()
            .is_some_and(|freshness| freshness.bound.is_none())
        {
            // Before the entries change: a check that sees a new entry also sees it unsettled.
            for id in &changed {
                let mut shard = self.table.write(shard_index(id.as_bytes()));
                if shard.unsettled.insert(*id, latest).is_none() {
                    self.unsettled_count.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
        for id in &changed {
            // An entry is replaced in place under its shard's lock, so a check sees the old entry
            // or the new one, never neither.
            let pending = match fresh.remove(id) {
                Some(entry) => self.table.put(entry),
                None => self.table.remove(id),
            };
            if !pending.is_empty() {
                self.spilled
                    .lock()
                    .expect("spill lock is never poisoned")
                    .extend(pending);
            }
        }
        *applied = latest;
        self.applied_hint.store(latest, Ordering::Release);
        Ok(())
    }

    pub fn resource(&self, id: &Uuid) -> Option<EntryRef<'_>> {
        self.table.resource(id)
    }

    /// Under a lease: the feed position of a change this node applied to resource `id` and does
    /// not yet know every node has applied. Other nodes may not have it yet, and the writer has
    /// not answered: a check that answered from the new entry now, before a check on a node still
    /// holding the old one, would order the change both before and after it. So a check on an
    /// unsettled resource first waits until every node has applied the change (as its writer
    /// does), then reads the entry again.
    pub fn unsettled(&self, id: &Uuid) -> Option<i64> {
        if self.unsettled_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.table
            .read(shard_index(id.as_bytes()))
            .unsettled
            .get(id)
            .copied()
    }

    /// The latest position of any unsettled change.
    pub fn latest_unsettled(&self) -> Option<i64> {
        if self.unsettled_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        (0..SHARDS)
            .filter_map(|i| self.table.read(i).unsettled.values().copied().max())
            .max()
    }

    /// The internal id of the resource that holds a key digesting to `digest`, current or
    /// replaced (whether or not it opens anything now).
    pub fn owner(&self, digest: &[u8; 32]) -> Option<Uuid> {
        self.table.owner(digest)
    }

    /// Every node has applied every change up to `position`: none of those is unsettled now.
    pub fn settle(&self, position: i64) {
        if self.unsettled_count.load(Ordering::Acquire) == 0 {
            return;
        }
        for i in 0..SHARDS {
            if self
                .table
                .read(i)
                .unsettled
                .values()
                .all(|&at| at > position)
            {
                continue;
            }
            let mut shard = self.table.write(i);
            let before = shard.unsettled.len();
            shard.unsettled.retain(|_, at| *at > position);
            self.unsettled_count
                .fetch_sub(before - shard.unsettled.len(), Ordering::AcqRel);
        }
    }

    /// The resource and slot whose current key digests to `digest` (or whose replaced key in its
    /// overlap does), compared in constant time.
    pub fn find(&self, digest: &[u8; 32]) -> Option<Found<'_>> {
        self.table.find(digest)
    }

    /// Notes that `entry`'s slot accepted a request at `now` (Unix microseconds, the caller's
    /// [`rotation::now_micros`]: one clock read per call). A slot in constant use is noted once per
    /// [`USE_RESOLUTION_MICROS`]: its first use in each such window is what the store gets, so the
    /// flush writes a row per slot a minute, not a row per slot each flush (with 20,000 keys in
    /// use, that was 20,000 updates a second).
    pub fn record_use(&self, entry: &Entry, slot: usize, now: i64) {
        entry.uses()[slot].note_use(now);
    }

    /// Takes every use noted since the last call, for the store.
    pub fn drain_uses(&self) -> Vec<KeyUse> {
        let mut out =
            std::mem::take(&mut *self.spilled.lock().expect("spill lock is never poisoned"));
        for i in 0..SHARDS {
            let shard = self.table.read(i);
            for entry in shard.entries.iter().flatten() {
                if entry.noted_uses().is_some() {
                    out.extend(pending_uses(entry));
                }
            }
        }
        out
    }

    /// Takes every per-minute count noted since the last call (`rotation`), one record per
    /// resource, slot and minute.
    pub fn drain_counts(&self) -> Vec<rekey_store::SlotUsage> {
        let now = rotation::now_micros();
        let mut out = std::mem::take(
            &mut *self
                .spilled_counts
                .lock()
                .expect("spill lock is never poisoned"),
        );
        for i in 0..SHARDS {
            let shard = self.table.read(i);
            for entry in shard.entries.iter().flatten() {
                rotation::take_usage(entry, now, &mut out);
            }
        }
        out.into_values().collect()
    }

    /// How many keys the index maps: current keys, and replaced keys it still recognises.
    pub fn len(&self) -> usize {
        self.table.digests.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::dataplane::test_store::{audit, TestStore};

    /// A store with one Cognitive Services account whose key1 was regenerated with an overlap:
    /// the store, the account's internal id, its replaced key1 and its current key1, and its id.
    async fn store_with_an_overlap() -> (
        tempfile::TempDir,
        Arc<dyn Store>,
        Uuid,
        String,
        String,
        rekey_core::ResourceId,
    ) {
        use rekey_store::RegenerateOptions;
        let test = TestStore::new().await;
        let (resource, id) = test.account("acct", "first").await;
        let TestStore { dir, store, .. } = test;
        let options = RegenerateOptions {
            grace: Some(time::Duration::minutes(10)),
            remember: None,
        };
        store
            .regenerate_with(
                &id,
                vec![(
                    &PROVIDER.slots[0],
                    rekey_core::Secret::new("second-key1".into()),
                )],
                None,
                &audit(),
                &options,
            )
            .await
            .unwrap();
        (
            dir,
            store,
            resource.internal_id,
            "first-key1".into(),
            "second-key1".into(),
            id,
        )
    }

    #[tokio::test]
    async fn under_a_lease_a_change_stays_unsettled_until_every_node_is_known_to_have_it() {
        let (_dir, store, id, _, _, resource) = store_with_an_overlap().await;
        let index = KeyIndex::new(store.clone(), Consistency::Leased)
            .await
            .unwrap();
        index.fill().await.unwrap();
        index.open();
        assert_eq!(index.unsettled(&id), None, "what the load read is settled");
        store
            .regenerate(
                &resource,
                vec![(&PROVIDER.slots[1], rekey_core::Secret::new("third".into()))],
                None,
                &audit(),
            )
            .await
            .unwrap();
        index.catch_up().await.unwrap();
        let position = index.applied();
        assert_eq!(index.unsettled(&id), Some(position));
        assert_eq!(index.latest_unsettled(), Some(position));
        index.settle(position - 1);
        assert_eq!(
            index.unsettled(&id),
            Some(position),
            "an earlier position settles nothing"
        );
        index.settle(position);
        assert_eq!(index.unsettled(&id), None);
        assert_eq!(index.latest_unsettled(), None);
    }

    #[tokio::test]
    async fn a_node_still_loading_its_index_answers_from_the_store_keys_current_and_in_overlap() {
        let (_dir, store, id, old, new, _) = store_with_an_overlap().await;
        let index = KeyIndex::new(store.clone(), Consistency::OnlyWriter)
            .await
            .unwrap();
        assert!(index.is_loading());
        for key in [&old, &new] {
            let single = index.read_key(&store.key_digest(key)).await.unwrap();
            let found = single
                .find(&store.key_digest(key))
                .expect("the key opens its slot");
            assert_eq!((found.entry.internal_id, found.slot), (id, 0));
        }
        let single = index
            .read_key(&store.key_digest("never-issued"))
            .await
            .unwrap();
        assert!(single.find(&store.key_digest("never-issued")).is_none());
        let single = index.read_resource(&id.to_string()).await.unwrap();
        assert_eq!(single.resource(&id).unwrap().name(), "acct");
        assert!(index
            .read_resource("not-an-id")
            .await
            .unwrap()
            .resource(&id)
            .is_none());
        // The table is the load's alone until it ends.
        index.catch_up().await.unwrap();
        assert!(index.is_empty() && index.resource(&id).is_none());

        index.fill().await.unwrap();
        index.open();
        assert!(!index.is_loading());
        for key in [&old, &new] {
            let found = index
                .find(&store.key_digest(key))
                .expect("the key opens its slot");
            assert_eq!((found.entry.internal_id, found.slot), (id, 0));
        }
    }

    const PROVIDER: &Provider = &rekey_core::providers::cognitive_services::ACCOUNTS;

    fn entry(table: &Table, id: Uuid, digests: [[u8; 32]; 2]) -> Entry {
        let scope = table.write(shard_index(id.as_bytes())).scope_id(
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.CognitiveServices/accounts/",
        );
        let mut packed = Vec::new();
        for d in digests {
            packed.extend_from_slice(&d);
            packed.extend_from_slice(&1u32.to_le_bytes());
        }
        packed.extend_from_slice(b"n");
        Entry {
            internal_id: id,
            provider: PROVIDER,
            packed: packed.into_boxed_slice(),
            rare: None,
            uses: OnceLock::new(),
            scope,
            key_auth_enabled: true,
            disabled: 0,
        }
    }

    /// A digest whose first eight bytes are `prefix`'s and whose last byte is `last`.
    fn digest(prefix: u8, last: u8) -> [u8; 32] {
        let mut d = [prefix; 32];
        d[31] = last;
        d
    }

    fn found(table: &Table, d: &[u8; 32]) -> Option<(Uuid, usize)> {
        table.find(d).map(|f| (f.entry.internal_id, f.slot))
    }

    #[test]
    fn a_digest_opens_only_its_own_slot_of_the_resource() {
        let table = Table::new();
        let e = entry(&table, Uuid::new_v4(), [digest(1, 1), digest(2, 2)]);
        assert_eq!(e.slot_with_digest(&digest(1, 1)), Some(0));
        assert_eq!(e.slot_with_digest(&digest(2, 2)), Some(1));
        assert_eq!(e.slot_with_digest(&digest(2, 3)), None);
        assert_eq!(e.slot_with_digest(&[0u8; 32]), None);
        assert_eq!(e.slot(1).name, "key2");
    }

    #[test]
    fn resources_spread_over_every_shard() {
        let mut seen = [false; SHARDS];
        for _ in 0..SHARDS * 64 {
            seen[shard_index(Uuid::new_v4().as_bytes())] = true;
        }
        assert!(seen.iter().all(|&s| s), "some shard never chosen: {seen:?}");
    }

    #[test]
    fn keys_alike_in_their_first_eight_bytes_are_each_found() {
        let table = Table::new();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        // b's key2 shares its first eight bytes with a's key1, and so does a's own key2.
        table.put(entry(&table, a, [digest(7, 1), digest(7, 2)]));
        table.put(entry(&table, b, [digest(9, 1), digest(7, 3)]));
        assert_eq!(found(&table, &digest(7, 1)), Some((a, 0)));
        assert_eq!(found(&table, &digest(7, 2)), Some((a, 1)));
        assert_eq!(found(&table, &digest(7, 3)), Some((b, 1)));
        assert_eq!(
            found(&table, &digest(7, 4)),
            None,
            "eight equal bytes are not a key"
        );
        assert_eq!(table.overflowed.load(Ordering::Relaxed), 2);

        // The key that holds the eight bytes goes; those that overflowed are still found.
        table.remove(&a);
        assert_eq!(found(&table, &digest(7, 1)), None);
        assert_eq!(found(&table, &digest(7, 2)), None);
        assert_eq!(found(&table, &digest(7, 3)), Some((b, 1)));
        assert!(table.resource(&a).is_none());
        table.remove(&b);
        assert_eq!(table.overflowed.load(Ordering::Relaxed), 0);
        assert_eq!(table.digests.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn an_internal_id_alike_a_digest_in_its_first_bytes_finds_its_own_resource() {
        let table = Table::new();
        let a = Uuid::new_v4();
        let mut clash = [0u8; 32];
        clash[..16].copy_from_slice(a.as_bytes());
        clash[31] = 1;
        let b = Uuid::new_v4();
        // b's key is in a's shard with a's id's first eight bytes, put there before a exists.
        table.put(entry(&table, b, [clash, digest(3, 3)]));
        table.put(entry(&table, a, [digest(4, 4), digest(5, 5)]));
        assert_eq!(table.resource(&a).map(|e| e.internal_id), Some(a));
        assert_eq!(table.resource(&b).map(|e| e.internal_id), Some(b));
        assert_eq!(found(&table, &clash), Some((b, 0)));
        assert!(table.resource(&Uuid::new_v4()).is_none());
    }

    #[test]
    fn a_replaced_entry_keeps_its_place_and_its_unchanged_key() {
        let table = Table::new();
        let a = Uuid::new_v4();
        table.put(entry(&table, a, [digest(1, 1), digest(2, 2)]));
        let place = table.resource(&a).map(|e| e.at);
        // key2 regenerated: key1 is found throughout, the old key2 never again.
        table.put(entry(&table, a, [digest(1, 1), digest(3, 3)]));
        assert_eq!(table.resource(&a).map(|e| e.at), place);
        assert_eq!(found(&table, &digest(1, 1)), Some((a, 0)));
        assert_eq!(found(&table, &digest(2, 2)), None);
        assert_eq!(found(&table, &digest(3, 3)), Some((a, 1)));
        assert_eq!(table.digests.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_place_freed_by_a_deletion_serves_only_its_new_resource() {
        let table = Table::new();
        let a = Uuid::new_v4();
        table.put(entry(&table, a, [digest(1, 1), digest(2, 2)]));
        table.remove(&a);
        // Another resource in the same shard takes the freed place.
        let b = loop {
            let b = Uuid::new_v4();
            if shard_index(b.as_bytes()) == shard_index(a.as_bytes()) {
                break b;
            }
        };
        table.put(entry(&table, b, [digest(5, 5), digest(6, 6)]));
        assert!(table.resource(&a).is_none());
        assert_eq!(found(&table, &digest(1, 1)), None);
        assert_eq!(found(&table, &digest(5, 5)), Some((b, 0)));
        assert_eq!(table.resource(&b).map(|e| e.resource_id()).as_deref(),
            Some("/subscriptions/s/resourceGroups/g/providers/Microsoft.CognitiveServices/accounts/n"));
    }

    #[test]
    fn a_use_is_noted_once_per_resolution_window() {
        let table = Table::new();
        let a = Uuid::new_v4();
        table.put(entry(&table, a, [digest(1, 1), digest(2, 2)]));
        let e = table.resource(&a).unwrap();
        let t0 = 1_800_000_000_000_000_i64;
        assert!(
            pending_uses(&e).is_empty(),
            "an entry never called has no use counters"
        );
        e.uses()[1].note_use(t0);
        let uses = pending_uses(&e);
        assert_eq!(uses.len(), 1);
        assert_eq!((uses[0].slot, uses[0].generation), ("key2", 1));
        assert_eq!(uses[0].at.unix_timestamp(), t0 / 1_000_000);
        e.uses()[1].note_use(t0 + 1_000_000);
        assert!(pending_uses(&e).is_empty(), "noted again within the window");
        e.uses()[1].note_use(t0 + USE_RESOLUTION_MICROS);
        assert_eq!(
            pending_uses(&e).len(),
            1,
            "a new window notes the use again"
        );
    }

    #[test]
    fn a_replaced_entry_keeps_its_counts_and_notes_its_new_key_afresh() {
        let table = Table::new();
        let a = Uuid::new_v4();
        table.put(entry(&table, a, [digest(1, 1), digest(2, 2)]));
        let t0 = 1_800_000_000_000_000_i64;
        let client: std::net::IpAddr = "127.0.0.1".parse().unwrap();
        {
            let e = table.resource(&a).unwrap();
            e.uses()[1].note_use(t0);
            e.usage(1).count(t0, client);
        }
        // key2 regenerated: the pending use goes with its old generation, the count stays.
        let mut replacement = entry(&table, a, [digest(1, 1), digest(3, 3)]);
        replacement.packed[SLOT_BYTES + 32..SLOT_BYTES + 36].copy_from_slice(&2u32.to_le_bytes());
        let pending = table.put(replacement);
        assert_eq!(pending.len(), 1);
        assert_eq!((pending[0].slot, pending[0].generation), ("key2", 1));
        let e = table.resource(&a).unwrap();
        assert_eq!(e.usage(1).last().map(|(at, _)| at), Some(t0));
        let mut counts = HashMap::new();
        rotation::take_usage(&e, t0, &mut counts);
        assert_eq!(counts.values().map(|u| u.uses).sum::<u64>(), 1);
        e.uses()[1].note_use(t0 + 1_000_000);
        let uses = pending_uses(&e);
        assert_eq!(uses.len(), 1, "the new key's first use is noted at once");
        assert_eq!(uses[0].generation, 2);
    }
}
