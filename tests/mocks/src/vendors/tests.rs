//! The vendor mocks' own quirks, checked over HTTP with a plain client:
//! what each serves must match the reference before connectors are judged
//! against it (server clocks, horizons, caps, small pages, missing
//! permissions, conversations without agents, the users list).

use chrono::{Duration, Utc};
use serde_json::{json, Value};

use super::genesys::{GenesysMock, GenesysMockConfig};
use super::gusto::{GustoMock, GustoMockConfig};
use super::hubspot::{HubSpotMock, HubSpotMockConfig};
use super::quickbooks::{QuickBooksMock, QuickBooksMockConfig, TOKEN_PATH};
use super::zendesk_talk::{ZendeskTalkMock, ZendeskTalkMockConfig, USERS_PATH};
use super::MockHandle;
use crate::server::MockServer;

async fn json_of(r: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn quickbooks_token(server: &MockServer, cfg: &QuickBooksMockConfig) -> String {
    let (_, tok) = json_of(
        reqwest::Client::new()
            .post(server.url(TOKEN_PATH))
            .basic_auth(&cfg.client_id, Some(&cfg.client_secret))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", &cfg.refresh_token)]),
    )
    .await;
    tok["access_token"].as_str().expect("a token").to_string()
}

#[tokio::test]
async fn quickbooks_times_and_the_cdc_window_follow_the_servers_clock() {
    let cfg = QuickBooksMockConfig { cdc_cap: 3, ..Default::default() };
    let (server, mock) = QuickBooksMock::start(cfg.clone()).await;
    let token = quickbooks_token(&server, &cfg).await;
    let cdc = |since: chrono::DateTime<Utc>| {
        reqwest::Client::new()
            .get(server.url(&format!("/v3/company/{}/cdc", cfg.realm_id)))
            .bearer_auth(&token)
            .query(&[("entities", "Customer,Invoice"), ("changedSince", &since.to_rfc3339())])
    };
    mock.advance_clock(Duration::days(40));
    // 35 days back on the test's clock is 75 on the server's: refused.
    let (status, body) = json_of(cdc(Utc::now() - Duration::days(35))).await;
    assert_eq!(status, 400);
    assert_eq!(body["Fault"]["type"], "ValidationFault");
    // Ten days back on the server's clock: accepted, `time` is the server's.
    let (status, body) = json_of(cdc(mock.now() - Duration::days(10))).await;
    assert_eq!(status, 200);
    let time = chrono::DateTime::parse_from_rfc3339(body["time"].as_str().unwrap()).unwrap();
    assert!((time.with_timezone(&Utc) - mock.now()).num_seconds().abs() <= 1);
    assert!(time.to_rfc3339().ends_with("-07:00"), "company offset");
    assert_eq!(mock.served_times().last().unwrap().0, "cdc");
    // Deletions after the clock moved are stamped on it, and the cap holds
    // across entities, oldest first.
    for id in ["1", "2", "3", "4"] {
        mock.delete("Customer", id);
    }
    let (_, body) = json_of(cdc(mock.now() - Duration::minutes(1))).await;
    let lists = body["CDCResponse"][0]["QueryResponse"].as_array().unwrap();
    let customers = lists[0]["Customer"].as_array().unwrap();
    let ids: Vec<&str> = customers.iter().map(|c| c["Id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["1", "2", "3"]);
    assert!(customers.iter().all(|c| c["status"] == "Deleted"));
    assert_eq!(lists[1]["Invoice"].as_array().unwrap().len(), 0);
}

async fn gusto_token(server: &MockServer, cfg: &GustoMockConfig) -> String {
    let (_, tok) = json_of(reqwest::Client::new().post(server.url("/oauth/token")).json(&json!({
        "client_id": cfg.client_id, "client_secret": cfg.client_secret,
        "grant_type": "refresh_token", "refresh_token": cfg.refresh_token,
    })))
    .await;
    tok["access_token"].as_str().expect("a token").to_string()
}

#[tokio::test]
async fn gusto_refuses_windows_past_its_own_horizon_and_filters_by_processing_status() {
    let cfg = GustoMockConfig { upcoming: 2, server_day_offset: -40, ..Default::default() };
    let (server, _mock) = GustoMock::start(cfg.clone()).await;
    let token = gusto_token(&server, &cfg).await;
    let today = Utc::now().date_naive();
    let list = |end: chrono::NaiveDate, statuses: Option<&str>| {
        let mut q = vec![
            ("start_date".to_string(), (today - Duration::days(100)).to_string()),
            ("end_date".to_string(), end.to_string()),
        ];
        if let Some(s) = statuses {
            q.push(("processing_statuses".into(), s.into()));
        }
        reqwest::Client::new()
            .get(server.url(&format!("/v1/companies/{}/payrolls", cfg.company_id)))
            .bearer_auth(&token)
            .query(&q)
    };
    // The server's today is 40 days behind: +60 is past its 3 months.
    let (status, body) = json_of(list(today + Duration::days(60), None)).await;
    assert_eq!(status, 422);
    assert_eq!(
        body,
        json!({"errors": [{"error_key": "end_date", "category": "invalid_parameter", "message": "End date cannot be more than 3 months in future"}]})
    );
    let end = today + Duration::days(29);
    let processed = |v: &Value| -> Vec<bool> {
        v.as_array().unwrap().iter().map(|p| p["processed"].as_bool().unwrap()).collect()
    };
    let (status, by_default) = json_of(list(end, None)).await;
    assert_eq!(status, 200);
    assert!(processed(&by_default).iter().all(|p| *p), "processed only by default");
    let (_, only) = json_of(list(end, Some("unprocessed"))).await;
    assert_eq!(processed(&only), [false, false, false], "the newest and two upcoming");
    let (_, both) = json_of(list(end, Some("processed,unprocessed"))).await;
    assert_eq!(both.as_array().unwrap().len(), by_default.as_array().unwrap().len() + 3);
    let (status, _) = json_of(list(end, Some("cancelled"))).await;
    assert_eq!(status, 422);
}

async fn genesys_token(server: &MockServer, cfg: &GenesysMockConfig) -> String {
    let (_, tok) = json_of(
        reqwest::Client::new()
            .post(server.url("/oauth/token"))
            .basic_auth(&cfg.client_id, Some(&cfg.client_secret))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    tok["access_token"].as_str().expect("a token").to_string()
}

#[tokio::test]
async fn genesys_serves_conversations_without_agents_small_pages_and_missing_permissions() {
    let cfg = GenesysMockConfig { users: 7, page_size_cap: Some(3), ..Default::default() };
    let (server, mock) = GenesysMock::start(cfg.clone()).await;
    let token = genesys_token(&server, &cfg).await;
    let http = reqwest::Client::new();
    // Every day has conversations without any agent participant.
    let no_agent: Vec<Value> = mock
        .conversations()
        .into_iter()
        .filter(|c| !c["participants"].as_array().unwrap().iter().any(|p| p["purpose"] == "agent"))
        .collect();
    assert_eq!(no_agent.len(), cfg.days * 3);
    let abandoned = no_agent.iter().filter(|c| c["originatingDirection"] == "inbound").count();
    assert_eq!(abandoned, cfg.days * 2);
    // …and the details query serves them. Yesterday, not today: a kind
    // generated x minutes before now on day 0 and on day 1 lands in
    // yesterday on one of the two whatever the time, where today holds none
    // in the first hour after midnight UTC.
    let day = (Utc::now() - Duration::days(1)).date_naive();
    let interval = format!("{}T00:00:00.000Z/{}T00:00:00.000Z", day, day + Duration::days(1));
    let (_, body) = json_of(
        http.post(server.url("/api/v2/analytics/conversations/details/query"))
            .bearer_auth(&token)
            .json(&json!({"interval": interval, "paging": {"pageSize": 100, "pageNumber": 1}})),
    )
    .await;
    let ids: Vec<&str> = body["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversationId"].as_str().unwrap())
        .collect();
    assert!(ids.iter().any(|i| i.starts_with("abandoned-")), "{ids:?}");
    assert!(ids.iter().any(|i| i.starts_with("outbound-")), "{ids:?}");
    // Pages of at most 3, linked by nextUri until the last.
    let (_, page) = json_of(
        http.get(server.url("/api/v2/users?pageSize=100&pageNumber=3")).bearer_auth(&token),
    )
    .await;
    assert_eq!(page["entities"].as_array().unwrap().len(), 1);
    assert!(page.get("nextUri").is_none());
    let (_, page) = json_of(
        http.get(server.url("/api/v2/users?pageSize=100&pageNumber=1")).bearer_auth(&token),
    )
    .await;
    assert_eq!(page["entities"].as_array().unwrap().len(), 3);
    assert!(page["nextUri"].as_str().unwrap().contains("pageNumber=2"));
    // A permission the client lacks.
    mock.deny("/api/v2/analytics/users/aggregates/query");
    let (status, body) = json_of(
        http.post(server.url("/api/v2/analytics/users/aggregates/query"))
            .bearer_auth(&token)
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        (body["code"].as_str(), body["status"].as_u64()),
        (Some("missing.permissions"), Some(403))
    );
}

#[tokio::test]
async fn hubspot_search_never_serves_past_its_cap_and_refuses_beyond_it() {
    let cfg = HubSpotMockConfig {
        deals: 25,
        search_cap: 10,
        search_page_size: Some(3),
        ..Default::default()
    };
    let (server, _mock) = HubSpotMock::start(cfg.clone()).await;
    let (_, tok) = json_of(reqwest::Client::new().post(server.url("/oauth/v1/token")).form(&[
        ("grant_type", "refresh_token"),
        ("client_id", cfg.client_id.as_str()),
        ("client_secret", cfg.client_secret.as_str()),
        ("refresh_token", cfg.refresh_token.as_str()),
    ]))
    .await;
    let token = tok["access_token"].as_str().unwrap().to_string();
    let search = |after: &str| {
        reqwest::Client::new()
            .post(server.url("/crm/v3/objects/deals/search"))
            .bearer_auth(&token)
            .json(&json!({"limit": 200, "after": after}))
    };
    let (_, first) = json_of(search("0")).await;
    assert_eq!(first["results"].as_array().unwrap().len(), 3, "pages of 3");
    assert_eq!(first["paging"]["next"]["after"], "3");
    let (_, at_cap) = json_of(search("9")).await;
    assert_eq!(at_cap["results"].as_array().unwrap().len(), 1, "the page ends at the cap");
    assert_eq!(at_cap["paging"]["next"]["after"], "10");
    let (status, body) = json_of(search("10")).await;
    assert_eq!((status, body["category"].as_str()), (400, Some("VALIDATION_ERROR")));
}

#[tokio::test]
async fn zendesk_users_filter_by_role_and_page_by_cursor_or_offset() {
    let cfg = ZendeskTalkMockConfig { users_page_size: 3, ..Default::default() };
    let (server, mock) = ZendeskTalkMock::start(cfg.clone()).await;
    let get = |q: &str| {
        reqwest::Client::new()
            .get(server.url(&format!("{USERS_PATH}.json?{q}")))
            .basic_auth(format!("{}/token", cfg.email), Some(&cfg.api_token))
    };
    assert_eq!(mock.users().len(), 28);
    // Cursor pages of 3 across agents and admins: 3, 3, 2, then has_more false.
    let mut url =
        server.url(&format!("{USERS_PATH}.json?role[]=agent&role[]=admin&page[size]=100"));
    let mut seen = Vec::new();
    loop {
        let (_, page) = json_of(
            reqwest::Client::new()
                .get(&url)
                .basic_auth(format!("{}/token", cfg.email), Some(&cfg.api_token)),
        )
        .await;
        for u in page["users"].as_array().unwrap() {
            assert_ne!(u["role"], "end-user");
            seen.push(u["id"].as_u64().unwrap());
        }
        if page["meta"]["has_more"] != true {
            assert!(page["links"]["next"].is_string(), "the last page still links on");
            break;
        }
        url = page["links"]["next"].as_str().unwrap().to_string();
    }
    assert_eq!(seen, (900..908).collect::<Vec<u64>>());
    // Offset paging without page[size]: next_page is null at the end.
    let (_, last) = json_of(get("role=end-user&per_page=100")).await;
    assert_eq!(last["users"].as_array().unwrap().len(), 20);
    assert!(last["next_page"].is_null());
    let (status, _) = json_of(get("page[size]=101")).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn zendesk_talk_allows_ten_exports_a_minute_and_reports_the_accounts_window() {
    let cfg = ZendeskTalkMockConfig::default();
    let (server, mock) = ZendeskTalkMock::start(cfg.clone()).await;
    let get = |path: &str| {
        reqwest::Client::new()
            .get(server.url(path))
            .basic_auth(format!("{}/token", cfg.email), Some(&cfg.api_token))
    };
    let export = "/api/v2/channels/voice/stats/incremental/calls.json?start_time=0";
    let mut remaining = Vec::new();
    for _ in 0..10 {
        let r = get(export).send().await.unwrap();
        assert_eq!(r.status(), 200);
        remaining.push(r.headers()["x-rate-limit-remaining"].to_str().unwrap().to_string());
    }
    // The account's own window counts every call, and counts down from 700.
    assert_eq!(remaining.first().unwrap(), "699");
    assert_eq!(remaining.last().unwrap(), "690");
    let r = get(export).send().await.unwrap();
    assert_eq!(r.status(), 429, "the eleventh export in a minute");
    let wait: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Other endpoints are not held to the exports' limit.
    assert_eq!(get(USERS_PATH).send().await.unwrap().status(), 200);
    assert_eq!(mock.rate_limit_refusals(), 1);
}
