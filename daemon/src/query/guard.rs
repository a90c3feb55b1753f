//! The read-only guard: which SQL a reader may run, decided by DuckDB's own
//! parser rather than by looking at the text.
//!
//! DuckDB serialises a parse tree only for SELECT statements
//! (`json_serialize_sql`), so the parser itself tells whether the text is
//! exactly one SELECT — `DESCRIBE`, `SHOW`, `SUMMARIZE`, `FROM t`, `VALUES`,
//! `PIVOT` and `WITH … SELECT` are SELECTs to it; `WITH … INSERT`, `COMMIT`,
//! `SET`, `ATTACH`, `COPY`, `PRAGMA`, `CALL` are not. `EXPLAIN` of such a
//! SELECT is allowed too (without `ANALYZE`, which runs it: harmless, but
//! not a plan). What a SELECT may *read* is bounded by the database itself:
//! the warehouse is opened with external access off (see
//! [`crate::warehouse`]), so `read_text('/etc/shadow')` fails in the engine.
//!
//! Never hand unchecked text to `Connection::prepare`: duckdb-rs *executes*
//! every statement but the last of a multi-statement string while preparing.
//! [`check_read_only`] therefore returns the text to run: the input itself
//! when DuckDB parsed the whole of it as one SELECT, or `EXPLAIN ` plus the
//! part it parsed — never text only our own comment skipping has read.
//!
//! A SELECT can still call functions with effects a rollback does not
//! undo (sequences, checkpoints, DuckDB's external-resource registry) or
//! that run SQL of their own (`query`, `query_table`): the parse tree is
//! walked and any call to one of [`DENIED_FUNCTIONS`] is refused.

use duckdb::Connection;

/// Why a statement may not run, with a message a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Empty,
    /// More than one statement in one request.
    Several(usize),
    /// A statement that is not a read; carries its leading keyword.
    NotARead(String),
    /// Text that starts with a read but holds a statement that is not one.
    NotAllReads,
    /// The parser rejected the text.
    Syntax(String),
    /// A function with effects outside the query (or running SQL of its own).
    DeniedFunction(String),
}

/// Functions a reader may not call: they change state a rollback keeps
/// (sequences, checkpoints, registries), run SQL from a string the guard
/// never sees, or toggle engine facilities.
pub const DENIED_FUNCTIONS: &[&str] = &[
    "nextval",
    "setval",
    "currval",
    "checkpoint",
    "force_checkpoint",
    "query",
    "query_table",
    "json_execute_serialized_sql",
    "json_deserialize_sql",
    "setseed",
    "truncate_duckdb_logs",
];

/// Name prefixes and parts denied the same way.
const DENIED_PATTERNS: &[&str] = &["external_resource", "enable_", "disable_"];

fn denied(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    DENIED_FUNCTIONS.contains(&name.as_str())
        || DENIED_PATTERNS.iter().any(|p| {
            if p.ends_with('_') {
                name.starts_with(p)
            } else {
                name.contains(p)
            }
        })
}

