//! Silences: `conveyor silence add RULE [ENTITY] --for 7d --reason TEXT`
//! holds back a rule's notifications (for one entity, or all) until it
//! expires or is removed. Alert state keeps moving underneath; an alert
//! still firing when the silence ends is announced then.

use chrono::NaiveDateTime;
use duckdb::Connection;

/// What `silence add` asks for.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NewSilence {
    pub rule: String,
    /// `None`: every entity of the rule.
    pub entity: Option<String>,
    pub seconds: u64,
    pub reason: String,
    /// Who asked (amtool's `--author`); recorded with the silence.
    pub author: String,
}

/// The longest silence accepted: a year. Longer is a rule to change.
pub const MAX_SECONDS: u64 = 366 * 24 * 3600;

/// Checks a silence against the config before it is recorded: the rule
/// exists, the duration is between a second and a year, and there is an
/// author and a reason.
pub fn validate(config: &conveyor_config::Config, s: &NewSilence) -> Result<(), String> {
    if !config.rules.iter().any(|r| r.name == s.rule) {
        let known: Vec<&str> = config.rules.iter().map(|r| r.name.as_str()).collect();
        return Err(format!(
            "no rule named `{}`; configured: {}",
            s.rule,
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    }
    if s.seconds == 0 || s.seconds > MAX_SECONDS {
        return Err(format!(
            "a silence lasts between 1 second and 366 days, not {} seconds",
            s.seconds
        ));
    }
    if s.reason.trim().is_empty() {
        return Err("a silence needs a reason (--reason)".into());
    }
    if s.author.trim().is_empty() {
        return Err("a silence needs an author (--author)".into());
    }
    if s.entity.as_deref().is_some_and(|e| e.trim().is_empty()) {
        return Err(
            "an empty entity silences nothing; leave it out to silence every entity".into(),
        );
    }
    Ok(())
}

/// Records a silence starting at `now`; returns its id.
pub fn add(conn: &Connection, s: &NewSilence, now: NaiveDateTime) -> duckdb::Result<i64> {
    conn.query_row(
        "INSERT INTO conveyor.silences
             (id, rule, entity, reason, starts_at, expires_at, removed_at, created_by)
         SELECT nextval('conveyor.silence_ids'), ?, ?, ?, CAST(? AS TIMESTAMP),
                CAST(? AS TIMESTAMP) + to_seconds(CAST(? AS BIGINT)), NULL, ?
         RETURNING id",
        duckdb::params![
            s.rule,
            s.entity,
            s.reason,
            crate::warehouse::timestamp_text(now),
            crate::warehouse::timestamp_text(now),
            s.seconds as i64,
            s.author
        ],
        |r| r.get(0),
    )
}

/// Lifts silence `id` at `now`; false when there is no such silence in force.
pub fn remove(conn: &Connection, id: i64, now: NaiveDateTime) -> duckdb::Result<bool> {
    let changed = conn.execute(
        "UPDATE conveyor.silences SET removed_at = CAST(? AS TIMESTAMP)
         WHERE id = ? AND removed_at IS NULL AND expires_at > CAST(? AS TIMESTAMP)",
        duckdb::params![
            crate::warehouse::timestamp_text(now),
            id,
            crate::warehouse::timestamp_text(now)
        ],
    )?;
    Ok(changed > 0)
}

/// The silences in force, soonest to expire first (read through the
/// daemon's endpoint or from the file, like `conveyor alerts`).
pub const LIST_SQL: &str =
    "SELECT id, rule, coalesce(entity, '(all)') AS entity, reason, created_by AS author, starts_at, expires_at
     FROM conveyor.silences
     WHERE removed_at IS NULL AND expires_at > CAST(now() AS TIMESTAMP)
     ORDER BY expires_at, id";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::warehouse::Warehouse;

    #[test]
    fn silence_add_lists_and_remove_lifts_only_a_silence_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let wh = Warehouse::open(&dir.path().join("wh.duckdb")).unwrap();
        let conn = wh.connection().unwrap();
        let now = chrono::Utc::now().naive_utc();
        let s = NewSilence {
            rule: "csat".into(),
            entity: Some("ann".into()),
            seconds: 7 * 86_400,
            reason: "on leave".into(),
            author: "lead".into(),
        };
        let id = add(&conn, &s, now).unwrap();
        let second = add(
            &conn,
            &NewSilence {
                entity: None,
                seconds: 60,
                ..s.clone()
            },
            now,
        )
        .unwrap();
        assert_eq!(second, id + 1);
        let listed: Vec<(i64, String)> = conn
            .prepare(LIST_SQL)
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(listed, [(second, "(all)".into()), (id, "ann".into())]);
        let days: i64 = conn
            .query_row(
                "SELECT date_diff('day', starts_at, expires_at) FROM conveyor.silences WHERE id = ?",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(days, 7);
        assert!(remove(&conn, id, now).unwrap());
        assert!(!remove(&conn, id, now).unwrap(), "already lifted");
        assert!(!remove(&conn, 999, now).unwrap(), "no such silence");
        let later = now + chrono::Duration::seconds(120);
        assert!(!remove(&conn, second, later).unwrap(), "already expired");
    }

    #[test]
    fn silence_validate_refuses_unknown_rules_bad_durations_and_anonymity() {
        let config = conveyor_config::parse_offline(
            "[warehouse]\npath = \"w.duckdb\"\n[[rules]]\nname = \"csat\"\nmeasure = \"SELECT 1\"\ndirection = \"below\"\nwarn = 2.0\n",
            std::path::Path::new("/x/conveyor.toml"),
        )
        .unwrap();
        let ok = NewSilence {
            rule: "csat".into(),
            entity: None,
            seconds: 3600,
            reason: "migration".into(),
            author: "lead".into(),
        };
        assert_eq!(validate(&config, &ok), Ok(()));
        let bad = |s: NewSilence| validate(&config, &s).unwrap_err();
        assert!(bad(NewSilence {
            rule: "nope".into(),
            ..ok.clone()
        })
        .contains("no rule named `nope`"));
        assert!(bad(NewSilence {
            seconds: 0,
            ..ok.clone()
        })
        .contains("between 1 second"));
        assert!(bad(NewSilence {
            seconds: MAX_SECONDS + 1,
            ..ok.clone()
        })
        .contains("366 days"));
        assert!(bad(NewSilence {
            reason: " ".into(),
            ..ok.clone()
        })
        .contains("reason"));
        assert!(bad(NewSilence {
            author: "".into(),
            ..ok.clone()
        })
        .contains("author"));
    }
}
