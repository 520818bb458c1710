//! Owns the budget of data-plane refusal log lines: a token bucket shared by the whole process, so
//! a flood of bad calls cannot fill the disk. Up to [`BURST`] lines at once, then
//! [`REFILL_PER_SECOND`] a second; what is left out is counted and reported by [`RefusalLog::summarize`]
//! (called every [`SUMMARY_EVERY`]), so the log still says how many there were.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Refusal lines that may be written back to back.
pub const BURST: u64 = 50;
/// Refusal lines the budget regains each second.
pub const REFILL_PER_SECOND: u64 = 1;
/// How often the count of lines left out is written, when there is one.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

pub struct RefusalLog {
    start: Instant,
    /// The second (since `start`) of the last refill in the high 32 bits, the tokens left in the
    /// low 32: one atomic, so taking a token is a single compare-and-swap, with no lock.
    bucket: AtomicU64,
    suppressed: AtomicU64,
}

impl Default for RefusalLog {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            bucket: AtomicU64::new(BURST),
            suppressed: AtomicU64::new(0),
        }
    }
}

impl RefusalLog {
    /// Whether a refusal line may be written now; if not, it is counted for the summary.
    pub fn allow(&self) -> bool {
        let now = u32::try_from(self.start.elapsed().as_secs()).unwrap_or(u32::MAX);
        let mut bucket = self.bucket.load(Ordering::Relaxed);
        loop {
            let (at, tokens) = ((bucket >> 32) as u32, bucket & u64::from(u32::MAX));
            let tokens =
                (tokens + u64::from(now.saturating_sub(at)) * REFILL_PER_SECOND).min(BURST);
            if tokens == 0 {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            let next = u64::from(now) << 32 | (tokens - 1);
            match self.bucket.compare_exchange_weak(
                bucket,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => bucket = seen,
            }
        }
    }

    /// Writes how many refusal lines were left out since the last summary, if any.
    pub fn summarize(&self) {
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        if suppressed > 0 {
            tracing::info!(
                suppressed,
                "data-plane refusals not logged (rate limit: {BURST} lines at once, then {REFILL_PER_SECOND} a second)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_gets_the_burst_then_is_counted() {
        let log = RefusalLog::default();
        let allowed = (0..10_000).filter(|_| log.allow()).count() as u64;
        // A second may pass during the loop on a slow machine.
        assert!(
            (BURST..=BURST + 2 * REFILL_PER_SECOND).contains(&allowed),
            "{allowed}"
        );
        assert_eq!(log.suppressed.load(Ordering::Relaxed), 10_000 - allowed);
        log.summarize();
        assert_eq!(log.suppressed.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_budget_refills_with_time() {
        let log = RefusalLog {
            // As if started three seconds ago with an empty bucket at second 0.
            start: Instant::now() - Duration::from_secs(3),
            bucket: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        };
        let allowed = (0..100).filter(|_| log.allow()).count() as u64;
        assert!(
            (3 * REFILL_PER_SECOND..=4 * REFILL_PER_SECOND).contains(&allowed),
            "{allowed}"
        );
    }
}
