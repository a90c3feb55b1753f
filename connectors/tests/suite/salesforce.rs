//! The Salesforce connector against its mock over loopback HTTP: every
//! table read whole with exact values (`+0000` datetimes as UTC instants,
//! amounts exact, dates), `nextRecordsUrl` paging over several batches on
//! the token's `instance_url`, incremental reads that pick up a change and
//! nothing else, a deletion arriving as `is_deleted = true`, an expired
//! session refreshed once, a wrong secret reported without a trace of it,
//! and an exhausted request allocation (403 `REQUEST_LIMIT_EXCEEDED`).

use crate::support;

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Date32Type;
use arrow_schema::{DataType, TimeUnit};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use conveyor_mocks::server::MockServer;
use conveyor_mocks::vendors::salesforce::{SalesforceHandle, SalesforceMock, SalesforceMockConfig};
use conveyor_mocks::vendors::{Fault, MockHandle};
use conveyor_plugin_api::{Connector, CredentialStore, ErrorKind, MemoryCredentials};
use serde_json::json;
use support::{bools, build, read, read_with_hook, secret_file, source, stream_names};

struct Setup {
    dir: tempfile::TempDir,
    server: MockServer,
    mock: SalesforceHandle,
    cfg: SalesforceMockConfig,
}

async fn start_with(cfg: SalesforceMockConfig) -> Setup {
    let (server, mock) = SalesforceMock::start(cfg.clone()).await;
    Setup {
        dir: tempfile::tempdir().unwrap(),
        server,
        mock,
        cfg,
    }
}

impl Setup {
    /// `base_url` is a closed port: only the token URL is the mock, so
    /// every query must go to the token's `instance_url`.
    fn with(
        &self,
        secret: &str,
        store: Arc<dyn CredentialStore>,
        extra: &str,
    ) -> Box<dyn Connector> {
        let secret = secret_file(self.dir.path(), "cs", secret);
        let refresh = secret_file(self.dir.path(), "rt", &self.cfg.refresh_token);
        let body = format!(
            "type = \"salesforce\"\nbase_url = \"http://127.0.0.1:9\"\ntoken_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{secret}\"\nrefresh_token = \"{refresh}\"\nbackoff_base_ms = 10\n{extra}",
            self.server.url("/services/oauth2/token"),
            self.cfg.client_id,
        );
        build(&source("crm", &body), store)
    }

    fn connector(&self, extra: &str) -> Box<dyn Connector> {
        self.with(
            &self.cfg.client_secret,
            Arc::new(MemoryCredentials::default()),
            extra,
        )
    }

    /// Data requests (token calls left out), in order.
    fn data_requests(&self) -> Vec<conveyor_mocks::RequestLog> {
        self.mock
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/services/data/"))
            .collect()
    }

    fn ids(&self, object: &str) -> Vec<String> {
        self.mock
            .records(object)
            .iter()
            .map(|r| r["Id"].as_str().unwrap().to_string())
            .collect()
    }
}

fn strings(v: &[Option<String>]) -> Vec<String> {
    v.iter().map(|s| s.clone().unwrap_or_default()).collect()
}

/// The `q` a logged request sent.
fn soql(r: &conveyor_mocks::RequestLog) -> String {
    r.query_pairs()
        .into_iter()
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v)
        .unwrap_or_default()
}

