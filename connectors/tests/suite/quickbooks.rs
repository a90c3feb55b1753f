//! The QuickBooks Online connector against its mock over loopback HTTP:
//! query paging, typed money, CDC deletions anchored on the server's clock,
//! boundary records emitted once, rotating refresh tokens, a `Fault`
//! inside a 200, throttling and fault messages, a stream the account may
//! not read.

use crate::support;

use std::sync::Arc;

use arrow_schema::DataType;
use conveyor_mocks::server::MockServer;
use conveyor_mocks::vendors::quickbooks::{
    QuickBooksHandle, QuickBooksMock, QuickBooksMockConfig, TOKEN_PATH,
};
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
    mock: QuickBooksHandle,
}

async fn start() -> Setup {
    start_with(QuickBooksMockConfig::default()).await
}

async fn start_with(cfg: QuickBooksMockConfig) -> Setup {
    let (server, mock) = QuickBooksMock::start(cfg.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "type = \"quickbooks\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\nrealm_id = \"{}\"\nbackoff_base_ms = 10\n",
        server.base_url(),
        server.url(TOKEN_PATH),
        cfg.client_id,
        secret_file(dir.path(), "cs", &cfg.client_secret),
        secret_file(dir.path(), "rt", &cfg.refresh_token),
        cfg.realm_id,
    );
    Setup {
        _dir: dir,
        body,
        _server: server,
        mock,
    }
}

impl Setup {
    fn connector(&self, store: Arc<dyn CredentialStore>) -> Box<dyn Connector> {
        build(&source("books", &self.body), store)
    }

    fn queries(&self) -> Vec<String> {
        self.mock
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/query"))
            .map(|r| {
                r.query_pairs()
                    .into_iter()
                    .find(|(k, _)| k == "query")
                    .unwrap()
                    .1
            })
            .collect()
    }
}

#[tokio::test]
async fn full_sync_pages_the_query_endpoint_and_types_money_and_instants() {
    let s = start().await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    assert_eq!(
        c.streams()
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>(),
        ["customers", "invoices", "payments"]
    );

    let (r, inv) = read(c.as_ref(), "invoices", None).await;
    r.unwrap();
    assert_eq!(inv.rows(), 2100);
    let q = s.queries();
    assert_eq!(q.len(), 3, "1000 + 1000 + 100");
    assert!(
        q[0].ends_with("STARTPOSITION 1 MAXRESULTS 1000")
            && q[2].ends_with("STARTPOSITION 2001 MAXRESULTS 1000"),
        "{q:?}"
    );
    assert_eq!(inv.data_type("total_amt"), DataType::Decimal128(18, 2));
    // Amounts arrive as JSON numbers; they are kept exactly.
    let mock_first = &s.mock.records("Invoice")[0];
    let want = format!("{:.2}", mock_first["TotalAmt"].as_f64().unwrap());
    assert_eq!(inv.decimals("total_amt")[0].as_deref(), Some(want.as_str()));
    assert_eq!(
        inv.strings("customer_id")[0].as_deref(),
        mock_first["CustomerRef"]["value"].as_str()
    );
    // -07:00 company time is stored as the UTC instant.
    let local = mock_first["MetaData"]["LastUpdatedTime"].as_str().unwrap();
    let utc = chrono::DateTime::parse_from_rfc3339(local)
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(
        inv.instants("updated_at")[0],
        Some(utc.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    );
    assert_eq!(inv.data_type("txn_date"), DataType::Date32);

    // Inactive customers are asked for explicitly, so all 25 come back.
    let (r, cust) = read(c.as_ref(), "customers", None).await;
    r.unwrap();
    assert_eq!(cust.rows(), 25);
    assert!(s
        .queries()
        .last()
        .unwrap()
        .contains("Active IN (true,false)"));

    let (r, pay) = read(c.as_ref(), "payments", None).await;
    r.unwrap();
    assert_eq!(pay.strings("invoice_ids")[0].as_deref(), Some("[\"1002\"]"));
}

#[tokio::test]
async fn incremental_sync_reads_changes_and_turns_cdc_deletions_into_tombstones() {
    let s = start().await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    let (r, first) = read(c.as_ref(), "customers", None).await;
    r.unwrap();
    let state = first.checkpoints.last().unwrap().clone();

    s.mock
        .touch("Customer", "3", |r| r["Balance"] = json!(12.34));
    s.mock.delete("Customer", "7");
    let (r, second) = read(c.as_ref(), "customers", Some(state.clone())).await;
    r.unwrap();
    let ids: Vec<_> = second.strings("id").into_iter().flatten().collect();
    // The change, then the tombstone; the boundary record (>=) came again
    // unchanged and is not emitted twice.
    assert_eq!(ids, ["3", "7"]);
    assert_eq!(bools(&second, "deleted"), [Some(false), Some(true)]);
    assert_eq!(second.decimals("balance")[0].as_deref(), Some("12.34"));
    let q = s.queries();
    assert!(
        q.last()
            .unwrap()
            .contains("where MetaData.LastUpdatedTime >= '"),
        "{q:?}"
    );
    let cdc = s
        .mock
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/cdc"))
        .expect("CDC asked");
    assert!(cdc
        .query_pairs()
        .contains(&("entities".into(), "Customer".into())));
    // The cursor is the change's time: a deletion's time says nothing
    // about which modifications were read.
    let touched = s
        .mock
        .records("Customer")
        .into_iter()
        .find(|r| r["Id"] == "3")
        .unwrap();
    let at = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    assert_eq!(
        at(second.last_cursor().as_str().unwrap()),
        at(touched["MetaData"]["LastUpdatedTime"].as_str().unwrap())
    );
}

#[tokio::test]
async fn rotated_refresh_tokens_are_stored_before_use_and_survive_a_restart() {
    let s = start().await;
    let store: Arc<MemoryCredentials> = Arc::new(MemoryCredentials::default());
    let (r, _) = read(s.connector(store.clone()).as_ref(), "payments", None).await;
    r.unwrap();
    let stored = store
        .load("books.refresh_token")
        .unwrap()
        .expect("rotated token kept");
    assert_eq!(Some(stored.clone()), s.mock.current_refresh_token());

    // A new process with the same store: the configured token is revoked,
    // the stored one works (and rotates again).
    let (r, sink) = read(s.connector(store.clone()).as_ref(), "payments", None).await;
    r.unwrap();
    assert_eq!(sink.rows(), 40);
    assert_ne!(store.load("books.refresh_token").unwrap().unwrap(), stored);
    // Without the store, only the revoked configured token is left.
    let (r, _) = read(
        s.connector(Arc::new(MemoryCredentials::default())).as_ref(),
        "payments",
        None,
    )
    .await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message.contains("invalid_grant") && !e.message.contains("AB11-"),
        "{e}"
    );
}

