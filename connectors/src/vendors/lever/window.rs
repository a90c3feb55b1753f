//! Lever's incremental window: each read starts a look-back before the
//! saved cursor, and the records already emitted inside that look-back are
//! recognised by fingerprint so they are not emitted again.
//!
//! Lever's `updated_at_start` is inclusive, and its timestamps are
//! millisecond instants stamped when a change begins, so a change may
//! become visible after a later one was already read. Re-reading a short
//! window before the cursor catches it; the fingerprints (kept in the
//! stream state with their instant, pruned to the window) keep the
//! unchanged records of that window from coming out twice. A record that
//! changed has a new fingerprint and is emitted.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use conveyor_plugin_api::Json;
use serde_json::{json, Map, Value};

use super::super::read::{fingerprint, iso_millis};
use crate::json_arrow::parse_timestamp;

/// How far before the cursor each read starts. Lever does not document
/// how late a change can show in its filtered lists [?]; five minutes is a
/// guess that costs a few re-read records per run.
pub(crate) const LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// The state key of the recent fingerprints (`"<ms>:<fingerprint>"`).
const RECENT: &str = "recent";

pub(crate) struct Window {
    /// The last run's cursor (epoch ms), or the start date.
    cursor: Option<i64>,
    /// What the last run had seen inside its look-back.
    last: HashMap<String, i64>,
    /// This read's newest instant and everything it saw.
    newest: Option<i64>,
    seen: HashMap<String, i64>,
}

impl Window {
    /// Resumes from a saved state; without one, from `start` (the
    /// configured start date), or from the beginning.
    pub fn resume(state: Option<&Json>, start: Option<DateTime<Utc>>) -> Self {
        let cursor = state
            .and_then(|s| s.get("cursor"))
            .and_then(Value::as_str)
            .and_then(parse_timestamp)
            .or(start)
            .map(|t| t.timestamp_millis());
        let last = state
            .and_then(|s| s.get(RECENT))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| {
                let key = v.as_str()?;
                let ms = key.split_once(':')?.0.parse().ok()?;
                Some((key.to_string(), ms))
            })
            .collect();
        Window {
            cursor,
            last,
            newest: cursor,
            seen: HashMap::new(),
        }
    }

    /// The `…_start` filter to send (epoch ms), if any.
    pub fn start_ms(&self) -> Option<i64> {
        self.cursor.map(|c| (c - LOOKBACK_MS).max(0))
    }

    /// Whether to emit `row`, whose cursor column holds `at` (an RFC 3339
    /// instant once projected). Rows without one are always emitted.
    pub fn fresh(&mut self, row: &Map<String, Value>, at: Option<&Value>) -> bool {
        let Some(ms) = at
            .and_then(Value::as_str)
            .and_then(parse_timestamp)
            .map(|t| t.timestamp_millis())
        else {
            return true;
        };
        self.newest = Some(self.newest.map_or(ms, |n| n.max(ms)));
        let key = format!("{ms}:{}", fingerprint(row));
        let first_here = self.seen.insert(key.clone(), ms).is_none();
        first_here && !self.last.contains_key(&key)
    }

    /// `{"cursor": …, "recent": […]}` for the next run: the newest instant
    /// seen, and what was seen within the look-back before it.
    pub fn state(&self) -> Json {
        let floor = self.newest.map_or(i64::MIN, |n| n - LOOKBACK_MS);
        let mut recent: Vec<&String> = self
            .last
            .iter()
            .chain(self.seen.iter())
            .filter(|(_, ms)| **ms >= floor)
            .map(|(k, _)| k)
            .collect();
        recent.sort();
        recent.dedup();
        let cursor = self
            .newest
            .and_then(DateTime::<Utc>::from_timestamp_millis)
            .map(iso_millis);
        json!({ "cursor": cursor, RECENT: recent })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, at: &str, v: &str) -> Map<String, Value> {
        json!({"id": id, "updated_at": at, "v": v})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn the_look_back_re_reads_but_emits_only_what_changed() {
        let (t1, t2) = ("2024-06-03T07:58:30.000Z", "2024-06-03T08:03:00.000Z");
        let mut w = Window::resume(None, None);
        assert_eq!(w.start_ms(), None);
        let at = |r: &Map<String, Value>| r.get("updated_at").cloned();
        for r in [row("a", t1, "x"), row("b", t2, "x")] {
            assert!(w.fresh(&r, at(&r).as_ref()));
        }
        let again = row("b", t2, "x");
        assert!(!w.fresh(&again, at(&again).as_ref()), "a page repeat");
        let state = w.state();
        assert_eq!(state["cursor"], t2);
        assert_eq!(
            state["recent"].as_array().unwrap().len(),
            2,
            "both in 5 min"
        );

        // Next run: starts 5 minutes before the cursor, both rows come
        // again unchanged and are skipped; a changed one and a late one
        // (older than the cursor, inside the window) are emitted.
        let mut w = Window::resume(Some(&state), None);
        let cursor = parse_timestamp(t2).unwrap().timestamp_millis();
        assert_eq!(w.start_ms(), Some(cursor - LOOKBACK_MS));
        for r in [row("a", t1, "x"), row("b", t2, "x")] {
            assert!(!w.fresh(&r, at(&r).as_ref()));
        }
        let changed = row("a", "2024-06-03T08:04:00.000Z", "y");
        assert!(w.fresh(&changed, at(&changed).as_ref()));
        let late = row("c", "2024-06-03T08:01:00.000Z", "x");
        assert!(w.fresh(&late, at(&late).as_ref()));
        assert!(w.fresh(&row("d", "", "x"), None), "no instant: emitted");
        let state = w.state();
        assert_eq!(state["cursor"], "2024-06-03T08:04:00.000Z");
        // Pruned to the window before the new cursor: 07:58:30 is out.
        let recent: Vec<&str> = state["recent"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(recent.len(), 3, "{recent:?}");
        let floor = parse_timestamp("2024-06-03T07:59:00.000Z")
            .unwrap()
            .timestamp_millis();
        assert!(recent
            .iter()
            .all(|k| k.split_once(':').unwrap().0.parse::<i64>().unwrap() > floor));
    }
}
