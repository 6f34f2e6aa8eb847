//! Time as the core sees it: an injectable clock so expiry is tested without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, UTC. One integer keeps storage and comparisons trivial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The instant `seconds` later.
    pub fn plus_seconds(self, seconds: i64) -> Timestamp {
        Timestamp(self.0 + seconds * 1000)
    }

    /// The instant `millis` later.
    pub fn plus_millis(self, millis: i64) -> Timestamp {
        Timestamp(self.0 + millis)
    }

    /// Whole seconds since the epoch, for wire formats that count seconds.
    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// `2026-03-02 04:10:00 UTC`, for the messages people read (decision records).
    pub fn utc_text(self) -> String {
        let day = crate::report::utc_day(self.0);
        let seconds = self.0.div_euclid(1000).rem_euclid(86_400);
        format!(
            "{day} {:02}:{:02}:{:02} UTC",
            seconds / 3600,
            seconds % 3600 / 60,
            seconds % 60
        )
    }
}

/// Source of the current time. Production uses [`SystemClock`]; tests use [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Timestamp(millis)
    }
}

/// A clock that moves only when told to, shared between a test and the server it drives.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock frozen at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.0)))
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance_seconds(&self, seconds: i64) {
        self.0.fetch_add(seconds * 1000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_text_reads_as_a_date_and_time() {
        let at = Timestamp(1_772_409_600_000 + (4 * 3600 + 10 * 60 + 7) * 1000 + 999);
        assert_eq!(at.utc_text(), "2026-03-02 04:10:07 UTC");
        assert_eq!(Timestamp(-1000).utc_text(), "1969-12-31 23:59:59 UTC");
    }
}
