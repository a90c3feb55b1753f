//! The Gusto connector against its mock over loopback HTTP: decimal-string
//! money and hours, payroll date windows within the API's limits (shrunk
//! when the server's horizon is nearer), unprocessed payrolls re-pulled
//! until processed, page headers, the API version header, refresh-token
//! rotation, 429s, Gusto's error bodies, a stream the account may not read.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_schema::DataType;
use chrono::{NaiveDate, Utc};
use conveyor_mocks::server::MockServer;
use conveyor_mocks::vendors::gusto::{GustoHandle, GustoMock, GustoMockConfig};
use conveyor_mocks::vendors::{Fault, MockHandle};
use conveyor_plugin_api::{Connector, CredentialStore, ErrorKind, MemoryCredentials};
use serde_json::json;
use support::{
    bools, build, capture_logs, distinct, read, read_with_hook, secret_file, source, stream_names,
};

struct Setup {
    _dir: tempfile::TempDir,
    body: String,
    _server: MockServer,
    mock: GustoHandle,
}

async fn start() -> Setup {
    start_with(GustoMockConfig::default()).await
}

async fn start_with(cfg: GustoMockConfig) -> Setup {
    let (server, mock) = GustoMock::start(cfg.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "type = \"gusto\"\nbase_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\ncompany_id = \"{}\"\nbackoff_base_ms = 10\n",
        server.base_url(),
        cfg.client_id,
        secret_file(dir.path(), "cs", &cfg.client_secret),
        secret_file(dir.path(), "rt", &cfg.refresh_token),
        cfg.company_id,
    );
    Setup {
        _dir: dir,
        body,
        _server: server,
        mock,
    }
}

fn days_ago(n: i64) -> NaiveDate {
    Utc::now().date_naive() - chrono::Duration::days(n)
}

impl Setup {
    fn connector(&self, extra: &str, store: Arc<dyn CredentialStore>) -> Box<dyn Connector> {
        build(&source("pay", &format!("{}{extra}", self.body)), store)
    }

    fn payroll_windows(&self) -> Vec<(NaiveDate, NaiveDate)> {
        self.mock
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/payrolls"))
            .map(|r| {
                let get = |k: &str| {
                    r.query_pairs()
                        .into_iter()
                        .find(|(n, _)| n == k)
                        .unwrap()
                        .1
                        .parse()
                        .unwrap()
                };
                (get("start_date"), get("end_date"))
            })
            .collect()
    }
}

