//! Crafted fixtures for the reconciliation engine: every status with exact
//! counts, tolerance edges, duplicates, key normalisation, 1:N allocation,
//! date windows and history.

use conveyor_config::{
    Cardinality, ComparePair, KeyPair, Located, Normalize, ReconcileConfig, Relation, Tolerance,
};

use super::plan::key;
use super::*;
use crate::warehouse::Warehouse;

struct Db {
    _dir: tempfile::TempDir,
    conn: Connection,
}

fn db(setup: &str) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let wh = Warehouse::open(&dir.path().join("wh.duckdb")).unwrap();
    let conn = wh.connection().unwrap();
    conn.execute_batch(setup).unwrap();
    Db { _dir: dir, conn }
}

fn recon(keys: Vec<KeyPair>, compare: Vec<ComparePair>) -> ReconcileConfig {
    ReconcileConfig {
        name: "t".into(),
        left: Relation::Table("l".into()),
        right: Relation::Table("r".into()),
        keys,
        compare,
        cardinality: Cardinality::OneToOne,
        pairing: conveyor_config::Pairing::All,
        left_name: "left".into(),
        right_name: "right".into(),
        after: vec![],
        schedule: None,
        at: Located {
            file: "c.toml".into(),
            line: 1,
            col: 1,
            key: "reconcile[0]".into(),
        },
    }
}

fn cmp(col: &str, tolerance: Tolerance) -> ComparePair {
    ComparePair {
        name: col.into(),
        left: col.into(),
        right: col.into(),
        tolerance,
    }
}

