//! The time windows Amazon Connect is asked about: where a read starts
//! (the cursor less the look-back, the start date, or as far back as the
//! API keeps), and a long window cut into chunks the API accepts.

use chrono::{DateTime, Duration, Months, Utc};
use conveyor_plugin_api::Json;

/// A DAY-interval GetMetricDataV2 query must span less than 35 days; each
/// chunk spans at most this many.
pub const MAX_DAY_CHUNK_DAYS: i64 = 34;

/// UTC midnight at or before `t` (DAY intervals are days in `TimeZone: UTC`).
pub fn midnight(t: DateTime<Utc>) -> DateTime<Utc> {
    t.date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
}

/// The oldest instant a read asks for: the UTC midnight two days after
/// three months before `now` — a day or more inside the metrics API's
/// history, so a clock a little off from the server's is still inside.
pub fn history_floor(now: DateTime<Utc>) -> DateTime<Utc> {
    let three_months = now.checked_sub_months(Months::new(3)).unwrap_or(now);
    midnight(three_months) + Duration::days(2)
}

/// Where a read starts: the saved cursor less `lookback_days`, else the
/// start date, else the history floor; never before the floor, and at a
/// UTC midnight.
pub fn read_start(
    state: Option<&Json>,
    start_date: Option<chrono::NaiveDate>,
    lookback_days: u32,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let floor = history_floor(now);
    let cursor = state
        .and_then(|s| s.get("cursor"))
        .and_then(|c| c.as_str())
        .and_then(crate::json_arrow::parse_timestamp);
    let wanted = match (cursor, start_date) {
        (Some(c), _) => c - Duration::days(i64::from(lookback_days)),
        (None, Some(d)) => d.and_hms_opt(0, 0, 0).expect("midnight").and_utc(),
        (None, None) => floor,
    };
    midnight(wanted.max(floor).min(now))
}

/// `[start, end)` cut into consecutive chunks of at most `max_days` days.
pub fn chunks(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    max_days: i64,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut from = start;
    while from < end {
        let to = (from + Duration::days(max_days)).min(end);
        out.push((from, to));
        from = to;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        crate::json_arrow::parse_timestamp(s).unwrap()
    }

    #[test]
    fn a_long_window_is_cut_into_chunks_shorter_than_35_days() {
        let (start, end) = (at("2024-03-01T00:00:00Z"), at("2024-05-20T09:30:00Z"));
        let c = chunks(start, end, MAX_DAY_CHUNK_DAYS);
        assert_eq!(c.len(), 3);
        assert_eq!(c[0], (start, at("2024-04-04T00:00:00Z")));
        assert_eq!(c[1].0, c[0].1, "no gap, no overlap");
        assert_eq!(c[2].1, end);
        assert!(c.iter().all(|(a, b)| *b - *a < Duration::days(35)));
        assert!(chunks(end, end, MAX_DAY_CHUNK_DAYS).is_empty());
    }

    #[test]
    fn a_read_starts_at_the_cursor_less_the_look_back_within_the_history() {
        let now = at("2024-06-10T15:00:00Z");
        let state = json!({"cursor": "2024-06-09T12:00:00.000Z"});
        assert_eq!(
            read_start(Some(&state), None, 3, now),
            at("2024-06-06T00:00:00Z")
        );
        // A start date inside the history, then one before it.
        let d = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        assert_eq!(
            read_start(None, d("2024-05-01"), 3, now),
            at("2024-05-01T00:00:00Z")
        );
        assert_eq!(
            read_start(None, d("2023-01-01"), 3, now),
            at("2024-03-12T00:00:00Z")
        );
        assert_eq!(read_start(None, None, 3, now), history_floor(now));
        assert!(history_floor(now) > now.checked_sub_months(Months::new(3)).unwrap());
    }
}