impl Refusal {
    /// The Postgres SQLSTATE for this refusal.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Refusal::Empty => "42601",
            Refusal::Syntax(_) => "42601",
            Refusal::Several(_) | Refusal::DeniedFunction(_) => "0A000",
            // read_only_sql_transaction
            Refusal::NotARead(_) | Refusal::NotAllReads => "25006",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Empty => f.write_str("empty query"),
            Refusal::Several(n) => write!(
                f,
                "one statement at a time, please ({n} were sent); the warehouse is read-only here"
            ),
            Refusal::NotARead(what) => write!(
                f,
                "the warehouse is read-only here and `{what}` is not a read; \
                 send one SELECT (or WITH … SELECT, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN, VALUES) — \
                 the warehouse is written only by syncs"
            ),
            Refusal::NotAllReads => f.write_str(
                "the warehouse is read-only here and this text holds a statement that is not a read; \
                 send one SELECT at a time",
            ),
            Refusal::Syntax(e) => f.write_str(e),
            Refusal::DeniedFunction(name) => write!(
                f,
                "`{name}` is not available to readers: it changes state outside the query \
                 or runs SQL of its own"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// Refuses anything but exactly one reading statement; returns the text to
/// run (see the module header: never prepare anything else).
pub fn check_read_only(conn: &Connection, sql: &str) -> Result<String, Refusal> {
    match parse(conn, sql)? {
        Parsed::Selects(tree) => match tree["statements"].as_array().map_or(0, Vec::len) {
            0 => Err(Refusal::Empty),
            1 => {
                refuse_denied_functions(&tree)?;
                Ok(sql.to_string())
            }
            n => Err(Refusal::Several(n)),
        },
        Parsed::Other(message) => {
            // `EXPLAIN <one SELECT>` only plans it. What runs is rebuilt from
            // the part the parser checked, so a comment we skip differently
            // from DuckDB can hide nothing.
            if let Some(rest) = strip_keyword(sql, "EXPLAIN") {
                if strip_keyword(rest, "ANALYZE").is_none()
                    && strip_keyword(rest, "ANALYSE").is_none()
                {
                    if let Parsed::Selects(tree) = parse(conn, rest)? {
                        if tree["statements"].as_array().map_or(0, Vec::len) == 1 {
                            refuse_denied_functions(&tree)?;
                            return Ok(format!("EXPLAIN {rest}"));
                        }
                    }
                }
            }
            // Several statements, one of them not a SELECT: say which.
            if message.contains("Only SELECT") {
                let first = leading_keyword(sql);
                if READ_KEYWORDS.contains(&first.as_str()) {
                    Err(Refusal::NotAllReads)
                } else {
                    Err(Refusal::NotARead(first))
                }
            } else {
                Err(Refusal::Syntax(crate::query::clean_error(&message)))
            }
        }
    }
}

/// Walks the parse tree for calls (scalar, aggregate, table functions)
/// to a denied function.
fn refuse_denied_functions(tree: &serde_json::Value) -> Result<(), Refusal> {
    match tree {
        serde_json::Value::Object(map) => {
            if let Some(name) = map.get("function_name").and_then(|n| n.as_str()) {
                if denied(name) {
                    return Err(Refusal::DeniedFunction(name.to_string()));
                }
            }
            map.values().try_for_each(refuse_denied_functions)
        }
        serde_json::Value::Array(items) => items.iter().try_for_each(refuse_denied_functions),
        _ => Ok(()),
    }
}

/// Words a reading statement starts with, to word a refusal (only).
const READ_KEYWORDS: &[&str] = &[
    "SELECT",
    "WITH",
    "FROM",
    "VALUES",
    "TABLE",
    "DESCRIBE",
    "DESC",
    "SHOW",
    "SUMMARIZE",
    "PIVOT",
    "UNPIVOT",
    "",
];

/// For SQL written in the config (measures, mappings, relations): the
/// config is trusted, but its SQL is still exactly one read, so a `;` in a
/// measure cannot run a second statement on the writer's connection.
pub fn check_config_sql(conn: &Connection, sql: &str) -> Result<(), String> {
    check_read_only(conn, sql).map(drop).map_err(|r| match r {
        Refusal::Syntax(e) => e,
        other => format!("must be exactly one SELECT statement: {other}"),
    })
}

enum Parsed {
    /// Every statement is a SELECT: the serialised parse tree.
    Selects(serde_json::Value),
    /// The parser refused, or a statement is not a SELECT.
    Other(String),
}

/// Asks DuckDB's parser (the text goes in as a parameter, never as SQL).
fn parse(conn: &Connection, sql: &str) -> Result<Parsed, Refusal> {
    let json: String = conn
        .query_row(
            "SELECT CAST(json_serialize_sql(?::VARCHAR) AS VARCHAR)",
            [sql],
            |r| r.get(0),
        )
        .map_err(|e| Refusal::Syntax(format!("cannot check the statement: {e}")))?;
    let v: serde_json::Value = serde_json::from_str(&json)
        .map_err(|e| Refusal::Syntax(format!("cannot check the statement: {e}")))?;
    if v["error"].as_bool() == Some(true) {
        let message = v["error_message"]
            .as_str()
            .unwrap_or("cannot parse")
            .to_string();
        return Ok(Parsed::Other(message));
    }
    Ok(Parsed::Selects(v))
}

/// The text after `keyword` when `sql` starts with it (after blanks and
/// comments), else `None`.
fn strip_keyword<'a>(sql: &'a str, keyword: &str) -> Option<&'a str> {
    let rest = skip_blanks(sql);
    let head = rest.get(..keyword.len())?;
    let after = &rest[keyword.len()..];
    let boundary = after
        .chars()
        .next()
        .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
    (head.eq_ignore_ascii_case(keyword) && boundary).then_some(after)
}

/// Skips whitespace, `-- …` and `/* … */` comments.
fn skip_blanks(mut s: &str) -> &str {
    loop {
        let t = s.trim_start();
        if let Some(r) = t.strip_prefix("--") {
            s = r.split_once('\n').map_or("", |(_, rest)| rest);
        } else if let Some(r) = t.strip_prefix("/*") {
            s = r.split_once("*/").map_or("", |(_, rest)| rest);
        } else {
            return t;
        }
    }
}

