//! `[[reconcile]]` entries: two relations, how their rows pair up, what must
//! agree and by how much — parsed with spans and validated into
//! [`ReconcileConfig`].

use std::collections::HashSet;

use serde::Deserialize;
use toml::Spanned;

use crate::model::{Located, Schedule};
use crate::validate::Checker;

const NORMALIZERS: &str = "trim, lower, digits, email (trim + lower), phone (digits)";
const CARDINALITIES: &str = "\"1:1\", \"1:n\"";

/// Every status a reconciliation result row can have, in report order.
pub const RECON_STATUSES: [&str; 6] = [
    "matched",
    "matched_within_tolerance",
    "missing_left",
    "missing_right",
    "mismatched",
    "duplicate",
];

/// One reconciliation: which rows of `left` and `right` correspond, and
/// whether their compared columns agree.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// Also the `reconciliation` column of `conveyor.recon_results`.
    pub name: String,
    pub left: Relation,
    pub right: Relation,
    pub keys: Vec<KeyPair>,
    pub compare: Vec<ComparePair>,
    pub cardinality: Cardinality,
    pub pairing: Pairing,
    /// What people call each side (`left_name = "payroll"`): the names the
    /// rows of an exception go by in alert templates. Default `left`/`right`.
    pub left_name: String,
    pub right_name: String,
    /// Run after any of these sources finishes a sync.
    pub after: Vec<String>,
    /// Run on this schedule as well (daemon only).
    pub schedule: Option<Schedule>,
    pub at: Located,
}

impl ReconcileConfig {
    /// The names the columns of each side's row take in an exception's
    /// `left_row`/`right_row` (the values people read in alerts): each key
    /// as written, before normalisation, then each compared column.
    pub fn row_columns(&self) -> RowColumns {
        let compare: Vec<String> = self.compare.iter().map(|c| c.name.clone()).collect();
        let keys = |pick: fn(&KeyPair) -> &str| -> Vec<Option<String>> {
            let mut seen: Vec<String> = compare.clone();
            self.keys
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    // `client` stays `client`; an expression gets a plain
                    // name. A key that is also compared shows once.
                    let expr = pick(k).trim();
                    let last = expr.rsplit('.').next().unwrap_or(expr).trim_matches('"');
                    let name = if plain_column(last) {
                        last.to_string()
                    } else {
                        format!("key{}", i + 1)
                    };
                    if seen.contains(&name) {
                        return None;
                    }
                    seen.push(name.clone());
                    Some(name)
                })
                .collect()
        };
        RowColumns {
            left_keys: keys(|k| &k.left),
            right_keys: keys(|k| &k.right),
            compare,
        }
    }
}

/// See [`ReconcileConfig::row_columns`]. A key's entry is `None` when a
/// compared column (or an earlier key) already has its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowColumns {
    pub left_keys: Vec<Option<String>>,
    pub right_keys: Vec<Option<String>>,
    pub compare: Vec<String>,
}

fn plain_column(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Where a side's rows come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// A table or view, e.g. `model.placements` or `ats.offers`.
    Table(String),
    /// A SELECT statement.
    Sql(String),
}

impl Relation {
    /// The relation as a `FROM` item.
    pub fn from_item(&self) -> String {
        match self {
            // Validated as `name` or `schema.name` at load; quoted here.
            Relation::Table(t) => t
                .split('.')
                .map(|p| format!("\"{p}\""))
                .collect::<Vec<_>>()
                .join("."),
            Relation::Sql(s) => format!("({s})"),
        }
    }
}

/// A pair of key expressions that must be equal (after normalisation) for
/// two rows to correspond; with `window_days`, they must lie within that
/// many days of each other instead.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyPair {
    /// SQL expressions over the left and right relations.
    pub left: String,
    pub right: String,
    pub normalize: Vec<Normalize>,
    pub window_days: Option<u32>,
    /// An id only some rows carry (`pairing = "best"` only): two rows that
    /// both carry it pair on it alone, whatever the other keys say; a row
    /// without it pairs by the other keys.
    pub optional: bool,
}

