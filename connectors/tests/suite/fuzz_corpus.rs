//! Replays the `page_columns` and `rest_pager` fuzz targets' seed corpora
//! (`fuzz/corpus/<target>/`) through the targets' own bodies, included by
//! path from `fuzz/src/`, so the normal test suite checks every seed
//! without cargo-fuzz: no panic (also none in the connector's page task),
//! the two page paths agree, paging ends, checkpoints keep the start cursor.

use std::path::PathBuf;

#[allow(dead_code)]
#[path = "../../../fuzz/src/page_columns.rs"]
pub(crate) mod page_columns;
#[allow(dead_code)]
#[path = "../../../fuzz/src/rest_pager.rs"]
pub(super) mod rest_pager;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn fuzz_page_columns_seeds_agree_on_both_paths() {
    let seeds = seeds("page_columns");
    assert!(seeds.len() >= 20, "only {} seeds", seeds.len());
    let mut results = std::collections::BTreeMap::new();
    for (name, data) in &seeds {
        let r = std::panic::catch_unwind(|| page_columns::fuzz_one(data))
            .unwrap_or_else(|_| panic!("seed {name} crashed the page_columns target"));
        results.insert(name.as_str(), r.map(|(_, n, _)| n));
    }
    let want = [
        ("greenhouse_candidates.json", 2),
        ("quickbooks_invoices.json", 1),
        ("quickbooks_empty.json", 0),
        ("quickbooks_cdc_array_path.json", 1),
        ("mixed_types.json", 3),
        ("single_object.json", 1),
        ("selector_missing.json", 0),
    ];
    for (name, n) in want {
        assert_eq!(
            results[name].as_ref().ok(),
            Some(&n),
            "{name}: {:?}",
            results[name]
        );
    }
    for bad in [
        "not_records.json",
        "records_is_string.json",
        "truncated.json",
        "trailing_garbage.json",
    ] {
        assert!(results[bad].is_err(), "{bad} parsed: {:?}", results[bad]);
    }
}

#[test]
fn fuzz_rest_pager_seeds_end_and_keep_the_start_cursor() {
    let seeds = seeds("rest_pager");
    assert!(seeds.len() >= 15, "only {} seeds", seeds.len());
    let mut outcomes = std::collections::BTreeMap::new();
    for (name, data) in &seeds {
        let out = rest_pager::fuzz_one(data);
        outcomes.insert(name.clone(), out);
    }
    let ok = |name: &str, rows: usize, requests: usize| {
        let o = &outcomes[name];
        assert_eq!(o.result, Some(Ok(())), "{name}: {o:?}");
        assert_eq!((o.rows, o.requests), (rows, requests), "{name}: {o:?}");
    };
    ok("next_url_two_pages.txt", 2, 2);
    ok("link_header.txt", 3, 2);
    ok("cursor_token.txt", 1, 2);
    ok("offset_quickbooks.txt", 1, 2);
    ok("page_number_total_header.txt", 2, 2);
    ok("same_link_loop.txt", 1, 1);
    // The incremental read moved its cursor only in the last checkpoint.
    let two = &outcomes["next_url_two_pages.txt"];
    assert_eq!(
        two.checkpoints.last().unwrap()["cursor"],
        serde_json::json!("2024-06-02T00:00:00.000Z"),
        "{two:?}"
    );
    assert!(two.checkpoints[..two.checkpoints.len() - 1]
        .iter()
        .all(|c| c["cursor"] == serde_json::json!("2024-01-01T00:00:00.000Z")));
    let err = |name: &str, needle: &str| {
        let o = &outcomes[name];
        match &o.result {
            Some(Err(e)) => assert!(e.contains(needle), "{name}: {e}"),
            other => panic!("{name}: expected an error with {needle:?}, got {other:?}"),
        }
    };
    err("rate_limited.txt", "429");
    err("server_error_html.txt", "503");
    err("auth_refused.txt", "401");
    err("not_json.txt", "not valid JSON");
    err("records_wrong_shape.txt", "record 0");
    // A 204 is read as an empty body, which is not JSON (today's behaviour).
    err("no_content.txt", "not valid JSON");
    // Once the canned responses run out, the 404 ends the read.
    let alt = &outcomes["alternating_links.txt"];
    assert!(alt.requests <= 4, "{alt:?}");
}
