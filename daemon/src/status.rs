//! `conveyor status`: per source and stream, the last run and the cursor.

/// One row per stream that has ever run: its latest run and saved cursor.
pub const STATUS_SQL: &str = r#"
WITH latest AS (
    SELECT *, row_number() OVER (PARTITION BY source, stream ORDER BY run_id DESC) AS rn
    FROM conveyor.runs
)
SELECT l.source,
       l.stream,
       strftime(l.started_at, '%Y-%m-%d %H:%M:%SZ') AS last_run,
       l.status AS state,
       l.rows,
       l.rejected,
       round(epoch(coalesce(l.finished_at, make_timestamp(epoch_us(now())))) - epoch(l.started_at), 2) AS seconds,
       l.error,
       json_extract_string(s.state, '$.cursor') AS cursor
FROM latest l
LEFT JOIN conveyor.stream_state s USING (source, stream)
WHERE l.rn = 1
ORDER BY l.source, l.stream
"#;
