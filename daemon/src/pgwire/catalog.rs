//! What Postgres clients send besides their own queries, and how it meets
//! DuckDB: statements answered here without touching the warehouse (`SET`,
//! `SHOW`, `BEGIN`, `DISCARD ALL`…), the Postgres-isms rewritten before
//! the guard sees the text (`pg_catalog.` prefixes, `OPERATOR(pg_catalog.~)`,
//! `COLLATE pg_catalog.default`, `::regclass`), and the shim catalog
//! (`catalog.sql`) installed on every reader connection so that psql's
//! `\dt`/`\d` and SQLAlchemy's inspector find Postgres-shaped answers.
//!
//! Nothing here decides what may run: every statement that reaches DuckDB
//! still goes through [`crate::query::guard::check_read_only`]. The
//! rewriting only changes names and casts, never a statement's kind.

use std::collections::BTreeMap;

/// The version clients see in `server_version`: psql and SQLAlchemy parse
/// the leading number to pick their catalog queries, so it must look like
/// a Postgres release they know (15).
pub const SERVER_VERSION: &str = "15.0 (Conveyor, DuckDB)";
pub const SERVER_VERSION_NUM: &str = "150000";

/// The shim catalog: temp views and macros, our own trusted SQL.
const SHIM_SQL: &str = include_str!("catalog.sql");

/// The SQL that prepares a reader connection: the shim catalog plus the
/// few macros whose answer depends on the session.
pub fn session_sql(pid: i32, duckdb_version: &str) -> String {
    let mut sql = String::from(SHIM_SQL);
    let version = format!(
        "PostgreSQL 15.0 (Conveyor, DuckDB {duckdb_version}) on {}-unknown-linux, 64-bit",
        std::env::consts::ARCH
    );
    sql.push_str(&format!(
        "\nCREATE OR REPLACE TEMP MACRO version() AS {};\n",
        crate::warehouse::literal(&version)
    ));
    sql.push_str(&format!(
        "CREATE OR REPLACE TEMP MACRO pg_backend_pid() AS {pid}::INTEGER;\n"
    ));
    // current_setting() answers from the same defaults as SHOW.
    let mut cases = String::new();
    for (name, value) in DEFAULT_SETTINGS {
        cases.push_str(&format!(
            " WHEN {} THEN {}",
            crate::warehouse::literal(name),
            crate::warehouse::literal(value)
        ));
    }
    sql.push_str(&format!(
        "CREATE OR REPLACE TEMP MACRO current_setting(setting_name) AS CASE lower(setting_name){cases} END, \
         (setting_name, missing_ok) AS CASE lower(setting_name){cases} END;\n"
    ));
    sql
}

