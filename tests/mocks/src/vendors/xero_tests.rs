//! The Xero mock's own quirks, checked over HTTP with a plain client: XML
//! without `Accept: application/json`, the tenant header, MS-JSON dates,
//! paging with `pagination.pageCount` and line items only when paged,
//! `If-Modified-Since` as a filter, archived contacts, the rate-limit
//! headers and the 429 past the minute budget, and token rotation.

use serde_json::Value;

use super::xero::{parse_ms_json, XeroMock, XeroMockConfig, TOKEN_PATH};
use super::MockHandle;
use crate::server::MockServer;

async fn token(server: &MockServer, cfg: &XeroMockConfig, refresh: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(server.url(TOKEN_PATH))
        .basic_auth(&cfg.client_id, Some(&cfg.client_secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .expect("token request");
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

fn get(
    server: &MockServer,
    cfg: &XeroMockConfig,
    path: &str,
    token: &str,
) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .get(server.url(&format!("/api.xro/2.0/{path}")))
        .bearer_auth(token)
        .header("xero-tenant-id", &cfg.tenant_id)
        .header("accept", "application/json")
}

#[tokio::test]
async fn xero_refresh_tokens_rotate_and_the_old_one_stops_working() {
    let cfg = XeroMockConfig::default();
    let (server, mock) = XeroMock::start(cfg.clone()).await;
    let (status, first) = token(&server, &cfg, &cfg.refresh_token).await;
    assert_eq!(status, 200);
    assert_eq!(first["expires_in"], 1800);
    let next = first["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(next, cfg.refresh_token);
    assert_eq!(mock.current_refresh_token().as_deref(), Some(next.as_str()));
    let (status, body) = token(&server, &cfg, &cfg.refresh_token).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    // Client credentials only for a custom connection.
    let cc = reqwest::Client::new()
        .post(server.url(TOKEN_PATH))
        .basic_auth(&cfg.client_id, Some(&cfg.client_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(cc.status().as_u16(), 400);
}

#[tokio::test]
async fn xero_answers_xml_without_accept_and_refuses_a_missing_tenant() {
    let cfg = XeroMockConfig { invoices: 5, ..Default::default() };
    let (server, _mock) = XeroMock::start(cfg.clone()).await;
    let (_, tok) = token(&server, &cfg, &cfg.refresh_token).await;
    let t = tok["access_token"].as_str().unwrap();
    let resp = reqwest::Client::new()
        .get(server.url("/api.xro/2.0/Invoices"))
        .bearer_auth(t)
        .header("xero-tenant-id", &cfg.tenant_id)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/xml"));
    let text = resp.text().await.unwrap();
    assert!(text.starts_with("<Response") && text.contains("<Invoices><Invoice>"), "{text}");
    let resp = reqwest::Client::new()
        .get(server.url("/api.xro/2.0/Invoices"))
        .bearer_auth(t)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["Detail"], "AuthorizationUnsuccessful");
}

#[tokio::test]
async fn xero_pages_carry_line_items_and_if_modified_since_filters() {
    let cfg = XeroMockConfig { invoices: 25, ..Default::default() };
    let (server, mock) = XeroMock::start(cfg.clone()).await;
    let (_, tok) = token(&server, &cfg, &cfg.refresh_token).await;
    let t = tok["access_token"].as_str().unwrap().to_string();
    let body = |r: reqwest::RequestBuilder| async move {
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    };
    let (_, unpaged) = body(get(&server, &cfg, "Invoices", &t)).await;
    assert!(unpaged.get("pagination").is_none());
    assert!(unpaged["Invoices"][0].get("LineItems").is_none(), "summaries without page");
    let (_, p3) = body(get(&server, &cfg, "Invoices?page=3&pageSize=10", &t)).await;
    assert_eq!(p3["pagination"]["pageCount"], 3);
    assert_eq!(p3["pagination"]["itemCount"], 25);
    assert_eq!(p3["Invoices"].as_array().unwrap().len(), 5);
    assert_eq!(p3["Invoices"][0]["LineItems"].as_array().unwrap().len(), 2);
    assert!(p3["Invoices"][0]["Date"].as_str().unwrap().starts_with("/Date("));
    let (status, err) = body(get(&server, &cfg, "Invoices?page=1&pageSize=1001", &t)).await;
    assert_eq!(status, 400);
    assert_eq!(err["Type"], "ValidationException");
    // If-Modified-Since: records updated at or after it, not a 304.
    let inv = mock.records("Invoices");
    let tenth = parse_ms_json(&inv[9]["UpdatedDateUTC"]).unwrap();
    let since = tenth.format("%Y-%m-%dT%H:%M:%S").to_string();
    let (status, newer) = body(
        get(&server, &cfg, "Invoices?page=1&pageSize=100&order=UpdatedDateUTC%20ASC", &t)
            .header("if-modified-since", &since),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(newer["Invoices"].as_array().unwrap().len(), 16);
    assert_eq!(newer["Invoices"][0]["InvoiceID"], inv[9]["InvoiceID"]);
    // Archived contacts only when asked for.
    let (_, active) = body(get(&server, &cfg, "Contacts?page=1", &t)).await;
    let (_, all) = body(get(&server, &cfg, "Contacts?page=1&includeArchived=true", &t)).await;
    assert_eq!(active["Contacts"].as_array().unwrap().len(), 27);
    assert_eq!(all["Contacts"].as_array().unwrap().len(), 30);
}

#[tokio::test]
async fn xero_counts_the_minute_budget_in_headers_and_refuses_past_it() {
    let cfg = XeroMockConfig { invoices: 3, minute_limit: 2, ..Default::default() };
    let (server, mock) = XeroMock::start(cfg.clone()).await;
    let (_, tok) = token(&server, &cfg, &cfg.refresh_token).await;
    let t = tok["access_token"].as_str().unwrap().to_string();
    let mut remaining = Vec::new();
    let mut last = None;
    for _ in 0..3 {
        let resp = get(&server, &cfg, "Invoices?page=1", &t).send().await.unwrap();
        let h = |n: &str| resp.headers().get(n).map(|v| v.to_str().unwrap().to_string());
        remaining.push(h("x-minlimit-remaining"));
        assert!(h("x-daylimit-remaining").is_some() && h("x-appminlimit-remaining").is_some());
        last = Some((resp.status().as_u16(), h("retry-after"), h("x-rate-limit-problem")));
    }
    // A minute boundary between the calls would reset the count; the
    // budget then reads 1 again, which the first two values rule out.
    if mock.calls_this_minute() == 2 {
        assert_eq!(remaining, [Some("1".into()), Some("0".into()), Some("0".into())]);
        let (status, retry, problem) = last.unwrap();
        assert_eq!(status, 429);
        assert!(retry.unwrap().parse::<u64>().unwrap() <= 60);
        assert_eq!(problem.as_deref(), Some("minute"));
    }
}
