//! QuickBooks Online-shaped accounting: `/v3/company/{realm}/query` over a small SQL-ish grammar
//! (AND only; OR is a 400 Fault), bearer auth, Fault envelopes and company-local UTC offsets.

use std::{cmp::Ordering, sync::Arc};

use axum::{
    extract::{Request, State},
    http::Method,
    response::Response,
    Router,
};
use chrono::{Datelike, Duration, FixedOffset, NaiveDate, SecondsFormat, TimeZone, Utc, Weekday};
use serde_json::{json, Value};

use super::world::{anchor, World, CLIENTS};
use super::{ats::application_id, read, QBO_ACCESS_TOKEN, QBO_REALM_ID};
use crate::wire::{self, mix, SharedLog};

struct Qbo {
    entities: Vec<(&'static str, Vec<Value>)>,
    log: SharedLog,
}

pub(crate) fn router(world: &World, log: SharedLog) -> Router {
    let qbo = Qbo { entities: build(world), log };
    Router::new().fallback(serve).with_state(Arc::new(qbo))
}

/// Company-local (US Pacific) time: -07:00 during daylight saving, -08:00 otherwise.
fn local(day: NaiveDate, secs: i64) -> String {
    let sunday = |month, n| {
        NaiveDate::from_weekday_of_month_opt(day.year(), month, Weekday::Sun, n).expect("sunday")
    };
    let hours = if day >= sunday(3, 2) && day < sunday(11, 1) { 7 } else { 8 };
    let offset = FixedOffset::west_opt(hours * 3600).expect("offset");
    let naive = day.and_hms_opt(0, 0, 0).expect("midnight") + Duration::seconds(secs);
    offset
        .from_local_datetime(&naive)
        .single()
        .expect("fixed offset")
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn meta(created: &str, updated: &str) -> Value {
    json!({"CreateTime": created, "LastUpdatedTime": updated})
}

fn build(w: &World) -> Vec<(&'static str, Vec<Value>)> {
    let customer_id =
        |client: &str| CLIENTS.iter().position(|c| *c == client).map_or(0, |i| i + 1).to_string();
    let (mut invoices, mut payments, mut balances) = (vec![], vec![], [0.0; CLIENTS.len() + 2]);
    let placements = w.hired().filter(|p| !w.uninvoiced.contains(&p.idx));
    for (n, p) in placements.enumerate() {
        let (txn, jitter) = (p.hire_date.expect("hired"), (mix(p.idx as u64, 3) % 3_600) as i64);
        let (due, id) = (txn + Duration::days(30), (130 + n).to_string());
        let created = local(txn, 10 * 3600 + jitter);
        let customer = json!({"value": customer_id(p.client), "name": p.client});
        let paid_on = settled(w, p.idx, due)
            .then(|| due - Duration::days((mix(p.idx as u64, 4) % 12) as i64));
        let updated = paid_on.map_or(created.clone(), |d| local(d, 14 * 3600 + jitter));
        let balance = if paid_on.is_some() { 0.0 } else { p.fee };
        balances[customer_id(p.client).parse::<usize>().unwrap_or(0)] += balance;
        let line = json!({
            "Id": "1", "LineNum": 1, "Amount": p.fee,
            "Description": format!("Placement fee: {} {}", p.first, p.last),
            "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {
                "ItemRef": {"value": "1", "name": "Placement Fee"}, "Qty": 1, "UnitPrice": p.fee,
            },
        });
        let linked = if paid_on.is_some() {
            json!([{"TxnId": (900 + n).to_string(), "TxnType": "Payment"}])
        } else {
            json!([])
        };
        invoices.push(json!({
            "Id": id, "SyncToken": if paid_on.is_some() { "1" } else { "0" },
            "MetaData": meta(&created, &updated),
            "DocNumber": (1001 + n).to_string(), "TxnDate": txn.to_string(), "DueDate": due.to_string(),
            "CustomerRef": customer, "Line": [line], "TotalAmt": p.fee, "Balance": balance,
            "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
            "EmailStatus": "EmailSent", "LinkedTxn": linked,
            "CustomField": [{
                "DefinitionId": "1", "Name": "Placement ID", "Type": "StringType",
                "StringValue": application_id(p.idx).to_string(),
            }],
        }));
        let Some(paid) = paid_on else { continue };
        payments.push(json!({
            "Id": (900 + n).to_string(), "SyncToken": "0", "MetaData": meta(&updated, &updated),
            "TxnDate": paid.to_string(),
            "CustomerRef": customer, "TotalAmt": p.fee, "UnappliedAmt": 0, "CurrencyRef": {"value": "USD"},
            "PaymentMethodRef": {"value": "3", "name": "ACH"},
            "DepositToAccountRef": {"value": "35", "name": "Checking"},
            "Line": [{"Amount": p.fee, "LinkedTxn": [{"TxnId": id, "TxnType": "Invoice"}]}],
        }));
    }
    // The seventh customer is inactive: only `Active IN (true,false)` queries see it, as in QuickBooks.
    let names = CLIENTS.iter().chain(&["Wayne Shipping"]);
    let customers = names.enumerate().map(|(i, name)| {
        let created =
            local(anchor() - Duration::days(500 - 9 * i as i64), 9 * 3600 + 61 * i as i64);
        let slug: String = name.to_lowercase().split_whitespace().collect();
        json!({
            "Id": (i + 1).to_string(), "SyncToken": "0", "MetaData": meta(&created, &created),
            "DisplayName": name,
            "CompanyName": name, "PrimaryEmailAddr": {"Address": format!("ap@{slug}.example")},
            "Balance": balances[i + 1], "Active": i < CLIENTS.len(), "Job": false,
        })
    });
    vec![("Invoice", invoices), ("Payment", payments), ("Customer", customers.collect())]
}

/// Clients pay before the due date, unless the invoice fell due in the last five days or is one
/// of the planted unpaid ones.
fn settled(w: &World, idx: usize, due: NaiveDate) -> bool {
    due < anchor() - Duration::days(5) && !w.unpaid.contains(&idx)
}

/// DocNumbers of the invoices past due and unpaid (invoices are numbered in placement order).
pub(crate) fn unpaid_doc_numbers(w: &World) -> Vec<String> {
    w.hired()
        .filter(|p| !w.uninvoiced.contains(&p.idx))
        .enumerate()
        .filter(|(_, p)| {
            let due = p.hire_date.expect("hired") + Duration::days(30);
            due < anchor() && !settled(w, p.idx, due)
        })
        .map(|(n, _)| (1001 + n).to_string())
        .collect()
}

fn now() -> String {
    let pacific = FixedOffset::west_opt(7 * 3600).expect("offset");
    Utc::now().with_timezone(&pacific).format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
}

fn fault(status: u16, kind: &str, code: &str, message: &str, detail: &str) -> Response {
    let error = json!({"Message": message, "Detail": detail, "code": code, "element": ""});
    wire::json(status, json!({"Fault": {"Error": [error], "type": kind}, "time": now()}))
}

async fn serve(State(qbo): State<Arc<Qbo>>, req: Request) -> Response {
    let (parts, body) = read(&qbo.log, req).await;
    let rest = parts.uri.path().strip_prefix("/v3/company/").unwrap_or("");
    let Some((realm, "query")) = rest.split_once('/') else {
        return fault(404, "ValidationFault", "610", "Object Not Found", "unknown resource");
    };
    if wire::bearer(&parts.headers) != Some(QBO_ACCESS_TOKEN) {
        return fault(
            401,
            "AUTHENTICATION",
            "3200",
            "message=AuthenticationFailed",
            "Token is missing, invalid or expired",
        );
    }
    if realm != QBO_REALM_ID {
        return fault(
            403,
            "AuthorizationFault",
            "3100",
            "message=ApplicationAuthorizationFailed",
            "unknown realm",
        );
    }
    // QuickBooks takes the query as a GET parameter or as a POST body.
    let pairs = wire::query_pairs(parts.uri.query().unwrap_or(""));
    let sql = match parts.method {
        Method::POST => String::from_utf8_lossy(&body).into_owned(),
        _ => wire::param(&pairs, "query").unwrap_or_default().to_string(),
    };
    match parse(&sql) {
        Ok(q) => run(&qbo, &q),
        Err(detail) => fault(400, "ValidationFault", "4000", "Error parsing query", &detail),
    }
}

/// Splits a query into words, `'quoted'` literals (quote kept as a marker), operators and punctuation.
fn tokens(q: &str) -> Vec<String> {
    let (mut out, mut chars) = (vec![], q.chars().peekable());
    let class = |c: char| {
        if "<>=!".contains(c) {
            1
        } else if "(),".contains(c) {
            2
        } else {
            0
        }
    };
    while let Some(&c) = chars.peek() {
        let mut tok = String::from(chars.next().unwrap_or(c));
        if c.is_whitespace() {
            continue;
        } else if c == '\'' {
            tok.extend(chars.by_ref().take_while(|&c| c != '\''));
        } else if class(c) != 2 {
            while let Some(&n) =
                chars.peek().filter(|&&n| !n.is_whitespace() && n != '\'' && class(n) == class(c))
            {
                tok.push(n);
                chars.next();
            }
        }
        out.push(tok);
    }
    out
}

enum Cond {
    Cmp(String, String, String),
    In(String, Vec<String>),
}

struct Query {
    entity: String,
    count: bool,
    conds: Vec<Cond>,
    order: Option<(String, bool)>,
    start: usize,
    max: usize,
}

/// Parses the subset of the QuickBooks query language the sandbox supports; Err is the Fault detail.
fn parse(sql: &str) -> Result<Query, String> {
    let t = tokens(sql);
    let kw = |i: usize, w: &str| t.get(i).is_some_and(|x| x.eq_ignore_ascii_case(w));
    let at = |i: usize| {
        t.get(i)
            .map(|s| s.trim_start_matches('\'').to_string())
            .ok_or_else(|| "QueryParserError: unexpected end of query".to_string())
    };
    if t.iter().any(|x| x.eq_ignore_ascii_case("or")) {
        return Err("QueryParserError: Encountered \" <OR> \"OR \"\" - OR is not supported".into());
    }
    let from = t.iter().position(|x| x.eq_ignore_ascii_case("from")).filter(|_| kw(0, "select"));
    let from = from.ok_or("QueryParserError: expected SELECT ... FROM <entity>")?;
    let count = t[1..from].concat().eq_ignore_ascii_case("count(*)");
    let mut q =
        Query { entity: at(from + 1)?, count, conds: vec![], order: None, start: 1, max: 100 };
    let number = |i: usize| {
        at(i)?.parse::<usize>().map_err(|_| "QueryParserError: expected a number".to_string())
    };
    let mut i = from + 2;
    while i < t.len() {
        if kw(i, "where") || kw(i, "and") {
            let field = at(i + 1)?;
            if kw(i + 2, "in") && kw(i + 3, "(") {
                let close = (i + 4..t.len())
                    .find(|&j| t[j] == ")")
                    .ok_or("QueryParserError: unclosed IN")?;
                let values = t[i + 4..close]
                    .iter()
                    .filter(|x| *x != ",")
                    .map(|x| x.trim_start_matches('\'').to_string());
                q.conds.push(Cond::In(field, values.collect()));
                i = close + 1;
            } else if ["=", "!=", "<", ">", "<=", ">="].contains(&at(i + 2)?.as_str()) {
                q.conds.push(Cond::Cmp(field, at(i + 2)?, at(i + 3)?));
                i += 4;
            } else {
                return Err(format!("QueryParserError: Encountered \"{}\"", at(i + 2)?));
            }
        } else if kw(i, "order") && kw(i + 1, "by") {
            let dir = kw(i + 3, "asc") || kw(i + 3, "desc");
            q.order = Some((at(i + 2)?, kw(i + 3, "desc")));
            i += 3 + dir as usize;
        } else if kw(i, "startposition") {
            q.start = number(i + 1)?.max(1);
            i += 2;
        } else if kw(i, "maxresults") {
            q.max = number(i + 1)?;
            i += 2;
        } else {
            return Err(format!("QueryParserError: Encountered \"{}\"", t[i]));
        }
    }
    if q.max > 1000 {
        return Err(format!(
            "QueryValidationError: value {} is too large. Max allowed value is: 1000",
            q.max
        ));
    }
    Ok(q)
}

/// Case-insensitive dotted lookup (`Metadata.LastUpdatedTime` finds `MetaData.LastUpdatedTime`).
fn field(rec: &Value, path: &str) -> Option<String> {
    let v = path.split('.').try_fold(rec, |v, seg| {
        v.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(seg)).map(|(_, v)| v)
    })?;
    Some(v.as_str().map_or_else(|| v.to_string(), String::from))
}

