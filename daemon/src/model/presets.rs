//! Built-in mappings from the tables the vendor connectors write
//! (`type = "greenhouse"` …) into the unified model. `{s}` is replaced by
//! the source's schema. The names and the views each
//! preset fills are listed in `conveyor_config::MODEL_PRESETS`.

/// `(preset, view, SELECT)`.
const PRESET_SQL: &[(&str, &str, &str)] = &[
    // Greenhouse Harvest: a placement is a hired application with its
    // accepted offer; the client is an application custom field and the fee
    // an offer custom field (`custom_fields`, kept as JSON).
    (
        "greenhouse",
        "ats_people",
        "SELECT id AS ats_id, first_name, last_name, primary_email AS email, NULL AS phone
         FROM {s}.candidates",
    ),
    (
        "greenhouse",
        "placements",
        "SELECT a.id AS placement_id, a.candidate_id AS ats_id, c.primary_email AS email,
                json_extract_string(a.custom_fields, '$.client_company.value') AS client,
                o.starts_on AS start_date,
                CAST(json_extract_string(o.custom_fields, '$.placement_fee.value.amount') AS DOUBLE) AS fee
         FROM {s}.applications a
         JOIN {s}.candidates c ON c.id = a.candidate_id
         LEFT JOIN {s}.offers o ON o.application_id = a.id AND o.status = 'Accepted'
         WHERE a.status = 'hired'",
    ),
    // QuickBooks Online: deleted records stay as tombstones (`deleted`);
    // custom fields are among the unprojected fields in `other`; a
    // payment's lines each settle one linked invoice. JSON arrays are split
    // with `json_extract(x, '$[*]')` (a cast to JSON[] would not split them).
    (
        "quickbooks",
        "invoices",
        "SELECT id AS invoice_id, doc_number AS number, customer_name AS customer,
                list_filter(json_extract(other, '$.CustomField[*]'), lambda f: f->>'Name' = 'Placement ID')[1]->>'StringValue' AS placement_id,
                txn_date AS invoice_date, due_date, total_amt AS amount, balance
         FROM {s}.invoices WHERE NOT coalesce(deleted, false)",
    ),
    (
        "quickbooks",
        "payments",
        "SELECT id AS payment_id, json_extract_string(pl, '$.LinkedTxn[0].TxnId') AS invoice_id,
                customer_name AS customer, txn_date AS payment_date, CAST(pl->>'Amount' AS DOUBLE) AS amount
         FROM (SELECT id, customer_name, txn_date, unnest(json_extract(lines, '$[*]')) AS pl
               FROM {s}.payments WHERE NOT coalesce(deleted, false))",
    ),
    // Gusto: one compensation row per employee per processed payroll, hours
    // already summed over its hourly compensations (salaried: none).
    (
        "gusto",
        "payroll_people",
        "SELECT uuid AS payroll_id, first_name, last_name, email, NULL AS phone, hire_date, terminated
         FROM {s}.employees",
    ),
    (
        "gusto",
        "payroll_lines",
        "SELECT employee_uuid AS payroll_id, pay_period_start AS period_start, pay_period_end AS period_end,
                coalesce(hours, 0) AS hours, gross_pay AS gross
         FROM {s}.employee_compensations",
    ),
    // Genesys Cloud: the team is the user's department and the supervisor
    // their manager; per agent per day, contacts and handle time from the
    // agent sessions, CSAT from finished surveys (a five-point question
    // scores 20 per point on the form's 0–100 total), QA from evaluations,
    // logged hours from every organization presence but OFFLINE.
    (
        "genesys",
        "contact_center_people",
        "SELECT u.id AS agent_id, u.name, u.email, NULL AS phone, u.department AS team,
                m.email AS supervisor_email
         FROM {s}.users u LEFT JOIN {s}.users m ON m.id = u.manager_id",
    ),
    (
        "genesys",
        "agent_daily",
        "WITH calls AS (
             SELECT user_id AS agent_id, CAST(conversation_start AS DATE) AS day,
                    count(DISTINCT conversation_id) AS contacts, sum(coalesce(handle_ms, 0)) / 1000.0 AS handle_secs
             FROM {s}.conversations WHERE user_id IS NOT NULL GROUP BY ALL),
         csat AS (
             SELECT user_id AS agent_id, CAST(completed_at AS DATE) AS day, avg(total_score) / 20.0 AS csat
             FROM {s}.surveys WHERE status = 'Finished' AND total_score IS NOT NULL GROUP BY ALL),
         logged AS (
             SELECT user_id AS agent_id, day, sum(ms) FILTER (WHERE presence <> 'OFFLINE') / 3600000.0 AS logged_hours
             FROM {s}.user_presence GROUP BY ALL),
         qa AS (
             SELECT agent_id, CAST(coalesce(conversation_date, submitted_date) AS DATE) AS day, avg(total_score) AS quality_score
             FROM {s}.evaluations GROUP BY ALL)
         SELECT agent_id, day, coalesce(contacts, 0) AS contacts, coalesce(handle_secs, 0) AS handle_secs, csat,
                quality_score, coalesce(logged_hours, 0) AS logged_hours
         FROM calls FULL JOIN csat USING (agent_id, day) FULL JOIN logged USING (agent_id, day)
              FULL JOIN qa USING (agent_id, day)",
    ),
    (
        "genesys",
        "evaluations",
        "SELECT id AS evaluation_id, agent_id, coalesce(submitted_date, changed_date) AS evaluated_at,
                total_score AS score
         FROM {s}.evaluations",
    ),
    // Zendesk Talk: only calls are exported, so only contacts and handle
    // time (talk + hold + wrap-up seconds) of completed calls.
    (
        "zendesk_talk",
        "agent_daily",
        "SELECT agent_id, CAST(created_at AS DATE) AS day, count(*) AS contacts,
                sum(coalesce(talk_time, 0) + coalesce(hold_time, 0) + coalesce(wrap_up_time, 0)) AS handle_secs,
                NULL AS csat, NULL AS quality_score, 0 AS logged_hours
         FROM {s}.calls WHERE agent_id IS NOT NULL AND completion_status = 'completed' GROUP BY ALL",
    ),
];

/// The SELECT that maps `source` (read through `preset`) into `view`, if
/// the preset fills that view.
pub fn sql(preset: &str, view: &str, source: &str) -> Option<String> {
    PRESET_SQL
        .iter()
        .find(|(p, v, _)| *p == preset && *v == view)
        .map(|(_, _, sql)| sql.replace("{s}", &crate::warehouse::ident(source)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_presets_and_their_sql_agree() {
        for (preset, views) in conveyor_config::MODEL_PRESETS {
            for view in *views {
                assert!(sql(preset, view, "x").is_some(), "{preset}.{view}");
            }
            let here = PRESET_SQL.iter().filter(|(p, _, _)| p == preset).count();
            assert_eq!(here, views.len(), "{preset}");
        }
    }
}
