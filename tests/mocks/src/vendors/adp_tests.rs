//! The ADP mock's own quirks, checked over HTTPS with a plain client: no
//! request without a trusted client certificate, the token form, `$top`
//! capped and `$skip` paging ending in a bodiless 204, `count=true`,
//! `$filter` on the assignment status, masked birth dates, expiring tokens,
//! and the error envelope.

use serde_json::Value;

use super::adp::{aoid, AdpHandle, AdpMock, AdpMockConfig, TOKEN_PATH, WORKERS_PATH};
use super::{Fault, MockHandle};
use crate::server::MockServer;

/// A client that trusts the mock's CA and presents `identity` (PEM
/// certificate and key), if any.
fn client(mock: &AdpHandle, identity: Option<(&str, &str)>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(mock.pki().ca.as_bytes()).unwrap();
    let mut b = reqwest::Client::builder().add_root_certificate(ca);
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{key}\n{cert}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}

fn trusted(mock: &AdpHandle) -> reqwest::Client {
    let p = mock.pki();
    client(mock, Some((&p.client.certificate, &p.client.key)))
}

async fn token(http: &reqwest::Client, server: &MockServer, cfg: &AdpMockConfig) -> (u16, Value) {
    let resp = http
        .post(server.url(TOKEN_PATH))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &cfg.client_id),
            ("client_secret", &cfg.client_secret),
        ])
        .send()
        .await
        .expect("token request");
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