fn statuses(conn: &Connection, run_id: i64) -> Vec<(String, String, String)> {
    let mut st = conn
        .prepare(
            "SELECT coalesce(left_key, '-'), coalesce(right_key, '-'), status FROM conveyor.recon_results
             WHERE run_id = ? ORDER BY 1, 2",
        )
        .unwrap();
    st.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn status_of(rows: &[(String, String, String)], left_key: &str) -> String {
    let hits: Vec<_> = rows.iter().filter(|(l, _, _)| l == left_key).collect();
    assert_eq!(hits.len(), 1, "{left_key} in {rows:?}");
    hits[0].2.clone()
}

#[test]
fn every_status_with_exact_counts() {
    let d = db("CREATE TABLE l (id INT, amount DOUBLE);
         INSERT INTO l VALUES (1, 100), (2, 100), (3, 100), (4, 100), (5, 100), (6, 100), (7, 100), (7, 100), (8, NULL);
         CREATE TABLE r (id INT, amount DOUBLE);
         INSERT INTO r VALUES (1, 100), (2, 100.5), (3, 150), (9, 10), (10, 10), (7, 100), (8, NULL), (11, 1), (11, 1);");
    let cfg = recon(
        vec![key("id", "id", &[])],
        vec![cmp("amount", Tolerance::Absolute(1.0))],
    );
    let s = run(&d.conn, &cfg, "manual").unwrap();
    // matched: 1 and 8 (both NULL); within: 2; mismatched: 3; missing_right: 4, 5, 6;
    // missing_left: 9, 10; duplicate: the two (7, 7) pairs and the two unpaired 11s.
    assert_eq!(s.counts, [2, 1, 2, 3, 1, 4], "{s:?}");
    assert_eq!((s.left_rows, s.right_rows), (9, 9));
    let rows = statuses(&d.conn, s.run_id);
    assert_eq!(status_of(&rows, "2"), "matched_within_tolerance");
    assert_eq!(status_of(&rows, "4"), "missing_right");
    let diff: String = d
        .conn
        .query_row(
            "SELECT CAST(differences AS VARCHAR) FROM conveyor.recon_results WHERE run_id = ? AND left_key = '3'",
            [s.run_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        diff,
        r#"[{"column":"amount","left":"100.0","right":"150.0","delta":50.0,"status":"mismatched"}]"#
    );
}

#[test]
fn tolerance_edges_at_the_limit_and_just_past_it() {
    let d = db("CREATE TABLE l (id VARCHAR, amount DOUBLE, pct DOUBLE, day DATE);
         INSERT INTO l VALUES ('abs_at', 10.0, 0, DATE '2026-01-01'), ('abs_past', 10.0, 0, DATE '2026-01-01'),
                              ('pct_at', 0, 200, DATE '2026-01-01'), ('pct_past', 0, 200, DATE '2026-01-01'),
                              ('day_at', 0, 0, DATE '2026-01-10'), ('day_past', 0, 0, DATE '2026-01-10');
         CREATE TABLE r (id VARCHAR, amount DOUBLE, pct DOUBLE, day TIMESTAMP);
         INSERT INTO r VALUES ('abs_at', 10.3, 0, TIMESTAMP '2026-01-01 23:00'), ('abs_past', 10.31, 0, TIMESTAMP '2026-01-01 08:00'),
                              ('pct_at', 0, 205, TIMESTAMP '2026-01-01 00:00'), ('pct_past', 0, 205.01, TIMESTAMP '2026-01-01 00:00'),
                              ('day_at', 0, 0, TIMESTAMP '2026-01-07 23:59'), ('day_past', 0, 0, TIMESTAMP '2026-01-06 00:00');");
    let cfg = recon(
        vec![key("id", "id", &[])],
        vec![
            cmp("amount", Tolerance::Absolute(0.3)),
            cmp("pct", Tolerance::Percent(2.5)),
            cmp("day", Tolerance::Days(3)),
        ],
    );
    let s = run(&d.conn, &cfg, "manual").unwrap();
    let rows = statuses(&d.conn, s.run_id);
    for (k, want) in [
        ("abs_at", "matched_within_tolerance"),
        ("abs_past", "mismatched"),
        ("pct_at", "matched_within_tolerance"),
        ("pct_past", "mismatched"),
        ("day_at", "matched_within_tolerance"),
        ("day_past", "mismatched"),
    ] {
        assert_eq!(status_of(&rows, k), want, "{k}");
    }
}

#[test]
fn duplicates_on_either_side() {
    let d = db(
        "CREATE TABLE l (id INT); INSERT INTO l VALUES (1), (1), (2), (3), (4), (4);
         CREATE TABLE r (id INT); INSERT INTO r VALUES (1), (2), (2), (2), (3), (5), (5);",
    );
    let s = run(
        &d.conn,
        &recon(vec![key("id", "id", &[])], vec![]),
        "manual",
    )
    .unwrap();
    // id 1: two left × one right = 2 pairs; id 2: one left × three right = 3 pairs;
    // id 4: two unpaired left rows; id 5: two unpaired right rows; id 3 matches.
    assert_eq!(s.count("duplicate"), 2 + 3 + 2 + 2);
    assert_eq!(s.count("matched"), 1);
    assert_eq!(s.exceptions(), 9);
}

#[test]
fn email_keys_are_normalised() {
    let d = db("CREATE TABLE l (email VARCHAR, phone VARCHAR);
         INSERT INTO l VALUES ('  Ana.Garcia@Mail.Example ', '+1 (555) 010-0001'), ('ben@x.example', '555 0002'), ('   ', NULL);
         CREATE TABLE r (work_email VARCHAR, tel BIGINT);
         INSERT INTO r VALUES ('ana.garcia@mail.example', 15550100001), ('BEN@X.EXAMPLE', 5550003);");
    let by_email = recon(
        vec![key(
            "email",
            "work_email",
            &[Normalize::Trim, Normalize::Lower],
        )],
        vec![],
    );
    let s = run(&d.conn, &by_email, "manual").unwrap();
    // The blank address normalises to no key: it pairs with nothing.
    assert_eq!(
        (s.count("matched"), s.count("missing_right")),
        (2, 1),
        "{s:?}"
    );
    let by_phone = recon(vec![key("phone", "tel", &[Normalize::Digits])], vec![]);
    let s = run(&d.conn, &by_phone, "manual").unwrap();
    assert_eq!(
        (
            s.count("matched"),
            s.count("missing_right"),
            s.count("missing_left")
        ),
        (1, 2, 1),
        "{s:?}"
    );
    // Without normalisation, nothing pairs.
    let raw = recon(vec![key("email", "work_email", &[])], vec![]);
    assert_eq!(run(&d.conn, &raw, "manual").unwrap().count("matched"), 0);
}

#[test]
fn one_to_many_allocation_within_and_beyond_tolerance() {
    let d = db("CREATE TABLE inv (id VARCHAR, total DOUBLE);
         INSERT INTO inv VALUES ('exact', 100), ('close', 100), ('short', 100), ('unpaid', 50);
         CREATE TABLE pay (invoice_id VARCHAR, amount DOUBLE);
         INSERT INTO pay VALUES ('exact', 60), ('exact', 40), ('close', 30), ('close', 30), ('close', 39.5),
                                ('short', 50), ('short', 45), ('stray', 5), ('stray', 6);");
    let mut cfg = recon(
        vec![key("id", "invoice_id", &[])],
        vec![ComparePair {
            name: "amount".into(),
            left: "total".into(),
            right: "amount".into(),
            tolerance: Tolerance::Absolute(1.0),
        }],
    );
    cfg.left = Relation::Table("inv".into());
    cfg.right = Relation::Table("pay".into());
    cfg.cardinality = Cardinality::OneToMany;
    let s = run(&d.conn, &cfg, "manual").unwrap();
    let rows = statuses(&d.conn, s.run_id);
    assert_eq!(status_of(&rows, "exact"), "matched");
    assert_eq!(status_of(&rows, "close"), "matched_within_tolerance");
    assert_eq!(status_of(&rows, "short"), "mismatched");
    assert_eq!(status_of(&rows, "unpaid"), "missing_right");
    // Two payments of an unknown invoice: each is missing its invoice, and
    // sharing a key is normal on the many side, so neither is a duplicate.
    assert_eq!(s.counts, [1, 1, 2, 1, 1, 0], "{s:?}");
}

#[test]
fn a_date_window_key_pairs_rows_close_in_time() {
    let d = db("CREATE TABLE l (client VARCHAR, start DATE);
         INSERT INTO l VALUES ('Acme', DATE '2026-01-05'), ('Acme', DATE '2026-03-02'), ('Globex', DATE '2026-01-05'),
                              ('Initech', DATE '2026-02-02'), ('Initech', DATE '2026-02-03');
         CREATE TABLE r (customer VARCHAR, txn DATE);
         INSERT INTO r VALUES ('ACME ', DATE '2026-01-09'), ('Acme', DATE '2026-03-20'), ('Globex', DATE '2026-01-05'),
                              ('Initech', DATE '2026-02-04');");
    let mut cfg = recon(
        vec![
            key("client", "customer", &[Normalize::Trim, Normalize::Lower]),
            KeyPair {
                left: "start".into(),
                right: "txn".into(),
                normalize: vec![],
                window_days: Some(7),
                optional: false,
            },
        ],
        vec![],
    );
    cfg.compare = vec![];
    let s = run(&d.conn, &cfg, "manual").unwrap();
    // Acme Jan pairs (4 days); Acme Mar does not (18 days): one missing each
    // side; Globex pairs; both Initech hires fall in the invoice's window.
    assert_eq!(s.count("matched"), 2, "{s:?}");
    assert_eq!(
        (
            s.count("missing_right"),
            s.count("missing_left"),
            s.count("duplicate")
        ),
        (1, 1, 2),
        "{s:?}"
    );
}

#[test]
fn history_is_kept_across_runs() {
    let d = db("CREATE TABLE l (id INT); INSERT INTO l VALUES (1), (2);
         CREATE TABLE r (id INT); INSERT INTO r VALUES (1);");
    let cfg = recon(vec![key("id", "id", &[])], vec![]);
    let first = run(&d.conn, &cfg, "manual").unwrap();
    d.conn
        .execute_batch("INSERT INTO r VALUES (2), (3)")
        .unwrap();
    let second = run(&d.conn, &cfg, "manual").unwrap();
    assert!(second.run_id > first.run_id);
    assert_eq!(first.counts, [1, 0, 0, 1, 0, 0]);
    assert_eq!(second.counts, [2, 0, 1, 0, 0, 0]);
    let (runs, results): (i64, i64) = d
        .conn
        .query_row("SELECT (SELECT count(*) FROM conveyor.recon_runs), (SELECT count(*) FROM conveyor.recon_results)", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((runs, results), (2, 2 + 3));
}

#[test]
fn a_broken_relation_is_a_failed_run_on_record() {
    let d = db("CREATE TABLE l (id INT); CREATE TABLE r (id INT);");
    let mut cfg = recon(
        vec![key("id", "id", &[])],
        vec![cmp("no_such_column", Tolerance::Exact)],
    );
    let err = run(&d.conn, &cfg, "manual").unwrap_err().to_string();
    assert!(err.contains("no_such_column"), "{err}");
    cfg.compare.clear();
    assert!(
        run(&d.conn, &cfg, "manual").is_ok(),
        "the connection is usable after a failure"
    );
    let failed: (String, String) = d
        .conn
        .query_row(
            "SELECT status, error FROM conveyor.recon_runs ORDER BY run_id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(failed.0, "failed");
    assert!(failed.1.contains("no_such_column"));
    let leaked: i64 = d
        .conn
        .query_row(
            "SELECT count(*) FROM conveyor.recon_results WHERE run_id = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leaked, 0, "a failed run leaves no partial results");
}

#[test]
fn recon_relations_see_the_runs_clock_and_unicode_blanks_are_trimmed() {
    let d = db("CREATE TABLE inv (id INT, due DATE);
                INSERT INTO inv VALUES (1, DATE '2026-10-01'), (2, DATE '2026-11-15');
                CREATE TABLE l (k VARCHAR); INSERT INTO l VALUES (chr(9) || 'a' || chr(160)), ('b');
                CREATE TABLE r (k VARCHAR); INSERT INTO r VALUES ('a'), ('b' || chr(8203));");
    let mut r = recon(vec![key("id", "id", &[])], vec![]);
    r.left = Relation::Sql(
        "SELECT * FROM inv WHERE due < CAST(getvariable('conveyor_now') AS DATE)".into(),
    );
    r.right = Relation::Table("inv".into());
    let as_of = |d: &str| {
        chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .unwrap()
            .and_hms_opt(0, 0, 0)
    };
    // As of November 2nd only invoice 1 is past due; as of December 1st both.
    let early = run_at(&d.conn, &r, "manual", as_of("2026-11-02")).unwrap();
    assert_eq!((early.left_rows, early.count("missing_left")), (1, 1));
    let late = run_at(&d.conn, &r, "manual", as_of("2026-12-01")).unwrap();
    assert_eq!((late.left_rows, late.count("matched")), (2, 2));

    let trimmed = recon(vec![key("k", "k", &[Normalize::Trim])], vec![]);
    let s = run(&d.conn, &trimmed, "manual").unwrap();
    assert_eq!(s.count("matched"), 2, "{:?}", statuses(&d.conn, s.run_id));
}

#[test]
fn recon_best_pairing_takes_each_row_once_and_prefers_a_shared_id() {
    // A cohort of three hires for one client starting the same Monday, two
    // invoiced; a fourth hire whose invoice names the client differently
    // but carries the placement's id.
    let d = db("CREATE TABLE l (pid VARCHAR, client VARCHAR, start DATE, fee DOUBLE);
                INSERT INTO l VALUES ('p1', 'Acme', DATE '2026-03-09', 10000), ('p2', 'Acme', DATE '2026-03-09', 12000),
                                     ('p3', 'Acme', DATE '2026-03-09', 15000), ('p9', 'Initech', DATE '2026-03-09', 9000);
                CREATE TABLE r (pid VARCHAR, customer VARCHAR, txn DATE, amount DOUBLE);
                INSERT INTO r VALUES (NULL, 'Acme', DATE '2026-03-10', 12000), (NULL, 'Acme', DATE '2026-03-11', 10000),
                                     ('p9', 'Initech Corp', DATE '2026-03-20', 9000);");
    let mut cfg = recon(
        vec![
            KeyPair {
                optional: true,
                ..key("pid", "pid", &[])
            },
            key("client", "customer", &[Normalize::Trim, Normalize::Lower]),
            KeyPair {
                window_days: Some(7),
                ..key("start", "txn", &[])
            },
        ],
        vec![ComparePair {
            name: "fee".into(),
            left: "fee".into(),
            right: "amount".into(),
            tolerance: Tolerance::Absolute(0.01),
        }],
    );
    cfg.pairing = conveyor_config::Pairing::Best;
    let s = run(&d.conn, &cfg, "manual").unwrap();
    assert_eq!(
        (
            s.count("matched"),
            s.count("missing_right"),
            s.count("duplicate"),
            s.count("mismatched")
        ),
        (3, 1, 0, 0),
        "{:?}",
        statuses(&d.conn, s.run_id)
    );
    let rows = statuses(&d.conn, s.run_id);
    assert!(
        rows.contains(&(
            "p3|acme|2026-03-09".into(),
            "-".into(),
            "missing_right".into()
        )),
        "{rows:?}"
    );

    // The same data paired every-with-every reports the cohort as duplicates.
    let mut all = cfg.clone();
    all.pairing = conveyor_config::Pairing::All;
    all.keys[0].optional = false;
    all.keys.remove(0);
    let s = run(&d.conn, &all, "manual").unwrap();
    assert!(
        s.count("duplicate") >= 5,
        "{:?}",
        statuses(&d.conn, s.run_id)
    );
}

#[test]
fn recon_a_relation_is_one_select() {
    let d = db("CREATE TABLE l (id INT); CREATE TABLE r (id INT); CREATE TABLE victim (x INT);");
    let mut cfg = recon(vec![key("id", "id", &[])], vec![]);
    cfg.left = Relation::Sql(
        "SELECT * FROM l) AS src; DROP TABLE victim; SELECT * FROM (SELECT 1 AS id".into(),
    );
    let problems = check_relations(&d.conn, &cfg);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let e = run(&d.conn, &cfg, "manual").unwrap_err().to_string();
    assert!(e.contains("left"), "{e}");
    let n: i64 = d
        .conn
        .query_row("SELECT count(*) FROM victim", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0, "victim still exists and is empty");
    // Table names are quoted identifiers.
    assert_eq!(
        Relation::Table("model.invoices".into()).from_item(),
        "\"model\".\"invoices\""
    );
}
