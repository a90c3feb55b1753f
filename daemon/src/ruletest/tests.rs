//! Unit tests of the rule-test runner's parts: the file's validation and
//! its locations, TOML → SQL typing and quoting, loading a config without
//! its secrets, and the line diff.

use std::path::Path;

use chrono::NaiveDate;

use super::cells::Cell;
use super::compare;
use super::diff::{self, Line};
use super::spec::{self, FixtureData};
use super::*;

fn problems(text: &str) -> Vec<String> {
    spec::parse(text, Path::new("/t/test.toml"))
        .unwrap_err()
        .iter()
        .map(|d| d.to_string())
        .collect()
}

#[test]
fn ruletest_spec_problems_are_located_and_all_reported() {
    let got = problems(
        r#"config = "c.toml"

[[fixtures]]
table = "model.x"
rows = [{ a = 1 }]
sql = "SELECT 1"

[[fixtures]]
table = "not a table"
rows = [{ a = 1 }, { a = "one" }]

[[evaluations]]
at = 2026-01-02T00:00:00Z
expect_alerts = [{ entity = "e", state = "burning", level = "meh" }]

[[evaluations]]
at = 2026-01-01T00:00:00Z
"#,
    );
    let want = [
        "/t/test.toml:3:1: fixtures[0]: needs exactly one of `csv`, `rows` or `sql`",
        "/t/test.toml:9:9: fixtures[1].table: `not a table` is not a table name",
        "/t/test.toml:10:20: fixtures[1].rows[1]: column `a` mixes BIGINT and VARCHAR values",
        "/t/test.toml:14:42: evaluations[0].expect_alerts[0].state: unknown state `burning`",
        "/t/test.toml:14:61: evaluations[0].expect_alerts[0].level: unknown level `meh`",
        "/t/test.toml:17:6: evaluations[1].at: `at` must be later than the previous evaluation's",
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (g, w) in got.iter().zip(want) {
        assert!(g.starts_with(w), "got {g:?}, want prefix {w:?}");
    }
}

#[test]
fn ruletest_spec_unknown_keys_and_missing_csv_are_located() {
    let got = problems(
        "config = \"c.toml\"\n\n[[evaluations]]\nat = 2026-01-01T00:00:00Z\nexpect_alert = []\n",
    );
    assert!(
        got[0].starts_with("/t/test.toml:5:1: unknown field `expect_alert`"),
        "{got:?}"
    );
    let got = problems(
        "config = \"c.toml\"\n[[fixtures]]\ntable = \"t\"\ncsv = \"nope.csv\"\n[[evaluations]]\nat = 2026-01-01\n",
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0]
            .starts_with("/t/test.toml:4:7: fixtures[0].csv: CSV file /t/nope.csv does not exist"),
        "{got:?}"
    );
}

#[test]
fn ruletest_spec_times_become_utc_and_values_get_their_sql_kind() {
    let spec = spec::parse(
        r#"config = "c.toml"
[[fixtures]]
table = "t"
rows = [{ d = 2026-03-01, ts = 2026-03-01T10:00:00+02:00, local = 2026-03-01T10:00:00, tm = 07:30:00, n = 2, f = 2.5, b = true, s = "x" }]
[[evaluations]]
at = 2026-03-02T08:00:00-01:00
"#,
        Path::new("/t/test.toml"),
    )
    .unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    assert_eq!(
        spec.evaluations[0].at,
        NaiveDate::from_ymd_opt(2026, 3, 2)
            .unwrap()
            .and_hms_opt(9, 0, 0)
            .unwrap()
    );
    assert_eq!(spec.config, Path::new("/t/c.toml"));
    let FixtureData::Rows(rows) = &spec.fixtures[0].data else {
        panic!("rows expected")
    };
    let cell = |name: &str| {
        rows[0]
            .cells
            .iter()
            .find(|(c, _)| c == name)
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(cell("d"), Cell::Date(day));
    assert_eq!(
        cell("ts"),
        Cell::Timestamp(day.and_hms_opt(8, 0, 0).unwrap())
    );
    assert_eq!(
        cell("local"),
        Cell::Timestamp(day.and_hms_opt(10, 0, 0).unwrap())
    );
    assert_eq!(cell("tm").sql_type(), "TIME");
    assert_eq!(
        (cell("n"), cell("f"), cell("b")),
        (Cell::Int(2), Cell::Float(2.5), Cell::Bool(true))
    );
}

#[test]
fn ruletest_inline_rows_are_typed_quoted_and_missing_keys_are_null() {
    let spec = spec::parse(
        r#"config = "c.toml"
[[fixtures]]
table = "model.people"
columns = { note = "VARCHAR" }
rows = [
  { name = "O'Brien; DROP TABLE x --", score = 3, day = 2026-01-05 },
  { name = "Ann", score = 4.5, day = 2026-01-06, note = "n" },
]
[[evaluations]]
at = 2026-01-07T00:00:00Z
"#,
        Path::new("/t/test.toml"),
    )
    .unwrap();
    let (_wh, conn) = memory_warehouse().unwrap();
    fixtures::load(&conn, &spec.fixtures).unwrap();
    let mut st = conn
        .prepare(
            "SELECT name, typeof(score), score, CAST(day AS VARCHAR), coalesce(note, 'NULL')
             FROM model.people ORDER BY day",
        )
        .unwrap();
    let rows: Vec<(String, String, f64, String, String)> = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [
            (
                "O'Brien; DROP TABLE x --".into(),
                "DOUBLE".into(),
                3.0,
                "2026-01-05".into(),
                "NULL".into()
            ),
            (
                "Ann".into(),
                "DOUBLE".into(),
                4.5,
                "2026-01-06".into(),
                "n".into()
            ),
        ]
    );
}