async fn get(
    http: &reqwest::Client,
    server: &MockServer,
    query: &str,
    token: &str,
) -> (u16, String) {
    let resp = http
        .get(server.url(&format!("{WORKERS_PATH}{query}")))
        .bearer_auth(token)
        .header("accept", "application/json;masked=false")
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn adp_refuses_a_handshake_without_a_trusted_client_certificate() {
    let cfg = AdpMockConfig { workers: 3, ..Default::default() };
    let (server, mock) = AdpMock::start(cfg.clone()).await;
    assert!(server.base_url().starts_with("https://127.0.0.1:"));
    let p = mock.pki().clone();
    for (label, http) in [
        ("no certificate", client(&mock, None)),
        (
            "untrusted",
            client(&mock, Some((&p.untrusted_client.certificate, &p.untrusted_client.key))),
        ),
    ] {
        let sent = http
            .post(server.url(TOKEN_PATH))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await;
        assert!(sent.is_err(), "{label}: {sent:?}");
    }
    assert_eq!(server.refused_handshakes(), 2);
    assert!(mock.requests().is_empty(), "no request got past the handshake");
    // The trusted certificate gets through, to the token and the API.
    let http = trusted(&mock);
    let (status, tok) = token(&http, &server, &cfg).await;
    assert_eq!(
        (status, &tok["token_type"], &tok["expires_in"]),
        (200, &"Bearer".into(), &3600.into())
    );
    let (status, _) = get(&http, &server, "", tok["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn adp_pages_with_top_and_skip_and_ends_with_a_bodiless_204() {
    let cfg = AdpMockConfig { workers: 130, ..Default::default() };
    let (server, mock) = AdpMock::start(cfg.clone()).await;
    let http = trusted(&mock);
    let (_, tok) = token(&http, &server, &cfg).await;
    let t = tok["access_token"].as_str().unwrap().to_string();
    let body = |text: &str| serde_json::from_str::<Value>(text).unwrap();
    // $top above 100 is capped; no count, no meta.
    let (status, first) = get(&http, &server, "?$top=500&$skip=0", &t).await;
    let first = body(&first);
    assert_eq!(status, 200);
    assert_eq!(first["workers"].as_array().unwrap().len(), 100);
    assert_eq!(first["workers"][0]["associateOID"], aoid(1));
    assert!(first.get("meta").is_none());
    let (_, rest) = get(&http, &server, "?$top=100&$skip=100&count=true", &t).await;
    let rest = body(&rest);
    assert_eq!(rest["workers"].as_array().unwrap().len(), 30);
    assert_eq!(rest["meta"]["totalNumber"], 130);
    let (_, counted) = get(&http, &server, "?$top=1&$count=true", &t).await;
    assert_eq!(body(&counted)["meta"]["totalNumber"], 130);
    // Past the end: 204, nothing at all in the body.
    let (status, past) = get(&http, &server, "?$top=100&$skip=130", &t).await;
    assert_eq!((status, past.as_str()), (204, ""));
    let (status, bad) = get(&http, &server, "?$top=0", &t).await;
    assert_eq!(status, 400);
    assert_eq!(body(&bad)["response"]["applicationCode"]["typeCode"], "error");
    // One worker by its OID; an unknown one is the envelope's 404.
    let (status, one) = get(&http, &server, &format!("/{}", aoid(7)), &t).await;
    assert_eq!(
        (status, body(&one)["workers"][0]["workAssignments"].as_array().unwrap().len()),
        (200, 2)
    );
    let (status, none) = get(&http, &server, "/G3NOSUCHWORKER0", &t).await;
    assert_eq!((status, body(&none)["response"]["responseCode"].as_u64()), (404, Some(404)));
}

#[tokio::test]
async fn adp_masks_birth_dates_unless_asked_not_to_and_filters_by_assignment_status() {
    let cfg = AdpMockConfig { workers: 20, ..Default::default() };
    let (server, mock) = AdpMock::start(cfg.clone()).await;
    let http = trusted(&mock);
    let (_, tok) = token(&http, &server, &cfg).await;
    let t = tok["access_token"].as_str().unwrap().to_string();
    let real = mock.workers()[0]["person"]["birthDate"].as_str().unwrap().to_string();
    let plain: Value = http
        .get(server.url(WORKERS_PATH))
        .bearer_auth(&t)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plain["workers"][0]["person"]["birthDate"], format!("0000{}", &real[4..]));
    let (_, unmasked) = get(&http, &server, "", &t).await;
    let unmasked: Value = serde_json::from_str(&unmasked).unwrap();
    assert_eq!(unmasked["workers"][0]["person"]["birthDate"], real);
    // Workers 10 and 20 are terminated; 7 and 14 have an ended second assignment.
    let q = "?$filter=workers/workAssignments/assignmentStatus/statusCode/codeValue%20eq%20%27T%27";
    let (status, t_only) = get(&http, &server, q, &t).await;
    assert_eq!(status, 200);
    let oids: Vec<Value> = serde_json::from_str::<Value>(&t_only).unwrap()["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["associateOID"].clone())
        .collect();
    assert_eq!(oids, [7, 10, 14, 20].map(|i| Value::String(aoid(i))));
    let (status, _) = get(&http, &server, "?$filter=workerID/idValue%20eq%20%27E0001%27", &t).await;
    assert_eq!(status, 400, "only the assignment-status filter is understood");
}

#[tokio::test]
async fn adp_tokens_expire_and_errors_come_in_the_envelope() {
    let cfg = AdpMockConfig { workers: 2, token_lifetime_secs: 1, ..Default::default() };
    let (server, mock) = AdpMock::start(cfg.clone()).await;
    let http = trusted(&mock);
    let (_, none) = get(&http, &server, "", "not-a-token").await;
    let none: Value = serde_json::from_str(&none).unwrap();
    assert_eq!(none["response"]["applicationCode"]["code"], 401);
    let (_, tok) = token(&http, &server, &cfg).await;
    let t = tok["access_token"].as_str().unwrap().to_string();
    assert_eq!(tok["expires_in"], 1);
    assert_eq!(get(&http, &server, "", &t).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(get(&http, &server, "", &t).await.0, 401, "past expires_in");
    let (_, tok) = token(&http, &server, &cfg).await;
    let t = tok["access_token"].as_str().unwrap().to_string();
    mock.expire_tokens();
    assert_eq!(get(&http, &server, "", &t).await.0, 401, "revoked");
    let (_, tok) = token(&http, &server, &cfg).await;
    let t = tok["access_token"].as_str().unwrap().to_string();
    mock.push_faults([Fault::RateLimited { retry_after_secs: 3 }]);
    let resp = http.get(server.url(WORKERS_PATH)).bearer_auth(&t).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    // A wrong secret: OAuth's invalid_client.
    let wrong = AdpMockConfig { client_secret: "nope".into(), ..cfg.clone() };
    let (status, body) = token(&http, &server, &wrong).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    assert_eq!(mock.token_requests(), 4);
}
