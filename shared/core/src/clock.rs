//! Wall-clock time behind a trait: TTLs are computed and filtered against
//! "now", and tests need to move "now" without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;

    fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The system's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock tests set by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at_ms(ms: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(ms)))
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// RFC 3339 with milliseconds and `Z`, the format of `sentAt` and of API
/// Gateway's `connectedAt` / `lastActiveAt`.
pub fn rfc3339_ms(epoch_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(epoch_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_api_gateway() {
        assert_eq!(rfc3339_ms(1_795_338_000_123), "2026-11-22T09:00:00.123Z");
    }

    #[test]
    fn manual_clock_moves() {
        let c = ManualClock::at_ms(1_500);
        c.advance_ms(1_000);
        assert_eq!(c.now_ms(), 2_500);
        assert_eq!(c.now_secs(), 2);
    }
}
