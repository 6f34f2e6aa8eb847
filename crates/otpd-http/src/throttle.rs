//! Failed authentications per client address: after `max` in a window, that address gets 429
//! with `Retry-After` on every authenticated route until the window ends, so credentials
//! cannot be guessed at the speed of the network. Kept in memory per node (a guesser spread
//! over several nodes gets `max` per node).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use otpd_core::Timestamp;
use otpd_core::abuse::Limit;

/// Addresses tracked at most; past it, expired windows are dropped first and, if a flood of
/// distinct addresses still fills it, the table starts over (memory stays bounded).
const MAX_TRACKED: usize = 100_000;

/// The failure counts of recent addresses.
#[derive(Clone)]
pub struct AuthThrottle {
    limit: Option<Limit>,
    now: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    windows: Arc<Mutex<HashMap<IpAddr, Window>>>,
    /// Whether any failure was ever counted: until then no request takes the lock.
    any_failure: Arc<AtomicBool>,
}

#[derive(Clone, Copy)]
struct Window {
    failures: u32,
    ends: Timestamp,
}

impl AuthThrottle {
    /// A throttle allowing `limit` failures per window (`None`: off), reading time from `now`.
    pub fn new(limit: Option<Limit>, now: Arc<dyn Fn() -> Timestamp + Send + Sync>) -> Self {
        AuthThrottle {
            limit,
            now,
            windows: Arc::default(),
            any_failure: Arc::default(),
        }
    }

    /// Seconds until `ip` may authenticate again, when it has failed too often.
    pub fn retry_after(&self, ip: IpAddr) -> Option<u32> {
        let limit = self.limit?;
        if !self.any_failure.load(Ordering::Relaxed) {
            return None;
        }
        let now = (self.now)();
        let windows = self.windows.lock().ok()?;
        let window = windows.get(&ip)?;
        (window.failures >= limit.max && window.ends > now)
            .then(|| ((window.ends.0 - now.0) as u64).div_ceil(1000).max(1) as u32)
    }

    /// Counts one failed authentication from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let Some(limit) = self.limit else {
            return;
        };
        let now = (self.now)();
        let Ok(mut windows) = self.windows.lock() else {
            return;
        };
        self.any_failure.store(true, Ordering::Relaxed);
        if windows.len() >= MAX_TRACKED {
            windows.retain(|_, window| window.ends > now);
            if windows.len() >= MAX_TRACKED {
                windows.clear();
            }
        }
        let window = windows.entry(ip).or_insert(Window {
            failures: 0,
            ends: now.plus_millis(limit.window_ms()),
        });
        if window.ends <= now {
            *window = Window {
                failures: 0,
                ends: now.plus_millis(limit.window_ms()),
            };
        }
        window.failures = window.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    #[test]
    fn an_address_is_held_back_after_max_failures_until_its_window_ends() {
        let clock = Arc::new(AtomicI64::new(1_000_000));
        let read = clock.clone();
        let throttle = AuthThrottle::new(
            Some(Limit {
                max: 3,
                window_seconds: 60,
            }),
            Arc::new(move || Timestamp(read.load(Ordering::SeqCst))),
        );
        let guesser: IpAddr = "203.0.113.9".parse().unwrap();
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..2 {
            throttle.failed(guesser);
            assert_eq!(throttle.retry_after(guesser), None);
        }
        throttle.failed(guesser);
        assert_eq!(throttle.retry_after(guesser), Some(60));
        assert_eq!(throttle.retry_after(other), None, "per address");
        clock.fetch_add(59_500, Ordering::SeqCst);
        assert_eq!(throttle.retry_after(guesser), Some(1));
        clock.fetch_add(500, Ordering::SeqCst);
        assert_eq!(throttle.retry_after(guesser), None, "the window ended");
        throttle.failed(guesser);
        assert_eq!(throttle.retry_after(guesser), None, "a new window");
    }
}