#[tokio::test]
async fn an_access_token_expiring_mid_sync_is_refreshed_and_the_run_completes() {
    let s = start().await;
    let store: Arc<MemoryCredentials> = Arc::new(MemoryCredentials::default());
    let c = s.connector(store.clone());
    let mock = s.mock.clone();
    let (r, sink) = read_with_hook(c.as_ref(), "invoices", None, move |n| {
        if n == 1 {
            mock.expire_tokens();
        }
    })
    .await;
    r.unwrap();
    assert_eq!(sink.rows(), 2100);
    assert_eq!(s.mock.token_requests(), 2);
    assert_eq!(
        store.load("books.refresh_token").unwrap(),
        s.mock.current_refresh_token(),
        "the second rotation was kept too"
    );
}

#[tokio::test]
async fn a_fault_inside_a_200_fails_the_read_with_the_fault_message() {
    let s = start().await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    s.mock.push_faults([Fault::Error(
        200,
        json!({"Fault": {"Error": [{"Message": "Invalid Reference Id", "Detail": "Invalid Reference Id : Something you're trying to use has been made inactive.", "code": "2500"}], "type": "ValidationFault"}, "time": "2024-06-04T09:05:00.000-07:00"}),
    )]);
    let (r, sink) = read(c.as_ref(), "invoices", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Http);
    assert!(
        e.message.contains("HTTP 200")
            && e.message.contains("ValidationFault: Invalid Reference Id")
            && e.message.contains("(code 2500)"),
        "{e}"
    );
    assert!(sink.checkpoints.is_empty() && sink.batches.is_empty());
}