#[tokio::test]
async fn decimal_strings_become_exact_decimals_and_employees_are_typed() {
    let s = start().await;
    let c = s.connector(
        &format!("start_date = \"{}\"", days_ago(45)),
        Arc::new(MemoryCredentials::default()),
    );
    let (r, emp) = read(c.as_ref(), "employees", None).await;
    r.unwrap();
    assert_eq!(emp.rows(), 30);
    assert_eq!(emp.data_type("rate"), DataType::Decimal128(18, 2));
    assert_eq!(emp.decimals("rate")[0].as_deref(), Some("25.50"));
    assert_eq!(emp.data_type("hire_date"), DataType::Date32);

    let (r, comp) = read(c.as_ref(), "employee_compensations", None).await;
    r.unwrap();
    assert_eq!(comp.data_type("hours"), DataType::Decimal128(12, 3));
    assert_eq!(comp.data_type("gross_pay"), DataType::Decimal128(18, 2));
    // Every value equals the API's string, digit for digit.
    let payrolls: Vec<_> = s
        .mock
        .payrolls()
        .into_iter()
        .filter(|p| {
            comp.strings("payroll_uuid")
                .iter()
                .flatten()
                .any(|u| p["payroll_uuid"] == u.as_str())
        })
        .collect();
    assert!(
        payrolls.len() >= 2,
        "{} payrolls in 45 days",
        payrolls.len()
    );
    let want_gross: Vec<String> = payrolls
        .iter()
        .flat_map(|p| {
            p["employee_compensations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["gross_pay"].as_str().unwrap().to_string())
        })
        .collect();
    let mut got_gross: Vec<String> = comp.decimals("gross_pay").into_iter().flatten().collect();
    let mut want_sorted = want_gross.clone();
    got_gross.sort();
    want_sorted.sort();
    assert_eq!(got_gross, want_sorted);
    let want_hours: Vec<&str> = payrolls
        .iter()
        .flat_map(|p| {
            p["employee_compensations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["hourly_compensations"][0]["hours"].as_str().unwrap())
        })
        .collect();
    let got_hours: Vec<String> = comp.decimals("hours").into_iter().flatten().collect();
    assert!(
        want_hours.iter().any(|h| h.ends_with(".500")),
        "half hours exercised"
    );
    let mut a: Vec<String> = want_hours.iter().map(|h| h.to_string()).collect();
    let mut b = got_hours.clone();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    // Every call named the API version and asked for pages.
    for r in s
        .mock
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/v1/"))
    {
        assert_eq!(
            r.header("x-gusto-api-version"),
            Some("2025-06-15"),
            "{}",
            r.path
        );
        assert!(
            r.query_pairs().iter().any(|(k, v)| k == "page" && v == "1"),
            "{}",
            r.query
        );
    }
}

#[tokio::test]
async fn payroll_windows_stay_within_the_api_limits_and_miss_nothing() {
    let s = start().await;
    let c = s.connector(
        &format!("start_date = \"{}\"", days_ago(600)),
        Arc::new(MemoryCredentials::default()),
    );
    let (r, sink) = read(c.as_ref(), "payrolls", None).await;
    r.unwrap();
    let windows = s.payroll_windows();
    assert!(windows.len() >= 2, "{windows:?}");
    for (from, to) in &windows {
        assert!(
            (*to - *from).num_days() <= 366 && *to <= days_ago(-92),
            "{from}..{to}"
        );
    }
    // 40 periods, the newest unprocessed: each payroll once, processed or not.
    let all: Vec<String> = s
        .mock
        .payrolls()
        .iter()
        .map(|p| p["payroll_uuid"].as_str().unwrap().to_string())
        .collect();
    let mut got: Vec<String> = sink.strings("payroll_uuid").into_iter().flatten().collect();
    got.sort();
    let mut want = all.clone();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        bools(&sink, "processed")
            .iter()
            .filter(|p| **p == Some(false))
            .count(),
        1
    );
    assert_eq!(sink.data_type("check_date"), DataType::Date32);
    assert_eq!(sink.data_type("gross_pay"), DataType::Decimal128(18, 2));
}

#[tokio::test]
async fn incremental_sync_rereads_only_a_lookback_and_picks_up_new_payrolls() {
    let s = start().await;
    let c = s.connector(
        &format!("start_date = \"{}\"", days_ago(300)),
        Arc::new(MemoryCredentials::default()),
    );
    let (r, first) = read(c.as_ref(), "payrolls", None).await;
    r.unwrap();
    let state = first.checkpoints.last().unwrap().clone();
    let cursor: NaiveDate = state["cursor"].as_str().unwrap().parse().unwrap();
    let newest_processed = s
        .mock
        .payrolls()
        .iter()
        .filter(|p| p["processed"] == true)
        .filter_map(|p| p["pay_period"]["end_date"].as_str().map(str::to_string))
        .max()
        .unwrap();
    assert_eq!(cursor.to_string(), newest_processed);

    let added = s.mock.add_payroll();
    let before = s.payroll_windows().len();
    let (r, second) = read(c.as_ref(), "payrolls", Some(state)).await;
    r.unwrap();
    let windows = &s.payroll_windows()[before..];
    assert_eq!(
        windows[0].0,
        cursor - chrono::Duration::days(31),
        "starts a look-back before the cursor"
    );
    let ids: Vec<String> = second
        .strings("payroll_uuid")
        .into_iter()
        .flatten()
        .collect();
    assert!(ids.contains(&added["payroll_uuid"].as_str().unwrap().to_string()));
    // The look-back's processed payrolls, the one still unprocessed, the new one.
    let unprocessed = s.mock.payrolls()[0]["payroll_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ids.contains(&unprocessed), "{ids:?}");
    assert!(ids.len() <= 4 && ids.len() < first.rows(), "{ids:?}");
    assert_eq!(second.last_cursor(), added["pay_period"]["end_date"]);
}

#[tokio::test]
async fn rotated_refresh_tokens_survive_a_restart_and_an_expired_access_token_is_replaced() {
    let s = start().await;
    let store: Arc<MemoryCredentials> = Arc::new(MemoryCredentials::default());
    let c = s.connector(&format!("start_date = \"{}\"", days_ago(60)), store.clone());
    let mock = s.mock.clone();
    let (r, sink) = read_with_hook(c.as_ref(), "employee_compensations", None, move |n| {
        if n == 1 {
            mock.expire_tokens();
        }
    })
    .await;
    r.unwrap();
    assert!(sink.batches.len() >= 3 && sink.rows() == 30 * sink.batches.len());
    assert_eq!(s.mock.token_requests(), 2);
    let tok = s
        .mock
        .requests()
        .into_iter()
        .find(|r| r.path == "/oauth/token")
        .unwrap();
    assert!(
        tok.header("content-type").unwrap().contains("json"),
        "Gusto takes a JSON token request"
    );
    assert_eq!(
        store.load("pay.refresh_token").unwrap(),
        s.mock.current_refresh_token()
    );

    // A restart: the same store works, the configured token is revoked.
    let (r, _) = read(s.connector("", store.clone()).as_ref(), "employees", None).await;
    r.unwrap();
    let (r, _) = read(
        s.connector("", Arc::new(MemoryCredentials::default()))
            .as_ref(),
        "employees",
        None,
    )
    .await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message.contains("invalid_grant") && !e.message.contains("gusto-rt-initial"),
        "{e}"
    );
}

#[tokio::test]
async fn a_429_is_waited_out_and_error_bodies_are_quoted() {
    let s = start().await;
    let store: Arc<MemoryCredentials> = Arc::new(MemoryCredentials::default());
    let c = s.connector("", store.clone());
    s.mock.push_faults([Fault::RateLimited {
        retry_after_secs: 1,
    }]);
    let started = Instant::now();
    let (r, sink) = read(c.as_ref(), "employees", None).await;
    r.unwrap();
    assert_eq!(sink.rows(), 30);
    assert!(started.elapsed() >= Duration::from_millis(950));

    // (A 422 on `end_date` shrinks the window instead; see below.)
    s.mock.push_faults([Fault::Error(
        422,
        json!({"errors": [{"error_key": "payroll", "category": "nested_errors", "errors": [{"error_key": "start_date", "category": "invalid_parameter", "message": "Start date and end date must be within one year of each other"}]}]}),
    )]);
    let (r, sink) = read(c.as_ref(), "payrolls", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Http);
    assert!(
        e.message.contains("HTTP 422")
            && e.message.contains(
                "start_date: Start date and end date must be within one year of each other (invalid_parameter)"
            ),
        "{e}"
    );
    assert!(sink.checkpoints.is_empty());
}

impl Setup {
    /// The `end_date` of every payroll-list request, in order.
    fn window_ends(&self) -> Vec<NaiveDate> {
        self.payroll_windows().into_iter().map(|(_, e)| e).collect()
    }
}

/// Issue 21: only `processing_statuses=processed` was asked for, so an
/// unprocessed payroll never reached the warehouse, and one processed
/// after the look-back had passed it was never read at all.
#[tokio::test]
async fn gusto_unprocessed_payrolls_are_read_and_reread_until_processed() {
    let s = start().await;
    // Period 5 (ended ~73 days ago) is still unprocessed, as is the newest.
    let late = s.mock.payrolls()[5]["payroll_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let newest = s.mock.payrolls()[0]["payroll_uuid"]
        .as_str()
        .unwrap()
        .to_string();
    s.mock.edit_payroll(&late, |p| {
        p["processed"] = json!(false);
        p["processed_date"] = json!(null);
    });
    let c = s.connector(
        &format!("start_date = \"{}\"", days_ago(300)),
        Arc::new(MemoryCredentials::default()),
    );
    let (r, first) = read(c.as_ref(), "payrolls", None).await;
    r.unwrap();
    let req = s
        .mock
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/payrolls"))
        .unwrap();
    assert!(req
        .query_pairs()
        .contains(&("processing_statuses".into(), "processed,unprocessed".into())));
    let processed_of = |sink: &support::Sink, id: &str| {
        let at = sink
            .strings("payroll_uuid")
            .iter()
            .position(|u| u.as_deref() == Some(id))
            .unwrap_or_else(|| panic!("{id} not read"));
        bools(sink, "processed")[at]
    };
    assert_eq!(processed_of(&first, &late), Some(false));
    assert_eq!(processed_of(&first, &newest), Some(false));
    let state = first.checkpoints.last().unwrap().clone();
    let pending: Vec<&str> = state["unprocessed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["payroll_uuid"].as_str().unwrap())
        .collect();
    assert_eq!(pending.len(), 2);
    assert!(pending.contains(&late.as_str()) && pending.contains(&newest.as_str()));
    // The cursor follows processed payrolls: period 1, not the unprocessed newest.
    assert_eq!(
        state["cursor"],
        s.mock.payrolls()[1]["pay_period"]["end_date"]
    );
    // Drafts are not pay: no compensations for them yet.
    let (r, comp) = read(c.as_ref(), "employee_compensations", None).await;
    r.unwrap();
    let comp_state = comp.checkpoints.last().unwrap().clone();
    let (paid, _) = distinct(&comp.strings("payroll_uuid"));
    assert!(!paid.contains(&late) && !paid.contains(&newest) && paid.len() >= 15);

    // Gusto processes the late one; the next run re-pulls it, although it
    // lies well before the look-back of the cursor.
    s.mock.process_payroll(&late);
    let before = s.payroll_windows().len();
    let (r, second) = read(c.as_ref(), "payrolls", Some(state)).await;
    r.unwrap();
    let late_start: NaiveDate = s.mock.payrolls()[5]["pay_period"]["start_date"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(s.payroll_windows()[before].0, late_start);
    assert_eq!(processed_of(&second, &late), Some(true));
    let state = second.checkpoints.last().unwrap().clone();
    assert_eq!(state["unprocessed"].as_array().unwrap().len(), 1, "{state}");
    let (r, comp2) = read(c.as_ref(), "employee_compensations", Some(comp_state)).await;
    r.unwrap();
    let (paid, _) = distinct(&comp2.strings("payroll_uuid"));
    assert!(paid.contains(&late) && !paid.contains(&newest), "{paid:?}");
}

/// Issue 21: windows end 60 days after the *local* today; a server whose
/// today is far enough behind refuses that (422, end more than 3 months
/// after its today). The window shrinks, with one warning, no error.
#[tokio::test]
async fn gusto_a_window_past_the_servers_horizon_is_shrunk_with_one_warning() {
    let s = start_with(GustoMockConfig {
        upcoming: 2,
        server_day_offset: -40,
        ..Default::default()
    })
    .await;
    let c = s.connector(
        &format!("start_date = \"{}\"", days_ago(100)),
        Arc::new(MemoryCredentials::default()),
    );
    let logs = capture_logs();
    let (r, sink) = read(c.as_ref(), "payrolls", None).await;
    r.unwrap_or_else(|e| panic!("{e}"));
    // Refused at +60 days (the server's horizon is +52), accepted at +29.
    assert_eq!(s.window_ends(), [days_ago(-60), days_ago(-29)]);
    let warned = logs.warnings_with("Gusto refused payroll windows");
    assert_eq!(warned.len(), 1, "{:?}", logs.warnings());
    // Every payroll of the accepted window, the upcoming unprocessed ones too.
    let want: std::collections::BTreeSet<String> = s
        .mock
        .payrolls()
        .iter()
        .filter(|p| {
            let d = |k: &str| {
                p["pay_period"][k]
                    .as_str()
                    .unwrap()
                    .parse::<NaiveDate>()
                    .unwrap()
            };
            d("start_date") >= days_ago(100) && d("end_date") <= days_ago(-29)
        })
        .map(|p| p["payroll_uuid"].as_str().unwrap().to_string())
        .collect();
    let (got, repeated) = distinct(&sink.strings("payroll_uuid"));
    assert!(!repeated);
    assert_eq!(got, want);
    assert_eq!(
        bools(&sink, "processed")
            .iter()
            .filter(|p| **p == Some(false))
            .count(),
        3,
        "the newest and the two upcoming"
    );
}

/// A horizon no shrinking meets is one error (the server's own message,
/// once), not a warning and an error.
#[tokio::test]
async fn gusto_a_horizon_no_shrinking_meets_is_reported_once() {
    let s = start_with(GustoMockConfig {
        server_day_offset: -400,
        ..Default::default()
    })
    .await;
    let c = s.connector(
        &format!("start_date = \"{}\"", days_ago(100)),
        Arc::new(MemoryCredentials::default()),
    );
    let logs = capture_logs();
    let (r, sink) = read(c.as_ref(), "payrolls", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Http);
    assert_eq!(
        e.message
            .matches("End date cannot be more than 3 months in future")
            .count(),
        1,
        "{e}"
    );
    assert!(logs.warnings().is_empty(), "{:?}", logs.warnings());
    assert!(sink.checkpoints.is_empty());
    // It shrank all the way to the window's start first.
    let ends = s.window_ends();
    assert_eq!(ends[0], days_ago(-60));
    assert!(
        *ends.last().unwrap() >= days_ago(100) && ends.len() == 6,
        "{ends:?}"
    );
}

/// Issue 21, point 5.
#[tokio::test]
async fn gusto_an_unreadable_stream_says_to_leave_it_out_and_leaving_it_out_works() {
    let s = start().await;
    let store: Arc<MemoryCredentials> = Arc::new(MemoryCredentials::default());
    let c = s.connector("", store.clone());
    // A token without the payroll scope (body shape guessed, as Gusto's errors).
    s.mock.push_faults([Fault::Error(
        403,
        json!({"errors": [{"error_key": "base", "category": "forbidden", "message": "The access token is missing the payrolls:read scope"}]}),
    )]);
    let (r, sink) = read(c.as_ref(), "payrolls", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(
        e.message.contains("stream `payrolls`")
            && e.message.contains("missing the payrolls:read scope")
            && e.message
                .contains("streams = [\"employees\", \"employee_compensations\"] in [sources.pay]"),
        "{e}"
    );
    assert!(sink.checkpoints.is_empty());

    let c = s.connector("streams = [\"employees\"]", store);
    assert_eq!(stream_names(c.as_ref()), ["employees"]);
    let before = s.mock.requests().len();
    for left_out in ["payrolls", "employee_compensations"] {
        let (r, _) = read(c.as_ref(), left_out, None).await;
        assert_eq!(r.unwrap_err().kind, ErrorKind::Config);
    }
    assert_eq!(s.mock.requests().len(), before);
    let (r, emp) = read(c.as_ref(), "employees", None).await;
    r.unwrap();
    assert_eq!(emp.rows(), 30);
}