#[tokio::test]
async fn salesforce_full_read_pages_the_instance_and_types_every_value() {
    let s = start_with(SalesforceMockConfig {
        batch_size: 5,
        ..Default::default()
    })
    .await;
    let c = s.connector("");
    assert_eq!(
        stream_names(c.as_ref()),
        ["opportunities", "accounts", "users"]
    );
    let (r, opps) = read(c.as_ref(), "opportunities", None).await;
    r.unwrap();
    assert_eq!(strings(&opps.strings("id")), s.ids("Opportunity"));
    // 12 records in batches of 5: the query, then two nextRecordsUrl pages.
    let reqs = s.data_requests();
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    assert_eq!(reqs[0].path, "/services/data/v66.0/queryAll");
    assert_eq!(
        soql(&reqs[0]),
        "SELECT Id, Name, AccountId, OwnerId, StageName, Amount, CloseDate, Probability, IsClosed, IsWon, ForecastCategoryName, CreatedDate, LastModifiedDate, SystemModstamp, IsDeleted FROM Opportunity ORDER BY SystemModstamp, Id"
    );
    assert_eq!(reqs[1].path, "/services/data/v66.0/query/01gDn1-5");
    assert_eq!(
        (reqs[1].query.as_str(), reqs[2].path.as_str()),
        ("", "/services/data/v66.0/query/01gDn1-10")
    );
    assert!(reqs.iter().all(|r| r
        .header("authorization")
        .is_some_and(|a| a.starts_with("Bearer 00DDn0000sf!AQ"))));
    assert_eq!(s.mock.token_requests(), 1);

    // The third deal: closed won, stamped 09:03 (`…09:03:00.000+0000`).
    assert_eq!(
        opps.data_type("system_modstamp"),
        DataType::Timestamp(TimeUnit::Microsecond, None)
    );
    assert_eq!(
        opps.instants("system_modstamp")[2].as_deref(),
        Some("2024-06-01T09:03:00.000Z")
    );
    assert_eq!(
        opps.instants("created_date")[2].as_deref(),
        Some("2024-05-31T09:03:00.000Z")
    );
    assert_eq!(
        opps.instants("last_modified_date")[2].as_deref(),
        Some("2024-06-01T09:03:00.000Z")
    );
    assert_eq!(opps.data_type("amount"), DataType::Decimal128(18, 2));
    assert_eq!(opps.decimals("amount")[0].as_deref(), Some("1234.56"));
    assert_eq!(opps.decimals("amount")[2].as_deref(), Some("3703.68"));
    assert_eq!(opps.data_type("close_date"), DataType::Date32);
    let days = opps.batches[0]
        .column_by_name("close_date")
        .unwrap()
        .as_primitive::<Date32Type>()
        .value(0);
    let expected = chrono::NaiveDate::from_ymd_opt(2024, 6, 28).unwrap()
        - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    assert_eq!(i64::from(days), expected.num_days());
    assert_eq!(opps.strings("stage_name")[2].as_deref(), Some("Closed Won"));
    assert_eq!(
        opps.strings("forecast_category_name")[2].as_deref(),
        Some("Closed")
    );
    assert_eq!(
        opps.strings("account_id")[2].as_deref(),
        Some("001Dn0000000001IAV")
    );
    assert_eq!(
        bools(&opps, "is_won")[..3],
        [Some(false), Some(false), Some(true)]
    );
    assert!(bools(&opps, "is_deleted").iter().all(|d| *d == Some(false)));
    // No `attributes` column: the projection drops it.
    assert!(opps.batches[0].schema().index_of("attributes").is_err());
    assert_eq!(opps.last_cursor(), json!("2024-06-01T09:12:00.000Z"));

    let (r, accounts) = read(c.as_ref(), "accounts", None).await;
    r.unwrap();
    assert_eq!(strings(&accounts.strings("id")), s.ids("Account"));
    assert_eq!(accounts.strings("industry")[1], None);
    assert_eq!(
        accounts.strings("type")[0].as_deref(),
        Some("Customer - Direct")
    );
    let (r, users) = read(c.as_ref(), "users", None).await;
    r.unwrap();
    assert_eq!(
        strings(&users.strings("email")),
        ["rep1@acme.example", "rep2@acme.example"]
    );
    assert_eq!(bools(&users, "is_active"), [Some(true), Some(false)]);
    assert!(
        soql(s.data_requests().last().unwrap()).ends_with("FROM User ORDER BY SystemModstamp, Id")
    );
}

