//! `conveyor recon` on a real warehouse: its verdicts agree with an
//! independent tool (reladiff, from PyPI) on the same two tables, and the
//! CLI prints a summary and the top exceptions.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::{free_port, holds_within, sql_on, text, InProcess, BIN};

/// Two tables keyed by `id` with planted differences: ids only on the left
/// (multiples of 97), only on the right (multiples of 101, and 2001..2100),
/// an amount off by one (multiples of 89) and a changed name (multiples of 211).
const TABLES: &str = "
CREATE TABLE l AS SELECT i AS id, i * 1.5 AS amount, 'n' || i AS name FROM range(1, 2001) t(i) WHERE i % 97 <> 0;
CREATE TABLE r AS SELECT i AS id, CASE WHEN i % 89 = 0 THEN i * 1.5 + 1 ELSE i * 1.5 END AS amount,
                         CASE WHEN i % 211 = 0 THEN 'x' ELSE 'n' || i END AS name
                  FROM range(1, 2101) t(i) WHERE i % 101 <> 0;";

/// reladiff's verdict per key: only in l, only in r, in both but different.
const RELADIFF: &str = r#"
import sys, reladiff
db = reladiff.connect("duckdb://" + sys.argv[1])
a = reladiff.connect_to_table(db, "l", "id", extra_columns=("amount", "name"))
b = reladiff.connect_to_table(db, "r", "id", extra_columns=("amount", "name"))
sides = {}
for sign, row in reladiff.diff_tables(a, b):
    sides.setdefault(row[0], set()).add(sign)
for key, s in sorted(sides.items(), key=lambda kv: int(kv[0])):
    print(key, "mismatched" if s == {"-", "+"} else "missing_right" if s == {"-"} else "missing_left")
"#;

fn python() -> String {
    std::env::var("CONVEYOR_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/conveyor-venv/bin/python",
            std::env::var("HOME").unwrap()
        )
    })
}

fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    let text = format!(
        r#"[warehouse]
path = "wh.duckdb"

[server]
listen = "127.0.0.1:{port}"

[[reconcile]]
name = "agree"
left = {{ table = "l" }}
right = {{ table = "r" }}
keys = [{{ left = "id" }}]
compare = [{{ left = "amount" }}, {{ left = "name" }}]
"#,
        port = free_port()
    );
    let p = dir.join("conveyor.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_mismatched_keys_agree_with_reladiff() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh.duckdb");
    duckdb::Connection::open(&wh)
        .unwrap()
        .execute_batch(TABLES)
        .unwrap();
    let config = write_config(dir.path());

    let out = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["recon", "agree"])
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Top exceptions"), "{stdout}");

    let ours: BTreeSet<(String, String)> = sql_on(
        &wh,
        "SELECT coalesce(left_key, right_key), status FROM conveyor.recon_results WHERE status <> 'matched'",
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect();
    let py = python();
    let out = std::process::Command::new(&py)
        .args(["-c", RELADIFF, wh.to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py} ({e}); run scripts/setup-test-tools"));
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "reladiff failed (run scripts/setup-test-tools): {stderr}"
    );
    let theirs: BTreeSet<(String, String)> = stdout
        .lines()
        .map(|l| {
            let (k, s) = l.split_once(' ').unwrap();
            (k.to_string(), s.to_string())
        })
        .collect();
    // Left only: the 19 multiples of 101 up to 2000. Right only: the 20
    // multiples of 97, and 2001..2100 but 2020. The fixture is not trivial.
    let count = |s: &str| theirs.iter().filter(|(_, st)| st == s).count();
    assert_eq!(
        (count("missing_right"), count("missing_left")),
        (19, 119),
        "{theirs:?}"
    );
    assert!(count("mismatched") > 20, "{theirs:?}");
    assert_eq!(ours, theirs);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_reconciliation_is_a_usage_error_and_show_reads_history() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh.duckdb");
    duckdb::Connection::open(&wh)
        .unwrap()
        .execute_batch(TABLES)
        .unwrap();
    let config = write_config(dir.path());
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap()
    };

    let out = run(&["recon", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out)
            .1
            .contains("no reconciliation named `nope`; configured: agree"),
        "{:?}",
        text(&out)
    );

    assert!(run(&["recon"]).status.success());
    assert!(run(&["recon"]).status.success());
    // Two runs on record; --show prints the latest without running again.
    let out = run(&["recon", "--show"]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(
        stdout.contains("│ agree") && stdout.contains("┆ 2 "),
        "{stdout}"
    );
    assert_eq!(
        sql_on(&wh, "SELECT count(*) FROM conveyor.recon_runs")[0][0],
        "2"
    );
}

