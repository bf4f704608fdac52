//! Time budget and retry policy shared by the adapters: an invocation has a deadline,
//! and retries of unprocessed items must fit inside it.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;

/// The moment by which the work must be finished (the invocation's deadline less a
/// margin to send the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(budget: Duration) -> Self {
        Self(Instant::now() + budget)
    }

    /// Time kept back from an invocation's deadline to build and send the answer.
    pub const ANSWER_MARGIN: Duration = Duration::from_millis(500);
    /// Budget when an invocation has no usable deadline (tests, local tools).
    pub const DEFAULT_BUDGET: Duration = Duration::from_secs(25);

    /// The working deadline of a Lambda invocation whose deadline is `deadline_ms`
    /// (0: none known), with the standard margin and fallback.
    pub fn of_invocation(deadline_ms: u64) -> Self {
        Self::from_lambda(deadline_ms, Self::ANSWER_MARGIN, Self::DEFAULT_BUDGET)
    }

    /// The deadline of a Lambda invocation (`deadline_ms` since the epoch) less
    /// `margin` to send the answer. A deadline that has already passed when the
    /// invocation starts only comes from local emulators (cargo lambda hands out
    /// "now"): then `fallback` applies. On Lambda an overrun ends the invocation,
    /// which every step here survives (idempotent, records outlive objects).
    pub fn from_lambda(deadline_ms: u64, margin: Duration, fallback: Duration) -> Self {
        let deadline = std::time::UNIX_EPOCH + Duration::from_millis(deadline_ms);
        match deadline.duration_since(std::time::SystemTime::now()) {
            Ok(left) if !left.is_zero() => Self::after(left.saturating_sub(margin)),
            _ => {
                tracing::debug!(
                    deadline_ms,
                    "invocation deadline already passed; using the fallback budget"
                );
                Self::after(fallback)
            }
        }
    }

    /// The same deadline, `by` later (for work allowed into the answer margin).
    pub fn extended(self, by: Duration) -> Self {
        Self(self.0 + by)
    }

    /// The same deadline, `by` earlier, never before now (for a phase that must
    /// leave time to the ones after it).
    pub fn shortened(self, by: Duration) -> Self {
        let now = Instant::now();
        Self(self.0.checked_sub(by).map_or(now, |at| at.max(now)))
    }

    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub fn instant(&self) -> Instant {
        self.0
    }
}

/// Capped exponential backoff with full jitter (each delay uniform in `[0, min(cap,
/// base * 2^attempt)]`), so retries of many concurrent chunks spread out.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub const DEFAULT_BASE: Duration = Duration::from_millis(25);
    pub const DEFAULT_CAP: Duration = Duration::from_secs(1);

    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The next delay; each call doubles the ceiling until it reaches the cap.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(self.attempt))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }

    /// Sleeps for the next delay unless that would pass `deadline`; returns whether it
    /// slept (false: give up now, the time is spent).
    pub async fn wait(&mut self, deadline: Deadline) -> bool {
        let delay = self.next_delay();
        if Instant::now() + delay >= deadline.instant() {
            return false;
        }
        tokio::time::sleep(delay).await;
        true
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Self::DEFAULT_BASE, Self::DEFAULT_CAP)
    }
}

/// Runs `f` on every chunk with at most `bound` in flight; results come back in
/// completion order.
pub async fn for_each_bounded<T, F, Fut, R>(items: Vec<T>, bound: usize, f: F) -> Vec<R>
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = R>,
{
    futures_util::stream::iter(items)
        .map(f)
        .buffer_unordered(bound.max(1))
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_delays_stay_under_a_doubling_capped_ceiling() {
        let base = Duration::from_millis(10);
        let cap = Duration::from_millis(50);
        let mut backoff = Backoff::new(base, cap);
        for ceiling_ms in [10, 20, 40, 50, 50, 50] {
            let delay = backoff.next_delay();
            assert!(
                delay <= Duration::from_millis(ceiling_ms),
                "{delay:?} > {ceiling_ms}ms"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_refuses_to_sleep_past_the_deadline() {
        // GIVEN a deadline that has already passed
        let deadline = Deadline::after(Duration::ZERO);
        // WHEN asked to wait THEN it gives up at once
        assert!(!Backoff::default().wait(deadline).await);
    }

    #[test]
    fn lambda_deadlines_keep_a_margin_and_stale_ones_fall_back() {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let margin = Duration::from_millis(500);
        let fallback = Duration::from_secs(25);
        let real = Deadline::from_lambda(now_ms + 10_000, margin, fallback).remaining();
        assert!(
            real <= Duration::from_millis(9_500) && real > Duration::from_secs(9),
            "{real:?}"
        );
        for stale in [0, now_ms - 1000, now_ms] {
            let left = Deadline::from_lambda(stale, margin, fallback).remaining();
            assert!(left > Duration::from_secs(24), "{stale}: {left:?}");
        }
    }

    #[tokio::test]
    async fn bounded_runner_runs_every_item() {
        let mut got = for_each_bounded((0..50).collect(), 4, |i| async move { i * 2 }).await;
        got.sort_unstable();
        assert_eq!(got, (0..50).map(|i| i * 2).collect::<Vec<_>>());
    }
}
