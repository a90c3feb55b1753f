//! `conveyor test FILE` through the real binary: a passing file exits 0, a
//! wrong expectation exits 1 with its diff, a broken file exits 2 with the
//! location, CSV fixtures load, and the documented example passes as
//! documented.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{text, BIN};

/// A config whose source token and SMTP password are never set: rule tests
/// must not need them.
const CONFIG: &str = r#"[warehouse]
path = "wh.duckdb"

[sources.helpdesk]
type = "rest"
base_url = "https://helpdesk.example.com"
auth = { type = "bearer", token = "env:CONVEYOR_E2E_RULETEST_UNSET_TOKEN" }
[[sources.helpdesk.streams]]
name = "scores"
path = "/scores"
primary_key = "id"

[smtp]
host = "smtp.example.com"
username = "conveyor"
password = "env:CONVEYOR_E2E_RULETEST_UNSET_PASSWORD"
from = "ops@example.com"

[[rules]]
name = "low_score"
measure = "SELECT agent AS entity, week AS period, score AS value, supervisor FROM model.scores"
direction = "below"
warn = 4
for = 2
after = ["helpdesk"]
[[rules.actions]]
type = "email"
to_column = "supervisor"
subject = "{{ entity }} below target"
body = "{{ entity }} scored {{ value }} in the week of {{ period }}"
"#;

/// Ann breaches twice (pending, then firing with one e-mail), then
/// recovers (resolved); Bob never breaches.
const PASSING: &str = r#"config = "conveyor.toml"

[[fixtures]]
table = "model.scores"
rows = [
  { agent = "ann", week = 2026-01-05, score = 3.5, supervisor = "sue@example.com" },
  { agent = "bob", week = 2026-01-05, score = 4.5, supervisor = "sue@example.com" },
]

[[evaluations]]
at = 2026-01-05T06:00:00Z
expect_alerts = [{ entity = "ann", state = "pending", level = "warn" }]
expect_emails = []

[[evaluations]]
at = 2026-01-12T06:00:00Z
rows = { "model.scores" = [
  { agent = "ann", week = 2026-01-12, score = 3, supervisor = "sue@example.com" },
  { agent = "bob", week = 2026-01-12, score = 4.6, supervisor = "sue@example.com" },
] }
expect_alerts = [{ entity = "ann", state = "firing", level = "warn", value = 3 }]
expect_emails = [
  { to = "sue@example.com", subject = "ann below target", body = "ann scored 3.0 in the week of 2026-01-12" },
]

[[evaluations]]
at = 2026-01-19T06:00:00Z
rows = { "model.scores" = [{ agent = "ann", week = 2026-01-19, score = 4.5, supervisor = "sue@example.com" }] }
expect_alerts = [{ entity = "ann", state = "resolved" }]
expect_emails = []
"#;

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new(config: &str, test: &str) -> Files {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("conveyor.toml"), config).unwrap();
        std::fs::write(dir.path().join("rules-test.toml"), test).unwrap();
        Files { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self) -> Output {
        conveyor_test(&self.path("rules-test.toml"))
    }
}

fn conveyor_test(file: &Path) -> Output {
    std::process::Command::new(BIN)
        .arg("test")
        .arg(file)
        .env_remove("CONVEYOR_E2E_RULETEST_UNSET_TOKEN")
        .env_remove("CONVEYOR_E2E_RULETEST_UNSET_PASSWORD")
        .output()
        .unwrap()
}

fn verdicts(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter_map(|l| l.get(..4).filter(|v| *v == "PASS" || *v == "FAIL"))
        .collect()
}

#[test]
fn ruletest_pending_firing_resolved_with_one_email_passes_and_exits_0() {
    let f = Files::new(CONFIG, PASSING);
    let out = f.run();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(verdicts(&stdout), ["PASS", "PASS", "PASS"], "{stdout}");
    assert!(
        stdout.contains("3 evaluation(s), 3 passed, 0 failed"),
        "{stdout}"
    );
    // Nothing was written next to the files: the warehouse is in memory.
    assert!(!f.path("wh.duckdb").exists());
}