#[tokio::test]
async fn throttling_is_retried_and_fault_bodies_are_quoted() {
    let s = start().await;
    // One store: the refresh token rotates on every new connector.
    let store: Arc<MemoryCredentials> = Arc::new(MemoryCredentials::default());
    let c = s.connector(store.clone());
    s.mock.push_faults([
        Fault::RateLimited {
            retry_after_secs: 0,
        },
        Fault::RateLimited {
            retry_after_secs: 0,
        },
    ]);
    let (r, sink) = read(c.as_ref(), "payments", None).await;
    r.unwrap();
    assert_eq!(sink.rows(), 40);
    assert_eq!(
        s.queries().len(),
        3,
        "two throttled attempts, then the page"
    );

    let body = s.body.replace(
        "backoff_base_ms = 10",
        "backoff_base_ms = 10\nmax_retries = 1",
    );
    let c = build(&source("books", &body), store);
    s.mock.push_faults([
        Fault::RateLimited {
            retry_after_secs: 0,
        },
        Fault::RateLimited {
            retry_after_secs: 0,
        },
    ]);
    let (r, _) = read(c.as_ref(), "payments", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient);
    assert!(
        e.message.contains("HTTP 429")
            && e.message.contains("ThrottleExceeded")
            && e.message.contains("(code 003001)"),
        "{e}"
    );
}

fn instant(t: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(t)
        .unwrap_or_else(|e| panic!("{t}: {e}"))
        .with_timezone(&chrono::Utc)
}

impl Setup {
    /// The `changedSince` of every CDC request, in order.
    fn changed_since(&self) -> Vec<chrono::DateTime<chrono::Utc>> {
        self.mock
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/cdc"))
            .map(|r| {
                let pairs = r.query_pairs();
                let v = &pairs.iter().find(|(k, _)| k == "changedSince").unwrap().1;
                instant(v)
            })
            .collect()
    }

    /// The `time` of every answer to `endpoint` (`query` or `cdc`), in order.
    fn served(&self, endpoint: &str) -> Vec<chrono::DateTime<chrono::Utc>> {
        self.mock
            .served_times()
            .into_iter()
            .filter(|(e, _)| e == endpoint)
            .map(|(_, t)| instant(&t))
            .collect()
    }
}

/// Issue 21: the CDC look-back was `now − 30 days` on the local clock and
/// the "older than the CDC window" warning compared the newest record's
/// time, so a quiet company got it one minute after a sync.
#[tokio::test]
async fn quickbooks_cdc_look_back_starts_from_the_last_answers_server_time() {
    // Nothing changed for 45 days: the newest record is older than the window.
    let s = start_with(QuickBooksMockConfig {
        seed_age_days: 45,
        ..Default::default()
    })
    .await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    let logs = capture_logs();
    let (r, first) = read(c.as_ref(), "customers", None).await;
    r.unwrap();
    assert!(
        s.changed_since().is_empty(),
        "a first sync has nothing to delete"
    );
    let started = s.served("query")[0];
    let state = first.checkpoints.last().unwrap().clone();
    assert_eq!(instant(state["server_time"].as_str().unwrap()), started);

    // A minute later on the server's clock: no warning, and the look-back
    // starts from the first answer's time, minus the overlap.
    s.mock.advance_clock(chrono::Duration::minutes(1));
    let (r, second) = read(c.as_ref(), "customers", Some(state)).await;
    r.unwrap();
    assert_eq!(s.changed_since(), [started - chrono::Duration::minutes(5)]);
    assert!(
        logs.warnings_with("CDC window").is_empty(),
        "{:?}",
        logs.warnings()
    );
    let state = second.checkpoints.last().unwrap().clone();
    let cdc_answered = *s.served("cdc").last().unwrap();
    assert_eq!(
        instant(state["server_time"].as_str().unwrap()),
        cdc_answered
    );

    // Two hours on, with a deletion in between: anchored on the last CDC
    // answer's time, and the deletion is found.
    s.mock.advance_clock(chrono::Duration::hours(2));
    s.mock.delete("Customer", "4");
    let (r, third) = read(c.as_ref(), "customers", Some(state)).await;
    r.unwrap();
    assert_eq!(
        s.changed_since()[1],
        cdc_answered - chrono::Duration::minutes(5)
    );
    assert_eq!(third.strings("id"), [Some("4".to_string())]);
    assert!(logs.warnings_with("CDC window").is_empty());

    // 31 days without a sync, on the server's clock (the test's clock did
    // not move): the cap is 30 days before the *server's* now, which the
    // mock accepts, and the warning comes once.
    s.mock.advance_clock(chrono::Duration::days(31));
    let state = third.checkpoints.last().unwrap().clone();
    let (r, _) = read(c.as_ref(), "customers", Some(state)).await;
    r.unwrap_or_else(|e| panic!("{e}"));
    let server_now = *s.served("query").last().unwrap();
    assert_eq!(
        *s.changed_since().last().unwrap(),
        server_now - chrono::Duration::days(30) + chrono::Duration::minutes(5)
    );
    let warned = logs.warnings_with("older than the 30-day CDC window");
    assert_eq!(warned.len(), 1, "{warned:?}");
}