/// The first word, for messages only (the decision is the parser's).
fn leading_keyword(sql: &str) -> String {
    skip_blanks(sql)
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        Connection::open_in_memory().unwrap()
    }

    #[test]
    fn guard_lets_single_reads_through() {
        let c = conn();
        for sql in [
            "SELECT 1",
            "  with x as (select 1) select * from x;",
            "-- note\nFROM duckdb_tables()",
            "SELECT 'DELETE; x'",
            "SELECT $$--$$ AS a",
            "DESCRIBE SELECT 1 AS a",
            "SUMMARIZE SELECT 1 AS a",
            "VALUES (1), (2)",
            "EXPLAIN SELECT 1",
            "/* plan */ explain select 42",
        ] {
            assert!(
                check_read_only(&c, sql).is_ok(),
                "{sql}: {:?}",
                check_read_only(&c, sql)
            );
        }
    }

    #[test]
    fn guard_refuses_writes_settings_and_several_statements() {
        let c = conn();
        let cases = [
            ("SELECT $$--$$ AS a; COMMIT; DROP TABLE t", "NotAllReads"),
            (
                "WITH t AS (SELECT 1) INSERT INTO x SELECT * FROM t",
                "NotAllReads",
            ),
            ("SET GLOBAL threads = 1", "NotARead"),
            ("ATTACH 'x.db' AS x; CREATE TABLE x.t (a INT)", "NotARead"),
            ("ATTACH 'x.db' AS x", "NotARead"),
            ("COPY (SELECT 1) TO '/tmp/x'", "NotARead"),
            ("EXPLAIN ANALYZE COPY (SELECT 1) TO '/tmp/x'", "NotARead"),
            ("EXPLAIN ANALYZE SELECT 1", "NotARead"),
            ("EXPLAIN DELETE FROM t", "NotARead"),
            ("COMMIT", "NotARead"),
            ("PRAGMA enable_profiling", "NotARead"),
            ("INSTALL httpfs", "NotARead"),
            ("/* select */ INSERT INTO t VALUES (1)", "NotARead"),
            ("SELECT 1; SELECT 2", "Several"),
            ("   ;  ", "Empty"),
            ("SELEC 1", "Syntax"),
        ];
        for (sql, want) in cases {
            let got = check_read_only(&c, sql).unwrap_err();
            assert!(format!("{got:?}").starts_with(want), "{sql}: {got:?}");
        }
        let e = check_read_only(&c, "DELETE FROM t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("read-only") && e.contains("DELETE"), "{e}");
    }

    /// Found by review: comments DuckDB's lexer reads differently from a
    /// hand-written skipper (`--` ends at `\r` too; `/* */` nests) once
    /// hid a COMMIT and a CREATE before an EXPLAIN.
    #[test]
    fn guard_runs_only_what_the_parser_checked() {
        let c = conn();
        c.execute_batch("CREATE TABLE t (x INT)").unwrap();
        for sql in [
            "--\rCOMMIT; CREATE TABLE main.pwned AS SELECT 42 AS x;\nEXPLAIN SELECT 1",
            "/* /* */ EXPLAIN SELECT '*/ COMMIT; CREATE TABLE main.pwned AS SELECT 44 AS x; SELECT 1 AS x --'",
        ] {
            if let Ok(run) = check_read_only(&c, sql) {
                // Whatever passes is exactly one statement: preparing it
                // executes nothing else.
                let _ = c.prepare(&run);
            }
            let n: i64 = c
                .query_row("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'pwned'", [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 0, "{sql:?} created a table");
        }
        assert_eq!(
            check_read_only(&c, "EXPLAIN SELECT 1").unwrap(),
            "EXPLAIN  SELECT 1"
        );
    }

    #[test]
    fn guard_refuses_functions_with_effects_outside_the_query() {
        let c = conn();
        c.execute_batch("CREATE SEQUENCE s START 1").unwrap();
        for sql in [
            "SELECT setval('s', 9223372036854775800)",
            "SELECT max(nextval('s')) FROM range(6)",
            "SELECT * FROM checkpoint()",
            "FROM force_checkpoint()",
            "SELECT * FROM query('SELECT 1')",
            "SELECT system.main.nextval('s')",
            "WITH x AS (SELECT currval('s') AS v) SELECT v FROM x",
            "EXPLAIN SELECT nextval('s')",
            "FROM register_external_resource_type('evil', kind := 'x', create_function := 'force_checkpoint')",
        ] {
            match check_read_only(&c, sql) {
                Err(Refusal::DeniedFunction(_)) => {}
                other => panic!("{sql}: {other:?}"),
            }
        }
        let v: i64 = c
            .query_row("SELECT nextval('s')", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 1, "the sequence never moved");
    }
}
