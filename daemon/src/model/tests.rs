//! The model's views over a real warehouse file: mappings checked with
//! their config location, views that always bind, identities joined on
//! normalised e-mail.

use std::path::Path;

use super::*;
use crate::warehouse::Warehouse;

const BASE: &str = r#"[warehouse]
path = "wh.duckdb"

[sources.hr]
type = "rest"
base_url = "https://hr.example.com"
[[sources.hr.streams]]
name = "staff"
path = "/staff"
primary_key = "id"
"#;

fn config(extra: &str) -> Config {
    conveyor_config::parse(&format!("{BASE}{extra}"), Path::new("/etc/conveyor.toml")).unwrap()
}

fn warehouse(setup: &str) -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = Warehouse::open(&dir.path().join("wh.duckdb"))
        .unwrap()
        .connection()
        .unwrap();
    conn.execute_batch(setup).unwrap();
    (dir, conn)
}

#[test]
fn a_wrong_mapping_is_reported_at_its_config_location() {
    let (_dir, conn) = warehouse(
        "CREATE SCHEMA hr; CREATE TABLE hr.staff (id INT, email VARCHAR, hired VARCHAR, gross VARCHAR);",
    );
    let c = config(
        r#"
[model.views]
payroll_people = "SELECT id AS payroll_id, email, hired AS hire_date FROM hr.staff"
payments = "SELECT * FROM hr.nothing_here"
"#,
    );
    let problems = check(&conn, &c);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    let people = problems
        .iter()
        .find(|p| p.view == "payroll_people")
        .unwrap();
    assert_eq!(
        (people.at.line, people.at.col, people.at.key.as_str()),
        (13, 18, "model.views.payroll_people")
    );
    assert!(!people.not_synced);
    for want in [
        "missing column `first_name`",
        "column `hire_date` is VARCHAR, expected a date",
        "missing column `terminated`",
    ] {
        assert!(
            people.message.contains(want),
            "{want} in {}",
            people.message
        );
    }
    // A table that is not there yet: its source has not synced.
    let payments = problems.iter().find(|p| p.view == "payments").unwrap();
    assert!(payments.not_synced, "{payments:?}");
}

#[test]
fn views_always_bind_and_people_joins_identities_on_normalised_email() {
    let (_dir, conn) = warehouse(
        "CREATE SCHEMA hr;
         CREATE TABLE hr.staff (id INT, first VARCHAR, last VARCHAR, email VARCHAR, phone VARCHAR);
         INSERT INTO hr.staff VALUES (1, 'Ana', 'Garcia', ' Ana.Garcia@Mail.Example ', '+1 (555) 010-0001'),
                                     (2, 'Ben', 'Okafor', 'ben@mail.example', NULL);
         CREATE TABLE hr.agents (agent VARCHAR, mail VARCHAR);
         INSERT INTO hr.agents VALUES ('z-9', 'ana.garcia@mail.example'), ('z-7', 'cleo@mail.example'),
                                      -- a tab, a non-breaking space, a zero-width space and capitals
                                      ('z-5', chr(9) || 'Ben@Mail.Example' || chr(160)), ('z-4', chr(8203) || 'DEE@mail.example ');",
    );
    let c = config(
        r#"
[model.views]
payroll_people = """SELECT id AS payroll_id, first AS first_name, last AS last_name, email, phone,
                          NULL AS hire_date, false AS terminated FROM hr.staff"""
contact_center_people = """SELECT agent AS agent_id, mail AS name, mail AS email, NULL AS phone,
                                 'A' AS team, NULL AS supervisor_email FROM hr.agents"""
"#,
    );
    let problems = refresh(&conn, &c).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let q = |sql: &str| -> Vec<String> {
        let mut st = conn.prepare(sql).unwrap();
        st.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        q("SELECT concat_ws(' ', email_key, coalesce(payroll_id, '-'), coalesce(agent_id, '-'), coalesce(phone_key, '-'))
           FROM model.people ORDER BY email_key"),
        [
            "ana.garcia@mail.example 1 z-9 15550100001",
            "ben@mail.example 2 z-5 -",
            "cleo@mail.example - z-7 -",
            "dee@mail.example - z-4 -"
        ]
    );
    // Views nobody maps still exist, typed and empty, so later SQL binds.
    assert_eq!(
        q("SELECT CAST(count(*) AS VARCHAR) FROM model.invoices"),
        ["0"]
    );
    assert_eq!(
        q("SELECT typeof(amount) FROM model.invoices UNION ALL SELECT 'DOUBLE' LIMIT 1"),
        ["DOUBLE"]
    );
    // Refreshing again (after every sync) replaces the views in place.
    assert!(refresh(&conn, &c).unwrap().is_empty());
}