/// A `[model.views]` mapping and a reconciliation that follows source `src`.
fn model_and_recon(email_column: &str) -> String {
    format!(
        r#"
[model.views]
payroll_people = "SELECT id AS payroll_id, name AS first_name, '' AS last_name, {email_column}, NULL AS phone, NULL AS hire_date, false AS terminated FROM src.items"

[[reconcile]]
name = "items_vs_people"
after = ["src"]
left = {{ table = "src.items" }}
right = {{ table = "model.payroll_people" }}
keys = [{{ left = "email", normalize = "email" }}]
compare = [{{ left = "name", right = "first_name" }}]
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_refreshes_the_model_and_reconciles_and_check_locates_a_bad_mapping() {
    let f = crate::support::Fixture::new(conveyor_mocks::rest::RestMockConfig::default()).await;
    let config = f.write_config("", "");
    let base = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{base}{}", model_and_recon("email"))).unwrap();
    // Before the first sync there is nothing to check the mapping against.
    let out = f.conveyor(&["check"]).await;
    assert!(out.status.success(), "{:?}", text(&out));

    let out = f.conveyor(&["sync"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("reconciled items_vs_people: run 1, 0 exception(s)"),
        "{stdout}"
    );
    assert_eq!(
        f.scalar("SELECT count(*) FROM model.payroll_people"),
        f.scalar("SELECT count(*) FROM src.items")
    );
    assert_eq!(
        f.scalar("SELECT trigger || ' ' || matched FROM conveyor.recon_runs"),
        format!("after:src {}", f.scalar("SELECT count(*) FROM src.items"))
    );

    // The mapping loses its e-mail column: `check` says where, and exits 2.
    let text_cfg = format!("{base}{}", model_and_recon("email AS mail"));
    std::fs::write(&config, &text_cfg).unwrap();
    let line = text_cfg
        .lines()
        .position(|l| l.starts_with("payroll_people ="))
        .unwrap()
        + 1;
    let out = f.conveyor(&["check"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let want = format!(
        "{}:{line}:18: model.views.payroll_people: mapping into model.payroll_people does not fit: missing column `email` (text)",
        config.display()
    );
    assert!(stdout.contains(&want), "want {want}\n got {stdout}");

    // A reconciliation comparing a column its left side lacks: located too.
    let text_cfg =
        format!("{base}{}", model_and_recon("email")).replace("left = \"name\"", "left = \"nme\"");
    std::fs::write(&config, &text_cfg).unwrap();
    let line = text_cfg.lines().position(|l| l == "[[reconcile]]").unwrap() + 1;
    let out = f.conveyor(&["check"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let want = format!(
        "{}:{line}:1: reconcile[0].left: `items_vs_people` does not run: ",
        config.display()
    );
    assert!(
        stdout.contains(&want) && stdout.contains("nme"),
        "want {want}\n got {stdout}"
    );
    assert!(!stdout.contains("reconcile[0].right"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_reconciles_after_its_sources_and_on_schedule() {
    let f = crate::support::Fixture::new(conveyor_mocks::rest::RestMockConfig::default()).await;
    let config = f.write_config("schedule = \"*/2 * * * * *\"", "");
    let base = std::fs::read_to_string(&config).unwrap();
    let extra = r#"
[[reconcile]]
name = "after_src"
after = ["src"]
left = { table = "src.items" }
right = { table = "src.items" }
keys = [{ left = "id" }]

[[reconcile]]
name = "every_second"
schedule = "* * * * * *"
left = { sql = "SELECT 1 AS id" }
right = { sql = "SELECT 2 AS id" }
keys = [{ left = "id" }]
"#;
    std::fs::write(&config, format!("{base}{extra}")).unwrap();
    // In this process: what is tested is the schedule, not the binary's
    // signals (`tests/e2e/daemon.rs` stops the real binary with SIGTERM).
    let daemon = InProcess::start(&config);
    let sql = "SELECT string_agg(DISTINCT reconciliation || '=' || trigger, ' ' ORDER BY reconciliation || '=' || trigger) FROM conveyor.recon_runs WHERE status = 'succeeded'";
    let mut seen = String::new();
    let both = holds_within(Duration::from_secs(60), async || {
        let out = f.conveyor(&["query", sql, "--format", "csv"]).await;
        seen = text(&out).0;
        seen.contains("after_src=after:src") && seen.contains("every_second=schedule")
    })
    .await;
    assert!(both, "{seen}");
    // By hand while the daemon holds the file: the latest runs, with a note.
    let out = f.conveyor(&["recon"]).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("a daemon holds the warehouse") && stdout.contains("every_second"),
        "{stdout}\n{stderr}"
    );

    daemon
        .stop(Duration::from_secs(30))
        .await
        .expect("the daemon stops cleanly");
    assert_eq!(
        f.scalar("SELECT count(*) FROM conveyor.recon_runs WHERE status <> 'succeeded'"),
        "0"
    );
}
