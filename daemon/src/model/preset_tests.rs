//! The built-in presets against the tables the vendor connectors declare:
//! every preset binds to them (so a renamed connector column breaks here,
//! not in a demo), and the Genesys preset's daily agent view adds up calls,
//! surveys, presence and evaluations the way the rules expect.

use std::path::Path;

use conveyor_connectors::vendors::table::{Col, Table};
use conveyor_connectors::vendors::{
    adp, amazon_connect, genesys, greenhouse, gusto, lever, quickbooks, salesforce, xero,
    zendesk_talk,
};

use super::*;
use crate::warehouse::Warehouse;

/// Each preset, the source it is configured for, and its vendor's tables.
const VENDORS: &[(&str, &str, &[Table])] = &[
    ("greenhouse", "gh", greenhouse::TABLES),
    ("quickbooks", "qb", quickbooks::TABLES),
    ("gusto", "gu", gusto::TABLES),
    ("genesys", "gc", genesys::TABLES),
    ("zendesk_talk", "zd", zendesk_talk::TABLES),
    ("xero", "xe", xero::TABLES),
    ("lever", "lv", lever::TABLES),
    ("adp", "ad", adp::TABLES),
    ("amazon_connect", "ac", amazon_connect::TABLES),
    ("salesforce", "sf", salesforce::TABLES),
];

fn sql_type(col: Col) -> String {
    match col {
        Col::Int => "BIGINT".into(),
        Col::Float => "DOUBLE".into(),
        Col::Bool => "BOOLEAN".into(),
        Col::Str => "VARCHAR".into(),
        Col::Decimal(p, s) => format!("DECIMAL({p},{s})"),
        Col::Instant => "TIMESTAMP".into(),
        Col::Date => "DATE".into(),
        Col::Json => "JSON".into(),
    }
}

/// A warehouse holding every vendor's tables, empty, and a config that
/// maps each through its preset.
fn setup() -> (tempfile::TempDir, Connection, Config) {
    let dir = tempfile::tempdir().unwrap();
    let conn = Warehouse::open(&dir.path().join("wh.duckdb"))
        .unwrap()
        .connection()
        .unwrap();
    let mut text = String::from("[warehouse]\npath = \"wh.duckdb\"\n");
    let mut presets = Vec::new();
    for (preset, source, tables) in VENDORS {
        conn.execute_batch(&format!("CREATE SCHEMA {source}"))
            .unwrap();
        for t in *tables {
            let cols: Vec<String> = t
                .columns
                .iter()
                .map(|(name, col)| format!("{name} {}", sql_type(*col)))
                .collect();
            let ddl = format!("CREATE TABLE {source}.{} ({})", t.name, cols.join(", "));
            conn.execute_batch(&ddl).unwrap();
        }
        text += &format!(
            "[sources.{source}]\ntype = \"rest\"\nbase_url = \"https://{source}.example.com\"\n\
             [[sources.{source}.streams]]\nname = \"x\"\npath = \"/x\"\nprimary_key = \"id\"\n"
        );
        presets.push(format!("{source} = \"{preset}\""));
    }
    text += &format!("[model]\npresets = {{ {} }}\n", presets.join(", "));
    let config = conveyor_config::parse(&text, Path::new("/etc/conveyor.toml")).unwrap();
    (dir, conn, config)
}

/// Each row as its non-NULL values, as text, joined by spaces.
fn rows(conn: &Connection, sql: &str) -> Vec<String> {
    let mut st = conn
        .prepare(&format!("SELECT COLUMNS(*)::VARCHAR FROM ({sql})"))
        .unwrap();
    let mut rows = st.query([]).unwrap();
    let mut out = Vec::new();
    while let Some(r) = rows.next().unwrap() {
        let n = r.as_ref().column_count();
        let values: Vec<String> = (0..n)
            .filter_map(|i| r.get::<_, Option<String>>(i).unwrap())
            .collect();
        out.push(values.join(" "));
    }
    out
}

