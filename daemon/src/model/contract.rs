//! The unified model's vocabulary: every view, its columns and their kinds.
//! Mappings (presets or the user's SQL) must produce these columns; the
//! view wraps the mapping in casts so later stages see one set of types.

/// What a mapped column must hold. Text accepts anything (it is cast).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Number,
    Date,
    Timestamp,
    Boolean,
}

impl Kind {
    /// The DuckDB type the view casts to.
    pub fn sql_type(self) -> &'static str {
        match self {
            Kind::Text => "VARCHAR",
            Kind::Number => "DOUBLE",
            Kind::Date => "DATE",
            Kind::Timestamp => "TIMESTAMP",
            Kind::Boolean => "BOOLEAN",
        }
    }

    /// Whether a mapping column of DuckDB type `ty` can stand for this kind.
    pub fn accepts(self, ty: &str) -> bool {
        // DESCRIBE prints a NULL literal's type as `"NULL"`, quotes included.
        let ty = ty.trim_matches('"').to_ascii_uppercase();
        let numeric = [
            "TINYINT",
            "SMALLINT",
            "INTEGER",
            "BIGINT",
            "HUGEINT",
            "UTINYINT",
            "USMALLINT",
            "UINTEGER",
            "UBIGINT",
            "FLOAT",
            "DOUBLE",
            "DECIMAL",
            "REAL",
        ]
        .iter()
        .any(|n| ty.starts_with(n));
        match self {
            Kind::Text => true,
            // NULL literals have type "NULL" (written as `NULL AS col`).
            _ if ty == "NULL" => true,
            Kind::Number => numeric,
            Kind::Date | Kind::Timestamp => ty == "DATE" || ty.starts_with("TIMESTAMP"),
            Kind::Boolean => ty == "BOOLEAN",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Number => "a number",
            Kind::Date => "a date",
            Kind::Timestamp => "a timestamp",
            Kind::Boolean => "a boolean",
        }
    }
}

use Kind::*;

/// Columns of each mapped view, in order.
pub const VIEWS: &[(&str, &[(&str, Kind)])] = &[
    (
        "ats_people",
        &[
            ("ats_id", Text),
            ("first_name", Text),
            ("last_name", Text),
            ("email", Text),
            ("phone", Text),
        ],
    ),
    (
        "payroll_people",
        &[
            ("payroll_id", Text),
            ("first_name", Text),
            ("last_name", Text),
            ("email", Text),
            ("phone", Text),
            ("hire_date", Date),
            ("terminated", Boolean),
        ],
    ),
    (
        "contact_center_people",
        &[
            ("agent_id", Text),
            ("name", Text),
            ("email", Text),
            ("phone", Text),
            ("team", Text),
            ("supervisor_email", Text),
        ],
    ),
    (
        "hires",
        &[
            ("hire_id", Text),
            ("ats_id", Text),
            ("email", Text),
            ("client", Text),
            ("start_date", Date),
        ],
    ),
    (
        "placements",
        &[
            ("placement_id", Text),
            ("ats_id", Text),
            ("email", Text),
            ("client", Text),
            ("start_date", Date),
            ("fee", Number),
        ],
    ),
    (
        "invoices",
        &[
            ("invoice_id", Text),
            ("number", Text),
            ("customer", Text),
            ("placement_id", Text),
            ("invoice_date", Date),
            ("due_date", Date),
            ("amount", Number),
            ("balance", Number),
        ],
    ),
    (
        "payments",
        &[
            ("payment_id", Text),
            ("invoice_id", Text),
            ("customer", Text),
            ("payment_date", Date),
            ("amount", Number),
        ],
    ),
    (
        "payroll_lines",
        &[
            ("payroll_id", Text),
            ("period_start", Date),
            ("period_end", Date),
            ("hours", Number),
            ("gross", Number),
            ("payment_unit", Text),
            ("off_cycle", Boolean),
        ],
    ),
    (
        "agent_daily",
        &[
            ("agent_id", Text),
            ("day", Date),
            ("contacts", Number),
            ("handle_secs", Number),
            ("csat", Number),
            ("quality_score", Number),
            ("logged_hours", Number),
        ],
    ),
    (
        "evaluations",
        &[
            ("evaluation_id", Text),
            ("agent_id", Text),
            ("evaluated_at", Timestamp),
            ("score", Number),
        ],
    ),
    // One row per customer contact, answered or not: the denominator of an
    // abandon rate (agent sessions alone never see an abandoned call).
    (
        "contacts",
        &[
            ("contact_id", Text),
            ("started_at", Timestamp),
            ("direction", Text),
            ("channel", Text),
            ("queue", Text),
            ("answered", Boolean),
            ("abandoned", Boolean),
            ("agent_id", Text),
            ("wait_secs", Number),
        ],
    ),
];

/// Columns a mapping may leave out: the view holds NULL there. A preset
/// whose optional table is missing leaves these out rather than losing the
/// whole source (a tenant without presence data still has its calls).
pub const OPTIONAL: &[(&str, &str)] = &[
    ("payroll_lines", "payment_unit"),
    ("payroll_lines", "off_cycle"),
    ("agent_daily", "csat"),
    ("agent_daily", "quality_score"),
    ("agent_daily", "logged_hours"),
    ("contacts", "queue"),
    ("contacts", "wait_secs"),
];

pub fn is_optional(view: &str, column: &str) -> bool {
    OPTIONAL.iter().any(|(v, c)| *v == view && *c == column)
}

pub fn columns(view: &str) -> &'static [(&'static str, Kind)] {
    VIEWS
        .iter()
        .find(|(v, _)| *v == view)
        .map(|(_, c)| *c)
        .unwrap_or(&[])
}

/// `name kind, …` for a hint.
pub fn describe_view(view: &str) -> String {
    columns(view)
        .iter()
        .map(|(c, k)| format!("{c} {}", k.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Problems with a mapping whose result has columns `described` (name,
/// DuckDB type): missing columns and kinds that do not fit.
pub fn violations(view: &str, described: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (col, kind) in columns(view) {
        match described.iter().find(|(n, _)| n.eq_ignore_ascii_case(col)) {
            None if is_optional(view, col) => {}
            None => out.push(format!("missing column `{col}` ({})", kind.name())),
            Some((_, ty)) if !kind.accepts(ty) => {
                out.push(format!("column `{col}` is {ty}, expected {}", kind.name()))
            }
            Some(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mapped_view_in_config_has_a_contract() {
        for v in conveyor_config::MAPPED_VIEWS {
            assert!(!columns(v).is_empty(), "{v}");
        }
        assert_eq!(VIEWS.len(), conveyor_config::MAPPED_VIEWS.len());
    }

    #[test]
    fn violations_name_missing_and_mistyped_columns() {
        let d = |cols: &[(&str, &str)]| {
            cols.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        let v = violations(
            "payments",
            &d(&[
                ("payment_id", "BIGINT"),
                ("invoice_id", "VARCHAR"),
                ("customer", "VARCHAR"),
                ("payment_date", "VARCHAR"),
                ("AMOUNT", "DECIMAL(18,2)"),
            ]),
        );
        assert_eq!(
            v,
            vec!["column `payment_date` is VARCHAR, expected a date".to_string()]
        );
        let v = violations("payments", &d(&[("payment_id", "BIGINT")]));
        assert_eq!(v.len(), 4, "{v:?}");
        assert!(v[0].starts_with("missing column `invoice_id`"));
    }
}