#[test]
fn ruletest_a_wrong_expectation_exits_1_and_shows_expected_and_got() {
    let wrong = PASSING
        .replace(
            r#"expect_alerts = [{ entity = "ann", state = "firing", level = "warn", value = 3 }]"#,
            r#"expect_alerts = [{ entity = "ann", state = "pending", level = "warn" }]"#,
        )
        .replace(
            r#"subject = "ann below target""#,
            r#"subject = "Ann is below target""#,
        );
    assert_ne!(wrong, PASSING);
    let f = Files::new(CONFIG, &wrong);
    let out = f.run();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(verdicts(&stdout), ["PASS", "FAIL", "PASS"], "{stdout}");
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    for want in [
        r#"- { entity = "ann", state = "pending", level = "warn" }"#,
        r#"+ { entity = "ann", state = "firing", level = "warn", value = 3 }"#,
        "To: sue@example.com",
        "- Subject: Ann is below target",
        "+ Subject: ann below target",
        "Body: ann scored 3.0 in the week of 2026-01-12",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in:\n{stdout}");
    }
    assert!(
        stdout.contains("3 evaluation(s), 2 passed, 1 failed"),
        "{stdout}"
    );
}

#[test]
fn ruletest_a_broken_test_file_exits_2_with_the_location() {
    // An unknown key, located on its line.
    let typo = PASSING.replacen("expect_emails = []", "expect_email = []", 1);
    let f = Files::new(CONFIG, &typo);
    let out = f.run();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let line = typo
        .lines()
        .position(|l| l.starts_with("expect_email ="))
        .unwrap()
        + 1;
    let file = f.path("rules-test.toml").display().to_string();
    assert!(
        stderr.contains(&format!("{file}:{line}:1: unknown field `expect_email`")),
        "{stderr}"
    );
    assert!(verdicts(&stdout).is_empty(), "{stdout}");

    // A fixture file that is not there, and a rule the config lacks.
    let missing = "config = \"conveyor.toml\"\n\n[[fixtures]]\ntable = \"model.scores\"\ncsv = \"fixtures/nope.csv\"\n\n[[evaluations]]\nat = 2026-01-05T06:00:00Z\n";
    let f = Files::new(CONFIG, missing);
    let out = f.run();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    let file = f.path("rules-test.toml").display().to_string();
    assert!(
        stderr.contains(&format!(
            "{file}:5:7: fixtures[0].csv: CSV file {} does not exist",
            f.path("fixtures/nope.csv").display()
        )),
        "{stderr}"
    );
    let f = Files::new(
        CONFIG,
        &PASSING.replace(
            "config = \"conveyor.toml\"",
            "config = \"conveyor.toml\"\nrules = [\"low_scores\"]",
        ),
    );
    let out = f.run();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(":2:10: rules: no rule named `low_scores`")
            && stderr.contains("configured: low_score"),
        "{stderr}"
    );
}

#[test]
fn ruletest_csv_fixtures_load_with_detected_and_declared_types() {
    // Two rules over one CSV table: `score` would be detected as integers,
    // declared DOUBLE; `week` is detected as a date.
    let config = format!(
        "{CONFIG}
[[rules]]
name = \"late_weeks\"
measure = \"SELECT agent AS entity, week AS period, date_diff('day', week, CAST(getvariable('conveyor_now') AS DATE)) AS value FROM model.scores\"
direction = \"above\"
critical = 10
"
    );
    let test = r#"config = "conveyor.toml"

[[fixtures]]
table = "model.scores"
csv = "scores.csv"
columns = { score = "DOUBLE" }

[[evaluations]]
at = 2026-01-12T06:00:00Z
sql = "CREATE TABLE typed AS SELECT typeof(score) AS t, typeof(week) AS w FROM model.scores LIMIT 1"
expect_alerts = [
  { rule = "late_weeks", entity = "ann", state = "firing", level = "critical", value = 11 },
  { rule = "low_score", entity = "ann", state = "pending", level = "warn", value = 3 },
]

[[evaluations]]
at = 2026-01-13T06:00:00Z
sql = "DELETE FROM model.scores WHERE agent = 'ann' AND NOT EXISTS (SELECT 1 FROM typed WHERE t = 'DOUBLE' AND w = 'DATE')"
expect_alerts = [
  { rule = "late_weeks", entity = "ann", state = "firing", level = "critical", value = 12 },
  { rule = "low_score", entity = "ann", state = "firing", level = "warn" },
]
expect_emails = [{ rule = "low_score", to = "sue@example.com", subject_contains = "ann", body_contains = ["3.0", "2026-01-01"] }]
"#;
    let f = Files::new(&config, test);
    std::fs::write(
        f.path("scores.csv"),
        "agent,week,score,supervisor\nann,2026-01-01,3,sue@example.com\nbob,2026-01-05,5,sue@example.com\n",
    )
    .unwrap();
    let out = f.run();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(verdicts(&stdout), ["PASS", "PASS"], "{stdout}");
    assert!(
        stdout.contains("2 rule(s) under test (low_score, late_weeks)"),
        "{stdout}"
    );
}

