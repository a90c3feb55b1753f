//! Built-in mappings from the tables the vendor connectors write
//! (`type = "greenhouse"` …) into the unified model. `{s}` is replaced by
//! the source's schema, `{opt:NAME}` by a preset option (a quoted JSON path
//! member or string), and `{if:TABLE:SQL}` by SQL when the source has that
//! optional table (else NULL). The names and the views each preset fills
//! are listed in `conveyor_config::MODEL_PRESETS`, its options in
//! `conveyor_config::PRESET_OPTIONS`.

use conveyor_config::PresetUse;

/// `(preset, view, SELECT)`.
const PRESET_SQL: &[(&str, &str, &str)] = &[
    // Greenhouse Harvest: a hire is a hired application with its accepted
    // offer; a placement is a hire with a fee (internal hires have none).
    // Custom fields are defined per company, keyed by `name_key` →
    // `{name, type, value}`: the client is an application field (text, or
    // a select whose value is `{id, name}`), the fee an offer field (a
    // currency's value is `{amount, unit}`; a number field's a number).
    (
        "greenhouse",
        "ats_people",
        "SELECT id AS ats_id, first_name, last_name, primary_email AS email, NULL AS phone
         FROM {s}.candidates",
    ),
    (
        "greenhouse",
        "hires",
        "SELECT a.id AS hire_id, a.candidate_id AS ats_id, c.primary_email AS email,
                CASE json_type(a.custom_fields, '$.\"{opt:client_field}\".value')
                     WHEN 'OBJECT' THEN json_extract_string(a.custom_fields, '$.\"{opt:client_field}\".value.name')
                     ELSE json_extract_string(a.custom_fields, '$.\"{opt:client_field}\".value') END AS client,
                o.starts_on AS start_date
         FROM {s}.applications a
         JOIN {s}.candidates c ON c.id = a.candidate_id
         LEFT JOIN {s}.offers o ON o.application_id = a.id AND o.status = 'Accepted'
         WHERE a.status = 'hired'",
    ),
    (
        "greenhouse",
        "placements",
        "SELECT * FROM (
           SELECT a.id AS placement_id, a.candidate_id AS ats_id, c.primary_email AS email,
                  CASE json_type(a.custom_fields, '$.\"{opt:client_field}\".value')
                       WHEN 'OBJECT' THEN json_extract_string(a.custom_fields, '$.\"{opt:client_field}\".value.name')
                       ELSE json_extract_string(a.custom_fields, '$.\"{opt:client_field}\".value') END AS client,
                  o.starts_on AS start_date,
                  coalesce(TRY_CAST(json_extract_string(o.custom_fields, '$.\"{opt:placement_fee_field}\".value.amount') AS DOUBLE),
                           TRY_CAST(json_extract_string(o.custom_fields, '$.\"{opt:placement_fee_field}\".value') AS DOUBLE)) AS fee
           FROM {s}.applications a
           JOIN {s}.candidates c ON c.id = a.candidate_id
           LEFT JOIN {s}.offers o ON o.application_id = a.id AND o.status = 'Accepted'
           WHERE a.status = 'hired')
         WHERE fee IS NOT NULL",
    ),
    // QuickBooks Online: deleted records stay as tombstones (`deleted`);
    // custom fields are among the unprojected fields in `other`; a
    // payment's lines each settle one linked invoice. JSON arrays are split
    // with `json_extract(x, '$[*]')` (a cast to JSON[] would not split them).
    (
        "quickbooks",
        "invoices",
        "SELECT id AS invoice_id, doc_number AS number, customer_name AS customer,
                list_filter(json_extract(other, '$.CustomField[*]'), lambda f: f->>'Name' = '{opt:placement_id_field}')[1]->>'StringValue' AS placement_id,
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
    // Xero: only ACCREC invoices are sales invoices (ACCPAY are bills), and
    // only payments of them are money received. Deleted and voided invoices
    // (and deleted payments) are kept by the connector with their status
    // and left out here, as QuickBooks' tombstones are; drafts and
    // submitted invoices count as invoiced (assumed: an invoice being
    // prepared for a placement is not "missing"). Xero invoices have no
    // custom fields, so no placement id is mapped (assumed: `reference`
    // is free text, often a purchase-order number, not a key to match on).
    (
        "xero",
        "invoices",
        "SELECT invoice_id, invoice_number AS number, contact_name AS customer,
                NULL::VARCHAR AS placement_id, \"date\" AS invoice_date, due_date,
                total AS amount, amount_due AS balance
         FROM {s}.invoices
         WHERE \"type\" = 'ACCREC' AND coalesce(status, '') NOT IN ('DELETED', 'VOIDED')",
    ),
    (
        "xero",
        "payments",
        "SELECT payment_id, invoice_id, contact_name AS customer, \"date\" AS payment_date, amount
         FROM {s}.payments
         WHERE invoice_type = 'ACCREC' AND coalesce(status, '') <> 'DELETED'",
    ),
    // Gusto: one compensation row per employee per processed payroll, hours
    // already summed over its hourly compensations (salaried: none); the
    // employee's payment unit (Hour, Year, …) and whether the payroll was
    // off-cycle come from the employee and the payroll.
    (
        "gusto",
        "payroll_people",
        "SELECT uuid AS payroll_id, first_name, last_name, email, NULL AS phone, hire_date, terminated
         FROM {s}.employees",
    ),
    (
        "gusto",
        "payroll_lines",
        "SELECT c.employee_uuid AS payroll_id, c.pay_period_start AS period_start, c.pay_period_end AS period_end,
                coalesce(c.hours, 0) AS hours, c.gross_pay AS gross, e.payment_unit, p.off_cycle
         FROM {s}.employee_compensations c
         LEFT JOIN {s}.employees e ON e.uuid = c.employee_uuid
         LEFT JOIN {s}.payrolls p ON p.payroll_uuid = c.payroll_uuid",
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
             FROM {s}.surveys? WHERE status = 'Finished' AND total_score IS NOT NULL GROUP BY ALL),
         logged AS (
             SELECT user_id AS agent_id, day, sum(ms) FILTER (WHERE presence <> 'OFFLINE') / 3600000.0 AS logged_hours
             FROM {s}.user_presence? GROUP BY ALL),
         qa AS (
             SELECT agent_id, CAST(coalesce(conversation_date, submitted_date) AS DATE) AS day, avg(total_score) AS quality_score
             FROM {s}.evaluations? GROUP BY ALL)
         SELECT agent_id, day, coalesce(contacts, 0) AS contacts, coalesce(handle_secs, 0) AS handle_secs, csat,
                quality_score, coalesce(logged_hours, {if:user_presence:0}) AS logged_hours
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
    (
        "genesys",
        "contacts",
        "SELECT conversation_id AS contact_id, conversation_start AS started_at,
                originating_direction AS direction, media_type AS channel, queue_id AS queue,
                answered, abandoned, agent_id, abandon_ms / 1000.0 AS wait_secs
         FROM {s}.conversation_summaries",
    ),
    // Zendesk Talk: the agents are the account's agents and admins; calls
    // give contacts (every call, abandoned ones included) and the handle
    // time (talk + hold + wrap-up seconds) of completed calls.
    (
        "zendesk_talk",
        "contact_center_people",
        "SELECT id AS agent_id, name, email, phone, NULL AS team, NULL AS supervisor_email
         FROM {s}.users WHERE role IN ('agent', 'admin')",
    ),
    (
        "zendesk_talk",
        "contacts",
        "SELECT id AS contact_id, created_at AS started_at, direction, 'voice' AS channel, NULL AS queue,
                completion_status = 'completed' AS answered, completion_status LIKE 'abandoned%' AS abandoned,
                agent_id, wait_time AS wait_secs
         FROM {s}.calls",
    ),
    (
        "zendesk_talk",
        "agent_daily",
        "SELECT agent_id, CAST(created_at AS DATE) AS day, count(*) AS contacts,
                sum(coalesce(talk_time, 0) + coalesce(hold_time, 0) + coalesce(wrap_up_time, 0)) AS handle_secs,
                NULL AS csat, NULL AS quality_score, 0 AS logged_hours
         FROM {s}.calls WHERE agent_id IS NOT NULL AND completion_status = 'completed' GROUP BY ALL",
    ),
    // Lever: a person is a contact (one per person, across their
    // opportunities; the latest opportunity's name, e-mail and phone, the
    // name split at its first space). A hire is an opportunity with a
    // signed offer (the latest one) — assumed, since Lever's own "hired"
    // is an archive reason whose type lives in `/archive_reasons`, which
    // the connector does not read; an opportunity archived as hired
    // without an offer in Lever is not a hire here. The client and the
    // fee are offer form fields by `identifier` (each company's own, so
    // preset options); the client falls back to the posting's
    // department. Deleted opportunities are left out.
    (
        "lever",
        "ats_people",
        "SELECT contact AS ats_id, split_part(name, ' ', 1) AS first_name,
                nullif(trim(substr(name, length(split_part(name, ' ', 1)) + 2)), '') AS last_name,
                primary_email AS email, primary_phone AS phone
         FROM (SELECT *, row_number() OVER (PARTITION BY contact ORDER BY updated_at DESC) AS n
               FROM {s}.opportunities
               WHERE contact IS NOT NULL AND id NOT IN (SELECT id FROM {s}.deleted_opportunities?))
         WHERE n = 1",
    ),
    (
        "lever",
        "hires",
        "SELECT o.id AS hire_id, o.contact AS ats_id, o.primary_email AS email,
                coalesce(list_filter(json_extract(f.fields, '$[*]'), lambda x: x->>'identifier' = '{opt:client_field}')[1]->>'value',
                         p.department) AS client,
                f.start_date
         FROM {s}.opportunities o
         JOIN (SELECT *, row_number() OVER (PARTITION BY opportunity_id ORDER BY created_at DESC) AS n
               FROM {s}.offers WHERE status = 'signed') f ON f.opportunity_id = o.id AND f.n = 1
         LEFT JOIN {s}.postings? p ON p.id = f.posting
         WHERE o.id NOT IN (SELECT id FROM {s}.deleted_opportunities?)",
    ),
    (
        "lever",
        "placements",
        "SELECT * FROM (
           SELECT o.id AS placement_id, o.contact AS ats_id, o.primary_email AS email,
                  coalesce(list_filter(json_extract(f.fields, '$[*]'), lambda x: x->>'identifier' = '{opt:client_field}')[1]->>'value',
                           p.department) AS client,
                  f.start_date,
                  TRY_CAST(list_filter(json_extract(f.fields, '$[*]'), lambda x: x->>'identifier' = '{opt:placement_fee_field}')[1]->>'value' AS DOUBLE) AS fee
           FROM {s}.opportunities o
           JOIN (SELECT *, row_number() OVER (PARTITION BY opportunity_id ORDER BY created_at DESC) AS n
                 FROM {s}.offers WHERE status = 'signed') f ON f.opportunity_id = o.id AND f.n = 1
           LEFT JOIN {s}.postings? p ON p.id = f.posting
           WHERE o.id NOT IN (SELECT id FROM {s}.deleted_opportunities?))
         WHERE fee IS NOT NULL",
    ),
    // ADP Workforce Now: a person is a worker (tombstones of workers ADP
    // no longer lists left out); the hire date is the original one (a
    // rehire keeps it), terminated when ADP says so by status, date or
    // the primary assignment's `T`. The connector reads no pay
    // statements, so ADP fills no payroll lines. The e-mail is guessed
    // from ADP's worker shape (business e-mail, else the person's), kept
    // in `other` by the connector.
    (
        "adp",
        "payroll_people",
        "SELECT associate_oid AS payroll_id, given_name AS first_name, family_name AS last_name,
                coalesce(json_extract_string(other, '$.businessCommunication.emails[0].emailUri'),
                         json_extract_string(other, '$.person.communication.emails[0].emailUri')) AS email,
                NULL AS phone, coalesce(original_hire_date, hire_date) AS hire_date,
                termination_date IS NOT NULL OR coalesce(status, '') = 'Terminated'
                    OR coalesce(assignment_status, '') = 'T' AS terminated
         FROM {s}.workers WHERE NOT coalesce(deleted, false)",
    ),
    // Amazon Connect: GetMetricDataV2 gives per agent per day the contacts
    // handled and their average handle time, so the day's handle time is
    // their product; CSAT, QA and logged hours are not among the metrics
    // read (NULL, NULL, 0 as for Zendesk Talk). A contact is answered when
    // it reached an agent and abandoned when it queued and never did; its
    // wait is the time in queue.
    (
        "amazon_connect",
        "agent_daily",
        "SELECT agent_id, CAST(interval_start AS DATE) AS day, sum(coalesce(contacts_handled, 0)) AS contacts,
                sum(coalesce(contacts_handled * avg_handle_time_secs, 0)) AS handle_secs,
                NULL AS csat, NULL AS quality_score, 0 AS logged_hours
         FROM {s}.agent_metrics WHERE agent_id IS NOT NULL GROUP BY ALL",
    ),
    (
        "amazon_connect",
        "contacts",
        "SELECT contact_id, initiation_at AS started_at,
                CASE initiation_method WHEN 'INBOUND' THEN 'inbound' WHEN 'OUTBOUND' THEN 'outbound'
                     WHEN 'CALLBACK' THEN 'outbound' ELSE lower(initiation_method) END AS direction,
                lower(channel) AS channel, queue_id AS queue,
                connected_to_agent_at IS NOT NULL AS answered,
                enqueue_at IS NOT NULL AND connected_to_agent_at IS NULL AS abandoned,
                agent_id,
                CASE WHEN enqueue_at IS NOT NULL
                     THEN epoch(coalesce(connected_to_agent_at, disconnect_at) - enqueue_at) END AS wait_secs
         FROM {s}.contacts",
    ),
    // Salesforce: a placement is a won opportunity (assumed: a staffing
    // firm books each placement as an opportunity, its amount the fee, its
    // account the client, closing when the candidate starts). Deleted
    // opportunities (`/queryAll` keeps them as `is_deleted`) are left out;
    // Salesforce knows no candidate, so `ats_id` and `email` are NULL and
    // the placement is matched on its id and client.
    (
        "salesforce",
        "placements",
        "SELECT o.id AS placement_id, NULL AS ats_id, NULL AS email, a.name AS client,
                o.close_date AS start_date, o.amount AS fee
         FROM {s}.opportunities o LEFT JOIN {s}.accounts? a ON a.id = o.account_id
         WHERE coalesce(o.is_won, false) AND NOT coalesce(o.is_deleted, false) AND o.amount IS NOT NULL",
    ),
];

