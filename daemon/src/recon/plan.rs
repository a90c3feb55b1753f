//! The SQL of one reconciliation run, built from its config: pure text, so
//! the whole comparison happens set-based inside DuckDB.
//!
//! The steps, each one statement:
//! 1. `recon_l` / `recon_r`: each side's rows with a row id, normalised keys,
//!    a printable key and the compared values;
//! 2. `recon_p`: every (left, right) pair whose keys match, with how many
//!    partners each row has — more than one on the 1:1 side is a duplicate;
//! 3. results: compared pairs (1:1) or allocations (1:N), then the rows
//!    nobody paired with, all inserted into `conveyor.recon_results`.

use conveyor_config::{Cardinality, ComparePair, Normalize, Pairing, ReconcileConfig, Tolerance};

use crate::warehouse::literal;

/// Statements that prepare the temporary tables.
pub fn prepare(cfg: &ReconcileConfig) -> Vec<String> {
    let windowed = cfg.keys.iter().any(|k| k.window_days.is_some());
    let mut out = Vec::new();
    for (table, side) in [("recon_l", Side::Left), ("recon_r", Side::Right)] {
        let relation = match side {
            Side::Left => cfg.left.from_item(),
            Side::Right => cfg.right.from_item(),
        };
        let mut cols = vec!["row_number() OVER () AS rid".to_string()];
        let mut exact = Vec::new();
        let mut display = Vec::new();
        for (i, k) in cfg.keys.iter().enumerate() {
            let expr = side.pick(&k.left, &k.right);
            match k.window_days {
                Some(_) => {
                    cols.push(format!("CAST({expr} AS DATE) AS w{i}"));
                    display.push(format!("CAST(w{i} AS VARCHAR)"));
                }
                None => {
                    cols.push(format!("{} AS k{i}", normalised(expr, &k.normalize)));
                    // The key as written, for the people who read an
                    // exception (a normalised key is only for matching).
                    if !k.normalize.is_empty() {
                        cols.push(format!("CAST({expr} AS VARCHAR) AS o{i}"));
                    }
                    if !k.optional {
                        exact.push(format!("k{i}"));
                    }
                    display.push(format!("k{i}"));
                }
            }
        }
        for (i, c) in cfg.compare.iter().enumerate() {
            cols.push(format!("{} AS c{i}", side.pick(&c.left, &c.right)));
        }
        // Rows sharing an exact key on their own side. With a date window,
        // the same client twice is normal, so only partner counts decide; on
        // the many side of 1:N, sharing the key is the point. A row without
        // a key pairs with nothing and is missing, not a duplicate.
        let many = matches!(
            (side, cfg.cardinality),
            (Side::Right, Cardinality::OneToMany)
        );
        let best = cfg.pairing == Pairing::Best;
        let same_key = if windowed || many || best {
            "1".to_string()
        } else {
            let any_null: Vec<String> = exact.iter().map(|k| format!("{k} IS NULL")).collect();
            format!(
                "CASE WHEN {} THEN 1 ELSE count(*) OVER (PARTITION BY {}) END",
                any_null.join(" OR "),
                exact.join(", ")
            )
        };
        out.push(format!(
            "CREATE OR REPLACE TEMP TABLE {table} AS \
             SELECT *, concat_ws('|', {display}) AS key_text, {same_key} AS n_same_key \
             FROM (SELECT {cols} FROM {relation} AS src)",
            display = display.join(", "),
            cols = cols.join(", "),
        ));
    }
    let mut on: Vec<String> = Vec::new();
    let mut ids_match: Vec<String> = Vec::new();
    let mut ids_absent: Vec<String> = Vec::new();
    let mut days: Vec<String> = Vec::new();
    for (i, k) in cfg.keys.iter().enumerate() {
        match k.window_days {
            Some(d) => {
                on.push(format!("abs(date_diff('day', l.w{i}, r.w{i})) <= {d}"));
                days.push(format!(
                    "coalesce(abs(date_diff('day', l.w{i}, r.w{i})), 0)"
                ));
            }
            None if k.optional => {
                ids_match.push(format!("l.k{i} = r.k{i}"));
                ids_absent.push(format!("l.k{i} IS NULL OR r.k{i} IS NULL"));
            }
            None => on.push(format!("l.k{i} = r.k{i}")),
        }
    }
    let on = on.join(" AND ");
    let condition = if ids_match.is_empty() {
        on
    } else {
        // Rows that both carry the id pair on it alone; others by the keys.
        format!(
            "({}) OR (({}) AND {on})",
            ids_match.join(" AND "),
            ids_absent.join(" OR ")
        )
    };
    match cfg.pairing {
        Pairing::All => out.push(format!(
            "CREATE OR REPLACE TEMP TABLE recon_p AS \
             SELECT l.rid AS lrid, r.rid AS rrid, \
                    count(*) OVER (PARTITION BY l.rid) AS n_for_left, \
                    count(*) OVER (PARTITION BY r.rid) AS n_for_right \
             FROM recon_l l JOIN recon_r r ON {condition}"
        )),
        Pairing::Best => {
            // Candidates with their closeness; `assign_round` then takes
            // the pairs that are each other's closest, round after round.
            let id_miss = if ids_match.is_empty() {
                "0".to_string()
            } else {
                format!("CASE WHEN {} THEN 0 ELSE 1 END", ids_match.join(" AND "))
            };
            let days = if days.is_empty() {
                "0".to_string()
            } else {
                days.join(" + ")
            };
            let delta: Vec<String> = (0..cfg.compare.len())
                .map(|i| {
                    format!(
                        "coalesce(abs(TRY_CAST(r.c{i} AS DOUBLE) - TRY_CAST(l.c{i} AS DOUBLE)), 0)"
                    )
                })
                .collect();
            let delta = if delta.is_empty() {
                "0".to_string()
            } else {
                delta.join(" + ")
            };
            out.push(format!(
                "CREATE OR REPLACE TEMP TABLE recon_c AS \
                 SELECT l.rid AS lrid, r.rid AS rrid, {id_miss} AS id_miss, {days} AS days, {delta} AS delta \
                 FROM recon_l l JOIN recon_r r ON {condition}"
            ));
            out.push(
                "CREATE OR REPLACE TEMP TABLE recon_p (lrid BIGINT, rrid BIGINT, n_for_left BIGINT, n_for_right BIGINT)"
                    .into(),
            );
        }
    }
    out
}

