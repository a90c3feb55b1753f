//! One request budget per host, shared by every stream and source that calls it:
//! the configured rate, and the pace the vendor's own rate-limit headers set
//! (the requests left spread over the time to the window's reset).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

/// Spaces requests at least `interval` apart.
pub struct RateLimiter {
    interval: Mutex<Duration>,
    /// Until when, and how far apart, the last response's budget asks
    /// requests to be.
    pace: Mutex<Option<(Instant, Duration)>>,
    next_slot: tokio::sync::Mutex<Instant>,
}

impl RateLimiter {
    pub fn new(requests_per_second: f64) -> Self {
        RateLimiter {
            interval: Mutex::new(Duration::from_secs_f64(1.0 / requests_per_second)),
            pace: Mutex::new(None),
            next_slot: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    /// Waits for this caller's slot.
    pub async fn acquire(&self) {
        let now = Instant::now();
        let mut interval = *self.interval.lock().expect("limiter lock");
        if let Some((until, paced)) = *self.pace.lock().expect("limiter lock") {
            if now < until {
                interval = interval.max(paced);
            }
        }
        let mut next = self.next_slot.lock().await;
        let at = (*next).max(now);
        *next = at + interval;
        drop(next);
        tokio::time::sleep_until(at).await;
    }

    /// Spreads what is left of the vendor's window over the time to its
    /// reset: with 5 requests left and 10 s to go, one every 2 s (a request
    /// held back for the reset itself when none is left). A roomy budget
    /// paces so little that it costs nothing.
    pub fn observe(&self, budget: super::budget::Budget) {
        let slots = budget.remaining as u32 + 1;
        let paced = budget.resets_in / slots;
        *self.pace.lock().expect("limiter lock") = Some((Instant::now() + budget.resets_in, paced));
    }

    /// Pushes every caller back, e.g. after a 429 with `Retry-After`.
    pub async fn pause_until(&self, until: Instant) {
        let mut next = self.next_slot.lock().await;
        if *next < until {
            *next = until;
        }
    }

    fn tighten(&self, requests_per_second: f64) {
        let want = Duration::from_secs_f64(1.0 / requests_per_second);
        let mut i = self.interval.lock().expect("limiter lock");
        if want > *i {
            *i = want;
        }
    }
}

/// The limiter for `host`. Sources that name the same host share one budget;
/// the strictest configured rate wins.
pub fn for_host(host: &str, requests_per_second: f64) -> Arc<RateLimiter> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<RateLimiter>>>> = OnceLock::new();
    let mut map = REGISTRY
        .get_or_init(Default::default)
        .lock()
        .expect("registry lock");
    let limiter = map
        .entry(host.to_string())
        .or_insert_with(|| Arc::new(RateLimiter::new(requests_per_second)))
        .clone();
    limiter.tighten(requests_per_second);
    limiter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_by_the_interval() {
        let l = RateLimiter::new(10.0);
        let start = Instant::now();
        for _ in 0..5 {
            l.acquire().await;
        }
        // Five slots at 0, 100, 200, 300, 400 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn a_nearly_spent_window_spreads_the_rest_until_its_reset() {
        // Configured for 100/s, but the vendor says 4 left for 10 s.
        let l = RateLimiter::new(100.0);
        l.observe(super::super::budget::Budget {
            remaining: 4,
            resets_in: Duration::from_secs(10),
        });
        let start = Instant::now();
        for _ in 0..3 {
            l.acquire().await;
        }
        // Slots at 0, 2 and 4 s: the five slots of 2 s fill the window.
        assert_eq!(start.elapsed(), Duration::from_secs(4));
        // Past the reset the configured rate is back.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let later = Instant::now();
        l.acquire().await;
        l.acquire().await;
        assert_eq!(later.elapsed(), Duration::from_millis(10));
    }

    #[test]
    fn same_host_shares_one_budget() {
        let a = for_host("ratelimit-test.example", 10.0);
        let b = for_host("ratelimit-test.example", 2.0);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(*a.interval.lock().unwrap(), Duration::from_millis(500));
    }
}
