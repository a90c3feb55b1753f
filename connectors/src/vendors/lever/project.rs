//! Lever records → flat rows: camelCase keys in snake_case, epoch-millisecond
//! timestamps as UTC instants, nested objects flattened where the model
//! reads them (`archived`, posting `categories`, the first e-mail).

use chrono::{DateTime, Utc};
use conveyor_plugin_api::ConnectorError;
use serde_json::{Map, Value};

use super::super::read::{iso_millis, object};
use super::super::table::{Col, Table};
use super::Kind;

/// `stageChanges` → `stage_changes`.
pub(super) fn snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// An epoch-millisecond value as RFC 3339 UTC text, the form the
/// table's instants (and the cursor) read; anything else unchanged.
fn instant(v: &Value) -> Option<Value> {
    let ms = v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))?;
    let t: DateTime<Utc> = DateTime::from_timestamp_millis(ms)?;
    Some(Value::String(iso_millis(t)))
}

/// The calendar date (UTC) of an epoch-millisecond value.
fn date(v: &Value) -> Option<Value> {
    let ms = v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))?;
    let t: DateTime<Utc> = DateTime::from_timestamp_millis(ms)?;
    Some(Value::String(t.date_naive().to_string()))
}

/// Moves `from` out of `row` (if there) to `to`.
fn rename(row: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = row.remove(from) {
        row.insert(to.to_string(), v);
    }
}

/// One record of `t` as a row. `opportunity` is the parent of an offer.
pub(super) fn row(
    t: &Table,
    kind: Kind,
    record: Value,
    opportunity: Option<&str>,
) -> Result<Map<String, Value>, ConnectorError> {
    let mut row: Map<String, Value> = object(record, t.name)?
        .into_iter()
        .map(|(k, v)| (snake(&k), v))
        .collect();
    match kind {
        Kind::Opportunities => {
            // The reference shapes it `archived: {archivedAt, reason} | null`;
            // some descriptions put `archivedAt`/`archiveReason` on top. Either way.
            if let Some(a) = row.remove("archived") {
                let at = a.get("archivedAt").cloned().unwrap_or(Value::Null);
                let reason = a.get("reason").cloned().unwrap_or(Value::Null);
                row.entry("archived_at").or_insert(at);
                row.entry("archive_reason").or_insert(reason);
            }
            let first = |field: &str, inner: Option<&str>| {
                let v = row.get(field).and_then(|e| e.get(0));
                let v = match inner {
                    Some(k) => v.and_then(|e| e.get(k)),
                    None => v,
                };
                v.cloned().unwrap_or(Value::Null)
            };
            // The first address and number, for joins across systems.
            let email = first("emails", None);
            let phone = first("phones", Some("value"));
            row.insert("primary_email".into(), email);
            row.insert("primary_phone".into(), phone);
        }
        Kind::Postings => {
            for key in ["team", "department", "location", "commitment", "level"] {
                let v = row
                    .get("categories")
                    .and_then(|c| c.get(key))
                    .cloned()
                    .unwrap_or(Value::Null);
                row.insert(key.to_string(), v);
            }
            // `user` (who created it) is a reserved word in SQL.
            rename(&mut row, "user", "creator");
        }
        Kind::Offers => {
            row.insert(
                "opportunity_id".into(),
                opportunity.map_or(Value::Null, |o| Value::String(o.to_string())),
            );
            // When the signed document came back: the closest the API
            // gets to "accepted at" [?].
            let signed = row
                .get("signed_document")
                .and_then(|d| d.get("uploadedAt"))
                .cloned()
                .unwrap_or(Value::Null);
            row.insert("signed_at".into(), signed);
            // Offer fields are each company's own form; the start date's
            // identifier `anticipated_start_date` is a guess [?].
            let start = row
                .get("fields")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|f| {
                    f.get("identifier").and_then(Value::as_str) == Some("anticipated_start_date")
                })
                .and_then(|f| f.get("value"))
                .and_then(date)
                .unwrap_or(Value::Null);
            row.insert("start_date".into(), start);
        }
        Kind::Users | Kind::DeletedOpportunities => {}
    }
    for (name, col) in t.columns {
        if *col == Col::Instant {
            if let Some(v) = row.get_mut(*name) {
                if let Some(i) = instant(v) {
                    *v = i;
                }
            }
        }
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::super::TABLES;
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_snake_case_and_epoch_millis_are_utc_instants() {
        assert_eq!(snake("lastInteractionAt"), "last_interaction_at");
        assert_eq!(snake("id"), "id");
        let t = &TABLES[0];
        let r = json!({"id": "o-1", "createdAt": 1407460071043i64, "updatedAt": 1417588008610i64,
            "archived": {"archivedAt": 1417588008610i64, "reason": "r-9"},
            "emails": ["a@x.example", "b@x.example"], "phones": [{"type": "mobile", "value": "+1 555"}]});
        let row = row(t, Kind::Opportunities, r, None).unwrap();
        assert_eq!(row["created_at"], "2014-08-08T01:07:51.043Z");
        assert_eq!(row["updated_at"], "2014-12-03T06:26:48.610Z");
        assert_eq!(row["archived_at"], "2014-12-03T06:26:48.610Z");
        assert_eq!(row["archive_reason"], "r-9");
        assert_eq!(row["primary_email"], "a@x.example");
        assert_eq!(row["primary_phone"], "+1 555");
        assert!(!row.contains_key("archived"));
        // Not archived: both columns null.
        let r = json!({"id": "o-2", "archived": null});
        let row = super::row(t, Kind::Opportunities, r, None).unwrap();
        assert_eq!(row["archived_at"], Value::Null);
        assert_eq!(row["primary_email"], Value::Null);
    }

    #[test]
    fn an_offer_names_its_opportunity_and_start_date() {
        let t = TABLES.iter().find(|t| t.name == "offers").unwrap();
        let r = json!({"id": "f-1", "createdAt": 1717200000000i64, "status": "signed",
            "fields": [{"text": "Start date", "identifier": "anticipated_start_date", "value": 1719792000000i64}],
            "signedDocument": {"fileName": "offer.pdf", "uploadedAt": 1717286400000i64}});
        let row = row(t, Kind::Offers, r, Some("o-1")).unwrap();
        assert_eq!(row["opportunity_id"], "o-1");
        assert_eq!(row["start_date"], "2024-07-01");
        assert_eq!(row["signed_at"], "2024-06-02T00:00:00.000Z");
        assert_eq!(row["created_at"], "2024-06-01T00:00:00.000Z");
    }
}
