//! When to retry a failed delivery and when to give up on it. Pure: the clock and the random
//! jitter are parameters, so the schedule is exact in tests and the dispatcher owns both.
//!
//! The delay grows exponentially (`base * 2^(attempt-1)`, capped at `cap`) with *equal jitter*:
//! half of the capped delay is fixed and the other half is scaled by the jitter. Unlike full
//! jitter, this never schedules a retry immediately, so a receiver that is down is not hammered
//! by unlucky draws, while retries from many outbox rows still spread out.

use std::time::Duration;

/// The shortest delay ever returned, so that a zero `base` cannot turn retries into a busy loop.
const MIN_DELAY: Duration = Duration::from_millis(1);

/// Exponential backoff with equal jitter and an overall deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay scale of the first retry (the delay lies in `[base/2, base)`).
    pub base: Duration,
    /// No delay exceeds this (the delay lies in `[cap/2, cap)` once reached).
    pub cap: Duration,
    /// Measured from the first failure; no retry is scheduled after that.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    /// 1 s growing to at most 1 h, for 25 h: receivers get a full day of retries, as most webhook
    /// senders promise, plus an hour so that a receiver down for exactly a day still gets one.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60 * 60),
            give_up_after: Duration::from_secs(25 * 60 * 60),
        }
    }
}

impl RetryPolicy {
    /// How long to wait after the `attempt`-th failed attempt (1 for the first; 0 counts as 1).
    ///
    /// `jitter` is a uniform draw from `[0, 1)`; values outside are clamped, NaN counts as 0. The
    /// result lies in `[d/2, d)` where `d = min(cap, base * 2^(attempt-1))`, and is never below 1 ms.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let shift = attempt.saturating_sub(1);
        // Past 2^31 every sane base has long passed the cap; checking the shift avoids overflow.
        let exponential = match 1u32.checked_shl(shift) {
            Some(factor) => self.base.saturating_mul(factor),
            None => self.cap,
        };
        let ceiling = exponential.min(self.cap);
        let half = ceiling / 2;
        let jitter = if jitter.is_nan() { 0.0 } else { jitter.clamp(0.0, 1.0 - f64::EPSILON) };
        // `try_from` and `saturating_add` rather than `mul_f64` and `+`, which panic on overflow:
        // float rounding near `Duration::MAX` could otherwise push the sum over.
        let spread = Duration::try_from_secs_f64((ceiling - half).as_secs_f64() * jitter).unwrap_or_default();
        half.saturating_add(spread).min(ceiling).max(MIN_DELAY)
    }

    /// When (in ms since the epoch) to make the next attempt after the `attempt`-th failure at
    /// `now_ms`, or `None` when that would fall after `first_failure_ms + give_up_after`: the
    /// delivery should then be dead-lettered.
    pub fn next_attempt_at(&self, first_failure_ms: i64, now_ms: i64, attempt: u32, jitter: f64) -> Option<i64> {
        let next = now_ms.saturating_add(millis_rounded_up(self.delay(attempt, jitter)));
        let deadline = first_failure_ms.saturating_add(millis_rounded_up(self.give_up_after));
        (next <= deadline).then_some(next)
    }
}

