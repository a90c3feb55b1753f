//! The HubSpot CRM v3 connector against its mock over loopback HTTP: the
//! search API's 10,000-result cap (and a smaller one, in small pages)
//! handled by re-anchoring, string properties typed, incremental search
//! emitting each change once, soft deletes from the archived list, token
//! refresh, the refresh token kept over a restart, 429s, errors, and a
//! stream the app has no scope for.

use crate::support;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_schema::DataType;
use conveyor_mocks::server::MockServer;
use conveyor_mocks::vendors::hubspot::{HubSpotHandle, HubSpotMock, HubSpotMockConfig};
use conveyor_mocks::vendors::{Fault, MockHandle};
use conveyor_plugin_api::{Connector, CredentialStore, ErrorKind, MemoryCredentials};
use serde_json::{json, Value};
use support::{build, distinct, read, read_with_hook, secret_file, source, stream_names, Sink};

struct Setup {
    _dir: tempfile::TempDir,
    body: String,
    server: MockServer,
    mock: HubSpotHandle,
}

async fn start() -> Setup {
    start_with(HubSpotMockConfig::default()).await
}

async fn start_with(cfg: HubSpotMockConfig) -> Setup {
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

    /// How many archived-list pages the mock served for `kind`.
    fn archived_lists(&self, kind: &str) -> usize {
        self.mock
            .requests()
            .iter()
            .filter(|r| {
                r.path == format!("/crm/v3/objects/{kind}")
                    && r.query_pairs()
                        .contains(&("archived".into(), "true".into()))
            })
            .count()
    }
}

/// What the warehouse keeps of a row: `archived` and `archived_at`.
type Kept = (Option<bool>, Option<String>);

/// The warehouse's merge by primary key (DELETE+INSERT, the last occurrence
/// wins) applied to the rows of one read.
fn merge(table: &mut BTreeMap<String, Kept>, sink: &Sink) {
    let archived: Vec<Option<bool>> = sink
        .batches
        .iter()
        .flat_map(|b| {
            let col = b.column(b.schema().index_of("archived").unwrap());
            col.as_boolean().iter().collect::<Vec<_>>()
        })
        .collect();
    let rows = sink
        .strings("id")
        .into_iter()
        .zip(archived.into_iter().zip(sink.instants("archived_at")));
    for (id, kept) in rows {
        table.insert(id.expect("every row has an id"), kept);
    }
}

