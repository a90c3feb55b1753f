//! Process-wide HTTP figures for the daemon's `/metrics`: requests by host
//! and status class, retries, 429s and the time spent waiting on a host's
//! rate budget. Counted by the shared client; read as a snapshot.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Per host: requests by status class (`2xx` … `5xx`, `error` for no
/// response), retries, 429 answers and seconds waited for the rate budget.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostStats {
    pub requests: BTreeMap<String, u64>,
    pub retries: u64,
    pub throttled: u64,
    pub rate_wait_secs: f64,
}

static STATS: Mutex<BTreeMap<String, HostStats>> = Mutex::new(BTreeMap::new());

fn with(host: &str, f: impl FnOnce(&mut HostStats)) {
    let mut stats = STATS.lock().unwrap_or_else(|e| e.into_inner());
    f(stats.entry(host.to_string()).or_default());
}

/// A response (`Some(status)`) or a request that got none (`None`).
pub(crate) fn request(host: &str, status: Option<u16>) {
    let class = match status {
        Some(s) => format!("{}xx", s / 100),
        None => "error".to_string(),
    };
    with(host, |h| {
        *h.requests.entry(class).or_default() += 1;
        if status == Some(429) {
            h.throttled += 1;
        }
    });
}

pub(crate) fn retry(host: &str) {
    with(host, |h| h.retries += 1);
}

pub(crate) fn rate_wait(host: &str, waited: Duration) {
    if !waited.is_zero() {
        with(host, |h| h.rate_wait_secs += waited.as_secs_f64());
    }
}

/// Every host's figures so far.
pub fn snapshot() -> BTreeMap<String, HostStats> {
    STATS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_count_by_host_and_class() {
        let host = "stats-test.example";
        request(host, Some(200));
        request(host, Some(429));
        request(host, None);
        retry(host);
        rate_wait(host, Duration::from_millis(250));
        let s = snapshot()[host].clone();
        assert_eq!(s.requests["2xx"], 1);
        assert_eq!(s.requests["4xx"], 1);
        assert_eq!(s.requests["error"], 1);
        assert_eq!((s.retries, s.throttled), (1, 1));
        assert!((s.rate_wait_secs - 0.25).abs() < 1e-9);
    }
}