/// How candidate pairs become result pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairing {
    /// Every pair whose keys match is a pair; a row with several partners
    /// is a `duplicate`.
    All,
    /// Each row pairs at most once, closest first (an optional id matching,
    /// then the fewest days apart on window keys, then the smallest
    /// difference in compared numbers); rows left over are missing, never
    /// duplicates. For keys that legitimately repeat, such as a client's
    /// cohort of hires starting on one Monday.
    Best,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalize {
    /// Strip leading and trailing whitespace, Unicode's included (tabs,
    /// non-breaking and zero-width spaces).
    Trim,
    Lower,
    /// An e-mail address as a key: every whitespace character removed
    /// (an address holds none), lower-cased.
    Email,
    /// Keep digits only (phone numbers, ids with punctuation).
    Digits,
}

/// A column pair whose values must agree, possibly within a tolerance.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparePair {
    /// The name differences are reported under.
    pub name: String,
    pub left: String,
    pub right: String,
    pub tolerance: Tolerance,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    Exact,
    /// |right − left| ≤ value.
    Absolute(f64),
    /// |right − left| ≤ value % of |left|.
    Percent(f64),
    /// The two dates are at most this many days apart.
    Days(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    OneToOne,
    /// Several right rows are allocated to one left row; their compared
    /// numbers are summed before comparing.
    OneToMany,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReconcile {
    name: Spanned<String>,
    left: Option<Spanned<RawRelation>>,
    right: Option<Spanned<RawRelation>>,
    keys: Option<Spanned<Vec<Spanned<RawKey>>>>,
    #[serde(default)]
    compare: Vec<Spanned<RawCompare>>,
    cardinality: Option<Spanned<String>>,
    pairing: Option<Spanned<String>>,
    left_name: Option<Spanned<String>>,
    right_name: Option<Spanned<String>>,
    after: Option<Vec<Spanned<String>>>,
    schedule: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
}

/// Names a side may not take: they would shadow a template variable of
/// every alert, or a column of the reconciliation measure.
pub(crate) const RESERVED_SIDE_NAMES: [&str; 10] = [
    "status",
    "left_key",
    "right_key",
    "differences",
    "label",
    "left_name",
    "right_name",
    "compared",
    "entity",
    "period",
];

impl RawReconcile {
    /// The name as written, valid or not (rules may follow it).
    pub(crate) fn name(&self) -> &str {
        self.name.get_ref()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelation {
    table: Option<Spanned<String>>,
    sql: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    left: Spanned<String>,
    right: Option<Spanned<String>>,
    normalize: Option<Spanned<toml::Value>>,
    window_days: Option<Spanned<u32>>,
    optional: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompare {
    name: Option<Spanned<String>>,
    left: Spanned<String>,
    right: Option<Spanned<String>>,
    absolute: Option<Spanned<toml::Value>>,
    percent: Option<Spanned<toml::Value>>,
    days: Option<Spanned<u32>>,
}

impl Checker<'_> {
    /// Validates every `[[reconcile]]` entry; `sources` are the configured
    /// source names that `after` may refer to.
    pub(crate) fn reconciles(
        &mut self,
        raws: Vec<Spanned<RawReconcile>>,
        sources: &[String],
    ) -> Vec<ReconcileConfig> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, raw) in raws.into_iter().enumerate() {
            let key = format!("reconcile[{i}]");
            let span = raw.span();
            let raw = raw.into_inner();
            if !seen.insert(raw.name.get_ref().clone()) {
                self.error(
                    raw.name.span(),
                    &format!("{key}.name"),
                    format!("duplicate reconciliation name `{}`", raw.name.get_ref()),
                );
            }
            if let Some(r) = self.reconcile(&key, span, raw, sources) {
                out.push(r);
            }
        }
        out
    }

    fn reconcile(
        &mut self,
        key: &str,
        span: std::ops::Range<usize>,
        raw: RawReconcile,
        sources: &[String],
    ) -> Option<ReconcileConfig> {
        let errors_before = self.error_count();
        self.identifier(&raw.name, &format!("{key}.name"), "reconciliation name");
        let left = self.relation(key, "left", raw.left.as_ref(), span.clone());
        let right = self.relation(key, "right", raw.right.as_ref(), span.clone());
        let cardinality = match raw
            .cardinality
            .as_ref()
            .map(|c| c.get_ref().to_ascii_lowercase())
        {
            None => Cardinality::OneToOne,
            Some(c) if c == "1:1" => Cardinality::OneToOne,
            Some(c) if c == "1:n" => Cardinality::OneToMany,
            Some(other) => {
                let at = raw
                    .cardinality
                    .as_ref()
                    .map(|c| c.span())
                    .unwrap_or(span.clone());
                self.error(
                    at,
                    &format!("{key}.cardinality"),
                    format!("unknown cardinality `{other}`"),
                )
                .hint(format!("one of: {CARDINALITIES}"));
                Cardinality::OneToOne
            }
        };
        let mut keys = Vec::new();
        match &raw.keys {
            None => {
                self.error(raw.name.span(), &format!("{key}.keys"), "missing key `keys`")
                    .hint("how rows pair up, e.g. keys = [{ left = \"email\", right = \"work_email\", normalize = \"email\" }]");
            }
            Some(list) if list.get_ref().is_empty() => {
                self.error(
                    list.span(),
                    &format!("{key}.keys"),
                    "needs at least one key",
                );
            }
            Some(list) => {
                for (j, k) in list.get_ref().iter().enumerate() {
                    if let Some(k) = self.key_pair(&format!("{key}.keys[{j}]"), k.get_ref()) {
                        keys.push(k);
                    }
                }
                if !keys.is_empty() && keys.iter().all(|k| k.window_days.is_some() || k.optional) {
                    self.error(list.span(), &format!("{key}.keys"), "at least one key must match exactly (without window_days)")
                        .hint("a date window alone would pair every row with every other row of those days");
                }
            }
        }
        let pairing = match raw.pairing.as_ref().map(|p| p.get_ref().as_str()) {
            None | Some("all") => Pairing::All,
            Some("best") => Pairing::Best,
            Some(other) => {
                let at = raw
                    .pairing
                    .as_ref()
                    .map(|p| p.span())
                    .unwrap_or(span.clone());
                self.error(at, &format!("{key}.pairing"), format!("unknown pairing `{other}`"))
                    .hint("\"all\" (every matching pair; several partners are duplicates) or \"best\" (each row once, closest first)");
                Pairing::All
            }
        };
        if pairing == Pairing::Best && cardinality == Cardinality::OneToMany {
            let at = raw
                .pairing
                .as_ref()
                .map(|p| p.span())
                .unwrap_or(span.clone());
            self.error(
                at,
                &format!("{key}.pairing"),
                "pairing = \"best\" pairs rows 1:1",
            )
            .hint("leave cardinality at 1:1, or drop pairing for 1:N allocation");
        }
        if pairing == Pairing::All {
            if let Some(list) = &raw.keys {
                for (j, k) in list.get_ref().iter().enumerate() {
                    if let Some(o) = k.get_ref().optional.as_ref().filter(|o| *o.get_ref()) {
                        self.error(
                            o.span(),
                            &format!("{key}.keys[{j}].optional"),
                            "an optional key needs pairing = \"best\"",
                        );
                    }
                }
            }
        }
        let mut compare = Vec::new();
        let mut names = HashSet::new();
        for (j, c) in raw.compare.iter().enumerate() {
            let ckey = format!("{key}.compare[{j}]");
            if let Some(c) = self.compare_pair(&ckey, c.get_ref(), cardinality) {
                if !names.insert(c.name.clone()) {
                    self.error(
                        raw.compare[j].span(),
                        &ckey,
                        format!("two compared columns are named `{}`", c.name),
                    )
                    .hint("give one a distinct `name`");
                }
                compare.push(c);
            }
        }
        let mut after = Vec::new();
        for s in raw.after.iter().flatten() {
            if sources.iter().any(|n| n == s.get_ref()) {
                after.push(s.get_ref().clone());
            } else {
                self.error(
                    s.span(),
                    &format!("{key}.after"),
                    format!("no source named `{}`", s.get_ref()),
                )
                .hint(format!("configured sources: {}", sources.join(", ")));
            }
        }
        let schedule = self.schedule(key, raw.schedule.as_ref(), raw.timezone.as_ref());
        let left_name = self.side_name(key, "left", raw.left_name.as_ref());
        let right_name = self.side_name(key, "right", raw.right_name.as_ref());
        if let (Some(r), true) = (&raw.right_name, left_name == right_name) {
            self.error(
                r.span(),
                &format!("{key}.right_name"),
                format!("both sides are named `{right_name}`"),
            )
            .hint("each side needs its own name, e.g. left_name = \"payroll\", right_name = \"contact_center\"");
        }
        if self.error_count() > errors_before {
            return None;
        }
        Some(ReconcileConfig {
            left_name,
            right_name,
            name: raw.name.into_inner(),
            left: left?,
            right: right?,
            keys,
            compare,
            cardinality,
            pairing,
            after,
            schedule: schedule.flatten(),
            at: self.located(span, key),
        })
    }

    /// `left_name`/`right_name`: a plain lower-case name (templates read
    /// the side's row under it), not one of the alert's own variables.
    fn side_name(&mut self, key: &str, side: &str, raw: Option<&Spanned<String>>) -> String {
        let Some(raw) = raw else {
            return side.to_string();
        };
        let n = raw.get_ref();
        let plain = n
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        let other = if side == "left" { "right" } else { "left" };
        let reserved = RESERVED_SIDE_NAMES.contains(&n.as_str())
            || crate::actions::BUILTIN_VARIABLES.contains(&n.as_str())
            || n == other;
        if !plain || reserved {
            let why = if plain {
                format!("`{n}` is already a template variable of every alert")
            } else {
                format!("`{n}` must be lower-case letters, digits and underscores")
            };
            self.error(raw.span(), &format!("{key}.{side}_name"), why)
                .hint("templates read the side's row under this name, e.g. {{ payroll.hours }}");
        }
        n.clone()
    }

    fn relation(
        &mut self,
        key: &str,
        side: &str,
        raw: Option<&Spanned<RawRelation>>,
        at: std::ops::Range<usize>,
    ) -> Option<Relation> {
        let path = format!("{key}.{side}");
        let Some(raw) = raw else {
            self.error(at, &path, format!("missing key `{side}`"))
                .hint(format!(
                "{side} = {{ table = \"model.invoices\" }} or {side} = {{ sql = \"SELECT …\" }}"
            ));
            return None;
        };
        let r = raw.get_ref();
        match (&r.table, &r.sql) {
            (Some(t), None) if !t.get_ref().trim().is_empty() => {
                let name = t.get_ref().trim();
                let parts: Vec<&str> = name.split('.').collect();
                let ok = parts.len() <= 3
                    && parts.iter().all(|p| {
                        !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    });
                if !ok {
                    self.error(t.span(), &format!("{path}.table"), format!("`{name}` is not a table name"))
                        .hint("schema.table with letters, digits and `_`; for anything else use sql = \"SELECT …\"");
                    return None;
                }
                Some(Relation::Table(name.to_string()))
            }
            (None, Some(s)) if !s.get_ref().trim().is_empty() => Some(Relation::Sql(
                s.get_ref().trim().trim_end_matches(';').to_string(),
            )),
            _ => {
                self.error(
                    raw.span(),
                    &path,
                    "needs exactly one non-empty `table` or `sql`",
                )
                .hint("a table or view name, or a SELECT statement");
                None
            }
        }
    }

    fn key_pair(&mut self, key: &str, k: &RawKey) -> Option<KeyPair> {
        let mut normalize = Vec::new();
        if let Some(n) = &k.normalize {
            let names: Vec<Option<&str>> = match n.get_ref() {
                toml::Value::String(s) => vec![Some(s.as_str())],
                toml::Value::Array(a) => a.iter().map(|v| v.as_str()).collect(),
                _ => vec![None],
            };
            for name in names {
                match name {
                    Some("trim") => normalize.push(Normalize::Trim),
                    Some("lower") => normalize.push(Normalize::Lower),
                    Some("digits") | Some("phone") => normalize.push(Normalize::Digits),
                    Some("email") => normalize.push(Normalize::Email),
                    other => {
                        let what = other
                            .map(|o| format!("unknown normalisation `{o}`"))
                            .unwrap_or_else(|| "must be a name or a list of names".into());
                        self.error(n.span(), &format!("{key}.normalize"), what)
                            .hint(format!("one of: {NORMALIZERS}; for anything else write a SQL expression in `left`/`right`"));
                        return None;
                    }
                }
            }
        }
        let optional = k.optional.as_ref().is_some_and(|o| *o.get_ref());
        if let (true, Some(w)) = (optional, &k.window_days) {
            self.error(
                w.span(),
                &format!("{key}.optional"),
                "an optional key matches exactly; drop window_days",
            );
            return None;
        }
        if let Some(w) = &k.window_days {
            if !normalize.is_empty() {
                self.error(
                    w.span(),
                    &format!("{key}.window_days"),
                    "a date-window key cannot also be normalised",
                );
                return None;
            }
        }
        let left = k.left.get_ref().clone();
        Some(KeyPair {
            right: k
                .right
                .as_ref()
                .map(|r| r.get_ref().clone())
                .unwrap_or_else(|| left.clone()),
            left,
            normalize,
            window_days: k.window_days.as_ref().map(|w| *w.get_ref()),
            optional,
        })
    }

    fn compare_pair(
        &mut self,
        key: &str,
        c: &RawCompare,
        cardinality: Cardinality,
    ) -> Option<ComparePair> {
        let number = |c: &mut Self, v: &Spanned<toml::Value>, name: &str| -> Option<f64> {
            let n = match v.get_ref() {
                toml::Value::Integer(i) => Some(*i as f64),
                toml::Value::Float(f) => Some(*f),
                _ => None,
            };
            match n {
                Some(n) if n >= 0.0 && n.is_finite() => Some(n),
                _ => {
                    c.error(v.span(), &format!("{key}.{name}"), "must be a number ≥ 0");
                    None
                }
            }
        };
        let set = [c.absolute.is_some(), c.percent.is_some(), c.days.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if set > 1 {
            self.error(
                c.left.span(),
                key,
                "at most one of `absolute`, `percent`, `days`",
            );
            return None;
        }
        let tolerance = if let Some(a) = &c.absolute {
            Tolerance::Absolute(number(self, a, "absolute")?)
        } else if let Some(p) = &c.percent {
            Tolerance::Percent(number(self, p, "percent")?)
        } else if let Some(d) = &c.days {
            if cardinality == Cardinality::OneToMany {
                self.error(
                    d.span(),
                    &format!("{key}.days"),
                    "a 1:n reconciliation sums its compared columns; dates cannot be summed",
                )
                .hint("compare dates in a 1:1 reconciliation, or use a date-window key");
                return None;
            }
            Tolerance::Days(*d.get_ref())
        } else {
            Tolerance::Exact
        };
        let left = c.left.get_ref().clone();
        let name = c
            .name
            .as_ref()
            .map(|n| n.get_ref().clone())
            .unwrap_or_else(|| left.clone());
        Some(ComparePair {
            name,
            right: c
                .right
                .as_ref()
                .map(|r| r.get_ref().clone())
                .unwrap_or_else(|| left.clone()),
            left,
            tolerance,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str = r#"
[warehouse]
path = "wh.duckdb"

[sources.ats]
type = "rest"
base_url = "https://ats.example.com"
[[sources.ats.streams]]
name = "offers"
path = "/offers"
primary_key = "id"
"#;

    fn parse(extra: &str) -> Result<crate::Config, crate::ConfigErrors> {
        crate::parse(&format!("{BASE}{extra}"), Path::new("/c/conveyor.toml"))
    }

    #[test]
    fn a_full_entry_builds_the_model() {
        let c = parse(
            r#"
[model]
presets = { ats = "greenhouse" }
views = { invoices = "SELECT 1 AS x;" }

[[reconcile]]
name = "placement_invoiced"
left = { table = "model.placements" }
right = { sql = "SELECT * FROM model.invoices;" }
cardinality = "1:N"
after = ["ats"]
schedule = "0 * * * *"
keys = [{ left = " client", right = "customer", normalize = ["email", "digits"] }, { left = "start_date", right = "txn_date", window_days = 7 }]
compare = [{ name = "fee", left = "fee", right = "amount", absolute = 0.5 }, { left = "hours", percent = 2 }]
"#,
        )
        .unwrap();
        let r = &c.reconciles[0];
        assert_eq!(r.left, Relation::Table("model.placements".into()));
        assert_eq!(
            r.right,
            Relation::Sql("SELECT * FROM model.invoices".into())
        );
        assert_eq!(r.cardinality, Cardinality::OneToMany);
        assert_eq!(
            r.keys[0].normalize,
            vec![Normalize::Email, Normalize::Digits]
        );
        assert_eq!(r.keys[1].window_days, Some(7));
        assert_eq!(r.compare[0].tolerance, Tolerance::Absolute(0.5));
        assert_eq!(
            (r.compare[1].name.as_str(), r.compare[1].right.as_str()),
            ("hours", "hours")
        );
        assert_eq!(r.compare[1].tolerance, Tolerance::Percent(2.0));
        assert_eq!(r.after, vec!["ats".to_string()]);
        assert!(r.schedule.is_some());
        assert_eq!((r.at.line, r.at.key.as_str()), (17, "reconcile[0]"));
        assert_eq!(c.model.presets[0].preset, "greenhouse");
        assert_eq!(c.model.views[0].sql, "SELECT 1 AS x");
    }

    #[test]
    fn every_mistake_is_reported_with_its_location() {
        let errs = parse(
            r#"
[model]
presets = { ats = "taleo", crm = "greenhouse" }
views = { people = "SELECT 1" }

[[reconcile]]
name = "Bad Name"
left = { table = "a", sql = "SELECT 1" }
cardinality = "n:m"
after = ["payroll"]
keys = [{ left = "email", normalize = "soundex" }]
compare = [{ left = "fee", absolute = -1 }, { left = "d", days = 1, percent = 1 }]

[[reconcile]]
name = "window_only"
left = { table = "a" }
right = { table = "b" }
keys = [{ left = "d", window_days = 3 }]
"#,
        )
        .unwrap_err();
        let lines: Vec<String> = errs.0.iter().map(|d| d.to_string()).collect();
        let expect = [
            "/c/conveyor.toml:14:19: model.presets.ats: unknown preset `taleo`",
            "/c/conveyor.toml:14:34: model.presets.crm: no source named `crm`",
            "/c/conveyor.toml:15:20: model.views.people: `people` is not a view of the unified model",
            "/c/conveyor.toml:17:1: reconcile[0].right: missing key `right`",
            "/c/conveyor.toml:18:8: reconcile[0].name: reconciliation name `Bad Name` must be lower-case",
            "/c/conveyor.toml:19:8: reconcile[0].left: needs exactly one non-empty `table` or `sql`",
            "/c/conveyor.toml:20:15: reconcile[0].cardinality: unknown cardinality `n:m`",
            "/c/conveyor.toml:21:10: reconcile[0].after: no source named `payroll`",
            "/c/conveyor.toml:22:39: reconcile[0].keys[0].normalize: unknown normalisation `soundex`",
            "/c/conveyor.toml:23:39: reconcile[0].compare[0].absolute: must be a number",
            "/c/conveyor.toml:23:54: reconcile[0].compare[1]: at most one of",
            "/c/conveyor.toml:29:8: reconcile[1].keys: at least one key must match exactly",
        ];
        crate::diagnostics::assert_prefixes(&lines, &expect);
    }

    #[test]
    fn a_source_with_its_own_problem_is_still_a_source_to_refer_to() {
        let text = BASE.replace(
            "base_url = \"https://ats.example.com\"",
            "base_url = \"https://ats.example.com\"\nauth = { type = \"bearer\", token = \"env:CONVEYOR_TEST_UNSET_TOKEN\" }",
        );
        let extra = r#"
[model]
presets = { ats = "greenhouse" }
[[reconcile]]
name = "r"
after = ["ats"]
left = { table = "a" }
right = { table = "b" }
keys = [{ left = "id" }]
"#;
        let errs =
            crate::parse(&format!("{text}{extra}"), Path::new("/c/conveyor.toml")).unwrap_err();
        assert_eq!(errs.0.len(), 1, "{errs}");
        assert!(
            errs.to_string()
                .contains("CONVEYOR_TEST_UNSET_TOKEN is not set"),
            "{errs}"
        );
    }

    #[test]
    fn dates_cannot_be_summed_in_one_to_many() {
        let errs = parse(
            r#"
[[reconcile]]
name = "r"
cardinality = "1:n"
left = { table = "a" }
right = { table = "b" }
keys = [{ left = "id" }]
compare = [{ left = "d", days = 2 }]
"#,
        )
        .unwrap_err();
        assert!(
            errs.to_string()
                .contains("reconcile[0].compare[0].days: a 1:n reconciliation sums"),
            "{errs}"
        );
    }
}
