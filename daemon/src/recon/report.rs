//! What `conveyor recon` and the demo print: the SQL for a per-run summary
//! and for the top exceptions, read from `conveyor.recon_runs` and
//! `conveyor.recon_results` so a run's report can be shown again later.

use crate::warehouse::literal;

/// How many exceptions are listed per reconciliation.
pub const TOP_EXCEPTIONS: usize = 10;

/// Which runs a report covers.
pub enum Runs<'a> {
    /// These run ids (the runs just made; the demo prints them).
    #[cfg_attr(not(feature = "demo"), allow(dead_code))]
    Ids(&'a [i64]),
    /// The latest run of each reconciliation, or of the one named.
    Latest(Option<&'a str>),
}

impl Runs<'_> {
    fn predicate(&self) -> String {
        match self {
            Runs::Ids([]) => "false".into(),
            Runs::Ids(ids) => format!(
                "run_id IN ({})",
                ids.iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Runs::Latest(name) => {
                let filter = name
                    .map(|n| format!("WHERE reconciliation = {}", literal(n)))
                    .unwrap_or_default();
                format!("run_id IN (SELECT max(run_id) FROM conveyor.recon_runs {filter} GROUP BY reconciliation)")
            }
        }
    }
}

/// One row per run: the counts per status.
pub fn summary_sql(runs: &Runs) -> String {
    format!(
        "SELECT reconciliation, run_id, status AS run, left_rows AS \"left\", right_rows AS \"right\", matched, \
                matched_within_tolerance AS within_tol, missing_left, missing_right, mismatched, duplicate, \
                coalesce(error, '') AS error \
         FROM conveyor.recon_runs WHERE {} ORDER BY reconciliation",
        runs.predicate()
    )
}

/// The worst exceptions first: mismatches, then rows one side lacks, then
/// duplicates; at most [`TOP_EXCEPTIONS`] per reconciliation.
pub fn exceptions_sql(runs: &Runs) -> String {
    format!(
        "SELECT reconciliation, status, left_key, right_key, CAST(differences AS VARCHAR) AS differences FROM ( \
           SELECT *, row_number() OVER (PARTITION BY run_id ORDER BY \
                  CASE status WHEN 'mismatched' THEN 0 WHEN 'missing_right' THEN 1 WHEN 'missing_left' THEN 2 ELSE 3 END, \
                  left_key NULLS LAST, right_key) AS n \
           FROM conveyor.recon_results \
           WHERE {} AND status NOT IN ('matched', 'matched_within_tolerance')) \
         WHERE n <= {TOP_EXCEPTIONS} ORDER BY reconciliation, n",
        runs.predicate()
    )
}