/// The ids of one read, in order.
fn ids(sink: &Sink) -> Vec<String> {
    sink.strings("id").into_iter().flatten().collect()
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
    // The boundary record (GTE) came again unchanged: only the change.
    assert_eq!(ids, ["107"]);
    assert_eq!(
        second.strings("lifecyclestage")[0].as_deref(),
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

#[tokio::test]
async fn a_deal_archived_between_syncs_is_upserted_as_archived_and_no_row_is_removed() {
    let s = start_with(HubSpotMockConfig {
        deals: 20,
        ..Default::default()
    })
    .await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    let (r, first) = read(c.as_ref(), "deals", None).await;
    r.unwrap();
    let mut table = BTreeMap::new();
    merge(&mut table, &first);
    assert_eq!(table.len(), 20);
    assert!(table.values().all(|k| *k == (Some(false), None)));

    let archived_at = s.mock.archive("deals", "50007");
    let state = first.checkpoints.last().unwrap().clone();
    let (r, second) = read(c.as_ref(), "deals", Some(state)).await;
    r.unwrap();
    // Incremental: the archived one, which search no longer returns (the
    // boundary deal search sends again, GTE the cursor, is unchanged).
    assert_eq!(ids(&second), ["50007"]);
    merge(&mut table, &second);
    assert_eq!(table.len(), 20, "a soft delete removes no row");
    assert_eq!(
        table["50007"],
        (Some(true), Some(archived_at.clone())),
        "archived with its archivedAt"
    );
    let live: Vec<&Kept> = table
        .iter()
        .filter(|(id, _)| *id != "50007")
        .map(|(_, k)| k)
        .collect();
    assert_eq!(live.len(), 19);
    assert!(live.iter().all(|k| **k == (Some(false), None)), "{live:?}");
    // The deal's other columns are still filled: its row is replaced whole.
    let at = ids(&second).iter().position(|i| i == "50007").unwrap();
    assert_eq!(second.strings("dealname")[at].as_deref(), Some("Deal 7"));

    // Hours later another deal is archived. Each run pages the whole
    // archived list but emits only what was archived within the margin of
    // the newest archive the previous run saw, or later.
    s.mock.pass_time(chrono::Duration::hours(3));
    let later = s.mock.archive("deals", "50009");
    let state = second.checkpoints.last().unwrap().clone();
    assert!(state["archived_since"].as_str().unwrap() <= archived_at.as_str());
    let (r, third) = read(c.as_ref(), "deals", Some(state)).await;
    r.unwrap();
    assert_eq!(ids(&third), ["50007", "50009"]);
    merge(&mut table, &third);
    let state = third.checkpoints.last().unwrap().clone();
    let (r, fourth) = read(c.as_ref(), "deals", Some(state)).await;
    r.unwrap();
    assert_eq!(ids(&fourth), ["50009"], "50007 is hours older");
    merge(&mut table, &fourth);
    assert_eq!(table.len(), 20);
    assert_eq!(table["50007"], (Some(true), Some(archived_at)));
    assert_eq!(table["50009"], (Some(true), Some(later)));
    assert_eq!(s.archived_lists("deals"), 4, "one archived page a run");
}

#[tokio::test]
async fn the_archived_list_is_paged_and_a_record_archived_behind_the_listing_is_caught_next_run() {
    let s = start().await;
    for id in 151..=290 {
        s.mock.archive("contacts", &id.to_string());
    }
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    let mock = s.mock.clone();
    // Batch 1 is the search page (160 live contacts), batch 2 the first
    // archived page (ids 151..250). Then 120 is archived behind the
    // listing's position and 295 ahead of it, later.
    let (r, first) = read_with_hook(c.as_ref(), "contacts", None, move |n| {
        if n == 2 {
            mock.archive("contacts", "120");
            mock.archive("contacts", "295");
        }
    })
    .await;
    r.unwrap();
    assert_eq!(s.archived_lists("contacts"), 2, "100 a page");
    let mut table = BTreeMap::new();
    merge(&mut table, &first);
    assert_eq!(table.len(), 300);
    let archived: Vec<&String> = table
        .iter()
        .filter(|(_, k)| k.0 == Some(true))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(archived.len(), 141, "151..=290 and 295");
    assert_eq!(table["120"].0, Some(false), "passed over this run");

    // 295 was archived after 120 and seen; the next run must still emit 120.
    let state = first.checkpoints.last().unwrap().clone();
    let (r, second) = read(c.as_ref(), "contacts", Some(state)).await;
    r.unwrap();
    merge(&mut table, &second);
    assert_eq!(table.len(), 300);
    assert_eq!(table["120"].0, Some(true));
    assert!(table["120"].1.is_some());
    assert_eq!(table.values().filter(|k| k.0 == Some(true)).count(), 142);
}

#[tokio::test]
async fn hubspot_keeps_its_refresh_token_and_a_restart_uses_the_persisted_one() {
    let s = start().await;
    let store: Arc<MemoryCredentials> = Arc::new(MemoryCredentials::default());
    let (r, _) = read(s.connector(store.clone()).as_ref(), "owners", None).await;
    r.unwrap();
    // The token response hands back the token presented: nothing to persist.
    assert_eq!(s.mock.presented_refresh_tokens(), ["hs-rt-na1-0001"]);
    assert_eq!(store.load("crm.refresh_token").unwrap(), None);

    // The app is installed again: HubSpot issues a new refresh token and the
    // configured one is deleted. The new one is in the credential store,
    // where a rotated token would be kept.
    let fresh = s.mock.reissue_refresh_token();
    store.save("crm.refresh_token", &fresh).unwrap();

    // A restart with the same store presents the persisted token and keeps it.
    let (r, sink) = read(s.connector(store.clone()).as_ref(), "owners", None).await;
    r.unwrap();
    assert_eq!(sink.rows(), 5);
    assert_eq!(
        s.mock.presented_refresh_tokens(),
        ["hs-rt-na1-0001".to_string(), fresh.clone()]
    );
    assert_eq!(
        store.load("crm.refresh_token").unwrap(),
        Some(fresh.clone())
    );

    // Without the store only the deleted configured token is left.
    let (r, _) = read(
        s.connector(Arc::new(MemoryCredentials::default())).as_ref(),
        "owners",
        None,
    )
    .await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert!(
        e.message.contains("BAD_REFRESH_TOKEN")
            && !e.message.contains("hs-rt-na1-0001")
            && !e.message.contains(&fresh),
        "{e}"
    );
}

/// Issue 21, point 6: re-anchoring past the result cap, with a cap of 10
/// and pages of 3 (the connector still asks for 200: a page ends at the
/// cap, and the page after it is refused with a 400, which re-anchors).
#[tokio::test]
async fn hubspot_search_reanchors_past_a_small_cap_in_small_pages() {
    let s = start_with(HubSpotMockConfig {
        deals: 25,
        search_cap: 10,
        search_page_size: Some(3),
        list_page_size: Some(3),
        ..Default::default()
    })
    .await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    let (r, sink) = read(c.as_ref(), "deals", None).await;
    r.unwrap_or_else(|e| panic!("{e}"));
    let want: std::collections::BTreeSet<String> = s
        .mock
        .records("deals")
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    let (got, repeated) = distinct(&sink.strings("id"));
    assert!(!repeated, "a deal emitted twice");
    assert_eq!(got, want);
    assert_eq!(sink.rows(), 25);
    // Deal i is modified at i/2 s. Anchor 0: 3+3+3+1 results (the page
    // ends at the cap), the next page refused; anchor 5 s (deal 10 again,
    // skipped): the same; anchor 9 s: the last 8 deals in 3 pages.
    assert_eq!(s.searches("deals"), 5 + 5 + 3);
    // The archived list walks its small pages too (nothing archived: one page).
    assert_eq!(s.archived_lists("deals"), 1);
    let (r, owners) = read(c.as_ref(), "owners", None).await;
    r.unwrap();
    let (ids, repeated) = distinct(&owners.strings("id"));
    assert!(!repeated && ids.len() == 5, "{ids:?}");
}

/// Issue 21, point 7: a sync with nothing new emits nothing, and the same
/// data gives the same rows.
#[tokio::test]
async fn hubspot_a_sync_without_changes_emits_no_rows() {
    let s = start_with(HubSpotMockConfig {
        deals: 40,
        ..Default::default()
    })
    .await;
    let c = s.connector(Arc::new(MemoryCredentials::default()));
    let (r, first) = read(c.as_ref(), "deals", None).await;
    r.unwrap();
    let (r, again) = read(c.as_ref(), "deals", None).await;
    r.unwrap();
    assert_eq!(again.batches, first.batches);
    let state = first.checkpoints.last().unwrap().clone();
    let (r, idle) = read(c.as_ref(), "deals", Some(state.clone())).await;
    r.unwrap();
    assert_eq!(idle.rows(), 0, "{:?}", ids(&idle));
    assert_eq!(idle.last_cursor(), state["cursor"]);
}

/// Issue 21, point 5: an app without the deals scope.
#[tokio::test]
async fn hubspot_an_unreadable_stream_says_to_leave_it_out_and_leaving_it_out_works() {
    let s = start().await;
    let store: Arc<MemoryCredentials> = Arc::new(MemoryCredentials::default());
    let c = s.connector(store.clone());
    s.mock.push_faults([Fault::Error(
        403,
        json!({"status": "error", "message": "This app hasn't been granted all required scopes to make this call.", "correlationId": "c-9", "errors": [{"message": "One or more of the following scopes are required.", "context": {"requiredScopes": ["crm.objects.deals.read"]}}], "category": "MISSING_SCOPES"}),
    )]);
    let (r, sink) = read(c.as_ref(), "deals", None).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable);
    assert!(
        e.message.contains("stream `deals`")
            && e.message.contains("MISSING_SCOPES")
            && e.message
                .contains("streams = [\"owners\", \"contacts\"] in [sources.crm]"),
        "{e}"
    );
    assert!(sink.checkpoints.is_empty());

    let body = format!("{}streams = [\"owners\", \"contacts\"]\n", s.body);
    let c = build(&source("crm", &body), store);
    assert_eq!(stream_names(c.as_ref()), ["owners", "contacts"]);
    let before = s.searches("deals");
    let (r, _) = read(c.as_ref(), "deals", None).await;
    assert_eq!(r.unwrap_err().kind, ErrorKind::Config);
    assert_eq!(s.searches("deals"), before);
    let (r, contacts) = read(c.as_ref(), "contacts", None).await;
    r.unwrap();
    assert_eq!(contacts.rows(), 300);
}
