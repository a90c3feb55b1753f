//! Built-in mappings from vendor-shaped raw tables into the unified model.
//! `{s}` is replaced by the source's schema. The names and the views each
//! preset fills are listed in `conveyor_config::MODEL_PRESETS`.

/// `(preset, view, SELECT)`.
const PRESET_SQL: &[(&str, &str, &str)] = &[
    // Greenhouse Harvest: candidates carry their addresses as a JSON array;
    // a placement is a hired application with its accepted offer, the client
    // in a custom field and the fee in the offer's custom fields.
    (
        "greenhouse",
        "ats_people",
        "SELECT id AS ats_id, first_name, last_name, json_extract_string(email_addresses, '$[0].value') AS email,
                NULL AS phone
         FROM {s}.candidates",
    ),
    (
        "greenhouse",
        "placements",
        "SELECT a.id AS placement_id, a.candidate_id AS ats_id,
                json_extract_string(c.email_addresses, '$[0].value') AS email,
                json_extract_string(a.custom_fields, '$.client_company.value') AS client,
                o.starts_on AS start_date,
                CAST(json_extract_string(o.custom_fields, '$.placement_fee.value.amount') AS DOUBLE) AS fee
         FROM {s}.applications a
         JOIN {s}.candidates c ON c.id = a.candidate_id
         LEFT JOIN {s}.offers o ON o.application_id = a.id AND o.status = 'Accepted'
         WHERE a.status = 'hired'",
    ),
    // QuickBooks Online: references are {value, name} objects; a payment's
    // lines each settle one linked invoice. JSON arrays are split with
    // `json_extract(x, '$[*]')` (a cast to JSON[] would not split them); the
    // unnested line is not called `line`, which would be the `Line` column.
    (
        "quickbooks",
        "invoices",
        "SELECT Id AS invoice_id, DocNumber AS number, CustomerRef->>'name' AS customer,
                list_filter(json_extract(CustomField, '$[*]'), lambda f: f->>'Name' = 'Placement ID')[1]->>'StringValue' AS placement_id,
                TxnDate AS invoice_date, DueDate AS due_date, TotalAmt AS amount, Balance AS balance
         FROM {s}.invoices",
    ),
    (
        "quickbooks",
        "payments",
        "SELECT Id AS payment_id, json_extract_string(pl, '$.LinkedTxn[0].TxnId') AS invoice_id,
                CustomerRef->>'name' AS customer, TxnDate AS payment_date, CAST(pl->>'Amount' AS DOUBLE) AS amount
         FROM (SELECT Id, CustomerRef, TxnDate, unnest(json_extract(Line, '$[*]')) AS pl FROM {s}.payments)",
    ),
    // Gusto: money and hours are decimal strings; one payroll holds every
    // employee's compensation for its pay period.
    (
        "gusto",
        "payroll_people",
        "SELECT uuid AS payroll_id, first_name, last_name, email, NULL AS phone,
                CAST(json_extract_string(jobs, '$[0].hire_date') AS DATE) AS hire_date, terminated
         FROM {s}.employees",
    ),
    (
        "gusto",
        "payroll_lines",
        "SELECT ec->>'employee_uuid' AS payroll_id,
                CAST(pay_period->>'start_date' AS DATE) AS period_start,
                CAST(pay_period->>'end_date' AS DATE) AS period_end,
                coalesce(list_sum(list_transform(json_extract(ec, '$.hourly_compensations[*]'), lambda h: CAST(h->>'hours' AS DOUBLE))), 0) AS hours,
                CAST(ec->>'gross_pay' AS DOUBLE) AS gross
         FROM (SELECT pay_period, unnest(json_extract(employee_compensations, '$[*]')) AS ec FROM {s}.payrolls WHERE processed)",
    ),
    // Zendesk Talk: per agent per day, calls (handled = completed), logged
    // time from agent activity, CSAT from call surveys, QA from evaluations.
    (
        "zendesk_talk",
        "contact_center_people",
        "SELECT id AS agent_id, name, email, NULL AS phone, user_fields->>'team' AS team,
                user_fields->>'supervisor_email' AS supervisor_email
         FROM {s}.agents",
    ),
    (
        "zendesk_talk",
        "agent_daily",
        "WITH calls AS (
             SELECT agent_id, CAST(created_at AS DATE) AS day,
                    count(*) FILTER (WHERE completion_status = 'completed') AS contacts,
                    sum(coalesce(talk_time, 0) + coalesce(hold_time, 0) + coalesce(wrap_up_time, 0)) AS handle_secs,
                    avg(csat) AS csat
             FROM {s}.calls WHERE agent_id IS NOT NULL GROUP BY ALL),
         logged AS (SELECT agent_id, date AS day, sum(online_time) / 3600.0 AS logged_hours FROM {s}.agent_activity GROUP BY ALL),
         qa AS (SELECT agent_id, CAST(created_at AS DATE) AS day, avg(score) AS quality_score FROM {s}.evaluations GROUP BY ALL)
         SELECT agent_id, day, coalesce(contacts, 0) AS contacts, coalesce(handle_secs, 0) AS handle_secs, csat,
                quality_score, coalesce(logged_hours, 0) AS logged_hours
         FROM calls FULL JOIN logged USING (agent_id, day) FULL JOIN qa USING (agent_id, day)",
    ),
    (
        "zendesk_talk",
        "evaluations",
        "SELECT id AS evaluation_id, agent_id, created_at AS evaluated_at, score FROM {s}.evaluations",
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
