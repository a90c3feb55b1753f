//! The Gusto connector against its mock over loopback HTTP: decimal-string
//! money and hours, payroll date windows within the API's limits, page
//! headers, the API version header, refresh-token rotation, 429s and
//! Gusto's error bodies.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_schema::DataType;
use chrono::{NaiveDate, Utc};
use conveyor_mocks::server::MockServer;
use conveyor_mocks::vendors::gusto::{GustoHandle, GustoMock, GustoMockConfig};
use conveyor_mocks::vendors::{Fault, MockHandle};
use conveyor_plugin_api::{Connector, CredentialStore, ErrorKind, MemoryCredentials};
use serde_json::json;
use support::{build, read, read_with_hook, secret_file, source};

struct Setup {
    _dir: tempfile::TempDir,
    body: String,
    _server: MockServer,
    mock: GustoHandle,
}

async fn start() -> Setup {
    let cfg = GustoMockConfig::default();
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
    // 40 periods, the newest unprocessed: each processed payroll once.
    let processed: Vec<String> = s
        .mock
        .payrolls()
        .iter()
        .filter(|p| p["processed"] == true)
        .map(|p| p["payroll_uuid"].as_str().unwrap().to_string())
        .collect();
    let mut got: Vec<String> = sink.strings("payroll_uuid").into_iter().flatten().collect();
    got.sort();
    let mut want = processed.clone();
    want.sort();
    assert_eq!(got, want);
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
    assert!(ids.len() <= 3 && ids.len() < first.rows(), "{ids:?}");
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

    s.mock.push_faults([Fault::Error(
        422,
        json!({"errors": [{"error_key": "payroll", "category": "nested_errors", "errors": [{"error_key": "end_date", "category": "invalid_parameter", "message": "End date cannot be more than 3 months in future"}]}]}),
    )]);
    let (r, sink) = read(c.as_ref(), "payrolls", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Http);
    assert!(
        e.message.contains("HTTP 422")
            && e.message.contains(
                "end_date: End date cannot be more than 3 months in future (invalid_parameter)"
            ),
        "{e}"
    );
    assert!(sink.checkpoints.is_empty());
}