#[test]
fn every_preset_binds_to_the_tables_its_vendor_connector_writes() {
    let (_dir, conn, config) = setup();
    assert_eq!(
        VENDORS.len(),
        conveyor_config::MODEL_PRESETS.len(),
        "a preset without a vendor here"
    );
    let problems = check(&conn, &config);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn genesys_agent_daily_adds_up_calls_surveys_presence_and_evaluations() {
    let (_dir, conn, config) = setup();
    conn.execute_batch(
        "INSERT INTO gc.users (id, name, email, department, manager_id) VALUES
             ('u-sup', 'Sue Pervisor', 'sue@mail.example', 'Phones A', NULL),
             ('u-1', 'Ana Agent', 'Ana@Mail.Example', 'Phones A', 'u-sup');
         -- c1 was transferred: two sessions of one contact.
         INSERT INTO gc.conversations (conversation_id, session_id, user_id, conversation_start, handle_ms) VALUES
             ('c1', 's1', 'u-1', TIMESTAMP '2026-10-05 09:00', 300000),
             ('c1', 's2', 'u-1', TIMESTAMP '2026-10-05 09:00', 60000),
             ('c2', 's3', 'u-1', TIMESTAMP '2026-10-05 11:00', 240000);
         -- Five-point CSAT: 20 per point; an unfinished survey does not count.
         INSERT INTO gc.surveys (survey_id, conversation_id, user_id, status, completed_at, total_score) VALUES
             ('v1', 'c1', 'u-1', 'Finished', TIMESTAMP '2026-10-05 09:10', 20),
             ('v2', 'c2', 'u-1', 'Finished', TIMESTAMP '2026-10-05 11:10', 100),
             ('v3', 'c2', 'u-1', 'Partial', TIMESTAMP '2026-10-05 11:11', 20);
         INSERT INTO gc.user_presence VALUES
             ('u-1', DATE '2026-10-05', 'ON_QUEUE', 21600000), ('u-1', DATE '2026-10-05', 'BREAK', 3600000),
             ('u-1', DATE '2026-10-05', 'OFFLINE', 61200000);
         INSERT INTO gc.evaluations (id, agent_id, total_score, conversation_date, submitted_date) VALUES
             ('e1', 'u-1', 66, TIMESTAMP '2026-10-06 15:00', TIMESTAMP '2026-10-07 08:00');",
    )
    .unwrap();
    let problems = refresh(&conn, &config).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(
        rows(
            &conn,
            "SELECT day, contacts, handle_secs, csat, quality_score, logged_hours FROM model.agent_daily ORDER BY day"
        ),
        [
            "2026-10-05 2.0 600.0 3.0 7.0",
            "2026-10-06 0.0 0.0 66.0 0.0"
        ]
    );
    assert_eq!(
        rows(
            &conn,
            "SELECT email_key, team, supervisor_email FROM model.contact_center_people ORDER BY 1"
        ),
        [
            "ana@mail.example Phones A sue@mail.example",
            "sue@mail.example Phones A"
        ]
    );
    assert_eq!(
        rows(
            &conn,
            "SELECT evaluation_id, evaluated_at, score FROM model.evaluations"
        ),
        ["e1 2026-10-07 08:00:00 66.0"]
    );
}

#[test]
fn genesys_agent_daily_degrades_per_column_without_presence() {
    let (_dir, conn, config) = setup();
    conn.execute_batch(
        "DROP TABLE gc.user_presence;
         INSERT INTO gc.conversations (conversation_id, session_id, user_id, conversation_start, handle_ms) VALUES
             ('c1', 's1', 'u-1', TIMESTAMP '2026-10-05 09:00', 300000);
         INSERT INTO gc.surveys (survey_id, conversation_id, user_id, status, completed_at, total_score) VALUES
             ('v1', 'c1', 'u-1', 'Finished', TIMESTAMP '2026-10-05 09:10', 80);",
    )
    .unwrap();
    let problems = refresh(&conn, &config).unwrap();
    let warned: Vec<&MappingProblem> = problems.iter().filter(|p| p.degraded).collect();
    assert_eq!(warned.len(), 1, "{problems:#?}");
    assert!(
        warned[0].view == "agent_daily" && warned[0].message.contains("gc.user_presence"),
        "{warned:?}"
    );
    // Calls and CSAT stay; logged hours are unknown, not zero.
    assert_eq!(
        rows(
            &conn,
            "SELECT day, contacts, csat, coalesce(CAST(logged_hours AS VARCHAR), 'NULL') FROM model.agent_daily"
        ),
        ["2026-10-05 1.0 4.0 NULL"]
    );
}

#[test]
fn greenhouse_custom_fields_are_preset_options_and_placements_need_a_fee() {
    let (_dir, conn, mut config) = setup();
    let gh = config
        .model
        .presets
        .iter_mut()
        .find(|p| p.source == "gh")
        .unwrap();
    gh.options.insert("client_field".into(), "client".into());
    gh.options
        .insert("placement_fee_field".into(), "fee_usd".into());
    conn.execute_batch(
        r#"INSERT INTO gh.candidates (id, first_name, last_name, primary_email) VALUES
               (1, 'Ana', 'A', 'ana@x.example'), (2, 'Ben', 'B', 'ben@x.example'), (3, 'Cleo', 'C', 'cleo@x.example');
           INSERT INTO gh.applications (id, candidate_id, status, custom_fields) VALUES
               (11, 1, 'hired', '{"client": {"name": "Client", "type": "single_select", "value": {"id": 7, "name": "Globex"}}}'),
               (12, 2, 'hired', '{"client": {"name": "Client", "type": "short_text", "value": "Acme"}}'),
               (13, 3, 'hired', '{}');
           INSERT INTO gh.offers (id, application_id, status, starts_on, custom_fields) VALUES
               (21, 11, 'Accepted', DATE '2026-03-09', '{"fee_usd": {"name": "Fee", "type": "currency", "value": {"amount": "15000.00", "unit": "USD"}}}'),
               (22, 12, 'Accepted', DATE '2026-03-09', '{"fee_usd": {"name": "Fee", "type": "number", "value": 9000}}'),
               (23, 13, 'Accepted', DATE '2026-03-16', '{}');"#,
    )
    .unwrap();
    let problems = refresh(&conn, &config).unwrap();
    assert!(problems.iter().all(|p| p.degraded), "{problems:#?}");
    assert_eq!(
        rows(
            &conn,
            "SELECT placement_id, client, fee FROM model.placements ORDER BY 1"
        ),
        ["11 Globex 15000.0", "12 Acme 9000.0"],
        "the internal hire (no fee) is not a placement"
    );
    assert_eq!(
        rows(
            &conn,
            "SELECT hire_id, start_date FROM model.hires ORDER BY 1"
        ),
        ["11 2026-03-09", "12 2026-03-09", "13 2026-03-16"]
    );
}

#[test]
fn lever_people_are_contacts_and_hires_are_signed_offers() {
    let (_dir, conn, config) = setup();
    conn.execute_batch(
        r#"INSERT INTO lv.opportunities (id, name, contact, primary_email, updated_at) VALUES
               ('o1', 'Ana Maria Lopez', 'c1', 'ana@x.example', TIMESTAMP '2026-03-01 09:00'),
               ('o2', 'Ana Lopez', 'c1', 'ana@x.example', TIMESTAMP '2026-03-02 09:00'),
               ('o3', 'Ben', 'c2', 'ben@x.example', TIMESTAMP '2026-03-01 09:00'),
               ('o4', 'Cleo C', 'c3', 'cleo@x.example', TIMESTAMP '2026-03-01 09:00');
           INSERT INTO lv.postings (id, department) VALUES ('p1', 'Globex');
           INSERT INTO lv.offers (id, opportunity_id, posting, status, created_at, start_date, fields) VALUES
               ('f1', 'o2', 'p1', 'signed', TIMESTAMP '2026-03-02 08:00', DATE '2026-03-09', '[{"identifier": "placement_fee", "value": 15000}]'),
               ('f2', 'o3', 'p1', 'signed', TIMESTAMP '2026-03-01 08:00', DATE '2026-03-16', '[{"identifier": "client_company", "value": "Acme"}, {"identifier": "placement_fee", "value": "9000"}]'),
               ('f3', 'o1', 'p1', 'draft', TIMESTAMP '2026-03-01 08:00', NULL, '[]'),
               ('f4', 'o4', 'p1', 'signed', TIMESTAMP '2026-03-01 08:00', NULL, '[]');
           INSERT INTO lv.deleted_opportunities (id, deleted_at) VALUES ('o4', TIMESTAMP '2026-03-03 00:00');"#,
    )
    .unwrap();
    let problems = refresh(&conn, &config).unwrap();
    assert!(problems.iter().all(|p| p.degraded), "{problems:#?}");
    // One person per contact, named by their latest opportunity; the
    // deleted opportunity's contact is gone.
    assert_eq!(
        rows(
            &conn,
            "SELECT ats_id, first_name, last_name, email FROM model.ats_people ORDER BY 1"
        ),
        ["c1 Ana Lopez ana@x.example", "c2 Ben ben@x.example"]
    );
    // The client: the offer field, else the posting's department.
    assert_eq!(
        rows(
            &conn,
            "SELECT hire_id, ats_id, client, start_date FROM model.hires ORDER BY 1"
        ),
        ["o2 c1 Globex 2026-03-09", "o3 c2 Acme 2026-03-16"]
    );
    assert_eq!(
        rows(
            &conn,
            "SELECT placement_id, fee FROM model.placements ORDER BY 1"
        ),
        ["o2 15000.0", "o3 9000.0"]
    );
}

#[test]
fn amazon_connect_handle_time_is_contacts_times_the_average_and_contacts_read_their_queue() {
    let (_dir, conn, config) = setup();
    conn.execute_batch(
        "INSERT INTO ac.agent_metrics (agent_id, interval_start, contacts_handled, avg_handle_time_secs) VALUES
             ('a-1', TIMESTAMP '2026-10-05 00:00', 4, 150.5),
             -- A day divided by zero: no contacts, no average.
             ('a-1', TIMESTAMP '2026-10-06 00:00', NULL, NULL);
         INSERT INTO ac.contacts (contact_id, channel, initiation_method, initiation_at, agent_id,
                                  connected_to_agent_at, queue_id, enqueue_at, disconnect_at) VALUES
             ('k1', 'VOICE', 'INBOUND', TIMESTAMP '2026-10-05 09:00', 'a-1',
              TIMESTAMP '2026-10-05 09:00:40', 'q-1', TIMESTAMP '2026-10-05 09:00:10', TIMESTAMP '2026-10-05 09:05'),
             ('k2', 'VOICE', 'INBOUND', TIMESTAMP '2026-10-05 10:00', NULL,
              NULL, 'q-1', TIMESTAMP '2026-10-05 10:00:05', TIMESTAMP '2026-10-05 10:01:05');",
    )
    .unwrap();
    let problems = refresh(&conn, &config).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(
        rows(
            &conn,
            "SELECT day, contacts, handle_secs, logged_hours FROM model.agent_daily ORDER BY day"
        ),
        ["2026-10-05 4.0 602.0 0.0", "2026-10-06 0.0 0.0 0.0"]
    );
    assert_eq!(
        rows(
            &conn,
            "SELECT contact_id, direction, channel, queue, answered, abandoned, wait_secs FROM model.contacts ORDER BY 1"
        ),
        [
            "k1 inbound voice q-1 true false 30.0",
            "k2 inbound voice q-1 false true 60.0"
        ]
    );
}

#[test]
fn adp_people_are_the_workers_still_listed_terminated_by_status_or_assignment() {
    let (_dir, conn, config) = setup();
    conn.execute_batch(
        "INSERT INTO ad.workers (associate_oid, given_name, family_name, original_hire_date, hire_date,
                                 termination_date, status, assignment_status, deleted, other) VALUES
             ('G1', 'Ana', 'Ng', DATE '2019-03-01', DATE '2024-01-08', NULL, 'Active', 'A', NULL,
              '{\"businessCommunication\": {\"emails\": [{\"emailUri\": \"ana.ng@corp.example\"}]}}'),
             ('G2', 'Bo', 'Li', NULL, DATE '2022-05-02', NULL, 'Active', 'T', false, NULL),
             ('G3', NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, NULL);",
    )
    .unwrap();
    let problems = refresh(&conn, &config).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(
        rows(
            &conn,
            "SELECT payroll_id, first_name, hire_date, terminated, email FROM model.payroll_people ORDER BY 1"
        ),
        [
            "G1 Ana 2019-03-01 false ana.ng@corp.example",
            "G2 Bo 2022-05-02 true"
        ]
    );
}

#[test]
fn salesforce_placements_are_won_opportunities_with_an_amount_and_their_account() {
    let (_dir, conn, config) = setup();
    conn.execute_batch(
        "INSERT INTO sf.accounts (id, name) VALUES ('001A', 'Acme Logistics');
         INSERT INTO sf.opportunities (id, account_id, amount, close_date, is_won, is_deleted) VALUES
             ('006W', '001A', 12500.00, DATE '2026-10-01', true, false),
             ('006L', '001A', 9000.00, DATE '2026-10-02', false, false),
             ('006D', '001A', 7000.00, DATE '2026-10-03', true, true),
             ('006N', '001A', NULL, DATE '2026-10-04', true, false);",
    )
    .unwrap();
    let problems = refresh(&conn, &config).unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(
        rows(
            &conn,
            "SELECT placement_id, client, start_date, fee FROM model.placements"
        ),
        ["006W Acme Logistics 2026-10-01 12500.0"]
    );
}