#[test]
fn ruletest_config_loads_without_its_secrets_and_keeps_locations() {
    let text = "[warehouse]\npath = \"wh.duckdb\"\n\n[sources.s]\ntype = \"rest\"\nbase_url = \"https://x.example.com\"\nauth = { type = \"bearer\", token = \"env:CONVEYOR_RULETEST_SURELY_UNSET\" }\n[[sources.s.streams]]\nname = \"a\"\npath = \"/a\"\nprimary_key = \"id\"\n\n[[rules]]\nname = \"r\"\nmeasure = \"SELECT 1\"\ndirection = \"sideways\"\nwarn = 1\n";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    // The rule's own mistake is reported where it is; the unset variable is not.
    let errors = conveyor_config::load_offline(&path).unwrap_err();
    let lines: Vec<String> = errors.0.iter().map(|d| d.to_string()).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(":16:13: rules[0].direction: unknown direction `sideways`"),
        "{lines:?}"
    );
    std::fs::write(&path, text.replace("sideways", "above")).unwrap();
    assert_eq!(
        conveyor_config::load_offline(&path).unwrap().rules[0].name,
        "r"
    );
    // conveyor check would refuse it: the variable is not set.
    assert!(conveyor_config::load(&path).is_err());
}

#[test]
fn ruletest_diff_keeps_shared_lines_in_place() {
    let lines = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let got = diff::lines(
        &lines(&["To: a", "Subject: x", "Body: b"]),
        &lines(&["To: a", "Subject: y", "Body: b", "more"]),
    );
    assert_eq!(
        got,
        [
            Line::Same("To: a".into()),
            Line::Expected("Subject: x".into()),
            Line::Got("Subject: y".into()),
            Line::Same("Body: b".into()),
            Line::Got("more".into()),
        ]
    );
}

fn located() -> conveyor_config::Located {
    conveyor_config::Located {
        file: "t.toml".into(),
        line: 1,
        col: 1,
        key: "k".into(),
    }
}

#[test]
fn ruletest_webhook_bodies_compare_as_json_and_show_the_differing_key() {
    use super::observe::Webhook;
    use super::spec::ExpectedWebhook;
    let got = [Webhook {
        rule: "r".into(),
        url: "https://h.example.com/x".into(),
        entity: "ann".into(),
        body: serde_json::json!({"value": 3.0, "entity": "ann", "tags": ["a"]}),
    }];
    let expected = |body: serde_json::Value| ExpectedWebhook {
        rule: None,
        url: "https://h.example.com/x".into(),
        entity: Some("ann".into()),
        body: Some(body),
        at: located(),
    };
    // Key order and 3 vs 3.0 do not matter.
    let same = expected(serde_json::json!({"tags": ["a"], "entity": "ann", "value": 3}));
    assert_eq!(compare::webhooks(&[same], &got, false), None);
    let other = expected(serde_json::json!({"tags": ["a"], "entity": "bob", "value": 3}));
    let lines: Vec<String> = compare::webhooks(&[other], &got, false)
        .unwrap()
        .iter()
        .map(Line::marked)
        .collect();
    assert!(
        lines.contains(&"-   \"entity\": \"bob\",".to_string()),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"+   \"entity\": \"ann\",".to_string()),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&"    \"value\": 3".to_string()),
        "{lines:#?}"
    );
    // A call nobody expected fails too.
    assert!(compare::webhooks(&[], &got, false).is_some());
}

#[test]
fn ruletest_alert_diff_puts_the_expected_line_above_the_one_got_for_that_entity() {
    use super::observe::Alert;
    use super::spec::ExpectedAlert;
    let alert = |entity: &str, state: &str| Alert {
        rule: "r".into(),
        entity: entity.into(),
        state: state.into(),
        level: "warn".into(),
        value: Some(2.5),
    };
    let want = |entity: &str, state: &str| ExpectedAlert {
        rule: Some("r".into()),
        entity: entity.into(),
        state: state.into(),
        level: None,
        value: None,
        at: located(),
    };
    let got = [alert("ann", "firing"), alert("bob", "pending")];
    assert_eq!(
        compare::alerts(
            &[want("bob", "pending"), want("ann", "firing")],
            &got,
            false
        ),
        None,
        "a set: order does not matter"
    );
    let lines: Vec<String> = compare::alerts(
        &[want("ann", "pending"), want("bob", "pending")],
        &got,
        false,
    )
    .unwrap()
    .iter()
    .map(Line::marked)
    .collect();
    assert_eq!(
        lines,
        [
            r#"- { entity = "ann", state = "pending" }"#,
            r#"+ { entity = "ann", state = "firing", level = "warn", value = 2.5 }"#,
            r#"  { entity = "bob", state = "pending", level = "warn", value = 2.5 }"#,
        ]
    );
}
