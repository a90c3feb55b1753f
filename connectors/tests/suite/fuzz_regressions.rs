//! Crashes found while fuzzing the connectors (docs/fuzzing.md), one test
//! each, in the fuzz harness's own input format where a fuzz target found
//! it, or as the config value that reached the connector.

use std::path::Path;

use super::fuzz_corpus::rest_pager;

#[test]

fn fuzz_retry_after_nan_fails_the_read_instead_of_ending_it() {
    // Found by the rest_pager target. "NaN".parse::<f64>() is Ok(NaN),
    // NaN.clamp(0, 3600) is NaN, and Duration::from_secs_f64 panics. The
    // panic is in the connector's page task, which tokio catches: the read
    // then returns Ok as if the stream had ended, and its last checkpoint
    // moves the cursor past every page not read — silent data loss.
    let input = concat!(
        "records = \"data\"\n",
        "pagination = { type = \"next_url\" }\n",
        "incremental = { cursor_field = \"updated_at\", param = \"since\", start = \"2024-01-01T00:00:00Z\" }\n",
        "--- 200\n\n",
        r#"{"data": [{"id": 1, "updated_at": "2024-06-01T00:00:00Z"}], "next": "/api/items?page=2"}"#,
        "\n--- 429\nretry-after: NaN\n\n{}"
    );
    let out = rest_pager::fuzz_one(input.as_bytes());
    match &out.result {
        Some(Err(e)) => assert!(e.contains("429"), "{e}"),
        other => panic!("a 429 must fail the read, got {other:?}"),
    }
}

/// The error `check` gives for a REST source with `extra` in its table.
fn refused(extra: &str) -> String {
    let text = format!(
        "[warehouse]\npath = \"wh.duckdb\"\n[sources.t]\ntype = \"rest\"\nbase_url = \"http://127.0.0.1:9/api\"\nmax_retries = 0\n{extra}\n[[sources.t.streams]]\nname = \"items\"\npath = \"/items\"\nprimary_key = \"id\"\n"
    );
    match conveyor_config::parse_offline(&text, Path::new("/tmp/c.toml")) {
        Ok(_) => panic!("`{extra}` was accepted, and would panic at sync"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn fuzz_tiny_requests_per_second_is_refused_by_the_config() {
    // Found while fuzzing config values into the connector: any positive
    // requests_per_second was accepted, and 1 / 1e-300 seconds overflows
    // Duration in RateLimiter::new.
    let e = refused("requests_per_second = 1e-300");
    assert!(
        e.contains("/tmp/c.toml:7:23: sources.t.requests_per_second: must be a number of at least"),
        "{e}"
    );
    for bad in ["nan", "inf", "0", "-1"] {
        refused(&format!("requests_per_second = {bad}"));
    }
}

#[test]
fn fuzz_huge_prefetch_pages_is_refused_by_the_config() {
    // Found while fuzzing config values into the connector: any
    // prefetch_pages was accepted, and tokio's channel capacity is capped.
    let e = refused("prefetch_pages = 4611686018427387904");
    assert!(
        e.contains("sources.t.prefetch_pages: must be between 1 and 256"),
        "{e}"
    );
    refused("prefetch_pages = 0");
}

#[test]
fn fuzz_a_repeated_selector_key_whose_first_value_is_a_scalar_agrees_on_both_paths() {
    // Found by the page_columns target: `{"data": "…", "data": [{…}]}`. The
    // Value path keeps the last `data` (the records); the hot path failed on
    // the first (a string) before it could see the second.
    let input = b"data\n{\"data\": \"2024-06-03T07:15:22-07:00\", \"data\": [{\"a\": 2}]}";
    let (_, records, _) = super::fuzz_corpus::page_columns::fuzz_one(input).expect("the records");
    assert_eq!(records, 1);
    // The other way round the last value is a string: both refuse it.
    let input = b"data\n{\"data\": [{\"a\": 2}], \"data\": \"x\"}";
    assert!(super::fuzz_corpus::page_columns::fuzz_one(input).is_err());
}
