//! Full-jitter exponential backoff: the delay before try `n` is drawn
//! uniformly from `[0, min(cap, base × 2^(n-1))]`, so many workers retrying
//! at once spread out instead of hitting the API in waves. Pure: the random
//! draw is a parameter.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Upper bound of the first delay.
    pub base: Duration,
    /// No delay exceeds this.
    pub cap: Duration,
}

impl Backoff {
    /// The ceiling for retry number `retry` (1 = the first retry).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The delay for retry number `retry`, given `unit`, a uniform draw
    /// from `[0, 1)`.
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        self.ceiling(retry).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The delay for retry number `retry` with a fresh random draw.
    pub fn jittered(&self, retry: u32) -> Duration {
        self.delay(retry, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(2),
    };

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let table = [
            (0, 100),
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1_600),
            (6, 2_000),
            (40, 2_000),
            (u32::MAX, 2_000),
        ];
        for (retry, ms) in table {
            assert_eq!(B.ceiling(retry), Duration::from_millis(ms), "retry {retry}");
        }
    }

    #[test]
    fn delay_scales_the_ceiling_by_the_draw() {
        let table = [
            (3, 0.0, 0),
            (3, 0.5, 200),
            (3, 0.999_999, 399),
            (3, 1.0, 400),
            (3, -1.0, 0),
            (3, 7.0, 400),
            (9, 0.25, 500),
        ];
        for (retry, unit, ms) in table {
            assert_eq!(
                B.delay(retry, unit).as_millis(),
                ms,
                "retry {retry} unit {unit}"
            );
        }
    }

    #[test]
    fn jittered_stays_within_the_ceiling() {
        for retry in 1..10 {
            assert!(B.jittered(retry) <= B.ceiling(retry));
        }
    }
}
