//! The SQL a database stream runs, as text: the probe that learns the
//! columns, and the keyset-paginated chunk query (never `OFFSET`: a chunk
//! costs the same at row 10 million as at row 0).

use conveyor_config::{DatabaseEngine, DatabaseRelation, DatabaseStream};

use super::columns::{Column, Kind};

/// Output column names Conveyor adds for its own bookkeeping: the paging
/// position as text. They never reach the warehouse.
pub(crate) const POSITION_PREFIX: &str = "__conveyor_pos_";

/// Quotes an identifier for `engine`. Config names are plain already
/// (checked at load); column names from the server are quoted with the
/// quote character doubled, so no name can close the quote.
pub(crate) fn quote(engine: DatabaseEngine, name: &str) -> String {
    match engine {
        DatabaseEngine::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
        DatabaseEngine::MySql => format!("`{}`", name.replace('`', "``")),
    }
}

/// The relation as a `FROM` item named `r`.
pub(crate) fn from_item(engine: DatabaseEngine, relation: &DatabaseRelation) -> String {
    match relation {
        DatabaseRelation::Table {
            schema: Some(s),
            table,
        } => format!("{}.{} AS r", quote(engine, s), quote(engine, table)),
        DatabaseRelation::Table {
            schema: None,
            table,
        } => format!("{} AS r", quote(engine, table)),
        DatabaseRelation::Query(q) => format!("({q}) AS r"),
    }
}

/// Reads no rows; its result columns say what the stream holds.
pub(crate) fn probe(engine: DatabaseEngine, relation: &DatabaseRelation) -> String {
    format!("SELECT * FROM {} LIMIT 0", from_item(engine, relation))
}

/// Where a chunk starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Start {
    /// The first row of the relation.
    Beginning,
    /// Strictly after this paging position (cursor then key, as text).
    After(Vec<String>),
    /// Rows whose cursor is at or after this value less the look-back.
    Since { cursor: String, lookback_secs: u64 },
}

/// What a read orders its chunks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// The primary key alone: a full read, which the key's index serves
    /// (paging a whole table by a cursor without an index on (cursor, key)
    /// would sort it once per chunk).
    Key,
    /// The cursor, then the key: an incremental read of the rows whose
    /// cursor moved.
    CursorThenKey,
}

/// The columns a chunk pages by, in order.
pub(crate) fn paging_columns(stream: &DatabaseStream, order: Order) -> Vec<&str> {
    let cursor = match order {
        Order::Key => None,
        Order::CursorThenKey => stream.cursor.as_ref(),
    };
    cursor
        .into_iter()
        .chain(stream.primary_key.iter())
        .map(String::as_str)
        .collect()
}

/// The cursor's highest value now and how many rows have none, as text:
/// taken before a full read, the value is where the next sync starts, so a
/// row changed during the read is read again rather than missed; a row
/// without a cursor value could never be read incrementally.
pub(crate) fn high_water(engine: DatabaseEngine, stream: &DatabaseStream) -> Option<String> {
    let cursor = quote(engine, stream.cursor.as_ref()?);
    Some(format!(
        "SELECT {}, {} FROM {}",
        as_text(engine, &format!("max(r.{cursor})")),
        as_text(engine, &format!("count(*) - count(r.{cursor})")),
        from_item(engine, &stream.relation)
    ))
}

