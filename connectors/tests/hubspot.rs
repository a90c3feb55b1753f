//! The HubSpot CRM v3 connector against its mock over loopback HTTP: the
//! search API's 10,000-result cap handled by re-anchoring, string
//! properties typed, incremental search, token refresh, 429s and errors.

mod support;

use std::collections::HashSet;
use std::sync::Arc;

use arrow_schema::DataType;
use conveyor_mocks::server::MockServer;
use conveyor_mocks::vendors::hubspot::{HubSpotHandle, HubSpotMock, HubSpotMockConfig};
use conveyor_mocks::vendors::{Fault, MockHandle};
use conveyor_plugin_api::{Connector, CredentialStore, ErrorKind, MemoryCredentials};
use serde_json::{json, Value};
use support::{build, read, read_with_hook, secret_file, source};

struct Setup {
    _dir: tempfile::TempDir,
    body: String,
    server: MockServer,
    mock: HubSpotHandle,
}

async fn start() -> Setup {
    let cfg = HubSpotMockConfig::default();
    let (server, mock) = HubSpotMock::start(cfg.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let body = format!(
        "type = \"hubspot\"\nbase_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\nbackoff_base_ms = 10\n",
        server.base_url(),
        cfg.client_id,
        secret_file(dir.path(), "cs", &cfg.client_secret),
        secret_file(dir.path(), "rt", &cfg.refresh_token),
    );
    Setup {
        _dir: dir,
        body,
        server,
        mock,
    }
}

impl Setup {
    fn connector(&self, store: Arc<dyn CredentialStore>) -> Box<dyn Connector> {
        build(&source("crm", &self.body), store)
    }

    /// How many search requests the mock received for `kind`.
    fn searches(&self, kind: &str) -> usize {
        self.mock
            .requests()
            .iter()
            .filter(|r| r.path == format!("/crm/v3/objects/{kind}/search"))
            .count()
    }
}

#[tokio::test]
async fn the_10k_search_cap_is_passed_by_reanchoring_without_duplicates_or_gaps() {
    let s = start().await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    let (r, sink) = read(c.as_ref(), "deals", None).await;
    r.unwrap_or_else(|e| panic!("{e}"));
    let want: HashSet<String> = s
        .mock
        .records("deals")
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    let got: Vec<String> = sink.strings("id").into_iter().flatten().collect();
    assert_eq!(got.len(), 10_450, "each deal exactly once");
    assert_eq!(got.into_iter().collect::<HashSet<_>>(), want);
    // 50 pages reach the cap; the re-anchored query needs 3 more (its first
    // records repeat the pair at the anchor time and are skipped).
    assert_eq!(s.searches("deals"), 53);

    assert_eq!(sink.data_type("amount"), DataType::Decimal128(20, 6));
    assert_eq!(sink.data_type("hs_is_closed_won"), DataType::Boolean);
    assert_eq!(
        sink.data_type("hs_lastmodifieddate"),
        DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None)
    );
    let first = &s.mock.records("deals")[0]["properties"];
    assert_eq!(
        sink.decimals("amount")[0],
        Some(format!("{}0000", first["amount"].as_str().unwrap()))
    );
    let newest = s
        .mock
        .records("deals")
        .iter()
        .map(|d| {
            d["properties"]["hs_lastmodifieddate"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .max()
        .unwrap();
    assert_eq!(sink.last_cursor(), json!(newest));
}

#[tokio::test]
async fn the_mock_refuses_to_page_past_10k() {
    let s = start().await;
    let tok: Value = reqwest::Client::new()
        .post(s.server.url("/oauth/v1/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "hs-client"),
            ("client_secret", "hs-secret-2718"),
            ("refresh_token", "hs-rt-na1-0001"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resp = reqwest::Client::new()
        .post(s.server.url("/crm/v3/objects/deals/search"))
        .bearer_auth(tok["access_token"].as_str().unwrap())
        .json(&json!({"limit": 200, "after": "10000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn incremental_search_starts_at_the_cursor_and_types_string_properties() {
    let s = start().await;
    let store: Arc<MemoryCredentials> = Arc::new(MemoryCredentials::default());
    let c = s.connector(store.clone());
    let (r, first) = read(c.as_ref(), "contacts", None).await;
    r.unwrap();
    assert_eq!(first.rows(), 300);
    assert_eq!(
        first.data_type("createdate"),
        DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None)
    );
    // An empty string is an absent value, not text.
    assert_eq!(first.strings("hs_lead_status")[1], None);
    let state = first.checkpoints.last().unwrap().clone();

    s.mock.touch("contacts", "107", |r| {
        r["properties"]["lifecyclestage"] = json!("evangelist")
    });
    let (r, second) = read(c.as_ref(), "contacts", Some(state)).await;
    r.unwrap();
    let ids: Vec<String> = second.strings("id").into_iter().flatten().collect();
    assert_eq!(
        ids,
        ["400", "107"],
        "the boundary record (GTE), then the change"
    );
    assert_eq!(
        second.strings("lifecyclestage")[1].as_deref(),
        Some("evangelist")
    );
    // HubSpot does not rotate refresh tokens: nothing new to store.
    assert_eq!(store.load("crm.refresh_token").unwrap(), None);
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_mid_sync_and_a_restart_still_authenticates() {
    let s = start().await;
    let store: Arc<MemoryCredentials> = Arc::new(MemoryCredentials::default());
    let c = s.connector(store.clone());
    let mock = s.mock.clone();
    let (r, sink) = read_with_hook(c.as_ref(), "contacts", None, move |n| {
        if n == 1 {
            mock.expire_tokens();
        }
    })
    .await;
    r.unwrap();
    assert_eq!(sink.rows(), 300);
    assert_eq!(s.mock.token_requests(), 2);
    let tok = s
        .mock
        .requests()
        .into_iter()
        .find(|r| r.path == "/oauth/v1/token")
        .unwrap();
    assert!(
        tok.header("authorization").is_none(),
        "HubSpot takes the client credentials in the form"
    );
    let (r, owners) = read(s.connector(store).as_ref(), "owners", None).await;
    r.unwrap();
    assert_eq!(owners.rows(), 5);
    assert_eq!(owners.ints("user_id")[0], 9001);
}

#[tokio::test]
async fn rate_limits_are_retried_and_error_bodies_quoted() {
    let s = start().await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    s.mock.push_faults([Fault::RateLimited {
        retry_after_secs: 0,
    }]);
    let (r, sink) = read(c.as_ref(), "owners", None).await;
    r.unwrap();
    assert_eq!(sink.rows(), 5);

    s.mock.push_faults([Fault::Error(400, json!({"status": "error", "message": "Invalid input JSON on line 1", "correlationId": "c-9", "category": "VALIDATION_ERROR"}))]);
    let (r, sink) = read(c.as_ref(), "deals", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Http);
    assert!(
        e.message.contains("POST")
            && e.message.contains("HTTP 400")
            && e.message
                .contains("VALIDATION_ERROR: Invalid input JSON on line 1"),
        "{e}"
    );
    assert!(sink.checkpoints.is_empty());
}
