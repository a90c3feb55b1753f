//! Who a full read listed, so that a worker (or an assignment) that stops
//! being listed does not linger in the warehouse as current: the stream
//! state keeps the keys of the last complete read, and the next complete
//! read emits a tombstone (`deleted = true`, the key and nothing else, as
//! QuickBooks' deletions are) for each key it no longer saw.
//!
//! ADP documents no deletion feed [?]; a worker who leaves normally stays
//! listed with a terminated status, so a key that vanishes was removed in
//! ADP or is no longer visible to these credentials. An empty listing after
//! a non-empty one is taken for the latter and tombstones nothing (logged):
//! a whole workforce does not leave between two syncs.

use std::collections::BTreeSet;

use conveyor_plugin_api::Json;
use serde_json::{Map, Value};

/// State key: the keys the last complete read listed.
pub(super) const LISTED: &str = "listed";

/// The keys one read lists, each a row's primary key values joined.
#[derive(Default)]
pub(super) struct Roster {
    seen: BTreeSet<Vec<String>>,
}

/// A row's key values as text (`None` if one is missing: such a row is
/// the warehouse's reject, not a roster entry).
fn key_of(row: &Map<String, Value>, key: &[&str]) -> Option<Vec<String>> {
    key.iter()
        .map(|k| row.get(*k)?.as_str().map(str::to_string))
        .collect()
}

/// The keys a saved state lists.
fn listed(state: Option<&Json>) -> BTreeSet<Vec<String>> {
    state
        .and_then(|s| s.get(LISTED))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|k| {
            k.as_array()?
                .iter()
                .map(|p| p.as_str().map(str::to_string))
                .collect()
        })
        .collect()
}

impl Roster {
    pub fn see(&mut self, row: &Map<String, Value>, key: &[&str]) {
        if let Some(k) = key_of(row, key) {
            self.seen.insert(k);
        }
    }

    /// The associate OIDs (the first key value) of what `state` listed and
    /// this read did not yet; none when this read listed nothing at all
    /// while the last listed some (see the module's header).
    pub fn missing_workers(&self, state: Option<&Json>) -> Vec<String> {
        let before = listed(state);
        if self.seen.is_empty() && !before.is_empty() {
            return Vec::new();
        }
        let oids: BTreeSet<String> = before
            .difference(&self.seen)
            .filter_map(|k| k.first().cloned())
            .collect();
        oids.into_iter().collect()
    }

    /// Tombstones for what `state` listed and this read did not; `None`
    /// when this read listed nothing while the last listed some.
    pub fn tombstones(
        &self,
        state: Option<&Json>,
        key: &[&str],
    ) -> Option<Vec<Map<String, Value>>> {
        let before = listed(state);
        if self.seen.is_empty() && !before.is_empty() {
            return None;
        }
        Some(
            before
                .difference(&self.seen)
                .map(|gone| {
                    let mut row: Map<String, Value> = key
                        .iter()
                        .zip(gone)
                        .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
                        .collect();
                    row.insert("deleted".into(), Value::Bool(true));
                    row
                })
                .collect(),
        )
    }

    /// The state after a complete read: what it listed.
    pub fn state(&self) -> Json {
        serde_json::json!({ "cursor": null, LISTED: self.seen })
    }

    /// The state after a complete read that listed nothing where the last
    /// read listed some: the old listing is kept, so the keys are still
    /// recognised as gone when the listing comes back without them.
    pub fn keep(state: Option<&Json>) -> Json {
        serde_json::json!({ "cursor": null, LISTED: listed(state) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &[&str] = &["associate_oid", "item_id"];

    fn row(oid: &str, item: &str) -> Map<String, Value> {
        json!({"associate_oid": oid, "item_id": item, "job_title": "Agent"})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn what_is_no_longer_listed_becomes_a_tombstone() {
        let mut first = Roster::default();
        for (o, i) in [("A", "1"), ("A", "2"), ("B", "1")] {
            first.see(&row(o, i), KEY);
        }
        assert_eq!(
            first.tombstones(None, KEY).unwrap(),
            Vec::<Map<String, Value>>::new()
        );
        let state = first.state();
        assert_eq!(state["listed"], json!([["A", "1"], ["A", "2"], ["B", "1"]]));

        let mut second = Roster::default();
        second.see(&row("A", "1"), KEY);
        second.see(&row("C", "1"), KEY);
        assert_eq!(second.missing_workers(Some(&state)), ["A", "B"]);
        let gone = second.tombstones(Some(&state), KEY).unwrap();
        assert_eq!(
            gone,
            vec![
                json!({"associate_oid": "A", "item_id": "2", "deleted": true})
                    .as_object()
                    .unwrap()
                    .clone(),
                json!({"associate_oid": "B", "item_id": "1", "deleted": true})
                    .as_object()
                    .unwrap()
                    .clone(),
            ]
        );
    }

    #[test]
    fn an_empty_listing_after_a_full_one_tombstones_nothing() {
        let mut first = Roster::default();
        first.see(&row("A", "1"), KEY);
        let state = first.state();
        assert!(Roster::default().tombstones(Some(&state), KEY).is_none());
        assert!(Roster::default().missing_workers(Some(&state)).is_empty());
        assert_eq!(Roster::keep(Some(&state))["listed"], json!([["A", "1"]]));
        // A row without its key is not an entry.
        let mut r = Roster::default();
        r.see(
            &json!({"associate_oid": "A"}).as_object().unwrap().clone(),
            KEY,
        );
        assert_eq!(r.state()["listed"], json!([]));
    }
}