/// One chunk: the stream's columns (cast where the driver needs a common
/// type), the paging position as text, ordered by the paging columns.
/// Parameters are the position values, bound as text and cast back to each
/// column's own type so the comparison is the column's, not text order.
pub(crate) fn chunk(
    engine: DatabaseEngine,
    stream: &DatabaseStream,
    columns: &[Column],
    order: Order,
    start: &Start,
    limit: u32,
) -> String {
    let paging = paging_columns(stream, order);
    let mut select: Vec<String> = columns.iter().map(|c| select_expr(engine, c)).collect();
    for (i, p) in paging.iter().enumerate() {
        select.push(format!(
            "{} AS {}",
            as_text(engine, &format!("r.{}", quote(engine, p))),
            quote(engine, &format!("{POSITION_PREFIX}{i}"))
        ));
    }
    let type_of = |name: &str| -> Option<&str> {
        columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.db_type.as_str())
    };
    let param = |i: usize, name: &str| -> String {
        let p = match engine {
            DatabaseEngine::Postgres => format!("${}", i + 1),
            DatabaseEngine::MySql => "?".into(),
        };
        match (engine, type_of(name)) {
            // Postgres binds text as text: cast it back to the column's type.
            (DatabaseEngine::Postgres, Some(t)) if safe_type_name(t) => {
                format!("CAST({p} AS {t})")
            }
            // MySQL converts a string to the other operand's type itself.
            _ => p,
        }
    };
    let tuple = |items: Vec<String>| -> String {
        if items.len() == 1 {
            items.into_iter().next().expect("one item")
        } else {
            format!("({})", items.join(", "))
        }
    };
    let lhs = tuple(
        paging
            .iter()
            .map(|p| format!("r.{}", quote(engine, p)))
            .collect(),
    );
    let filter = match start {
        Start::Beginning => String::new(),
        Start::After(_) => {
            let rhs = tuple(
                paging
                    .iter()
                    .enumerate()
                    .map(|(i, p)| param(i, p))
                    .collect(),
            );
            format!(" WHERE {lhs} > {rhs}")
        }
        Start::Since { lookback_secs, .. } => {
            let cursor = stream.cursor.as_deref().expect("Since needs a cursor");
            let from = param(0, cursor);
            let timed = columns.iter().find(|c| c.name == cursor).is_some_and(|c| {
                matches!(c.kind, Kind::Timestamp | Kind::TimestampUtc | Kind::Date)
            });
            let from = match (timed && *lookback_secs > 0, engine) {
                (false, _) => from,
                (true, DatabaseEngine::Postgres) => {
                    format!("{from} - make_interval(secs => {lookback_secs})")
                }
                (true, DatabaseEngine::MySql) => {
                    format!("{from} - INTERVAL {lookback_secs} SECOND")
                }
            };
            format!(" WHERE r.{} >= {from}", quote(engine, cursor))
        }
    };
    let order: Vec<String> = paging
        .iter()
        .map(|p| format!("r.{}", quote(engine, p)))
        .collect();
    format!(
        "SELECT {} FROM {}{filter} ORDER BY {} LIMIT {limit}",
        select.join(", "),
        from_item(engine, &stream.relation),
        order.join(", ")
    )
}

/// The position values a chunk query binds, in parameter order.
pub(crate) fn bindings(start: &Start) -> Vec<String> {
    match start {
        Start::Beginning => Vec::new(),
        Start::After(values) => values.clone(),
        Start::Since { cursor, .. } => vec![cursor.clone()],
    }
}

/// Type names the server reported, used in a cast only when they are plain
/// words (a server could name a custom type anything).
fn safe_type_name(t: &str) -> bool {
    !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ' ')
}

fn as_text(engine: DatabaseEngine, expr: &str) -> String {
    match engine {
        DatabaseEngine::Postgres => format!("CAST({expr} AS TEXT)"),
        DatabaseEngine::MySql => format!("CAST({expr} AS CHAR)"),
    }
}

