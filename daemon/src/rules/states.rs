//! The words of the alert ledger as types: a result row's level, an
//! alert's state, and why a notification is due. The warehouse stores them
//! as text (`conveyor.rule_results.level`, `conveyor.alerts.state`, the
//! evaluation's `notify` column); Rust code reads them into these and
//! compares variants, so a misspelt state is a compile error, not an alert
//! that never resolves.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Declares a text-backed enum: its variants with their stored words,
/// `ALL` in report order, `as_str`, `parse` and `Display`.
macro_rules! stored_words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every variant, in report order.
            #[allow(dead_code)] // generated for each list; not every one is iterated
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word stored in the warehouse.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }

            /// The variant a stored word names.
            #[allow(dead_code)] // generated for each list; not every one is read back
            pub fn parse(word: &str) -> Option<$name> {
                match word {
                    $($word => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

stored_words! {
    /// How one result row of a measure compares with the rule's thresholds.
    Level {
        Ok = "ok",
        Warn = "warn",
        Critical = "critical",
        /// The entity has no value for the period.
        NoData = "no_data",
    }
}

stored_words! {
    /// Where an alert is in its lifecycle.
    AlertState {
        /// Breaching, but not yet for the rule's `for` evaluations.
        Pending = "pending",
        Firing = "firing",
        Resolved = "resolved",
    }
}

stored_words! {
    /// Why an evaluation owes a notification about an alert.
    Due {
        /// It started firing and has not been announced.
        Firing = "firing",
        /// Still firing, and the rule's `repeat` interval has passed.
        Repeat = "repeat",
        /// Announced as warn, now critical.
        Escalated = "escalated",
        /// It resolved and the rule has `notify_resolved`.
        Resolved = "resolved",
    }
}

impl Level {
    /// The levels an alert fires at.
    pub const ALERTING: [Level; 2] = [Level::Warn, Level::Critical];
}

impl Due {
    /// What the notification is about, for `conveyor alerts preview`.
    pub fn describe(self) -> &'static str {
        match self {
            Due::Firing => "started firing, not announced yet",
            Due::Repeat => "still firing: a reminder is due (`repeat`)",
            Due::Escalated => "escalated from warn to critical since it was announced",
            Due::Resolved => "resolved (`notify_resolved`)",
        }
    }
}

impl duckdb::types::FromSql for AlertState {
    fn column_result(value: duckdb::types::ValueRef<'_>) -> duckdb::types::FromSqlResult<Self> {
        from_word(value, AlertState::parse)
    }
}

impl duckdb::types::FromSql for Due {
    fn column_result(value: duckdb::types::ValueRef<'_>) -> duckdb::types::FromSqlResult<Self> {
        from_word(value, Due::parse)
    }
}

impl duckdb::types::ToSql for Level {
    fn to_sql(&self) -> duckdb::Result<duckdb::types::ToSqlOutput<'_>> {
        Ok(duckdb::types::ToSqlOutput::from(self.as_str()))
    }
}

/// A stored word read back; a word this build does not know is an error
/// (a newer version wrote it), never a silent default.
fn from_word<T>(
    value: duckdb::types::ValueRef<'_>,
    parse: fn(&str) -> Option<T>,
) -> duckdb::types::FromSqlResult<T> {
    let word = value.as_str()?;
    parse(word).ok_or_else(|| {
        duckdb::types::FromSqlError::Other(
            format!("unknown word `{word}` in the alert ledger").into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_parses_back_to_its_variant() {
        for l in Level::ALL {
            assert_eq!(Level::parse(l.as_str()), Some(*l));
        }
        for s in AlertState::ALL {
            assert_eq!(AlertState::parse(s.as_str()), Some(*s));
        }
        for d in Due::ALL {
            assert_eq!(Due::parse(d.as_str()), Some(*d));
        }
        assert_eq!(Level::parse("Warn"), None);
        assert_eq!(
            serde_json::to_string(&Level::NoData).unwrap(),
            "\"no_data\""
        );
    }

    #[test]
    fn states_read_from_the_warehouse_and_an_unknown_word_is_an_error() {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        let state: AlertState = conn.query_row("SELECT 'firing'", [], |r| r.get(0)).unwrap();
        assert_eq!(state, AlertState::Firing);
        let wrong = conn.query_row("SELECT 'fiering'", [], |r| r.get::<_, AlertState>(0));
        assert!(wrong.unwrap_err().to_string().contains("fiering"));
        let level: String = conn
            .query_row("SELECT ?", [Level::Critical], |r| r.get(0))
            .unwrap();
        assert_eq!(level, "critical");
    }
}
