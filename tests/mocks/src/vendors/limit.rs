//! A vendor's documented request limit as its mock keeps it: at most N data
//! requests in any rolling window, what the rate-limit headers report of it,
//! and a refusal (counted) past it. Lever's token bucket and Xero's
//! clock-minute budgets keep their own shapes and count into the same tally.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// At most `requests` in any span of `per`; `refused` counts the calls
/// turned away.
pub struct RollingLimit {
    requests: u32,
    per: Duration,
    seen: VecDeque<Instant>,
}

/// What the window said to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Served: this many left in the window, which frees its oldest slot in
    /// `resets_in`.
    Admitted { remaining: u32, resets_in: Duration },
    /// Over the limit: a slot frees in `retry_after` (whole seconds, as
    /// `Retry-After` says it, rounded up).
    Refused { retry_after_secs: u64 },
}

impl RollingLimit {
    pub fn new(requests: u32, per: Duration) -> Self {
        RollingLimit { requests, per, seen: VecDeque::new() }
    }

    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// Admits the request arriving now, or refuses it (a refused one does
    /// not use up a slot).
    pub fn admit(&mut self) -> Admission {
        let now = Instant::now();
        while self.seen.front().is_some_and(|t| now.duration_since(*t) >= self.per) {
            self.seen.pop_front();
        }
        let frees_in = |oldest: Option<&Instant>| {
            oldest.map_or(self.per, |t| (*t + self.per).saturating_duration_since(now))
        };
        if self.seen.len() >= self.requests as usize {
            let wait = frees_in(self.seen.front());
            return Admission::Refused {
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            };
        }
        self.seen.push_back(now);
        Admission::Admitted {
            remaining: self.requests - self.seen.len() as u32,
            resets_in: frees_in(self.seen.front()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_rolling_window_refuses_past_its_count_until_the_oldest_ages_out() {
        let mut w = RollingLimit::new(2, Duration::from_secs(10));
        assert!(matches!(w.admit(), Admission::Admitted { remaining: 1, .. }));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(
            w.admit(),
            Admission::Admitted { remaining: 0, resets_in: Duration::from_secs(6) }
        );
        assert_eq!(w.admit(), Admission::Refused { retry_after_secs: 6 });
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(matches!(w.admit(), Admission::Admitted { remaining: 0, .. }));
        assert!(matches!(w.admit(), Admission::Refused { .. }));
    }
}
