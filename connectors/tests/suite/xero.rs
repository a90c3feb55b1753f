//! The Xero connector against its mock over loopback HTTP: MS-JSON dates
//! and exact money in every table, `page`/`pageSize` paging to
//! `pageCount`, `If-Modified-Since` incremental reads, the tenant and
//! Accept headers (and a clear error when XML comes back anyway), a 429
//! waited out, rotating refresh tokens stored before use, client
//! credentials for a custom connection, a refused secret kept out of the
//! error, and a stream the tenant may not read.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow_schema::DataType;
use base64::Engine;
use conveyor_mocks::server::MockServer;
use conveyor_mocks::vendors::xero::{
    XeroHandle, XeroMock, XeroMockConfig, XeroRecords, TOKEN_PATH,
};
use conveyor_mocks::vendors::{Fault, MockHandle};
use conveyor_plugin_api::{ConnectorError, CredentialStore, ErrorKind, MemoryCredentials};
use serde_json::json;
use support::{bools, build, distinct, read, read_with_hook, secret_file, source, stream_names};

struct Setup {
    _dir: tempfile::TempDir,
    body: String,
    _server: MockServer,
    mock: XeroHandle,
    cfg: XeroMockConfig,
}

async fn start(cfg: XeroMockConfig, records: Option<XeroRecords>) -> Setup {
    let (server, mock) = match records {
        Some(r) => XeroMock::start_with(cfg.clone(), r).await,
        None => XeroMock::start(cfg.clone()).await,
    };
    let dir = tempfile::tempdir().unwrap();
    let refresh = if cfg.custom_connection {
        String::new()
    } else {
        format!(
            "refresh_token = \"{}\"\n",
            secret_file(dir.path(), "rt", &cfg.refresh_token)
        )
    };
    let body = format!(
        "type = \"xero\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n{refresh}tenant_id = \"{}\"\nbackoff_base_ms = 10\n",
        server.base_url(),
        server.url(TOKEN_PATH),
        cfg.client_id,
        secret_file(dir.path(), "cs", &cfg.client_secret),
        cfg.tenant_id,
    );
    Setup {
        _dir: dir,
        body,
        _server: server,
        mock,
        cfg,
    }
}

impl Setup {
    fn connector(
        &self,
        store: Arc<dyn CredentialStore>,
    ) -> Box<dyn conveyor_plugin_api::Connector> {
        build(&source("ledger", &self.body), store)
    }

    /// The data requests (token calls left out), in order.
    fn data_requests(&self) -> Vec<conveyor_mocks::RequestLog> {
        self.mock
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/api.xro/2.0/"))
            .collect()
    }
}

