//! A token bucket (`governor`'s GCRA) on Tokio's clock. The broadcaster
//! waits on one to keep each worker under its share of the account's
//! @connections budget; the local stack's quota emulation refuses with 429
//! when one is empty. Running on `tokio::time` means tests with paused
//! time see exactly the configured rate.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock as GovernorClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

/// Tokio's clock, as governor sees it: time since the gate was built.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: Instant,
}

impl GovernorClock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }
}

/// GCRA over a stored "theoretical arrival time" (TAT, ms), for limits
/// kept in the connection store rather than in one process: each admitted
/// call moves the TAT one interval on; a call is admitted while the TAT
/// stays within `burst` intervals of now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredGcra {
    /// Milliseconds per call at the sustained rate.
    pub interval_ms: i64,
    /// Calls allowed at once.
    pub burst: i64,
}

impl StoredGcra {
    pub fn new(rate: Rate) -> Self {
        Self {
            interval_ms: (1_000 / i64::from(rate.per_second.get())).max(1),
            burst: i64::from(rate.burst.get()),
        }
    }

    /// The latest TAT at which one more call is still admitted
    /// (`tat + interval - now <= burst * interval`).
    pub fn admit_limit(&self, now_ms: i64) -> i64 {
        now_ms + (self.burst - 1) * self.interval_ms
    }

    /// Admits one call: `Ok(new TAT)` or `Err(retry after, ms)`.
    pub fn admit(&self, tat: Option<i64>, now_ms: i64) -> Result<i64, i64> {
        let tat = tat.unwrap_or(now_ms).max(now_ms);
        let limit = self.admit_limit(now_ms);
        if tat > limit {
            Err(tat - limit)
        } else {
            Ok(tat + self.interval_ms)
        }
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// A rate in calls per second with a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Rate {
    /// `per_second` calls per second with `burst` at once; `None` when
    /// either is zero (no limit).
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        Some(Self {
            per_second: NonZeroU32::new(per_second)?,
            burst: NonZeroU32::new(burst)?,
        })
    }

    /// An account budget split evenly between `workers`, each share at
    /// least one call per second.
    pub fn share(budget_per_second: u32, budget_burst: u32, workers: u32) -> Option<Self> {
        let workers = workers.max(1);
        if budget_per_second == 0 || budget_burst == 0 {
            return None;
        }
        Self::new(
            (budget_per_second / workers).max(1),
            (budget_burst / workers).max(1),
        )
    }
}

pub struct RateGate {
    limiter: Limiter,
    clock: TokioClock,
    rate: Rate,
}

impl RateGate {
    pub fn new(rate: Rate) -> Self {
        let clock = TokioClock {
            start: Instant::now(),
        };
        let quota = Quota::per_second(rate.per_second).allow_burst(rate.burst);
        Self {
            limiter: RateLimiter::direct_with_clock(quota, clock),
            clock,
            rate,
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Takes a token if one is there now.
    pub fn try_acquire(&self) -> bool {
        self.limiter.check().is_ok()
    }

    /// Waits for a token, unless the wait would end after `stop_at`: then
    /// it returns false at once and takes nothing.
    pub async fn acquire_before(&self, stop_at: Instant) -> bool {
        loop {
            let wait = match self.limiter.check() {
                Ok(()) => return true,
                Err(not_until) => not_until.wait_time_from(self.clock.now()),
            };
            let ready_at = Instant::now() + wait;
            if ready_at > stop_at {
                return false;
            }
            tokio::time::sleep_until(ready_at).await;
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn stored_gcra_admits_a_burst_then_the_rate() {
        let gcra = StoredGcra::new(Rate::new(10, 3).unwrap());
        assert_eq!(gcra.interval_ms, 100);
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(gcra.admit(tat, 0).unwrap());
        }
        assert_eq!(gcra.admit(tat, 0), Err(100));
        assert_eq!(gcra.admit(tat, 99), Err(1));
        tat = Some(gcra.admit(tat, 100).unwrap());
        assert_eq!(gcra.admit(tat, 100), Err(100));
        // After a quiet spell the whole burst is back, no more.
        let quiet = 10_000;
        for _ in 0..3 {
            tat = Some(gcra.admit(tat, quiet).unwrap());
        }
        assert!(gcra.admit(tat, quiet).is_err());
    }

    use super::*;

    #[test]
    fn zero_means_no_limit_and_shares_divide_the_budget() {
        assert_eq!(Rate::new(0, 10), None);
        assert_eq!(Rate::share(10_000, 5_000, 0), Rate::new(10_000, 5_000));
        assert_eq!(Rate::share(10_000, 5_000, 8), Rate::new(1_250, 625));
        assert_eq!(Rate::share(3, 3, 8), Rate::new(1, 1));
        assert_eq!(Rate::share(0, 5_000, 8), None);
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_the_configured_rate() {
        let gate = RateGate::new(Rate::new(100, 10).unwrap());
        let start = Instant::now();
        let far = start + Duration::from_secs(3600);
        for _ in 0..10 {
            assert!(gate.try_acquire());
        }
        assert!(!gate.try_acquire(), "the burst is spent");
        for _ in 0..100 {
            assert!(gate.acquire_before(far).await);
        }
        // 100 more tokens at 100/s take one second of (paused) time.
        let took = Instant::now() - start;
        assert!(
            took >= Duration::from_millis(990) && took <= Duration::from_millis(1_010),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_when_the_wait_passes_the_stop_time() {
        let gate = RateGate::new(Rate::new(1, 1).unwrap());
        assert!(gate.try_acquire());
        let stop = Instant::now() + Duration::from_millis(500);
        assert!(!gate.acquire_before(stop).await);
        assert_eq!(
            Instant::now() + Duration::from_millis(500),
            stop,
            "no waiting"
        );
        assert!(gate.acquire_before(stop + Duration::from_secs(1)).await);
    }
}