/// Session parameters a client may `SHOW` (lower-case names) and their
/// values here. The warehouse is always read-only, its clock UTC.
pub const DEFAULT_SETTINGS: &[(&str, &str)] = &[
    ("server_version", SERVER_VERSION),
    ("server_version_num", SERVER_VERSION_NUM),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("standard_conforming_strings", "on"),
    ("datestyle", "ISO, MDY"),
    ("intervalstyle", "postgres"),
    ("timezone", "UTC"),
    ("integer_datetimes", "on"),
    ("transaction_isolation", "read committed"),
    ("default_transaction_isolation", "read committed"),
    ("transaction_read_only", "on"),
    ("default_transaction_read_only", "on"),
    ("is_superuser", "off"),
    ("search_path", "main"),
    ("max_identifier_length", "63"),
    ("lc_collate", "C"),
    ("lc_ctype", "C"),
    ("lc_messages", "C"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
    ("statement_timeout", "0"),
    ("lock_timeout", "0"),
    ("idle_in_transaction_session_timeout", "0"),
    ("client_min_messages", "notice"),
    ("max_connections", "100"),
    ("block_size", "8192"),
    ("in_hot_standby", "off"),
    ("application_name", ""),
];

/// What to do with one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing but blanks and comments.
    Empty,
    /// Answered here; the warehouse is not involved.
    Answer(Answer),
    /// SQL for DuckDB (already rewritten), still to pass the guard.
    Sql(String),
    /// `COPY (query) TO STDOUT`: the query (rewritten, still to pass the
    /// guard), its rows sent as COPY data.
    CopyOut {
        query: String,
        csv: bool,
        header: bool,
    },
    /// Refused before reaching the warehouse.
    Refuse { code: &'static str, message: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `BEGIN`: accepted, but no transaction reaches DuckDB (every read
    /// runs in its own transaction that is rolled back).
    Begin,
    /// `COMMIT`/`END`: nothing to commit.
    Commit,
    /// `ROLLBACK`/`ABORT`: nothing to roll back.
    Rollback,
    /// A statement acknowledged with this command tag (`SAVEPOINT`,
    /// `DISCARD ALL`, `DEALLOCATE`, `RESET`…).
    Tag(&'static str),
    /// `SET name = value`: remembered for `SHOW`, changes nothing else.
    Set { name: String, value: String },
    /// `RESET name` (`None`: `RESET ALL`).
    Reset(Option<String>),
    /// `SHOW name`: one row, one column.
    Show { name: String, value: String },
    /// `SHOW ALL`.
    ShowAll(Vec<(String, String)>),
}

/// Settings a session has `SET` (lower-case names).
pub type Settings = BTreeMap<String, String>;

/// The value `SHOW name` gives in a session.
pub fn setting(settings: &Settings, name: &str) -> Option<String> {
    let name = name.to_ascii_lowercase();
    settings.get(&name).cloned().or_else(|| {
        DEFAULT_SETTINGS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    })
}

// ---------------------------------------------------------------------------
// Lexing: enough of Postgres' lexer to find statement boundaries, keywords,
// casts and operators without being fooled by strings, quoted names,
// dollar quotes or comments.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Space,
    Comment,
    /// An unquoted identifier or keyword.
    Word,
    /// A `"quoted identifier"`.
    Quoted,
    /// A string constant: `'…'`, `E'…'`, `$tag$…$tag$`.
    Str,
    Number,
    /// `$1`.
    Param,
    /// An operator (`~`, `!~`, `::`, `=`…).
    Op,
    /// `( ) [ ] , ; .` and anything else.
    Punct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    pub kind: Kind,
    pub text: &'a str,
}

impl Token<'_> {
    fn is(&self, word: &str) -> bool {
        self.kind == Kind::Word && self.text.eq_ignore_ascii_case(word)
    }

    fn punct(&self, p: &str) -> bool {
        matches!(self.kind, Kind::Punct | Kind::Op) && self.text == p
    }

    fn significant(&self) -> bool {
        !matches!(self.kind, Kind::Space | Kind::Comment)
    }

    /// The identifier's name: unquoted ones fold to lower case.
    fn name(&self) -> Option<String> {
        match self.kind {
            Kind::Word => Some(self.text.to_ascii_lowercase()),
            Kind::Quoted => Some(self.text[1..self.text.len() - 1].replace("\"\"", "\"")),
            _ => None,
        }
    }
}

const OP_CHARS: &str = "+-*/<>=~!@#%^&|`?:";

