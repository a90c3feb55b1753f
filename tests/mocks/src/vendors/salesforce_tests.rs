//! The Salesforce mock's own quirks, checked over HTTP with a plain client:
//! tokens without `expires_in` naming the `instance_url`, unquoted
//! datetime literals, `/query` hiding what `/queryAll` shows, the error
//! array, `Sforce-Limit-Info` and the 403 `REQUEST_LIMIT_EXCEEDED`.

use serde_json::Value;

use super::salesforce::{SalesforceMock, SalesforceMockConfig};
use super::MockHandle;
use crate::server::MockServer;

async fn token(server: &MockServer, cfg: &SalesforceMockConfig) -> Value {
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", cfg.client_id.as_str()),
        ("client_secret", cfg.client_secret.as_str()),
        ("refresh_token", cfg.refresh_token.as_str()),
    ];
    let resp = reqwest::Client::new()
        .post(server.url("/services/oauth2/token"))
        .form(&form)
        .send()
        .await
        .expect("token request");
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.expect("json")
}

/// `(status, api-usage header, body)` of a SOQL query.
async fn query(server: &MockServer, bearer: &str, endpoint: &str, q: &str) -> (u16, String, Value) {
    let resp = reqwest::Client::new()
        .get(server.url(&format!("/services/data/v66.0/{endpoint}")))
        .query(&[("q", q)])
        .bearer_auth(bearer)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let usage = resp
        .headers()
        .get("sforce-limit-info")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, usage, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn salesforce_mock_keeps_the_documented_quirks() {
    let cfg = SalesforceMockConfig::default();
    let (server, mock) = SalesforceMock::start(cfg.clone()).await;
    let t = token(&server, &cfg).await;
    assert!(t.get("expires_in").is_none(), "{t}");
    assert_eq!(t["instance_url"], server.base_url().trim_end_matches('/'));
    assert_eq!(t["token_type"], "Bearer");
    let bearer = t["access_token"].as_str().unwrap().to_string();

    // Quoted datetime literal: MALFORMED_QUERY, in the error array.
    let quoted = "SELECT Id FROM Opportunity WHERE SystemModstamp >= '2024-06-01T09:00:00Z'";
    let (status, _, body) = query(&server, &bearer, "query", quoted).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("MALFORMED_QUERY")));
    let (status, _, body) =
        query(&server, &bearer, "query", "SELECT Id, Colour FROM Account").await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (400, Some("INVALID_FIELD")));

    // Unquoted, inclusive: the 10th opportunity (09:10) on.
    let q = "SELECT Id, SystemModstamp FROM Opportunity WHERE SystemModstamp >= 2024-06-01T09:10:00Z ORDER BY SystemModstamp";
    let (status, usage, body) = query(&server, &bearer, "query", q).await;
    assert_eq!(status, 200);
    assert_eq!(usage, "api-usage=3/100000");
    assert_eq!((body["totalSize"].as_u64(), body["done"].as_bool()), (Some(3), Some(true)));
    assert_eq!(body["records"][0]["SystemModstamp"], "2024-06-01T09:10:00.000+0000");
    assert_eq!(body["records"][0]["attributes"]["type"], "Opportunity");

    // A deletion: gone from /query, shown by /queryAll.
    let id = mock.records("Opportunity")[0]["Id"].as_str().unwrap().to_string();
    mock.delete("Opportunity", &id);
    let all = "SELECT Id, IsDeleted FROM Opportunity";
    let (_, _, live) = query(&server, &bearer, "query", all).await;
    let (_, _, every) = query(&server, &bearer, "queryAll", all).await;
    assert_eq!((live["totalSize"].as_u64(), every["totalSize"].as_u64()), (Some(11), Some(12)));
    assert!(every["records"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["Id"] == id.as_str() && r["IsDeleted"] == true));

    // An expired session, then the allocation used up (403, not 429).
    mock.expire_tokens();
    let (status, _, body) = query(&server, &bearer, "query", all).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (401, Some("INVALID_SESSION_ID")));
    let bearer = token(&server, &cfg).await["access_token"].as_str().unwrap().to_string();
    mock.set_usage(cfg.api_limit);
    let (status, usage, body) = query(&server, &bearer, "query", all).await;
    assert_eq!((status, body[0]["errorCode"].as_str()), (403, Some("REQUEST_LIMIT_EXCEEDED")));
    assert_eq!(usage, "api-usage=100000/100000");
}