/// One round of best pairing: every still-free candidate pair in which
/// each row is the other's closest (ties by row order) becomes a pair. The
/// closest free pair overall always qualifies, so each round pairs at
/// least one until no candidates are left; run it until it inserts none.
pub const ASSIGN_ROUND: &str = "INSERT INTO recon_p \
     SELECT lrid, rrid, 1, 1 FROM ( \
       SELECT lrid, rrid, \
              row_number() OVER (PARTITION BY lrid ORDER BY id_miss, days, delta, rrid) AS for_left, \
              row_number() OVER (PARTITION BY rrid ORDER BY id_miss, days, delta, lrid) AS for_right \
       FROM recon_c \
       WHERE lrid NOT IN (SELECT lrid FROM recon_p) AND rrid NOT IN (SELECT rrid FROM recon_p)) \
     WHERE for_left = 1 AND for_right = 1";

/// The statement that writes every result row of run `run_id`.
pub fn insert_results(cfg: &ReconcileConfig, run_id: i64) -> String {
    let head = format!(
        "INSERT INTO conveyor.recon_results (run_id, reconciliation, status, left_key, right_key, differences, left_row, right_row) \
         SELECT {run_id}, {name}, status, left_key, right_key, differences, left_row, right_row FROM (",
        name = literal(&cfg.name)
    );
    let rows = Rows::of(cfg);
    let unpaired = format!(
        "SELECT CASE WHEN n_same_key > 1 THEN 'duplicate' ELSE 'missing_right' END AS status, \
                key_text AS left_key, NULL AS right_key, NULL::JSON AS differences, \
                {left} AS left_row, NULL::JSON AS right_row \
         FROM recon_l WHERE rid NOT IN (SELECT lrid FROM recon_p) \
         UNION ALL \
         SELECT CASE WHEN n_same_key > 1 THEN 'duplicate' ELSE 'missing_left' END, \
                NULL, key_text, NULL::JSON, NULL::JSON, {right} \
         FROM recon_r WHERE rid NOT IN (SELECT rrid FROM recon_p)",
        left = rows.object(Side::Left, |i| key_value(cfg, i), |i| format!("c{i}")),
        right = rows.object(Side::Right, |i| key_value(cfg, i), |i| format!("c{i}")),
    );
    let paired = match cfg.cardinality {
        Cardinality::OneToOne => one_to_one(cfg, &rows),
        Cardinality::OneToMany => one_to_many(cfg, &rows),
    };
    format!("{head}{paired} UNION ALL {unpaired})")
}