/// Rounded up so that a sub-millisecond delay does not schedule the retry at `now`.
fn millis_rounded_up(duration: Duration) -> i64 {
    let millis = duration.as_nanos().div_ceil(1_000_000);
    i64::try_from(millis).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: i64 = 60 * 60 * 1000;
    const JITTERS: [f64; 5] = [0.0, 0.25, 0.5, 0.75, 0.999];

    #[test]
    fn delay_doubles_within_equal_jitter_bounds_until_the_cap() {
        let policy = RetryPolicy::default();
        for attempt in 1..=20 {
            let uncapped = Duration::from_secs(1u64 << (attempt - 1));
            let ceiling = uncapped.min(policy.cap);
            for jitter in JITTERS {
                let delay = policy.delay(attempt, jitter);
                assert!(delay >= ceiling / 2 && delay < ceiling, "attempt {attempt}, jitter {jitter}: {delay:?}");
            }
        }
        assert_eq!(policy.delay(1, 0.0), Duration::from_millis(500));
        assert_eq!(policy.delay(3, 0.5), Duration::from_secs(3));
    }

    #[test]
    fn delay_is_monotone_in_attempt_for_a_fixed_jitter() {
        let policy = RetryPolicy::default();
        for jitter in JITTERS {
            let delays: Vec<_> = (1..=40).map(|attempt| policy.delay(attempt, jitter)).collect();
            assert!(delays.windows(2).all(|pair| pair.first() <= pair.last()), "jitter {jitter}: {delays:?}");
        }
    }

    #[test]
    fn delay_never_exceeds_the_cap_and_is_never_zero() {
        let policies = [
            RetryPolicy::default(),
            RetryPolicy { base: Duration::ZERO, ..RetryPolicy::default() },
            RetryPolicy { base: Duration::from_nanos(1), cap: Duration::from_nanos(3), ..RetryPolicy::default() },
            RetryPolicy { base: Duration::from_secs(10), cap: Duration::from_secs(5), ..RetryPolicy::default() },
        ];
        for policy in policies {
            for attempt in [0, 1, 2, 10, 31, 32, 33, 64, 1000, u32::MAX] {
                for jitter in JITTERS.into_iter().chain([-1.0, 1.0, 7.5, f64::NAN, f64::INFINITY]) {
                    let delay = policy.delay(attempt, jitter);
                    assert!(delay >= MIN_DELAY, "{policy:?} attempt {attempt} jitter {jitter}");
                    assert!(delay <= policy.cap.max(MIN_DELAY), "{policy:?} attempt {attempt} jitter {jitter}");
                }
            }
        }
    }

    #[test]
    fn huge_attempt_numbers_and_durations_do_not_overflow() {
        let policy = RetryPolicy::default();
        assert!(policy.delay(u32::MAX, 0.999) < policy.cap);
        let unbounded = RetryPolicy { base: Duration::MAX, cap: Duration::MAX, give_up_after: Duration::MAX };
        assert!(unbounded.delay(u32::MAX, 0.999) <= Duration::MAX);
        assert_eq!(unbounded.next_attempt_at(i64::MAX - 1, i64::MAX - 1, u32::MAX, 0.5), Some(i64::MAX));
        assert_eq!(policy.next_attempt_at(0, i64::MAX, 1, 0.0), None);
    }

    /// Follows the schedule from the first failure until the policy gives up; returns the times of
    /// the retries.
    fn schedule(policy: &RetryPolicy, jitter: f64) -> Vec<i64> {
        let mut retries = Vec::new();
        let mut now = 0;
        let mut attempt = 1;
        while let Some(next) = policy.next_attempt_at(0, now, attempt, jitter) {
            assert!(next > now, "retry at {next} is not after {now}");
            retries.push(next);
            now = next;
            attempt += 1;
        }
        retries
    }

    #[test]
    fn default_schedule_keeps_retrying_for_at_least_a_day() {
        let policy = RetryPolicy::default();
        for jitter in [0.0, 0.999] {
            let retries = schedule(&policy, jitter);
            let last = retries.last().copied().unwrap_or_default();
            assert!(last >= 24 * HOUR_MS, "jitter {jitter}: last retry at {last} ms");
            assert!(last <= 25 * HOUR_MS, "jitter {jitter}: last retry at {last} ms");
            // Bounded work for the dispatcher: about 12 ramp-up retries, then one per 30-60 min.
            assert!(retries.len() < 70, "jitter {jitter}: {} retries", retries.len());
        }
    }

    #[test]
    fn next_attempt_is_refused_past_the_deadline_only() {
        let policy = RetryPolicy::default();
        let deadline = 25 * HOUR_MS;
        let delay = 30 * 60 * 1000; // attempt 20 is capped; jitter 0 gives cap/2
        assert_eq!(policy.next_attempt_at(0, deadline - delay, 20, 0.0), Some(deadline));
        assert_eq!(policy.next_attempt_at(0, deadline - delay + 1, 20, 0.0), None);
    }
}
