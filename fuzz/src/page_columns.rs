//! The `page_columns` fuzz target's body: a page's bytes → Arrow columns.
//!
//! Shared by `fuzz/fuzz_targets/page_columns.rs` and the seed replay test
//! `connectors/tests/suite/fuzz_corpus.rs` (which includes this file by path), so
//! it uses only crates both have. Input: the first line is the stream's
//! `records` selector (as written in config), the rest is the page body.
//!
//! Besides "never panics", it checks the promise in `json_columns.rs`: the
//! bytes → columns hot path (`parse_page`) gives the same batch, record count
//! and envelope as the `Value` path (`serde_json` tree, records taken at the
//! selector, `records_to_batch`), and each fails where the other fails.
//! And the scan the pager reads first (`scan_page`, which only skims the
//! records) counts what the parse reads, keeps the same envelope, and fails
//! only where the parse fails too.

use arrow_array::RecordBatch;
use conveyor_config::JsonPath;
use conveyor_connectors::json_arrow::records_to_batch;
use conveyor_connectors::json_columns::{parse_page, scan_page};
use serde_json::Value;

/// What one page became: the envelope, how many records, and the batch.
pub type Parsed = (Value, usize, Option<RecordBatch>);

/// Splits an input into (selector, body): the selector is the first line.
pub fn split(data: &[u8]) -> (JsonPath, &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (
            JsonPath::parse(&String::from_utf8_lossy(&data[..i])),
            &data[i + 1..],
        ),
        None => (JsonPath::default(), data),
    }
}

/// The slow path the REST connector takes when `parse_page` declines (a
/// selector through an array): a `Value` tree, the records moved out at the
/// selector, then `records_to_batch`.
pub fn value_path(body: &[u8], selector: &JsonPath) -> Result<Parsed, String> {
    let mut doc: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let records = match take(&mut doc, selector) {
        Some(Value::Array(v)) => v,
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(o)) => vec![Value::Object(o)],
        Some(other) => return Err(format!("`{selector}` holds {other}, not records")),
    };
    let batch = if records.is_empty() {
        None
    } else {
        Some(records_to_batch(&records).map_err(|e| e.to_string())?)
    };
    Ok((doc, records.len(), batch))
}

/// `rest/select.rs::take` (private to the connector crate): moves the value
/// at `path` out of `doc`, leaving null.
fn take(doc: &mut Value, path: &JsonPath) -> Option<Value> {
    let mut cur = doc;
    for seg in &path.0 {
        cur = match cur {
            Value::Object(m) => m.get_mut(seg)?,
            Value::Array(a) => a.get_mut(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur.take())
}

/// Runs one input; panics on a crash or when the two paths disagree.
/// Returns what the connector would have made of the page.
pub fn fuzz_one(data: &[u8]) -> Result<Parsed, String> {
    let (selector, body) = split(data);
    let slow = value_path(body, &selector);
    let Some(fast) = parse_page(body, &selector.0) else {
        // A numeric segment: the connector takes the Value path alone.
        assert!(
            selector.0.iter().any(|s| s.parse::<usize>().is_ok()),
            "parse_page declined the selector `{selector}` without a numeric segment"
        );
        return slow;
    };
    let scan = scan_page(body, &selector.0).expect("the parse took this selector");
    match (&scan, &fast) {
        (Ok(scanned), Ok(parsed)) => {
            assert_eq!(
                scanned.records, parsed.records,
                "the scan counted differently"
            );
            assert_eq!(
                scanned.envelope, parsed.envelope,
                "the scan's envelope differs"
            );
        }
        (Err(e), Ok(_)) => panic!("the scan failed where the parse did not: {e}"),
        (_, Err(_)) => {}
    }
    match (fast, &slow) {
        (Ok(page), Ok((envelope, records, batch))) => {
            assert_eq!(page.records, *records, "record counts differ");
            assert_eq!(&page.envelope, envelope, "envelopes differ");
            assert_eq!(
                page.batch.as_ref().map(|b| b.num_rows()),
                Some(page.records).filter(|&n| n > 0),
                "batch rows differ from the record count"
            );
            assert_eq!(&page.batch, batch, "the two paths built different batches");
        }
        (Err(_), Err(_)) => {}
        (fast, slow) => panic!(
            "one path failed and the other did not: parse_page {:?}, Value path {:?}",
            fast.map(|p| p.records),
            slow.as_ref().map(|s| s.1)
        ),
    }
    slow
}