/// Tables a preset can do without, as empty relations of the same shape:
/// written `{s}.TABLE?` in the preset's SQL. The columns they feed are NULL.
const OPTIONAL_TABLES: &[(&str, &str, &str)] = &[
    (
        "genesys",
        "surveys",
        "SELECT NULL::VARCHAR AS user_id, NULL::TIMESTAMP AS completed_at, NULL::VARCHAR AS status, NULL::DOUBLE AS total_score WHERE false",
    ),
    (
        "genesys",
        "user_presence",
        "SELECT NULL::VARCHAR AS user_id, NULL::DATE AS day, NULL::VARCHAR AS presence, NULL::BIGINT AS ms WHERE false",
    ),
    (
        "genesys",
        "evaluations",
        "SELECT NULL::VARCHAR AS agent_id, NULL::TIMESTAMP AS conversation_date, NULL::TIMESTAMP AS submitted_date, NULL::DOUBLE AS total_score WHERE false",
    ),
    // Lever: without postings the client is the offer field alone;
    // without deletions nothing is left out.
    (
        "lever",
        "postings",
        "SELECT NULL::VARCHAR AS id, NULL::VARCHAR AS department WHERE false",
    ),
    (
        "lever",
        "deleted_opportunities",
        "SELECT NULL::VARCHAR AS id WHERE false",
    ),
    // Salesforce: without accounts the client is unknown.
    (
        "salesforce",
        "accounts",
        "SELECT NULL::VARCHAR AS id, NULL::VARCHAR AS name WHERE false",
    ),
];