/// Each pair is compared; a row with several partners is a duplicate.
fn one_to_one(cfg: &ReconcileConfig, row: &Rows) -> String {
    let compare = &cfg.compare;
    let values: String = (0..compare.len())
        .map(|i| format!(", l.c{i} AS l{i}, r.c{i} AS r{i}"))
        .chain((0..cfg.keys.len()).map(|i| {
            let v = key_value(cfg, i);
            format!(", l.{v} AS lk{i}, r.{v} AS rk{i}")
        }))
        .collect();
    judged(
        compare,
        row,
        &format!(
            "SELECT p.n_for_left > 1 OR p.n_for_right > 1 OR l.n_same_key > 1 OR r.n_same_key > 1 AS dup, \
                    l.key_text AS left_key, r.key_text AS right_key{values} \
             FROM recon_p p JOIN recon_l l ON l.rid = p.lrid JOIN recon_r r ON r.rid = p.rrid"
        ),
    )
}

/// The right rows paired with one left row are summed, then compared. A
/// right row claimed by two left rows makes both duplicates.
fn one_to_many(cfg: &ReconcileConfig, row: &Rows) -> String {
    let compare = &cfg.compare;
    let values: String = (0..compare.len())
        .map(|i| format!(", any_value(l.c{i}) AS l{i}, sum(r.c{i}) AS r{i}"))
        .chain((0..cfg.keys.len()).map(|i| {
            let v = key_value(cfg, i);
            format!(", any_value(l.{v}) AS lk{i}, min(r.{v}) AS rk{i}")
        }))
        .collect();
    judged(
        compare,
        row,
        &format!(
            "SELECT bool_or(p.n_for_right > 1 OR l.n_same_key > 1 OR r.n_same_key > 1) AS dup, \
                    any_value(l.key_text) AS left_key, min(r.key_text) AS right_key{values} \
             FROM recon_p p JOIN recon_l l ON l.rid = p.lrid JOIN recon_r r ON r.rid = p.rrid \
             GROUP BY p.lrid"
        ),
    )
}

/// The column of `recon_l`/`recon_r` holding key `i` as written: the raw
/// text of a normalised key, the date of a window key, else the key.
fn key_value(cfg: &ReconcileConfig, i: usize) -> String {
    let k = &cfg.keys[i];
    if k.window_days.is_some() {
        format!("w{i}")
    } else if !k.normalize.is_empty() {
        format!("o{i}")
    } else {
        format!("k{i}")
    }
}

/// How an exception's rows are kept (`left_row`, `right_row`): a JSON
/// object per side of its keys as written and its compared values, under
/// the names `ReconcileConfig::row_columns` gives them.
struct Rows {
    columns: conveyor_config::reconcile::RowColumns,
}

impl Rows {
    fn of(cfg: &ReconcileConfig) -> Rows {
        Rows {
            columns: cfg.row_columns(),
        }
    }

    /// `json_object(…)` over key columns `key(i)` and compared `value(i)`.
    fn object(
        &self,
        side: Side,
        key: impl Fn(usize) -> String,
        value: impl Fn(usize) -> String,
    ) -> String {
        let keys = match side {
            Side::Left => &self.columns.left_keys,
            Side::Right => &self.columns.right_keys,
        };
        let pairs: Vec<String> = keys
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| format!("{}, {}", literal(n), key(i))))
            .chain(
                self.columns
                    .compare
                    .iter()
                    .enumerate()
                    .map(|(i, n)| format!("{}, {}", literal(n), value(i))),
            )
            .collect();
        format!("json_object({})", pairs.join(", "))
    }
}

