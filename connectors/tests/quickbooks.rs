//! The QuickBooks Online connector against its mock over loopback HTTP:
//! query paging, typed money, CDC deletions, rotating refresh tokens, a
//! `Fault` inside a 200, throttling and fault messages.

mod support;

use std::sync::Arc;

use arrow_schema::DataType;
use conveyor_mocks::server::MockServer;
use conveyor_mocks::vendors::quickbooks::{
    QuickBooksHandle, QuickBooksMock, QuickBooksMockConfig, TOKEN_PATH,
};
use conveyor_mocks::vendors::{Fault, MockHandle};
use conveyor_plugin_api::{Connector, CredentialStore, ErrorKind, MemoryCredentials};
use serde_json::json;
use support::{build, read, read_with_hook, secret_file, source};

struct Setup {
    _dir: tempfile::TempDir,
    body: String,
    _server: MockServer,
    mock: QuickBooksHandle,
}

async fn start() -> Setup {
    let cfg = QuickBooksMockConfig::default();
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
    // The boundary record again (>=), the change, then the tombstone.
    assert_eq!(ids, ["25", "3", "7"]);
    let deleted: Vec<_> = second
        .batches
        .iter()
        .flat_map(|b| {
            let col = b.column(b.schema().index_of("deleted").unwrap()).clone();
            arrow_array::cast::AsArray::as_boolean(col.as_ref())
                .iter()
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(deleted, [Some(false), Some(false), Some(true)]);
    assert_eq!(second.decimals("balance")[1].as_deref(), Some("12.34"));
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
    // The cursor is the deletion's time, the newest change seen.
    assert!(second.last_cursor().as_str().unwrap() > state["cursor"].as_str().unwrap());
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