/// Timestamps compare as instants (offsets differ), numbers numerically, everything else as text.
fn compare(a: &str, b: &str) -> Ordering {
    if let (Some(x), Some(y)) = (wire::parse_time(a), wire::parse_time(b)) {
        return x.cmp(&y);
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.to_lowercase().cmp(&b.to_lowercase()),
    }
}

fn holds(rec: &Value, cond: &Cond) -> bool {
    match cond {
        Cond::Cmp(f, op, lit) => field(rec, f).is_some_and(|v| {
            let o = compare(&v, lit);
            match op.as_str() {
                "=" => o.is_eq(),
                "!=" => o.is_ne(),
                "<" => o.is_lt(),
                ">" => o.is_gt(),
                "<=" => o.is_le(),
                _ => o.is_ge(),
            }
        }),
        Cond::In(f, lits) => {
            field(rec, f).is_some_and(|v| lits.iter().any(|l| compare(&v, l).is_eq()))
        }
    }
}

fn run(qbo: &Qbo, q: &Query) -> Response {
    let Some((entity, records)) =
        qbo.entities.iter().find(|(e, _)| e.eq_ignore_ascii_case(&q.entity))
    else {
        let detail = format!("QueryValidationError: Invalid entity {}", q.entity);
        return fault(400, "ValidationFault", "4000", "Error parsing query", &detail);
    };
    let active_named = q.conds.iter().any(
        |c| matches!(c, Cond::Cmp(f, ..) | Cond::In(f, _) if f.eq_ignore_ascii_case("active")),
    );
    let default_active = (*entity == "Customer" && !active_named)
        .then(|| Cond::Cmp("Active".into(), "=".into(), "true".into()));
    let mut rows: Vec<&Value> = records
        .iter()
        .filter(|r| q.conds.iter().chain(&default_active).all(|c| holds(r, c)))
        .collect();
    let (key, desc) = q.order.clone().unwrap_or(("Id".into(), false));
    rows.sort_by(|a, b| {
        let o = compare(&field(a, &key).unwrap_or_default(), &field(b, &key).unwrap_or_default());
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    if q.count {
        return wire::json(
            200,
            json!({"QueryResponse": {"totalCount": rows.len()}, "time": now()}),
        );
    }
    let page: Vec<&Value> = rows.into_iter().skip(q.start - 1).take(q.max).collect();
    if page.is_empty() {
        return wire::json(200, json!({"QueryResponse": {}, "time": now()}));
    }
    let mut result = json!({"startPosition": q.start, "maxResults": page.len()});
    result[*entity] = json!(page);
    wire::json(200, json!({"QueryResponse": result, "time": now()}))
}
