//! `conveyor status`: per source and stream, the last run, the last success
//! and the failure streak since, and the cursor; then the outbox — what
//! waits to be sent and what was given up on.

/// One row per stream that has ever run: its latest run, its last success
/// and how many runs have failed since (a failure streak), and its saved
/// cursor.
pub const STATUS_SQL: &str = r#"
WITH latest AS (
    SELECT *, row_number() OVER (PARTITION BY source, stream ORDER BY run_id DESC) AS rn
    FROM conveyor.runs
),
ok AS (
    SELECT source, stream,
           max(finished_at) FILTER (WHERE status = 'succeeded') AS last_success,
           coalesce(max(run_id) FILTER (WHERE status = 'succeeded'), 0) AS last_ok_id
    FROM conveyor.runs
    GROUP BY source, stream
),
streak AS (
    SELECT r.source, r.stream, count(*) AS failures
    FROM conveyor.runs r JOIN ok USING (source, stream)
    WHERE r.status = 'failed' AND r.run_id > ok.last_ok_id
    GROUP BY r.source, r.stream
)
SELECT l.source,
       l.stream,
       strftime(l.started_at, '%Y-%m-%d %H:%M:%SZ') AS last_run,
       l.status AS state,
       l.rows,
       l.rejected,
       round(epoch(coalesce(l.finished_at, make_timestamp(epoch_us(now())))) - epoch(l.started_at), 2) AS seconds,
       strftime(ok.last_success, '%Y-%m-%d %H:%M:%SZ') AS last_success,
       coalesce(streak.failures, 0) AS failures,
       l.error,
       json_extract_string(s.state, '$.cursor') AS cursor
FROM latest l
JOIN ok USING (source, stream)
LEFT JOIN streak USING (source, stream)
LEFT JOIN conveyor.stream_state s USING (source, stream)
WHERE l.rn = 1
ORDER BY l.source, l.stream
"#;

/// The outbox at a glance: one row per channel.
pub const OUTBOX_SQL: &str = r#"
SELECT channel,
       count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL) AS queued,
       count(*) FILTER (WHERE delivered_at IS NOT NULL) AS delivered,
       count(*) FILTER (WHERE dead_at IS NOT NULL) AS dead_lettered,
       strftime(min(next_attempt_at) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL), '%Y-%m-%d %H:%M:%SZ') AS next_attempt
FROM conveyor.outbox
GROUP BY channel
ORDER BY channel
"#;

/// Dead-lettered notifications, newest first: they need a person.
pub const DEAD_LETTERS_SQL: &str = r#"
SELECT id, rule, channel, recipient, subject, attempts,
       strftime(dead_at, '%Y-%m-%d %H:%M:%SZ') AS dead_at, last_error
FROM conveyor.outbox
WHERE dead_at IS NOT NULL
ORDER BY dead_at DESC, id DESC
LIMIT 20
"#;