fn param(r: &conveyor_mocks::RequestLog, name: &str) -> Option<String> {
    r.query_pairs()
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The reference's sample invoice, a second one with odd cents and a
/// +13:00 date, and what hangs off them.
fn crafted() -> XeroRecords {
    let contact = json!({"ContactID": "a3675fc4-f8dd-4f03-ba5b-f1870566bcd7", "ContactNumber": "C-1",
        "ContactStatus": "ACTIVE", "Name": "Barney Rubble", "FirstName": "Barney", "LastName": "Rubble",
        "EmailAddress": "barney@bedrock.example", "IsCustomer": true, "IsSupplier": false,
        "DefaultCurrency": "NZD", "Addresses": [], "Phones": [], "UpdatedDateUTC": "/Date(1541176200000+0000)/"});
    let archived = json!({"ContactID": "0b1d9c7e-5a35-4d8e-9d0e-2f7f0b8d4a11", "ContactStatus": "ARCHIVED",
        "Name": "Fred Flintstone", "UpdatedDateUTC": "/Date(1541176201000+0000)/"});
    let sample = json!({"Type": "ACCREC", "InvoiceID": "d4956132-ed94-4dd7-9eaa-aa22dfdf06f2", "InvoiceNumber": "INV-0001",
        "Reference": "PL-7001", "Contact": {"ContactID": "a3675fc4-f8dd-4f03-ba5b-f1870566bcd7", "Name": "Barney Rubble"},
        "DateString": "2018-10-20T00:00:00", "Date": "/Date(1539993600000+0000)/",
        "DueDateString": "2018-12-30T00:00:00", "DueDate": "/Date(1546128000000+0000)/",
        "Status": "AUTHORISED", "LineAmountTypes": "Exclusive", "SubTotal": 40.0, "TotalTax": 0.0, "Total": 40.0,
        "AmountDue": 40.0, "AmountPaid": 0.0, "CurrencyCode": "NZD", "UpdatedDateUTC": "/Date(1541176290160+0000)/",
        "LineItems": [{"LineItemID": "5f7a612b-fdcc-4d33-90fa-a9f6bc6db32f", "Description": "Onboarding", "Quantity": 2.5,
            "UnitAmount": 16.0, "LineAmount": 40.0, "TaxAmount": 0.0, "AccountCode": "200", "Tracking": []}]});
    let odd = json!({"Type": "ACCPAY", "InvoiceID": "6e4bd2c3-0f41-4b7e-8a7f-3c2a1b0d9e8f", "InvoiceNumber": "BILL-7",
        "Contact": {"ContactID": "0b1d9c7e-5a35-4d8e-9d0e-2f7f0b8d4a11", "Name": "Fred Flintstone"},
        "Date": "/Date(1717160400000+1300)/", "DueDate": null, "Status": "VOIDED", "LineAmountTypes": "Inclusive",
        "SubTotal": 1073.53, "TotalTax": 161.03, "Total": 1234.56, "AmountDue": 0.0, "AmountPaid": 0.0,
        "CurrencyCode": "NZD", "CurrencyRate": 1.0, "UpdatedDateUTC": "/Date(1717243199999+0000)/",
        "LineItems": [{"LineItemID": "9d0c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a", "Description": "Rent", "Quantity": 1.0,
            "UnitAmount": 1234.5612, "LineAmount": 1234.56, "TaxAmount": 161.03, "AccountCode": "469", "TaxType": "INPUT2",
            "Tracking": [{"Name": "Region", "Option": "North"}]}]});
    let payment = json!({"PaymentID": "b26fd49a-cbae-470a-a8f8-bcbc119e0379", "Date": "/Date(1541116800000+0000)/",
        "Amount": 12.34, "BankAmount": 12.34, "CurrencyRate": 1.0, "Reference": "DD 1", "PaymentType": "ACCRECPAYMENT",
        "Status": "AUTHORISED", "IsReconciled": true, "HasAccount": true,
        "Account": {"AccountID": "ac993f75-035b-433c-82e0-7b7a2d40802c", "Code": "090"},
        "Invoice": {"InvoiceID": "d4956132-ed94-4dd7-9eaa-aa22dfdf06f2", "InvoiceNumber": "INV-0001", "Type": "ACCREC",
            "Contact": {"ContactID": "a3675fc4-f8dd-4f03-ba5b-f1870566bcd7", "Name": "Barney Rubble"}},
        "UpdatedDateUTC": "/Date(1541176300000+0000)/"});
    XeroRecords {
        contacts: vec![contact, archived],
        invoices: vec![sample, odd],
        payments: vec![payment],
    }
}

fn dates(sink: &support::Sink, name: &str) -> Vec<Option<String>> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Date32Type;
    sink.batches
        .iter()
        .flat_map(|b| {
            let c = b.column(b.schema().index_of(name).unwrap()).clone();
            c.as_primitive::<Date32Type>()
                .iter()
                .map(|d| {
                    d.map(|d| {
                        (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
                            + chrono::Duration::days(d.into()))
                        .to_string()
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn some(v: &[&str]) -> Vec<Option<String>> {
    v.iter().map(|s| Some(s.to_string())).collect()
}

#[tokio::test]
async fn xero_every_table_reads_with_exact_money_dates_and_instants() {
    let s = start(XeroMockConfig::default(), Some(crafted())).await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    assert_eq!(
        stream_names(c.as_ref()),
        ["contacts", "invoices", "invoice_line_items", "payments"]
    );

    let (r, inv) = read(c.as_ref(), "invoices", None).await;
    r.unwrap();
    assert_eq!(
        inv.strings("invoice_id"),
        some(&[
            "d4956132-ed94-4dd7-9eaa-aa22dfdf06f2",
            "6e4bd2c3-0f41-4b7e-8a7f-3c2a1b0d9e8f"
        ])
    );
    assert_eq!(inv.data_type("total"), DataType::Decimal128(18, 2));
    assert_eq!(inv.decimals("total"), some(&["40.00", "1234.56"]));
    assert_eq!(inv.decimals("sub_total"), some(&["40.00", "1073.53"]));
    assert_eq!(inv.decimals("total_tax"), some(&["0.00", "161.03"]));
    // `/Date(1539993600000+0000)/` is 2018-10-20; the +13:00 one is the
    // date shown in Xero (1 June 2024 in Auckland, 31 May in UTC).
    assert_eq!(inv.data_type("date"), DataType::Date32);
    assert_eq!(dates(&inv, "date"), some(&["2018-10-20", "2024-06-01"]));
    assert_eq!(
        dates(&inv, "due_date"),
        [Some("2018-12-30".to_string()), None]
    );
    assert_eq!(
        inv.instants("updated_at"),
        some(&["2018-11-02T16:31:30.160Z", "2024-06-01T11:59:59.999Z"])
    );
    assert_eq!(inv.strings("type"), some(&["ACCREC", "ACCPAY"]));
    // A voided invoice is a row with its status, not a gap.
    assert_eq!(inv.strings("status"), some(&["AUTHORISED", "VOIDED"]));
    assert_eq!(
        inv.strings("contact_id"),
        some(&[
            "a3675fc4-f8dd-4f03-ba5b-f1870566bcd7",
            "0b1d9c7e-5a35-4d8e-9d0e-2f7f0b8d4a11"
        ])
    );
    assert_eq!(
        inv.strings("contact_name"),
        some(&["Barney Rubble", "Fred Flintstone"])
    );
    // The lines are their own table's rows, not left in `other`.
    assert_eq!(inv.strings("other"), [None, None]);

    let (r, lines) = read(c.as_ref(), "invoice_line_items", None).await;
    r.unwrap();
    assert_eq!(
        lines.strings("line_item_id"),
        some(&[
            "5f7a612b-fdcc-4d33-90fa-a9f6bc6db32f",
            "9d0c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a"
        ])
    );
    assert_eq!(
        lines.strings("invoice_id"),
        inv.strings("invoice_id"),
        "each line names its invoice"
    );
    assert_eq!(lines.decimals("quantity"), some(&["2.5000", "1.0000"]));
    assert_eq!(
        lines.decimals("unit_amount"),
        some(&["16.0000", "1234.5612"])
    );
    assert_eq!(lines.decimals("line_amount"), some(&["40.00", "1234.56"]));
    assert_eq!(lines.ints("line_number"), [1, 1]);
    assert_eq!(
        lines.instants("invoice_updated_at"),
        inv.instants("updated_at")
    );
    // Paged requests are the only ones that carry line items.
    assert!(s
        .data_requests()
        .iter()
        .all(|r| param(r, "page").as_deref() == Some("1")
            && param(r, "pageSize").as_deref() == Some("1000")));

    let (r, pay) = read(c.as_ref(), "payments", None).await;
    r.unwrap();
    assert_eq!(
        pay.strings("invoice_id"),
        some(&["d4956132-ed94-4dd7-9eaa-aa22dfdf06f2"])
    );
    assert_eq!(pay.strings("contact_name"), some(&["Barney Rubble"]));
    assert_eq!(pay.decimals("amount"), some(&["12.34"]));
    assert_eq!(dates(&pay, "date"), some(&["2018-11-02"]));
    assert_eq!(bools(&pay, "is_reconciled"), [Some(true)]);
    assert_eq!(pay.strings("account_code"), some(&["090"]));

    // Archived contacts are asked for, so both come back.
    let (r, con) = read(c.as_ref(), "contacts", None).await;
    r.unwrap();
    assert_eq!(
        con.strings("name"),
        some(&["Barney Rubble", "Fred Flintstone"])
    );
    assert_eq!(con.strings("status"), some(&["ACTIVE", "ARCHIVED"]));
    assert_eq!(
        con.instants("updated_at"),
        some(&["2018-11-02T16:30:00.000Z", "2018-11-02T16:30:01.000Z"])
    );
    let last = s.data_requests().pop().unwrap();
    assert_eq!(param(&last, "includeArchived").as_deref(), Some("true"));
}

#[tokio::test]
async fn xero_pages_to_the_page_count_and_sends_tenant_and_accept_on_every_call() {
    let s = start(XeroMockConfig::default(), None).await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    let (r, inv) = read(c.as_ref(), "invoices", None).await;
    r.unwrap();
    let (ids, repeated) = distinct(&inv.strings("invoice_id"));
    assert!(!repeated && ids.len() == 2100 && inv.rows() == 2100);
    let reqs = s.data_requests();
    let pages: Vec<Option<String>> = reqs.iter().map(|r| param(r, "page")).collect();
    assert_eq!(pages, some(&["1", "2", "3"]), "1000 + 1000 + 100");
    for r in &reqs {
        assert_eq!(r.header("accept"), Some("application/json"), "{r:?}");
        assert_eq!(r.header("xero-tenant-id"), Some(s.cfg.tenant_id.as_str()));
        assert_eq!(param(r, "order").as_deref(), Some("UpdatedDateUTC ASC"));
        assert_eq!(
            r.header("if-modified-since"),
            None,
            "a first sync reads all"
        );
    }
    // Seeded money is whole cents: each total reads back exactly.
    let want: Vec<Option<String>> = s
        .mock
        .records("Invoices")
        .iter()
        .map(|r| Some(format!("{:.2}", r["Total"].as_f64().unwrap())))
        .collect();
    let mut got = inv.decimals("total");
    let by_id: std::collections::HashMap<String, Option<String>> = inv
        .strings("invoice_id")
        .into_iter()
        .flatten()
        .zip(got.drain(..))
        .collect();
    let ordered: Vec<Option<String>> = s
        .mock
        .records("Invoices")
        .iter()
        .map(|r| by_id[r["InvoiceID"].as_str().unwrap()].clone())
        .collect();
    assert_eq!(ordered, want);

    // A full last page: the page count, not an empty page, ends the read.
    let s = start(
        XeroMockConfig {
            invoices: 2000,
            ..Default::default()
        },
        None,
    )
    .await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    let (r, inv) = read(c.as_ref(), "invoices", None).await;
    r.unwrap();
    assert_eq!(inv.rows(), 2000);
    assert_eq!(s.data_requests().len(), 2);
}

#[tokio::test]
async fn xero_incremental_reads_send_if_modified_since_and_emit_only_the_change() {
    let s = start(XeroMockConfig::default(), None).await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    let (r, first) = read(c.as_ref(), "invoices", None).await;
    r.unwrap();
    let state = first.checkpoints.last().unwrap().clone();
    let cursor = state["cursor"].as_str().unwrap().to_string();

    // Nothing changed: the boundary invoice comes again and is not emitted.
    let (r, idle) = read(c.as_ref(), "invoices", Some(state.clone())).await;
    r.unwrap();
    assert_eq!(idle.rows(), 0);
    let sent = s.data_requests().last().unwrap().clone();
    // Whole seconds of the cursor, as Xero documents the header.
    assert_eq!(sent.header("if-modified-since"), Some(&cursor[..19]));

    // An invoice voided in Xero: the change, and nothing else.
    let id = s.mock.records("Invoices")[41]["InvoiceID"]
        .as_str()
        .unwrap()
        .to_string();
    let at = s.mock.touch("Invoices", &id, |r| {
        r["Status"] = json!("VOIDED");
        r["AmountDue"] = json!(0.0);
    });
    let (r, second) = read(c.as_ref(), "invoices", Some(state)).await;
    r.unwrap();
    assert_eq!(second.strings("invoice_id"), some(&[&id]));
    assert_eq!(second.strings("status"), some(&["VOIDED"]));
    assert_eq!(second.decimals("amount_due"), some(&["0.00"]));
    // The cursor is the change's second: what If-Modified-Since can say.
    let second_of = chrono::DateTime::from_timestamp(at.timestamp(), 0).unwrap();
    assert_eq!(
        second.last_cursor(),
        json!(second_of.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    );
}

#[tokio::test]
async fn xero_records_sharing_the_cursors_second_are_not_emitted_again() {
    // Two invoices 800 ms apart in one second: the header asks from the
    // second, so both come again on the next run, unchanged.
    let mut records = crafted();
    records.invoices[0]["UpdatedDateUTC"] = json!("/Date(1717243199100+0000)/");
    let s = start(XeroMockConfig::default(), Some(records)).await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    let (r, first) = read(c.as_ref(), "invoices", None).await;
    r.unwrap();
    assert_eq!(first.rows(), 2);
    let state = first.checkpoints.last().unwrap().clone();
    assert_eq!(state["cursor"], "2024-06-01T11:59:59.000Z");
    let (r, again) = read(c.as_ref(), "invoices", Some(state)).await;
    r.unwrap();
    let asked = s.data_requests().last().unwrap().clone();
    assert_eq!(
        asked.header("if-modified-since"),
        Some("2024-06-01T11:59:59")
    );
    assert_eq!(again.rows(), 0, "{:?}", again.strings("invoice_id"));
}

#[tokio::test]
async fn xero_an_xml_answer_fails_the_read_saying_so() {
    let s = start(XeroMockConfig::default(), Some(crafted())).await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    s.mock.answer_xml(1);
    let (r, sink) = read(c.as_ref(), "invoices", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Data);
    assert!(
        e.message.contains("answered XML (text/xml")
            && e.message.contains("Accept: application/json")
            && e.message.contains("<Response"),
        "{e}"
    );
    assert!(sink.checkpoints.is_empty() && sink.batches.is_empty());
}

#[tokio::test]
async fn xero_a_wrong_tenant_is_refused_with_xeros_reason() {
    let s = start(XeroMockConfig::default(), Some(crafted())).await;
    let body = s
        .body
        .replace(&s.cfg.tenant_id, "00000000-0000-4000-8000-000000000000");
    let c = build(
        &source("ledger", &body),
        Arc::new(MemoryCredentials::default()),
    );
    let (r, _) = read(c.as_ref(), "contacts", None).await;
    let e = r.unwrap_err();
    assert!(
        e.message.contains("HTTP 403")
            && e.message.contains("Forbidden: AuthorizationUnsuccessful"),
        "{e}"
    );
    assert_eq!(
        s.data_requests()[0].header("xero-tenant-id"),
        Some("00000000-0000-4000-8000-000000000000")
    );
}

#[tokio::test]
async fn xero_a_429_is_waited_out_and_every_row_arrives_once() {
    let s = start(XeroMockConfig::default(), None).await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    let mock = s.mock.clone();
    let started = Instant::now();
    // Throttled after the first page, for a second.
    let (r, inv) = read_with_hook(c.as_ref(), "invoices", None, move |n| {
        if n == 1 {
            mock.push_faults([Fault::RateLimited {
                retry_after_secs: 1,
            }]);
        }
    })
    .await;
    r.unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    let (ids, repeated) = distinct(&inv.strings("invoice_id"));
    assert!(!repeated && ids.len() == 2100 && inv.rows() == 2100);
    let pages: Vec<Option<String>> = s.data_requests().iter().map(|r| param(r, "page")).collect();
    assert_eq!(pages, some(&["1", "2", "2", "3"]), "page 2 asked again");
}

/// A store that notes how many requests the mock had seen at each save.
struct Watched {
    inner: MemoryCredentials,
    mock: XeroHandle,
    saves: Mutex<Vec<usize>>,
}

impl CredentialStore for Watched {
    fn load(&self, key: &str) -> Result<Option<String>, ConnectorError> {
        self.inner.load(key)
    }
    fn save(&self, key: &str, value: &str) -> Result<(), ConnectorError> {
        self.saves.lock().unwrap().push(self.mock.requests().len());
        self.inner.save(key, value)
    }
}

#[tokio::test]
async fn xero_an_expired_token_is_refreshed_and_the_rotated_refresh_token_saved_before_use() {
    let s = start(XeroMockConfig::default(), None).await;
    let store = Arc::new(Watched {
        inner: MemoryCredentials::default(),
        mock: s.mock.clone(),
        saves: Mutex::new(Vec::new()),
    });
    let c = s.connector(store.clone());
    let mock = s.mock.clone();
    let (r, inv) = read_with_hook(c.as_ref(), "invoices", None, move |n| {
        if n == 1 {
            mock.expire_tokens();
        }
    })
    .await;
    r.unwrap();
    assert_eq!(inv.rows(), 2100);
    assert_eq!(s.mock.token_requests(), 2);
    assert_eq!(
        store.load("ledger.refresh_token").unwrap(),
        s.mock.current_refresh_token(),
        "the second rotation was kept"
    );
    // Each save came right after its token answer: the request just
    // before was the token call, and nothing was sent in between.
    let log = s.mock.requests();
    let saves = store.saves.lock().unwrap().clone();
    assert_eq!(saves.len(), 2);
    for n in saves {
        assert_eq!(log[n - 1].path, TOKEN_PATH, "{:?}", log[n - 1]);
        assert!(log.len() > n && log[n].path.starts_with("/api.xro/"));
    }
    // A new process with that store: the configured token is revoked, the
    // stored one works.
    let (r, con) = read(s.connector(store.clone()).as_ref(), "contacts", None).await;
    r.unwrap();
    assert_eq!(con.rows(), 30);
}

#[tokio::test]
async fn xero_a_custom_connection_uses_client_credentials() {
    let cfg = XeroMockConfig {
        custom_connection: true,
        ..Default::default()
    };
    let s = start(cfg, Some(crafted())).await;
    let store = Arc::new(MemoryCredentials::default());
    let c = s.connector(store.clone());
    let (r, con) = read(c.as_ref(), "contacts", None).await;
    r.unwrap();
    assert_eq!(con.rows(), 2);
    assert_eq!(s.mock.token_requests(), 1);
    assert_eq!(store.load("ledger.refresh_token").unwrap(), None);
}

#[tokio::test]
async fn xero_a_wrong_secret_is_a_clear_error_without_the_secret_in_any_form() {
    let cfg = XeroMockConfig {
        echo_refused_credentials: true,
        ..Default::default()
    };
    let s = start(cfg.clone(), Some(crafted())).await;
    let wrong = "wr0ng+secret/=&%";
    // The source's secret reference now holds the wrong one.
    std::fs::write(s._dir.path().join("cs"), wrong).unwrap();
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    let (r, sink) = read(c.as_ref(), "invoices", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message.contains("token request")
            && e.message.contains("HTTP 400")
            && e.message.contains("invalid_client"),
        "{e}"
    );
    // The mock quoted the credentials back; none of their forms survive.
    let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
    let pair = format!("{}:{wrong}", cfg.client_id);
    let forms = [
        wrong.to_string(),
        url::form_urlencoded::byte_serialize(wrong.as_bytes()).collect::<String>(),
        b64(&pair),
        b64(wrong),
        cfg.refresh_token.clone(),
    ];
    for f in &forms {
        assert!(!e.message.contains(f.as_str()), "{f:?} in {e}");
    }
    assert!(
        e.message.contains("refused Authorization"),
        "the echo was quoted: {e}"
    );
    assert!(sink.batches.is_empty());
}

#[tokio::test]
async fn xero_a_forbidden_stream_is_unavailable_and_says_to_leave_it_out() {
    let s = start(XeroMockConfig::default(), Some(crafted())).await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    s.mock.push_faults([Fault::Error(
        403,
        json!({"Type": null, "Title": "Forbidden", "Status": 403, "Detail": "AuthorizationUnsuccessful"}),
    )]);
    let (r, sink) = read(c.as_ref(), "payments", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(
        e.message.contains("stream `payments`")
            && e.message.contains("Forbidden: AuthorizationUnsuccessful")
            && e.message.contains(
                "streams = [\"contacts\", \"invoices\", \"invoice_line_items\"] in [sources.ledger]"
            ),
        "{e}"
    );
    assert!(sink.checkpoints.is_empty());
}

#[tokio::test]
async fn xero_line_items_follow_their_invoices_changes() {
    let s = start(XeroMockConfig::default(), None).await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    let (r, first) = read(c.as_ref(), "invoice_line_items", None).await;
    r.unwrap();
    assert_eq!(first.rows(), 4200, "two lines an invoice");
    let state = first.checkpoints.last().unwrap().clone();
    let id = s.mock.records("Invoices")[7]["InvoiceID"]
        .as_str()
        .unwrap()
        .to_string();
    s.mock.touch("Invoices", &id, |r| {
        r["LineItems"][1]["LineAmount"] = json!(99.99);
    });
    let (r, second) = read(c.as_ref(), "invoice_line_items", Some(state)).await;
    r.unwrap();
    assert_eq!(second.strings("invoice_id"), some(&[&id, &id]));
    assert_eq!(second.ints("line_number"), [1, 2]);
    assert_eq!(second.decimals("line_amount")[1].as_deref(), Some("99.99"));
}
