//! Tidy: the layout rules ARCHITECTURE.md states, checked over the source
//! tree (rust-analyzer's `tidy.rs` style) so that they stay true — every
//! file says what it is for, DuckDB stays in the modules that own the
//! warehouse, the mocks stay out of the product, `unsafe` stays in
//! plugin-api (and the one `malloc_trim` call of `daemon/src/allocator.rs`).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// Every `.rs` file of the workspace's crates, as (path relative to the
/// root, text).
fn sources() -> Vec<(String, String)> {
    let root = root();
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = [
        "config",
        "plugin-api",
        "connectors",
        "daemon",
        "tests",
        "plugins",
    ]
    .iter()
    .map(|d| root.join(d))
    .collect();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') && name != "node_modules" {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                let rel = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    assert!(out.len() > 100, "found only {} files", out.len());
    out
}

/// Each line's code: comments cut and the insides of string literals
/// blanked (a line-level approximation, enough for these tokens).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, String)> + '_ {
    text.lines().enumerate().map(|(i, l)| {
        let mut out = String::new();
        let mut in_str = false;
        let mut prev = ' ';
        let mut chars = l.chars().peekable();
        while let Some(c) = chars.next() {
            if !in_str && c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' {
                in_str = !in_str;
                out.push('"');
            } else if !in_str {
                out.push(c);
            }
            prev = c;
        }
        (i + 1, out)
    })
}

#[test]
fn tidy_every_file_opens_with_a_doc_line() {
    let missing: Vec<String> = sources()
        .into_iter()
        .filter(|(_, text)| {
            !text
                .lines()
                .find(|l| !l.trim().is_empty())
                .is_some_and(|l| l.starts_with("//!"))
        })
        .map(|(p, _)| p)
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` line saying what they are for: {missing:?}"
    );
}

#[test]
fn tidy_transactions_begin_and_end_in_one_place() {
    // ARCHITECTURE.md, Invariants: every transaction goes through
    // `warehouse::transaction` (commit on success, rollback on failure), so
    // no error path can leave one open on a shared connection.
    let mut wrong = Vec::new();
    for (path, text) in sources() {
        if !path.starts_with("daemon/src/") || path == "daemon/src/warehouse/transaction.rs" {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let line = line.replace(' ', "");
            if [
                "execute_batch(\"BEGIN",
                "execute_batch(\"ROLLBACK",
                "execute_batch(\"COMMIT",
            ]
            .iter()
            .any(|call| line.contains(call))
            {
                wrong.push(format!("{path}:{}", n + 1));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "transactions begun or ended outside warehouse/transaction.rs: {wrong:?}"
    );
}

#[test]
fn tidy_duckdb_stays_in_the_modules_that_own_the_warehouse() {
    // ARCHITECTURE.md, Boundaries.
    const ALLOWED: &[&str] = &[
        "daemon/src/warehouse/",
        "daemon/src/model/",
        "daemon/src/recon/",
        "daemon/src/rules/",
        "daemon/src/outbox/",
        "daemon/src/pipeline/",
        "daemon/src/checks/",
        "daemon/src/reports/",
        "daemon/src/query/",
        "daemon/src/server/",
        "daemon/src/pgwire/",
        "daemon/src/ruletest/",
        "daemon/src/publish/",
        "daemon/src/cmd/",
        "tests/e2e/",
    ];
    let mut wrong = Vec::new();
    for (path, text) in sources() {
        if ALLOWED.iter().any(|a| path.starts_with(a)) {
            continue;
        }
        for (n, line) in code_lines(&text) {
            if line.contains("duckdb::") || line.contains("use duckdb") {
                wrong.push(format!("{path}:{n}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "DuckDB used outside the warehouse modules: {wrong:?}"
    );
}

#[test]
fn tidy_the_mocks_stay_out_of_the_product() {
    // The demo's sandbox is the one product use (until it moves out of
    // the binary); tests may use them anywhere.
    const ALLOWED: &[&str] = &[
        "daemon/src/cmd/demo.rs",
        "daemon/src/cmd/demo_alerts.rs",
        "daemon/src/outbox/tests.rs",
        "daemon/src/cluster/tests.rs",
        "tests/",
        "connectors/tests/",
        // Examples are built for benchmarks from dev-dependencies, never
        // shipped (bench/ratelimit's mocks at their documented limits).
        "connectors/examples/",
    ];
    let mut wrong = Vec::new();
    for (path, text) in sources() {
        if ALLOWED.iter().any(|a| path.starts_with(a)) {
            continue;
        }
        for (n, line) in code_lines(&text) {
            if line.contains("conveyor_mocks") {
                wrong.push(format!("{path}:{n}"));
            }
        }
    }
    assert!(wrong.is_empty(), "mock code used by the product: {wrong:?}");
}

#[test]
fn tidy_unsafe_lives_only_in_plugin_api_with_a_safety_comment() {
    let mut outside = Vec::new();
    let mut unexplained = Vec::new();
    for (path, text) in sources() {
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in code_lines(&text) {
            let flagged = line.contains("unsafe {")
                || line.contains("unsafe fn")
                || line.contains("unsafe impl")
                || line.contains("unsafe extern");
            if !flagged {
                continue;
            }
            // plugin-api (the ABI) and the one call into glibc's malloc.
            if !path.starts_with("plugin-api/") && path != "daemon/src/allocator.rs" {
                outside.push(format!("{path}:{n}"));
                continue;
            }
            // A block says why it is sound within the few lines above it;
            // an unsafe fn documents its contract (`# Safety`) above it.
            let above = &lines[n.saturating_sub(12)..n - 1];
            let explained = above
                .iter()
                .any(|l| l.contains("SAFETY:") || l.contains("# Safety"))
                || line.contains("SAFETY:")
                || line.contains("unsafe extern \"C\" fn")
                || line.contains("unsafe impl");
            if !explained && line.contains("unsafe {") {
                unexplained.push(format!("{path}:{n}"));
            }
        }
    }
    assert!(
        outside.is_empty(),
        "`unsafe` outside plugin-api and daemon/src/allocator.rs: {outside:?}"
    );
    assert!(
        unexplained.is_empty(),
        "`unsafe` blocks without a `// SAFETY:` comment: {unexplained:?}"
    );
}
