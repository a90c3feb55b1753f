//! One request budget per host, shared by every stream and source that calls
//! it: the configured rate, the vendor's documented limit (at most N requests
//! in any window), and the pace the vendor's own rate-limit headers set (the
//! requests left spread over the time to the window's reset). Every client
//! has one, so a source keeps under its vendor's limit without being told.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use conveyor_config::RequestWindow;
use tokio::time::Instant;

/// Requests left in the vendor's window below which they are spread over
/// the time to its reset.
pub const RESERVE: u64 = 10;

/// Spaces requests: at least `interval` apart, never more than a window's
/// worth in any span of it, and no faster than the vendor's headers allow.
pub struct RateLimiter {
    interval: Mutex<Duration>,
    window: Mutex<Option<RequestWindow>>,
    /// What the last response's budget asks: how far apart requests go,
    /// until when, and how many it said were left.
    pace: Mutex<Option<Pace>>,
    slots: tokio::sync::Mutex<Slots>,
}

/// The slots handed out: the earliest next one, and the last window's worth.
struct Slots {
    next: Instant,
    recent: VecDeque<Instant>,
    /// Slots ever dropped from the front of `recent`, so a caller can find
    /// its own slot again after its wait.
    dropped: u64,
}

impl Slots {
    /// Requests `w` allowed in the window ending at `at`, by this
    /// limiter's own count of the slots handed out up to then.
    fn left_in_window(&self, w: &RequestWindow, at: Instant) -> u64 {
        let used = self
            .recent
            .iter()
            .filter(|t| **t <= at && **t + w.per > at)
            .count();
        u64::from(w.requests).saturating_sub(used as u64)
    }
}

/// The vendor's headers' budget as a pace: `interval` apart until `until`;
/// `remaining` left when it was `observed`.
#[derive(Debug, Clone, Copy)]
struct Pace {
    observed: Instant,
    until: Instant,
    interval: Duration,
    remaining: u64,
}

/// How much later than a window after its N-th predecessor a request goes:
/// the server counts arrivals, which jitter, and may count whole seconds.
fn window_margin(w: &RequestWindow) -> Duration {
    w.per / 50 + Duration::from_millis(20)
}

impl RateLimiter {
    /// A limiter spacing requests `1 / requests_per_second` apart (none
    /// when `None`) and keeping to `window`.
    pub fn new(requests_per_second: Option<f64>, window: Option<RequestWindow>) -> Self {
        RateLimiter {
            interval: Mutex::new(
                requests_per_second.map_or(Duration::ZERO, |r| Duration::from_secs_f64(1.0 / r)),
            ),
            window: Mutex::new(window),
            pace: Mutex::new(None),
            slots: tokio::sync::Mutex::new(Slots {
                next: Instant::now(),
                recent: VecDeque::new(),
                dropped: 0,
            }),
        }
    }

    /// Waits for this caller's slot.
    pub async fn acquire(&self) {
        let now = Instant::now();
        let interval = *self.interval.lock().expect("limiter lock");
        let pace = *self.pace.lock().expect("limiter lock");
        let window = *self.window.lock().expect("limiter lock");
        let mut slots = self.slots.lock().await;
        let mut at = slots.next.max(now);
        let window = window.filter(|w| w.requests > 0);
        if let Some(w) = window {
            let n = w.requests as usize;
            if slots.recent.len() >= n {
                let nth_back = slots.recent[slots.recent.len() - n];
                at = at.max(nth_back + w.per + window_margin(&w));
            }
            slots.recent.push_back(at);
            while slots.recent.len() > n {
                slots.recent.pop_front();
                slots.dropped += 1;
            }
        }
        // Only a window records slots; its own is the newest.
        let mine = window.map(|_| slots.dropped + slots.recent.len() as u64 - 1);
        let paced = pace.filter(|p| Self::pace_binds(p, window, &slots, at));
        slots.next = at + paced.map_or(interval, |p| interval.max(p.interval));
        drop(slots);
        tokio::time::sleep_until(at).await;
        if let Some(mine) = mine {
            // The window counts from when the request really leaves: a
            // caller woken late (a busy runtime) would otherwise let the
            // request N later arrive less than a window after it.
            let now = Instant::now();
            let mut slots = self.slots.lock().await;
            if let Some(i) = mine.checked_sub(slots.dropped) {
                if let Some(t) = slots.recent.get_mut(i as usize) {
                    *t = (*t).max(now);
                }
            }
        }
    }