/// Status and differences for `rows`, a query yielding `dup`, `left_key`,
/// `right_key`, the compared values `l0, r0, l1, r1, …` and the keys as
/// written `lk0, rk0, …`. Each column's state is computed once (in a
/// subquery), and the JSON (differences, rows) only for rows that differ:
/// building JSON is most of a run's cost.
fn judged(compare: &[ComparePair], row: &Rows, rows: &str) -> String {
    let left_row = row.object(Side::Left, |i| format!("lk{i}"), |i| format!("l{i}"));
    let right_row = row.object(Side::Right, |i| format!("rk{i}"), |i| format!("r{i}"));
    if compare.is_empty() {
        return format!(
            "SELECT CASE WHEN dup THEN 'duplicate' ELSE 'matched' END AS status, left_key, right_key, \
                    NULL::JSON AS differences, \
                    CASE WHEN dup THEN {left_row} END AS left_row, \
                    CASE WHEN dup THEN {right_row} END AS right_row FROM ({rows})"
        );
    }
    let mut states = Vec::new();
    let mut entries = Vec::new();
    for (i, c) in compare.iter().enumerate() {
        let (state, delta) = column_state(&format!("l{i}"), &format!("r{i}"), c.tolerance);
        states.push(format!("{state} AS s{i}"));
        entries.push(format!(
            "CASE WHEN s{i} > 0 THEN json_object('column', {name}, 'left', CAST(l{i} AS VARCHAR), \
                    'right', CAST(r{i} AS VARCHAR), 'delta', {delta}, \
                    'status', CASE s{i} WHEN 1 THEN 'within_tolerance' ELSE 'mismatched' END) END",
            name = literal(&c.name)
        ));
    }
    let worst = if compare.len() == 1 {
        "s0".to_string()
    } else {
        format!(
            "greatest({})",
            (0..compare.len())
                .map(|i| format!("s{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    format!(
        "SELECT CASE WHEN dup THEN 'duplicate' \
                     ELSE CASE {worst} WHEN 0 THEN 'matched' WHEN 1 THEN 'matched_within_tolerance' ELSE 'mismatched' END \
                END AS status, left_key, right_key, \
                CASE WHEN dup OR {worst} = 0 THEN NULL \
                     ELSE CAST('[' || concat_ws(',', {entries}) || ']' AS JSON) END AS differences, \
                CASE WHEN dup OR {worst} > 0 THEN {left_row} END AS left_row, \
                CASE WHEN dup OR {worst} > 0 THEN {right_row} END AS right_row \
         FROM (SELECT *, {states} FROM ({rows}))",
        entries = entries.join(", "),
        states = states.join(", "),
    )
}

/// `(state, delta)` SQL for one compared column: state 0 equal, 1 within
/// tolerance, 2 mismatched. Deltas are rounded to 9 decimals so that float
/// noise (10.3 − 10.0 = 0.30000000000000071) does not push a difference
/// exactly at the limit past it.
fn column_state(l: &str, r: &str, tolerance: Tolerance) -> (String, String) {
    let abs_delta = format!("round(abs(CAST({r} AS DOUBLE) - CAST({l} AS DOUBLE)), 9)");
    let signed_delta = format!("round(CAST({r} AS DOUBLE) - CAST({l} AS DOUBLE), 9)");
    let days = format!("date_diff('day', CAST({l} AS DATE), CAST({r} AS DATE))");
    let (equal, within, delta) = match tolerance {
        Tolerance::Exact => (
            format!("{l} IS NOT DISTINCT FROM {r}"),
            "false".to_string(),
            "NULL::DOUBLE".to_string(),
        ),
        Tolerance::Absolute(t) => (
            format!("{abs_delta} = 0"),
            format!("{abs_delta} <= {}", float(t)),
            signed_delta,
        ),
        Tolerance::Percent(p) => (
            format!("{abs_delta} = 0"),
            format!(
                "{abs_delta} <= round({} * abs(CAST({l} AS DOUBLE)) / 100.0, 9)",
                float(p)
            ),
            signed_delta,
        ),
        Tolerance::Days(d) => (
            format!("{days} = 0"),
            format!("abs({days}) <= {d}"),
            format!("CAST({days} AS DOUBLE)"),
        ),
    };
    // Two NULLs agree; one NULL never does (the comparisons yield NULL).
    let state = format!(
        "(CASE WHEN {l} IS NULL AND {r} IS NULL THEN 0 WHEN coalesce({equal}, false) THEN 0 \
               WHEN coalesce({within}, false) THEN 1 ELSE 2 END)"
    );
    (state, delta)
}

fn float(x: f64) -> String {
    // `{:?}` keeps a decimal point (1.0), so DuckDB reads a DOUBLE.
    format!("CAST({x:?} AS DOUBLE)")
}

/// A key expression cast to text and normalised in the configured order.
fn normalised(expr: &str, steps: &[Normalize]) -> String {
    let mut e = format!("CAST({expr} AS VARCHAR)");
    for step in steps {
        e = match step {
            Normalize::Trim => format!(
                "regexp_replace({e}, '^{j}+|{j}+$', '', 'g')",
                j = crate::model::EMAIL_JUNK
            ),
            Normalize::Email => format!(
                "lower(regexp_replace({e}, '{j}', '', 'g'))",
                j = crate::model::EMAIL_JUNK
            ),
            Normalize::Lower => format!("lower({e})"),
            Normalize::Digits => format!("regexp_replace({e}, '[^0-9]', '', 'g')"),
        };
    }
    if steps.is_empty() {
        e
    } else {
        // A value that normalises to nothing is no key at all.
        format!("nullif({e}, '')")
    }
}

#[derive(Clone, Copy)]
enum Side {
    Left,
    Right,
}

impl Side {
    fn pick<'a>(self, left: &'a str, right: &'a str) -> &'a str {
        match self {
            Side::Left => left,
            Side::Right => right,
        }
    }
}

/// Used by the unit tests to build configs briefly.
#[cfg(test)]
pub(crate) fn key(left: &str, right: &str, normalize: &[Normalize]) -> conveyor_config::KeyPair {
    conveyor_config::KeyPair {
        left: left.into(),
        right: right.into(),
        normalize: normalize.to_vec(),
        window_days: None,
        optional: false,
    }
}