fn is_ident_start(c: char) -> bool {
    c.is_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

/// Splits SQL into tokens; concatenating their texts gives the input back.
pub fn tokens(sql: &str) -> Vec<Token<'_>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let char_at = |i: usize| sql[i..].chars().next().unwrap_or('\0');
    while i < b.len() {
        let start = i;
        let c = char_at(i);
        let kind = if c.is_whitespace() {
            while i < b.len() && char_at(i).is_whitespace() {
                i += char_at(i).len_utf8();
            }
            Kind::Space
        } else if sql[i..].starts_with("--") {
            i = sql[i..].find('\n').map_or(b.len(), |n| i + n + 1);
            Kind::Comment
        } else if sql[i..].starts_with("/*") {
            // Postgres comments nest.
            let mut depth = 0;
            while i < b.len() {
                if sql[i..].starts_with("/*") {
                    depth += 1;
                    i += 2;
                } else if sql[i..].starts_with("*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += char_at(i).len_utf8();
                }
            }
            Kind::Comment
        } else if c == '\'' {
            i = end_of_string(sql, i + 1, false);
            Kind::Str
        } else if matches!(c, 'E' | 'e') && b.get(i + 1) == Some(&b'\'') {
            i = end_of_string(sql, i + 2, true);
            Kind::Str
        } else if matches!(c, 'X' | 'x' | 'B' | 'b' | 'N' | 'n') && b.get(i + 1) == Some(&b'\'') {
            i = end_of_string(sql, i + 2, false);
            Kind::Str
        } else if c == '"' {
            i += 1;
            loop {
                match sql[i..].find('"') {
                    None => {
                        i = b.len();
                        break;
                    }
                    Some(n) => {
                        i += n + 1;
                        if b.get(i) == Some(&b'"') {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            Kind::Quoted
        } else if c == '$' {
            let rest = &sql[i + 1..];
            if rest.starts_with(|d: char| d.is_ascii_digit()) {
                i += 1 + rest
                    .find(|d: char| !d.is_ascii_digit())
                    .unwrap_or(rest.len());
                Kind::Param
            } else {
                // `$tag$ … $tag$` (the tag may be empty).
                let tag_len = rest
                    .find(|d: char| !(d.is_alphanumeric() || d == '_'))
                    .unwrap_or(rest.len());
                if rest[tag_len..].starts_with('$')
                    && !rest.starts_with(|d: char| d.is_ascii_digit())
                {
                    let delim = &sql[i..i + tag_len + 2];
                    let body = i + delim.len();
                    i = sql[body..]
                        .find(delim)
                        .map_or(b.len(), |n| body + n + delim.len());
                    Kind::Str
                } else {
                    i += 1;
                    Kind::Punct
                }
            }
        } else if c.is_ascii_digit() || (c == '.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let mut j = i + 1;
                if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    i = j;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            Kind::Number
        } else if is_ident_start(c) {
            while i < b.len() && is_ident_char(char_at(i)) {
                i += char_at(i).len_utf8();
            }
            Kind::Word
        } else if sql[i..].starts_with("::") {
            i += 2;
            Kind::Op
        } else if OP_CHARS.contains(c) {
            while i < b.len()
                && OP_CHARS.contains(char_at(i))
                && !sql[i..].starts_with("--")
                && !sql[i..].starts_with("/*")
                && !(i > start && sql[i..].starts_with("::"))
            {
                i += 1;
            }
            Kind::Op
        } else {
            i += c.len_utf8();
            Kind::Punct
        };
        out.push(Token {
            kind,
            text: &sql[start..i],
        });
    }
    out
}

/// The index just past the string constant whose body starts at `i`.
fn end_of_string(sql: &str, mut i: usize, backslash: bool) -> usize {
    let b = sql.as_bytes();
    while i < b.len() {
        match b[i] {
            b'\\' if backslash => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// The statements of a simple Query message, split at top-level `;`, each
/// without its `;`; blank ones are dropped.
pub fn split_statements(sql: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    let mut significant = false;
    for t in tokens(sql) {
        if t.kind == Kind::Punct && t.text == ";" {
            if significant {
                out.push(sql[start..pos].trim());
            }
            start = pos + 1;
            significant = false;
        } else if t.significant() {
            significant = true;
        }
        pos += t.text.len();
    }
    if significant {
        out.push(sql[start..].trim());
    }
    out
}

// ---------------------------------------------------------------------------
// Rewriting Postgres-isms DuckDB's parser or binder does not know.

/// Casts to Postgres types DuckDB lacks, and what stands in for them: the
/// `reg*` types and `oid` are numbers here (the shim catalog's OIDs).
fn mapped_type(name: &str) -> Option<&'static str> {
    Some(match name {
        "regclass" | "regtype" | "regnamespace" | "regproc" | "regprocedure" | "regoper"
        | "regoperator" | "regrole" | "regconfig" | "regdictionary" | "oid" | "xid" | "xid8"
        | "cid" | "tid" => "BIGINT",
        "name" | "char" | "bpchar" | "int2vector" | "oidvector" | "pg_node_tree" | "aclitem"
        | "regcollation" => "VARCHAR",
        _ => return None,
    })
}

/// Postgres collations that mean "the default" and can simply go.
fn default_collation(name: &str) -> bool {
    matches!(name, "default" | "c" | "posix" | "ucs_basic" | "und-x-icu")
}

/// Rewrites one statement for DuckDB: `pg_catalog.` prefixes dropped (so
/// the shim catalog's temp views and macros answer), `OPERATOR(pg_catalog.~)`
/// → `~`, `COLLATE pg_catalog.default` dropped, casts to `regclass`, `oid`,
/// `name`… mapped to DuckDB types (`'src.items'::regclass` looks the
/// table up), `current_user` → the session user, `json_build_object` →
/// `json_object`.
pub fn rewrite(sql: &str, user: &str) -> String {
    let toks = tokens(sql);
    let mut out = String::with_capacity(sql.len());
    // The index of the next significant token at or after `i`.
    let next = |mut i: usize| {
        while i < toks.len() && !toks[i].significant() {
            i += 1;
        }
        i
    };
    let is_pg_catalog = |t: &Token| t.name().as_deref() == Some("pg_catalog");
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        // `pg_catalog.` (possibly quoted) before a name.
        if is_pg_catalog(&t) && toks.get(i + 1).is_some_and(|d| d.punct(".")) {
            i += 2;
            continue;
        }
        if t.is("operator") {
            let open = next(i + 1);
            if toks.get(open).is_some_and(|p| p.punct("(")) {
                if let Some(close) = (open + 1..toks.len()).find(|&j| toks[j].punct(")")) {
                    let op: String = toks[open + 1..close]
                        .iter()
                        .filter(|x| x.kind == Kind::Op)
                        .map(|x| x.text)
                        .collect();
                    if !op.is_empty() {
                        out.push_str(&op);
                        i = close + 1;
                        continue;
                    }
                }
            }
        }
        if t.is("collate") {
            let mut j = next(i + 1);
            if toks.get(j).is_some_and(is_pg_catalog)
                && toks.get(j + 1).is_some_and(|d| d.punct("."))
            {
                j += 2;
            }
            if toks
                .get(j)
                .and_then(|n| n.name())
                .is_some_and(|n| default_collation(&n.to_ascii_lowercase()))
            {
                i = j + 1;
                continue;
            }
        }
        // `'src.items'::regclass` → a lookup of the table's OID.
        if t.kind == Kind::Str && t.text.starts_with('\'') {
            let cast = next(i + 1);
            if toks.get(cast).is_some_and(|c| c.punct("::")) {
                let mut ty = next(cast + 1);
                if toks.get(ty).is_some_and(is_pg_catalog)
                    && toks.get(ty + 1).is_some_and(|d| d.punct("."))
                {
                    ty += 2;
                }
                let body = &t.text[1..t.text.len() - 1];
                let numeric = !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit());
                let func = match toks.get(ty).and_then(|x| x.name()).as_deref() {
                    Some("regclass") if !numeric => Some("to_regclass"),
                    Some("regtype") if !numeric => Some("to_regtype"),
                    Some("regnamespace") if !numeric => Some("to_regnamespace"),
                    _ => None,
                };
                if let Some(func) = func {
                    out.push_str(&format!("{func}({})", t.text));
                    i = ty + 1;
                    continue;
                }
            }
        }
        // The type after `::`, or after `AS` inside `CAST(… AS regclass)`.
        if t.punct("::") || t.is("as") {
            let mut ty = next(i + 1);
            if toks.get(ty).is_some_and(is_pg_catalog)
                && toks.get(ty + 1).is_some_and(|d| d.punct("."))
            {
                ty += 2;
            }
            if let Some(mapped) = toks
                .get(ty)
                .and_then(|x| x.name())
                .and_then(|n| mapped_type(&n))
            {
                // `x AS name` is an alias unless it closes a CAST.
                let closes = toks
                    .get(next(ty + 1))
                    .is_some_and(|p| p.punct(")") || p.punct("["));
                if t.punct("::") || closes {
                    out.push_str(t.text);
                    out.push(' ');
                    out.push_str(mapped);
                    i = ty + 1;
                    continue;
                }
            }
        }
        if (t.is("current_user") || t.is("session_user") || t.is("current_role"))
            && !toks
                .get(next(i + 1))
                .is_some_and(|p| p.punct("(") || p.punct("."))
            && !toks.get(i.wrapping_sub(1)).is_some_and(|p| p.punct("."))
        {
            out.push_str(&crate::warehouse::literal(user));
            i += 1;
            continue;
        }
        if t.is("json_build_object") && toks.get(next(i + 1)).is_some_and(|p| p.punct("(")) {
            out.push_str("json_object");
            i += 1;
            continue;
        }
        out.push_str(t.text);
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------
// Classifying a statement.

/// Decides what to do with one statement (already split).
pub fn plan(sql: &str, user: &str, settings: &Settings) -> Plan {
    let toks = tokens(sql);
    let words: Vec<Token> = toks.iter().copied().filter(Token::significant).collect();
    let Some(first) = words.first() else {
        return Plan::Empty;
    };
    let kw = |i: usize, w: &str| words.get(i).is_some_and(|t| t.is(w));
    let lower = |i: usize| {
        words
            .get(i)
            .map(|t| t.name().unwrap_or_else(|| t.text.to_ascii_lowercase()))
    };
    let refuse = |message: String| Plan::Refuse {
        code: "25006",
        message,
    };
    match first.text.to_ascii_lowercase().as_str() {
        "begin" | "start" if first.kind == Kind::Word => Plan::Answer(Answer::Begin),
        "commit" | "end" => Plan::Answer(Answer::Commit),
        "rollback" | "abort" => {
            if words.iter().any(|t| t.is("to")) {
                Plan::Answer(Answer::Tag("ROLLBACK"))
            } else {
                Plan::Answer(Answer::Rollback)
            }
        }
        "savepoint" => Plan::Answer(Answer::Tag("SAVEPOINT")),
        "release" => Plan::Answer(Answer::Tag("RELEASE")),
        "discard" => Plan::Answer(Answer::Tag("DISCARD ALL")),
        "deallocate" => Plan::Answer(Answer::Tag("DEALLOCATE")),
        "unlisten" => Plan::Answer(Answer::Tag("UNLISTEN")),
        "set" => {
            let mut at = 1;
            if kw(1, "global") || kw(1, "persistent") || kw(1, "variable") {
                return refuse(
                    "the warehouse settings cannot be changed from here; \
                     `SET` only accepts Postgres session parameters (which change nothing)"
                        .into(),
                );
            }
            if kw(1, "session") || kw(1, "local") {
                at = 2;
            }
            if kw(at, "time") && kw(at + 1, "zone") {
                let value: Vec<&str> = words[at + 2..].iter().map(|t| t.text).collect();
                return Plan::Answer(Answer::Set {
                    name: "timezone".into(),
                    value: unquote(&value.join(" ")),
                });
            }
            let Some(name) = lower(at) else {
                return Plan::Refuse {
                    code: "42601",
                    message: "SET needs a parameter name".into(),
                };
            };
            // `SET name = value` / `SET name TO value`; anything else
            // (`SET SESSION CHARACTERISTICS …`, `SET TRANSACTION …`) is
            // acknowledged as is.
            let mut v = at + 1;
            while words.get(v).is_some_and(|t| t.punct(".")) {
                v += 2;
            }
            if words.get(v).is_some_and(|t| t.punct("=") || t.is("to")) {
                let value: Vec<&str> = words[v + 1..].iter().map(|t| t.text).collect();
                Plan::Answer(Answer::Set {
                    name,
                    value: unquote(&value.join(" ")),
                })
            } else {
                Plan::Answer(Answer::Tag("SET"))
            }
        }
        "reset" => {
            if kw(1, "all") {
                Plan::Answer(Answer::Reset(None))
            } else {
                Plan::Answer(Answer::Reset(lower(1)))
            }
        }
        "show" => {
            // DuckDB's own listings, without the shim catalog's temp views.
            if kw(1, "tables") && words.len() == 2 {
                return Plan::Sql(
                    "SELECT * FROM (SHOW TABLES) WHERE name NOT IN \
                     (SELECT view_name FROM duckdb_views() WHERE temporary)"
                        .into(),
                );
            }
            if kw(1, "all") && kw(2, "tables") && words.len() == 3 {
                return Plan::Sql("SELECT * FROM (SHOW ALL TABLES) WHERE NOT temporary".into());
            }
            if kw(1, "all") && words.len() == 2 {
                let mut all: Settings = DEFAULT_SETTINGS
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect();
                all.extend(settings.clone());
                return Plan::Answer(Answer::ShowAll(all.into_iter().collect()));
            }
            let name = if kw(1, "transaction") && kw(2, "isolation") {
                Some("transaction_isolation".to_string())
            } else if kw(1, "time") && kw(2, "zone") {
                Some("timezone".to_string())
            } else if words.len() == 2 {
                lower(1)
            } else {
                None
            };
            match name.and_then(|n| setting(settings, &n).map(|v| (n, v))) {
                Some((name, value)) => Plan::Answer(Answer::Show { name, value }),
                // DuckDB's own `SHOW TABLES`, `SHOW src.items`…
                None => Plan::Sql(rewrite(sql, user)),
            }
        }
        "copy" => plan_copy(&toks, user),
        "listen" | "notify" => refuse("LISTEN/NOTIFY are not available on the warehouse".into()),
        _ => Plan::Sql(rewrite(sql, user)),
    }
}

/// `COPY (query) TO STDOUT [WITH] [(FORMAT csv, HEADER)] | [CSV [HEADER]]`
/// is served (psql's `\copy … to …` sends it); COPY to or from a file or
/// from STDIN is not.
fn plan_copy(toks: &[Token], user: &str) -> Plan {
    let refused = || Plan::Refuse {
        code: "25006",
        message: "the warehouse is read-only here: only `COPY (SELECT …) TO STDOUT` is served \
                  (psql: \\copy (SELECT …) TO 'file'); COPY to or from server files is not"
            .into(),
    };
    let sig: Vec<(usize, Token)> = toks
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, t)| t.significant())
        .collect();
    let Some(&(open, second)) = sig.get(1) else {
        return refused();
    };
    let (query, after) = if second.punct("(") {
        let mut depth = 0;
        let mut close = None;
        for (j, t) in toks.iter().enumerate().skip(open) {
            if t.punct("(") {
                depth += 1;
            } else if t.punct(")") {
                depth -= 1;
                if depth == 0 {
                    close = Some(j);
                    break;
                }
            }
        }
        let Some(close) = close else {
            return refused();
        };
        let inner: String = toks[open + 1..close].iter().map(|t| t.text).collect();
        (inner, close + 1)
    } else {
        // `COPY table [(columns)] TO STDOUT`.
        let Some(pos) = sig.iter().position(|(_, t)| t.is("to") || t.is("from")) else {
            return refused();
        };
        let target: String = toks[open..sig[pos].0].iter().map(|t| t.text).collect();
        let target = target.trim();
        let (table, columns) = match target.split_once('(') {
            Some((t, c)) => (t.trim(), c.trim_end_matches(')').trim()),
            None => (target, "*"),
        };
        (format!("SELECT {columns} FROM {table}"), sig[pos].0)
    };
    let rest: Vec<Token> = toks[after..]
        .iter()
        .copied()
        .filter(Token::significant)
        .collect();
    if !(rest.first().is_some_and(|t| t.is("to")) && rest.get(1).is_some_and(|t| t.is("stdout"))) {
        return refused();
    }
    let options: Vec<String> = rest[2..]
        .iter()
        .map(|t| t.text.to_ascii_lowercase())
        .collect();
    if options.iter().any(|o| o == "binary") {
        return Plan::Refuse {
            code: "0A000",
            message: "COPY … TO STDOUT is served as text or CSV, not binary".into(),
        };
    }
    Plan::CopyOut {
        query: rewrite(&query, user),
        csv: options.iter().any(|o| o == "csv"),
        header: options.iter().any(|o| o == "header"),
    }
}

/// `'UTC'` → `UTC`; other values as written.
fn unquote(v: &str) -> String {
    let v = v.trim();
    if v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'') {
        v[1..v.len() - 1].replace("''", "'")
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(s: &str) -> String {
        match plan(s, "ops", &Settings::new()) {
            Plan::Sql(s) => s,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn tokens_round_trip_and_respect_quotes() {
        for s in [
            "SELECT $$--$$ AS a; COMMIT; DROP TABLE t",
            "select 'it''s', E'a\\'b', \"we\"\"ird\" /* c /* nested */ */ -- x\n, $1::int",
            "SELECT $tag$ ; $tag$, 1.5e3, x::pg_catalog.regclass",
        ] {
            let joined: String = tokens(s).iter().map(|t| t.text).collect();
            assert_eq!(joined, s);
        }
        assert_eq!(
            split_statements("SELECT $$--$$ AS a; COMMIT; DROP TABLE src.items"),
            vec!["SELECT $$--$$ AS a", "COMMIT", "DROP TABLE src.items"]
        );
        assert_eq!(
            split_statements("SELECT ';' ; -- only a comment\n ;"),
            vec!["SELECT ';'"]
        );
        assert_eq!(split_statements(" ; "), Vec::<&str>::new());
    }

    #[test]
    fn psql_postgres_isms_are_rewritten() {
        let q = "SELECT c.oid FROM pg_catalog.pg_class c LEFT JOIN \"pg_catalog\".pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relname OPERATOR(pg_catalog.~) '^(people)$' COLLATE pg_catalog.default \
                 AND c.oid = '16398'::pg_catalog.oid AND x::pg_catalog.regclass::pg_catalog.text = 'a'";
        assert_eq!(
            sql(q),
            "SELECT c.oid FROM pg_class c LEFT JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname ~ '^(people)$'  \
             AND c.oid = '16398':: BIGINT AND x:: BIGINT::text = 'a'"
        );
        assert_eq!(
            sql("SELECT 'src.items'::regclass, CAST(a AS REGCLASS), b AS name FROM t"),
            "SELECT to_regclass('src.items'), CAST(a AS BIGINT), b AS name FROM t"
        );
        assert_eq!(
            sql("select current_user, json_build_object('a', 1), 'pg_catalog.x'"),
            "select 'ops', json_object('a', 1), 'pg_catalog.x'"
        );
        // Strings, comments and quoted names are left alone.
        assert_eq!(
            sql("SELECT 'OPERATOR(x)' -- pg_catalog.y\n"),
            "SELECT 'OPERATOR(x)' -- pg_catalog.y\n"
        );
    }

    #[test]
    fn session_statements_are_answered_here() {
        let s = Settings::new();
        let p = |q: &str| plan(q, "ops", &s);
        assert_eq!(p("BEGIN"), Plan::Answer(Answer::Begin));
        assert_eq!(
            p("begin isolation level read committed read only"),
            Plan::Answer(Answer::Begin)
        );
        assert_eq!(p("COMMIT"), Plan::Answer(Answer::Commit));
        assert_eq!(p("ROLLBACK"), Plan::Answer(Answer::Rollback));
        assert_eq!(
            p("ROLLBACK TO SAVEPOINT a"),
            Plan::Answer(Answer::Tag("ROLLBACK"))
        );
        assert_eq!(
            p("SET SESSION DateStyle TO 'ISO'"),
            Plan::Answer(Answer::Set {
                name: "datestyle".into(),
                value: "ISO".into()
            })
        );
        assert_eq!(
            p("SET TIME ZONE 'UTC'"),
            Plan::Answer(Answer::Set {
                name: "timezone".into(),
                value: "UTC".into()
            })
        );
        assert!(matches!(
            p("SET GLOBAL threads = 1"),
            Plan::Refuse { code: "25006", .. }
        ));
        assert_eq!(
            p("show transaction isolation level"),
            Plan::Answer(Answer::Show {
                name: "transaction_isolation".into(),
                value: "read committed".into()
            })
        );
        assert_eq!(p("SHOW src.items"), Plan::Sql("SHOW src.items".into()));
        assert_eq!(p("DISCARD ALL"), Plan::Answer(Answer::Tag("DISCARD ALL")));
        assert_eq!(p("  -- nothing\n"), Plan::Empty);
    }

    /// Every catalog query psql 15, psycopg and SQLAlchemy send (captured
    /// from a real Postgres 15) binds and runs on the shim catalog after
    /// the rewrite, and passes the guard.
    #[test]
    fn client_catalog_queries_run_on_the_shim_catalog() {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE SCHEMA src; CREATE TABLE src.items(id BIGINT PRIMARY KEY, name VARCHAR DEFAULT 'x', \
             amount DECIMAL(12,2), ts TIMESTAMP, j JSON); \
             CREATE SCHEMA model; CREATE VIEW model.people AS SELECT id, name FROM src.items;",
        )
        .unwrap();
        conn.execute_batch(&session_sql(7, "v2.0.0")).unwrap();
        let oid: i64 = conn
            .query_row(
                "SELECT oid FROM pg_class WHERE relname = 'items'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let view: i64 = conn
            .query_row(
                "SELECT oid FROM pg_class WHERE relname = 'people'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let mut rows = std::collections::BTreeMap::new();
        for block in include_str!("client_queries.sql")
            .split("-- query: ")
            .skip(1)
        {
            let (name, sql) = block.split_once('\n').unwrap();
            let sql = sql
                .replace("'16398'", &format!("'{oid}'"))
                .replace("'16394'", &format!("'{view}'"))
                .replace("^(plain)$", "^(items)$");
            let rewritten = match plan(sql.trim(), "ops", &Settings::new()) {
                Plan::Sql(s) => s,
                other => panic!("{name}: {other:?}"),
            };
            let rewritten = crate::query::guard::check_read_only(&conn, &rewritten)
                .unwrap_or_else(|e| panic!("{name}: {e}\n{rewritten}"));
            let mut stmt = conn
                .prepare(&rewritten)
                .unwrap_or_else(|e| panic!("{name}: {e}\n{rewritten}"));
            let n: usize = stmt
                .stream_arrow([])
                .unwrap_or_else(|e| panic!("{name}: {e}\n{rewritten}"))
                .map(|b| b.unwrap().num_rows())
                .sum();
            rows.insert(name.to_string(), n);
        }
        assert_eq!(rows.len(), 29);
        assert_eq!(rows["psql \\dt src.* (1)"], 1);
        assert_eq!(
            rows["psql \\d src.plain (1)"], 1,
            "the lookup finds src.items"
        );
        assert_eq!(rows["psql \\d src.plain (2)"], 1, "table info");
        assert_eq!(rows["psql \\d src.plain (3)"], 5, "one row per column");
        assert_eq!(rows["psql \\d model.people (3)"], 2);
        assert_eq!(rows["psql \\dv model.* (1)"], 1);
        assert_eq!(rows["sqlalchemy get_table_names"], 1);
        assert_eq!(rows["sqlalchemy get_columns"], 5);
        assert_eq!(rows["sqlalchemy has_table"], 1);
        assert_eq!(rows["psycopg TypeInfo.fetch"], 0, "no hstore here");
        let types: Vec<String> = conn
            .prepare(&rewrite(
                "SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a \
                 WHERE a.attrelid = 'src.items'::regclass ORDER BY a.attnum",
                "ops",
            ))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            types,
            [
                "bigint",
                "text",
                "numeric(12,2)",
                "timestamp without time zone",
                "json"
            ]
        );
    }

    #[test]
    fn copy_to_stdout_is_served_and_copy_to_files_is_not() {
        let s = Settings::new();
        assert_eq!(
            plan(
                "COPY ( SELECT 1 AS a ) TO STDOUT WITH (FORMAT csv, HEADER)",
                "ops",
                &s
            ),
            Plan::CopyOut {
                query: " SELECT 1 AS a ".into(),
                csv: true,
                header: true
            }
        );
        assert_eq!(
            plan("copy src.items (id, name) to stdout", "ops", &s),
            Plan::CopyOut {
                query: "SELECT id, name FROM src.items".into(),
                csv: false,
                header: false
            }
        );
        for q in [
            "COPY (SELECT 1) TO '/tmp/x'",
            "COPY src.items FROM STDIN",
            "COPY src.items FROM '/etc/passwd'",
        ] {
            assert!(matches!(plan(q, "ops", &s), Plan::Refuse { .. }), "{q}");
        }
    }
}