    /// Whether the headers' pace still holds for the request going at `at`.
    /// Not once the window they described has reset (a slot the documented
    /// window pushed past it would otherwise carry the old, empty window's
    /// spacing into the next), nor while the vendor counted about as many
    /// left as the documented window did at the same moment: that window
    /// already keeps to the budget, and spreading it would only forgo the
    /// burst it allows (HubSpot's headers give the window's length, not the
    /// time until a rolling window frees a slot). When the vendor counts
    /// clearly fewer (another tool spends the same budget) they pace.
    fn pace_binds(pace: &Pace, window: Option<RequestWindow>, slots: &Slots, at: Instant) -> bool {
        at < pace.until
            && window.is_none_or(|w| {
                // Requests the server counted a little apart from this
                // limiter (arrivals, not departures; whole seconds).
                let slack = u64::from((w.requests / 20).max(1));
                pace.remaining + slack < slots.left_in_window(&w, pace.observed)
            })
    }

    /// Spends a roomy budget at once, and spreads the last [`RESERVE`]
    /// requests of the vendor's window over the time to its reset: with 5
    /// left and 10 s to go, one every 2 s (a request held back for the
    /// reset itself when none is left). Spreading a full budget would slow
    /// every small sync for nothing; the reserve covers the requests
    /// already in flight when the count comes back.
    pub fn observe(&self, budget: super::budget::Budget) {
        let slots = budget.remaining as u32 + 1;
        let now = Instant::now();
        *self.pace.lock().expect("limiter lock") = (budget.remaining <= RESERVE).then_some(Pace {
            observed: now,
            until: now + budget.resets_in,
            interval: budget.resets_in / slots,
            remaining: budget.remaining,
        });
    }

    /// Pushes every caller back, e.g. after a 429 with `Retry-After`.
    pub async fn pause_until(&self, until: Instant) {
        let mut slots = self.slots.lock().await;
        if slots.next < until {
            slots.next = until;
        }
    }

    /// Keeps the stricter of what it has and what another source asks.
    fn tighten(&self, requests_per_second: Option<f64>, window: Option<RequestWindow>) {
        if let Some(r) = requests_per_second {
            let want = Duration::from_secs_f64(1.0 / r);
            let mut i = self.interval.lock().expect("limiter lock");
            if want > *i {
                *i = want;
            }
        }
        if let Some(w) = window {
            let mut have = self.window.lock().expect("limiter lock");
            let stricter = have.is_none_or(|h| {
                // Fewer requests per second of window: w/per < h/per'.
                (w.requests as f64) / w.per.as_secs_f64()
                    < (h.requests as f64) / h.per.as_secs_f64()
            });
            if stricter {
                *have = Some(w);
            }
        }
    }
}