#[test]
fn ruletest_the_documented_example_passes_and_is_the_one_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let example = root.join("examples/rule-tests");
    let out = conveyor_test(&example.join("rules-test.toml"));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(verdicts(&stdout), ["PASS", "PASS", "PASS"], "{stdout}");

    // The page shows these very files: the test file whole, the rule and
    // its actions from the config.
    let docs = std::fs::read_to_string(root.join("docs/rule-tests.md")).unwrap();
    let test_file = std::fs::read_to_string(example.join("rules-test.toml")).unwrap();
    assert!(
        docs.contains(&test_file),
        "docs/rule-tests.md must show examples/rule-tests/rules-test.toml verbatim"
    );
    let config = std::fs::read_to_string(example.join("conveyor.toml")).unwrap();
    let rule = &config[config.find("\n[[rules]]\n").unwrap() + 1..];
    assert!(
        docs.contains(rule),
        "docs/rule-tests.md must show the [[rules]] of examples/rule-tests/conveyor.toml verbatim"
    );
    for line in stdout.lines().filter(|l| l.starts_with("PASS")) {
        assert!(docs.contains(line), "docs lack the output line {line:?}");
    }
}

#[test]
fn ruletest_html_parts_are_checked_with_the_data_escaped() {
    // The entity carries markup: the HTML part must show it escaped
    // (minijinja escapes `/` too), the text part as it is.
    let config = CONFIG.replace(
        "body = \"{{ entity }} scored {{ value }} in the week of {{ period }}\"",
        "body = \"{{ entity }} scored {{ value }}\"\nhtml = \"<p>{{ entity }} scored {{ value }}</p>\"",
    );
    assert_ne!(config, CONFIG);
    let test = |html: &str| {
        format!(
            r#"config = "conveyor.toml"

[[fixtures]]
table = "model.scores"
rows = [{{ agent = "<b>ann</b>", week = 2026-01-05, score = 3, supervisor = "sue@example.com" }}]

[[evaluations]]
at = 2026-01-05T06:00:00Z

[[evaluations]]
at = 2026-01-06T06:00:00Z
expect_emails = [{{ to = "sue@example.com", body = "<b>ann</b> scored 3.0", {html} }}]
"#
        )
    };
    let f = Files::new(
        &config,
        &test(r#"html = "<p>&lt;b&gt;ann&lt;&#x2f;b&gt; scored 3.0</p>""#),
    );
    let out = f.run();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");

    let f = Files::new(&config, &test(r#"html_contains = "<b>ann</b>""#));
    let out = f.run();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    for want in [
        r#"- HTML contains: "<b>ann</b>""#,
        "+ HTML: <p>&lt;b&gt;ann&lt;&#x2f;b&gt; scored 3.0</p>",
        "Body: <b>ann</b> scored 3.0",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in:\n{stdout}");
    }
}

/// A report asserted like an e-mail: rendered as of each evaluation's `at`
/// from the fixtures, its text checked, a wrong expectation a diff.
#[test]
fn ruletest_a_report_is_asserted_by_what_it_says() {
    let config = format!(
        "{CONFIG}\n{}",
        r#"[[reports]]
name = "team_scorecard"
title = "Scores, week of {{ period }}"
to = ["lead@example.com"]
[[reports.sections]]
type = "kpis"
kpis = [{ label = "Score", measure = "SELECT agent AS entity, week AS period, score AS value FROM model.scores", goal = 4, direction = "above" }]
"#
    );
    let test = |contains: &str| {
        PASSING.replace(
            "expect_alerts = [{ entity = \"ann\", state = \"resolved\" }]",
            &format!(
                "expect_alerts = [{{ entity = \"ann\", state = \"resolved\" }}]\nexpect_reports = [{{ report = \"team_scorecard\", to = \"lead@example.com\", subject = \"Scores, week of 2026-01-19\", body_contains = \"{contains}\" }}]"
            ),
        )
    };
    let f = Files::new(
        &config,
        &test("Score: 2 of 2 meet the objective (goal at least 4)."),
    );
    let out = f.run();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert_eq!(verdicts(&stdout), ["PASS", "PASS", "PASS"], "{stdout}");

    let f = Files::new(&config, &test("Score: 1 of 2 meet the objective"));
    let out = f.run();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(verdicts(&stdout), ["PASS", "PASS", "FAIL"], "{stdout}");
    assert!(stdout.contains("reports (- expected, + got):"), "{stdout}");
    assert!(stdout.contains("2 of 2 meet the objective"), "{stdout}");
}