/// Issue 21, point 7: boundary records the inclusive cursor (and the CDC
/// overlap) send again are emitted once, so the rows a run reports are the
/// changes; reads of the same data emit the same rows.
#[tokio::test]
async fn quickbooks_rows_emitted_are_the_changes_and_deterministic() {
    let s = start().await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    let (r, first) = read(c.as_ref(), "invoices", None).await;
    r.unwrap();
    let (ids, repeated) = distinct(&first.strings("id"));
    assert!(!repeated && ids.len() == 2100 && first.rows() == 2100);
    // The same data read again: the same rows, batch for batch.
    let (r, again) = read(c.as_ref(), "invoices", None).await;
    r.unwrap();
    assert_eq!(again.batches, first.batches);

    // Nothing changed: nothing emitted, the cursor stays.
    let state = first.checkpoints.last().unwrap().clone();
    let (r, idle) = read(c.as_ref(), "invoices", Some(state.clone())).await;
    r.unwrap();
    assert_eq!(idle.rows(), 0);
    assert_eq!(idle.last_cursor(), state["cursor"]);

    // A deletion is emitted once, though the next CDC overlap lists it again.
    s.mock.delete("Invoice", "1001");
    let state = idle.checkpoints.last().unwrap().clone();
    let (r, gone) = read(c.as_ref(), "invoices", Some(state)).await;
    r.unwrap();
    assert_eq!(gone.strings("id"), [Some("1001".to_string())]);
    let state = gone.checkpoints.last().unwrap().clone();
    let (r, after) = read(c.as_ref(), "invoices", Some(state)).await;
    r.unwrap();
    assert_eq!(after.rows(), 0, "{:?}", after.strings("id"));
    // …which it did: the deletion lies inside the last look-back.
    let deleted_at = instant(gone.instants("updated_at")[0].as_deref().unwrap());
    assert!(s.changed_since()[2] <= deleted_at);
}

/// Issue 21, point 5: a stream the account may not read fails with its own
/// kind and says to leave it out; left out, it is neither offered nor asked.
#[tokio::test]
async fn quickbooks_an_unreadable_stream_says_to_leave_it_out_and_leaving_it_out_works() {
    let s = start().await;
    let store: Arc<MemoryCredentials> = Arc::new(MemoryCredentials::default());
    let c = s.connector(store.clone());
    s.mock.push_faults([Fault::Error(
        403,
        json!({"Fault": {"Error": [{"Message": "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403", "Detail": "", "code": "003100", "element": ""}], "type": "AUTHORIZATION"}, "time": "2024-06-04T09:05:00.000-07:00"}),
    )]);
    let (r, sink) = read(c.as_ref(), "payments", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(!e.is_retryable());
    assert!(
        e.message.contains("stream `payments`")
            && e.message.contains("HTTP 403")
            && e.message.contains("ApplicationAuthorizationFailed")
            && e.message
                .contains("streams = [\"customers\", \"invoices\"] in [sources.books]"),
        "{e}"
    );
    assert!(sink.checkpoints.is_empty());

    let body = format!("{}streams = [\"customers\", \"invoices\"]\n", s.body);
    let c = build(&source("books", &body), store);
    assert_eq!(stream_names(c.as_ref()), ["customers", "invoices"]);
    let before = s.mock.requests().len();
    let (r, _) = read(c.as_ref(), "payments", None).await;
    assert_eq!(r.unwrap_err().kind, ErrorKind::Config);
    assert_eq!(s.mock.requests().len(), before, "nothing asked for it");
    let (r, inv) = read(c.as_ref(), "invoices", None).await;
    r.unwrap();
    assert_eq!(inv.rows(), 2100);
}

/// A CDC answer at its cap of 1000 objects says so (CDC has no end bound
/// to page the rest with; the reference leaves open which objects it keeps).
#[tokio::test]
async fn quickbooks_a_capped_cdc_answer_is_warned_about_once() {
    let s = start().await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    let (r, first) = read(c.as_ref(), "invoices", None).await;
    r.unwrap();
    for i in 1..=1000 {
        s.mock.delete("Invoice", &(1000 + i).to_string());
    }
    let logs = capture_logs();
    let state = first.checkpoints.last().unwrap().clone();
    let (r, second) = read(c.as_ref(), "invoices", Some(state)).await;
    r.unwrap();
    assert_eq!(second.rows(), 1000);
    assert_eq!(
        logs.warnings_with("CDC returned its cap").len(),
        1,
        "{:?}",
        logs.warnings()
    );
}