#[tokio::test]
async fn salesforce_incremental_reads_pick_up_a_change_and_a_deletion_only() {
    let s = start_with(SalesforceMockConfig::default()).await;
    let c = s.connector("start_date = \"2024-06-01\"");
    let (r, first) = read(c.as_ref(), "opportunities", None).await;
    r.unwrap();
    assert_eq!(first.rows(), 12);
    // The start date minus the five-minute look-back, unquoted.
    assert!(
        soql(&s.data_requests()[0])
            .contains(" WHERE SystemModstamp >= 2024-05-31T23:55:00Z ORDER BY"),
        "{}",
        soql(&s.data_requests()[0])
    );
    let state = first.checkpoints.last().unwrap().clone();

    let changed = s.ids("Opportunity")[5].clone();
    let stamp = s
        .mock
        .touch("Opportunity", &changed, |r| r["Amount"] = json!(99999.99));
    let before = s.data_requests().len();
    let (r, second) = read(c.as_ref(), "opportunities", Some(state.clone())).await;
    r.unwrap();
    // The look-back re-read the newest records; unchanged, they stay out.
    assert_eq!(
        strings(&second.strings("id")),
        std::slice::from_ref(&changed)
    );
    assert_eq!(second.decimals("amount")[0].as_deref(), Some("99999.99"));
    // Cursor 09:12 minus five minutes.
    assert!(soql(&s.data_requests()[before]).contains(">= 2024-06-01T09:07:00Z"));
    assert_eq!(stamp, "2024-06-01T09:23:00.000+0000");
    assert_eq!(second.last_cursor(), json!("2024-06-01T09:23:00.000Z"));

    // A deletion: queryAll brings the record back with is_deleted = true.
    let gone = s.ids("Opportunity")[2].clone();
    s.mock.delete("Opportunity", &gone);
    let (r, third) = read(
        c.as_ref(),
        "opportunities",
        Some(second.checkpoints.last().unwrap().clone()),
    )
    .await;
    r.unwrap();
    assert_eq!(strings(&third.strings("id")), [gone]);
    assert_eq!(bools(&third, "is_deleted"), [Some(true)]);

    // Nothing changed since: no rows, the cursor stays.
    let (r, fourth) = read(
        c.as_ref(),
        "opportunities",
        Some(third.checkpoints.last().unwrap().clone()),
    )
    .await;
    r.unwrap();
    assert_eq!(fourth.rows(), 0);
    assert_eq!(fourth.last_cursor(), third.last_cursor());
}

#[tokio::test]
async fn salesforce_an_expired_session_is_refreshed_once_and_a_returned_token_kept() {
    let s = start_with(SalesforceMockConfig {
        batch_size: 4,
        rotate_refresh: true,
        ..Default::default()
    })
    .await;
    let store: Arc<MemoryCredentials> = Arc::new(MemoryCredentials::default());
    let c = s.with(&s.cfg.client_secret, store.clone(), "");
    let mock = s.mock.clone();
    let (r, opps) = read_with_hook(c.as_ref(), "opportunities", None, move |n| {
        if n == 1 {
            mock.expire_tokens();
        }
    })
    .await;
    r.unwrap();
    assert_eq!(strings(&opps.strings("id")), s.ids("Opportunity"));
    assert_eq!(
        s.mock.token_requests(),
        2,
        "one at the start, one after the 401"
    );
    // The refused page was asked again, then paging went on: 3 pages + 1.
    let paths: Vec<String> = s.data_requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths[1..],
        [
            "/services/data/v66.0/query/01gDn1-4",
            "/services/data/v66.0/query/01gDn1-4",
            "/services/data/v66.0/query/01gDn1-8"
        ]
    );
    let stored = store
        .load("crm.refresh_token")
        .unwrap()
        .expect("returned token kept");
    assert_ne!(stored, s.cfg.refresh_token);
    assert_eq!(Some(stored), s.mock.current_refresh_token());
}

