//! The Lever mock's own quirks, checked over HTTP with a plain client: the
//! opaque `offset` paging with its `limit` cap, inclusive epoch-ms filters,
//! Basic `api_key:` and bearer auth, refresh-token rotation, the token
//! bucket's 429s and the `{code, message}` errors.

use serde_json::Value;

use super::lever::{LeverMock, LeverMockConfig, SEED_MS};
use super::MockHandle;
use crate::server::MockServer;

async fn get(server: &MockServer, key: &str, path_and_query: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(server.url(path_and_query))
        .basic_auth(key, Some(""))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn lever_pages_by_opaque_offset_with_its_filters_and_caps_limit_at_100() {
    let cfg = LeverMockConfig::default();
    let (server, mock) = LeverMock::start(cfg.clone()).await;
    let key = cfg.api_key.as_str();
    let (status, body) = get(&server, key, "/v1/opportunities?limit=101").await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "BadRequestError");
    assert!(body["message"].as_str().unwrap().contains("between 1 and 100"));

    // Inclusive start: the 10th opportunity (updated at +10 min) on.
    let start = SEED_MS + 10 * 60_000;
    let q = format!("/v1/opportunities?limit=15&updated_at_start={start}");
    let (status, first) = get(&server, key, &q).await;
    assert_eq!(status, 200);
    assert_eq!(first["data"].as_array().unwrap().len(), 15);
    assert_eq!(first["data"][0]["updatedAt"], start);
    assert_eq!(first["hasNext"], true);
    let next = first["next"].as_str().unwrap().to_string();
    let (_, second) = get(&server, key, &format!("{q}&offset={next}")).await;
    assert_eq!(second["data"].as_array().unwrap().len(), 6, "30 - 9 - 15");
    assert_eq!(second["hasNext"], false);
    assert!(second.get("next").is_none(), "no next on the last page");
    // The token only works with the filters it was issued for.
    let (status, body) =
        get(&server, key, &format!("/v1/opportunities?limit=15&offset={next}")).await;
    assert_eq!((status, body["message"].as_str()), (400, Some("Invalid offset token")));
    let (status, _) = get(&server, key, "/v1/opportunities?updated_at_start=yesterday").await;
    assert_eq!(status, 400);

    // Deletions are listed with deletedAt; offers per opportunity.
    let victim = mock.records("opportunities")[0]["id"].as_str().unwrap().to_string();
    let at = mock.delete_opportunity(&victim);
    let (_, deleted) =
        get(&server, key, &format!("/v1/opportunities/deleted?deleted_at_start={at}")).await;
    assert_eq!(deleted["data"][0]["id"], victim.as_str());
    assert_eq!(deleted["data"][0]["deletedAt"], at);
    let (status, body) = get(&server, key, &format!("/v1/opportunities/{victim}/offers")).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("ResourceNotFound")));
    let hired = mock.records("opportunities")[1]["id"].as_str().unwrap().to_string();
    let (_, offers) = get(&server, key, &format!("/v1/opportunities/{hired}/offers")).await;
    assert_eq!(offers["data"][0]["status"], "signed");
}

#[tokio::test]
async fn lever_takes_a_basic_key_or_a_bearer_and_rotates_refresh_tokens() {
    let cfg = LeverMockConfig::default();
    let (server, mock) = LeverMock::start(cfg.clone()).await;
    let (status, body) = get(&server, "wrong-key", "/v1/users").await;
    assert_eq!((status, body["code"].as_str()), (401, Some("UnauthorizedError")));
    // The key with a password is not `api_key:`.
    let resp = reqwest::Client::new()
        .get(server.url("/v1/users"))
        .basic_auth(&cfg.api_key, Some("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let refresh = |rt: String| {
        reqwest::Client::new().post(server.url("/oauth/token")).form(&[
            ("grant_type", "refresh_token".to_string()),
            ("client_id", cfg.client_id.clone()),
            ("client_secret", cfg.client_secret.clone()),
            ("refresh_token", rt),
        ])
    };
    let tok: Value = refresh(cfg.refresh_token.clone()).send().await.unwrap().json().await.unwrap();
    let rotated = tok["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rotated, cfg.refresh_token);
    assert_eq!(mock.current_refresh_token().as_deref(), Some(rotated.as_str()));
    assert_eq!(tok["expires_in"], 3600);
    let old = refresh(cfg.refresh_token.clone()).send().await.unwrap();
    assert_eq!(old.status(), 403, "the rotated-away token is revoked");
    let bearer = tok["access_token"].as_str().unwrap();
    let users =
        |t: &str| reqwest::Client::new().get(server.url("/v1/users")).bearer_auth(t.to_string());
    assert_eq!(users(bearer).send().await.unwrap().status(), 200);
    mock.expire_tokens();
    assert_eq!(users(bearer).send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn lever_token_bucket_allows_a_burst_of_20_then_429s() {
    let cfg = LeverMockConfig { bucket_rate: 0.5, ..Default::default() };
    let (server, mock) = LeverMock::start(cfg.clone()).await;
    let mut statuses = Vec::new();
    for _ in 0..22 {
        statuses.push(get(&server, &cfg.api_key, "/v1/postings").await.0);
    }
    assert!(statuses[..20].iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(&statuses[20..], [429, 429]);
    assert_eq!(mock.throttled(), 2);
    let (status, body) = get(&server, &cfg.api_key, "/v1/postings").await;
    assert_eq!((status, body["code"].as_str()), (429, Some("TooManyRequests")));
}