/// A column as the driver reads it: kinds the driver decodes natively to one
/// Rust type stay as they are (after a widening cast where the width varies);
/// the rest arrive as text and are parsed here.
fn select_expr(engine: DatabaseEngine, c: &Column) -> String {
    let col = format!("r.{}", quote(engine, &c.name));
    let name = quote(engine, &c.name);
    let expr = match (c.kind, engine) {
        (Kind::Boolean | Kind::Timestamp | Kind::TimestampUtc | Kind::Date, _) => col,
        (Kind::Integer, DatabaseEngine::Postgres) => format!("CAST({col} AS BIGINT)"),
        (Kind::Integer, DatabaseEngine::MySql) => format!("CAST({col} AS SIGNED)"),
        (Kind::Float, DatabaseEngine::Postgres) => format!("CAST({col} AS DOUBLE PRECISION)"),
        (Kind::Float, DatabaseEngine::MySql) => format!("CAST({col} AS DOUBLE)"),
        (Kind::JsonArray, DatabaseEngine::Postgres) => format!("CAST(to_json({col}) AS TEXT)"),
        (Kind::Decimal(..) | Kind::Json | Kind::JsonArray | Kind::Text, _) => as_text(engine, &col),
    };
    format!("{expr} AS {name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stream(cursor: Option<&str>) -> DatabaseStream {
        DatabaseStream {
            name: "orders".into(),
            relation: DatabaseRelation::Table {
                schema: Some("sales".into()),
                table: "orders".into(),
            },
            primary_key: vec!["id".into()],
            cursor: cursor.map(str::to_string),
            lookback: Duration::ZERO,
            soft_delete: None,
        }
    }

    fn columns() -> Vec<Column> {
        vec![
            Column::new("id", "INT8", Kind::Integer),
            Column::new("total", "NUMERIC", Kind::Decimal(12, 2)),
            Column::new("updated_at", "TIMESTAMPTZ", Kind::TimestampUtc),
        ]
    }

    #[test]
    fn a_resumed_chunk_pages_after_the_position_in_the_columns_own_types() {
        let sql = chunk(
            DatabaseEngine::Postgres,
            &stream(Some("updated_at")),
            &columns(),
            Order::CursorThenKey,
            &Start::After(vec!["2024-01-01 00:00:00+00".into(), "7".into()]),
            500,
        );
        assert_eq!(
            sql,
            "SELECT CAST(r.\"id\" AS BIGINT) AS \"id\", CAST(r.\"total\" AS TEXT) AS \"total\", \
             r.\"updated_at\" AS \"updated_at\", CAST(r.\"updated_at\" AS TEXT) AS \"__conveyor_pos_0\", \
             CAST(r.\"id\" AS TEXT) AS \"__conveyor_pos_1\" FROM \"sales\".\"orders\" AS r \
             WHERE (r.\"updated_at\", r.\"id\") > (CAST($1 AS TIMESTAMPTZ), CAST($2 AS INT8)) \
             ORDER BY r.\"updated_at\", r.\"id\" LIMIT 500"
        );
    }

    #[test]
    fn a_new_sync_starts_at_the_cursor_less_the_lookback_and_never_uses_offset() {
        let mut s = stream(Some("updated_at"));
        s.relation = DatabaseRelation::Query("SELECT * FROM orders WHERE region = 'eu'".into());
        let sql = chunk(
            DatabaseEngine::MySql,
            &s,
            &columns(),
            Order::CursorThenKey,
            &Start::Since {
                cursor: "2024-01-01 00:00:00".into(),
                lookback_secs: 300,
            },
            100,
        );
        assert!(
            sql.contains(
                "FROM (SELECT * FROM orders WHERE region = 'eu') AS r WHERE r.`updated_at` >= ? - INTERVAL 300 SECOND ORDER BY r.`updated_at`, r.`id` LIMIT 100"
            ),
            "{sql}"
        );
        assert!(!sql.to_uppercase().contains("OFFSET"), "{sql}");
    }

    #[test]
    fn a_full_read_pages_by_the_key_alone() {
        let sql = chunk(
            DatabaseEngine::Postgres,
            &stream(Some("updated_at")),
            &columns(),
            Order::Key,
            &Start::After(vec!["7".into()]),
            500,
        );
        assert!(
            sql.ends_with("WHERE r.\"id\" > CAST($1 AS INT8) ORDER BY r.\"id\" LIMIT 500"),
            "{sql}"
        );
    }

    #[test]
    fn a_column_name_from_the_server_cannot_close_its_quote() {
        assert_eq!(quote(DatabaseEngine::Postgres, "a\"b"), "\"a\"\"b\"");
        assert_eq!(quote(DatabaseEngine::MySql, "a`b"), "`a``b`");
    }
}