/// A preset's SELECT for one view, ready to run.
pub struct PresetSql {
    pub sql: String,
    /// Optional tables the source lacks (their columns are NULL).
    pub missing: Vec<String>,
}

/// The SELECT that maps `preset`'s source into `view`, if the preset fills
/// that view; `has_table(name)` says whether the source's schema holds it.
pub fn sql(preset: &PresetUse, view: &str, has_table: &dyn Fn(&str) -> bool) -> Option<PresetSql> {
    let (_, _, text) = PRESET_SQL
        .iter()
        .find(|(p, v, _)| *p == preset.preset && *v == view)?;
    let schema = crate::warehouse::ident(&preset.source);
    let mut sql = text.to_string();
    let mut missing = Vec::new();
    for (p, table, empty) in OPTIONAL_TABLES
        .iter()
        .filter(|(p, _, _)| *p == preset.preset)
    {
        let _ = p;
        let marker = format!("{{s}}.{table}?");
        let present = has_table(table);
        if sql.contains(&marker) && !present {
            missing.push(table.to_string());
        }
        let with = if present {
            format!("{schema}.{}", crate::warehouse::ident(table))
        } else {
            format!("({empty})")
        };
        sql = sql.replace(&marker, &with);
        let cond = format!("{{if:{table}:");
        while let Some(i) = sql.find(&cond) {
            let end = i + sql[i..].find('}').expect("a closed {if:…}");
            let value = &sql[i + cond.len()..end];
            let value = if present {
                value.to_string()
            } else {
                "NULL".to_string()
            };
            sql.replace_range(i..=end, &value);
        }
    }
    let options = conveyor_config::PRESET_OPTIONS
        .iter()
        .filter(|(p, _, _)| *p == preset.preset);
    for (_, name, default) in options {
        let value = preset.options.get(*name).map_or(*default, String::as_str);
        // Inside SQL string literals: a JSON path member is quoted, and a
        // quote doubled (the config allows letters, digits, `_`, `-`, spaces).
        sql = sql.replace(&format!("{{opt:{name}}}"), &value.replace('\'', "''"));
    }
    Some(PresetSql {
        sql: sql.replace("{s}", &schema),
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_presets_and_their_sql_agree() {
        for (preset, views) in conveyor_config::MODEL_PRESETS {
            let using = PresetUse {
                source: "x".into(),
                preset: preset.to_string(),
                options: Default::default(),
                at: conveyor_config::Located {
                    file: "c.toml".into(),
                    line: 1,
                    col: 1,
                    key: "model.presets.x".into(),
                },
            };
            for view in *views {
                let s = sql(&using, view, &|_| true).expect("a preset's view has SQL");
                assert!(
                    !s.sql.contains("{opt:") && !s.sql.contains("{if:"),
                    "{preset}.{view}"
                );
                assert!(
                    !s.sql.contains("?"),
                    "{preset}.{view}: an optional table not listed"
                );
            }
            let here = PRESET_SQL.iter().filter(|(p, _, _)| p == preset).count();
            assert_eq!(here, views.len(), "{preset}");
        }
    }
}
