//! Owns the data plane's part of rekey's own rotation controls: counting each slot's uses (and
//! its retired keys' presentations) per minute with the last client address, lock-free on the
//! request path and taken by the usage flusher; recognising a presented key as one a regeneration
//! replaced (refused, with when, and never a throttle hit) or as one still in its overlap
//! (accepted); and disabled slots. The index keeps these facts on its entries ([`controls_of`]);
//! expiry of an overlap is checked against the clock on each call, not left to a later change.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use rekey_core::secret::constant_time_eq;
use rekey_core::Provider;
use rekey_store::{SlotControls, SlotUsage};
use ring::hmac;
use time::OffsetDateTime;
use uuid::Uuid;

use super::index::Entry;

const MICROS_PER_MINUTE: i64 = 60_000_000;

/// Now, in Unix microseconds.
pub fn now_micros() -> i64 {
    // As `OffsetDateTime::now_utc`, without its 128-bit division on every call.
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A time as the data plane's messages write it: RFC 3339, to the second, in UTC.
pub fn format_time(micros: i64) -> String {
    let t = to_time(micros);
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn to_time(micros: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// What one take of a [`UsageCell`] gives: the minute (Unix minutes) and count, and the last use
/// (Unix microseconds) with its client when newer than the previous take's.
struct Taken {
    minute: i64,
    count: u64,
    last: Option<(i64, IpAddr)>,
}

/// One slot's (or retired key's) uses on this node since the last flush.
#[derive(Default)]
pub struct UsageCell {
    /// The minute counted into (Unix minutes) in the high 32 bits, the count in the low 32: one
    /// atomic add per use. Uses made after a minute ends and before the next flush (at most one
    /// flush interval) count into the minute before.
    counted: AtomicU64,
    /// The last use (Unix microseconds, 0 for none), to the second: written once a second at most.
    seen: AtomicI64,
    /// The last use already handed to the store.
    taken: AtomicI64,
    /// The last client, as IPv6 bits (IPv4 mapped): two words, written only when the client
    /// changes. An IPv6 client racing another may pair halves of both; IPv4 clients cannot.
    client_high: AtomicU64,
    client_low: AtomicU64,
}

impl UsageCell {
    /// Counts a use at `now` (Unix microseconds) from `client`.
    pub fn count(&self, now: i64, client: IpAddr) {
        let minute = (now / MICROS_PER_MINUTE) as u64;
        let packed = self.counted.load(Ordering::Relaxed);
        let starts_minute = packed >> 32 != minute && packed & u64::from(u32::MAX) == 0;
        // A cell with nothing pending from an earlier minute moves to this one; otherwise (or
        // when a racing use or take moved it first) the use is added.
        let moved = starts_minute
            && self
                .counted
                .compare_exchange(
                    packed,
                    minute << 32 | 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if !moved {
            self.counted.fetch_add(1, Ordering::Relaxed);
        }
        if self.seen.load(Ordering::Relaxed) / 1_000_000 != now / 1_000_000 {
            self.seen.store(now, Ordering::Relaxed);
        }
        let bits = u128::from(match client {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        });
        let (high, low) = ((bits >> 64) as u64, bits as u64);
        if self.client_low.load(Ordering::Relaxed) != low {
            self.client_low.store(low, Ordering::Relaxed);
        }
        if self.client_high.load(Ordering::Relaxed) != high {
            self.client_high.store(high, Ordering::Relaxed);
        }
    }

    /// The last use on this node and its client, if any.
    pub fn last(&self) -> Option<(i64, IpAddr)> {
        let at = self.seen.load(Ordering::Relaxed);
        (at != 0).then(|| (at, self.client()))
    }

    fn client(&self) -> IpAddr {
        let bits = u128::from(self.client_high.load(Ordering::Relaxed)) << 64
            | u128::from(self.client_low.load(Ordering::Relaxed));
        let v6 = Ipv6Addr::from(bits);
        v6.to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6))
    }

    /// Takes the count since the last take: its minute and count, and the last use if newer than
    /// what was taken before.
    fn take(&self, now: i64) -> Option<Taken> {
        // What a racing use adds after the swap counts into the current minute.
        let current = (now / MICROS_PER_MINUTE) as u64;
        let packed = self.counted.swap(current << 32, Ordering::Relaxed);
        let count = packed & u64::from(u32::MAX);
        if count == 0 {
            return None;
        }
        let last = self.last().filter(|(at, _)| {
            let before = self.taken.swap(*at, Ordering::Relaxed);
            *at > before
        });
        Some(Taken {
            minute: (packed >> 32) as i64,
            count,
            last,
        })
    }

    /// Moves what `old` counted (not yet taken) into this cell, which no call sees yet.
    fn absorb(&self, old: &UsageCell) {
        self.counted
            .store(old.counted.swap(0, Ordering::Relaxed), Ordering::Relaxed);
        self.seen
            .store(old.seen.load(Ordering::Relaxed), Ordering::Relaxed);
        self.taken
            .store(old.taken.load(Ordering::Relaxed), Ordering::Relaxed);
        self.client_high
            .store(old.client_high.load(Ordering::Relaxed), Ordering::Relaxed);
        self.client_low
            .store(old.client_low.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// A key a regeneration replaced, as the index keeps it.
pub struct RetiredEntry {
    /// Index of its slot in [`Entry::slots`].
    pub slot: usize,
    pub generation: i64,
    pub digest: [u8; 32],
    /// Unix microseconds.
    pub regenerated_at: i64,
    /// Until when it still opens its slot (Unix microseconds; 0 for no overlap).
    pub grace_until: i64,
    /// Its HMAC key during an overlap, for types that sign requests.
    pub signing_key: Option<hmac::Key>,
    /// Its presentations after its overlap (if any) ended.
    pub presented: UsageCell,
}

impl RetiredEntry {
    pub fn in_grace(&self, now: i64) -> bool {
        now < self.grace_until
    }

    pub fn regenerated_at(&self) -> OffsetDateTime {
        to_time(self.regenerated_at)
    }
}

/// One resource's rotation facts from the store: disabled slot names and retired keys.
#[derive(Default)]
pub struct Controls {
    disabled: Vec<String>,
    retired: Vec<rekey_store::RetiredKey>,
}

/// The store's controls, by resource.
pub fn by_resource(controls: SlotControls) -> HashMap<Uuid, Controls> {
    let mut out: HashMap<Uuid, Controls> = HashMap::new();
    for (resource, slot) in controls.disabled {
        out.entry(resource).or_default().disabled.push(slot);
    }
    for retired in controls.retired {
        out.entry(retired.resource)
            .or_default()
            .retired
            .push(retired);
    }
    out
}

/// A resource's disabled slots (bit `i` for its provider's slot `i`) and retired keys, from the
/// store's controls.
pub fn controls_of(provider: &Provider, controls: Option<Controls>) -> (u8, Vec<RetiredEntry>) {
    let Some(controls) = controls else {
        return (0, Vec::new());
    };
    let mut disabled = 0u8;
    for (i, slot) in provider.slots.iter().enumerate() {
        if controls.disabled.iter().any(|d| d == slot.name) {
            disabled |= 1 << i;
        }
    }
    let retired = controls
        .retired
        .into_iter()
        .filter_map(|r| {
            let slot = provider.slots.iter().position(|s| s.name == r.slot)?;
            let signing_key = r
                .secret
                .and_then(|secret| super::index::signing_key(secret.expose()));
            Some(RetiredEntry {
                slot,
                generation: r.generation,
                digest: r.digest,
                regenerated_at: micros(r.regenerated_at),
                grace_until: r.grace_until.map(micros).unwrap_or(0),
                signing_key,
                presented: UsageCell::default(),
            })
        })
        .collect();
    (disabled, retired)
}

fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

/// Carries what `old`'s retired keys counted over to its replacement `new` (not yet visible).
pub fn carry_over(old: &Entry, new: &Entry) {
    for retired in new.retired() {
        if let Some(before) = old.retired().iter().find(|r| r.digest == retired.digest) {
            retired.presented.absorb(&before.presented);
        }
    }
}

/// What a presented key that opens none of a resource's current keys is.
pub enum OldKey<'a> {
    /// In its overlap: it opens this slot.
    Grace(usize),
    /// Replaced within the recognition window.
    Retired(&'a RetiredEntry),
}

/// Finds `digest` among `entry`'s retired keys: in an overlap at `now`, or replaced within
/// `window` (microseconds) before it.
pub fn old_key<'a>(
    entry: &'a Entry,
    digest: &[u8; 32],
    now: i64,
    window: i64,
) -> Option<OldKey<'a>> {
    let mut found = None;
    for retired in entry.retired() {
        if constant_time_eq(&retired.digest, digest) {
            found = Some(retired);
        }
    }
    let retired = found?;
    if retired.in_grace(now) {
        return Some(OldKey::Grace(retired.slot));
    }
    (now - retired.regenerated_at < window).then_some(OldKey::Retired(retired))
}

/// The slot of the retired key in its overlap that signed `to_sign` with `signature` (Cosmos DB).
pub fn grace_signer(entry: &Entry, to_sign: &[u8], signature: &[u8], now: i64) -> Option<usize> {
    entry
        .retired()
        .iter()
        .filter(|r| r.in_grace(now))
        .find(|r| {
            r.signing_key
                .as_ref()
                .is_some_and(|key| hmac::verify(key, to_sign, signature).is_ok())
        })
        .map(|r| r.slot)
}

/// Takes every count noted on `entry` since the last take, one record per slot and minute.
pub fn take_usage(
    entry: &Entry,
    now: i64,
    out: &mut HashMap<(Uuid, &'static str, i64), SlotUsage>,
) {
    let mut add = |slot: &'static str, taken: Option<Taken>, retired: bool| {
        let Some(Taken {
            minute,
            count,
            last,
        }) = taken
        else {
            return;
        };
        let record = out
            .entry((entry.internal_id, slot, minute))
            .or_insert_with(|| SlotUsage {
                resource: entry.internal_id,
                slot,
                minute,
                uses: 0,
                last_at: None,
                last_client: None,
                retired: 0,
                retired_at: None,
                retired_client: None,
            });
        let (total, at, client) = if retired {
            (
                &mut record.retired,
                &mut record.retired_at,
                &mut record.retired_client,
            )
        } else {
            (
                &mut record.uses,
                &mut record.last_at,
                &mut record.last_client,
            )
        };
        *total += count;
        if let Some((when, who)) = last {
            let when = to_time(when);
            if at.is_none_or(|t| t <= when) {
                *at = Some(when);
                *client = Some(who.to_string());
            }
        }
    };
    if let Some(uses) = entry.noted_uses() {
        for (i, slot) in uses.iter().enumerate() {
            add(entry.slot(i).name, slot.counts.take(now), false);
        }
    }
    for retired in entry.retired() {
        add(
            entry.slot(retired.slot).name,
            retired.presented.take(now),
            true,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_count_into_their_minute_and_a_take_starts_afresh() {
        let cell = UsageCell::default();
        let minute = 29_000_000i64;
        let at = minute * MICROS_PER_MINUTE + 5_000_000;
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "::1".parse().unwrap();
        for _ in 0..3 {
            cell.count(at, a);
        }
        cell.count(at + 1_000_000, b);
        let taken = cell.take(at + 2_000_000).unwrap();
        assert_eq!((taken.minute, taken.count), (minute, 4));
        assert_eq!(taken.last, Some((at + 1_000_000, b)));
        assert!(cell.take(at + 3_000_000).is_none(), "nothing new");
        // The next minute's use counts into it.
        cell.count(at + MICROS_PER_MINUTE, a);
        let taken = cell.take(at + MICROS_PER_MINUTE).unwrap();
        assert_eq!((taken.minute, taken.count), (minute + 1, 1));
        assert_eq!(cell.last().unwrap().1, a);
    }
}