/// The key a URL's budget is kept under: its host and port (two APIs on one
/// host but different ports, such as loopback mocks, are two budgets).
pub fn budget_key(url: &url::Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// The limiter for `authority` (host and port). Sources that call the same
/// one share one budget; the strictest configured rate and window win.
pub fn for_host(
    authority: &str,
    requests_per_second: Option<f64>,
    window: Option<RequestWindow>,
) -> Arc<RateLimiter> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<RateLimiter>>>> = OnceLock::new();
    let mut map = REGISTRY
        .get_or_init(Default::default)
        .lock()
        .expect("registry lock");
    let limiter = map
        .entry(authority.to_string())
        .or_insert_with(|| Arc::new(RateLimiter::new(requests_per_second, window)))
        .clone();
    limiter.tighten(requests_per_second, window);
    limiter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_by_the_interval() {
        let l = RateLimiter::new(Some(10.0), None);
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
        let l = RateLimiter::new(Some(100.0), None);
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
        let a = for_host("ratelimit-test.example", Some(10.0), None);
        let b = for_host("ratelimit-test.example", Some(2.0), None);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(*a.interval.lock().unwrap(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_documented_window_allows_its_burst_then_waits_for_the_oldest_to_age_out() {
        // 3 in any 10 s: three at once, the fourth a window (and its margin)
        // after the first, the fifth after the second.
        let l = RateLimiter::new(None, Some(RequestWindow::new(3, 10)));
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..6 {
            l.acquire().await;
            at.push(start.elapsed());
        }
        let margin = Duration::from_millis(200 + 20);
        let w = Duration::from_secs(10) + margin;
        assert_eq!(
            at,
            vec![Duration::ZERO, Duration::ZERO, Duration::ZERO, w, w, w]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_rate_or_window_only_the_headers_pace() {
        let l = RateLimiter::new(None, None);
        let start = Instant::now();
        for _ in 0..100 {
            l.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        l.observe(super::super::budget::Budget {
            remaining: 1,
            resets_in: Duration::from_secs(4),
        });
        l.acquire().await;
        l.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_roomy_budget_is_spent_at_once_and_paced_only_near_its_end() {
        let l = RateLimiter::new(None, None);
        let start = Instant::now();
        l.observe(super::super::budget::Budget {
            remaining: 150,
            resets_in: Duration::from_secs(60),
        });
        for _ in 0..5 {
            l.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        l.observe(super::super::budget::Budget {
            remaining: RESERVE,
            resets_in: Duration::from_secs(55),
        });
        l.acquire().await;
        l.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }

    fn left(remaining: u64, resets_in_secs: u64) -> super::super::budget::Budget {
        super::super::budget::Budget {
            remaining,
            resets_in: Duration::from_secs(resets_in_secs),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn headers_that_agree_with_the_window_leave_its_burst_alone() {
        // 3 in any 10 s, and the vendor counts the same: no spreading.
        let l = RateLimiter::new(None, Some(RequestWindow::new(3, 10)));
        let start = Instant::now();
        for remaining in [2, 1, 0] {
            l.acquire().await;
            l.observe(left(remaining, 10));
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn headers_counting_fewer_left_than_the_window_pace_it() {
        // The window would allow 9 more, but the vendor says 1 is left for
        // 4 s (another tool spends the same budget): 2 s apart.
        let l = RateLimiter::new(None, Some(RequestWindow::new(10, 10)));
        let start = Instant::now();
        l.acquire().await;
        l.observe(left(1, 4));
        l.acquire().await;
        l.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_windows_pace_is_not_carried_past_its_reset() {
        // 2 in any 10 s, both spent, the vendor says none left for 10 s: the
        // next two go together once the window has rolled, not 10 s apart.
        let l = RateLimiter::new(None, Some(RequestWindow::new(2, 10)));
        let start = Instant::now();
        l.acquire().await;
        l.acquire().await;
        l.observe(left(0, 10));
        l.acquire().await;
        let third = start.elapsed();
        l.acquire().await;
        assert_eq!(third, Duration::from_millis(10_220));
        assert_eq!(start.elapsed(), third);
    }

    #[test]
    fn the_stricter_window_wins_on_a_shared_host() {
        let a = for_host(
            "window-test.example",
            None,
            Some(RequestWindow::new(100, 10)),
        );
        for_host(
            "window-test.example",
            None,
            Some(RequestWindow::new(300, 60)),
        );
        assert_eq!(*a.window.lock().unwrap(), Some(RequestWindow::new(300, 60)));
        for_host(
            "window-test.example",
            None,
            Some(RequestWindow::new(500, 10)),
        );
        assert_eq!(*a.window.lock().unwrap(), Some(RequestWindow::new(300, 60)));
    }
}
