use std::time::Duration;

/// When to try a failed job again.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// The delay after the first failure; it doubles with each further one.
    pub base: Duration,
    /// The longest delay between two attempts.
    pub max_delay: Duration,
    /// How far a delay may be moved either way at random, as a fraction (0.2 is ±20%), so that
    /// jobs that failed together (a vendor outage) do not all come back at the same instant.
    pub jitter: f64,
    /// A `Retry-After` the vendor sends is honoured, but kept within these bounds: never
    /// sooner than the floor (a 429 with `Retry-After: 0` must not become a tight loop) and
    /// never later than the cap.
    pub retry_after_floor: Duration,
    pub retry_after_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(2),
            max_delay: Duration::from_secs(600),
            jitter: 0.2,
            retry_after_floor: Duration::from_secs(1),
            retry_after_cap: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1 for the first).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.clamp(
                self.retry_after_floor,
                self.retry_after_cap.max(self.retry_after_floor),
            );
        }
        let exp = attempt.saturating_sub(1).min(30);
        let raw = self.base.saturating_mul(1u32 << exp).min(self.max_delay);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 - jitter + 2.0 * jitter * fastrand::f64();
        raw.mul_f64(factor)
    }

    /// The bounds `delay` stays within for an attempt, without `Retry-After`.
    pub fn bounds(&self, attempt: u32) -> (Duration, Duration) {
        let exp = attempt.saturating_sub(1).min(30);
        let raw = self.base.saturating_mul(1u32 << exp).min(self.max_delay);
        let jitter = self.jitter.clamp(0.0, 1.0);
        (raw.mul_f64(1.0 - jitter), raw.mul_f64(1.0 + jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_jitter_and_caps() {
        let p = RetryPolicy::default();
        for attempt in 1..=12 {
            let (lo, hi) = p.bounds(attempt);
            for _ in 0..50 {
                let d = p.delay(attempt, None);
                assert!(
                    d >= lo && d <= hi,
                    "attempt {attempt}: {d:?} not in {lo:?}..{hi:?}"
                );
            }
        }
        assert_eq!(
            p.bounds(1),
            (Duration::from_millis(1600), Duration::from_millis(2400))
        );
        assert_eq!(
            p.bounds(3),
            (Duration::from_millis(6400), Duration::from_millis(9600))
        );
        assert_eq!(
            p.bounds(40).1,
            Duration::from_secs(720),
            "capped at max_delay, plus jitter"
        );
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
        assert_eq!(p.delay(1, Some(Duration::ZERO)), Duration::from_secs(1));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(86_400))),
            Duration::from_secs(3600)
        );
    }
}
