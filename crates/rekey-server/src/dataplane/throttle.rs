//! Owns throttling of failed key checks: after `limit` failures from one client address within a
//! window, that address gets 429 with `Retry-After` until the window ends. Other addresses are not
//! affected, so one client guessing keys cannot lock out everyone else.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Throttle {
    limit: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// Whether `failures` may hold anything: while it does not, checks take no lock.
    any: AtomicBool,
}

impl Throttle {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            failures: Mutex::new(HashMap::new()),
            any: AtomicBool::new(false),
        }
    }

    /// Seconds to wait, if `ip` is throttled now.
    pub fn blocked(&self, ip: IpAddr) -> Option<u64> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let failures = self
            .failures
            .lock()
            .expect("throttle lock is never poisoned");
        let (start, count) = failures.get(&ip)?;
        let elapsed = start.elapsed();
        (*count >= self.limit && elapsed < self.window)
            .then(|| (self.window - elapsed).as_secs().max(1))
    }

    pub fn failed(&self, ip: IpAddr) {
        let mut failures = self
            .failures
            .lock()
            .expect("throttle lock is never poisoned");
        self.any.store(true, Ordering::Release);
        let now = Instant::now();
        let entry = failures.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    /// Drops windows that have ended, so memory stays bounded by recent failing addresses.
    pub fn prune(&self) {
        let window = self.window;
        let mut failures = self
            .failures
            .lock()
            .expect("throttle lock is never poisoned");
        failures.retain(|_, (start, _)| start.elapsed() < window);
        if failures.is_empty() {
            self.any.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_failing_address_is_throttled() {
        let t = Throttle::new(3, Duration::from_secs(60));
        let (bad, good): (IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        for _ in 0..2 {
            t.failed(bad);
        }
        assert_eq!(t.blocked(bad), None, "under the limit");
        t.failed(bad);
        assert!(t.blocked(bad).is_some_and(|s| (1..=60).contains(&s)));
        assert_eq!(t.blocked(good), None);
    }

    #[test]
    fn the_window_ends() {
        let t = Throttle::new(1, Duration::from_millis(20));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        t.failed(ip);
        assert!(t.blocked(ip).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(t.blocked(ip), None);
        t.prune();
        assert!(t.failures.lock().unwrap().is_empty());
    }
}