#[tokio::test]
async fn salesforce_a_wrong_secret_is_a_clear_error_without_the_secret_in_any_form() {
    // The token endpoint quotes what it was given (a hostile echo).
    let s = start_with(SalesforceMockConfig {
        echo_credentials: true,
        ..Default::default()
    })
    .await;
    let wrong = "wrong/secret+5d8e?1a";
    let c = s.with(wrong, Arc::new(MemoryCredentials::default()), "");
    let (r, sink) = read(c.as_ref(), "accounts", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message.contains("/services/oauth2/token")
            && e.message.contains("400")
            && e.message.contains("invalid_client")
            && e.message.contains("got `"),
        "{e}"
    );
    let pair = format!("{}:{wrong}", s.cfg.client_id);
    let mut forms = vec![
        wrong.to_string(),
        url::form_urlencoded::byte_serialize(wrong.as_bytes()).collect::<String>(),
    ];
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        forms.push(engine.encode(&pair));
    }
    for f in &forms {
        assert!(!e.message.contains(f.as_str()), "{f} leaked: {e}");
    }
    assert!(sink.checkpoints.is_empty(), "the cursor must not move");
    assert!(s.data_requests().is_empty(), "no query without a token");
}

#[tokio::test]
async fn salesforce_an_exhausted_request_allocation_is_said_plainly_and_not_retried() {
    let s = start_with(SalesforceMockConfig {
        api_limit: 500,
        ..Default::default()
    })
    .await;
    s.mock.set_usage(500);
    let c = s.connector("max_retries = 3");
    let (r, sink) = read(c.as_ref(), "opportunities", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient, "{e}");
    assert!(
        e.message.contains("source crm")
            && e.message.contains("API request allocation")
            && e.message.contains("HTTP 403")
            && e.message
                .contains("REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded."),
        "{e}"
    );
    assert!(
        !e.message.contains("not available to these credentials"),
        "{e}"
    );
    assert_eq!(
        s.data_requests().len(),
        1,
        "a 24-hour allocation is not retried"
    );
    assert!(sink.checkpoints.is_empty());
    // Under the allocation again, the same connector reads.
    s.mock.set_usage(0);
    let (r, sink) = read(c.as_ref(), "users", None).await;
    r.unwrap();
    assert_eq!(sink.rows(), 2);
}

#[tokio::test]
async fn salesforce_client_credentials_need_no_refresh_token() {
    let s = start_with(SalesforceMockConfig::default()).await;
    let secret = secret_file(s.dir.path(), "cs", &s.cfg.client_secret);
    let body = format!(
        "type = \"salesforce\"\nbase_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{secret}\"\n",
        s.server.base_url(),
        s.cfg.client_id,
    );
    let c = build(
        &source("crm", &body),
        Arc::new(MemoryCredentials::default()),
    );
    let (r, users) = read(c.as_ref(), "users", None).await;
    r.unwrap();
    assert_eq!(users.rows(), 2);
    // The token URL followed from base_url (the My Domain).
    let token = s
        .mock
        .requests()
        .into_iter()
        .find(|r| r.path == "/services/oauth2/token");
    assert!(token.is_some(), "{:?}", s.mock.requests());
}

#[tokio::test]
async fn salesforce_a_refused_object_says_to_leave_the_stream_out() {
    let s = start_with(SalesforceMockConfig::default()).await;
    s.mock.push_faults([Fault::Error(
        403,
        json!([{"message": "You do not have access to the Account object", "errorCode": "INSUFFICIENT_ACCESS"}]),
    )]);
    let c = s.connector("");
    let (r, _) = read(c.as_ref(), "accounts", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(
        e.message.contains("stream `accounts`")
            && e.message
                .contains("INSUFFICIENT_ACCESS: You do not have access")
            && e.message
                .contains("streams = [\"opportunities\", \"users\"]"),
        "{e}"
    );
}
