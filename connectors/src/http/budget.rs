//! What a vendor's rate-limit headers say is left of the current window:
//! how many requests, and how long until the window resets. The client hands
//! it to the host's limiter, which spreads the rest over the time left, so a
//! sync slows down before the limit instead of after a 429.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// Requests left in the window, and the time until it resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub remaining: u64,
    pub resets_in: Duration,
}

fn number(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// A reset given as epoch seconds, seconds from now, or an RFC 3339 instant
/// (Gusto), as a duration from `now` (epoch seconds).
fn reset(h: &HeaderMap, name: &str, now: i64) -> Option<Duration> {
    let text = h.get(name)?.to_str().ok()?.trim();
    let secs = match text.parse::<i64>() {
        // Past 2001 in epoch seconds: an instant, not a count.
        Ok(n) if n > 1_000_000_000 => n - now,
        Ok(n) => n,
        Err(_) => chrono::DateTime::parse_from_rfc3339(text).ok()?.timestamp() - now,
    };
    Some(Duration::from_secs(secs.max(0) as u64))
}

/// The longest wait a reset may ask for. Rate-limit windows are seconds or
/// minutes; a server announcing a reset years away (a broken or hostile
/// upstream) must not stall a sync for that long, nor overflow the clock.
pub const MAX_RESET: Duration = Duration::from_secs(3600);

/// The budget the headers announce, if they announce one, its reset at
/// most [`MAX_RESET`] away. `now` is the current time in epoch seconds.
pub fn from_headers(h: &HeaderMap, now: i64) -> Option<Budget> {
    announced(h, now).map(|b| Budget {
        resets_in: b.resets_in.min(MAX_RESET),
        ..b
    })
}

/// The budget exactly as the headers state it.
fn announced(h: &HeaderMap, now: i64) -> Option<Budget> {
    // HubSpot: the remaining count of a window whose length it states.
    if let (Some(remaining), Some(ms)) = (
        number(h, "x-hubspot-ratelimit-remaining"),
        number(h, "x-hubspot-ratelimit-interval-milliseconds"),
    ) {
        return Some(Budget {
            remaining,
            resets_in: Duration::from_millis(ms),
        });
    }
    // Genesys Cloud: used and allowed, and the seconds to the reset.
    if let (Some(count), Some(allowed)) = (
        number(h, "inin-ratelimit-count"),
        number(h, "inin-ratelimit-allowed"),
    ) {
        return Some(Budget {
            remaining: allowed.saturating_sub(count),
            resets_in: reset(h, "inin-ratelimit-reset", now).unwrap_or(Duration::from_secs(60)),
        });
    }
    // Xero: the minute window (the day's limit is far looser per minute).
    if let Some(remaining) = number(h, "x-minlimit-remaining") {
        return Some(Budget {
            remaining,
            resets_in: Duration::from_secs(60),
        });
    }
    // The common `X-RateLimit-*` (Greenhouse, Gusto, …), or Zendesk's
    // `X-Rate-Limit-Remaining` (a minute window).
    if let Some(remaining) = number(h, "x-ratelimit-remaining") {
        return Some(Budget {
            remaining,
            resets_in: reset(h, "x-ratelimit-reset", now).unwrap_or(Duration::from_secs(10)),
        });
    }
    number(h, "x-rate-limit-remaining").map(|remaining| Budget {
        remaining,
        resets_in: Duration::from_secs(60),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    const NOW: i64 = 1_717_401_600;

    #[test]
    fn each_vendors_headers_read_as_requests_left_and_time_to_reset() {
        fn b(pairs: &[(&'static str, &str)]) -> Option<Budget> {
            from_headers(&headers(pairs), NOW)
        }
        assert_eq!(
            b(&[
                ("x-hubspot-ratelimit-remaining", "12"),
                ("x-hubspot-ratelimit-interval-milliseconds", "10000")
            ]),
            Some(Budget {
                remaining: 12,
                resets_in: Duration::from_secs(10)
            })
        );
        assert_eq!(
            b(&[
                ("inin-ratelimit-count", "290"),
                ("inin-ratelimit-allowed", "300"),
                ("inin-ratelimit-reset", "17")
            ]),
            Some(Budget {
                remaining: 10,
                resets_in: Duration::from_secs(17)
            })
        );
        assert_eq!(
            b(&[
                ("x-minlimit-remaining", "3"),
                ("x-daylimit-remaining", "4000")
            ]),
            Some(Budget {
                remaining: 3,
                resets_in: Duration::from_secs(60)
            })
        );
        // Epoch seconds (Greenhouse) and an RFC 3339 instant (Gusto).
        let in_8s = (NOW + 8).to_string();
        assert_eq!(
            b(&[
                ("x-ratelimit-remaining", "5"),
                ("x-ratelimit-reset", &in_8s)
            ]),
            Some(Budget {
                remaining: 5,
                resets_in: Duration::from_secs(8)
            })
        );
        assert_eq!(
            b(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "2024-06-03T08:01:00+00:00")
            ]),
            Some(Budget {
                remaining: 0,
                resets_in: Duration::from_secs(60)
            })
        );
        assert_eq!(
            b(&[("x-rate-limit-remaining", "9")]),
            Some(Budget {
                remaining: 9,
                resets_in: Duration::from_secs(60)
            })
        );
        assert_eq!(b(&[("content-type", "application/json")]), None);
        // A reset years away, or an interval of u64::MAX ms, waits an hour
        // at most.
        assert_eq!(
            b(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "99999999999")
            ]),
            Some(Budget {
                remaining: 0,
                resets_in: MAX_RESET
            })
        );
        assert_eq!(
            b(&[
                ("x-hubspot-ratelimit-remaining", "0"),
                (
                    "x-hubspot-ratelimit-interval-milliseconds",
                    "18446744073709551615"
                )
            ]),
            Some(Budget {
                remaining: 0,
                resets_in: MAX_RESET
            })
        );
    }
}
