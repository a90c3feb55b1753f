//! The cast's placements as QuickBooks Online records, served by the
//! faithful QuickBooks mock: customers, placement invoices (with the planted
//! uninvoiced and unpaid ones) and payments, in company-local time.

use chrono::{Datelike, Duration, FixedOffset, NaiveDate, SecondsFormat, TimeZone, Weekday};
use serde_json::{json, Value};

use super::ats::application_id;
use super::world::{anchor, World, CLIENTS};
use crate::vendors::quickbooks::QuickBooksRecords;
use crate::wire::mix;

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

/// Customers (the clients, one inactive), an invoice per invoiced placement
/// quoting the Greenhouse application id in the `Placement ID` custom
/// field (but the cohort's, older than the field), and a payment per
/// settled invoice.
pub(crate) fn records(w: &World) -> QuickBooksRecords {
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
        let mut invoice = json!({
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
        });
        // The cohort was invoiced before the custom field existed.
        if w.cohort.contains(&p.idx) {
            invoice["CustomField"] = json!([]);
        }
        invoices.push(invoice);
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
    QuickBooksRecords { customers: customers.collect(), invoices, payments }
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
